package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

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
Prints the topology registered under NAME: its sub-topologies and their
sources, processors and sinks, with the topics between them, in the layout
of Kafka Streams' TopologyDescription. Without NAME it lists the registered
names.

Only the example topologies built into this tool are registered. Any Kappa
application prints its own topology with topo.Describe(), where topo is the
*processor.Topology its builder's Build() returns:

  topo, err := b.Build()
  if err != nil { ... }
  fmt.Print(topo.Describe())`

// runDescribe implements "kappa describe": it prints a registered topology,
// or the list of registered names.
func runDescribe(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	c := newCmdFlags("describe", "[NAME]", describeAbout)
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
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
	fmt.Fprint(stdout, topo.Describe())
	return nil
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
topo is the *processor.Topology its builder's Build() returns.`)
}
