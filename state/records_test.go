package state

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kappa-streams/kappa/codec"
)

// recKey is a record's identity in the model.
type recKey struct {
	k      string
	t, seq int64
}

// TestRecordsAgainstModel runs random puts, gets, fetches, commits,
// stream-time advances and reopenings against a map, with memory budgets
// that keep everything, keep a few records, or keep nothing past a
// commit, on memory and LevelDB segments. Fetches must return exactly the
// live records of their range in order, whether they come from memory,
// the engine or both.
func TestRecordsAgainstModel(t *testing.T) {
	const retention = 400
	budgets := []struct {
		name string
		o    Options
	}{
		{"default", Options{}},
		{"budget=6records", Options{Cache: NewCache(6 * (recordOverhead + 16))}},
		{"cap=3", Options{CacheSize: 3}},
		{"nocache", Options{Cache: NewCache(0)}},
		{"uncached", Options{CacheSize: -1}},
	}
	for _, onDisk := range []bool{false, true} {
		for i, b := range budgets {
			name := b.name
			if onDisk {
				name = "leveldb/" + name
			}
			t.Run(name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(i+1), 7))
				so := SegmentedOptions{Interval: 100, Retention: retention}
				if onDisk {
					so.Dir = t.TempDir()
				}
				seg, err := OpenSegmented(so)
				if err != nil {
					t.Fatal(err)
				}
				defer seg.Close()
				changelog := map[string]string{}
				logger := func(k, v []byte) { changelog[string(k)] = string(v) }
				open := func() *Records[string, int64] {
					return NewRecords("r", seg, codec.String(), codec.Int64(), b.o, logger)
				}
				r := open()
				model := map[recKey]int64{}
				st := int64(0) // stream time
				live := func(t int64) bool { return t >= st-retention }
				fetchWant := func(k string, from, to int64) []string {
					var want []recKey
					for rk := range model {
						if rk.k == k && rk.t >= from && rk.t <= to && live(rk.t) {
							want = append(want, rk)
						}
					}
					slices.SortFunc(want, func(a, b recKey) int {
						if a.t != b.t {
							return int(a.t - b.t)
						}
						return int(a.seq - b.seq)
					})
					out := make([]string, len(want))
					for i, rk := range want {
						out[i] = fmt.Sprint(rk.t, "/", rk.seq, "=", model[rk])
					}
					return out
				}
				for step := range 4000 {
					k := fmt.Sprintf("k%d", rng.IntN(12))
					tm := st - rng.Int64N(retention+100) + 50 // mostly recent, some expired, some ahead
					seq := rng.Int64N(3)
					switch op := rng.IntN(20); {
					case op < 7:
						st = max(st, tm)
						if err := r.Advance(st); err != nil {
							t.Fatal(err)
						}
						v := rng.Int64N(1000)
						if err := r.Put(k, tm, seq, v); err != nil {
							t.Fatal(err)
						}
						model[recKey{k, tm, seq}] = v
					case op < 10:
						v, ok, err := r.Get(k, tm, seq)
						mv, mok := model[recKey{k, tm, seq}]
						mok = mok && live(tm)
						if err != nil || ok != mok || (ok && v != mv) {
							t.Fatalf("step %d: Get(%s, %d, %d) = %d %v %v, want %d %v", step, k, tm, seq, v, ok, err, mv, mok)
						}
					case op < 15:
						from := tm - rng.Int64N(200)
						to := from + rng.Int64N(300)
						var got []string
						err := r.Fetch(k, from, to, func(t, seq int64, v int64) bool {
							got = append(got, fmt.Sprint(t, "/", seq, "=", v))
							return true
						})
						if err != nil {
							t.Fatal(err)
						}
						if want := fetchWant(k, from, to); !slices.Equal(got, want) {
							t.Fatalf("step %d: Fetch(%s, %d, %d) (covered %d, %d in memory):\n got %v\nwant %v", step, k, from, to, r.covered, r.count, got, want)
						}
					case op < 17:
						st += rng.Int64N(40)
						if err := r.Advance(st); err != nil {
							t.Fatal(err)
						}
					case op < 19:
						if err := r.Commit(map[string][]byte{"offset": []byte(fmt.Sprint(step))}); err != nil {
							t.Fatal(err)
						}
					default:
						// A restart: the committed store, reopened with an
						// empty memory.
						if err := r.Commit(nil); err != nil {
							t.Fatal(err)
						}
						r.release()
						r = open()
					}
					if r.keep && b.o.CacheSize > 0 && r.count > b.o.CacheSize {
						t.Fatalf("step %d: %d records in memory, cap %d", step, r.count, b.o.CacheSize)
					}
				}
				// All, in key order, against the live model.
				var got, want []string
				if err := r.All(func(k string, t, seq int64, v int64) bool {
					got = append(got, fmt.Sprint(k, "@", t, "/", seq, "=", v))
					return true
				}); err != nil {
					t.Fatal(err)
				}
				var ks []recKey
				for rk := range model {
					if live(rk.t) {
						ks = append(ks, rk)
					}
				}
				enc := func(rk recKey) string { return string(AppendWindowKey(nil, []byte(rk.k), rk.t, rk.seq)) }
				slices.SortFunc(ks, func(a, b recKey) int { return strings.Compare(enc(a), enc(b)) })
				for _, rk := range ks {
					want = append(want, fmt.Sprint(rk.k, "@", rk.t, "/", rk.seq, "=", model[rk]))
				}
				if !slices.Equal(got, want) {
					t.Fatalf("All:\n got %v\nwant %v", got, want)
				}
				// The changelog holds every write, expired or not.
				wantLog := map[string]string{}
				for rk, v := range model {
					vb, _ := codec.Int64().Encode(v)
					wantLog[enc(rk)] = string(vb)
				}
				if !maps.Equal(changelog, wantLog) {
					t.Fatalf("changelog has %d records, want %d", len(changelog), len(wantLog))
				}
				if err := r.Commit(nil); err != nil {
					t.Fatal(err)
				}
				if b.o.Cache != nil && r.keep && b.o.Cache.UsedBytes() != r.bytes {
					t.Fatalf("budget holds %d bytes, the store %d", b.o.Cache.UsedBytes(), r.bytes)
				}
			})
		}
	}
}

