package state

import (
	"container/list"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/syndtr/goleveldb/leveldb/comparer"
	"github.com/syndtr/goleveldb/leveldb/memdb"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// KeyValue is a typed key-value store. Stores are used by one task at a
// time; reads from other goroutines (interactive queries) see what has been
// flushed to the engine.
type KeyValue[K, V any] interface {
	// Name returns the store's name.
	Name() string
	// Get returns the value of key.
	Get(key K) (V, bool, error)
	// Put sets key to value.
	Put(key K, value V) error
	// Delete removes key.
	Delete(key K) error
	// Range calls fn for keys in [from, to) in the byte order of their
	// encoding, until fn returns false. For ordered ranges, use a key codec
	// whose byte order matches the key order (strings do; Int64 does for
	// non-negative numbers).
	Range(from, to K, fn func(key K, value V) bool) error
	// All calls fn for every key, in the byte order of their encoding.
	All(fn func(key K, value V) bool) error
	// ApproximateCount estimates the number of keys.
	ApproximateCount() (int64, error)
}

// Change is an update of a key as the cache forwards it: the new value and
// the value forwarded before for the same key. Deleted marks a delete.
type Change[V any] struct {
	New, Old V
	HasOld   bool
	Deleted  bool
	// Timestamp is the time given with the latest write (PutAt, DeleteAt),
	// zero for Put and Delete.
	Timestamp time.Time
}

// Options configure a store's layers. The zero value takes the defaults.
type Options struct {
	// Cache is the memory budget the store's record cache charges, shared
	// with the other stores of the instance (kappa.CacheBytes sets it). The
	// cache deduplicates updates per key between commits. nil gives the
	// store a budget of DefaultCacheBytes of its own.
	Cache *Cache
	// CacheSize, when positive, also caps the entries the store's cache
	// holds. A negative value turns deduplication off for this store:
	// every update is forwarded and logged at once; writes to the engine
	// are still batched, and entries stay cached until their batch is
	// written.
	CacheSize int
	// OnForwardError is called, on the goroutine that flushes, when
	// forwarding a flushed change downstream fails: the forward function
	// returned err or panicked (err is then a *PanicError). key and value
	// are the change's encoded key and new value (nil for a delete); the
	// change is logged and batched for the engine either way, so the
	// store holds it. It is also called, with a nil value, when the value
	// codec cannot encode a change: that change is undone, neither stored
	// nor logged. Returning nil goes on with the next change (the failure
	// was handled, for example dead-lettered); returning an error stops
	// the flush, and the changes not flushed yet stay dirty for the next
	// one. nil returns err: the flush stops at the first failure.
	OnForwardError func(key, value []byte, err error) error
}

// PanicError is a panic recovered from a store's forward function while
// it flushed a change.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Logger receives a store's changelog records: the encoded key, and the
// encoded value or nil for a delete. It returns nothing; delivery errors
// surface at commit.
type Logger func(key, value []byte)

// entry is one cached key.
type entry[K, V any] struct {
	key       K
	kb        string // encoded key
	value     V
	deleted   bool  // value is a pending delete
	dirty     bool  // changed since the last flush: to forward and log
	unwritten bool  // flushed into the batch, not yet in the engine
	inEngine  bool  // the engine holds the key
	ref       bool  // used since the eviction hand last passed (second chance)
	indexed   bool  // in KV.changed
	size      int64 // bytes charged to the cache budget
	ts        time.Time
	// the value last forwarded for this key, for Change.Old
	old    V
	hasOld bool
	elem   *list.Element
}

// KV is the store implementation behind KeyValue: a typed, caching,
// changelogging layer over an Engine.
type KV[K, V any] struct {
	name    string
	engine  Engine
	kc      codec.Codec[K]
	vc      codec.Codec[V]
	log     Logger
	forward func(key K, c Change[V]) error
	onErr   func(key, value []byte, err error) error
	budget  *Cache
	limit   int  // entry cap, 0 for none
	dedupe  bool // updates wait in the cache for a flush

	cache map[string]*entry[K, V]
	// lru orders the entries by insertion, front newest. Hits only mark
	// an entry (ref); eviction gives marked entries a second chance by
	// moving them to the front (the CLOCK approximation of LRU), which
	// keeps list surgery off the per-record path.
	lru *list.List
	// last is the entry of the latest lookup: an aggregation reads a key
	// and writes it back at once, and the write finds it without hashing.
	last  *entry[K, V]
	bytes int64 // charged to budget
	// average encoded value size, the estimate for values not encoded yet
	avgValue int64
	// dirty holds the entries made dirty since the last flush, in order
	dirty []*entry[K, V]
	// changed indexes, in key order, the encoded keys of the entries the
	// engine does not have yet (dirty or unwritten), so that a range scan
	// merges only the changes in its range instead of walking the cache:
	// window stores scan once per record. It is built by the first scan
	// and kept from then on, so stores that are never scanned (most
	// aggregations) do not pay for it.
	changed *memdb.DB
	batch   Batch // engine writes not yet applied
	// entries whose changes are in batch
	pending []*entry[K, V]
	metrics Metrics
}

// Metrics are a store's counters, updated by the task that owns the store
// and readable from any goroutine. The metrics endpoint exports them.
type Metrics struct {
	Gets        atomic.Int64 // Get calls
	CacheHits   atomic.Int64 // Get and write lookups answered by the cache
	Puts        atomic.Int64 // Put and PutAt calls
	Deletes     atomic.Int64 // Delete and DeleteAt calls
	Flushed     atomic.Int64 // changes forwarded and logged by cache flushes
	Evicted     atomic.Int64 // entries evicted from a full cache
	Batches     atomic.Int64 // write batches applied to the engine
	BatchedOps  atomic.Int64 // puts and deletes in those batches
	WriteNanos  atomic.Int64 // time spent applying batches
	EngineReads atomic.Int64 // lookups that went to the engine
}

// Metrics returns the store's counters.
func (s *KV[K, V]) Metrics() *Metrics { return &s.metrics }

// writeBatch applies b to e, counting it, and empties b. name is the
// store's, for the error.
func (m *Metrics) writeBatch(name string, e Engine, b *Batch) error {
	if b.Len() == 0 && len(b.meta) == 0 {
		return nil
	}
	start := time.Now()
	m.Batches.Add(1)
	m.BatchedOps.Add(int64(b.Len()))
	err := e.Write(b)
	m.WriteNanos.Add(int64(time.Since(start)))
	b.Reset()
	if err != nil {
		return fmt.Errorf("state: store %q: %w", name, err)
	}
	return nil
}

// NewKV layers a typed store over engine. log may be nil for a store
// without a changelog; forward, when set, receives every flushed change
// (the DSL uses it to emit aggregation results downstream).
func NewKV[K, V any](name string, engine Engine, kc codec.Codec[K], vc codec.Codec[V], o Options,
	log Logger, forward func(key K, c Change[V]) error,
) *KV[K, V] {
	s := &KV[K, V]{name: name, engine: engine, kc: kc, vc: vc, log: log, forward: forward,
		onErr: o.OnForwardError, budget: o.Cache, limit: max(o.CacheSize, 0), avgValue: 8,
		cache: make(map[string]*entry[K, V]), lru: list.New()}
	if s.budget == nil {
		s.budget = NewCache(DefaultCacheBytes)
	}
	s.dedupe = o.CacheSize >= 0 && s.budget.enabled()
	if s.dedupe {
		s.budget.stores.Add(1)
	}
	return s
}

// Name implements KeyValue.
func (s *KV[K, V]) Name() string { return s.name }

// Engine returns the store's engine.
func (s *KV[K, V]) Engine() Engine { return s.engine }

func (s *KV[K, V]) encodeKey(key K) ([]byte, error) {
	kb, err := s.kc.Encode(key)
	if err != nil {
		return nil, fmt.Errorf("state: store %q: %w", s.name, err)
	}
	return kb, nil
}

// lookup returns the cached entry for kb, loading it from the engine.
func (s *KV[K, V]) lookup(key K, kb []byte) (*entry[K, V], error) {
	if e := s.cached(kb); e != nil {
		return e, nil
	}
	s.metrics.EngineReads.Add(1)
	raw, ok, err := s.engine.Get(kb)
	if err != nil {
		return nil, fmt.Errorf("state: store %q: %w", s.name, err)
	}
	e := &entry[K, V]{key: key, kb: string(kb), deleted: !ok, inEngine: ok}
	vlen := s.avgValue
	if ok {
		if e.value, err = s.vc.Decode(raw); err != nil {
			return nil, fmt.Errorf("state: store %q: %w", s.name, err)
		}
		e.old, e.hasOld = e.value, true
		vlen = int64(len(raw))
	}
	s.add(e, vlen)
	return e, nil
}

// blind returns the cached entry for kb, or a new one without reading
// the engine: a put to a store that forwards nothing needs no old value,
// and a window store's puts are mostly to keys never written before
// (joins key each record by its time and offset), for which the read
// would find nothing at the price of a LevelDB lookup. The entry does not
// know whether the engine has the key (ApproximateCount counts it as new).
func (s *KV[K, V]) blind(key K, kb []byte) *entry[K, V] {
	if e := s.cached(kb); e != nil {
		return e
	}
	e := &entry[K, V]{key: key, kb: string(kb), deleted: true}
	s.add(e, s.avgValue)
	return e
}

// cached returns the cached entry for kb, or nil.
func (s *KV[K, V]) cached(kb []byte) *entry[K, V] {
	e := s.last
	if e == nil || e.kb != string(kb) {
		if e = s.cache[string(kb)]; e == nil {
			return nil
		}
		s.last = e
	}
	s.metrics.CacheHits.Add(1)
	e.ref = true
	return e
}

// add caches a new entry whose encoded value takes about vlen bytes.
func (s *KV[K, V]) add(e *entry[K, V], vlen int64) {
	e.elem = s.lru.PushFront(e)
	s.cache[e.kb] = e
	s.last = e
	s.charge(e, int64(len(e.kb))+vlen+entryOverhead)
}

// charge sets the bytes e counts against the budget.
func (s *KV[K, V]) charge(e *entry[K, V], size int64) {
	if !s.dedupe || size == e.size {
		return
	}
	s.bytes += size - e.size
	s.budget.used.Add(size - e.size)
	e.size = size
}

// Get implements KeyValue.
func (s *KV[K, V]) Get(key K) (V, bool, error) {
	s.metrics.Gets.Add(1)
	var zero V
	kb, err := s.encodeKey(key)
	if err != nil {
		return zero, false, err
	}
	e, err := s.lookup(key, kb)
	if err != nil || e.deleted {
		return zero, false, err
	}
	v := e.value
	return v, true, s.maybeEvict()
}

// Forwarded returns key's value as the store last forwarded it
// downstream: what a table's readers have been told, which lags the
// current value (Get) by the changes still in the cache. A table-table
// join reads the other side this way, so that the joined rows it emits
// follow one consistent history even when both sides changed a key
// between two flushes. A store that forwards nothing returns the current
// value.
func (s *KV[K, V]) Forwarded(key K) (V, bool, error) {
	if s.forward == nil {
		return s.Get(key)
	}
	var zero V
	kb, err := s.encodeKey(key)
	if err != nil {
		return zero, false, err
	}
	e, err := s.lookup(key, kb)
	if err != nil || !e.hasOld {
		return zero, false, err
	}
	// No eviction here, unlike Get: the join calls Forwarded while the
	// other side is in the middle of forwarding a change, and an eviction
	// would forward this store's changes through the join re-entrantly,
	// joined with a row that is about to be replaced. The next write
	// evicts instead.
	return e.old, true, nil
}

// Put implements KeyValue.
func (s *KV[K, V]) Put(key K, value V) error { return s.write(key, value, false, time.Time{}) }

// Delete implements KeyValue.
func (s *KV[K, V]) Delete(key K) error {
	var zero V
	return s.write(key, zero, true, time.Time{})
}

// PutAt is Put with the record time forwarded with the change.
func (s *KV[K, V]) PutAt(key K, value V, ts time.Time) error { return s.write(key, value, false, ts) }

// DeleteAt is Delete with the record time forwarded with the change.
func (s *KV[K, V]) DeleteAt(key K, ts time.Time) error {
	var zero V
	return s.write(key, zero, true, ts)
}

func (s *KV[K, V]) write(key K, value V, del bool, ts time.Time) error {
	if del {
		s.metrics.Deletes.Add(1)
	} else {
		s.metrics.Puts.Add(1)
	}
	kb, err := s.encodeKey(key)
	if err != nil {
		return err
	}
	var e *entry[K, V]
	if !del && s.forward == nil {
		e = s.blind(key, kb)
	} else if e, err = s.lookup(key, kb); err != nil {
		return err
	}
	if del && e.deleted && !e.dirty {
		return nil // deleting a missing key changes nothing
	}
	e.key, e.value, e.deleted, e.ts = key, value, del, ts
	s.index(e)
	if !s.dedupe {
		e.dirty = true
		_, err := s.flushEntries([]*entry[K, V]{e})
		return err
	}
	if !e.dirty {
		e.dirty = true
		s.dirty = append(s.dirty, e)
	}
	return s.maybeEvict()
}

// index adds e to the changed index, once there is one.
func (s *KV[K, V]) index(e *entry[K, V]) {
	if e.indexed || s.changed == nil {
		return
	}
	s.changed.Put([]byte(e.kb), nil) // never fails
	e.indexed = true
}

// unindex removes e from the changed index.
func (s *KV[K, V]) unindex(e *entry[K, V]) {
	if !e.indexed {
		return
	}
	s.changed.Delete([]byte(e.kb)) // never fails
	e.indexed = false
}

// maybeEvict evicts when the store is over its entry cap or the shared
// budget is exhausted: a tenth of the entries under the cap, or down to
// the budget's target, so that engine writes stay batched.
func (s *KV[K, V]) maybeEvict() error {
	switch {
	case !s.dedupe:
		return nil
	case s.limit > 0 && len(s.cache) > s.limit:
		return s.evict(max(1, s.limit/10), 0)
	case s.budget.over():
		return s.evict(max(1, len(s.cache)/10), s.budget.overTarget())
	}
	return nil
}

// evict flushes and drops at least n of the store's least recently used
// entries, and more until they free want bytes. Entries marked as used
// since the hand last passed get a second chance.
func (s *KV[K, V]) evict(n int, want int64) error {
	victims := make([]*entry[K, V], 0, n)
	var freed int64
	for len(victims) < n || freed < want {
		el := s.lru.Back()
		if el == nil {
			break
		}
		e := el.Value.(*entry[K, V])
		if e.ref {
			e.ref = false
			s.lru.MoveToFront(el)
			continue
		}
		s.lru.Remove(el)
		victims = append(victims, e)
		freed += e.size
	}
	if _, err := s.flushEntries(victims); err != nil {
		for _, e := range victims {
			e.elem = s.lru.PushBack(e) // still cached: the task fails on err
		}
		return err
	}
	if err := s.writeBatch(); err != nil {
		return err
	}
	s.metrics.Evicted.Add(int64(len(victims)))
	for _, e := range victims {
		s.drop(e)
	}
	return nil
}

// drop removes e from the cache.
func (s *KV[K, V]) drop(e *entry[K, V]) {
	s.lru.Remove(e.elem)
	delete(s.cache, e.kb)
	s.unindex(e)
	s.charge(e, 0)
	if s.last == e {
		s.last = nil
	}
}

// flushEntries forwards, logs and batches the dirty entries among es. It
// returns how many of es it went through: all of them, unless a failure
// the store's OnForwardError did not handle stopped it, in which case the
// entries from that count on are left as they were.
func (s *KV[K, V]) flushEntries(es []*entry[K, V]) (int, error) {
	for i, e := range es {
		if !e.dirty {
			continue
		}
		kb := []byte(e.kb)
		var vb []byte
		if !e.deleted {
			var err error
			if vb, err = s.vc.Encode(e.value); err != nil {
				err = fmt.Errorf("state: store %q: %w", s.name, err)
				if s.onErr == nil {
					return i, err
				}
				// The value can be neither stored nor logged: the change
				// is reported (key only) and undone, so the cache agrees
				// with the engine and the changelog again.
				if err := s.onErr(kb, nil, err); err != nil {
					return i, err
				}
				e.dirty = false
				e.value, e.deleted = e.old, !e.hasOld
				continue
			}
		}
		e.dirty = false
		s.metrics.Flushed.Add(1)
		if e.deleted {
			s.batch.Delete(kb)
		} else {
			s.batch.Put(kb, vb)
			s.avgValue += (int64(len(vb)) - s.avgValue) / 16
			s.charge(e, int64(len(kb)+len(vb))+entryOverhead)
		}
		if s.log != nil {
			s.log(kb, vb)
		}
		if !e.unwritten {
			s.pending = append(s.pending, e)
		}
		e.unwritten = true
		var err error
		if s.forward != nil {
			c := Change[V]{New: e.value, Old: e.old, HasOld: e.hasOld, Deleted: e.deleted, Timestamp: e.ts}
			err = s.forwardChange(e.key, c)
		}
		// The store holds the new value whether or not downstream took
		// it, so the next change of the key reports it as the old one.
		e.old, e.hasOld = e.value, !e.deleted
		if err != nil {
			if s.onErr != nil {
				err = s.onErr(kb, vb, err)
			}
			if err != nil {
				return i + 1, err
			}
		}
	}
	return len(es), nil
}

// forwardChange calls the store's forward function, turning a panic into
// a *PanicError so that one failing change does not abandon the flush of
// the others half done.
func (s *KV[K, V]) forwardChange(key K, c Change[V]) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	return s.forward(key, c)
}

