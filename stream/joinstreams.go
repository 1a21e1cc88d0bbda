package stream

import (
	"container/heap"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
	"github.com/kappa-streams/kappa/window"
)

// JoinStreams joins two streams within a time window: a record at t of l
// and a record at u of r with the same key match when u is in
// w.WindowFor(t), that is t - before ≤ u ≤ t + after. Both sides trigger:
// each record is matched with the other side's records already seen, and
// every match emits joiner(key, left, right) with the larger of the two
// timestamps. Each side's records are kept in a window store (changelogged)
// for before + after + grace.
//
// A record is late, dropped and counted (TaskStatus.Late), when it is more
// than its side's "after" plus grace behind stream time (after for l,
// before for r). Records with a nil value are dropped (TaskStatus.Dropped).
func JoinStreams[K, VL, VR, VO any](l Stream[K, VL], r Stream[K, VR], w window.JoinWindows, joiner func(key K, left VL, right VR) VO, opts ...Option) Stream[K, VO] {
	return streamStreamJoin(l, r, w, "JOIN", false, false, func(k K, lv VL, _ bool, rv VR, _ bool) VO { return joiner(k, lv, rv) }, opts)
}

// LeftJoinStreams is JoinStreams that also emits, for each record of l
// that matched no record of r, joiner(key, left, zero, false) with the
// record's timestamp, once its window has closed: when stream time passes
// t + before + after + grace, after which no record of r can match it any
// more (window.JoinWindows.CloseTime; Kafka Streams emits earlier, at
// t + after + grace, and can then also emit a match). A record that finds
// a match, however late within its window, never emits a non-match. With
// a negative bound, a record whose window closed before it came emits its
// non-match at once if it matches none of the records kept.
func LeftJoinStreams[K, VL, VR, VO any](l Stream[K, VL], r Stream[K, VR], w window.JoinWindows, joiner func(key K, left VL, right VR, rightFound bool) VO, opts ...Option) Stream[K, VO] {
	return streamStreamJoin(l, r, w, "LEFTJOIN", true, false, func(k K, lv VL, _ bool, rv VR, rok bool) VO { return joiner(k, lv, rv, rok) }, opts)
}

// OuterJoinStreams is LeftJoinStreams that emits the non-matches of both
// sides: joiner learns which side is present.
func OuterJoinStreams[K, VL, VR, VO any](l Stream[K, VL], r Stream[K, VR], w window.JoinWindows, joiner func(key K, left VL, leftFound bool, right VR, rightFound bool) VO, opts ...Option) Stream[K, VO] {
	return streamStreamJoin(l, r, w, "OUTERJOIN", true, true, joiner, opts)
}

// joined is a record kept by a stream-stream join: its value, and whether
// it has matched a record of the other side.
type joined[V any] struct {
	v       V
	matched bool
}

// joinedCodec encodes a joined value as a flag byte and the value.
func joinedCodec[V any](vc codec.Codec[V]) codec.Codec[joined[V]] {
	name := "joined[" + vc.Name() + "]"
	return codec.Func(name,
		func(j joined[V]) ([]byte, error) {
			vb, err := vc.Encode(j.v)
			if err != nil {
				return nil, err
			}
			flag := byte(0)
			if j.matched {
				flag = 1
			}
			return append([]byte{flag}, vb...), nil
		},
		func(b []byte) (joined[V], error) {
			if len(b) == 0 {
				return joined[V]{}, &codec.DecodeError{Codec: name, Err: errors.New("empty")}
			}
			v, err := vc.Decode(b[1:])
			return joined[V]{v: v, matched: b[0] == 1}, err
		})
}

// ssJoin is one task's state of a stream-stream join, shared by the nodes
// of its two sides.
type ssJoin[K, VL, VR, VO any] struct {
	task    *processor.Task
	name    string
	w       window.JoinWindows
	lvc     codec.Codec[VL]
	rvc     codec.Codec[VR]
	left    *state.Records[K, joined[VL]]
	right   *state.Records[K, joined[VR]]
	kc      codec.Codec[K]
	joiner  func(K, VL, bool, VR, bool) VO
	out     fanout[K, VO]
	started bool
	// pending holds the records whose non-match is still to be emitted
	// (left and outer joins), by the stream time at which it is.
	pending nonMatchHeap[K]
	leftNM  bool // emit non-matches of the left side
	rightNM bool
	// the matches of the record being processed, by side of the match
	leftMatches  []joinMatch[VL]
	rightMatches []joinMatch[VR]
}

