package stream

import (
	"fmt"
	"reflect"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
)

// Builder collects a topology written with the DSL. DSL calls never return
// errors: problems are recorded, each naming its operator, and Build
// returns them all.
type Builder struct {
	pb *processor.Builder
	// Codecs seen so far (at sources and in With), by type: a codec
	// follows its type through the topology, as key or as value.
	codecs map[reflect.Type]any
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{pb: processor.NewBuilder(), codecs: map[reflect.Type]any{}}
}

// remember records the codecs for their types; the first one wins.
func remember[K, V any](b *Builder, kc codec.Codec[K], vc codec.Codec[V]) {
	if kc != nil {
		if _, ok := b.codecs[reflect.TypeFor[K]()]; !ok {
			b.codecs[reflect.TypeFor[K]()] = kc
		}
	}
	if vc != nil {
		if _, ok := b.codecs[reflect.TypeFor[V]()]; !ok {
			b.codecs[reflect.TypeFor[V]()] = vc
		}
	}
}

// known returns given, else the codec seen for type T.
func known[T any](b *Builder, given codec.Codec[T]) codec.Codec[T] {
	if given != nil {
		return given
	}
	c, _ := b.codecs[reflect.TypeFor[T]()].(codec.Codec[T])
	return c
}

// Build validates the topology and returns it, or every problem found.
func (b *Builder) Build() (*processor.Topology, error) { return b.pb.Build() }

// nodeName returns the user's name or a deterministic generated one in the
// style of Kafka Streams ("KSTREAM-FILTER-0000000003").
func (b *Builder) nodeName(given, kind string) string {
	if given != "" {
		return given
	}
	return fmt.Sprintf("KSTREAM-%s-%010d", kind, b.pb.NodeCount())
}

// Option changes one operator. Every operator accepts Named; the others say
// where they apply.
type Option interface{ option() }

type named string

func (named) option() {}

// Named gives an operator a stable name. Names appear in Describe, logs,
// metrics and dead-letter headers, and name internal topics
// ("<app>-<name>-repartition"), so changing one changes those topics.
func Named(name string) Option { return named(name) }

type withCodecs[K, V any] struct {
	kc codec.Codec[K]
	vc codec.Codec[V]
}

func (withCodecs[K, V]) option() {}

// With sets the codecs of an operator's output, for To, Repartition and the
// operators that change the key or value type. Either may be nil to keep
// what the stream knows. Codecs otherwise follow their type: a codec given
// at a source or in With is reused for every later key or value of the
// same type, so With is needed only for types not seen before.
func With[K, V any](kc codec.Codec[K], vc codec.Codec[V]) Option {
	return withCodecs[K, V]{kc: kc, vc: vc}
}

// WithValue sets only the value codec; see With.
func WithValue[V any](vc codec.Codec[V]) Option { return withValue[V]{vc: vc} }

type withValue[V any] struct{ vc codec.Codec[V] }

func (withValue[V]) option() {}

// WithKey sets only the key codec; see With.
func WithKey[K any](kc codec.Codec[K]) Option { return withKey[K]{kc: kc} }

type withKey[K any] struct{ kc codec.Codec[K] }

func (withKey[K]) option() {}

type partitioner[K, V any] struct {
	fn func(key K, value V, numPartitions int) int
}

func (partitioner[K, V]) option() {}

// Partitioner chooses the output partition of To and Repartition, overriding
// the default murmur2 hash of the encoded key (Kafka's default partitioner).
// fn runs on the task's goroutine and must return a value in
// [0, numPartitions); anything else sends the record to the dead-letter
// topic.
func Partitioner[K, V any](fn func(key K, value V, numPartitions int) int) Option {
	return partitioner[K, V]{fn: fn}
}

type timestampExtractor[K, V any] struct {
	fn func(key K, value V, recordTime time.Time) time.Time
}

func (timestampExtractor[K, V]) option() {}

// TimestampExtractor gives a source's records their event time, overriding
// the record timestamp (the default): fn receives the decoded key and value
// and the record's timestamp, and returns the time the record happened, for
// example a field of the value. It sets the record's timestamp for every
// operator downstream, for the task's stream time, and for the records
// written to repartition and output topics, as Kafka Streams'
// TimestampExtractor does. A time before the Unix epoch is an error: the
// record goes to the dead-letter topic. For From, FromTopics and TableFrom.
func TimestampExtractor[K, V any](fn func(key K, value V, recordTime time.Time) time.Time) Option {
	return timestampExtractor[K, V]{fn: fn}
}

