package state

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/kappa-streams/kappa/codec"
)

// TestKVAgainstModel drives a store with seeded random operations, flushes
// and commits, at several cache sizes on both engines, and checks reads,
// ranges, the changelog and the forwarded changes against a map.
func TestKVAgainstModel(t *testing.T) {
	for engName, open := range engines(t) {
		// entry caps, and byte budgets of about 8 entries and of none
		for i, o := range []Options{{CacheSize: -1}, {CacheSize: 1}, {CacheSize: 7}, {}, {Cache: NewCache(8 * (entryOverhead + 11))}, {Cache: NewCache(0)}} {
			// A store that forwards nothing writes without reading first.
			for _, forwarding := range []bool{true, false} {
				name := fmt.Sprintf("%s/cache=%d", engName, o.CacheSize)
				if o.Cache != nil {
					name = fmt.Sprintf("%s/budget=%d", engName, o.Cache.MaxBytes())
				}
				if !forwarding {
					name += "/silent"
				}
				t.Run(name, func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(i+10), 3))
					eng := open()
					defer eng.Close()
					model := map[string]int64{}
					changelog := map[string]string{} // compacted view of what was logged
					lastFwd := map[string]int64{}    // last forwarded value per key
					fwdDeleted := map[string]bool{}
					logger := func(k, v []byte) {
						if v == nil {
							delete(changelog, string(k))
						} else {
							n, _ := codec.Int64().Decode(v)
							changelog[string(k)] = fmt.Sprint(n)
						}
					}
					var forward func(string, Change[int64]) error
					if forwarding {
						forward = func(k string, c Change[int64]) error {
							prev, had := lastFwd[k]
							if fwdDeleted[k] {
								had = false
							}
							if c.HasOld != had || (had && c.Old != prev) {
								t.Fatalf("key %s: forwarded Old=%d/%v, but last forwarded %d/%v", k, c.Old, c.HasOld, prev, had)
							}
							lastFwd[k], fwdDeleted[k] = c.New, c.Deleted
							return nil
						}
					}
					s := NewKV("counts", eng, codec.String(), codec.Int64(), o, logger, forward)
					for step := range 3000 {
						k := fmt.Sprintf("k%02d", rng.IntN(40))
						switch op := rng.IntN(10); {
						case op < 5:
							v, ok, err := s.Get(k)
							mv, mok := model[k]
							if err != nil || ok != mok || v != mv {
								t.Fatalf("step %d: Get(%s) = %d %v %v, want %d %v", step, k, v, ok, err, mv, mok)
							}
						case op < 8:
							v := rng.Int64N(1000)
							if err := s.Put(k, v); err != nil {
								t.Fatal(err)
							}
							model[k] = v
						case op < 9:
							if err := s.Delete(k); err != nil {
								t.Fatal(err)
							}
							delete(model, k)
						default:
							if rng.IntN(2) == 0 {
								if err := s.Flush(); err != nil {
									t.Fatal(err)
								}
								if err := s.Commit(map[string][]byte{"offset": []byte(fmt.Sprint(step))}); err != nil {
									t.Fatal(err)
								}
							} else {
								checkRange(t, s, model, fmt.Sprintf("k%02d", rng.IntN(40)), fmt.Sprintf("k%02d", rng.IntN(40)))
							}
						}
					}
					checkRange(t, s, model, "", "\xff")
					countOK := func() {
						t.Helper()
						if n, _ := s.ApproximateCount(); n != int64(len(model)) {
							t.Fatalf("ApproximateCount %d, want %d", n, len(model))
						}
					}
					// A silent store's blind puts count as new keys until
					// they are written.
					if forwarding {
						countOK()
					}
					s.Flush()
					s.Commit(nil)
					countOK()
					want := map[string]string{}
					for k, v := range model {
						want[k] = fmt.Sprint(v)
					}
					if !maps.Equal(changelog, want) {
						t.Fatalf("compacted changelog differs from the model:\n got %v\nwant %v", changelog, want)
					}
					for k, v := range model {
						if forwarding && (fwdDeleted[k] || lastFwd[k] != v) {
							t.Fatalf("key %s: last forwarded %d (deleted %v), want %d", k, lastFwd[k], fwdDeleted[k], v)
						}
					}
					// A fresh store over the same engine sees the committed data.
					s2 := NewKV("counts", eng, codec.String(), codec.Int64(), Options{}, nil, nil)
					checkRange(t, s2, model, "", "\xff")
				})
			}
		}
	}
}

