package stream

import (
	"fmt"

	"github.com/kappa-streams/kappa/processor"
)

// Record is the record type operators see in Process and Peek callbacks.
type Record[K, V any] = processor.Record[K, V]

// fanout forwards to every child of a node.
type fanout[K, V any] []processor.Receiver[K, V]

func (f fanout[K, V]) forward(rec Record[K, V]) error {
	for _, c := range f {
		if err := c.Receive(rec); err != nil {
			return err
		}
	}
	return nil
}

// children turns a node's instantiated children into typed receivers. A
// mismatch is a bug in this package, reported rather than panicking.
func children[K, V any](cs []processor.Child) (fanout[K, V], error) {
	out := make(fanout[K, V], len(cs))
	for i, c := range cs {
		r, ok := c.Node.(processor.Receiver[K, V])
		if !ok {
			return nil, fmt.Errorf("child %q takes %T, not records of (%s, %s)", c.Name, c.Node, typeName[K](), typeName[V]())
		}
		out[i] = r
	}
	return out, nil
}

// receive adapts a function to processor.Receiver.
type receive[K, V any] func(rec Record[K, V]) error

func (f receive[K, V]) Receive(rec Record[K, V]) error { return f(rec) }

// wrap attaches the node name to an error from user code.
func wrap(node string, err error) error {
	if err == nil {
		return nil
	}
	return &processor.NodeError{Node: node, Err: err}
}

// derive adds a processor node after s whose output is (KR, VR). mk builds
// the node's input for one task, given its typed children.
func derive[K, V, KR, VR any](s Stream[K, V], name string,
	mk func(t *processor.Task, name string, out fanout[KR, VR]) processor.Receiver[K, V],
	parents ...*processor.Node,
) *processor.Node {
	f := func(t *processor.Task, cs []processor.Child) (any, error) {
		out, err := children[KR, VR](cs)
		if err != nil {
			return nil, err
		}
		return mk(t, name, out), nil
	}
	return s.b.pb.AddProcessor(name, f, append([]*processor.Node{s.node}, parents...)...)
}
