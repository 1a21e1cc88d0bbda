package integration_test

// The fault suites on Apache Kafka: the smoke scenarios of smoke_test.go,
// run against a real three-node KRaft cluster that internal/kafkacluster
// starts from jars fetched from Maven Central, instead of the embedded
// broker. Each test starts its own cluster: the smoke app's topic names
// are fixed. They skip where java or the jars are missing (and fail
// instead in CI), and under -short.
//
// go test ./... runs the exactly-once crashes (with the foreign reader),
// the leader kill and the static restart; KAPPA_KAFKA_ALL=1 runs the
// others too (at-least-once crashes, standby failover, a pause past the
// transaction timeout, a crash during a rebalance), which keeps CI's run
// within its time.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/internal/kafkacluster"
	"github.com/kappa-streams/kappa/internal/smoke"
)

// kafkaCluster starts a three-node Apache Kafka cluster for the test.
func kafkaCluster(t *testing.T, opts ...kafkacluster.Opt) *kafkacluster.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a three-node Apache Kafka cluster; run without -short")
	}
	c := kafkacluster.Start(t, opts...)
	t.Logf("Apache Kafka %s: %d nodes at %v, started in %v", kafkacluster.Version(), c.Nodes(), c.Brokers(),
		c.StartupTime().Round(time.Millisecond))
	return c
}

// kafkaBrokers is kafkaCluster for the scenarios that take brokers.
func kafkaBrokers(t *testing.T) []string { return kafkaCluster(t).Brokers() }

// kafkaAll skips the test unless KAPPA_KAFKA_ALL is set.
func kafkaAll(t *testing.T) {
	t.Helper()
	if os.Getenv("KAPPA_KAFKA_ALL") == "" {
		t.Skip("one of the longer Apache Kafka scenarios: set KAPPA_KAFKA_ALL=1 to run it")
	}
}

// TestKafkaSmokeExactlyOnceCrashes runs the SIGKILL scenario of
// TestSmokeExactlyOnceCrashes on Apache Kafka: the committed outputs are
// exact, and no transaction is left open. A reader written by others,
// confluent-kafka for Python (librdkafka), then reads the exactly-once
// echo output read_committed and must see exactly what franz-go sees.
func TestKafkaSmokeExactlyOnceCrashes(t *testing.T) {
	c := kafkaCluster(t)
	bin := buildSmokeApp(t)
	smokeCrashesOn(t, bin, c.Brokers(), smoke.ExactlyOnce, 13)
	if !t.Failed() {
		sameAsForeignReader(t, c.Brokers(), smoke.EchoTopic)
	}
}

// TestKafkaSmokeAtLeastOnceCrashes runs TestSmokeAtLeastOnceCrashes on
// Apache Kafka.
func TestKafkaSmokeAtLeastOnceCrashes(t *testing.T) {
	kafkaAll(t)
	c := kafkaCluster(t)
	smokeCrashesOn(t, buildSmokeApp(t), c.Brokers(), smoke.AtLeastOnce, 11)
}

// TestKafkaLeaderKilledExactlyOnce SIGKILLs, twice, the node that leads
// the input's partition 0 (and, with it, whatever changelog, output and
// coordinator partitions it leads), under exactly-once, and starts it
// again: once at once, once after longer than the session timeout. The
// other two nodes keep the partitions available (replication factor 3,
// min.insync.replicas 2), and read committed the outputs must equal an
// uninterrupted run's exactly: nothing lost, nothing twice.
func TestKafkaLeaderKilledExactlyOnce(t *testing.T) {
	c := kafkaCluster(t)
	bin := buildSmokeApp(t)
	killed := -1
	b := smokeBroker{
		seeds: c.Brokers(),
		what:  "the input's leader",
		down: func() {
			node, err := c.Leader(smoke.InputTopic, 0)
			if err != nil {
				t.Fatalf("leader of %s[0]: %v", smoke.InputTopic, err)
			}
			killed = node
			c.Kill(node)
			t.Logf("SIGKILLed node %d, the leader of %s[0]", node, smoke.InputTopic)
		},
		up: func() { c.Restart(killed) },
	}
	smokeRestarts(t, bin, b, smoke.ExactlyOnce, 14)
}

