package stream

import (
	"cmp"
	"container/heap"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
	"github.com/kappa-streams/kappa/window"
)

// WindowedStream is a grouped stream cut into windows, ready for Count,
// Reduce, AggregateWindowed or, for session windows, AggregateSessions.
type WindowedStream[K, V any] struct {
	g Grouped[K, V]
	w window.Windows
}

// WindowedBy cuts a grouped stream into windows: tumbling or hopping
// (window.Tumbling, window.Hopping), sliding (window.Sliding) or session
// windows (window.Session). A record counts in every window that contains
// its timestamp and has not closed. A record whose windows have all closed
// (stream time ≥ window close time, end + grace) is late: it is dropped and
// counted (TaskStatus.Late), never aggregated. See docs/windows.md.
func WindowedBy[K, V any](g Grouped[K, V], w window.Windows) WindowedStream[K, V] {
	if w == nil {
		g.s.b.pb.Errorf("WindowedBy: nil windows: pass window.Tumbling, window.Hopping, window.Sliding or window.Session")
		w = window.Tumbling(time.Minute) // keeps building; Build reports the error
	} else if err := w.Validate(); err != nil {
		g.s.b.pb.Errorf("WindowedBy: %v", err)
	}
	return WindowedStream[K, V]{g: g, w: w}
}

// Count counts records per key and window.
func (ws WindowedStream[K, V]) Count(opts ...Option) Table[window.Windowed[K], int64] {
	return windowAggregate(ws, "COUNT", func() int64 { return 0 },
		func(_ K, _ V, n int64, _ bool) int64 { return n + 1 },
		func(_ K, a int64, _ bool, b int64) int64 { return a + b },
		append([]Option{WithValue(codec.Int64())}, opts...))
}

// Reduce combines the values of each key and window with fn. Sessions
// that merge are combined with fn too.
func (ws WindowedStream[K, V]) Reduce(fn func(agg, value V) V, opts ...Option) Table[window.Windowed[K], V] {
	combine := func(_ K, agg V, exists bool, v V) V {
		if !exists {
			return v
		}
		return fn(agg, v)
	}
	return windowAggregate(ws, "REDUCE", func() V { var zero V; return zero },
		func(k K, v V, agg V, exists bool) V { return combine(k, agg, exists, v) }, combine, opts)
}

// AggregateWindowed folds the values of each key and window into an
// aggregate, starting from init(). Session windows merge aggregates, so
// they take AggregateSessions instead.
func AggregateWindowed[K, V, VA any](ws WindowedStream[K, V], init func() VA, fn func(key K, value V, agg VA) VA, opts ...Option) Table[window.Windowed[K], VA] {
	if _, ok := ws.w.(window.SessionWindows); ok {
		ws.g.s.b.pb.Errorf("AggregateWindowed over %v: sessions merge, so their aggregation needs a merger: use stream.AggregateSessions(ws, init, fn, merger)", ws.w)
	}
	return windowAggregate(ws, "AGGREGATE", init, func(k K, v V, agg VA, _ bool) VA { return fn(k, v, agg) }, nil, opts)
}

// AggregateSessions folds the values of each key and session into an
// aggregate, starting from init(). When a record bridges sessions, they
// merge: their aggregates are combined, starting from init(), with
// merger(key, agg, sessionAgg) in the order of the sessions, and then the
// record is folded in, as in Kafka Streams. ws must use window.Session.
func AggregateSessions[K, V, VA any](ws WindowedStream[K, V], init func() VA, fn func(key K, value V, agg VA) VA,
	merger func(key K, agg, sessionAgg VA) VA, opts ...Option,
) Table[window.Windowed[K], VA] {
	if _, ok := ws.w.(window.SessionWindows); !ok {
		ws.g.s.b.pb.Errorf("AggregateSessions over %v: needs window.Session windows; use stream.AggregateWindowed for the others", ws.w)
	}
	if merger == nil {
		ws.g.s.b.pb.Errorf("AggregateSessions: nil merger: pass a func(key, agg, sessionAgg) that combines two sessions' aggregates")
	}
	return windowAggregate(ws, "AGGREGATE", init, func(k K, v V, agg VA, _ bool) VA { return fn(k, v, agg) },
		func(k K, agg VA, _ bool, s VA) VA { return merger(k, agg, s) }, opts)
}

type emitFinal struct{}

func (emitFinal) option() {}

