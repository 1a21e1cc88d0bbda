package state

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kappa-streams/kappa/codec"
)

type winEntry struct {
	key        string
	start, end int64
	value      int64
}

func openWindows(t *testing.T, dir string, interval, retention int64, cache int) (*Windows[string, int64], *Segmented) {
	t.Helper()
	seg, err := OpenSegmented(SegmentedOptions{Dir: dir, Interval: interval, Retention: retention})
	if err != nil {
		t.Fatal(err)
	}
	return NewWindows("w", seg, codec.String(), codec.Int64(), Options{CacheSize: cache}, nil, nil, false), seg
}

// TestWindowsAgainstModel writes random windows of random keys and checks
// every Fetch against a brute-force filter of a plain map, for both
// engines, before and after a commit and a reopen.
func TestWindowsAgainstModel(t *testing.T) {
	for _, dir := range []string{"", "leveldb"} {
		for _, cache := range []int{-1, 0, 50} {
			t.Run(fmt.Sprintf("%s/cache=%d", cmp.Or(dir, "memory"), cache), func(t *testing.T) {
				path := ""
				if dir != "" {
					path = filepath.Join(t.TempDir(), "w")
				}
				const retention = 1 << 40 // nothing expires here
				w, _ := openWindows(t, path, 1000, retention, cache)
				rng := rand.New(rand.NewPCG(1, 2))
				model := map[winEntry]bool{}
				keys := []string{"a", "ab", "b", "", "a\x00", "zz"}
				for range 2000 {
					e := winEntry{key: keys[rng.IntN(len(keys))], start: rng.Int64N(10_000)}
					e.end = e.start + 500
					if rng.IntN(10) == 0 {
						if err := w.Delete(e.key, e.start, e.end); err != nil {
							t.Fatal(err)
						}
						for m := range model {
							if m.key == e.key && m.start == e.start {
								delete(model, m)
							}
						}
						continue
					}
					e.value = rng.Int64()
					if err := w.Put(e.key, e.start, e.end, e.value); err != nil {
						t.Fatal(err)
					}
					for m := range model {
						if m.key == e.key && m.start == e.start {
							delete(model, m)
						}
					}
					model[e] = true
				}
				check := func(w *Windows[string, int64]) {
					t.Helper()
					for range 200 {
						k := keys[rng.IntN(len(keys))]
						from := rng.Int64N(11_000) - 500
						to := from + rng.Int64N(3000)
						var want, got []winEntry
						for m := range model {
							if m.key == k && m.start >= from && m.start <= to {
								want = append(want, m)
							}
						}
						slices.SortFunc(want, func(a, b winEntry) int { return cmp.Compare(a.start, b.start) })
						if err := w.Fetch(k, from, to, func(s, e int64, v int64) bool {
							got = append(got, winEntry{k, s, e, v})
							return true
						}); err != nil {
							t.Fatal(err)
						}
						if !slices.Equal(got, want) {
							t.Fatalf("Fetch(%q, %d, %d) = %v, want %v", k, from, to, got, want)
						}
					}
					n := 0
					if err := w.All(func(k string, s, e int64, v int64) bool {
						if !model[winEntry{k, s, e, v}] {
							t.Fatalf("All: unexpected %q [%d,%d]=%d", k, s, e, v)
						}
						n++
						return true
					}); err != nil {
						t.Fatal(err)
					}
					if n != len(model) {
						t.Fatalf("All: %d entries, want %d", n, len(model))
					}
				}
				check(w)
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
				if err := w.Commit(nil); err != nil {
					t.Fatal(err)
				}
				check(w)
				if path != "" {
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					w, _ = openWindows(t, path, 1000, retention, cache)
					check(w)
				}
				w.Close()
			})
		}
	}
}

