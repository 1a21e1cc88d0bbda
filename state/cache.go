package state

import (
	"sync/atomic"
)

// DefaultCacheBytes is the default memory budget of an instance's record
// caches: 32 MiB, shared by all the stores of all its tasks.
//
// Kafka Streams' default is 10 MB (statestore.cache.max.bytes), but it
// counts only the serialized key and value and a few fields of each entry,
// not the JVM objects behind it (by our estimate several times that; not
// measured here). Kappa counts what an entry costs on the Go heap (see
// entryOverhead, which is measured), so its default is larger: 32 MiB holds
// some 130,000 entries of 16-byte keys and 8-byte values.
const DefaultCacheBytes = 32 << 20

// entryOverhead is the estimated heap cost of a cached entry besides its
// encoded key and value: the map slot, the entry struct (typed key, value
// and last-forwarded value, flags, timestamp) and the LRU list element.
// TestEntryOverhead checks it against the measured heap growth.
const entryOverhead = 224

// Cache is the memory budget of record caches, shared by the stores an
// instance runs, whatever task or worker goroutine they belong to. A store
// charges each cached entry's estimated size (encoded key and value plus
// entryOverhead) to it. When a write takes the total over the budget, the
// writing store evicts its own least recently used entries (flushing the
// dirty ones), as Kafka Streams' thread cache does; at each commit, a store
// holding more than its fair share of an exhausted budget trims itself, so
// idle stores cannot hold the budget forever.
//
// A budget of 0 turns caching off: every update is forwarded and logged at
// once. A Cache is safe for concurrent use.
type Cache struct {
	max    int64
	used   atomic.Int64
	stores atomic.Int64 // stores charging to the budget
}

// NewCache returns a budget of maxBytes. maxBytes ≤ 0 turns caching off.
func NewCache(maxBytes int64) *Cache {
	return &Cache{max: max(maxBytes, 0)}
}

// MaxBytes returns the budget.
func (c *Cache) MaxBytes() int64 { return c.max }

// UsedBytes returns the estimated bytes the stores' caches hold now.
func (c *Cache) UsedBytes() int64 { return c.used.Load() }

// enabled reports whether stores deduplicate through the cache.
func (c *Cache) enabled() bool { return c.max > 0 }

// over reports whether the stores hold more than the budget.
func (c *Cache) over() bool { return c.used.Load() > c.max }

// target is what eviction brings the usage down to: nine tenths of the
// budget, so that writes are not evicted one entry at a time.
func (c *Cache) target() int64 { return c.max - c.max/10 }

// overTarget is how far the usage is above target: what a store whose
// write exhausted the budget frees.
func (c *Cache) overTarget() int64 { return c.used.Load() - c.target() }

// excess is what a store holding held bytes frees at a commit: its bytes
// beyond its fair share, once the budget is past its target, so that idle
// stores cannot hold the budget forever.
func (c *Cache) excess(held int64) int64 {
	if c.overTarget() <= 0 {
		return 0
	}
	return max(held-c.max/max(c.stores.Load(), 1), 0)
}