func checkRange(t *testing.T, s *KV[string, int64], model map[string]int64, from, to string) {
	t.Helper()
	var want []string
	for k, v := range model {
		if k >= from && k < to {
			want = append(want, fmt.Sprint(k, "=", v))
		}
	}
	sortStrings(want)
	var got []string
	if err := s.Range(from, to, func(k string, v int64) bool { got = append(got, fmt.Sprint(k, "=", v)); return true }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Range(%q, %q):\n got %v\nwant %v", from, to, got, want)
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestKVDedupesBetweenFlushes(t *testing.T) {
	var forwarded []string
	s := NewKV("s", NewMemory(), codec.String(), codec.Int64(), Options{}, nil,
		func(k string, c Change[int64]) error { forwarded = append(forwarded, fmt.Sprint(k, c.New)); return nil })
	for i := range 5 {
		s.Put("a", int64(i))
	}
	s.Flush()
	if fmt.Sprint(forwarded) != "[a4]" {
		t.Fatalf("cached store forwarded %v, want one update", forwarded)
	}
	forwarded = nil
	s2 := NewKV("s", NewMemory(), codec.String(), codec.Int64(), Options{CacheSize: -1}, nil,
		func(k string, c Change[int64]) error { forwarded = append(forwarded, fmt.Sprint(k, c.New)); return nil })
	for i := range 3 {
		s2.Put("a", int64(i))
	}
	if fmt.Sprint(forwarded) != "[a0 a1 a2]" {
		t.Fatalf("uncached store forwarded %v, want every update", forwarded)
	}
}

func TestKVMetrics(t *testing.T) {
	s := NewKV("m", NewMemory(), codec.String(), codec.Int64(), Options{CacheSize: 10}, nil, nil)
	for i := range 25 {
		if err := s.Put(fmt.Sprint("k", i), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete("k0"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get("k24"); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(nil); err != nil {
		t.Fatal(err)
	}
	m := s.Metrics()
	got := []int64{m.Puts.Load(), m.Deletes.Load(), m.Gets.Load(), m.Flushed.Load(), m.BatchedOps.Load()}
	// 25 puts and a delete of k0, evicted by then and read back.
	want := []int64{25, 1, 1, 26, 26}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("puts, deletes, gets, flushed, batched ops = %v, want %v", got, want)
	}
	// The store forwards nothing, so puts do not read the engine; the
	// delete of the evicted k0 does, once.
	if m.Batches.Load() < 2 || m.Evicted.Load() == 0 || m.CacheHits.Load() == 0 || m.EngineReads.Load() != 1 {
		t.Fatalf("batches %d, evicted %d, cache hits %d, engine reads %d", m.Batches.Load(), m.Evicted.Load(), m.CacheHits.Load(), m.EngineReads.Load())
	}
}

// TestCacheBudgetShared checks that stores sharing a budget keep within
// it, that a store evicts its own entries when its writes exhaust it, and
// that at a commit a store over its fair share of an exhausted budget
// trims itself, so an idle store cannot hold the budget.
func TestCacheBudgetShared(t *testing.T) {
	const entry = entryOverhead + 6 + 8 // "k00000" and an int64
	budget := NewCache(100 * entry)
	var flushed [2]int
	open := func(i int) *KV[string, int64] {
		return NewKV(fmt.Sprint("s", i), NewMemory(), codec.String(), codec.Int64(), Options{Cache: budget}, nil,
			func(string, Change[int64]) error { flushed[i]++; return nil })
	}
	a, b := open(0), open(1)
	for i := range 90 {
		if err := a.Put(fmt.Sprintf("k%05d", i), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if flushed[0] != 0 || budget.UsedBytes() != 90*entry {
		t.Fatalf("after 90 puts under the budget: %d flushed, %d bytes used, want 0 and %d", flushed[0], budget.UsedBytes(), 90*entry)
	}
	// b's writes exhaust the budget: b evicts its own entries, a keeps its.
	for i := range 200 {
		if err := b.Put(fmt.Sprintf("k%05d", i), int64(i)); err != nil {
			t.Fatal(err)
		}
		if used := budget.UsedBytes(); used > budget.MaxBytes()+entry {
			t.Fatalf("put %d: %d bytes used, budget %d", i, used, budget.MaxBytes())
		}
	}
	if flushed[0] != 0 || flushed[1] == 0 || len(a.cache) != 90 {
		t.Fatalf("a flushed %d and holds %d entries, b flushed %d: want a untouched, b evicting", flushed[0], len(a.cache), flushed[1])
	}
	// At a commit, a holds more than half of an exhausted budget: it trims.
	for _, s := range []*KV[string, int64]{b, a} {
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(nil); err != nil {
			t.Fatal(err)
		}
	}
	if a.bytes > budget.MaxBytes()/2 || budget.UsedBytes() > budget.MaxBytes() {
		t.Fatalf("after commits: a holds %d bytes (fair share %d), %d used of %d", a.bytes, budget.MaxBytes()/2, budget.UsedBytes(), budget.MaxBytes())
	}
	// Every value is readable, from the cache or the engine.
	for i := range 200 {
		for _, s := range []*KV[string, int64]{a, b} {
			k := fmt.Sprintf("k%05d", i)
			v, ok, err := s.Get(k)
			if err != nil || (s == b || i < 90) != ok || (ok && v != int64(i)) {
				t.Fatalf("%s.Get(%s) = %d %v %v", s.Name(), k, v, ok, err)
			}
		}
	}
	a.Close()
	b.Close()
	if budget.UsedBytes() != 0 || budget.stores.Load() != 0 {
		t.Fatalf("closed stores still charge %d bytes, %d stores", budget.UsedBytes(), budget.stores.Load())
	}
}

// TestEntryOverhead checks the per-entry heap estimate the budget counts
// against the heap growth of a cache of string keys and int64 values: the
// budget should bound memory within a third either way.
func TestEntryOverhead(t *testing.T) {
	s := NewKV("m", discard{}, codec.String(), codec.Int64(), Options{Cache: NewCache(1 << 40)}, nil, nil)
	checkCharged(t, "entryOverhead", func(i int, k string) {
		if err := s.Put(k, int64(i)); err != nil {
			t.Fatal(err)
		}
	}, func() int64 {
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(nil); err != nil {
			t.Fatal(err)
		}
		return s.bytes
	})
}

// checkCharged puts 50,000 keys of 16 bytes with put, then calls done,
// which returns the bytes charged for them, and fails unless that is
// within a third of the heap growth: the estimate named est is off.
func checkCharged(t *testing.T, est string, put func(i int, key string), done func() int64) {
	t.Helper()
	const n = 50000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%012d", i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i, k := range keys {
		put(i, k)
	}
	charged := float64(done()) / n
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(put) // and with it the store
	runtime.KeepAlive(done)
	heap := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("heap growth %.0f B per key, charged %.0f B", heap, charged)
	if charged < heap*2/3 || charged > heap*4/3 {
		t.Fatalf("charged %.0f B per key, heap grew %.0f B per key: fix %s", charged, heap, est)
	}
}

// discard is an engine that keeps nothing.
type discard struct{}

func (discard) Get([]byte) ([]byte, bool, error)                        { return nil, false, nil }
func (discard) Range(_, _ []byte, _ func(key, value []byte) bool) error { return nil }
func (discard) Write(*Batch) error                                      { return nil }
func (discard) Meta(string) ([]byte, bool, error)                       { return nil, false, nil }
func (discard) ApproximateCount() (int64, error)                        { return 0, nil }
func (discard) Close() error                                            { return nil }

// TestKVFlushFailures: a change whose forward fails or panics, or whose
// value does not encode, is handed to OnForwardError and the flush goes
// on with the others; unhandled, the flush stops and keeps the rest dirty.
func TestKVFlushFailures(t *testing.T) {
	refusing := codec.Func("refusing",
		func(v string) ([]byte, error) {
			if v == "unencodable" {
				return nil, fmt.Errorf("cannot encode %q", v)
			}
			return []byte(v), nil
		},
		func(b []byte) (string, error) { return string(b), nil })
	var forwarded, logged []string
	forward := func(k string, c Change[string]) error {
		switch c.New {
		case "fails":
			return fmt.Errorf("%s refused", k)
		case "panics":
			panic(k + " panicked")
		}
		forwarded = append(forwarded, k+"="+c.New)
		return nil
	}
	logger := func(k, v []byte) { logged = append(logged, string(k)+"="+string(v)) }
	var failures []string
	handled := Options{OnForwardError: func(k, v []byte, err error) error {
		var pe *PanicError
		kind := "error"
		if errors.As(err, &pe) {
			kind = "panic"
		}
		failures = append(failures, fmt.Sprintf("%s=%s:%s", k, v, kind))
		return nil
	}}
	s := NewKV("s", NewMemory(), codec.String(), refusing, handled, logger, forward)
	for _, kv := range [][2]string{{"a", "ok"}, {"b", "fails"}, {"c", "panics"}, {"d", "unencodable"}, {"e", "ok"}} {
		if err := s.Put(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(forwarded); got != "[a=ok e=ok]" {
		t.Fatalf("forwarded %s", got)
	}
	if got := fmt.Sprint(failures); got != "[b=fails:error c=panics:panic d=:error]" {
		t.Fatalf("failures %s", got)
	}
	if got := fmt.Sprint(logged); got != "[a=ok b=fails c=panics e=ok]" {
		t.Fatalf("logged %s: the failed forwards are stored and logged, the unencodable value is not", got)
	}
	if err := s.Commit(nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get("d"); ok {
		t.Fatal("the unencodable change is still in the store")
	}
	if v, ok, _ := s.Get("b"); !ok || v != "fails" {
		t.Fatalf("b = %q, %v: a change whose forward failed is still stored", v, ok)
	}

	// Unhandled, the first failure stops the flush; the rest stays dirty.
	forwarded = nil
	s2 := NewKV("s2", NewMemory(), codec.String(), refusing, Options{}, nil, forward)
	for _, kv := range [][2]string{{"a", "ok"}, {"b", "fails"}, {"c", "ok"}} {
		if err := s2.Put(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s2.Flush(); err == nil {
		t.Fatal("an unhandled forward failure did not stop the flush")
	}
	if err := s2.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(forwarded); got != "[a=ok c=ok]" {
		t.Fatalf("forwarded %s: c must be forwarded by the second flush", got)
	}
}

// TestReaderLeavesTheStore reads a store the way interactive queries do
// (Reader: Get and Range), between writes still in its cache: the reads
// see the cached changes, and leave the cache as they found it: no hit
// counted, no entry marked recently used, no range index built.
func TestReaderLeavesTheStore(t *testing.T) {
	s := NewKV("counts", NewMemory(), codec.String(), codec.Int64(), Options{CacheSize: 100}, nil, nil)
	for i := range 10 {
		if err := s.Put(fmt.Sprintf("k%d", i), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range s.cache {
		e.ref = false
	}
	hits := s.metrics.CacheHits.Load()
	r := s.Reader()
	if v, ok, err := r.Get("k3"); err != nil || !ok || v != int64(3) {
		t.Fatalf("Get(k3) = %v %v %v, want 3", v, ok, err)
	}
	var keys []string
	if err := r.Range("k2", "k5", func(k, _ any) bool { keys = append(keys, k.(string)); return true }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[k2 k3 k4]" {
		t.Fatalf("Range(k2, k5) = %v, want [k2 k3 k4]", keys)
	}
	if got := s.metrics.CacheHits.Load(); got != hits {
		t.Errorf("the reads counted %d cache hits", got-hits)
	}
	for _, e := range s.cache {
		if e.ref {
			t.Errorf("the reads marked %s recently used", e.kb)
		}
	}
	if s.changed != nil {
		t.Error("the range built the store's range index")
	}
}
