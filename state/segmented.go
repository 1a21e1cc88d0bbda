package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
)

// SegmentedOptions configure a segmented engine.
type SegmentedOptions struct {
	// Dir holds one LevelDB per segment, in a subdirectory named after the
	// segment's start time, and one for metadata. Empty keeps everything
	// in memory.
	Dir string
	// Interval is the span of time, in ms, one segment covers. Required.
	Interval int64
	// Retention is how long, in ms behind the observed stream time, data
	// is kept. Data older than that is invisible at once, and a segment
	// whose whole span is older is deleted.
	Retention int64
	// LevelDB tunes each segment's LevelDB. Zero fields get small defaults
	// (a segment is a fraction of a store).
	LevelDB LevelDBOptions
}

// Segmented is an Engine for time-keyed data, such as window and session
// stores: keys carry a time (see WindowKey), and each segment of time lives
// in its own engine, so that expired data goes by deleting whole segments
// rather than key by key.
//
// Writes to several segments are applied segment by segment, then the
// metadata: a crash in between leaves the data ahead of its recorded
// changelog position, which a restore replays idempotently.
type Segmented struct {
	opts SegmentedOptions
	meta Engine

	mu sync.Mutex // guards segs and observed for readers on other goroutines
	// closing counts the expired segments being closed in the background,
	// because a read was using them when they expired (see dropExpired).
	closing  sync.WaitGroup
	segs     map[int64]Engine
	observed int64 // the largest time written or advanced to

	// per holds Write's batches per segment, kept between writes so that
	// their buffers are grown once rather than at every write.
	per   map[int64]*Batch
	order []int64
}

const metaObserved = "segments.observed"

// OpenSegmented opens (or creates) a segmented engine.
//
// Its directory carries a format marker, like OpenLevelDB's, for the
// store as a whole. A directory that holds something else (another kind
// of store, a newer format, a segment or metadata LevelDB that goleveldb
// reports corrupt) is deleted and the store starts empty, to be restored
// from its changelog; the reason, wrapping ErrUnusableStore, is logged to
// o.LevelDB.Logger. An unmarked segmented directory written before
// markers existed is kept and marked.
func OpenSegmented(o SegmentedOptions) (*Segmented, error) {
	if o.Interval <= 0 {
		return nil, fmt.Errorf("state: segmented store: interval %d ms must be positive", o.Interval)
	}
	if o.Retention < 0 {
		return nil, fmt.Errorf("state: segmented store: retention %d ms must not be negative", o.Retention)
	}
	if o.LevelDB.WriteBuffer <= 0 {
		o.LevelDB.WriteBuffer = 4 << 20
	}
	if o.LevelDB.BlockCache <= 0 {
		o.LevelDB.BlockCache = 8 << 20
	}
	if o.Dir == "" {
		return &Segmented{opts: o, segs: make(map[int64]Engine), observed: -1 << 62, meta: NewMemory()}, nil
	}
	// The store's marker covers its segments and metadata, so the
	// LevelDBs under it, those created later included, are opened as is.
	o.LevelDB.unmarked = true
	return openMarked(o.Dir, kindSegmented, o.LevelDB.Logger, func() (*Segmented, error) { return openSegments(o) })
}

// openSegments opens the metadata and segment LevelDBs of the segmented
// store in o.Dir. On failure, it leaves none of them open.
func openSegments(o SegmentedOptions) (*Segmented, error) {
	s := &Segmented{opts: o, segs: make(map[int64]Engine), observed: -1 << 62}
	meta, err := openLevelDB(filepath.Join(o.Dir, "meta"), o.LevelDB)
	if err != nil {
		return nil, err
	}
	s.meta = meta
	if v, ok, err := meta.Meta(metaObserved); err == nil && ok {
		s.observed, _ = strconv.ParseInt(string(v), 10, 64)
	}
	entries, err := os.ReadDir(o.Dir)
	if err != nil {
		meta.Close()
		return nil, err
	}
	for _, e := range entries {
		start, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || !e.IsDir() {
			continue
		}
		eng, err := openLevelDB(filepath.Join(o.Dir, e.Name()), o.LevelDB)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.segs[start/o.Interval] = eng
	}
	s.dropExpired()
	return s, nil
}

// segmentOf returns the segment ID of time t.
func (s *Segmented) segmentOf(t int64) int64 {
	if t < 0 {
		return (t - s.opts.Interval + 1) / s.opts.Interval
	}
	return t / s.opts.Interval
}

// expired reports whether data at time t is out of retention.
func (s *Segmented) expired(t int64) bool { return t <= s.observed-s.opts.Retention-1 }