// TestKafkaStaticRestartKeepsStandbys runs
// TestSmokeStaticRestartKeepsStandbys on Apache Kafka, whose coordinator
// compares a static member's join metadata as Kafka's does (the embedded
// broker's comparison is stricter).
func TestKafkaStaticRestartKeepsStandbys(t *testing.T) {
	smokeStaticRestartKeepsStandbys(t, kafkaBrokers)
}

// TestKafkaStandbyFailover runs TestSmokeStandbyFailover on Apache Kafka.
func TestKafkaStandbyFailover(t *testing.T) {
	kafkaAll(t)
	smokeStandbyFailover(t, kafkaBrokers)
}

// TestKafkaPausePastTransactionTimeout runs
// TestSmokePausePastTransactionTimeout on Apache Kafka, whose transaction
// coordinator aborts a transaction past its timeout on its own schedule.
//
// The coordinator looks for expired transactions every second here (10 s
// by default), so that it fences the paused instance within the pause.
func TestKafkaPausePastTransactionTimeout(t *testing.T) {
	kafkaAll(t)
	smokePausePastTransactionTimeout(t, func(t *testing.T) []string {
		return kafkaCluster(t, kafkacluster.BrokerConfig("transaction.abort.timed.out.transaction.cleanup.interval.ms", "1000")).Brokers()
	})
}

// TestKafkaCrashDuringRebalance runs TestSmokeCrashDuringRebalance on
// Apache Kafka.
func TestKafkaCrashDuringRebalance(t *testing.T) {
	kafkaAll(t)
	smokeCrashDuringRebalance(t, kafkaBrokers)
}

// sameAsForeignReader reads topic read_committed with franz-go and with
// confluent-kafka for Python (testdata/read_committed.py), and fails the
// test unless both see the same records at the same offsets.
func sameAsForeignReader(t *testing.T, seeds []string, topic string) {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(python, "-c", "import confluent_kafka").Run()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("confluent-kafka for Python is missing (.ci/run installs it with pip): %v", err)
		}
		t.Logf("skipping the foreign reader: python3 with confluent-kafka is missing (pip install confluent-kafka): %v", err)
		return
	}
	ours := readCommittedLines(t, seeds, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, filepath.Join("testdata", "read_committed.py"), strings.Join(seeds, ","), topic)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("read_committed.py: %v\n%s", err, stderr.String())
	}
	var theirs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		theirs = append(theirs, sc.Text())
	}
	if !slices.Equal(ours, theirs) {
		i := 0
		for i < min(len(ours), len(theirs)) && ours[i] == theirs[i] {
			i++
		}
		at := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "(end)"
		}
		t.Fatalf("%s read committed: franz-go sees %d records, confluent-kafka %d; first difference at line %d: %q against %q",
			topic, len(ours), len(theirs), i, at(ours), at(theirs))
	}
	t.Logf("%s read committed: confluent-kafka (librdkafka) sees the same %d records as franz-go", topic, len(ours))
}

// readCommittedLines reads every partition of topic, an output of the
// smoke app, read_committed with franz-go, as lines "partition offset key-hex value-hex" in partition and
// offset order.
func readCommittedLines(t *testing.T, seeds []string, topic string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := smoke.Read(ctx, seeds, smokeApp, smoke.ExactlyOnce)
	if err != nil {
		t.Fatal(err)
	}
	recs := out.Topics[topic]
	lines := make([]string, 0, len(recs))
	for _, r := range recs {
		lines = append(lines, fmt.Sprintf("%d %d %x %x", r.Partition, r.Offset, r.Key, r.Value))
	}
	return lines
}
