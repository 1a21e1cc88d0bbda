package stream

import (
	"fmt"

	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
)

// Joins pair records of two inputs by key. Go has no overloading, so each
// kind of join has its own functions: JoinTable and LeftJoinTable for a
// stream with a table, JoinTables, LeftJoinTables and OuterJoinTables for
// two tables. Their inputs must be co-partitioned: the same partition
// count, and keys partitioned the same way. A key-changing operator before
// a join makes the join repartition that side first; external topics with
// different partition counts fail at startup, naming both. See
// docs/joins.md.

// JoinTable joins each record of s with the row of t that has its key, at
// the moment the record is processed: joiner(key, value, row) is emitted
// with the record's key and timestamp. Records whose key has no row emit
// nothing. Only the stream triggers the join; updates of t only change
// what later records find. Stream records with a nil value are dropped
// (counted in TaskStatus.Dropped), as in Kafka Streams.
func JoinTable[K, V, VT, VR any](s Stream[K, V], t Table[K, VT], joiner func(key K, value V, row VT) VR, opts ...Option) Stream[K, VR] {
	return streamTableJoin(s, t, "JOIN", func(k K, v V, row VT, found bool) (VR, bool) {
		if !found {
			var zero VR
			return zero, false
		}
		return joiner(k, v, row), true
	}, opts)
}

// LeftJoinTable is JoinTable that also emits records whose key has no
// row: joiner then gets found == false and the zero row.
func LeftJoinTable[K, V, VT, VR any](s Stream[K, V], t Table[K, VT], joiner func(key K, value V, row VT, found bool) VR, opts ...Option) Stream[K, VR] {
	return streamTableJoin(s, t, "LEFTJOIN", func(k K, v V, row VT, found bool) (VR, bool) {
		return joiner(k, v, row, found), true
	}, opts)
}

func streamTableJoin[K, V, VT, VR any](s Stream[K, V], t Table[K, VT], kind string, join func(K, V, VT, bool) (VR, bool), opts []Option) Stream[K, VR] {
	b := s.b
	c := parse[K, VR](b, "Join", opts)
	name := b.nodeName(c.name, "KSTREAM-"+kind)
	t = materialize(t, name)
	if s.rekeyed {
		s = repartition(s, name, config[K, V]{}, nil)
	}
	store := t.store
	n := derive(s, name, func(task *processor.Task, name string, out fanout[K, VR]) processor.Receiver[K, V] {
		var rows state.KeyValue[K, VT]
		return receive[K, V](func(rec Record[K, V]) error {
			task.Enter(name)
			if rec.Tombstone {
				task.Drop()
				return nil
			}
			if rows == nil {
				var err error
				if rows, err = tableStore[K, VT](task, store); err != nil {
					return wrap(name, err)
				}
			}
			row, found, err := rows.Get(rec.Key)
			if err != nil {
				return wrap(name, err)
			}
			v, emit := join(rec.Key, rec.Value, row, found)
			if !emit {
				return nil
			}
			return out.forward(Record[K, VR]{Key: rec.Key, Value: v, Timestamp: rec.Timestamp, Headers: rec.Headers})
		})
	})
	b.pb.ConnectStore(store, n)
	b.pb.CoPartition(fmt.Sprintf("join %q", name), n, t.node)
	return Stream[K, VR]{b: b, node: n, kc: s.kc, vc: known(b, c.vc)}
}

// tableStore returns the key-value store holding a table in task. Stores
// are opened by their own nodes, so joins look them up at the first record.
func tableStore[K, V any](task *processor.Task, name string) (state.KeyValue[K, V], error) {
	st, ok := task.Store(name)
	if !ok {
		return nil, fmt.Errorf("table store %q is not open in task %s", name, task.ID)
	}
	kv, ok := st.(state.KeyValue[K, V])
	if !ok {
		return nil, fmt.Errorf("table store %q is %T, not a key-value store of (%s, %s)", name, st, typeName[K](), typeName[V]())
	}
	return kv, nil
}

// materialize returns t backed by a store: t itself when it has one, or a
// table built from its updates (a filtered or mapped table is computed on
// the fly, and a join needs to look rows up).
func materialize[K, V any](t Table[K, V], join string) Table[K, V] {
	if t.store != "" {
		return t
	}
	s := t.ToStream(Named(join + "-table-tostream"))
	return toTable(s, join+"-table", config[K, V]{kc: t.kc, vc: t.vc})
}

// JoinTables joins two tables by key into a table: a key has the row
// joiner(key, left, right) while both tables have it. Either side's update
// recomputes the key's row from the other side's current row; a delete on
// either side deletes the joined row (a tombstone downstream, when there
// was one). Materialized keeps the result in a store that interactive
// queries can read; otherwise it is computed on the fly.
func JoinTables[K, VL, VR, VO any](l Table[K, VL], r Table[K, VR], joiner func(key K, left VL, right VR) VO, opts ...Option) Table[K, VO] {
	return tableTableJoin(l, r, "JOIN", func(k K, lv VL, lok bool, rv VR, rok bool) (VO, bool) {
		if !lok || !rok {
			var zero VO
			return zero, false
		}
		return joiner(k, lv, rv), true
	}, opts)
}

// LeftJoinTables is JoinTables where every row of l has a joined row:
// joiner gets rightFound == false and the zero right row when r lacks the
// key.
func LeftJoinTables[K, VL, VR, VO any](l Table[K, VL], r Table[K, VR], joiner func(key K, left VL, right VR, rightFound bool) VO, opts ...Option) Table[K, VO] {
	return tableTableJoin(l, r, "LEFTJOIN", func(k K, lv VL, lok bool, rv VR, rok bool) (VO, bool) {
		if !lok {
			var zero VO
			return zero, false
		}
		return joiner(k, lv, rv, rok), true
	}, opts)
}

