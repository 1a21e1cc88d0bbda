package stream

import (
	"fmt"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
)

// Stream is an unbounded sequence of records with keys of type K and values
// of type V: every record is an independent event. Operators that keep the
// types are methods; operators that change them are functions taking the
// stream first (MapValues, SelectKey, ...).
type Stream[K, V any] struct {
	b    *Builder
	node *processor.Node
	kc   codec.Codec[K]
	vc   codec.Codec[V]
	// rekeyed marks a stream whose key changed since it was read, so the
	// next key-based stateful operator must repartition it first.
	rekeyed bool
}

// KeyValue is one output of FlatMap.
type KeyValue[K, V any] struct {
	Key   K
	Value V
}

// KV builds a KeyValue.
func KV[K, V any](k K, v V) KeyValue[K, V] { return KeyValue[K, V]{Key: k, Value: v} }

// From reads topic as a stream, decoding keys with kc and values with vc.
// The codecs fix the stream's types. A record with a nil key yields the
// zero K; a record with a nil value is a tombstone (Record.Tombstone, zero
// V), which stateless operators pass on without calling user functions.
func From[K, V any](b *Builder, topic string, kc codec.Codec[K], vc codec.Codec[V], opts ...Option) Stream[K, V] {
	return FromTopics(b, []string{topic}, kc, vc, opts...)
}

// FromTopics reads several topics as one stream. Partition p of every topic
// is processed by one task; the sub-topology has as many tasks as its
// largest input has partitions.
func FromTopics[K, V any](b *Builder, topics []string, kc codec.Codec[K], vc codec.Codec[V], opts ...Option) Stream[K, V] {
	c := parse[K, V](b, "From", opts)
	name := b.nodeName(c.name, "SOURCE")
	if kc == nil || vc == nil {
		b.pb.Errorf("From(%v) (node %q): key and value codecs are required", topics, name)
	}
	refs := make([]processor.TopicRef, len(topics))
	for i, t := range topics {
		if t == "" {
			b.pb.Errorf("From (node %q): empty topic name", name)
		}
		refs[i] = processor.TopicRef{Name: t}
	}
	return newSource(b, name, refs, kc, vc, c.extract)
}

// newSource adds a source node; extract, when set, gives records their
// event time (TimestampExtractor).
func newSource[K, V any](b *Builder, name string, refs []processor.TopicRef, kc codec.Codec[K], vc codec.Codec[V], extract func(K, V, time.Time) time.Time) Stream[K, V] {
	f := func(t *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[K, V](cs)
		if err != nil {
			return nil, err
		}
		return &source[K, V]{t: t, name: name, kc: kc, vc: vc, extract: extract, out: out}, nil
	}
	remember(b, kc, vc)
	n := b.pb.AddSource(name, refs, codecNames(kc, vc), f)
	return Stream[K, V]{b: b, node: n, kc: kc, vc: vc}
}

type source[K, V any] struct {
	t       *processor.Task
	name    string
	kc      codec.Codec[K]
	vc      codec.Codec[V]
	extract func(K, V, time.Time) time.Time
	out     fanout[K, V]
}

func (s *source[K, V]) ReceiveRaw(r *processor.RawRecord) error {
	rec := Record[K, V]{Timestamp: r.Timestamp, Headers: r.Headers, Tombstone: r.Value == nil}
	var err error
	if r.Key != nil {
		if rec.Key, err = s.kc.Decode(r.Key); err != nil {
			return wrap(s.name, &processor.DecodeFailure{Part: "key", Err: err})
		}
	}
	if r.Value != nil {
		if rec.Value, err = s.vc.Decode(r.Value); err != nil {
			return wrap(s.name, &processor.DecodeFailure{Part: "value", Err: err})
		}
	}
	if s.extract != nil {
		rec.Timestamp = s.extract(rec.Key, rec.Value, r.Timestamp)
		ms := rec.Timestamp.UnixMilli()
		if ms < 0 {
			return wrap(s.name, fmt.Errorf("timestamp extractor returned %v, before the Unix epoch: records need a timestamp ≥ 0", rec.Timestamp))
		}
		s.t.SetRecordTime(ms)
	}
	return s.out.forward(rec)
}

// Name returns the name of the node that produces this stream.
func (s Stream[K, V]) Name() string { return s.node.Name }

// Filter keeps the records for which keep returns true.
func (s Stream[K, V]) Filter(keep func(key K, value V) bool, opts ...Option) Stream[K, V] {
	return s.filter("FILTER", keep, false, opts)
}

// FilterNot drops the records for which drop returns true.
func (s Stream[K, V]) FilterNot(drop func(key K, value V) bool, opts ...Option) Stream[K, V] {
	return s.filter("FILTER", drop, true, opts)
}

