package kafkacluster

import (
	"fmt"
	"os"
	"slices"
)

// Standalone is a cluster started by [Launch], outside a test: for
// programs such as cmd/kafka-cluster, which runs one for the benchmark
// harness. Unlike a [Cluster] it is bound to no test, its methods return
// errors, and it has no fault injection: it is there to be used, not
// broken.
type Standalone struct{ c *cluster }

// Launch starts a cluster as [Start] does, with the same options and
// defaults, but outside a test. Where Start would skip or fail the test
// it returns an error, one that says how to get java or the jars when
// they are missing. The caller ends it with [Standalone.Stop]; on Linux
// the nodes are also killed when the calling process dies without
// stopping them.
func Launch(opts ...Opt) (*Standalone, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	c, err := start(cfg)
	if err != nil {
		return nil, err
	}
	return &Standalone{c: c}, nil
}

// Brokers returns the brokers' host:port addresses, to seed a client with.
func (s *Standalone) Brokers() []string { return slices.Clone(s.c.seeds) }

// Dir returns the directory holding each node's configuration, data and
// logs, in node-<i> subdirectories.
func (s *Standalone) Dir() string { return s.c.dir }

// String describes the cluster for a log line: its nodes, Kafka version,
// startup time and brokers.
func (s *Standalone) String() string { return s.c.String() }

// Exited returns an error describing a node that has exited on its own,
// with the end of its logs, or nil while every node runs.
func (s *Standalone) Exited() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	for _, n := range s.c.nodes {
		if n.cmd != nil && !n.down && !n.running() {
			return n.exitErr()
		}
	}
	return nil
}

// Stop ends every node as [Cluster.Stop] does: SIGTERM, and SIGKILL for
// any still running 3s later. It removes the cluster's directory when
// every node ran until then and stopped, and keeps it, naming it in the
// error, when not. Calling it again does nothing and returns nil.
func (s *Standalone) Stop() error {
	stopped, err := s.c.stop()
	if !stopped {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w\n(the nodes' configuration, data and logs are kept in %s)", err, s.c.dir)
	}
	return os.RemoveAll(s.c.dir)
}
