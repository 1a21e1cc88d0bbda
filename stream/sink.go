package stream

import (
	"fmt"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
)

// To writes the stream to topic. Keys and values are encoded with the
// stream's codecs, or those given with With. The partition is murmur2 of
// the encoded key, as Kafka's default partitioner, unless a Partitioner is
// given. Timestamps and headers are kept.
//
// A topic that does not exist is created by the app at startup with the
// partition count of the sub-topology's inputs.
func (s Stream[K, V]) To(topic string, opts ...Option) {
	op := fmt.Sprintf("To(%q)", topic)
	if topic == "" {
		s.b.pb.Errorf("%s: empty topic name", op)
	}
	addSink(s, op, &processor.TopicRef{Name: topic}, nil, opts)
}

// ToFunc writes each record to the topic chosen by fn, which runs on the
// task's goroutine. Chosen topics must exist; a record whose topic is
// missing goes to the dead-letter topic.
func (s Stream[K, V]) ToFunc(fn func(key K, value V, meta processor.RecordMetadata) string, opts ...Option) {
	if fn == nil {
		s.b.pb.Errorf("ToFunc: nil topic function")
	}
	addSink(s, "ToFunc", nil, fn, opts)
}

func addSink[K, V any](s Stream[K, V], op string, ref *processor.TopicRef,
	topicFn func(K, V, processor.RecordMetadata) string, opts []Option,
) *processor.Node {
	c := parse[K, V](s.b, op, opts)
	name := s.b.nodeName(c.name, "SINK")
	kc, vc := known(s.b, pick(c.kc, s.kc)), known(s.b, pick(c.vc, s.vc))
	if kc == nil {
		s.b.pb.Errorf("%s (node %q): no key codec for %s: the key type changed after the source; pass stream.With(keyCodec, valueCodec)", op, name, typeName[K]())
	}
	if vc == nil {
		s.b.pb.Errorf("%s (node %q): no value codec for %s: the value type changed after the source; pass stream.With(keyCodec, valueCodec)", op, name, typeName[V]())
	}
	f := func(t *processor.Task, _ []processor.Child) (any, error) {
		sk := &sink[K, V]{t: t, name: name, kc: kc, vc: vc, topicFn: topicFn, part: c.part}
		if ref != nil {
			sk.topic = ref.Resolve(t.AppID())
		}
		return sk, nil
	}
	return s.b.pb.AddSink(name, ref, codecNames(kc, vc), f, s.node)
}

type sink[K, V any] struct {
	t       *processor.Task
	name    string
	topic   string
	kc      codec.Codec[K]
	vc      codec.Codec[V]
	topicFn func(K, V, processor.RecordMetadata) string
	part    func(K, V, int) int
}

func (s *sink[K, V]) Receive(rec Record[K, V]) error {
	s.t.Enter(s.name)
	kb, err := s.kc.Encode(rec.Key)
	if err != nil {
		return wrap(s.name, err)
	}
	var vb []byte
	if !rec.Tombstone {
		if vb, err = s.vc.Encode(rec.Value); err != nil {
			return wrap(s.name, err)
		}
	}
	topic := s.topic
	if s.topicFn != nil {
		if topic = s.topicFn(rec.Key, rec.Value, s.t.RecordMetadata()); topic == "" {
			return wrap(s.name, fmt.Errorf("topic function returned an empty topic name"))
		}
	}
	var p int32
	if s.part != nil {
		n, err := s.t.PartitionCount(topic)
		if err != nil {
			return wrap(s.name, err)
		}
		pi := s.part(rec.Key, rec.Value, int(n))
		if pi < 0 || pi >= int(n) {
			return wrap(s.name, fmt.Errorf("partitioner returned %d for topic %q with %d partitions", pi, topic, n))
		}
		p = int32(pi)
	} else if p, err = s.t.PartitionFor(topic, kb); err != nil {
		return wrap(s.name, err)
	}
	s.t.Send(&processor.RawRecord{Topic: topic, Partition: p, Key: kb, Value: vb, Timestamp: rec.Timestamp, Headers: rec.Headers})
	return nil
}

// Repartition writes the stream through an internal topic,
// "<app>-<name>-repartition", and reads it back, so records are
// partitioned by their current key. Stateful operators after a key change
// do this on their own; call it to control the name or partition count
// (Partitions), or to spread load. Codecs are the stream's or With's.
func (s Stream[K, V]) Repartition(opts ...Option) Stream[K, V] {
	c := parse[K, V](s.b, "Repartition", opts)
	base := s.b.nodeName(c.name, "REPARTITION")
	return repartition(s, base, c, opts)
}

func repartition[K, V any](s Stream[K, V], base string, c config[K, V], opts []Option) Stream[K, V] {
	ref := processor.TopicRef{Name: base + "-repartition", Internal: true}
	s.b.pb.AddInternalTopic(processor.InternalTopic{
		Ref:        ref,
		Partitions: c.partitions,
		// Infinite retention: records leave by the runtime's purge after
		// they are committed, never by age while the app is down.
		Configs: map[string]string{"cleanup.policy": "delete", "retention.ms": "-1"},
	})
	var sinkOpts []Option
	for _, o := range opts {
		if _, isName := o.(named); !isName {
			if _, isParts := o.(partitions); !isParts {
				sinkOpts = append(sinkOpts, o)
			}
		}
	}
	sinkOpts = append(sinkOpts, Named(base+"-repartition-sink"))
	addSink(s, fmt.Sprintf("Repartition(%q)", base), &ref, nil, sinkOpts)
	out := newSource(s.b, base+"-repartition-source", []processor.TopicRef{ref}, known(s.b, pick(c.kc, s.kc)), known(s.b, pick(c.vc, s.vc)), nil)
	return out
}
