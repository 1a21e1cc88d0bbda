package stream

import (
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
)

// Change is what a table forwards for each update of a key: the new value
// and the previous one (HasOld), or a delete.
type Change[V any] = state.Change[V]

// Table is a changelog stream read as the latest value per key: a record
// is an upsert, a tombstone a delete. Tables come from TableFrom, ToTable
// and aggregations, and are kept in a state store that is restored from
// its changelog.
type Table[K, V any] struct {
	b     *Builder
	node  *processor.Node
	kc    codec.Codec[K]
	vc    codec.Codec[V]
	store string // the store holding this table, "" when not materialized
}

// Name returns the name of the node that produces this table.
func (t Table[K, V]) Name() string { return t.node.Name }

// StoreName returns the state store holding the table, or "" when the table
// is computed on the fly (Filter, MapTableValues) and not materialized.
func (t Table[K, V]) StoreName() string { return t.store }

// TableFrom reads topic as a table: the latest value per key, with
// tombstones deleting. It is kept in a store (Materialized names it) whose
// changelog makes it restorable.
func TableFrom[K, V any](b *Builder, topic string, kc codec.Codec[K], vc codec.Codec[V], opts ...Option) Table[K, V] {
	c := parse[K, V](b, "TableFrom", opts)
	name := b.nodeName(c.name, "TABLE-SOURCE")
	src := newSource(b, name+"-source", []processor.TopicRef{{Name: topic}}, kc, vc, c.extract)
	return toTable(src, name, c)
}

// ToTable reads the stream as a table: each record upserts its key, a
// tombstone deletes it. A stream whose keys were changed (SelectKey, Map,
// FlatMap, Process) is repartitioned first, as in Kafka Streams, so that
// each key lives in the task of its partition, where interactive queries
// and joins look for it.
func (s Stream[K, V]) ToTable(opts ...Option) Table[K, V] {
	c := parse[K, V](s.b, "ToTable", opts)
	name := s.b.nodeName(c.name, "TOTABLE")
	if s.rekeyed {
		s = repartition(s, name, c, nil)
	}
	return toTable(s, name, c)
}

func toTable[K, V any](s Stream[K, V], name string, c config[K, V]) Table[K, V] {
	spec := c.storeSpec(name)
	kc, vc := known(s.b, pick(c.kc, s.kc)), known(s.b, pick(c.vc, s.vc))
	requireCodecs(s.b, "ToTable", name, kc, vc)
	spec.Keys = state.KeysOf(kc)
	f := func(t *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[K, Change[V]](cs)
		if err != nil {
			return nil, err
		}
		kv, err := openKV(t, spec.Name, kc, vc, out)
		if err != nil {
			return nil, err
		}
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			if rec.Tombstone {
				return kv.DeleteAt(rec.Key, rec.Timestamp)
			}
			return kv.PutAt(rec.Key, rec.Value, rec.Timestamp)
		}), nil
	}
	n := s.b.pb.AddProcessor(name, f, s.node)
	s.b.pb.AddStore(spec, n)
	return Table[K, V]{b: s.b, node: n, kc: kc, vc: vc, store: spec.Name}
}

// openKV layers a typed store over the task's engine for store name,
// forwarding its flushed changes to out, and registers it with the task.
func openKV[K, V any](t *processor.Task, name string, kc codec.Codec[K], vc codec.Codec[V], out fanout[K, Change[V]]) (*state.KV[K, V], error) {
	eng, spec, err := t.StoreEngine(name)
	if err != nil {
		return nil, err
	}
	var forward func(K, Change[V]) error
	if len(out) > 0 {
		forward = func(k K, c Change[V]) error {
			ts := c.Timestamp
			if ts.IsZero() {
				ts = t.StreamTime()
			}
			return out.forward(Record[K, Change[V]]{Key: k, Value: c, Timestamp: ts})
		}
	}
	kv := state.NewKV(name, eng, kc, vc, spec.Options, t.Changelog(name), forward)
	if err := t.RegisterStore(name, kv); err != nil {
		return nil, err
	}
	return kv, nil
}

