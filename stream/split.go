package stream

import (
	"github.com/kappa-streams/kappa/processor"
)

// Splitter routes each record of a stream to the first branch whose
// predicate matches, or to the default branch. Create it with Stream.Split,
// then add branches; a record that matches no branch, with no default
// branch, is dropped.
type Splitter[K, V any] struct {
	s        Stream[K, V]
	node     *processor.Node
	name     string
	branches []splitBranch[K, V]
	dflt     string
}

type splitBranch[K, V any] struct {
	name string
	pred func(K, V) bool
}

// Split starts a split of s. Branch names are prefixed with the split's
// name: Named("route") and Branch("bots", ...) give node "route-bots".
func (s Stream[K, V]) Split(opts ...Option) *Splitter[K, V] {
	c := parse[K, V](s.b, "Split", opts)
	name := s.b.nodeName(c.name, "BRANCH")
	sp := &Splitter[K, V]{s: s, name: name}
	sp.node = derive(s, name, func(t *processor.Task, name string, out fanout[K, V]) processor.Receiver[K, V] {
		// Children were added in Branch order; find each branch's child.
		byName := make(map[string]processor.Receiver[K, V], len(out))
		for i, cn := range sp.node.Children {
			byName[cn.Name] = out[i]
		}
		preds := make([]func(K, V) bool, len(sp.branches))
		routes := make([]processor.Receiver[K, V], len(sp.branches))
		for i, br := range sp.branches {
			preds[i] = br.pred
			routes[i] = byName[sp.name+"-"+br.name]
		}
		var dflt processor.Receiver[K, V]
		if sp.dflt != "" {
			dflt = byName[sp.name+"-"+sp.dflt]
		}
		return receive[K, V](func(rec Record[K, V]) error {
			t.Enter(name)
			if rec.Tombstone {
				if dflt != nil {
					return dflt.Receive(rec)
				}
				return nil
			}
			for i, p := range preds {
				if p(rec.Key, rec.Value) {
					return routes[i].Receive(rec)
				}
			}
			if dflt != nil {
				return dflt.Receive(rec)
			}
			return nil
		})
	})
	return sp
}

// Branch adds a branch taking the records for which pred is true and no
// earlier branch matched.
func (sp *Splitter[K, V]) Branch(name string, pred func(key K, value V) bool) Stream[K, V] {
	if pred == nil {
		sp.s.b.pb.Errorf("Split (node %q): branch %q has a nil predicate", sp.name, name)
		pred = func(K, V) bool { return false }
	}
	sp.branches = append(sp.branches, splitBranch[K, V]{name: name, pred: pred})
	return sp.branch(name)
}

// Default adds the branch taking every record that no branch matched. Its
// name is "<split>-default".
func (sp *Splitter[K, V]) Default() Stream[K, V] {
	if sp.dflt != "" {
		sp.s.b.pb.Errorf("Split (node %q): Default called twice", sp.name)
	}
	sp.dflt = "default"
	return sp.branch("default")
}

func (sp *Splitter[K, V]) branch(name string) Stream[K, V] {
	s := sp.s
	s.node = sp.node
	n := derive(s, sp.name+"-"+name, func(_ *processor.Task, _ string, out fanout[K, V]) processor.Receiver[K, V] {
		return receive[K, V](out.forward)
	})
	return s.with(n)
}
