package state

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// engines lists every engine; the conformance suite runs against each.
func engines(t *testing.T) map[string]func() Engine {
	return map[string]func() Engine{
		"memory": func() Engine { return NewMemory() },
		"leveldb": func() Engine {
			e, err := OpenLevelDB(t.TempDir(), LevelDBOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return e
		},
	}
}

func TestEngineConformance(t *testing.T) {
	for name, open := range engines(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("GetPutDelete", func(t *testing.T) { testGetPutDelete(t, open()) })
			t.Run("Range", func(t *testing.T) { testRange(t, open()) })
			t.Run("Meta", func(t *testing.T) { testMeta(t, open()) })
			t.Run("RandomAgainstMap", func(t *testing.T) { testRandom(t, open()) })
			t.Run("Closed", func(t *testing.T) { testClosed(t, open()) })
			t.Run("CloseWhileInUse", func(t *testing.T) { testCloseWhileInUse(t, open) })
		})
	}
}

func write(t *testing.T, e Engine, fn func(b *Batch)) {
	t.Helper()
	var b Batch
	fn(&b)
	if err := e.Write(&b); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, e Engine, k string) (string, bool) {
	t.Helper()
	v, ok, err := e.Get([]byte(k))
	if err != nil {
		t.Fatal(err)
	}
	return string(v), ok
}

func testGetPutDelete(t *testing.T, e Engine) {
	defer e.Close()
	if _, ok := get(t, e, "a"); ok {
		t.Fatal("empty engine has a")
	}
	write(t, e, func(b *Batch) {
		b.Put([]byte("a"), []byte("1"))
		b.Put([]byte("b"), []byte("2"))
		b.Put([]byte("a"), []byte("3"))
	})
	if v, ok := get(t, e, "a"); !ok || v != "3" {
		t.Fatalf("a = %q %v, want the later put 3", v, ok)
	}
	write(t, e, func(b *Batch) { b.Delete([]byte("a")); b.Delete([]byte("missing")) })
	if _, ok := get(t, e, "a"); ok {
		t.Fatal("a survived delete")
	}
	if n, _ := e.ApproximateCount(); n != 1 {
		t.Fatalf("count %d, want 1", n)
	}
	// An empty value is a value, not a delete.
	write(t, e, func(b *Batch) { b.Put([]byte("empty"), nil) })
	if v, ok := get(t, e, "empty"); !ok || v != "" {
		t.Fatalf("empty value: %q %v", v, ok)
	}
	// Returned values are the caller's.
	v, _, _ := e.Get([]byte("b"))
	v[0] = 'X'
	if v2, _ := get(t, e, "b"); v2 != "2" {
		t.Fatal("Get returned the engine's own memory")
	}
}