func (s Stream[K, V]) filter(kind string, pred func(K, V) bool, not bool, opts []Option) Stream[K, V] {
	c := parse[K, V](s.b, "Filter", opts)
	name := s.b.nodeName(c.name, kind)
	n := derive(s, name, func(t *processor.Task, name string, out fanout[K, V]) processor.Receiver[K, V] {
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			if rec.Tombstone || pred(rec.Key, rec.Value) != not {
				return out.forward(rec)
			}
			return nil
		})
	})
	return s.with(n)
}

// with returns a stream of the same types produced by node n.
func (s Stream[K, V]) with(n *processor.Node) Stream[K, V] {
	s.node = n
	return s
}

// Peek calls fn for each record and passes the record on unchanged. fn runs
// on the task's goroutine; it must not keep rec.Headers.
func (s Stream[K, V]) Peek(fn func(key K, value V), opts ...Option) Stream[K, V] {
	c := parse[K, V](s.b, "Peek", opts)
	name := s.b.nodeName(c.name, "PEEK")
	n := derive(s, name, func(t *processor.Task, name string, out fanout[K, V]) processor.Receiver[K, V] {
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			if !rec.Tombstone {
				fn(rec.Key, rec.Value)
			}
			return out.forward(rec)
		})
	})
	return s.with(n)
}

// Foreach calls fn for each record. It ends the stream. fn runs on the
// task's goroutine, concurrently with other tasks' calls: guard shared
// state.
func (s Stream[K, V]) Foreach(fn func(key K, value V), opts ...Option) {
	c := parse[K, V](s.b, "Foreach", opts)
	name := s.b.nodeName(c.name, "FOREACH")
	derive(s, name, func(t *processor.Task, name string, _ fanout[K, V]) processor.Receiver[K, V] {
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			if !rec.Tombstone {
				fn(rec.Key, rec.Value)
			}
			return nil
		})
	})
}

// Merge combines s with others into one stream. Order between the inputs
// follows processing order; order within each input is kept.
func (s Stream[K, V]) Merge(others ...Stream[K, V]) Stream[K, V] {
	name := s.b.nodeName("", "MERGE")
	parents := make([]*processor.Node, len(others))
	for i, o := range others {
		if o.b != s.b {
			s.b.pb.Errorf("Merge (node %q): stream %d comes from another Builder", name, i+1)
			return s
		}
		parents[i] = o.node
		s.rekeyed = s.rekeyed || o.rekeyed
		if s.kc == nil {
			s.kc = o.kc
		}
		if s.vc == nil {
			s.vc = o.vc
		}
	}
	n := derive(s, name, func(_ *processor.Task, _ string, out fanout[K, V]) processor.Receiver[K, V] {
		return receive[K, V](out.forward)
	}, parents...)
	return s.with(n)
}

// MapValues replaces each value with fn's result. The key is unchanged, so
// no repartitioning is needed downstream.
func MapValues[K, V, VR any](s Stream[K, V], fn func(key K, value V) VR, opts ...Option) Stream[K, VR] {
	return MapValuesErr(s, func(k K, v V) (VR, error) { return fn(k, v), nil }, opts...)
}

// MapValuesErr is MapValues with a function that can fail: an error sends
// the input record to the dead-letter topic.
func MapValuesErr[K, V, VR any](s Stream[K, V], fn func(key K, value V) (VR, error), opts ...Option) Stream[K, VR] {
	c := parse[K, VR](s.b, "MapValues", opts)
	name := s.b.nodeName(c.name, "MAPVALUES")
	n := derive(s, name, func(t *processor.Task, name string, out fanout[K, VR]) processor.Receiver[K, V] {
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			if rec.Tombstone {
				return out.forward(Record[K, VR]{Key: rec.Key, Timestamp: rec.Timestamp, Headers: rec.Headers, Tombstone: true})
			}
			v, err := fn(rec.Key, rec.Value)
			if err != nil {
				return wrap(name, err)
			}
			return out.forward(Record[K, VR]{Key: rec.Key, Value: v, Timestamp: rec.Timestamp, Headers: rec.Headers})
		})
	})
	return Stream[K, VR]{b: s.b, node: n, kc: pick(c.kc, s.kc), vc: known(s.b, c.vc), rekeyed: s.rekeyed}
}

func pick[T any](given, inherited codec.Codec[T]) codec.Codec[T] {
	if given != nil {
		return given
	}
	return inherited
}

// Map replaces each record's key and value. A new key means the next
// key-based stateful operator repartitions first.
func Map[K, V, KR, VR any](s Stream[K, V], fn func(key K, value V) (KR, VR), opts ...Option) Stream[KR, VR] {
	return MapErr(s, func(k K, v V) (KR, VR, error) { kr, vr := fn(k, v); return kr, vr, nil }, opts...)
}

