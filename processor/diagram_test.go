package processor_test

import (
	"bytes"
	"errors"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
)

// diagramTopology builds a topology with a repartition (a re-keyed stream
// joined with a table), stores (the table's and a count's), a join, a
// global table and a node whose name needs escaping in both formats.
func diagramTopology(t *testing.T) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	clicks := stream.SelectKey(stream.From(b, "clicks", codec.String(), codec.String(), stream.Named("read-clicks")),
		func(_ string, v string) string { k, _, _ := strings.Cut(v, "|"); return k }, stream.Named("by-article"))
	articles := stream.TableFrom(b, "articles", codec.String(), codec.String(), stream.Materialized("articles-store"))
	joined := stream.JoinTable(clicks, articles, func(_, v, row string) string { return v + "+" + row }, stream.Named("join-articles"))
	joined.To("enriched", stream.Named("to-enriched"))
	joined.GroupByKey().Count(stream.Named(`count "views" <#1> & more`), stream.Materialized("views")).
		ToStream().To("view-counts", stream.With(codec.String(), codec.Int64()))
	users := stream.GlobalTable(b, "users", codec.String(), codec.String())
	stream.JoinGlobal(joined, users, func(k, _ string) string { return k },
		func(_, v, row string) string { return v + "@" + row }).To("with-users")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestDiagramText(t *testing.T) {
	topo := diagramTopology(t)
	got, err := topo.Diagram("text")
	if err != nil {
		t.Fatal(err)
	}
	if got != topo.Describe() {
		t.Errorf("text diagram differs from Describe:\n%s", got)
	}
}

func TestDiagramUnknownFormat(t *testing.T) {
	_, err := diagramTopology(t).Diagram("svg")
	if !errors.Is(err, processor.ErrDiagramFormat) {
		t.Fatalf("error %v does not wrap ErrDiagramFormat", err)
	}
	for _, f := range processor.DiagramFormats() {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not name format %q", err, f)
		}
	}
	if !strings.Contains(err.Error(), `"svg"`) {
		t.Errorf("error %q does not name the bad format", err)
	}
}

// graph is what a diagram declares: nodes with their labels, clusters
// with the nodes in them, and edges.
type graph struct {
	labels    map[string]string // id → label, line breaks as "\n"
	shapes    map[string]string // id → shape
	clusterOf map[string]string // id → cluster label, "" at top level
	edges     [][3]string       // from, to, "->" or "--" (undirected)
}

// checkGraph checks what every diagram format must show of diagramTopology.
func checkGraph(t *testing.T, g graph, topicShape, storeShape string) {
	t.Helper()
	for _, e := range g.edges {
		for _, id := range e[:2] {
			if _, ok := g.labels[id]; !ok {
				t.Errorf("edge %s %s %s: %s is not declared", e[0], e[2], e[1], id)
			}
		}
	}
	// byLabel finds the id whose label's first line is name.
	byLabel := func(name string) string {
		t.Helper()
		var ids []string
		for id, l := range g.labels {
			if first, _, _ := strings.Cut(l, "\n"); first == name {
				ids = append(ids, id)
			}
		}
		if len(ids) != 1 {
			t.Fatalf("%d declarations labelled %q, want 1", len(ids), name)
		}
		return ids[0]
	}
	has := func(from, to, kind string) bool {
		return slices.Contains(g.edges, [3]string{from, to, kind})
	}

	repart := byLabel("<app>-join-articles-repartition")
	sink, source := byLabel("join-articles-repartition-sink"), byLabel("join-articles-repartition-source")
	if g.shapes[repart] != topicShape || g.clusterOf[repart] != "" {
		t.Errorf("repartition topic: shape %q in cluster %q, want %q at top level", g.shapes[repart], g.clusterOf[repart], topicShape)
	}
	if !has(sink, repart, "->") || !has(repart, source, "->") {
		t.Errorf("repartition topic is not between its sink and its source: %v", g.edges)
	}
	if g.clusterOf[sink] == g.clusterOf[source] || g.clusterOf[sink] == "" {
		t.Errorf("repartition sink in %q and source in %q: want two sub-topologies", g.clusterOf[sink], g.clusterOf[source])
	}
	if !strings.Contains(g.labels[sink], "Sink") || !strings.Contains(g.labels[source], "Source") {
		t.Errorf("labels lack kinds: %q, %q", g.labels[sink], g.labels[source])
	}

	join := byLabel("join-articles")
	store := byLabel("articles-store")
	if g.shapes[store] != storeShape || !has(join, store, "--") {
		t.Errorf("join does not use store articles-store (shape %q): %v", g.shapes[store], g.edges)
	}
	if g.clusterOf[store] != g.clusterOf[join] {
		t.Errorf("store in cluster %q, its join in %q", g.clusterOf[store], g.clusterOf[join])
	}
	if !has(source, join, "->") {
		t.Errorf("no edge repartition source → join")
	}
	count := byLabel(`count "views" <#1> & more`)
	if !has(join, count, "->") || !has(count, byLabel("views"), "--") {
		t.Errorf("count is not fed by the join or does not use its store: %v", g.edges)
	}
	if !has(byLabel("clicks"), byLabel("read-clicks"), "->") {
		t.Errorf("no edge topic clicks → its source")
	}
	if enriched := byLabel("enriched"); g.shapes[enriched] != topicShape || !has(byLabel("to-enriched"), enriched, "->") {
		t.Errorf("no edge sink → topic enriched: %v", g.edges)
	}
	global := byLabel("users-global")
	if g.shapes[global] != storeShape || !has(byLabel("users"), global, "->") || g.clusterOf[global] != "Global tables" {
		t.Errorf("global table: shape %q, cluster %q, edges %v", g.shapes[global], g.clusterOf[global], g.edges)
	}
}