// joinMatch is a record of the other side that a record matches.
type joinMatch[V any] struct {
	u, seq int64
	v      joined[V]
}

// nonMatch is a record that may have to be emitted without a match.
type nonMatch[K any] struct {
	at    int64 // stream time at which it is emitted, if still unmatched
	right bool
	key   K
	kb    string
	t     int64
	seq   int64
}

// nonMatchHeap orders non-matches by emission time, side, encoded key,
// timestamp and offset, so that replays emit them in the same order.
type nonMatchHeap[K any] []nonMatch[K]

func (h nonMatchHeap[K]) Len() int { return len(h) }
func (h nonMatchHeap[K]) Less(i, j int) bool {
	a, b := h[i], h[j]
	switch {
	case a.at != b.at:
		return a.at < b.at
	case a.right != b.right:
		return !a.right
	case a.kb != b.kb:
		return a.kb < b.kb
	case a.t != b.t:
		return a.t < b.t
	}
	return a.seq < b.seq
}
func (h nonMatchHeap[K]) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *nonMatchHeap[K]) Push(x any)   { *h = append(*h, x.(nonMatch[K])) }
func (h *nonMatchHeap[K]) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// emitAt is the stream time from which no record of the other side can
// match a record at t: t + before + after + grace + 1 (the same from
// either side, see window.JoinWindows.CloseTime).
func (j *ssJoin[K, VL, VR, VO]) emitAt(t int64) int64 {
	return j.w.CloseTime(j.w.WindowFor(t))
}

func (j *ssJoin[K, VL, VR, VO]) track(right bool, key K, t, seq int64) {
	if (right && !j.rightNM) || (!right && !j.leftNM) {
		return
	}
	kb, _ := j.kc.Encode(key) // the store encoded it already: no error
	heap.Push(&j.pending, nonMatch[K]{at: j.emitAt(t), right: right, key: key, kb: string(kb), t: t, seq: seq})
}

