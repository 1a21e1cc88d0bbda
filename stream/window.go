package stream

import (
	"container/heap"
	"strconv"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
	"github.com/kappa-streams/kappa/window"
)

// TimeWindowedStream is a grouped stream cut into tumbling or hopping
// windows, ready for Count, Reduce or AggregateWindowed.
type TimeWindowedStream[K, V any] struct {
	g Grouped[K, V]
	w window.TimeWindows
}

// WindowedBy cuts a grouped stream into time windows: each record counts
// in every window that contains its timestamp. A record whose windows have
// all closed (stream time ≥ window end + grace) is late: it is dropped and
// counted (TaskStatus.Late), never aggregated.
func WindowedBy[K, V any](g Grouped[K, V], w window.TimeWindows) TimeWindowedStream[K, V] {
	if err := w.Validate(); err != nil {
		g.s.b.pb.Errorf("WindowedBy: %v", err)
	}
	return TimeWindowedStream[K, V]{g: g, w: w}
}

// Count counts records per key and window.
func (ws TimeWindowedStream[K, V]) Count(opts ...Option) Table[window.Windowed[K], int64] {
	return windowAggregate(ws, "COUNT", func() int64 { return 0 },
		func(_ K, _ V, n int64, _ bool) int64 { return n + 1 }, append([]Option{WithValue(codec.Int64())}, opts...))
}

// Reduce combines the values of each key and window with fn.
func (ws TimeWindowedStream[K, V]) Reduce(fn func(agg, value V) V, opts ...Option) Table[window.Windowed[K], V] {
	return windowAggregate(ws, "REDUCE", func() V { var zero V; return zero },
		func(_ K, v V, agg V, exists bool) V {
			if !exists {
				return v
			}
			return fn(agg, v)
		}, opts)
}

// AggregateWindowed folds the values of each key and window into an
// aggregate, starting from init().
func AggregateWindowed[K, V, VA any](ws TimeWindowedStream[K, V], init func() VA, fn func(key K, value V, agg VA) VA, opts ...Option) Table[window.Windowed[K], VA] {
	return windowAggregate(ws, "AGGREGATE", init, func(k K, v V, agg VA, _ bool) VA { return fn(k, v, agg) }, opts)
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

func windowAggregate[K, V, VA any](ws TimeWindowedStream[K, V], kind string, init func() VA, apply func(K, V, VA, bool) VA, opts []Option) Table[window.Windowed[K], VA] {
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

	n := b.pb.AddProcessor(name, func(t *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[window.Windowed[K], Change[VA]](cs)
		if err != nil {
			return nil, err
		}
		eng, sp, err := t.StoreEngine(spec.Name)
		if err != nil {
			return nil, err
		}
		seg := eng.(*state.Segmented)
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
		store := state.NewWindows(spec.Name, seg, kc, vac, sp.Options, t.Changelog(spec.Name), forward, false)
		if err := t.RegisterStore(spec.Name, store); err != nil {
			return nil, err
		}
		op := &windowOp[K, VA]{t: t, name: name, store: store, closeTime: w.CloseTime, final: final, out: out}
		var wins []window.Window
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
			wins = w.AppendWindowsFor(wins[:0], ts)
			open := 0
			for _, win := range wins {
				if w.Closed(win, st) {
					continue
				}
				open++
				agg, ok, err := store.Get(rec.Key, win.Start, win.End)
				if err != nil {
					return wrap(name, err)
				}
				if !ok {
					agg = init()
					if final {
						heap.Push(&op.pending, pendingWindow[K]{key: rec.Key, win: win})
					}
				}
				if err := store.PutAt(rec.Key, win.Start, win.End, apply(rec.Key, rec.Value, agg, ok), rec.Timestamp); err != nil {
					return wrap(name, err)
				}
			}
			if open == 0 {
				t.DropLate(name, ts, st)
			}
			return wrap(name, op.advance(st))
		}), nil
	}, in.node)
	b.pb.AddStore(spec, n)
	return Table[window.Windowed[K], VA]{b: b, node: n, kc: known(b, codec.Windowed(kc)), vc: vac, store: spec.Name}
}

// windowOp is a task's state of a windowed aggregation beyond its store:
// with EmitFinal, the windows not yet emitted, by end.
type windowOp[K, VA any] struct {
	t         *processor.Task
	name      string
	store     *state.Windows[K, VA]
	closeTime func(window.Window) int64
	final     bool
	out       fanout[window.Windowed[K], Change[VA]]
	started   bool
	pending   pendingHeap[K]
}

// start rebuilds the pending windows from the restored store, once, at
// the first record: every window that had not closed by the stream time
// the task was committed with is still to be emitted.
func (op *windowOp[K, VA]) start() error {
	if op.started {
		return nil
	}
	op.started = true
	if !op.final {
		return nil
	}
	st := op.t.StreamTimeMillis()
	err := op.store.All(func(k K, start, end int64, _ VA) bool {
		if st < 0 || st < op.closeTime(window.Window{Start: start, End: end}) {
			op.pending = append(op.pending, pendingWindow[K]{key: k, win: window.Window{Start: start, End: end}})
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
			err = op.out.forward(Record[window.Windowed[K], Change[VA]]{
				Key:       window.Windowed[K]{Key: p.key, Window: p.win},
				Value:     Change[VA]{New: v},
				Timestamp: time.UnixMilli(p.win.End - 1),
			})
			if err != nil {
				return err
			}
		}
	}
	return op.store.Advance(st)
}

type pendingWindow[K any] struct {
	key K
	win window.Window
}

// pendingHeap orders pending windows by end, then start.
type pendingHeap[K any] []pendingWindow[K]

func (h pendingHeap[K]) Len() int { return len(h) }
func (h pendingHeap[K]) Less(i, j int) bool {
	if h[i].win.End != h[j].win.End {
		return h[i].win.End < h[j].win.End
	}
	return h[i].win.Start < h[j].win.Start
}
func (h pendingHeap[K]) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap[K]) Push(x any)   { *h = append(*h, x.(pendingWindow[K])) }
func (h *pendingHeap[K]) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
