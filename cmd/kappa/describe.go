package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kappa-streams/kappa/examples/clickstream/clicks"
	"github.com/kappa-streams/kappa/processor"
)

// topologies maps a name to a function that builds a topology, for
// "kappa describe NAME". Register each example's topology here.
// The functions run only when their name is asked for.
var topologies = map[string]func() (*processor.Topology, error){
	"clickstream": clicks.Topology,
}

// describeAbout is the description "kappa describe -h" prints.
const describeAbout = `
Prints a topology: its sub-topologies and their sources, processors and
sinks, with the topics and state stores between them.

With NAME it prints one of the example topologies built into this tool;
without NAME (and without --url) it lists their names. With --url it asks a
running application for its own topology, over the application's HTTP
listener: GET <url>/topology?format=FORMAT.

--format picks the layout:

  text     the layout of Kafka Streams' TopologyDescription (the default)
  dot      a Graphviz digraph: kappa describe NAME --format dot | dot -Tsvg > topology.svg
  mermaid  a Mermaid flowchart, which GitHub and GitLab render in Markdown

Any Kappa application prints its own topology with topo.Diagram(format)
(or topo.Describe() for text), where topo is the *processor.Topology its
builder's Build() returns:

  topo, err := b.Build()
  if err != nil { ... }
  fmt.Print(topo.Describe())

Examples:

  kappa describe clickstream
  kappa describe clickstream --format mermaid
  kappa describe --url http://127.0.0.1:8080 --format dot`

// describeTimeout bounds the request of describe --url.
const describeTimeout = 10 * time.Second

// runDescribe implements "kappa describe": it prints a registered topology
// or a running application's, or the list of registered names.
func runDescribe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	c := newCmdFlags("describe", "[NAME]", describeAbout)
	format := c.String("format", "text", "`FORMAT` output format: "+strings.Join(processor.DiagramFormats(), ", "))
	appURL := c.String("url", "", "`URL` describe the running application whose HTTP listener is at URL, such as http://127.0.0.1:8080")
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	if !slices.Contains(processor.DiagramFormats(), *format) {
		return c.usageErrorf("--format %q: want %s", *format, strings.Join(processor.DiagramFormats(), ", "))
	}
	if *appURL != "" {
		if len(pos) > 0 {
			return c.usageErrorf("unexpected argument %q: give either NAME or --url", pos[0])
		}
		u, err := topologyURL(*appURL, *format)
		if err != nil {
			return c.usageErrorf("%v", err)
		}
		text, err := fetchTopology(ctx, u)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, text)
		return nil
	}
	switch len(pos) {
	case 0:
		printTopologies(stdout)
		return nil
	case 1:
	default:
		return c.usageErrorf("want at most one NAME, got %d", len(pos))
	}
	name := pos[0]
	build, ok := topologies[name]
	if !ok {
		printTopologies(stderr)
		return fmt.Errorf("describe: no topology named %q is registered", name)
	}
	topo, err := build()
	if err == nil && topo == nil {
		err = errors.New("the build function returned no topology")
	}
	if err != nil {
		return fmt.Errorf("describe: build topology %q: %w", name, err)
	}
	text, err := topo.Diagram(*format)
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	fmt.Fprint(stdout, text)
	return nil
}

// topologyURL checks --url and returns the address of its topology
// endpoint with the format asked for.
func topologyURL(raw, format string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url %q: want the application's HTTP address, such as http://127.0.0.1:8080", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/topology"
	q := u.Query()
	q.Set("format", format)
	u.RawQuery = q.Encode()
	u.Fragment = ""
	return u.String(), nil
}

// fetchTopology GETs a topology description from a running application.
// ctx and describeTimeout bound the request.
func fetchTopology(ctx context.Context, u string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, describeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("describe: %w", err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("describe: %w (is the application running, with its HTTP listener at that address?)", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", fmt.Errorf("describe: read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 500 {
			msg = msg[:500] + "..."
		}
		if msg != "" {
			msg = ": " + msg
		}
		return "", fmt.Errorf("describe: GET %s: %s%s", u, resp.Status, msg)
	}
	return string(body), nil
}

// printTopologies lists the registered names, then how applications print
// their own topologies.
func printTopologies(w io.Writer) {
	names := slices.Sorted(maps.Keys(topologies))
	if len(names) == 0 {
		fmt.Fprintln(w, "No topologies are registered in this build of kappa.")
	} else {
		fmt.Fprintln(w, "Registered topologies ('kappa describe NAME' prints one):")
		for _, n := range names {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	fmt.Fprintln(w, `
Any Kappa application prints its own topology with topo.Describe(), where
topo is the *processor.Topology its builder's Build() returns; 'kappa
describe --url http://HOST:PORT' asks a running one for it.`)
}
