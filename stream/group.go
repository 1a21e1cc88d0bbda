package stream

import (
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
)

// Grouped is a stream grouped by key, ready for Count, Reduce or
// Aggregate. If the key changed since the stream was read, the aggregation
// first writes it through a repartition topic, so that all records of a
// key reach the same task.
type Grouped[K, V any] struct {
	s     Stream[K, V]
	name  string // given with Named: names the repartition topic
	force bool   // GroupBy: always repartition
	c     config[K, V]
	// rep is the repartitioned stream, made by the first aggregation and
	// shared by the others, so one grouped stream has one repartition
	// topic however many aggregations read it.
	rep *Stream[K, V]
}

// GroupByKey groups records by their current key. Named names the
// repartition topic, if one is needed: "<app>-<name>-repartition".
func (s Stream[K, V]) GroupByKey(opts ...Option) Grouped[K, V] {
	c := parse[K, V](s.b, "GroupByKey", opts)
	return Grouped[K, V]{s: s, name: c.name, c: c, rep: new(Stream[K, V])}
}

// GroupBy groups records by the key fn selects. It always repartitions.
func GroupBy[K, V, KR any](s Stream[K, V], fn func(key K, value V) KR, opts ...Option) Grouped[KR, V] {
	c := parse[KR, V](s.b, "GroupBy", opts)
	name := s.b.nodeName(c.name, "GROUPBY")
	rekeyed := SelectKey(s, fn, Named(name), WithKey(c.kc))
	return Grouped[KR, V]{s: rekeyed, name: c.name, force: true, c: c, rep: new(Stream[KR, V])}
}

// input returns the stream to aggregate, repartitioned when needed, named
// after the group or else the store.
func (g Grouped[K, V]) input(store string) Stream[K, V] {
	if !g.s.rekeyed && !g.force {
		return g.s
	}
	if g.rep.b != nil {
		return *g.rep
	}
	base := g.name
	if base == "" {
		base = store
	}
	*g.rep = repartition(g.s, base, g.c, nil)
	return *g.rep
}

// Count counts records per key into a table. Tombstones are not counted.
func (g Grouped[K, V]) Count(opts ...Option) Table[K, int64] {
	return aggregate(g, "COUNT", func() int64 { return 0 },
		func(_ K, _ V, n int64, _ bool) int64 { return n + 1 }, append([]Option{WithValue(codec.Int64())}, opts...))
}

// Reduce combines the values of each key: the first value is the start,
// each later one is folded in with fn.
func (g Grouped[K, V]) Reduce(fn func(agg, value V) V, opts ...Option) Table[K, V] {
	return aggregate(g, "REDUCE", func() V { var zero V; return zero },
		func(_ K, v V, agg V, exists bool) V {
			if !exists {
				return v
			}
			return fn(agg, v)
		}, opts)
}

// Aggregate folds the values of each key into an aggregate of type VA,
// starting from init(). Its codec follows its type or comes from With.
func Aggregate[K, V, VA any](g Grouped[K, V], init func() VA, fn func(key K, value V, agg VA) VA, opts ...Option) Table[K, VA] {
	return aggregate(g, "AGGREGATE", init, func(k K, v V, agg VA, _ bool) VA { return fn(k, v, agg) }, opts)
}

func aggregate[K, V, VA any](g Grouped[K, V], kind string, init func() VA, apply func(K, V, VA, bool) VA, opts []Option) Table[K, VA] {
	b := g.s.b
	c := parse[K, VA](b, kind, opts)
	name := b.nodeName(c.name, kind)
	spec := c.storeSpec(name)
	in := g.input(spec.Name)
	kc, vac := known(b, pick(c.kc, in.kc)), known(b, c.vc)
	requireCodecs(b, kind, name, kc, vac)
	spec.Keys = state.KeysOf(kc)
	n := b.pb.AddProcessor(name, func(t *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[K, Change[VA]](cs)
		if err != nil {
			return nil, err
		}
		kv, err := openKV(t, spec.Name, kc, vac, out)
		if err != nil {
			return nil, err
		}
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			if rec.Tombstone {
				t.Drop() // stream aggregations ignore deletes, as in Kafka Streams
				return nil
			}
			agg, ok, err := kv.Get(rec.Key)
			if err != nil {
				return wrap(name, err)
			}
			if !ok {
				agg = init()
			}
			return kv.PutAt(rec.Key, apply(rec.Key, rec.Value, agg, ok), rec.Timestamp)
		}), nil
	}, in.node)
	b.pb.AddStore(spec, n)
	return Table[K, VA]{b: b, node: n, kc: kc, vc: vac, store: spec.Name}
}

// headerOp marks the records a table GroupBy sends through its
// repartition topic: "add" for a new value, "sub" for an old one.
const headerOp = "kappa.op"

