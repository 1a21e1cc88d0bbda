package stream

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
)

// Process adds a Processor API node: supplier is called once per task for a
// fresh processor, which sees each record with its timestamp, headers and
// metadata and forwards zero or more records of (KR, VR). As in Kafka
// Streams, the output counts as re-keyed: the next key-based stateful
// operator repartitions it. Output codecs follow their types or come from
// With.
func Process[K, V, KR, VR any](s Stream[K, V], supplier func() processor.Processor[K, V, KR, VR], opts ...Option) Stream[KR, VR] {
	c := parse[KR, VR](s.b, "Process", opts)
	name := s.b.nodeName(c.name, "PROCESSOR")
	if supplier == nil {
		s.b.pb.Errorf("Process (node %q): nil supplier", name)
	}
	var stores []StoreDef
	for _, o := range opts {
		if sd, ok := o.(withStores); ok {
			stores = append(stores, sd...)
		}
	}
	f := func(t *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[KR, VR](cs)
		if err != nil {
			return nil, err
		}
		for _, sd := range stores {
			if err := sd.open(t); err != nil {
				return nil, err
			}
		}
		pc := &procContext[KR, VR]{t: t, name: name, out: out, byName: make(map[string]processor.Receiver[KR, VR], len(cs))}
		for i, c := range cs {
			pc.byName[c.Name] = out[i]
		}
		p := supplier()
		if p == nil {
			return nil, fmt.Errorf("supplier returned a nil processor")
		}
		if err := p.Init(pc); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
		t.OnClose(p.Close)
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			pc.err = nil
			if err := p.Process(rec); err != nil {
				return wrap(name, err)
			}
			return pc.err
		}), nil
	}
	n := s.b.pb.AddProcessor(name, f, s.node)
	for _, sd := range stores {
		if sd.err != nil {
			s.b.pb.Errorf("%s: %v", name, sd.err)
			continue
		}
		s.b.pb.AddStore(sd.spec, n)
	}
	return Stream[KR, VR]{b: s.b, node: n, kc: known(s.b, c.kc), vc: known(s.b, c.vc), rekeyed: true}
}

type procContext[K, V any] struct {
	t      *processor.Task
	name   string
	out    fanout[K, V]
	byName map[string]processor.Receiver[K, V]
	err    error // the first downstream error of the current input record
}

func (c *procContext[K, V]) Forward(rec Record[K, V]) {
	if c.err == nil {
		c.err = c.out.forward(rec)
		c.t.Enter(c.name)
	}
}

func (c *procContext[K, V]) ForwardTo(child string, rec Record[K, V]) {
	if c.err != nil {
		return
	}
	r, ok := c.byName[child]
	if !ok {
		c.err = wrap(c.name, fmt.Errorf("ForwardTo(%q): no such child", child))
		return
	}
	c.err = r.Receive(rec)
	c.t.Enter(c.name)
}

func (c *procContext[K, V]) Schedule(interval time.Duration, kind processor.PunctuationType, fn func(time.Time) error) func() {
	c.t.Enter(c.name)
	return c.t.Schedule(interval, kind, func(now time.Time) error {
		c.err = nil
		if err := fn(now); err != nil {
			return err
		}
		return c.err
	})
}

func (c *procContext[K, V]) Store(name string) (processor.Store, bool) { return c.t.Store(name) }

func (c *procContext[K, V]) RecordMetadata() processor.RecordMetadata { return c.t.RecordMetadata() }
func (c *procContext[K, V]) TaskID() processor.TaskID                 { return c.t.ID }
func (c *procContext[K, V]) AppID() string                            { return c.t.AppID() }
func (c *procContext[K, V]) Logger() *slog.Logger                     { return c.t.Logger().With("node", c.name) }

// StoreDef declares a state store for a Processor API node. Build one with
// KeyValueStore and attach it with WithStore.
type StoreDef struct {
	spec processor.StoreSpec
	open func(t *processor.Task) error
	err  error // reported when the store is attached
}

// KeyValueStore declares a key-value store for a Process node: LevelDB by
// default (InMemory for memory), changelogged to "<app>-<name>-changelog"
// (NoChangelog to turn it off), with a record cache (CacheSize). The
// processor gets it with processor.KeyValueStore[K, V](ctx, name). Nothing
// is forwarded when the cache flushes: the processor forwards what it
// wants itself.
func KeyValueStore[K, V any](name string, kc codec.Codec[K], vc codec.Codec[V], opts ...Option) StoreDef {
	spec := storeDefSpec[K, V](name, opts)
	spec.Keys = state.KeysOf(kc)
	return StoreDef{spec: spec, open: func(t *processor.Task) error {
		eng, sp, err := t.StoreEngine(name)
		if err != nil {
			return err
		}
		return t.RegisterStore(name, state.NewKV(name, eng, kc, vc, sp.Options, t.Changelog(name), nil))
	}}
}

// storeDefSpec is the spec of a store declared for a Process node.
func storeDefSpec[K, V any](name string, opts []Option) processor.StoreSpec {
	var c config[K, V]
	for _, o := range opts {
		switch o := o.(type) {
		case inMemory:
			c.inMemory = true
		case cacheSize:
			n := int(o)
			c.cache = &n
		case noLogging:
			c.noLogging = true
		}
	}
	c.store = name
	return c.storeSpec(name)
}

// WindowStore declares a window store for a Process node: values per key
// and window [start, end], segmented by window start in LevelDB (InMemory
// for memory), so that windows starting more than retention before the
// latest start written expire a segment at a time. It is changelogged to
// "<app>-<name>-changelog" (compact,delete, kept retention + 1 day) and
// restored from it; NoChangelog and CacheSize apply as for KeyValueStore.
// The processor gets it with processor.WindowStore[K, V](ctx, name).
func WindowStore[K, V any](name string, retention time.Duration, kc codec.Codec[K], vc codec.Codec[V], opts ...Option) StoreDef {
	return windowStoreDef(name, retention, kc, vc, false, opts)
}

// SessionStore declares a session store for a Process node: a window
// store ordered and segmented by session end, so that Fetch(key, from,
// to) finds the sessions ending in [from, to] in one scan, and sessions
// ending more than retention before the latest end written expire.
// Otherwise as WindowStore; get it with processor.WindowStore too.
func SessionStore[K, V any](name string, retention time.Duration, kc codec.Codec[K], vc codec.Codec[V], opts ...Option) StoreDef {
	return windowStoreDef(name, retention, kc, vc, true, opts)
}

func windowStoreDef[K, V any](name string, retention time.Duration, kc codec.Codec[K], vc codec.Codec[V], session bool, opts []Option) StoreDef {
	spec := storeDefSpec[K, V](name, opts)
	spec.Keys = state.KeysOf(kc)
	spec.Segments = windowSegments(retention)
	spec.ChangelogConfigs = windowChangelogConfigs(retention)
	var err error
	if retention <= 0 || retention%time.Millisecond != 0 {
		err = fmt.Errorf("store %q: retention %v: use a positive whole number of milliseconds, for example the window size + grace", name, retention)
	}
	return StoreDef{spec: spec, err: err, open: func(t *processor.Task) error {
		eng, sp, err := t.StoreEngine(name)
		if err != nil {
			return err
		}
		return t.RegisterStore(name, state.NewWindows(name, eng.(*state.Segmented), kc, vc, sp.Options, t.Changelog(name), nil, session))
	}}
}

type withStores []StoreDef

func (withStores) option() {}

// WithStore connects stores to a Process node.
func WithStore(stores ...StoreDef) Option { return withStores(stores) }