func (s *Segmented) segment(id int64, create bool) (Engine, error) {
	if eng, ok := s.segs[id]; ok || !create {
		return eng, nil
	}
	var eng Engine
	if s.opts.Dir == "" {
		eng = NewMemory()
	} else {
		var err error
		eng, err = OpenLevelDB(filepath.Join(s.opts.Dir, strconv.FormatInt(id*s.opts.Interval, 10)), s.opts.LevelDB)
		if err != nil {
			return nil, err
		}
	}
	s.segs[id] = eng
	return eng, nil
}

// ObservedTime returns the largest time written or advanced to.
func (s *Segmented) ObservedTime() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.observed
}

// LiveFrom returns the earliest time still in retention: data at earlier
// times is gone.
func (s *Segmented) LiveFrom() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.observed - s.opts.Retention
}

// Advance moves the observed time to t if it is later, and deletes the
// segments that fall out of retention.
func (s *Segmented) Advance(t int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t <= s.observed {
		return nil
	}
	s.observed = t
	return s.dropExpired()
}

// dropExpired closes and deletes every segment whose whole span is out of
// retention. s.mu is held (or s is not yet shared).
func (s *Segmented) dropExpired() error {
	var errs []error
	for id, eng := range s.segs {
		if end := (id+1)*s.opts.Interval - 1; !s.expired(end) {
			continue
		}
		delete(s.segs, id)
		dir := ""
		if s.opts.Dir != "" {
			dir = filepath.Join(s.opts.Dir, strconv.FormatInt(id*s.opts.Interval, 10))
		}
		if tc, ok := eng.(interface{ tryClose() (bool, error) }); ok {
			closed, err := tc.tryClose()
			if !closed {
				// A Range is reading the segment, maybe further up this
				// goroutine's stack: close it when that read ends.
				s.closing.Add(1)
				go func() {
					defer s.closing.Done()
					eng.Close()
					if dir != "" {
						os.RemoveAll(dir)
					}
				}()
				continue
			}
			errs = append(errs, err)
		} else {
			errs = append(errs, eng.Close())
		}
		if dir != "" {
			errs = append(errs, os.RemoveAll(dir))
		}
	}
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("state: drop expired segment: %w", err)
		}
	}
	return nil
}

// Segments returns the start times of the live segments, ascending.
func (s *Segmented) Segments() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int64, 0, len(s.segs))
	for id := range s.segs {
		out = append(out, id*s.opts.Interval)
	}
	slices.Sort(out)
	return out
}

// Get implements Engine.
func (s *Segmented) Get(key []byte) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := WindowKeyTime(key)
	if !ok || s.expired(t) {
		return nil, false, nil
	}
	eng, _ := s.segment(s.segmentOf(t), false)
	if eng == nil {
		return nil, false, nil
	}
	return eng.Get(key)
}