var (
	dotCluster = regexp.MustCompile(`^\s*subgraph (cluster_\w+) \{$`)
	dotLabel   = regexp.MustCompile(`^\s*label=("(?:[^"\\]|\\.)*");$`)
	dotNode    = regexp.MustCompile(`^\s*(\w+) \[label=("(?:[^"\\]|\\.)*"), shape=(\w+)(?:, style=\w+)?\];$`)
	dotEdge    = regexp.MustCompile(`^\s*(\w+) -> (\w+)( \[dir=none, style=dotted\])?;$`)
	dotAttr    = regexp.MustCompile(`^\s*(rankdir=LR|fontname="Helvetica"|node \[.*\]);$`)
)

// TestDiagramDOT parses the DOT output line by line: braces balance
// (outside quoted strings), every line is a statement of a known shape,
// and every edge's endpoints are declared.
func TestDiagramDOT(t *testing.T) {
	out, err := diagramTopology(t).Diagram("dot")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out)
	if err := balanced(out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != "digraph topology {" || lines[len(lines)-1] != "}" {
		t.Fatalf("not one digraph: first line %q, last %q", lines[0], lines[len(lines)-1])
	}
	g := graph{labels: map[string]string{}, shapes: map[string]string{}, clusterOf: map[string]string{}}
	cluster, clusterLabel := "", ""
	for i, l := range lines[1 : len(lines)-1] {
		switch {
		case dotCluster.MatchString(l):
			if cluster != "" {
				t.Fatalf("line %d: nested cluster", i+2)
			}
			cluster = dotCluster.FindStringSubmatch(l)[1]
		case strings.TrimSpace(l) == "}":
			if cluster == "" {
				t.Fatalf("line %d: } outside a cluster", i+2)
			}
			cluster, clusterLabel = "", ""
		case dotLabel.MatchString(l):
			clusterLabel = unquoteDOT(t, dotLabel.FindStringSubmatch(l)[1])
		case dotNode.MatchString(l):
			m := dotNode.FindStringSubmatch(l)
			if _, dup := g.labels[m[1]]; dup {
				t.Errorf("line %d: %s declared twice", i+2, m[1])
			}
			g.labels[m[1]] = unquoteDOT(t, m[2])
			g.shapes[m[1]] = m[3]
			g.clusterOf[m[1]] = clusterLabel
		case dotEdge.MatchString(l):
			m := dotEdge.FindStringSubmatch(l)
			kind := "->"
			if m[3] != "" {
				kind = "--"
			}
			g.edges = append(g.edges, [3]string{m[1], m[2], kind})
		case dotAttr.MatchString(l):
		default:
			t.Errorf("line %d: not a statement this test knows: %q", i+2, l)
		}
	}
	checkGraph(t, g, "ellipse", "cylinder")
}

// TestDiagramDOTRenders renders the DOT output with Graphviz, which
// rejects any syntax error.
func TestDiagramDOTRenders(t *testing.T) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("Graphviz's dot is not on PATH; install it (apt-get install graphviz) to run this test")
	}
	out, err := diagramTopology(t).Diagram("dot")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = strings.NewReader(out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	svg, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("dot -Tsvg: %v\n%s", err, stderr.String())
	}
	svg = bytes.ReplaceAll(svg, []byte("&#45;"), []byte("-"))
	for _, want := range []string{"Sub-topology 1", "join-articles", "&lt;app&gt;-join-articles-repartition", `count &quot;views&quot; &lt;#1&gt; &amp; more`} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