// OuterJoinTables is JoinTables where every key of either table has a
// joined row; joiner learns which sides have the key.
func OuterJoinTables[K, VL, VR, VO any](l Table[K, VL], r Table[K, VR], joiner func(key K, left VL, leftFound bool, right VR, rightFound bool) VO, opts ...Option) Table[K, VO] {
	return tableTableJoin(l, r, "OUTERJOIN", func(k K, lv VL, lok bool, rv VR, rok bool) (VO, bool) {
		if !lok && !rok {
			var zero VO
			return zero, false
		}
		return joiner(k, lv, lok, rv, rok), true
	}, opts)
}

// tableJoinFn computes a key's joined row from both sides' rows, and
// whether it has one.
type tableJoinFn[K, VL, VR, VO any] func(k K, lv VL, lok bool, rv VR, rok bool) (VO, bool)

func tableTableJoin[K, VL, VR, VO any](l Table[K, VL], r Table[K, VR], kind string, join tableJoinFn[K, VL, VR, VO], opts []Option) Table[K, VO] {
	b := l.b
	c := parse[K, VO](b, "Join", opts)
	name := b.nodeName(c.name, "KTABLE-"+kind)
	l, r = materialize(l, name+"-left"), materialize(r, name+"-right")
	kc, vc := known(b, pick(c.kc, l.kc)), known(b, c.vc)
	// One node per side turns that side's changes into changes of the
	// joined row; a third merges them (and keeps them, when materialized).
	left := joinSide(b, name+"-left", l, r.store, func(k K, lv VL, lok bool, rv VR, rok bool) (VO, bool) { return join(k, lv, lok, rv, rok) })
	right := joinSide(b, name+"-right", r, l.store, func(k K, rv VR, rok bool, lv VL, lok bool) (VO, bool) { return join(k, lv, lok, rv, rok) })
	var spec *processor.StoreSpec
	if c.store != "" {
		sp := c.storeSpec(name)
		sp.Keys = state.KeysOf(kc)
		spec = &sp
		requireCodecs(b, "Join", name, kc, vc)
	}
	n := b.pb.AddProcessor(name, func(task *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[K, Change[VO]](cs)
		if err != nil {
			return nil, err
		}
		if spec == nil {
			return receive[K, Change[VO]](func(rec Record[K, Change[VO]]) error {
				task.Enter(name)
				return out.forward(rec)
			}), nil
		}
		kv, err := openKV(task, spec.Name, kc, vc, out)
		if err != nil {
			return nil, err
		}
		return receive[K, Change[VO]](func(rec Record[K, Change[VO]]) error {
			task.Enter(name)
			if rec.Value.Deleted {
				return kv.DeleteAt(rec.Key, rec.Timestamp)
			}
			return kv.PutAt(rec.Key, rec.Value.New, rec.Timestamp)
		}), nil
	}, left, right)
	if spec != nil {
		b.pb.AddStore(*spec, n)
	}
	b.pb.CoPartition(fmt.Sprintf("join %q", name), l.node, r.node)
	t := Table[K, VO]{b: b, node: n, kc: kc, vc: vc}
	if spec != nil {
		t.store = spec.Name
	}
	return t
}

// forwardedRows reads a table's rows as last forwarded downstream
// (state.KV.Forwarded).
type forwardedRows[K, V any] interface {
	Forwarded(key K) (V, bool, error)
}

// joinSide adds the node that turns the changes of table t into changes of
// the joined row, reading the other side's rows from store other.
func joinSide[K, V, VOther, VO any](b *Builder, name string, t Table[K, V], other string, join func(k K, v V, ok bool, ov VOther, ook bool) (VO, bool)) *processor.Node {
	n := b.pb.AddProcessor(name, func(task *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[K, Change[VO]](cs)
		if err != nil {
			return nil, err
		}
		var rows forwardedRows[K, VOther]
		return receive[K, Change[V]](func(rec Record[K, Change[V]]) error {
			task.Enter(name)
			if rows == nil {
				kv, err := tableStore[K, VOther](task, other)
				if err != nil {
					return wrap(name, err)
				}
				if rows, _ = kv.(forwardedRows[K, VOther]); rows == nil {
					return wrap(name, fmt.Errorf("table store %q is %T, which cannot tell the rows it forwarded", other, kv))
				}
			}
			// The other side's row as it last forwarded it, not its
			// current one: a change of it still in its cache reaches this
			// join when that side flushes, and is joined with this side's
			// row then. Reading the current row instead would compute the
			// old joined row from a row that had not been joined yet, and
			// miss the delete when both sides delete a key between
			// flushes.
			ov, ook, err := rows.Forwarded(rec.Key)
			if err != nil {
				return wrap(name, err)
			}
			ch := rec.Value
			newV, newOK := join(rec.Key, ch.New, !ch.Deleted, ov, ook)
			oldV, oldOK := join(rec.Key, ch.Old, ch.HasOld, ov, ook)
			if !newOK && !oldOK {
				return nil // no joined row before or after
			}
			jc := Change[VO]{New: newV, Old: oldV, HasOld: oldOK, Deleted: !newOK, Timestamp: ch.Timestamp}
			return out.forward(Record[K, Change[VO]]{Key: rec.Key, Value: jc, Timestamp: rec.Timestamp, Headers: rec.Headers})
		}), nil
	}, t.node)
	b.pb.ConnectStore(other, n)
	return n
}
