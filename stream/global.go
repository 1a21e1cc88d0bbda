package stream

import (
	"fmt"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
)

// Global is a global table: a topic read whole by every instance, from
// every partition, and kept up to date in the background. It is read
// before any task processes a record. Joins with it look rows up by a key
// computed from each record, so they need no co-partitioning and no
// repartitioning.
type Global[K, V any] struct {
	b    *Builder
	name string
	kc   codec.Codec[K]
	vc   codec.Codec[V]
}

// GlobalTable reads topic as a global table: the latest value per key,
// with nil values deleting. Materialized names its store (the default is
// "<topic>-global"). The rows are kept in memory, decoded on each lookup,
// and read again from the topic whenever the instance starts.
func GlobalTable[K, V any](b *Builder, topic string, kc codec.Codec[K], vc codec.Codec[V], opts ...Option) Global[K, V] {
	c := parse[K, V](b, "GlobalTable", opts)
	name := c.store
	if name == "" {
		name = topic + "-global"
	}
	if kc == nil || vc == nil {
		b.pb.Errorf("GlobalTable(%q): key and value codecs are required", topic)
	}
	remember(b, kc, vc)
	b.pb.AddGlobal(processor.GlobalSpec{Name: name, Topic: topic})
	return Global[K, V]{b: b, name: name, kc: kc, vc: vc}
}

// JoinGlobal joins each record of s with the row of g whose key is
// key(k, v): joiner(k, v, row) is emitted with the record's key and
// timestamp. Records whose row is missing emit nothing. Only the stream
// triggers. Stream records with a nil value are dropped and counted.
func JoinGlobal[K, V, KG, VG, VR any](s Stream[K, V], g Global[KG, VG], key func(k K, v V) KG, joiner func(k K, v V, row VG) VR, opts ...Option) Stream[K, VR] {
	return globalJoin(s, g, "JOIN", key, func(k K, v V, row VG, found bool) (VR, bool) {
		if !found {
			var zero VR
			return zero, false
		}
		return joiner(k, v, row), true
	}, opts)
}

// LeftJoinGlobal is JoinGlobal that also emits records whose row is
// missing: joiner gets found == false and the zero row.
func LeftJoinGlobal[K, V, KG, VG, VR any](s Stream[K, V], g Global[KG, VG], key func(k K, v V) KG, joiner func(k K, v V, row VG, found bool) VR, opts ...Option) Stream[K, VR] {
	return globalJoin(s, g, "LEFTJOIN", key, func(k K, v V, row VG, found bool) (VR, bool) {
		return joiner(k, v, row, found), true
	}, opts)
}

func globalJoin[K, V, KG, VG, VR any](s Stream[K, V], g Global[KG, VG], kind string, key func(K, V) KG, join func(K, V, VG, bool) (VR, bool), opts []Option) Stream[K, VR] {
	b := s.b
	c := parse[K, VR](b, "JoinGlobal", opts)
	name := b.nodeName(c.name, "KSTREAM-GLOBAL"+kind)
	if g.b != b {
		b.pb.Errorf("%s: the global table belongs to another builder", name)
	}
	n := derive(s, name, func(task *processor.Task, name string, out fanout[K, VR]) processor.Receiver[K, V] {
		var rows *processor.GlobalStore
		return receive[K, V](func(rec Record[K, V]) error {
			task.Enter(name)
			if rec.Tombstone {
				task.Drop()
				return nil
			}
			if rows == nil {
				var err error
				if rows, err = task.GlobalStore(g.name); err != nil {
					return wrap(name, err)
				}
			}
			kb, err := g.kc.Encode(key(rec.Key, rec.Value))
			if err != nil {
				return wrap(name, err)
			}
			var row VG
			raw, found := rows.Get(kb)
			if found {
				if row, err = g.vc.Decode(raw); err != nil {
					return wrap(name, fmt.Errorf("global table %q row %q: %w", g.name, kb, err))
				}
			}
			v, emit := join(rec.Key, rec.Value, row, found)
			if !emit {
				return nil
			}
			return out.forward(Record[K, VR]{Key: rec.Key, Value: v, Timestamp: rec.Timestamp, Headers: rec.Headers})
		})
	})
	return Stream[K, VR]{b: b, node: n, kc: s.kc, vc: known(b, c.vc), rekeyed: s.rekeyed}
}
