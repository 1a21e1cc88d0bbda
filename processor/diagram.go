package processor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrDiagramFormat is wrapped by the error of [Topology.Diagram] for a
// format it does not know.
var ErrDiagramFormat = errors.New("processor: unknown diagram format")

// DiagramFormats returns the formats [Topology.Diagram] accepts: "text",
// "dot" and "mermaid".
func DiagramFormats() []string { return []string{"text", "dot", "mermaid"} }

// Diagram returns the topology in one of three formats:
//
//   - "text": the layout of Kafka Streams' TopologyDescription, as
//     [Topology.Describe] prints it.
//   - "dot": a Graphviz digraph (render it with `dot -Tsvg`). Each
//     sub-topology is a cluster of its sources, processors and sinks,
//     labelled with their names and kinds; topics are ellipses outside
//     the clusters (internal ones dashed), state stores are cylinders tied
//     to the processors that use them, and global tables have a cluster of
//     their own. Edges run topic → source → processors → sink → topic.
//   - "mermaid": a Mermaid "flowchart LR" with the same content, for
//     Markdown that renders Mermaid (GitHub, GitLab).
//
// Any other format returns an error wrapping [ErrDiagramFormat] that
// names the valid ones.
func (t *Topology) Diagram(format string) (string, error) {
	switch format {
	case "text":
		return t.Describe(), nil
	case "dot":
		return t.dot(), nil
	case "mermaid":
		return t.mermaid(), nil
	}
	return "", fmt.Errorf("%w %q: want %s", ErrDiagramFormat, format, strings.Join(DiagramFormats(), ", "))
}

// diagram is the content both graph formats draw, with short identifiers
// for every node, topic and store, so that names need escaping only in
// labels.
type diagram struct {
	t        *Topology
	nodeID   map[*Node]string
	topics   []TopicRef // in order of first use
	topicID  map[TopicRef]string
	storeID  map[string]string // store name → identifier
	globalID []string          // per t.globals entry
}

// newDiagram numbers the topology's nodes (n0, n1, ...), topics (t0, ...),
// stores (s0, ...) and global tables (g0, ...).
func newDiagram(t *Topology) *diagram {
	d := &diagram{t: t, nodeID: make(map[*Node]string), topicID: make(map[TopicRef]string), storeID: make(map[string]string)}
	topic := func(ref TopicRef) {
		if _, ok := d.topicID[ref]; !ok {
			d.topicID[ref] = "t" + strconv.Itoa(len(d.topics))
			d.topics = append(d.topics, ref)
		}
	}
	for _, s := range t.subs {
		for _, n := range s.Nodes {
			d.nodeID[n] = "n" + strconv.Itoa(len(d.nodeID))
			for _, ref := range n.Topics {
				topic(ref)
			}
		}
		for _, sp := range s.Stores {
			d.storeID[sp.Name] = "s" + strconv.Itoa(len(d.storeID))
		}
	}
	for i, g := range t.globals {
		d.globalID = append(d.globalID, "g"+strconv.Itoa(i))
		topic(TopicRef{Name: g.Topic})
	}
	return d
}

// nodeLabel returns a node's label lines: its name, its kind, and its codecs
// or, for a sink that picks its topic per record, that fact.
func nodeLabel(n *Node) []string {
	lines := []string{n.Name, n.Kind.String()}
	if n.Dynamic {
		lines = append(lines, "(topic chosen per record)")
	}
	if n.Codecs != "" {
		lines = append(lines, n.Codecs)
	}
	return lines
}

// storeLabel returns a store's label lines.
func storeLabel(sp *StoreSpec) []string {
	kind := "Store"
	if sp.InMemory {
		kind += " (in memory)"
	}
	return []string{sp.Name, kind}
}

// edge is a line between two identifiers; storeEdge marks a node's use of
// a store, which has no direction.
type edge struct {
	from, to  string
	storeEdge bool
}

// edges returns every edge: topic → source, node → child, sink → topic,
// node — store, global topic → global table.
func (d *diagram) edges() []edge {
	var es []edge
	for _, s := range d.t.subs {
		for _, n := range s.Nodes {
			id := d.nodeID[n]
			if n.Kind == KindSource {
				for _, ref := range n.Topics {
					es = append(es, edge{from: d.topicID[ref], to: id})
				}
			}
			for _, c := range n.Children {
				es = append(es, edge{from: id, to: d.nodeID[c]})
			}
			if n.Kind == KindSink {
				for _, ref := range n.Topics {
					es = append(es, edge{from: id, to: d.topicID[ref]})
				}
			}
			for _, name := range n.Stores {
				if sid, ok := d.storeID[name]; ok {
					es = append(es, edge{from: id, to: sid, storeEdge: true})
				}
			}
		}
	}
	for i, g := range d.t.globals {
		es = append(es, edge{from: d.topicID[TopicRef{Name: g.Topic}], to: d.globalID[i]})
	}
	return es
}