// EmitFinal makes a windowed aggregation emit exactly one result per
// window, when the window closes (stream time reaches its end + grace),
// instead of every update through the record cache. The result carries
// the timestamp of the window's last millisecond.
func EmitFinal() Option { return emitFinal{} }

// windowSegments returns the segment layout of a window store: retention
// size + grace, segments of half the retention but at least a minute, as
// in Kafka Streams.
func windowSegments(retention time.Duration) *processor.SegmentSpec {
	r := retention.Milliseconds()
	return &processor.SegmentSpec{Interval: max(r/2, 60_000), Retention: r}
}

// windowChangelogConfigs are the changelog configs of a window store:
// compacted, and deleted one day after the store's retention.
func windowChangelogConfigs(retention time.Duration) map[string]string {
	return map[string]string{
		"cleanup.policy": "compact,delete",
		"retention.ms":   strconv.FormatInt((retention + 24*time.Hour).Milliseconds(), 10),
	}
}

// windowApply folds a record's value into an aggregate; exists reports
// whether agg came from the store (false: it is init()).
type windowApply[K, V, VA any] func(key K, value V, agg VA, exists bool) VA

// windowMerge combines a session's aggregate into agg; exists reports
// whether agg already holds a session's aggregate.
type windowMerge[K, VA any] func(key K, agg VA, exists bool, session VA) VA

func windowAggregate[K, V, VA any](ws WindowedStream[K, V], kind string, init func() VA, apply windowApply[K, V, VA], merge windowMerge[K, VA], opts []Option) Table[window.Windowed[K], VA] {
	g, w := ws.g, ws.w
	b := g.s.b
	c := parse[K, VA](b, "windowed "+kind, opts)
	final := false
	for _, o := range opts {
		if _, ok := o.(emitFinal); ok {
			final = true
		}
	}
	name := b.nodeName(c.name, "WINDOWED-"+kind)
	spec := c.storeSpec(name)
	spec.Segments = windowSegments(w.Retention())
	spec.ChangelogConfigs = windowChangelogConfigs(w.Retention())
	in := g.input(spec.Name)
	kc, vac := known(b, pick(c.kc, in.kc)), known(b, c.vc)
	requireCodecs(b, "windowed "+kind, name, kc, vac)
	spec.Keys = state.KeysOf(kc)
	_, session := w.(window.SessionWindows)
	sliding, isSliding := w.(window.SlidingWindows)
	// Sliding windows are created where records enter and leave them, so a
	// new window's aggregate is folded from the records it holds: the
	// records of the last 2 × time difference + grace are kept in a second
	// window store, keyed by (key, timestamp, offset).
	var recSpec processor.StoreSpec
	if isSliding {
		recSpec = spec
		recSpec.Name = spec.Name + "-records"
		requireCodecs(b, "windowed "+kind+" over sliding windows (records store)", name, kc, known(b, in.vc))
	}

	n := b.pb.AddProcessor(name, func(t *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[window.Windowed[K], Change[VA]](cs)
		if err != nil {
			return nil, err
		}
		eng, sp, err := t.StoreEngine(spec.Name)
		if err != nil {
			return nil, err
		}
		var forward func(K, int64, int64, Change[VA]) error
		if !final && len(out) > 0 {
			forward = func(k K, start, end int64, ch Change[VA]) error {
				ts := ch.Timestamp
				if ts.IsZero() {
					ts = t.StreamTime()
				}
				return out.forward(Record[window.Windowed[K], Change[VA]]{
					Key: window.Windowed[K]{Key: k, Window: window.Window{Start: start, End: end}}, Value: ch, Timestamp: ts})
			}
		}
		store := state.NewWindows(spec.Name, eng.(*state.Segmented), kc, vac, sp.Options, t.Changelog(spec.Name), forward, session)
		if err := t.RegisterStore(spec.Name, store); err != nil {
			return nil, err
		}
		op := &windowOp[K, VA]{t: t, name: name, store: store, closeTime: w.CloseTime, kc: kc, vc: vac, final: final, out: out}
		if _, ok := w.(window.TimeWindows); !ok {
			op.inclusive = true // sliding and session windows include their end
		}
		var assign func(rec Record[K, V], ts, st int64) (bool, error)
		switch w := w.(type) {
		case window.TimeWindows:
			assign = timeWindowAssigner(op, w, init, apply)
		case window.SessionWindows:
			assign = sessionAssigner(op, w, init, apply, merge)
		case window.SlidingWindows:
			reng, rsp, err := t.StoreEngine(recSpec.Name)
			if err != nil {
				return nil, err
			}
			recs := state.NewWindows(recSpec.Name, reng.(*state.Segmented), kc, in.vc, rsp.Options, t.Changelog(recSpec.Name), nil, false)
			if err := t.RegisterStore(recSpec.Name, recs); err != nil {
				return nil, err
			}
			op.extra = recs
			assign = slidingAssigner(op, recs, sliding, init, apply)
		}
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			if rec.Tombstone {
				t.Drop() // stream aggregations ignore deletes, as in Kafka Streams
				return nil
			}
			if err := op.start(); err != nil {
				return wrap(name, err)
			}
			ts, st := rec.Timestamp.UnixMilli(), t.StreamTimeMillis()
			// The windows this record's time closes are final already (it
			// cannot enter them), and they must be read before its writes
			// move the store's retention past them.
			if err := op.emitClosed(st); err != nil {
				return wrap(name, err)
			}
			ok, err := assign(rec, ts, st)
			if err != nil {
				return wrap(name, err)
			}
			if !ok {
				t.DropLate(name, ts, st)
			}
			return wrap(name, op.advance(st))
		}), nil
	}, in.node)
	b.pb.AddStore(spec, n)
	if isSliding {
		b.pb.AddStore(recSpec, n)
	}
	return Table[window.Windowed[K], VA]{b: b, node: n, kc: known(b, codec.Windowed(kc)), vc: vac, store: spec.Name}
}

