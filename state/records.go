package state

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"slices"

	"github.com/kappa-streams/kappa/codec"
)

// Records is a store of single records, each kept under its key, its time
// and a sequence number that tells apart records of one key and time (the
// record's offset): the store of each side of a stream-stream join, which
// Kafka Streams builds from a window store that retains duplicates. The
// data lives in a Segmented engine, in the window store format (T1 the
// time, T2 the sequence number), so it expires by time, and each write is
// logged to the changelog at once.
//
// A join fetches the other side's records of one key over a time range
// for every record it processes, so Records keeps its records in memory
// as well, indexed by key: always until the batch holding them is written
// to the engine at commit, and after that while the instance's cache
// budget allows, the oldest first out. Records remembers the latest time
// it has dropped from memory, and the keys it has dropped, in a Bloom
// filter per interval of time: a fetch is answered from memory alone when
// it starts after every time dropped, or when no record of its key and
// range was dropped. Only the others read the engine, and those reaching
// back before the store was opened. So the engine is written at commit,
// and read only for records that had to leave memory: the matches of a
// join whose window holds more than the cache budget, and those restored
// after a restart.
//
// A Records is used by one task goroutine.
type Records[K, V any] struct {
	name   string
	seg    *Segmented
	kc     codec.Codec[K]
	vc     codec.Codec[V]
	log    Logger
	budget *Cache
	limit  int  // cap on the records kept in memory, 0 for none
	keep   bool // keep written records in memory while the budget allows

	byKey map[string]*recordList
	// queue holds the records in memory in the order they came in, from
	// head: the order they leave in.
	queue []queuedRecord
	head  int
	// covered is the latest time dropped from memory: every record of a
	// later time is in memory. It starts at opened, the latest time the
	// engine holds when the store is first used.
	covered, opened int64
	started         bool
	// dropped holds, per interval of time, a filter of the keys of records
	// dropped from memory but kept in the engine, so that a fetch of a key
	// none of whose records left memory does not read the engine.
	dropped map[int64]*keyFilter
	seed    maphash.Seed
	pruned  int64 // intervals before this one have no filter
	bytes   int64 // charged to budget
	count   int   // records in memory
	batch   Batch // engine writes not yet applied
	metrics Metrics
}

// recordList is one key's records in memory, by time and sequence number.
type recordList struct {
	key  string // encoded
	recs []memRecord
}

// memRecord is a record in memory. Its value is kept encoded, as the codec
// returned it and as the engine has it: readers decode their own copy,
// and the budget is charged what is held. (The join's codec encodes into a
// buffer of its own, so a Bytes value, which decodes to a slice of the
// fetch it came in, does not keep that whole fetch buffer alive.)
type memRecord struct {
	t, seq int64
	vb     []byte
	size   int64 // charged to the budget
}

type queuedRecord struct {
	list   *recordList
	t, seq int64
}

// recordOverhead is the estimated heap cost of a record in memory besides
// its encoded key and value: its share of the index map, the list, the
// record in the list and in the queue. TestRecordOverhead checks it
// against the measured heap growth.
const recordOverhead = 120

// NewRecords layers a typed record store over a segmented engine. o.Cache
// is the memory budget it shares with the instance's other stores;
// o.CacheSize caps the records it keeps in memory, and a negative
// o.CacheSize (or a disabled budget) keeps them only until they are
// written to the engine.
func NewRecords[K, V any](name string, seg *Segmented, kc codec.Codec[K], vc codec.Codec[V], o Options, log Logger) *Records[K, V] {
	r := &Records[K, V]{name: name, seg: seg, kc: kc, vc: vc, log: log, budget: o.Cache,
		limit: max(o.CacheSize, 0), byKey: make(map[string]*recordList),
		dropped: make(map[int64]*keyFilter), seed: maphash.MakeSeed()}
	if r.budget == nil {
		r.budget = NewCache(DefaultCacheBytes)
	}
	r.keep = o.CacheSize >= 0 && r.budget.enabled()
	if r.keep {
		r.budget.stores.Add(1)
	}
	return r
}

// Name returns the store's name.
func (r *Records[K, V]) Name() string { return r.name }

// Metrics returns the store's counters.
func (r *Records[K, V]) Metrics() *Metrics { return &r.metrics }