// MapErr is Map with a function that can fail.
func MapErr[K, V, KR, VR any](s Stream[K, V], fn func(key K, value V) (KR, VR, error), opts ...Option) Stream[KR, VR] {
	c := parse[KR, VR](s.b, "Map", opts)
	name := s.b.nodeName(c.name, "MAP")
	n := derive(s, name, func(t *processor.Task, name string, out fanout[KR, VR]) processor.Receiver[K, V] {
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			if rec.Tombstone {
				t.Drop() // a delete cannot be re-keyed
				return nil
			}
			k, v, err := fn(rec.Key, rec.Value)
			if err != nil {
				return wrap(name, err)
			}
			return out.forward(Record[KR, VR]{Key: k, Value: v, Timestamp: rec.Timestamp, Headers: rec.Headers})
		})
	})
	return Stream[KR, VR]{b: s.b, node: n, kc: known(s.b, c.kc), vc: known(s.b, c.vc), rekeyed: true}
}

// SelectKey sets each record's key to fn's result, keeping the value. The
// next key-based stateful operator repartitions first.
func SelectKey[K, V, KR any](s Stream[K, V], fn func(key K, value V) KR, opts ...Option) Stream[KR, V] {
	c := parse[KR, V](s.b, "SelectKey", opts)
	name := s.b.nodeName(c.name, "KEY-SELECT")
	n := derive(s, name, func(t *processor.Task, name string, out fanout[KR, V]) processor.Receiver[K, V] {
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			if rec.Tombstone {
				t.Drop() // a delete cannot be re-keyed
				return nil
			}
			return out.forward(Record[KR, V]{Key: fn(rec.Key, rec.Value), Value: rec.Value, Timestamp: rec.Timestamp, Headers: rec.Headers})
		})
	})
	return Stream[KR, V]{b: s.b, node: n, kc: known(s.b, c.kc), vc: pick(c.vc, s.vc), rekeyed: true}
}

// FlatMap turns each record into zero or more records with new keys and
// values. Outputs keep the input's timestamp and headers.
func FlatMap[K, V, KR, VR any](s Stream[K, V], fn func(key K, value V) []KeyValue[KR, VR], opts ...Option) Stream[KR, VR] {
	return FlatMapErr(s, func(k K, v V) ([]KeyValue[KR, VR], error) { return fn(k, v), nil }, opts...)
}

// FlatMapErr is FlatMap with a function that can fail.
func FlatMapErr[K, V, KR, VR any](s Stream[K, V], fn func(key K, value V) ([]KeyValue[KR, VR], error), opts ...Option) Stream[KR, VR] {
	c := parse[KR, VR](s.b, "FlatMap", opts)
	name := s.b.nodeName(c.name, "FLATMAP")
	n := derive(s, name, func(t *processor.Task, name string, out fanout[KR, VR]) processor.Receiver[K, V] {
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			if rec.Tombstone {
				t.Drop() // a delete cannot be re-keyed
				return nil
			}
			kvs, err := fn(rec.Key, rec.Value)
			if err != nil {
				return wrap(name, err)
			}
			for _, kv := range kvs {
				if err := out.forward(Record[KR, VR]{Key: kv.Key, Value: kv.Value, Timestamp: rec.Timestamp, Headers: rec.Headers}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	return Stream[KR, VR]{b: s.b, node: n, kc: known(s.b, c.kc), vc: known(s.b, c.vc), rekeyed: true}
}

// FlatMapValues turns each value into zero or more values, keeping the key.
func FlatMapValues[K, V, VR any](s Stream[K, V], fn func(key K, value V) []VR, opts ...Option) Stream[K, VR] {
	return FlatMapValuesErr(s, func(k K, v V) ([]VR, error) { return fn(k, v), nil }, opts...)
}

// FlatMapValuesErr is FlatMapValues with a function that can fail.
func FlatMapValuesErr[K, V, VR any](s Stream[K, V], fn func(key K, value V) ([]VR, error), opts ...Option) Stream[K, VR] {
	c := parse[K, VR](s.b, "FlatMapValues", opts)
	name := s.b.nodeName(c.name, "FLATMAPVALUES")
	n := derive(s, name, func(t *processor.Task, name string, out fanout[K, VR]) processor.Receiver[K, V] {
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			if rec.Tombstone {
				return out.forward(Record[K, VR]{Key: rec.Key, Timestamp: rec.Timestamp, Headers: rec.Headers, Tombstone: true})
			}
			vs, err := fn(rec.Key, rec.Value)
			if err != nil {
				return wrap(name, err)
			}
			for _, v := range vs {
				if err := out.forward(Record[K, VR]{Key: rec.Key, Value: v, Timestamp: rec.Timestamp, Headers: rec.Headers}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	return Stream[K, VR]{b: s.b, node: n, kc: pick(c.kc, s.kc), vc: known(s.b, c.vc), rekeyed: s.rekeyed}
}

func (s Stream[K, V]) String() string { return fmt.Sprintf("Stream(%s)", s.node.Name) }