// timeWindowAssigner adds a record to each of its tumbling or hopping
// windows that is still open. It reports false when all are closed.
func timeWindowAssigner[K, V, VA any](op *windowOp[K, VA], w window.TimeWindows, init func() VA, apply windowApply[K, V, VA]) func(Record[K, V], int64, int64) (bool, error) {
	var wins []window.Window
	return func(rec Record[K, V], ts, st int64) (bool, error) {
		wins = w.AppendWindowsFor(wins[:0], ts)
		open := false
		for _, win := range wins {
			if w.Closed(win, st) {
				continue
			}
			open = true
			agg, ok, err := op.store.Get(rec.Key, win.Start, win.End)
			if err != nil {
				return false, err
			}
			if !ok {
				agg = init()
				op.created(rec.Key, win)
			}
			if err := op.store.PutAt(rec.Key, win.Start, win.End, apply(rec.Key, rec.Value, agg, ok), rec.Timestamp); err != nil {
				return false, err
			}
		}
		return open, nil
	}
}

// sessionAssigner merges a record into its key's sessions following
// window.SessionWindows.Merge: the open sessions within the gap of it and
// the record become one session, whose aggregate is the sessions'
// aggregates merged, then the record folded in. The replaced sessions are
// deleted, which downstream sees as tombstones of their windowed keys.
func sessionAssigner[K, V, VA any](op *windowOp[K, VA], w window.SessionWindows, init func() VA, apply windowApply[K, V, VA], merge windowMerge[K, VA]) func(Record[K, V], int64, int64) (bool, error) {
	gap := w.Gap().Milliseconds()
	var found []window.Window
	var vals []VA
	return func(rec Record[K, V], ts, st int64) (bool, error) {
		found, vals = found[:0], vals[:0]
		// Sessions are disjoint, so in the store's end order their starts
		// rise too: stop at the first starting beyond the gap.
		err := op.store.Fetch(rec.Key, satAdd(ts, -gap), math.MaxInt64, func(start, end int64, v VA) bool {
			if start > satAdd(ts, gap) {
				return false
			}
			found = append(found, window.Window{Start: start, End: end})
			vals = append(vals, v)
			return true
		})
		if err != nil {
			return false, err
		}
		merged, late := w.Merge(ts, found, st)
		if late {
			return false, nil
		}
		agg, exists, same := init(), false, false
		for i, s := range found {
			if !w.Merges(s, ts) || w.Closed(s, st) {
				continue // not merged (the rule of Merge)
			}
			agg, exists = merge(rec.Key, agg, exists, vals[i]), true
			if s == merged {
				same = true
				continue
			}
			if err := op.store.DeleteAt(rec.Key, s.Start, s.End, rec.Timestamp); err != nil {
				return false, err
			}
		}
		if !same {
			op.created(rec.Key, merged)
		}
		return true, op.store.PutAt(rec.Key, merged.Start, merged.End, apply(rec.Key, rec.Value, agg, exists), rec.Timestamp)
	}
}