type partitions int32

func (partitions) option() {}

// Partitions sets the partition count of a repartition topic, overriding
// the default: the largest partition count among the inputs of the
// sub-topology that writes it.
func Partitions(n int) Option { return partitions(n) }

type storeName string

func (storeName) option() {}

// Materialized names the state store of a stateful operator, overriding
// the generated "<operator>-store". The store's changelog is
// "<app>-<name>-changelog", and interactive queries find it by this name.
func Materialized(name string) Option { return storeName(name) }

type inMemory struct{}

func (inMemory) option() {}

// InMemory keeps the operator's store in memory instead of LevelDB (the
// default). It is rebuilt from its changelog whenever its task opens.
func InMemory() Option { return inMemory{} }

type cacheSize int

func (cacheSize) option() {}

// CacheSize caps the entries the store's record cache holds per task. The
// cache deduplicates updates per key between commits, so downstream sees
// the latest result rather than every step. By default a store's cache has
// no cap of its own: the caches of all stores share the instance's memory
// budget (kappa.CacheBytes, 32 MiB by default). 0 turns deduplication off
// for this store: every update is forwarded at once.
func CacheSize(n int) Option { return cacheSize(n) }

type noLogging struct{}

func (noLogging) option() {}

// NoChangelog turns off the store's changelog topic. The store then cannot
// be restored on another instance: use it only for state that may be lost.
func NoChangelog() Option { return noLogging{} }

// config is the parsed options of one operator whose output is K, V.
type config[K, V any] struct {
	name       string
	kc         codec.Codec[K]
	vc         codec.Codec[V]
	part       func(K, V, int) int
	extract    func(K, V, time.Time) time.Time
	partitions int32
	store      string
	inMemory   bool
	cache      *int
	noLogging  bool
}

// storeSpec returns the spec of the operator's store, named after the node
// unless Materialized names it.
func (c config[K, V]) storeSpec(node string) processor.StoreSpec {
	sp := processor.StoreSpec{Name: c.store, InMemory: c.inMemory, Logging: !c.noLogging}
	if sp.Name == "" {
		sp.Name = node + "-store"
	}
	if c.cache != nil {
		sp.Options.CacheSize = *c.cache
		if *c.cache == 0 {
			sp.Options.CacheSize = -1 // state: negative means no deduplication
		}
	}
	return sp
}

// parse applies opts for operator op. Options of the wrong types are
// recorded as build errors naming the operator.
func parse[K, V any](b *Builder, op string, opts []Option) config[K, V] {
	var c config[K, V]
	defer func() { remember(b, c.kc, c.vc) }()
	for _, o := range opts {
		switch o := o.(type) {
		case named:
			c.name = string(o)
		case withCodecs[K, V]:
			if o.kc != nil {
				c.kc = o.kc
			}
			if o.vc != nil {
				c.vc = o.vc
			}
		case withKey[K]:
			c.kc = o.kc
		case withValue[V]:
			c.vc = o.vc
		case partitioner[K, V]:
			c.part = o.fn
		case timestampExtractor[K, V]:
			c.extract = o.fn
		case partitions:
			if o < 1 {
				b.pb.Errorf("%s: stream.Partitions(%d): must be at least 1", op, int(o))
			}
			c.partitions = int32(o)
		case storeName:
			c.store = string(o)
		case inMemory:
			c.inMemory = true
		case cacheSize:
			n := int(o)
			if n < 0 {
				b.pb.Errorf("%s: stream.CacheSize(%d): must be 0 (off) or more", op, n)
			}
			c.cache = &n
		case noLogging:
			c.noLogging = true
		case withStores:
			// read by Process
		case emitFinal:
			// read by windowed aggregations
		case nil:
			b.pb.Errorf("%s: nil option", op)
		default:
			b.pb.Errorf("%s: option %s does not fit this operator, whose output is (%s, %s)",
				op, reflect.TypeOf(o), typeName[K](), typeName[V]())
		}
	}
	return c
}

func typeName[T any]() string { return reflect.TypeFor[T]().String() }

func codecNames[K, V any](kc codec.Codec[K], vc codec.Codec[V]) string {
	name := func(n interface{ Name() string }, ok bool) string {
		if !ok {
			return "?"
		}
		return n.Name()
	}
	return name(kc, kc != nil) + " / " + name(vc, vc != nil)
}
