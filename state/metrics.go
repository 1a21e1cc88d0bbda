package state

// Metered is implemented by the typed stores (KV, Windows, Records): the
// runtime reads their counters for the metrics endpoint.
type Metered interface {
	Metrics() *Metrics
}

// CacheStats are a store's record-cache counters at one moment.
type CacheStats struct {
	// Hits counts the lookups (Get, and the read before a write) that the
	// cache answered.
	Hits int64
	// Misses counts the lookups that the cache could not answer and that
	// read the engine. A write to a key the cache does not hold, in a
	// store that does not need its old value, reads nothing and is not
	// counted.
	Misses int64
	// Evictions counts the entries dropped from a full cache (the dirty
	// ones flushed first).
	Evictions int64
}

// Cache returns the store's record-cache counters. It may be called from
// any goroutine.
func (m *Metrics) Cache() CacheStats {
	return CacheStats{Hits: m.CacheHits.Load(), Misses: m.EngineReads.Load(), Evictions: m.Evicted.Load()}
}

// Add adds o to s.
func (s *CacheStats) Add(o CacheStats) {
	s.Hits += o.Hits
	s.Misses += o.Misses
	s.Evictions += o.Evictions
}