// TestWindowsRetention checks that expired entries are invisible at once
// and that their segments are deleted from disk.
func TestWindowsRetention(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w")
	w, seg := openWindows(t, path, 1000, 3000, -1)
	defer w.Close()
	for start := int64(0); start < 5000; start += 500 {
		if err := w.Put("k", start, start+500, start); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(nil); err != nil {
		t.Fatal(err)
	}
	// Observed time is 4500: retention 3000 keeps starts ≥ 1500.
	if got, want := seg.Segments(), []int64{1000, 2000, 3000, 4000}; !slices.Equal(got, want) {
		t.Fatalf("segments %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(path, "0")); !os.IsNotExist(err) {
		t.Fatalf("segment 0 still on disk: %v", err)
	}
	var starts []int64
	w.Fetch("k", 0, 10_000, func(s, _ int64, _ int64) bool { starts = append(starts, s); return true })
	if want := []int64{1500, 2000, 2500, 3000, 3500, 4000, 4500}; !slices.Equal(starts, want) {
		t.Fatalf("live starts %v, want %v", starts, want)
	}
	if _, ok, _ := w.Get("k", 1000, 1500); ok {
		t.Fatal("Get outside retention found a value")
	}
	if err := w.Advance(9000); err != nil {
		t.Fatal(err)
	}
	if got := seg.Segments(); len(got) != 0 {
		t.Fatalf("segments %v after advancing past them all", got)
	}
	entries, _ := os.ReadDir(path)
	for _, e := range entries {
		if e.Name() != "meta" && e.Name() != formatFile {
			t.Fatalf("%s still on disk", e.Name())
		}
	}
	// Writes into expired time are dropped.
	if err := w.Put("k", 100, 600, 1); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := w.Get("k", 100, 600); ok {
		t.Fatal("an expired write is visible")
	}
	// The observed time survives a reopen.
	w.Close()
	w2, seg2 := openWindows(t, path, 1000, 3000, 0)
	defer w2.Close()
	if seg2.ObservedTime() != 9000 {
		t.Fatalf("observed time %d after reopen, want 9000", seg2.ObservedTime())
	}
}

// TestSessionOrder checks a session store orders a key's sessions by end.
func TestSessionOrder(t *testing.T) {
	seg, err := OpenSegmented(SegmentedOptions{Interval: 1000, Retention: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	s := NewWindows("s", seg, codec.String(), codec.Int64(), Options{}, nil, nil, true)
	s.Put("k", 0, 5000, 1)
	s.Put("k", 1000, 1200, 2)
	s.Put("k", 6000, 6000, 3)
	var got []int64
	s.Fetch("k", 1100, 5500, func(_, _ int64, v int64) bool { got = append(got, v); return true })
	if want := []int64{2, 1}; !slices.Equal(got, want) {
		t.Fatalf("sessions ending in [1100, 5500]: %v, want %v (by end)", got, want)
	}
	if v, ok, _ := s.Get("k", 0, 5000); !ok || v != 1 {
		t.Fatalf("Get session: %d %v", v, ok)
	}
}

func FuzzWindowKey(f *testing.F) {
	f.Add([]byte("a"), int64(0), int64(1), []byte("ab"), int64(-5), int64(7))
	f.Add([]byte(""), int64(-1), int64(1<<62), []byte("\x00"), int64(1), int64(-1<<63))
	f.Fuzz(func(t *testing.T, k1 []byte, a1, b1 int64, k2 []byte, a2, b2 int64) {
		e1 := AppendWindowKey(nil, k1, a1, b1)
		k, a, b, ok := ParseWindowKey(e1)
		if !ok || !bytes.Equal(k, k1) || a != a1 || b != b1 {
			t.Fatalf("round trip of %q %d %d: %q %d %d %v", k1, a1, b1, k, a, b, ok)
		}
		// Byte order is (length, key, T1, T2) order, so one key's
		// entries are contiguous and ordered by time.
		e2 := AppendWindowKey(nil, k2, a2, b2)
		want := cmp.Or(cmp.Compare(len(k1), len(k2)), bytes.Compare(k1, k2), cmp.Compare(a1, a2), cmp.Compare(b1, b2))
		if got := bytes.Compare(e1, e2); got != want && len(k1) < 128 && len(k2) < 128 {
			t.Fatalf("order of (%q,%d,%d) vs (%q,%d,%d): %d, want %d", k1, a1, b1, k2, a2, b2, got, want)
		}
		// Arbitrary bytes never panic.
		ParseWindowKey(k1)
	})
}
