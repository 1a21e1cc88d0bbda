package processor

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// NodeKind says what a node does.
type NodeKind int

// The kinds of node.
const (
	KindSource    NodeKind = iota // reads topics and decodes records
	KindProcessor                 // transforms records
	KindSink                      // encodes records and writes them to a topic
)

func (k NodeKind) String() string {
	switch k {
	case KindSource:
		return "Source"
	case KindSink:
		return "Sink"
	}
	return "Processor"
}

// TopicRef names a topic. An internal topic's name is prefixed with the
// application ID at run time: "<app>-<Name>".
type TopicRef struct {
	Name     string
	Internal bool
}

// Resolve returns the topic's name in application appID.
func (r TopicRef) Resolve(appID string) string {
	if r.Internal {
		return appID + "-" + r.Name
	}
	return r.Name
}

func (r TopicRef) String() string {
	if r.Internal {
		return "<app>-" + r.Name
	}
	return r.Name
}

// Child is an instantiated child node handed to a Factory.
type Child struct {
	Name string
	Node any // what the child's Factory returned
}

// Factory instantiates a node for one task. It receives the node's
// instantiated children, in the order they were added, and returns the
// node's input: a RawReceiver for sources, a Receiver of the node's input
// type otherwise. Factories run once per task, never per record.
type Factory func(t *Task, children []Child) (any, error)

// RawReceiver is the input of a source node: it decodes a consumed record
// and forwards it.
type RawReceiver interface {
	ReceiveRaw(rec *RawRecord) error
}

// Receiver is the typed input of a processor or sink node.
type Receiver[K, V any] interface {
	Receive(rec Record[K, V]) error
}

// Node is a node of the topology graph.
type Node struct {
	Name     string
	Kind     NodeKind
	Topics   []TopicRef // a source's input topics, or a static sink's output topic
	Dynamic  bool       // a sink that picks its topic per record
	Parents  []*Node
	Children []*Node
	Codecs   string   // "key codec / value codec", for Describe
	Stores   []string // state stores the node uses
	factory  Factory
	sub      int
	order    int
}

// SubTopology is a connected part of the graph. Each of its partitions is
// one task.
type SubTopology struct {
	ID      int
	Nodes   []*Node    // in topological order
	Sources []TopicRef // input topics, in order of first use
	Sinks   []TopicRef // static output topics
	Stores  []*StoreSpec
}

// InternalTopic is a topic the application creates and owns.
type InternalTopic struct {
	Ref TopicRef
	// Store is set for a changelog topic: the store it backs. A changelog
	// has one partition per task of the store's sub-topology.
	Store string
	// Partitions is the partition count; 0 means the largest partition
	// count among the inputs of the sub-topology that writes it.
	Partitions int32
	Configs    map[string]string
}

// Builder assembles a Topology. The stream package drives it; programs
// using only the Processor API can use it directly. Problems are collected
// and returned by Build.
type Builder struct {
	nodes    []*Node
	byName   map[string]*Node
	internal []InternalTopic
	stores   map[string]*StoreSpec
	copart   []coPartition
	globals  []GlobalSpec
	errs     []error
}

// coPartition is a group of nodes whose inputs must be co-partitioned.
type coPartition struct {
	what  string
	nodes []*Node
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{byName: make(map[string]*Node), stores: make(map[string]*StoreSpec)}
}

// Errorf records a problem to be returned by Build.
func (b *Builder) Errorf(format string, args ...any) {
	b.errs = append(b.errs, fmt.Errorf(format, args...))
}

// HasNode reports whether a node with this name exists.
func (b *Builder) HasNode(name string) bool { _, ok := b.byName[name]; return ok }

// NodeCount returns the number of nodes added so far, for generating
// deterministic names.
func (b *Builder) NodeCount() int { return len(b.nodes) }