func (s *KV[K, V]) writeBatch() error {
	if err := s.metrics.writeBatch(s.name, s.engine, &s.batch); err != nil {
		return err
	}
	for _, e := range s.pending {
		e.unwritten, e.inEngine = false, !e.deleted
		if !e.dirty {
			s.unindex(e)
		}
	}
	if s.changed != nil && s.changed.Len() == 0 {
		s.changed.Reset() // the index's memory grows until reset
	}
	clear(s.pending)
	s.pending = s.pending[:0]
	return nil
}

// Flush forwards and logs every dirty entry, in the order they became
// dirty. The engine write waits for Commit, so it can carry the changelog
// offset the data corresponds to. A forwarding failure that the store's
// OnForwardError does not handle stops the flush; the entries not flushed
// yet stay dirty, in order, for the next Flush.
func (s *KV[K, V]) Flush() error {
	n, err := s.flushEntries(s.dirty)
	rest := copy(s.dirty, s.dirty[n:])
	clear(s.dirty[rest:])
	s.dirty = s.dirty[:rest]
	return err
}

// Commit writes the flushed data to the engine in one batch, with meta
// (the changelog position) when given. Without deduplication the cache is
// dropped here, since it only held entries until their engine write. A
// store holding more than its fair share of an exhausted budget trims
// itself to it.
func (s *KV[K, V]) Commit(meta map[string][]byte) error {
	for k, v := range meta {
		s.batch.SetMeta(k, v)
	}
	if err := s.writeBatch(); err != nil {
		return err
	}
	if !s.dedupe {
		s.reset()
		return nil
	}
	if excess := s.budget.excess(s.bytes); excess > 0 {
		return s.evict(0, excess)
	}
	return nil
}

