package processor

import (
	"errors"
	"fmt"
	"slices"
)

// Plan is a topology resolved against the partition counts of its external
// topics: how many tasks each sub-topology has, and the topics the
// application must create.
type Plan struct {
	AppID string
	// Tasks holds each sub-topology's task count, by sub-topology ID: the
	// largest partition count among its inputs.
	Tasks []int32
	// Partitions holds the partition count of every topic the topology
	// reads or writes by name, internal topics under their resolved names.
	Partitions map[string]int32
	// Internal lists the internal topics with their resolved names, counts
	// and configs, followed by the dead-letter topic.
	Internal []InternalTopic
	// Outputs lists static output topics that are not inputs, with the
	// partition count to create them with if missing: that of the
	// sub-topology writing them.
	Outputs map[string]int32
}

// ErrMissingSource is wrapped by Plan's error for an input topic that does
// not exist.
var ErrMissingSource = errors.New("source topic does not exist")

// Plan resolves partition counts. external holds the counts of the
// external topics the topology reads (see ExternalSources) and of any
// output topics that already exist.
func (t *Topology) Plan(appID string, external map[string]int32) (*Plan, error) {
	p := &Plan{AppID: appID, Tasks: make([]int32, len(t.subs)), Partitions: make(map[string]int32), Outputs: make(map[string]int32)}
	var errs []error
	for _, ref := range t.ExternalSources() {
		n, ok := external[ref.Name]
		if !ok || n <= 0 {
			errs = append(errs, fmt.Errorf("topology: %w: %q; create it first, for example: kappa topics create %s --partitions 3", ErrMissingSource, ref.Name, ref.Name))
			continue
		}
		p.Partitions[ref.Name] = n
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Internal topics take the task count of the sub-topology writing
	// them, which may itself read internal topics: iterate to a fixed
	// point (the graph has no cycles, so this ends).
	internal := make(map[TopicRef]InternalTopic, len(t.internal))
	for _, it := range t.internal {
		internal[it.Ref] = it
		if it.Partitions > 0 {
			p.Partitions[it.Ref.Resolve(appID)] = it.Partitions
		}
	}
	// Co-partitioned groups: their external topics must agree, and their
	// repartition topics take that count.
	for _, g := range t.copart {
		var first TopicRef
		n := int32(0)
		for _, ref := range g.topics {
			if ref.Internal {
				continue
			}
			c := p.Partitions[ref.Name]
			if n == 0 {
				first, n = ref, c
				continue
			}
			if c != n {
				errs = append(errs, fmt.Errorf("topology: %s: topics %q (%d partitions) and %q (%d partitions) must have the same partition count to be joined; "+
					"recreate one with %d partitions, or repartition one side with Repartition(stream.Partitions(%d))", g.what, first.Name, n, ref.Name, c, c, n))
			}
		}
		if n == 0 {
			continue
		}
		for _, ref := range g.topics {
			if _, set := p.Partitions[ref.Resolve(appID)]; ref.Internal && !set {
				p.Partitions[ref.Resolve(appID)] = n
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for changed := true; changed; {
		changed = false
		for _, s := range t.subs {
			if p.Tasks[s.ID] > 0 {
				continue
			}
			n, known := int32(0), true
			for _, ref := range s.Sources {
				c, ok := p.Partitions[ref.Resolve(appID)]
				if !ok {
					known = false
					break
				}
				n = max(n, c)
			}
			if !known {
				continue
			}
			p.Tasks[s.ID] = n
			changed = true
			for _, ref := range s.Sinks {
				name := ref.Resolve(appID)
				if _, isInternal := internal[ref]; isInternal {
					if _, set := p.Partitions[name]; !set {
						p.Partitions[name] = n
					}
					continue
				}
				if _, isInput := t.bySource[ref]; isInput {
					continue
				}
				if have, ok := external[name]; ok && have > 0 {
					p.Partitions[name] = have
				} else if have, ok := p.Outputs[name]; !ok || n > have {
					p.Outputs[name] = n
				}
			}
		}
	}
	for _, s := range t.subs {
		if p.Tasks[s.ID] == 0 {
			return nil, fmt.Errorf("topology: cannot size sub-topology %d: its inputs %v have no partition count", s.ID, s.Sources)
		}
	}
	// A group of repartition topics only takes the largest of their counts;
	// a count set with stream.Partitions must then agree with the others.
	for _, g := range t.copart {
		n := int32(0)
		for _, ref := range g.topics {
			n = max(n, p.Partitions[ref.Resolve(appID)])
		}
		for _, ref := range g.topics {
			name := ref.Resolve(appID)
			if p.Partitions[name] == n {
				continue
			}
			if it, ok := internal[ref]; ok && it.Partitions == 0 {
				p.Partitions[name] = n
				continue
			}
			return nil, fmt.Errorf("topology: %s: topic %q has %d partitions where its co-partitioned inputs have %d; give them the same count", g.what, name, p.Partitions[name], n)
		}
	}
	for name, n := range p.Outputs {
		if _, ok := p.Partitions[name]; !ok {
			p.Partitions[name] = n
		}
	}
	for _, it := range t.internal {
		name := it.Ref.Resolve(appID)
		if it.Store != "" {
			p.Partitions[name] = p.Tasks[t.storeSub[it.Store]]
		}
		p.Internal = append(p.Internal, InternalTopic{Ref: TopicRef{Name: name}, Partitions: p.Partitions[name], Configs: it.Configs})
	}
	dlq := DLQTopic(appID)
	p.Internal = append(p.Internal, InternalTopic{Ref: TopicRef{Name: dlq}, Partitions: slices.Max(p.Tasks), Configs: map[string]string{"cleanup.policy": "delete"}})
	p.Partitions[dlq] = slices.Max(p.Tasks)
	return p, nil
}

// ExternalSources returns the topics the topology reads that it does not
// own, in sub-topology order, then the topics of global tables.
func (t *Topology) ExternalSources() []TopicRef {
	var refs []TopicRef
	for _, s := range t.subs {
		for _, ref := range s.Sources {
			if !ref.Internal {
				refs = append(refs, ref)
			}
		}
	}
	for _, g := range t.globals {
		refs = append(refs, TopicRef{Name: g.Topic})
	}
	return refs
}

// StaticOutputs returns the external topics the topology writes by name.
func (t *Topology) StaticOutputs() []string {
	var out []string
	for _, s := range t.subs {
		for _, ref := range s.Sinks {
			if !ref.Internal && !slices.Contains(out, ref.Name) {
				out = append(out, ref.Name)
			}
		}
	}
	return out
}