func (b *Builder) add(n *Node, parents []*Node) *Node {
	if _, dup := b.byName[n.Name]; dup {
		b.Errorf("node %q: name used twice; give one of them another name with stream.Named", n.Name)
		n.Name = fmt.Sprintf("%s#%d", n.Name, len(b.nodes))
	}
	n.order = len(b.nodes)
	for _, p := range parents {
		if p == nil {
			b.Errorf("node %q: nil parent", n.Name)
			continue
		}
		if p.Kind == KindSink {
			b.Errorf("node %q: parent %q is a sink, which has no output", n.Name, p.Name)
		}
		n.Parents = append(n.Parents, p)
		p.Children = append(p.Children, n)
	}
	b.nodes = append(b.nodes, n)
	b.byName[n.Name] = n
	return n
}

// AddSource adds a node reading topics. f must return a RawReceiver.
func (b *Builder) AddSource(name string, topics []TopicRef, codecs string, f Factory) *Node {
	if len(topics) == 0 {
		b.Errorf("source %q: no topics", name)
	}
	return b.add(&Node{Name: name, Kind: KindSource, Topics: topics, Codecs: codecs, factory: f}, nil)
}

// AddProcessor adds a node fed by parents. f must return a Receiver of the
// parents' output type.
func (b *Builder) AddProcessor(name string, f Factory, parents ...*Node) *Node {
	if len(parents) == 0 {
		b.Errorf("processor %q: no parent", name)
	}
	return b.add(&Node{Name: name, Kind: KindProcessor, factory: f}, parents)
}

// AddSink adds a node writing to topic, or to a topic chosen per record
// when topic is nil.
func (b *Builder) AddSink(name string, topic *TopicRef, codecs string, f Factory, parents ...*Node) *Node {
	n := &Node{Name: name, Kind: KindSink, Codecs: codecs, factory: f}
	if topic == nil {
		n.Dynamic = true
	} else {
		n.Topics = []TopicRef{*topic}
	}
	return b.add(n, parents)
}

// AddInternalTopic declares a topic the application creates, such as a
// repartition topic.
func (b *Builder) AddInternalTopic(t InternalTopic) {
	for _, have := range b.internal {
		if have.Ref == t.Ref {
			b.Errorf("internal topic %q declared twice; give one operator another name with stream.Named", t.Ref)
			return
		}
	}
	b.internal = append(b.internal, t)
}

// AddStore declares a state store used by the given nodes. A store with
// logging gets the compacted changelog topic "<app>-<name>-changelog".
func (b *Builder) AddStore(spec StoreSpec, users ...*Node) {
	if spec.Name == "" {
		b.Errorf("state store: empty name")
		return
	}
	if _, dup := b.stores[spec.Name]; dup {
		b.Errorf("state store %q: name used twice; name one of them differently", spec.Name)
		return
	}
	sp := spec
	b.stores[spec.Name] = &sp
	for _, n := range users {
		n.Stores = append(n.Stores, spec.Name)
	}
	if spec.Logging {
		configs := map[string]string{"cleanup.policy": "compact"}
		for k, v := range spec.ChangelogConfigs {
			configs[k] = v
		}
		b.internal = append(b.internal, InternalTopic{Ref: ChangelogRef(spec.Name), Store: spec.Name, Configs: configs})
	}
}

// ConnectStore gives more nodes access to a declared store, such as a join
// reading a table's store. Nodes sharing a store run in one sub-topology.
func (b *Builder) ConnectStore(name string, users ...*Node) {
	if _, ok := b.stores[name]; !ok {
		b.Errorf("state store %q: connected before it was declared", name)
		return
	}
	for _, n := range users {
		if !slices.Contains(n.Stores, name) {
			n.Stores = append(n.Stores, name)
		}
	}
}

// CoPartition requires the input topics upstream of nodes (within their
// sub-topology) to have equal partition counts, as a join's inputs must:
// partition p of each then holds the same keys, and lands in one task.
// Plan checks the external topics and gives repartition topics in the
// group their count. what names the operator in errors.
func (b *Builder) CoPartition(what string, nodes ...*Node) {
	b.copart = append(b.copart, coPartition{what: what, nodes: nodes})
}

// ChangelogRef names the changelog topic of a store.
func ChangelogRef(store string) TopicRef {
	return TopicRef{Name: store + "-changelog", Internal: true}
}