func testRange(t *testing.T, e Engine) {
	defer e.Close()
	write(t, e, func(b *Batch) {
		for _, k := range []string{"b", "a", "d", "c", "e", "\x00", "\xff"} {
			b.Put([]byte(k), []byte("v"+k))
		}
	})
	collect := func(start, end []byte, limit int) []string {
		var out []string
		if err := e.Range(start, end, func(k, v []byte) bool {
			if string(v) != "v"+string(k) {
				t.Fatalf("key %q has value %q", k, v)
			}
			out = append(out, string(k))
			return len(out) < limit
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	cases := []struct {
		start, end []byte
		limit      int
		want       []string
	}{
		{nil, nil, 100, []string{"\x00", "a", "b", "c", "d", "e", "\xff"}},
		{[]byte("b"), []byte("d"), 100, []string{"b", "c"}},
		{[]byte("bb"), nil, 100, []string{"c", "d", "e", "\xff"}},
		{nil, []byte("b"), 100, []string{"\x00", "a"}},
		{nil, nil, 2, []string{"\x00", "a"}},
	}
	for _, c := range cases {
		if got := collect(c.start, c.end, c.limit); !slices.Equal(got, c.want) {
			t.Errorf("Range(%q, %q) = %q, want %q", c.start, c.end, got, c.want)
		}
	}
}

func testMeta(t *testing.T, e Engine) {
	defer e.Close()
	write(t, e, func(b *Batch) { b.Put([]byte("k"), []byte("v")); b.SetMeta("offset", []byte("42")) })
	if v, ok, err := e.Meta("offset"); err != nil || !ok || string(v) != "42" {
		t.Fatalf("meta: %q %v %v", v, ok, err)
	}
	n := 0
	e.Range(nil, nil, func(k, v []byte) bool { n++; return true })
	if n != 1 {
		t.Fatalf("metadata shows in Range: %d keys", n)
	}
	if _, ok, _ := e.Meta("other"); ok {
		t.Fatal("unknown meta found")
	}
}

// testRandom checks the engine against a map over seeded random batches.
func testRandom(t *testing.T, e Engine) {
	defer e.Close()
	rng := rand.New(rand.NewPCG(7, 11))
	want := map[string]string{}
	for range 200 {
		write(t, e, func(b *Batch) {
			for range 1 + rng.IntN(50) {
				k := fmt.Sprintf("k%03d", rng.IntN(300))
				if rng.IntN(4) == 0 {
					b.Delete([]byte(k))
					delete(want, k)
				} else {
					v := fmt.Sprint(rng.Int())
					b.Put([]byte(k), []byte(v))
					want[k] = v
				}
			}
		})
	}
	got := map[string]string{}
	var prev []byte
	e.Range(nil, nil, func(k, v []byte) bool {
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			t.Fatalf("Range out of order: %q then %q", prev, k)
		}
		prev = slices.Clone(k)
		got[string(k)] = string(v)
		return true
	})
	if !maps.Equal(got, want) {
		t.Fatalf("engine holds %d keys, want %d (contents differ)", len(got), len(want))
	}
	if n, _ := e.ApproximateCount(); n != int64(len(want)) {
		t.Fatalf("count %d, want %d", n, len(want))
	}
	for k, v := range want {
		if g, ok := get(t, e, k); !ok || g != v {
			t.Fatalf("Get(%q) = %q %v, want %q", k, g, ok, v)
		}
	}
}

func testClosed(t *testing.T, e Engine) {
	e.Close()
	if _, _, err := e.Get([]byte("a")); err != ErrClosed {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := e.Range(nil, nil, func(_, _ []byte) bool { return true }); err != ErrClosed {
		t.Fatalf("Range after Close: %v", err)
	}
	if err := e.Write(&Batch{}); err != ErrClosed {
		t.Fatalf("Write after Close: %v", err)
	}
	if _, _, err := e.Meta("offset"); err != ErrClosed {
		t.Fatalf("Meta after Close: %v", err)
	}
	if _, err := e.ApproximateCount(); err != ErrClosed {
		t.Fatalf("ApproximateCount after Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestLevelDBReopenKeepsDataAndCount(t *testing.T) {
	dir := t.TempDir()
	e, err := OpenLevelDB(dir, LevelDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, e, func(b *Batch) {
		for i := range 100 {
			b.Put([]byte(fmt.Sprint(i)), []byte("v"))
		}
		b.SetMeta("offset", []byte("99"))
	})
	e.Close()
	e, err = OpenLevelDB(dir, LevelDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if n, _ := e.ApproximateCount(); n != 100 {
		t.Fatalf("count after reopen %d", n)
	}
	if v, _, _ := e.Meta("offset"); string(v) != "99" {
		t.Fatalf("meta after reopen %q", v)
	}
}

// testCloseWhileInUse closes engines while goroutines run every operation
// on them: each operation either works or returns ErrClosed (never, say,
// goleveldb's own error for a closed database). Run it with -race.
func testCloseWhileInUse(t *testing.T, open func() Engine) {
	key := []byte("key-00000007")
	ops := map[string]func(e Engine) error{
		"Get": func(e Engine) error { _, _, err := e.Get(key); return err },
		"Range": func(e Engine) error {
			return e.Range(nil, nil, func(_, _ []byte) bool { return true })
		},
		// A callback that calls back into the engine must not deadlock
		// against a waiting Close.
		"RangeThenGet": func(e Engine) error {
			var inner error
			err := e.Range(nil, nil, func(_, _ []byte) bool {
				_, _, inner = e.Get(key)
				return inner == nil
			})
			return errors.Join(err, inner)
		},
		"Write": func(e Engine) error {
			var b Batch
			b.Put(key, []byte("v"))
			b.SetMeta("offset", []byte("1"))
			return e.Write(&b)
		},
		"Meta":             func(e Engine) error { _, _, err := e.Meta("offset"); return err },
		"ApproximateCount": func(e Engine) error { _, err := e.ApproximateCount(); return err },
	}
	for round := range 10 {
		e := open()
		write(t, e, func(b *Batch) {
			for i := range 100 {
				b.Put(fmt.Appendf(nil, "key-%08d", i), []byte("v"))
			}
		})
		var started, done sync.WaitGroup
		errs := make(chan error, 2*len(ops))
		for name, op := range ops {
			for range 2 {
				started.Add(1)
				done.Go(func() {
					first := true
					for {
						err := op(e)
						if first {
							first = false
							started.Done()
						}
						if err != nil {
							errs <- fmt.Errorf("round %d: %s: %w", round, name, err)
							return
						}
					}
				})
			}
		}
		started.Wait() // every operation is running: Close lands among them
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		done.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%v, want ErrClosed", err)
			}
		}
	}
}