// balanced reports braces that do not balance outside quoted strings.
func balanced(s string) error {
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '{':
			depth++
		case !quoted && c == '}':
			if depth--; depth < 0 {
				return errors.New("} before its {")
			}
		}
	}
	if quoted || depth != 0 {
		return errors.New("unbalanced braces or quotes")
	}
	return nil
}

// unquoteDOT reads a DOT string, turning \n into a line break.
func unquoteDOT(t *testing.T, q string) string {
	t.Helper()
	var sb strings.Builder
	for i := 1; i < len(q)-1; i++ {
		if q[i] != '\\' {
			sb.WriteByte(q[i])
			continue
		}
		i++
		switch q[i] {
		case 'n':
			sb.WriteByte('\n')
		case '"', '\\':
			sb.WriteByte(q[i])
		default:
			t.Errorf("unexpected escape \\%c in %s", q[i], q)
		}
	}
	return sb.String()
}

var (
	mmSubgraph = regexp.MustCompile(`^    subgraph (\w+) \[("[^"]*")\]$`)
	mmNode     = regexp.MustCompile(`^ +(\w+)(\[|\[\(|\(\[)("[^"]*")(\]|\)\]|\]\))$`)
	mmEdge     = regexp.MustCompile(`^    (\w+) (-->|-\.-) (\w+)$`)
	mmEntity   = regexp.MustCompile(`#(\w+);`)
)

// TestDiagramMermaid parses the Mermaid output line by line: a flowchart
// header, subgraphs closed by "end", node declarations with quoted labels
// in one of three shapes, and edges between declared nodes.
func TestDiagramMermaid(t *testing.T) {
	out, err := diagramTopology(t).Diagram("mermaid")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != "flowchart LR" {
		t.Fatalf("first line %q, want flowchart LR", lines[0])
	}
	shapes := map[string]string{"[": "rect", "[(": "cylinder", "([": "stadium"}
	closing := map[string]string{"[": "]", "[(": ")]", "([": "])"}
	g := graph{labels: map[string]string{}, shapes: map[string]string{}, clusterOf: map[string]string{}}
	subgraph := ""
	for i, l := range lines[1:] {
		n := i + 2
		switch {
		case mmSubgraph.MatchString(l):
			if subgraph != "" {
				t.Fatalf("line %d: nested subgraph", n)
			}
			subgraph = unquoteMermaid(t, mmSubgraph.FindStringSubmatch(l)[2])
		case l == "    end":
			if subgraph == "" {
				t.Fatalf("line %d: end outside a subgraph", n)
			}
			subgraph = ""
		case mmNode.MatchString(l):
			m := mmNode.FindStringSubmatch(l)
			if closing[m[2]] != m[4] {
				t.Errorf("line %d: shape opened with %s closed with %s", n, m[2], m[4])
			}
			if indent := len(l) - len(strings.TrimLeft(l, " ")); (subgraph != "") != (indent == 8) {
				t.Errorf("line %d: indent %d in subgraph %q", n, indent, subgraph)
			}
			if _, dup := g.labels[m[1]]; dup {
				t.Errorf("line %d: %s declared twice", n, m[1])
			}
			g.labels[m[1]] = unquoteMermaid(t, m[3])
			g.shapes[m[1]] = shapes[m[2]]
			g.clusterOf[m[1]] = subgraph
		case mmEdge.MatchString(l):
			if subgraph != "" {
				t.Errorf("line %d: edge inside subgraph %q", n, subgraph)
			}
			m := mmEdge.FindStringSubmatch(l)
			kind := "->"
			if m[2] == "-.-" {
				kind = "--"
			}
			g.edges = append(g.edges, [3]string{m[1], m[3], kind})
		default:
			t.Errorf("line %d: not a statement this test knows: %q", n, l)
		}
	}
	if subgraph != "" {
		t.Errorf("subgraph %q not closed", subgraph)
	}
	checkGraph(t, g, "stadium", "cylinder")
}

// unquoteMermaid reads a quoted Mermaid label, turning <br/> into a line
// break and entity codes into characters. A raw '<', '>' or '#' is an error:
// Mermaid would read it.
func unquoteMermaid(t *testing.T, q string) string {
	t.Helper()
	s := strings.ReplaceAll(q[1:len(q)-1], "<br/>", "\n")
	if strings.ContainsAny(mmEntity.ReplaceAllString(s, ""), "<>#&") {
		t.Errorf("label %s has a raw character Mermaid reads", q)
	}
	ents := map[string]string{"quot": `"`, "35": "#", "lt": "<", "gt": ">", "amp": "&"}
	return mmEntity.ReplaceAllStringFunc(s, func(e string) string {
		r, ok := ents[e[1:len(e)-1]]
		if !ok {
			t.Errorf("unknown entity %s in %s", e, q)
		}
		return r
	})
}
