package state

// keyFilter is a Bloom filter of key hashes that grows as keys are added:
// when a layer holds as many keys as it was sized for, a layer twice as
// large is added, sized for 3 more bits per key than the one before, so
// that the false-positive rates of the layers (under 1% for the first: 10
// bits and 7 probes per key) add up to little more than the first's,
// however many keys come. Queries check every layer.
type keyFilter struct {
	layers []filterLayer
}

type filterLayer struct {
	bits    []uint64
	n       int // keys added
	bitsPer int // bits per key it is sized for
}

const (
	filterFirstBits = 1 << 16
	filterBitsPer   = 10 // bits per key of the first layer
	filterProbes    = 7
)

// add records hash h.
func (f *keyFilter) add(h uint64) {
	if len(f.layers) == 0 || f.layers[len(f.layers)-1].full() {
		size, per := filterFirstBits, filterBitsPer
		if len(f.layers) > 0 {
			last := f.layers[len(f.layers)-1]
			size, per = 2*64*len(last.bits), last.bitsPer+3
		}
		f.layers = append(f.layers, filterLayer{bits: make([]uint64, size/64), bitsPer: per})
	}
	l := &f.layers[len(f.layers)-1]
	l.n++
	m := uint64(64 * len(l.bits))
	h1, h2 := probes(h)
	for i := range uint64(filterProbes) {
		p := (h1 + i*h2) % m
		l.bits[p/64] |= 1 << (p % 64)
	}
}

// has reports whether h may have been added: false means it was not.
func (f *keyFilter) has(h uint64) bool {
	h1, h2 := probes(h)
	for _, l := range f.layers {
		m := uint64(64 * len(l.bits))
		all := true
		for i := range uint64(filterProbes) {
			p := (h1 + i*h2) % m
			if l.bits[p/64]&(1<<(p%64)) == 0 {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// probes returns the base and step of h's probes, h1 + i·h2 (double
// hashing); the step is odd.
func probes(h uint64) (h1, h2 uint64) { return h, h>>32 | h<<32 | 1 }

// bytes returns the filter's size.
func (f *keyFilter) bytes() int {
	n := 0
	for _, l := range f.layers {
		n += 8 * len(l.bits)
	}
	return n
}

func (l *filterLayer) full() bool { return l.n*l.bitsPer >= 64*len(l.bits) }