// start sets covered once the engine holds its restored data, at the
// store's first use.
func (r *Records[K, V]) start() {
	if !r.started {
		r.started = true
		r.opened = r.seg.ObservedTime()
		r.covered, r.pruned = r.opened, r.seg.segmentOf(r.opened)
	}
}

func (r *Records[K, V]) encodeKey(key K) ([]byte, error) {
	kb, err := r.kc.Encode(key)
	if err != nil {
		return nil, fmt.Errorf("state: store %q: %w", r.name, err)
	}
	return kb, nil
}

// find returns where the record (t, seq) is or would be in recs.
func find(recs []memRecord, t, seq int64) (int, bool) {
	return slices.BinarySearchFunc(recs, [2]int64{t, seq}, func(m memRecord, at [2]int64) int {
		if c := cmp.Compare(m.t, at[0]); c != 0 {
			return c
		}
		return cmp.Compare(m.seq, at[1])
	})
}

// Put writes the record of key at time t with sequence number seq,
// replacing the one written before under the same three, if any.
func (r *Records[K, V]) Put(key K, t, seq int64, v V) error {
	r.metrics.Puts.Add(1)
	r.start()
	kb, err := r.encodeKey(key)
	if err != nil {
		return err
	}
	vb, err := r.vc.Encode(v)
	if err != nil {
		return fmt.Errorf("state: store %q: %w", r.name, err)
	}
	// The changelog keeps the key until the record is produced: it gets a
	// buffer of its own.
	full := AppendWindowKey(make([]byte, 0, len(kb)+windowKeyExtra), kb, t, seq)
	r.batch.Put(full, vb)
	if r.log != nil {
		r.log(full, vb)
		r.metrics.Flushed.Add(1)
	}
	size := int64(len(kb)+len(vb)) + recordOverhead
	l := r.byKey[string(kb)]
	if l == nil {
		l = &recordList{key: string(kb)}
		r.byKey[l.key] = l
	}
	i, found := find(l.recs, t, seq)
	if found {
		r.charge(size - l.recs[i].size)
		l.recs[i].vb, l.recs[i].size = vb, size
		return nil
	}
	l.recs = slices.Insert(l.recs, i, memRecord{t: t, seq: seq, vb: vb, size: size})
	r.queue = append(r.queue, queuedRecord{list: l, t: t, seq: seq})
	r.count++
	r.charge(size)
	return r.maybeEvict()
}

// windowKeyExtra bounds what a window key adds to the record key: its
// length and two times.
const windowKeyExtra = binary.MaxVarintLen64 + 16

// charge adds n bytes to what the store holds in memory.
func (r *Records[K, V]) charge(n int64) {
	r.bytes += n
	if r.keep {
		r.budget.used.Add(n)
	}
}

// maybeEvict drops the oldest records from memory when the store holds
// more than its cap or the shared budget is exhausted: down to nine tenths
// of the cap, or to the budget's target, so that drops come in batches.
func (r *Records[K, V]) maybeEvict() error {
	switch {
	case !r.keep:
		return nil
	case r.limit > 0 && r.count > r.limit:
		return r.evict(r.count-r.limit+r.limit/10, 0)
	case r.budget.over():
		return r.evict(0, r.budget.overTarget())
	}
	return nil
}

// evict drops at least n of the oldest records from memory, and more
// until they free want bytes. Their batch is written to the engine first,
// so that every record stays in memory or in the engine.
func (r *Records[K, V]) evict(n int, want int64) error {
	if err := r.writeBatch(); err != nil {
		return err
	}
	var freed int64
	for (n > 0 || freed < want) && r.head < len(r.queue) {
		freed += r.dropHead(false)
		n--
	}
	return nil
}

// dropHead drops the oldest record in memory and returns its size. Unless
// it has expired, its key goes into the filter of its interval: the
// engine has it now, and memory does not.
func (r *Records[K, V]) dropHead(expired bool) int64 {
	q := r.queue[r.head]
	r.queue[r.head] = queuedRecord{}
	r.head++
	if r.head == len(r.queue) {
		r.queue, r.head = r.queue[:0], 0
	} else if r.head > 1024 && r.head > len(r.queue)/2 {
		n := copy(r.queue, r.queue[r.head:])
		clear(r.queue[n:])
		r.queue, r.head = r.queue[:n], 0
	}
	l := q.list
	if !expired {
		id := r.seg.segmentOf(q.t)
		f := r.dropped[id]
		if f == nil {
			f = &keyFilter{}
			r.dropped[id] = f
		}
		f.add(maphash.String(r.seed, l.key))
	}
	i, _ := find(l.recs, q.t, q.seq) // every queued record is in its list
	size := l.recs[i].size
	l.recs = slices.Delete(l.recs, i, i+1)
	if len(l.recs) == 0 {
		delete(r.byKey, l.key)
	}
	r.covered = max(r.covered, q.t)
	r.count--
	r.charge(-size)
	r.metrics.Evicted.Add(1)
	return size
}