// dot renders the topology as a Graphviz digraph.
func (t *Topology) dot() string {
	d := newDiagram(t)
	var sb strings.Builder
	sb.WriteString("digraph topology {\n")
	sb.WriteString("\trankdir=LR;\n")
	sb.WriteString("\tfontname=\"Helvetica\";\n")
	sb.WriteString("\tnode [fontname=\"Helvetica\", fontsize=10];\n")
	for _, s := range t.subs {
		fmt.Fprintf(&sb, "\tsubgraph cluster_%d {\n", s.ID)
		fmt.Fprintf(&sb, "\t\tlabel=%s;\n", dotString("Sub-topology "+strconv.Itoa(s.ID)))
		for _, n := range s.Nodes {
			fmt.Fprintf(&sb, "\t\t%s [label=%s, shape=box, style=rounded];\n", d.nodeID[n], dotString(nodeLabel(n)...))
		}
		for _, sp := range s.Stores {
			fmt.Fprintf(&sb, "\t\t%s [label=%s, shape=cylinder];\n", d.storeID[sp.Name], dotString(storeLabel(sp)...))
		}
		sb.WriteString("\t}\n")
	}
	if len(t.globals) > 0 {
		sb.WriteString("\tsubgraph cluster_global {\n")
		fmt.Fprintf(&sb, "\t\tlabel=%s;\n", dotString("Global tables"))
		for i, g := range t.globals {
			fmt.Fprintf(&sb, "\t\t%s [label=%s, shape=cylinder];\n", d.globalID[i], dotString(g.Name, "Global table"))
		}
		sb.WriteString("\t}\n")
	}
	for _, ref := range d.topics {
		style := "solid"
		if ref.Internal {
			style = "dashed"
		}
		fmt.Fprintf(&sb, "\t%s [label=%s, shape=ellipse, style=%s];\n", d.topicID[ref], dotString(ref.String()), style)
	}
	for _, e := range d.edges() {
		if e.storeEdge {
			fmt.Fprintf(&sb, "\t%s -> %s [dir=none, style=dotted];\n", e.from, e.to)
		} else {
			fmt.Fprintf(&sb, "\t%s -> %s;\n", e.from, e.to)
		}
	}
	sb.WriteString("}\n")
	return sb.String()
}

// dotString quotes lines as one DOT string, joined by line breaks.
func dotString(lines ...string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for i, l := range lines {
		if i > 0 {
			sb.WriteString(`\n`)
		}
		for _, r := range l {
			switch r {
			case '"', '\\':
				sb.WriteByte('\\')
				sb.WriteRune(r)
			case '\n':
				sb.WriteString(`\n`)
			case '\r':
			default:
				sb.WriteRune(r)
			}
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// mermaid renders the topology as a Mermaid flowchart.
func (t *Topology) mermaid() string {
	d := newDiagram(t)
	var sb strings.Builder
	sb.WriteString("flowchart LR\n")
	for _, s := range t.subs {
		fmt.Fprintf(&sb, "    subgraph sub%d [%s]\n", s.ID, mermaidString("Sub-topology "+strconv.Itoa(s.ID)))
		for _, n := range s.Nodes {
			fmt.Fprintf(&sb, "        %s[%s]\n", d.nodeID[n], mermaidString(nodeLabel(n)...))
		}
		for _, sp := range s.Stores {
			fmt.Fprintf(&sb, "        %s[(%s)]\n", d.storeID[sp.Name], mermaidString(storeLabel(sp)...))
		}
		sb.WriteString("    end\n")
	}
	if len(t.globals) > 0 {
		fmt.Fprintf(&sb, "    subgraph globals [%s]\n", mermaidString("Global tables"))
		for i, g := range t.globals {
			fmt.Fprintf(&sb, "        %s[(%s)]\n", d.globalID[i], mermaidString(g.Name, "Global table"))
		}
		sb.WriteString("    end\n")
	}
	for _, ref := range d.topics {
		fmt.Fprintf(&sb, "    %s([%s])\n", d.topicID[ref], mermaidString(ref.String()))
	}
	for _, e := range d.edges() {
		arrow := "-->"
		if e.storeEdge {
			arrow = "-.-"
		}
		fmt.Fprintf(&sb, "    %s %s %s\n", e.from, arrow, e.to)
	}
	return sb.String()
}

// mermaidString quotes lines as one Mermaid label, joined by line breaks.
// Characters that Mermaid or its HTML labels would read are written as
// entity codes.
func mermaidString(lines ...string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for i, l := range lines {
		if i > 0 {
			sb.WriteString("<br/>")
		}
		for _, r := range l {
			switch r {
			case '"':
				sb.WriteString("#quot;")
			case '#':
				sb.WriteString("#35;")
			case '<':
				sb.WriteString("#lt;")
			case '>':
				sb.WriteString("#gt;")
			case '&':
				sb.WriteString("#amp;")
			case '\n':
				sb.WriteString("<br/>")
			case '\r':
			default:
				sb.WriteRune(r)
			}
		}
	}
	sb.WriteByte('"')
	return sb.String()
}