// Range implements Engine. A range within one key's windows (both bounds
// encode the same key) reads only the segments its times cover, in time
// order; any other range merges every segment in key order.
func (s *Segmented) Range(start, end []byte, fn func(key, value []byte) bool) error {
	s.mu.Lock()
	ids := make([]int64, 0, len(s.segs))
	for id := range s.segs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	engs := make([]Engine, len(ids))
	for i, id := range ids {
		engs[i] = s.segs[id]
	}
	minLive := s.observed - s.opts.Retention
	s.mu.Unlock()

	live := func(key []byte) bool {
		t, ok := WindowKeyTime(key)
		return ok && t >= minLive
	}
	if pa, ta, ok := splitWindowKey(start); ok {
		if pb, tb, ok := splitWindowKey(end); ok && bytes.Equal(pa, pb) {
			// One key: segments in time order give keys in byte order.
			for i, id := range ids {
				if (id+1)*s.opts.Interval <= ta || id*s.opts.Interval > tb {
					continue
				}
				stop := false
				err := engs[i].Range(start, end, func(k, v []byte) bool {
					if !live(k) {
						return true
					}
					if !fn(k, v) {
						stop = true
						return false
					}
					return true
				})
				if err != nil || stop {
					return err
				}
			}
			return nil
		}
	}
	type kv struct{ k, v []byte }
	var all []kv
	for _, eng := range engs {
		err := eng.Range(start, end, func(k, v []byte) bool {
			if live(k) {
				all = append(all, kv{bytes.Clone(k), bytes.Clone(v)})
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	slices.SortFunc(all, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	for _, e := range all {
		if !fn(e.k, e.v) {
			return nil
		}
	}
	return nil
}

// Write implements Engine: each operation goes to its segment; writes to
// expired times are dropped, as they would expire at once.
func (s *Segmented) Write(b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.per == nil {
		s.per = make(map[int64]*Batch)
	}
	// Each segment's batch lists its operations, pointing into b's
	// buffer: the keys and values are not copied.
	per, order := s.per, s.order[:0]
	defer func() {
		for id, sb := range per {
			if len(sb.ops) == 0 {
				delete(per, id) // unused this time: its segment may be gone
			}
			sb.ops, sb.buf, sb.size = sb.ops[:0], nil, 0
		}
		s.order = order
	}()
	for _, op := range b.ops {
		key := b.buf[op.ks:op.ke]
		t, ok := WindowKeyTime(key)
		if !ok {
			return fmt.Errorf("state: segmented store: key %x carries no window time", key)
		}
		if t > s.observed {
			s.observed = t
		}
		id := s.segmentOf(t)
		sb := per[id]
		if sb == nil {
			sb = &Batch{}
			per[id] = sb
		}
		if len(sb.ops) == 0 {
			order = append(order, id)
		}
		sb.ops, sb.buf = append(sb.ops, op), b.buf
		sb.size += op.ke - op.ks + op.ve - op.vs
	}
	for _, id := range order {
		end := (id+1)*s.opts.Interval - 1
		if s.expired(end) {
			continue
		}
		eng, err := s.segment(id, true)
		if err != nil {
			return err
		}
		if err := eng.Write(per[id]); err != nil {
			return err
		}
	}
	var mb Batch
	for _, m := range b.meta {
		mb.SetMeta(m.name, m.value)
	}
	mb.SetMeta(metaObserved, strconv.AppendInt(nil, s.observed, 10))
	if err := s.meta.Write(&mb); err != nil {
		return err
	}
	return s.dropExpired()
}

// Meta implements Engine.
func (s *Segmented) Meta(name string) ([]byte, bool, error) { return s.meta.Meta(name) }

// ApproximateCount implements Engine: the sum over live segments.
func (s *Segmented) ApproximateCount() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, eng := range s.segs {
		c, err := eng.ApproximateCount()
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// Close implements Engine. It waits for the reads of its segments in
// flight, without holding s.mu, so that a Range callback that calls back
// into s cannot deadlock against it. The closed metadata engine stays in
// place, so that Meta returns ErrClosed from then on.
func (s *Segmented) Close() error {
	s.mu.Lock()
	segs := s.segs
	s.segs = make(map[int64]Engine)
	s.mu.Unlock()
	var errs []error
	for _, eng := range segs {
		errs = append(errs, eng.Close())
	}
	s.closing.Wait() // expired segments whose close waited for a read
	errs = append(errs, s.meta.Close())
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// WindowKey is the stored key of a windowed value: the record key and two
// times. Window stores keep (Start, End) in T1, T2; session stores keep
// (End, Start), so that both order and segment a key's entries by the time
// that decides their expiry.
type WindowKey[K any] struct {
	Key    K
	T1, T2 int64
}

// Encoding: uvarint(len(key)) | key | T1 | T2, times as 8-byte big-endian
// with the sign bit flipped, so that byte order is time order also for
// negative times. The length prefix keeps one key's entries contiguous and
// apart from keys it is a prefix of.

// AppendWindowKey appends the encoding of an already-encoded key and its
// times to dst.
func AppendWindowKey(dst, key []byte, t1, t2 int64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t1)^(1<<63))
	return binary.BigEndian.AppendUint64(dst, uint64(t2)^(1<<63))
}

// ParseWindowKey splits an encoded window key into the encoded record key
// and its times.
func ParseWindowKey(b []byte) (key []byte, t1, t2 int64, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)) || len(b)-w-int(n) != 16 {
		return nil, 0, 0, false
	}
	key = b[w : w+int(n)]
	rest := b[w+int(n):]
	t1 = int64(binary.BigEndian.Uint64(rest) ^ (1 << 63))
	t2 = int64(binary.BigEndian.Uint64(rest[8:]) ^ (1 << 63))
	return key, t1, t2, true
}

// WindowKeyTime returns the segment time (T1) of an encoded window key.
func WindowKeyTime(b []byte) (int64, bool) {
	_, t1, _, ok := ParseWindowKey(b)
	return t1, ok
}

// splitWindowKey returns the prefix of an encoded window key up to its
// times, and T1.
func splitWindowKey(b []byte) (prefix []byte, t1 int64, ok bool) {
	if len(b) < 16 {
		return nil, 0, false
	}
	if _, t1, _, ok = ParseWindowKey(b); !ok {
		return nil, 0, false
	}
	return b[:len(b)-16], t1, true
}