func (r *Records[K, V]) writeBatch() error {
	return r.metrics.writeBatch(r.name, r.seg, &r.batch)
}

// Get returns the record of key at time t with sequence number seq.
func (r *Records[K, V]) Get(key K, t, seq int64) (V, bool, error) {
	r.metrics.Gets.Add(1)
	r.start()
	var zero V
	if t < r.seg.LiveFrom() {
		return zero, false, nil
	}
	kb, err := r.encodeKey(key)
	if err != nil {
		return zero, false, err
	}
	if l := r.byKey[string(kb)]; l != nil {
		if i, ok := find(l.recs, t, seq); ok {
			r.metrics.CacheHits.Add(1)
			return r.decode(l.recs[i].vb)
		}
	}
	if !r.inEngine(kb, t, t) {
		return zero, false, nil
	}
	r.metrics.EngineReads.Add(1)
	vb, ok, err := r.seg.Get(AppendWindowKey(nil, kb, t, seq))
	if err != nil || !ok {
		return zero, false, err
	}
	return r.decode(vb)
}

// decode decodes a stored value.
func (r *Records[K, V]) decode(vb []byte) (V, bool, error) {
	v, err := r.vc.Decode(vb)
	if err != nil {
		return v, false, fmt.Errorf("state: store %q: %w", r.name, err)
	}
	return v, true, nil
}

// Fetch calls fn for the records of key with times in [from, to], in time
// and sequence order, until fn returns false. fn must not write to the
// store.
func (r *Records[K, V]) Fetch(key K, from, to int64, fn func(t, seq int64, v V) bool) error {
	r.start()
	from = max(from, r.seg.LiveFrom())
	if from > to {
		return nil
	}
	kb, err := r.encodeKey(key)
	if err != nil {
		return err
	}
	var recs []memRecord
	if l := r.byKey[string(kb)]; l != nil {
		lo, _ := find(l.recs, from, math.MinInt64)
		hi := lo
		for hi < len(l.recs) && l.recs[hi].t <= to {
			hi++
		}
		recs = l.recs[lo:hi]
	}
	// emit decodes a value and calls fn: false stops the fetch.
	stopped := false
	var decodeErr error
	emit := func(t, seq int64, vb []byte) bool {
		v, _, err := r.decode(vb)
		if err != nil {
			decodeErr = err
			return false
		}
		stopped = !fn(t, seq, v)
		return !stopped
	}
	if !r.inEngine(kb, from, to) {
		r.metrics.CacheHits.Add(1)
		for _, m := range recs {
			if !emit(m.t, m.seq, m.vb) {
				break
			}
		}
		return decodeErr
	}
	// The engine has records of this range, and memory the newer values
	// of some of them.
	r.metrics.EngineReads.Add(1)
	end := AppendWindowKey(nil, kb, math.MaxInt64, math.MaxInt64)
	if to < math.MaxInt64 {
		end = AppendWindowKey(end[:0], kb, to+1, math.MinInt64)
	}
	err = r.seg.Range(AppendWindowKey(nil, kb, from, math.MinInt64), end, func(k, vb []byte) bool {
		_, t, seq, _ := ParseWindowKey(k)
		for len(recs) > 0 && (recs[0].t < t || recs[0].t == t && recs[0].seq < seq) {
			if !emit(recs[0].t, recs[0].seq, recs[0].vb) {
				return false
			}
			recs = recs[1:]
		}
		if len(recs) > 0 && recs[0].t == t && recs[0].seq == seq {
			vb = recs[0].vb
			recs = recs[1:]
		}
		return emit(t, seq, vb)
	})
	if err != nil {
		return fmt.Errorf("state: store %q: %w", r.name, err)
	}
	for _, m := range recs {
		if decodeErr != nil || stopped || !emit(m.t, m.seq, m.vb) {
			break
		}
	}
	return decodeErr
}