// TestRecordsFromMemory checks that fetches of times after everything
// dropped from memory do not read the engine, and that older ones do.
func TestRecordsFromMemory(t *testing.T) {
	seg, err := OpenSegmented(SegmentedOptions{Interval: 1000, Retention: 10000})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRecords("r", seg, codec.String(), codec.Int64(), Options{CacheSize: 10}, nil)
	for i := range int64(30) {
		if err := r.Put("a", i*100, i, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Commit(nil); err != nil {
		t.Fatal(err)
	}
	// 30 records, at most 10 kept: the oldest were dropped.
	if r.count > 10 || r.covered < 1900 {
		t.Fatalf("%d records in memory, covered %d", r.count, r.covered)
	}
	count := func(from, to int64) (n int) {
		if err := r.Fetch("a", from, to, func(int64, int64, int64) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	reads := r.metrics.EngineReads.Load()
	if n := count(r.covered+1, 10000); n != int(29-r.covered/100) || r.metrics.EngineReads.Load() != reads {
		t.Fatalf("fetch after covered: %d records, engine reads %d → %d", n, reads, r.metrics.EngineReads.Load())
	}
	if n := count(0, 10000); n != 30 || r.metrics.EngineReads.Load() != reads+1 {
		t.Fatalf("fetch of all: %d records, engine reads %d → %d", n, reads, r.metrics.EngineReads.Load())
	}
	// Reopened, the store knows nothing in memory: it reads the engine.
	r = NewRecords("r", seg, codec.String(), codec.Int64(), Options{}, nil)
	if n := count(2500, 10000); n != 5 || r.metrics.EngineReads.Load() != 1 {
		t.Fatalf("after reopening: %d records, %d engine reads", n, r.metrics.EngineReads.Load())
	}
}

// TestRecordOverhead checks recordOverhead against the heap growth of
// records kept in memory.
func TestRecordOverhead(t *testing.T) {
	seg, err := OpenSegmented(SegmentedOptions{Interval: 1 << 40, Retention: 1 << 50})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRecords("r", seg, codec.String(), codec.Int64(), Options{Cache: NewCache(1 << 40)}, nil)
	checkCharged(t, "recordOverhead", func(i int, k string) {
		if err := r.Put(k, int64(i), 0, int64(i)); err != nil {
			t.Fatal(err)
		}
	}, func() int64 {
		r.batch = Batch{} // the batch goes at commit: measure the records in memory alone
		return r.bytes
	})
}
