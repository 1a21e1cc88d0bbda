package state

import (
	"hash/maphash"
	"strconv"
	"testing"
)

// TestKeyFilter checks that a filter never forgets a key, however many
// are added, and that its false-positive rate stays near 1% as it grows.
func TestKeyFilter(t *testing.T) {
	seed := maphash.MakeSeed()
	h := func(i int) uint64 { return maphash.String(seed, "key-"+strconv.Itoa(i)) }
	var f keyFilter
	for _, n := range []int{1000, 10_000, 200_000} {
		for i := range n {
			f.add(h(i))
		}
		for i := range n {
			if !f.has(h(i)) {
				t.Fatalf("after %d keys: key %d added but not found", n, i)
			}
		}
		fp := 0
		for i := range 100_000 {
			if f.has(h(-1 - i)) {
				fp++
			}
		}
		if rate := float64(fp) / 100_000; rate > 0.015 {
			t.Fatalf("after %d keys (%d layers, %d bytes): false-positive rate %.3f", n, len(f.layers), f.bytes(), rate)
		}
		f = keyFilter{}
	}
}
