// Command kafka-cluster runs a real Apache Kafka cluster on loopback, as
// package kafkacluster starts one for tests, until it is interrupted: for
// the benchmark harness (bench/, flag -brokers) and for trying things by
// hand.
//
//	go run ./internal/kafkacluster/cmd/kafka-cluster
//
// It starts three KRaft nodes (flag -nodes), prints the bootstrap list on
// one line of stdout, host:port separated by commas and nothing else, and
// runs until SIGINT or SIGTERM, when it stops the nodes and removes their
// directory. It exits 1, keeping the directory, when a node exits on its
// own. Progress goes to stderr. The broker's jars come from
// internal/kafkacluster/fetch.sh, as for the tests.
//
// A script can run it in the background and wait for the list:
//
//	go run ./internal/kafkacluster/cmd/kafka-cluster -brokers-file /tmp/brokers &
//	while [ ! -s /tmp/brokers ]; do sleep 1; done
//	go run . stateless -brokers "$(cat /tmp/brokers)" -replication 3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kappa-streams/kappa/internal/kafkacluster"
)

func main() {
	if err := run(); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "kafka-cluster: %v\n", err)
		os.Exit(1)
	}
}

// configFlag collects -broker-config key=value pairs.
type configFlag [][2]string

func (c *configFlag) String() string { return fmt.Sprint(*c) }

func (c *configFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want key=value", s)
	}
	*c = append(*c, [2]string{k, v})
	return nil
}

func run() error {
	fs := flag.NewFlagSet("kafka-cluster", flag.ContinueOnError)
	nodes := fs.Int("nodes", 3, "nodes, each a broker and a KRaft controller")
	partitions := fs.Int("partitions", 4, "num.partitions, the partition count of topics created without one")
	autoCreate := fs.Bool("auto-create-topics", false, "auto.create.topics.enable")
	jvm := fs.String("jvm-flags", "", "space-separated JVM flags of every node, replacing kafkacluster's defaults (a 512 MiB heap, the serial collector, C1 only)")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long the cluster gets to start")
	file := fs.String("brokers-file", "", "also write the bootstrap list to this file, once the cluster answers; removed when it stops")
	var cfg configFlag
	fs.Var(&cfg, "broker-config", "key=value for every node's server.properties, such as log.segment.bytes=1048576 (repeatable)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	opts := []kafkacluster.Opt{kafkacluster.Nodes(*nodes), kafkacluster.Partitions(int32(*partitions)),
		kafkacluster.AutoCreateTopics(*autoCreate), kafkacluster.Timeout(*timeout)}
	if *jvm != "" {
		opts = append(opts, kafkacluster.JVMFlags(strings.Fields(*jvm)...))
	}
	for _, kv := range cfg {
		opts = append(opts, kafkacluster.BrokerConfig(kv[0], kv[1]))
	}

	// Signals from here on stop the cluster, even while it starts.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	fmt.Fprintf(os.Stderr, "kafka-cluster: starting %d nodes of Kafka %s\n", *nodes, kafkacluster.Version())
	c, err := kafkacluster.Launch(opts...)
	if err != nil {
		return err
	}
	brokers := strings.Join(c.Brokers(), ",")
	fmt.Fprintf(os.Stderr, "kafka-cluster: %s; nodes' directories in %s\n", c, c.Dir())
	fmt.Println(brokers)
	if *file != "" {
		// Written whole and then renamed, so a reader never sees half.
		tmp := *file + ".tmp"
		err := os.WriteFile(tmp, []byte(brokers+"\n"), 0o644)
		if err == nil {
			err = os.Rename(tmp, *file)
		}
		if err != nil {
			return errors.Join(err, c.Stop())
		}
		defer os.Remove(*file)
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(os.Stderr, "kafka-cluster: stopping")
			if err := c.Stop(); err != nil {
				return err
			}
			fmt.Fprintln(os.Stderr, "kafka-cluster: stopped")
			return nil
		case <-tick.C:
		}
		if err := c.Exited(); err != nil {
			return errors.Join(fmt.Errorf("while the cluster ran, %w", err), c.Stop())
		}
	}
}