// inEngine reports whether records of kb with times in [from, to] may be
// in the engine and not in memory.
func (r *Records[K, V]) inEngine(kb []byte, from, to int64) bool {
	if from > r.covered {
		return false
	}
	if from <= r.opened {
		return true
	}
	h := maphash.Bytes(r.seed, kb)
	for id, last := r.seg.segmentOf(from), r.seg.segmentOf(min(to, r.covered)); id <= last; id++ {
		if f := r.dropped[id]; f != nil && f.has(h) {
			return true
		}
	}
	return false
}

// All calls fn for every live record, in the byte order of their encoded
// keys, until fn returns false.
func (r *Records[K, V]) All(fn func(key K, t, seq int64, v V) bool) error {
	r.start()
	live := r.seg.LiveFrom()
	type memEntry struct {
		full []byte
		m    *memRecord
	}
	var mem []memEntry
	for _, l := range r.byKey {
		for i := range l.recs {
			if m := &l.recs[i]; m.t >= live {
				mem = append(mem, memEntry{AppendWindowKey(nil, []byte(l.key), m.t, m.seq), m})
			}
		}
	}
	slices.SortFunc(mem, func(a, b memEntry) int { return bytes.Compare(a.full, b.full) })
	stopped := false
	var callErr error
	call := func(full, vb []byte) bool {
		kb, t, seq, _ := ParseWindowKey(full)
		k, err := r.kc.Decode(kb)
		if err != nil {
			callErr = fmt.Errorf("state: store %q: %w", r.name, err)
			return false
		}
		v, _, err := r.decode(vb)
		if err != nil {
			callErr = err
			return false
		}
		stopped = !fn(k, t, seq, v)
		return !stopped
	}
	err := r.seg.Range(nil, nil, func(full, vb []byte) bool {
		for len(mem) > 0 && bytes.Compare(mem[0].full, full) < 0 {
			if !call(mem[0].full, mem[0].m.vb) {
				return false
			}
			mem = mem[1:]
		}
		if len(mem) > 0 && bytes.Equal(mem[0].full, full) {
			vb = mem[0].m.vb
			mem = mem[1:]
		}
		return call(full, vb)
	})
	if err != nil {
		return fmt.Errorf("state: store %q: %w", r.name, err)
	}
	for _, e := range mem {
		if callErr != nil || stopped || !call(e.full, e.m.vb) {
			break
		}
	}
	return callErr
}

// Advance tells the store the stream time: the engine drops the segments
// that fall out of retention, and memory the oldest records that did.
func (r *Records[K, V]) Advance(streamTime int64) error {
	r.start()
	if err := r.seg.Advance(streamTime); err != nil {
		return err
	}
	live := r.seg.LiveFrom()
	for r.head < len(r.queue) && r.queue[r.head].t < live {
		r.dropHead(true)
	}
	// Filters of intervals wholly out of retention go.
	if first := r.seg.segmentOf(live); first > r.pruned {
		for id := range r.dropped {
			if id < first {
				delete(r.dropped, id)
			}
		}
		r.pruned = first
	}
	return nil
}

// Flush does nothing: every write is logged when it is made.
func (r *Records[K, V]) Flush() error { return nil }

// Commit writes the records written since the last commit to the engine,
// with meta (the changelog position). A store that keeps nothing in
// memory beyond that drops its records then; one holding more than its
// fair share of an exhausted budget trims itself to it.
func (r *Records[K, V]) Commit(meta map[string][]byte) error {
	for k, v := range meta {
		r.batch.SetMeta(k, v)
	}
	if err := r.writeBatch(); err != nil {
		return err
	}
	if !r.keep {
		for r.head < len(r.queue) {
			r.dropHead(false)
		}
		return nil
	}
	if excess := r.budget.excess(r.bytes); excess > 0 {
		return r.evict(0, excess)
	}
	return nil
}

// Close drops the records in memory without writing them and closes the
// engine. Commit first to keep changes.
func (r *Records[K, V]) Close() error {
	r.release()
	return r.seg.Close()
}

// release drops the records in memory and leaves the budget.
func (r *Records[K, V]) release() {
	r.charge(-r.bytes)
	clear(r.byKey)
	clear(r.dropped)
	r.queue, r.head, r.count = nil, 0, 0
	if r.keep {
		r.keep = false
		r.budget.stores.Add(-1)
	}
}

// String describes the store.
func (r *Records[K, V]) String() string { return fmt.Sprintf("record store %q", r.name) }
