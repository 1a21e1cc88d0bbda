package stream

import (
	"fmt"
	"log/slog"

	"github.com/kappa-streams/kappa/processor"
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
	f := func(t *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[KR, VR](cs)
		if err != nil {
			return nil, err
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

func (c *procContext[K, V]) RecordMetadata() processor.RecordMetadata { return c.t.RecordMetadata() }
func (c *procContext[K, V]) TaskID() processor.TaskID                 { return c.t.ID }
func (c *procContext[K, V]) AppID() string                            { return c.t.AppID() }
func (c *procContext[K, V]) Logger() *slog.Logger                     { return c.t.Logger().With("node", c.name) }