// slidingAssigner maintains Kafka Streams' sliding windows of a key: the
// windows [t-d, t] ending at each record and [t+1, t+1+d] starting right
// after each record that has a later one within d+1 (windows never start
// before 0, so records before d share [0, d]). A record is added to the
// open windows that contain it, and creates the open windows that its
// arrival makes exist: its own left window, its right window when a later
// record is near, and the right windows of earlier records it is the
// first to fall into. A created window's aggregate is folded, in time
// order, from the records it contains, read from recs.
func slidingAssigner[K, V, VA any](op *windowOp[K, VA], recs *state.Windows[K, V], w window.SlidingWindows, init func() VA, apply windowApply[K, V, VA]) func(Record[K, V], int64, int64) (bool, error) {
	d := w.TimeDifference().Milliseconds()
	type timed struct {
		ts int64
		v  V
	}
	var near []timed
	var update []windowAgg[VA]
	existing := make(map[int64]bool)
	var starts []int64
	return func(rec Record[K, V], ts, st int64) (bool, error) {
		if w.Closed(window.Window{Start: ts, End: satAdd(ts, d)}, st) {
			return false, nil // the latest window that could hold it has closed
		}
		lo, hi := max(0, ts-d), satAdd(satAdd(ts, d), 1)
		// The records that windows created now can hold, this one
		// included, in time order (the store orders equal times by
		// offset, and this record's offset is the largest).
		near = near[:0]
		err := recs.Fetch(rec.Key, lo, hi, func(t, _ int64, v V) bool {
			near = append(near, timed{t, v})
			return true
		})
		if err != nil {
			return false, err
		}
		at, _ := slices.BinarySearchFunc(near, ts+1, func(e timed, t int64) int { return cmp.Compare(e.ts, t) })
		near = slices.Insert(near, at, timed{ts, rec.Value})
		if err := recs.Put(rec.Key, ts, op.t.RecordMetadata().Offset, rec.Value); err != nil {
			return false, err
		}
		// The windows that contain ts or start right after it; the open
		// ones that contain it take the record.
		clear(existing)
		update = update[:0]
		err = op.store.Fetch(rec.Key, lo, satAdd(ts, 1), func(start, end int64, agg VA) bool {
			existing[start] = true
			if start <= ts && !w.Closed(window.Window{Start: start, End: end}, st) {
				update = append(update, windowAgg[VA]{window.Window{Start: start, End: end}, agg})
			}
			return true
		})
		if err != nil {
			return false, err
		}
		for _, u := range update {
			if err := op.store.PutAt(rec.Key, u.win.Start, u.win.End, apply(rec.Key, rec.Value, u.agg, true), rec.Timestamp); err != nil {
				return false, err
			}
		}
		// The windows this record makes exist.
		starts = append(starts[:0], lo)
		for _, r := range near {
			switch {
			case r.ts < ts && r.ts+1+d >= ts:
				starts = append(starts, r.ts+1) // an earlier record's right window
			case r.ts > ts:
				starts = append(starts, ts+1) // this record's right window
			}
		}
		for i, s := range starts {
			win := window.Window{Start: s, End: satAdd(s, d)}
			if existing[s] || slices.Contains(starts[:i], s) || w.Closed(win, st) {
				continue
			}
			agg, ok := init(), false
			for _, r := range near {
				if win.Start <= r.ts && r.ts <= win.End {
					agg, ok = apply(rec.Key, r.v, agg, ok), true
				}
			}
			if !ok {
				continue
			}
			op.created(rec.Key, win)
			if err := op.store.PutAt(rec.Key, win.Start, win.End, agg, rec.Timestamp); err != nil {
				return false, err
			}
		}
		return true, nil
	}
}

// satAdd is a + b, saturating at the int64 limits.
func satAdd(a, b int64) int64 {
	s := a + b
	switch {
	case b > 0 && s < a:
		return math.MaxInt64
	case b < 0 && s > a:
		return math.MinInt64
	}
	return s
}

// windowOp is a task's state of a windowed aggregation beyond its store:
// with EmitFinal, the windows not yet emitted, by end.
type windowOp[K, VA any] struct {
	t         *processor.Task
	name      string
	store     *state.Windows[K, VA]
	closeTime func(window.Window) int64
	kc        codec.Codec[K]
	vc        codec.Codec[VA]
	final     bool
	inclusive bool // windows include their end: results carry End, not End-1
	out       fanout[window.Windowed[K], Change[VA]]
	started   bool
	pending   pendingHeap[K]
	// extra is a second store that expires with stream time (the records
	// of sliding windows).
	extra interface{ Advance(int64) error }
}