// reset drops every cached entry.
func (s *KV[K, V]) reset() {
	if s.changed != nil {
		s.changed.Reset()
	}
	clear(s.cache)
	s.lru.Init()
	s.last = nil
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	s.budget.used.Add(-s.bytes)
	s.bytes = 0
}

// Range implements KeyValue.
func (s *KV[K, V]) Range(from, to K, fn func(K, V) bool) error {
	start, err := s.encodeKey(from)
	if err != nil {
		return err
	}
	end, err := s.encodeKey(to)
	if err != nil {
		return err
	}
	return s.scan(start, end, fn)
}

// All implements KeyValue.
func (s *KV[K, V]) All(fn func(K, V) bool) error { return s.scan(nil, nil, fn) }

// ApproximateCount implements KeyValue: the engine's count, plus keys
// created and minus keys deleted in the cache since.
func (s *KV[K, V]) ApproximateCount() (int64, error) {
	n, err := s.engine.ApproximateCount()
	if err != nil {
		return 0, err
	}
	for _, e := range s.cache {
		if !e.dirty && !e.unwritten {
			continue
		}
		switch {
		case e.deleted && e.inEngine:
			n--
		case !e.deleted && !e.inEngine:
			n++
		}
	}
	return n, nil
}

// scan merges the engine's entries in [start, end) with the cache's
// changes that have not reached the engine yet, in key order. The first
// scan builds the index of those changes, which later writes keep up.
func (s *KV[K, V]) scan(start, end []byte, fn func(K, V) bool) error {
	if s.changed == nil {
		s.changed = memdb.New(comparer.DefaultComparer, 64<<10)
		for _, e := range s.cache {
			if e.dirty || e.unwritten {
				s.index(e)
			}
		}
	}
	return s.merge(start, end, s.indexed(start, end), fn)
}

