package state

import (
	"bytes"
	"slices"
	"sync"
)

// memEngine keeps everything in a map, with a sorted key list built on
// demand for Range. It loses its data on Close; its changelog restores it.
type memEngine struct {
	mu     sync.RWMutex
	data   map[string][]byte
	meta   map[string][]byte
	sorted []string // nil when stale
	closed bool
}

// NewMemory returns an in-memory engine. Range sorts the keys after each
// change, so it suits stores that are mostly read by key.
func NewMemory() Engine {
	return &memEngine{data: make(map[string][]byte), meta: make(map[string][]byte)}
}

func (m *memEngine) Get(key []byte) ([]byte, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, false, ErrClosed
	}
	v, ok := m.data[string(key)]
	if !ok {
		return nil, false, nil
	}
	return slices.Clone(v), true, nil
}

func (m *memEngine) Range(start, end []byte, fn func(k, v []byte) bool) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if m.sorted == nil {
		m.sorted = make([]string, 0, len(m.data))
		for k := range m.data {
			m.sorted = append(m.sorted, k)
		}
		slices.Sort(m.sorted)
	}
	keys := m.sorted
	m.mu.Unlock()
	i, _ := slices.BinarySearch(keys, string(start))
	for ; i < len(keys); i++ {
		k := keys[i]
		if end != nil && bytes.Compare([]byte(k), end) >= 0 {
			break
		}
		m.mu.RLock()
		v, ok := m.data[k]
		m.mu.RUnlock()
		if ok && !fn([]byte(k), v) {
			break
		}
	}
	return nil
}

func (m *memEngine) Write(b *Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	b.each(func(k, v []byte, del bool) {
		_, had := m.data[string(k)]
		if del {
			delete(m.data, string(k))
		} else {
			m.data[string(k)] = slices.Clone(v)
		}
		if had == del {
			m.sorted = nil // a key appeared or disappeared
		}
	})
	for _, op := range b.meta {
		m.meta[op.name] = op.value
	}
	return nil
}

func (m *memEngine) Meta(name string) ([]byte, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, false, ErrClosed
	}
	v, ok := m.meta[name]
	return slices.Clone(v), ok, nil
}

func (m *memEngine) ApproximateCount() (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	return int64(len(m.data)), nil
}

func (m *memEngine) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.data, m.meta, m.sorted = nil, nil, nil
	return nil
}