// start rebuilds the pending non-matches from the restored stores, once,
// at the first record: every unmatched record whose emission time the
// stream time before this record had not reached.
func (j *ssJoin[K, VL, VR, VO]) start() error {
	if j.started {
		return nil
	}
	j.started = true
	st := j.task.PriorStreamTimeMillis()
	if j.leftNM {
		err := j.left.All(func(k K, t, seq int64, v joined[VL]) bool {
			if !v.matched && st < j.emitAt(t) {
				j.track(false, k, t, seq)
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	if j.rightNM {
		return j.right.All(func(k K, t, seq int64, v joined[VR]) bool {
			if !v.matched && st < j.emitAt(t) {
				j.track(true, k, t, seq)
			}
			return true
		})
	}
	return nil
}

// advance emits the non-matches that stream time st has made final, then
// lets the stores drop what is out of retention.
func (j *ssJoin[K, VL, VR, VO]) advance(st int64) error {
	for len(j.pending) > 0 && st >= j.pending[0].at {
		nm := heap.Pop(&j.pending).(nonMatch[K])
		var emit func() error
		var vb []byte // the record's value, for the dead-letter topic
		if nm.right {
			rv, ok, err := j.right.Get(nm.key, nm.t, nm.seq)
			if err != nil {
				return err
			}
			if !ok || rv.matched {
				continue
			}
			emit = func() error {
				var zero VL
				return j.out.forward(Record[K, VO]{Key: nm.key, Value: j.joiner(nm.key, zero, false, rv.v, true), Timestamp: time.UnixMilli(nm.t)})
			}
			vb, _ = j.rvc.Encode(rv.v)
		} else {
			lv, ok, err := j.left.Get(nm.key, nm.t, nm.seq)
			if err != nil {
				return err
			}
			if !ok || lv.matched {
				continue
			}
			emit = func() error {
				var zero VR
				return j.out.forward(Record[K, VO]{Key: nm.key, Value: j.joiner(nm.key, lv.v, true, zero, false), Timestamp: time.UnixMilli(nm.t)})
			}
			vb, _ = j.lvc.Encode(lv.v)
		}
		// The non-match belongs to an earlier record, not to the one whose
		// time made it final: a failure of it is dead-lettered on its own.
		if err := j.task.Guard(emit); err != nil {
			if err := j.task.ForwardFailed(j.name, []byte(nm.kb), vb, err); err != nil {
				return err
			}
		}
	}
	if err := j.left.Advance(st); err != nil {
		return err
	}
	return j.right.Advance(st)
}

func streamStreamJoin[K, VL, VR, VO any](l Stream[K, VL], r Stream[K, VR], w window.JoinWindows, kind string, leftNM, rightNM bool,
	joiner func(K, VL, bool, VR, bool) VO, opts []Option,
) Stream[K, VO] {
	b := l.b
	c := parse[K, VO](b, "Join", opts)
	name := b.nodeName(c.name, "KSTREAM-"+kind)
	if err := w.Validate(); err != nil {
		b.pb.Errorf("%s: %v", name, err)
	}
	if l.rekeyed {
		l = repartition(l, name+"-left", config[K, VL]{}, nil)
	}
	if r.rekeyed {
		r = repartition(r, name+"-right", config[K, VR]{}, nil)
	}
	kc := known(b, l.kc)
	lvc, rvc := known(b, l.vc), known(b, r.vc)
	requireCodecs(b, "Join", name, kc, lvc)
	requireCodecs(b, "Join", name, kc, rvc)
	retention := w.Retention()
	spec := func(side string) processor.StoreSpec {
		sp := config[K, VO]{store: name + "-" + side + "-store", inMemory: c.inMemory, noLogging: c.noLogging, cache: c.cache}.storeSpec(name)
		sp.Segments = windowSegments(max(retention, time.Millisecond))
		sp.ChangelogConfigs = windowChangelogConfigs(retention)
		return sp
	}
	lspec, rspec := spec("left"), spec("right")

	// The two sides are nodes of their own (their inputs differ in type);
	// they share the task's join state, created by whichever opens first.
	var mu sync.Mutex
	states := make(map[*processor.Task]*ssJoin[K, VL, VR, VO])
	stateOf := func(task *processor.Task, out fanout[K, VO]) (*ssJoin[K, VL, VR, VO], error) {
		mu.Lock()
		defer mu.Unlock()
		if j, ok := states[task]; ok {
			return j, nil
		}
		open := func(sp processor.StoreSpec) (*state.Segmented, *processor.StoreSpec, error) {
			eng, s, err := task.StoreEngine(sp.Name)
			if err != nil {
				return nil, nil, err
			}
			return eng.(*state.Segmented), s, nil
		}
		leng, ls, err := open(lspec)
		if err != nil {
			return nil, err
		}
		reng, rs, err := open(rspec)
		if err != nil {
			return nil, err
		}
		j := &ssJoin[K, VL, VR, VO]{task: task, name: name, w: w, kc: kc, lvc: lvc, rvc: rvc, joiner: joiner, out: out, leftNM: leftNM, rightNM: rightNM,
			left:  state.NewRecords(ls.Name, leng, kc, joinedCodec(lvc), ls.Options, task.Changelog(ls.Name)),
			right: state.NewRecords(rs.Name, reng, kc, joinedCodec(rvc), rs.Options, task.Changelog(rs.Name)),
		}
		if err := task.RegisterStore(ls.Name, j.left); err != nil {
			return nil, err
		}
		if err := task.RegisterStore(rs.Name, j.right); err != nil {
			return nil, err
		}
		states[task] = j
		task.OnClose(func() error {
			mu.Lock()
			delete(states, task)
			mu.Unlock()
			return nil
		})
		return j, nil
	}

	// The merge node only passes the two sides' results on: it is the
	// node the result stream continues from.
	merge := func(name string) func(*processor.Task, []processor.Child) (any, error) {
		return func(task *processor.Task, cs []processor.Child) (any, error) {
			out, err := children[K, VO](cs)
			if err != nil {
				return nil, err
			}
			return receive[K, VO](func(rec Record[K, VO]) error {
				task.Enter(name)
				return out.forward(rec)
			}), nil
		}
	}
	lw, rw := w, w.Reverse()
	leftNode := b.pb.AddProcessor(name+"-left", func(task *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[K, VO](cs)
		if err != nil {
			return nil, err
		}
		j, err := stateOf(task, out)
		if err != nil {
			return nil, err
		}
		nodeName := name + "-left"
		return receive[K, VL](func(rec Record[K, VL]) error {
			task.Enter(nodeName)
			return wrap(nodeName, sideRecord(j, nodeName, rec, lw, j.left, j.right, false, j.rightNM, &j.rightMatches,
				func(k K, lv VL, rv VR) VO { return joiner(k, lv, true, rv, true) }))
		}), nil
	}, l.node)
	rightNode := b.pb.AddProcessor(name+"-right", func(task *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[K, VO](cs)
		if err != nil {
			return nil, err
		}
		j, err := stateOf(task, out)
		if err != nil {
			return nil, err
		}
		nodeName := name + "-right"
		return receive[K, VR](func(rec Record[K, VR]) error {
			task.Enter(nodeName)
			return wrap(nodeName, sideRecord(j, nodeName, rec, rw, j.right, j.left, true, j.leftNM, &j.leftMatches,
				func(k K, rv VR, lv VL) VO { return joiner(k, lv, true, rv, true) }))
		}), nil
	}, r.node)
	n := b.pb.AddProcessor(name, merge(name), leftNode, rightNode)
	b.pb.AddStore(lspec, leftNode, rightNode)
	b.pb.AddStore(rspec, leftNode, rightNode)
	b.pb.CoPartition(fmt.Sprintf("join %q", name), leftNode, rightNode)
	return Stream[K, VO]{b: b, node: n, kc: kc, vc: known(b, c.vc)}
}

// sideRecord processes a record of one side of a stream-stream join: w is
// the join window seen from this side, mine and other the sides' stores.
// otherNM tells whether the other side emits non-matches: only then are
// its records marked as matched. matches is scratch space.
func sideRecord[K, V, VOther, VL, VR, VO any](j *ssJoin[K, VL, VR, VO], node string, rec Record[K, V], w window.JoinWindows,
	mine *state.Records[K, joined[V]], other *state.Records[K, joined[VOther]], right, otherNM bool, matches *[]joinMatch[VOther],
	join func(K, V, VOther) VO,
) error {
	if rec.Tombstone {
		j.task.Drop()
		return nil
	}
	if err := j.start(); err != nil {
		return err
	}
	t, st := rec.Timestamp.UnixMilli(), j.task.StreamTimeMillis()
	// Non-matches first: this record cannot match them (it would be late),
	// and they must be read before its write moves the stores' retention.
	if err := j.advance(st); err != nil {
		return err
	}
	if satAdd(satAdd(t, w.After().Milliseconds()), w.GracePeriod().Milliseconds()) < st {
		j.task.DropLate(node, t, st)
		return nil
	}
	win := w.WindowFor(t)
	ms := (*matches)[:0]
	defer func() {
		clear(ms) // let the values go
		*matches = ms[:0]
	}()
	err := other.Fetch(rec.Key, win.Start, win.End, func(u, seq int64, v joined[VOther]) bool {
		ms = append(ms, joinMatch[VOther]{u, seq, v})
		return true
	})
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := j.out.forward(Record[K, VO]{Key: rec.Key, Value: join(rec.Key, rec.Value, m.v.v), Timestamp: time.UnixMilli(max(t, m.u)), Headers: rec.Headers}); err != nil {
			return err
		}
		if otherNM && !m.v.matched {
			if err := other.Put(rec.Key, m.u, m.seq, joined[VOther]{v: m.v.v, matched: true}); err != nil {
				return err
			}
		}
	}
	if st >= j.emitAt(t) {
		// Its window closed before it came (a negative bound makes that
		// possible without it being late): nothing can match it later, so
		// it is not kept, and its non-match, if any, is final now.
		if len(ms) > 0 || (right && !j.rightNM) || (!right && !j.leftNM) {
			return nil
		}
		return j.out.forward(Record[K, VO]{Key: rec.Key, Value: nonMatchOf(j, rec.Key, rec.Value, right), Timestamp: rec.Timestamp, Headers: rec.Headers})
	}
	seq := j.task.RecordMetadata().Offset
	if err := mine.Put(rec.Key, t, seq, joined[V]{v: rec.Value, matched: len(ms) > 0}); err != nil {
		return err
	}
	if len(ms) == 0 {
		j.track(right, rec.Key, t, seq)
	}
	return nil
}

// nonMatchOf returns the joiner's result for a record of one side that
// matched nothing. v is a VL when right is false and a VR when it is
// true.
func nonMatchOf[K, V, VL, VR, VO any](j *ssJoin[K, VL, VR, VO], key K, v V, right bool) VO {
	var zl VL
	var zr VR
	if right {
		return j.joiner(key, zl, false, any(v).(VR), true)
	}
	return j.joiner(key, any(v).(VL), true, zr, false)
}