var (
	opAdd = []byte("add")
	opSub = []byte("sub")
)

// GroupedTable is a table re-grouped by a new key, ready for Count,
// Reduce or AggregateTable. Each update of the source table subtracts the
// row's old value from its old group and adds the new value to its new
// group, so a row that changes group leaves the first.
type GroupedTable[K, V any] struct {
	s Stream[K, V] // the repartitioned updates, with headerOp
}

// GroupTable re-keys a table's rows with fn for aggregation. It always
// repartitions, through "<app>-<name>-repartition".
func GroupTable[K, V, KR, VR any](t Table[K, V], fn func(key K, value V) (KR, VR), opts ...Option) GroupedTable[KR, VR] {
	c := parse[KR, VR](t.b, "GroupTable", opts)
	name := t.b.nodeName(c.name, "KTABLE-GROUPBY")
	n := t.b.pb.AddProcessor(name, func(task *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[KR, VR](cs)
		if err != nil {
			return nil, err
		}
		return receive[K, Change[V]](func(rec Record[K, Change[V]]) error {
			task.Enter(name)
			ch := rec.Value
			if ch.HasOld {
				k, v := fn(rec.Key, ch.Old)
				if err := out.forward(Record[KR, VR]{Key: k, Value: v, Timestamp: rec.Timestamp,
					Headers: []processor.Header{{Key: headerOp, Value: opSub}}}); err != nil {
					return err
				}
			}
			if !ch.Deleted {
				k, v := fn(rec.Key, ch.New)
				return out.forward(Record[KR, VR]{Key: k, Value: v, Timestamp: rec.Timestamp,
					Headers: []processor.Header{{Key: headerOp, Value: opAdd}}})
			}
			return nil
		}), nil
	}, t.node)
	s := Stream[KR, VR]{b: t.b, node: n, kc: known(t.b, c.kc), vc: known(t.b, c.vc)}
	return GroupedTable[KR, VR]{s: repartition(s, name, c, nil)}
}

func isSub(hs []processor.Header) bool {
	for _, h := range hs {
		if h.Key == headerOp {
			return string(h.Value) == string(opSub)
		}
	}
	return false
}

// Count counts the rows in each group.
func (g GroupedTable[K, V]) Count(opts ...Option) Table[K, int64] {
	return aggregateTable(g, "KTABLE-COUNT", func() int64 { return 0 },
		func(_ K, _ V, n int64) int64 { return n + 1 }, func(_ K, _ V, n int64) int64 { return n - 1 },
		append([]Option{WithValue(codec.Int64())}, opts...))
}

// Reduce combines each group's rows with adder, and takes a row's old value
// back out with subtractor when it changes or leaves the group.
func (g GroupedTable[K, V]) Reduce(adder, subtractor func(agg, value V) V, opts ...Option) Table[K, V] {
	return aggregateTable(g, "KTABLE-REDUCE", func() V { var zero V; return zero },
		func(_ K, v V, agg V) V { return adder(agg, v) }, func(_ K, v V, agg V) V { return subtractor(agg, v) }, opts)
}

// AggregateTable folds each group's rows into an aggregate: adder adds a
// row's new value, subtractor removes its old value.
func AggregateTable[K, V, VA any](g GroupedTable[K, V], init func() VA, adder, subtractor func(key K, value V, agg VA) VA, opts ...Option) Table[K, VA] {
	return aggregateTable(g, "KTABLE-AGGREGATE", init, adder, subtractor, opts)
}

func aggregateTable[K, V, VA any](g GroupedTable[K, V], kind string, init func() VA, adder, subtractor func(K, V, VA) VA, opts []Option) Table[K, VA] {
	b := g.s.b
	c := parse[K, VA](b, kind, opts)
	name := b.nodeName(c.name, kind)
	spec := c.storeSpec(name)
	kc, vac := known(b, pick(c.kc, g.s.kc)), known(b, c.vc)
	requireCodecs(b, kind, name, kc, vac)
	spec.Keys = state.KeysOf(kc)
	n := b.pb.AddProcessor(name, func(t *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[K, Change[VA]](cs)
		if err != nil {
			return nil, err
		}
		kv, err := openKV(t, spec.Name, kc, vac, out)
		if err != nil {
			return nil, err
		}
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			agg, ok, err := kv.Get(rec.Key)
			if err != nil {
				return wrap(name, err)
			}
			if !ok {
				agg = init()
			}
			if isSub(rec.Headers) {
				agg = subtractor(rec.Key, rec.Value, agg)
			} else {
				agg = adder(rec.Key, rec.Value, agg)
			}
			return kv.PutAt(rec.Key, agg, rec.Timestamp)
		}), nil
	}, g.s.node)
	b.pb.AddStore(spec, n)
	return Table[K, VA]{b: b, node: n, kc: kc, vc: vac, store: spec.Name}
}