// Topology is a validated, immutable graph of sub-topologies. One Topology
// can run in many App instances at once.
type Topology struct {
	nodes    []*Node
	subs     []*SubTopology
	internal []InternalTopic
	bySource map[TopicRef]int // input topic → sub-topology
	stores   map[string]*StoreSpec
	storeSub map[string]int // store → the sub-topology using it
	copart   []coPartitionGroup
	globals  []GlobalSpec
}

// coPartitionGroup is the input topics that must be co-partitioned.
type coPartitionGroup struct {
	what   string
	topics []TopicRef
}

// upstreamTopics returns the topics of the sources upstream of n.
func upstreamTopics(n *Node) []TopicRef {
	var refs []TopicRef
	seen := make(map[*Node]bool)
	var walk func(*Node)
	walk = func(n *Node) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		if n.Kind == KindSource {
			refs = append(refs, n.Topics...)
		}
		for _, p := range n.Parents {
			walk(p)
		}
	}
	walk(n)
	return refs
}

// Build validates the graph and splits it into sub-topologies. It returns
// every problem found, joined.
func (b *Builder) Build() (*Topology, error) {
	errs := slices.Clone(b.errs)
	for _, g := range b.globals {
		for _, n := range b.nodes {
			if n.Kind == KindSource && slices.Contains(n.Topics, TopicRef{Name: g.Topic}) {
				errs = append(errs, fmt.Errorf("global table %q: topic %q is also read by source %q; read it once", g.Name, g.Topic, n.Name))
			}
		}
	}
	if len(b.nodes) == 0 {
		errs = append(errs, errors.New("topology: no nodes: add a source with stream.From"))
	}
	// Union-find over parent/child edges: a connected component is a
	// sub-topology. Internal topics split components because their sink
	// and source are different nodes with no edge between them.
	parent := make([]int, len(b.nodes))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for _, n := range b.nodes {
		for _, p := range n.Parents {
			parent[find(n.order)] = find(p.order)
		}
	}
	// Nodes sharing a store are one sub-topology too.
	storeUser := make(map[string]int)
	for _, n := range b.nodes {
		for _, name := range n.Stores {
			if u, ok := storeUser[name]; ok {
				parent[find(n.order)] = find(u)
			} else {
				storeUser[name] = n.order
			}
		}
	}
	t := &Topology{nodes: b.nodes, internal: b.internal, bySource: make(map[TopicRef]int),
		stores: b.stores, storeSub: make(map[string]int), globals: b.globals}
	subOf := make(map[int]*SubTopology)
	for _, n := range b.nodes { // creation order is topological order
		root := find(n.order)
		s, ok := subOf[root]
		if !ok {
			s = &SubTopology{ID: len(t.subs)}
			subOf[root] = s
			t.subs = append(t.subs, s)
		}
		n.sub = s.ID
		s.Nodes = append(s.Nodes, n)
		for _, name := range n.Stores {
			if other, ok := t.storeSub[name]; ok && other != s.ID {
				errs = append(errs, fmt.Errorf("state store %q: used by node %q in sub-topology %d and by sub-topology %d; a store belongs to one sub-topology", name, n.Name, s.ID, other))
				continue
			}
			if _, ok := t.storeSub[name]; !ok {
				t.storeSub[name] = s.ID
				s.Stores = append(s.Stores, b.stores[name])
			}
		}
		switch n.Kind {
		case KindSource:
			for _, ref := range n.Topics {
				if other, dup := t.bySource[ref]; dup {
					errs = append(errs, fmt.Errorf("source %q: topic %q is already read by another source (sub-topology %d); read it once and branch the stream", n.Name, ref, other))
					continue
				}
				t.bySource[ref] = s.ID
				s.Sources = append(s.Sources, ref)
			}
		case KindSink:
			s.Sinks = append(s.Sinks, n.Topics...)
		case KindProcessor:
			if len(n.Children) == 0 && len(n.Parents) > 0 && n.Parents[0] == nil {
				errs = append(errs, fmt.Errorf("processor %q: detached", n.Name))
			}
		}
	}
	for _, s := range t.subs {
		if len(s.Sources) == 0 {
			errs = append(errs, fmt.Errorf("sub-topology %d (node %q): no source", s.ID, s.Nodes[0].Name))
		}
	}
	for _, g := range b.copart {
		var refs []TopicRef
		for _, n := range g.nodes {
			for _, ref := range upstreamTopics(n) {
				if !slices.Contains(refs, ref) {
					refs = append(refs, ref)
				}
			}
		}
		t.copart = append(t.copart, coPartitionGroup{what: g.what, topics: refs})
	}
	for name := range b.stores {
		if _, ok := t.storeSub[name]; !ok {
			errs = append(errs, fmt.Errorf("state store %q: no node uses it", name))
		}
	}
	for _, it := range t.internal {
		if _, ok := t.bySource[it.Ref]; !ok && it.Store == "" {
			errs = append(errs, fmt.Errorf("internal topic %q: nothing reads it", it.Ref))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// Sources returns every input topic of the topology, with the ID of the
// sub-topology that reads it.
func (t *Topology) Sources() map[TopicRef]int { return maps.Clone(t.bySource) }

// CoPartitioned returns the groups of input topics that must be
// co-partitioned: each group is read together by one task.
func (t *Topology) CoPartitioned() [][]TopicRef {
	out := make([][]TopicRef, len(t.copart))
	for i, g := range t.copart {
		out[i] = slices.Clone(g.topics)
	}
	return out
}

// SubTopologies returns the sub-topologies in ID order.
func (t *Topology) SubTopologies() []*SubTopology { return t.subs }

// InternalTopics returns the topics the application creates.
func (t *Topology) InternalTopics() []InternalTopic { return t.internal }

// Store returns the spec of a state store and its sub-topology.
func (t *Topology) Store(name string) (*StoreSpec, int, bool) {
	sp, ok := t.stores[name]
	return sp, t.storeSub[name], ok
}

// SubTopologyOf returns the sub-topology reading topic ref.
func (t *Topology) SubTopologyOf(ref TopicRef) (int, bool) {
	s, ok := t.bySource[ref]
	return s, ok
}

// Describe prints the topology in the layout of Kafka Streams'
// TopologyDescription: sub-topologies, their nodes, topics and edges.
func (t *Topology) Describe() string {
	var sb strings.Builder
	sb.WriteString("Topologies:\n")
	for _, s := range t.subs {
		fmt.Fprintf(&sb, "   Sub-topology: %d\n", s.ID)
		for _, n := range s.Nodes {
			switch n.Kind {
			case KindSource:
				fmt.Fprintf(&sb, "    Source: %s (topics: [%s])", n.Name, joinRefs(n.Topics))
			case KindSink:
				if n.Dynamic {
					fmt.Fprintf(&sb, "    Sink: %s (topic: <chosen per record>)", n.Name)
				} else {
					fmt.Fprintf(&sb, "    Sink: %s (topic: %s)", n.Name, n.Topics[0])
				}
			default:
				fmt.Fprintf(&sb, "    Processor: %s", n.Name)
				if len(n.Stores) > 0 {
					fmt.Fprintf(&sb, " (stores: [%s])", strings.Join(n.Stores, ", "))
				}
			}
			if n.Codecs != "" {
				fmt.Fprintf(&sb, " (codecs: %s)", n.Codecs)
			}
			sb.WriteByte('\n')
			if len(n.Children) > 0 {
				fmt.Fprintf(&sb, "      --> %s\n", joinNames(n.Children))
			}
			if len(n.Parents) > 0 {
				fmt.Fprintf(&sb, "      <-- %s\n", joinNames(n.Parents))
			}
		}
	}
	return sb.String()
}

func joinRefs(refs []TopicRef) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

func joinNames(nodes []*Node) string {
	s := make([]string, len(nodes))
	for i, n := range nodes {
		s[i] = n.Name
	}
	return strings.Join(s, ", ")
}
