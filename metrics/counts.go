package metrics

import (
	"sync"
	"sync/atomic"
)

// Counts are counters by a key (a topic, a node, a reason), for the few
// keys one task meets. Adding to a key seen before takes no lock and
// allocates nothing: the keys are scanned in a small copy-on-write list,
// which suits a handful of keys, not thousands. It is safe for concurrent
// use; readers may call Each or Snapshot at any time. The zero value is
// ready to use.
type Counts struct {
	mu   sync.Mutex // serializes adding keys
	list atomic.Pointer[[]*keyCount]
}

type keyCount struct {
	key string
	n   atomic.Int64
}

// Add adds n to key's counter.
func (c *Counts) Add(key string, n int64) { c.Counter(key).Add(n) }

// Counter returns key's counter, creating it at 0. Callers on a hot path
// keep it instead of looking it up each time.
func (c *Counts) Counter(key string) *atomic.Int64 {
	if l := c.list.Load(); l != nil {
		for _, e := range *l {
			if e.key == key {
				return &e.n
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var old []*keyCount
	if l := c.list.Load(); l != nil {
		old = *l
		for _, e := range old {
			if e.key == key {
				return &e.n
			}
		}
	}
	e := &keyCount{key: key}
	next := make([]*keyCount, len(old), len(old)+1)
	copy(next, old)
	next = append(next, e)
	c.list.Store(&next)
	return &e.n
}

// Each calls fn with every key and its count, in the order the keys were
// first added.
func (c *Counts) Each(fn func(key string, n int64)) {
	if l := c.list.Load(); l != nil {
		for _, e := range *l {
			fn(e.key, e.n.Load())
		}
	}
}

// Snapshot returns the counts by key; nil when there is none.
func (c *Counts) Snapshot() map[string]int64 {
	var m map[string]int64
	c.Each(func(k string, n int64) {
		if m == nil {
			m = make(map[string]int64)
		}
		m[k] = n
	})
	return m
}