// windowAgg is a window and its aggregate.
type windowAgg[VA any] struct {
	win window.Window
	agg VA
}

// pendingOf returns the pending entry of key's window. The encoded key
// orders windows that close at the same time, so the order of final
// results does not depend on when the heap was rebuilt: a replay, with or
// without restarts, emits the same sequence.
func (op *windowOp[K, VA]) pendingOf(key K, win window.Window) pendingWindow[K] {
	kb, _ := op.kc.Encode(key) // the store encoded the key already: no error
	return pendingWindow[K]{key: key, kb: string(kb), win: win}
}

// created notes a window that did not exist, to emit when it closes.
func (op *windowOp[K, VA]) created(key K, win window.Window) {
	if op.final {
		heap.Push(&op.pending, op.pendingOf(key, win))
	}
}

// start rebuilds the pending windows from the restored store, once, at
// the first record: every window that had not closed by the stream time
// the task was committed with (the stream time before this record) is
// still to be emitted.
func (op *windowOp[K, VA]) start() error {
	if op.started {
		return nil
	}
	op.started = true
	if !op.final {
		return nil
	}
	st := op.t.PriorStreamTimeMillis()
	err := op.store.All(func(k K, start, end int64, _ VA) bool {
		if st < 0 || st < op.closeTime(window.Window{Start: start, End: end}) {
			op.pending = append(op.pending, op.pendingOf(k, window.Window{Start: start, End: end}))
		}
		return true
	})
	if err == nil {
		heap.Init(&op.pending)
	}
	return err
}

// advance emits the windows that stream time st has closed (EmitFinal),
// then lets the store drop what is out of retention.
func (op *windowOp[K, VA]) advance(st int64) error {
	if err := op.emitClosed(st); err != nil {
		return err
	}
	if op.extra != nil {
		if err := op.extra.Advance(st); err != nil {
			return err
		}
	}
	return op.store.Advance(st)
}

// emitClosed emits, under EmitFinal, the pending windows that stream time
// st has closed, in end order. A closed window is still in the store: its
// retention (size + grace from its start) outlasts its close time (end +
// grace) as long as nothing later than st has been written, which is why
// a record's closed windows go out before the record is stored.
func (op *windowOp[K, VA]) emitClosed(st int64) error {
	if op.final {
		for len(op.pending) > 0 && st >= op.closeTime(op.pending[0].win) {
			p := heap.Pop(&op.pending).(pendingWindow[K])
			v, ok, err := op.store.Get(p.key, p.win.Start, p.win.End)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			rec := Record[window.Windowed[K], Change[VA]]{
				Key:       window.Windowed[K]{Key: p.key, Window: p.win},
				Value:     Change[VA]{New: v},
				Timestamp: time.UnixMilli(op.resultTime(p.win)),
			}
			if err := op.t.Guard(func() error { return op.out.forward(rec) }); err != nil {
				// The result belongs to the window, not to the record
				// that closed it: it is dead-lettered on its own and the
				// record goes on.
				vb, _ := op.vc.Encode(v)
				kb := state.AppendWindowKey(nil, []byte(p.kb), p.win.Start, p.win.End)
				if err := op.t.ForwardFailed(op.store.Name(), kb, vb, err); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// resultTime is the timestamp of a final result: the window's last
// millisecond.
func (op *windowOp[K, VA]) resultTime(win window.Window) int64 {
	if op.inclusive {
		return win.End
	}
	return win.End - 1
}

type pendingWindow[K any] struct {
	key K
	kb  string // encoded key
	win window.Window
}

// pendingHeap orders pending windows by end, start, then encoded key.
type pendingHeap[K any] []pendingWindow[K]

func (h pendingHeap[K]) Len() int { return len(h) }
func (h pendingHeap[K]) Less(i, j int) bool {
	if h[i].win.End != h[j].win.End {
		return h[i].win.End < h[j].win.End
	}
	if h[i].win.Start != h[j].win.Start {
		return h[i].win.Start < h[j].win.Start
	}
	return h[i].kb < h[j].kb
}
func (h pendingHeap[K]) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap[K]) Push(x any)   { *h = append(*h, x.(pendingWindow[K])) }
func (h *pendingHeap[K]) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
