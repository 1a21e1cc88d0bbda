package kafkacluster

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// An Opt configures a cluster, for Start and RunShared.
type Opt func(*config)

type config struct {
	nodes      int
	partitions int32
	autoCreate bool
	broker     [][2]string // server.properties overrides, in order
	jvm        []string
	timeout    time.Duration
}

// defaultJVMFlags keep each node small and cheap on a machine of few cores:
// a serial collector, the C1 compiler only (quicker to start, less CPU
// spent compiling; tests do not run long enough to profit from C2) and no
// hsperfdata files in /tmp.
var defaultJVMFlags = []string{
	"-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
	"-XX:-UsePerfData", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
}

func newConfig(opts []Opt) (config, error) {
	cfg := config{nodes: 3, partitions: 4, jvm: defaultJVMFlags, timeout: 2 * time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	var errs []error
	if cfg.nodes < 1 {
		errs = append(errs, fmt.Errorf("kafkacluster: Nodes(%d): need at least one node", cfg.nodes))
	}
	if cfg.partitions < 1 {
		errs = append(errs, fmt.Errorf("kafkacluster: Partitions(%d): need at least one partition", cfg.partitions))
	}
	if cfg.timeout <= 0 {
		errs = append(errs, fmt.Errorf("kafkacluster: Timeout(%v): must be positive", cfg.timeout))
	}
	for _, kv := range cfg.broker {
		if slices.Contains(reservedKeys, kv[0]) {
			errs = append(errs, fmt.Errorf("kafkacluster: BrokerConfig(%q): set by the cluster itself", kv[0]))
		}
	}
	return cfg, errors.Join(errs...)
}

// Nodes sets how many nodes the cluster has, overriding the default 3.
// Every node is both a broker and a controller voter. Replication factors
// are min(n, 3) and min.insync.replicas is 2 from three nodes on (1 below),
// so a three-node cluster keeps accepting acks=all writes with one node
// down.
func Nodes(n int) Opt { return func(c *config) { c.nodes = n } }

// Partitions sets num.partitions, the partition count of topics created
// without one, overriding the default 4.
func Partitions(n int32) Opt { return func(c *config) { c.partitions = n } }

// AutoCreateTopics sets auto.create.topics.enable, overriding the default
// false: by default a test creates the topics it uses.
func AutoCreateTopics(on bool) Opt { return func(c *config) { c.autoCreate = on } }

// BrokerConfig sets key to value in every node's server.properties,
// overriding the cluster's setting of key if it has one, e.g.
// BrokerConfig("log.segment.bytes", "1048576"). The listeners, node and
// quorum settings cannot be overridden.
func BrokerConfig(key, value string) Opt {
	return func(c *config) { c.broker = append(c.broker, [2]string{key, value}) }
}

// JVMFlags replaces the JVM flags of every node, overriding the default
// -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData
// -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true.
func JVMFlags(flags ...string) Opt { return func(c *config) { c.jvm = flags } }

// Timeout bounds each wait: for the cluster to start, for a node to stop,
// and for a restarted node to rejoin; it overrides the default 2 minutes.
func Timeout(d time.Duration) Opt { return func(c *config) { c.timeout = d } }