func requireCodecs[K, V any](b *Builder, op, node string, kc codec.Codec[K], vc codec.Codec[V]) {
	if kc == nil {
		b.pb.Errorf("%s (node %q): no key codec for %s; pass stream.With(keyCodec, valueCodec)", op, node, typeName[K]())
	}
	if vc == nil {
		b.pb.Errorf("%s (node %q): no value codec for %s; pass stream.With(keyCodec, valueCodec)", op, node, typeName[V]())
	}
}

// Filter keeps the rows for which keep returns true. A row that stops
// matching is forwarded as a delete, so downstream tables drop it.
func (t Table[K, V]) Filter(keep func(key K, value V) bool, opts ...Option) Table[K, V] {
	return t.filter(keep, false, opts)
}

// FilterNot drops the rows for which drop returns true.
func (t Table[K, V]) FilterNot(drop func(key K, value V) bool, opts ...Option) Table[K, V] {
	return t.filter(drop, true, opts)
}

func (t Table[K, V]) filter(pred func(K, V) bool, not bool, opts []Option) Table[K, V] {
	c := parse[K, V](t.b, "Table.Filter", opts)
	name := t.b.nodeName(c.name, "KTABLE-FILTER")
	n := t.b.pb.AddProcessor(name, func(task *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[K, Change[V]](cs)
		if err != nil {
			return nil, err
		}
		return receive[K, Change[V]](func(rec Record[K, Change[V]]) error {
			task.Enter(name)
			c := rec.Value
			newOK := !c.Deleted && pred(rec.Key, c.New) != not
			oldOK := c.HasOld && pred(rec.Key, c.Old) != not
			var fc Change[V]
			switch {
			case newOK:
				fc = Change[V]{New: c.New, Old: c.Old, HasOld: oldOK, Timestamp: c.Timestamp}
			case oldOK:
				fc = Change[V]{Old: c.Old, HasOld: true, Deleted: true, Timestamp: c.Timestamp}
			default:
				return nil // not in the filtered table before or after
			}
			return out.forward(Record[K, Change[V]]{Key: rec.Key, Value: fc, Timestamp: rec.Timestamp, Headers: rec.Headers})
		}), nil
	}, t.node)
	t.node, t.store = n, ""
	return t
}

// MapTableValues maps every row's value; the key is unchanged.
func MapTableValues[K, V, VR any](t Table[K, V], fn func(key K, value V) VR, opts ...Option) Table[K, VR] {
	c := parse[K, VR](t.b, "MapTableValues", opts)
	name := t.b.nodeName(c.name, "KTABLE-MAPVALUES")
	n := t.b.pb.AddProcessor(name, func(task *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[K, Change[VR]](cs)
		if err != nil {
			return nil, err
		}
		return receive[K, Change[V]](func(rec Record[K, Change[V]]) error {
			task.Enter(name)
			c := rec.Value
			mc := Change[VR]{HasOld: c.HasOld, Deleted: c.Deleted, Timestamp: c.Timestamp}
			if !c.Deleted {
				mc.New = fn(rec.Key, c.New)
			}
			if c.HasOld {
				mc.Old = fn(rec.Key, c.Old)
			}
			return out.forward(Record[K, Change[VR]]{Key: rec.Key, Value: mc, Timestamp: rec.Timestamp, Headers: rec.Headers})
		}), nil
	}, t.node)
	return Table[K, VR]{b: t.b, node: n, kc: t.kc, vc: known(t.b, c.vc)}
}

// ToStream turns the table's updates into a stream: each update becomes a
// record with the new value, and each delete a tombstone.
func (t Table[K, V]) ToStream(opts ...Option) Stream[K, V] {
	c := parse[K, V](t.b, "ToStream", opts)
	name := t.b.nodeName(c.name, "KTABLE-TOSTREAM")
	n := t.b.pb.AddProcessor(name, func(task *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[K, V](cs)
		if err != nil {
			return nil, err
		}
		return receive[K, Change[V]](func(rec Record[K, Change[V]]) error {
			task.Enter(name)
			return out.forward(Record[K, V]{Key: rec.Key, Value: rec.Value.New, Timestamp: rec.Timestamp, Headers: rec.Headers, Tombstone: rec.Value.Deleted})
		}), nil
	}, t.node)
	return Stream[K, V]{b: t.b, node: n, kc: t.kc, vc: t.vc}
}