// peekScan is scan for an interactive query, which must leave the store
// as it found it: without the index, it collects the cache's changes in
// [start, end) itself.
func (s *KV[K, V]) peekScan(start, end []byte, fn func(K, V) bool) error {
	if s.changed != nil {
		return s.merge(start, end, s.indexed(start, end), fn)
	}
	var overlay []*entry[K, V]
	for _, e := range s.cache {
		if (e.dirty || e.unwritten) && (start == nil || e.kb >= string(start)) && (end == nil || e.kb < string(end)) {
			overlay = append(overlay, e)
		}
	}
	slices.SortFunc(overlay, func(a, b *entry[K, V]) int { return strings.Compare(a.kb, b.kb) })
	return s.merge(start, end, overlay, fn)
}

// indexed returns the cache's changes in [start, end), from the index.
func (s *KV[K, V]) indexed(start, end []byte) []*entry[K, V] {
	var overlay []*entry[K, V]
	if s.changed.Len() > 0 {
		it := s.changed.NewIterator(&util.Range{Start: start, Limit: end})
		for it.Next() {
			if e, ok := s.cache[string(it.Key())]; ok {
				overlay = append(overlay, e)
			}
		}
		it.Release()
	}
	return overlay
}

// merge calls fn for the engine's entries in [start, end) and the
// overlay's (cached changes in key order), the overlay's winning.
func (s *KV[K, V]) merge(start, end []byte, overlay []*entry[K, V], fn func(K, V) bool) error {
	stopped := false
	// emit sends overlay entries before key (all when key is nil).
	emit := func(key []byte) {
		for len(overlay) > 0 && !stopped && (key == nil || overlay[0].kb < string(key)) {
			e := overlay[0]
			overlay = overlay[1:]
			if !e.deleted && !fn(e.key, e.value) {
				stopped = true
			}
		}
	}
	var decodeErr error
	err := s.engine.Range(start, end, func(kb, vb []byte) bool {
		emit(kb)
		if stopped {
			return false
		}
		if len(overlay) > 0 && overlay[0].kb == string(kb) {
			e := overlay[0]
			overlay = overlay[1:]
			if !e.deleted && !fn(e.key, e.value) {
				stopped = true
			}
			return !stopped
		}
		k, err := s.kc.Decode(kb)
		if err == nil {
			var v V
			if v, err = s.vc.Decode(vb); err == nil {
				stopped = !fn(k, v)
				return !stopped
			}
		}
		decodeErr = fmt.Errorf("state: store %q: %w", s.name, err)
		return false
	})
	if err != nil {
		return fmt.Errorf("state: store %q: %w", s.name, err)
	}
	if decodeErr != nil {
		return decodeErr
	}
	emit(nil)
	return nil
}

// Close drops the cache without flushing and closes the engine. Flush and
// Commit first to keep changes.
func (s *KV[K, V]) Close() error {
	s.reset()
	if s.dedupe {
		s.dedupe = false
		s.budget.stores.Add(-1)
	}
	return s.engine.Close()
}
