package kafkacluster_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/internal/kafkacluster"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMain(m *testing.M) { os.Exit(kafkacluster.RunShared(m)) }

// TestShared produces and consumes with acks=all, and runs a committed and
// an aborted transaction, on the shared cluster.
func TestShared(t *testing.T) {
	c := kafkacluster.Shared(t)
	t.Logf("the shared cluster started in %v", c.StartupTime())
	ctx := testContext(t)

	adm := kadm.NewClient(client(t, c))
	m, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Brokers.NodeIDs(); !slices.Equal(got, []int32{0, 1, 2}) {
		t.Fatalf("brokers %v, want [0 1 2]", got)
	}

	const topic = "shared-plain"
	createTopic(t, adm, topic, 1)
	cl := client(t, c, kgo.RequiredAcks(kgo.AllISRAcks()))
	produce(t, cl, topic, 0, "hello")
	if got := consume(t, c, topic, 0, 1); got[0] != "hello" {
		t.Fatalf("consumed %q, want hello", got[0])
	}

	t.Run("transactions", func(t *testing.T) {
		const topic = "shared-txn"
		createTopic(t, adm, topic, 1)
		txn := client(t, c, kgo.TransactionalID("kafkacluster-test"), kgo.TransactionTimeout(10*time.Second))
		inTxn := func(value string, commit kgo.TransactionEndTry) {
			t.Helper()
			if err := txn.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			produce(t, txn, topic, 0, value)
			if err := txn.EndTransaction(ctx, commit); err != nil {
				t.Fatalf("ending the transaction of %q: %v", value, err)
			}
		}
		inTxn("aborted", kgo.TryAbort)
		inTxn("committed", kgo.TryCommit)
		// The aborted record comes first in the log, so reading the
		// committed one read_committed shows that the aborted one was
		// left out.
		got := consume(t, c, topic, 0, 1, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		if got[0] != "committed" {
			t.Fatalf("read_committed read %q first, want committed", got[0])
		}
		if got := consume(t, c, topic, 0, 2); !slices.Equal(got, []string{"aborted", "committed"}) {
			t.Fatalf("read_uncommitted read %q, want [aborted committed]", got)
		}
	})
}

// TestFaults kills the leader of a partition, checks that acks=all writes
// go on with two of three replicas, and restarts it; then pauses a node.
// It starts a cluster of its own, since it disturbs the nodes.
func TestFaults(t *testing.T) {
	c := kafkacluster.Start(t)
	t.Logf("the cluster started in %v", c.StartupTime())
	adm := kadm.NewClient(client(t, c))
	const topic = "faults"
	createTopic(t, adm, topic, 3)
	cl := client(t, c, kgo.RequiredAcks(kgo.AllISRAcks()))
	produce(t, cl, topic, 0, "before")

	leader, err := c.Leader(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	c.Kill(leader)
	produce(t, cl, topic, 0, "leader killed")
	t.Logf("a write with node %d killed took %v", leader, time.Since(begin).Round(time.Millisecond))
	if now, err := c.Leader(topic, 0); err != nil || now == leader {
		t.Fatalf("leader after the kill: %d, %v; want one other than %d", now, err, leader)
	}

	c.Restart(leader)
	produce(t, cl, topic, 0, "restarted")
	want := []string{"before", "leader killed", "restarted"}
	if got := consume(t, c, topic, 0, 3); !slices.Equal(got, want) {
		t.Fatalf("consumed %q, want %q", got, want)
	}

	// A paused node stops heartbeating; the controller fences it and
	// takes it out of the ISR, and acks=all writes go on.
	leader, err = c.Leader(topic, 1)
	if err != nil {
		t.Fatal(err)
	}
	follower := (leader + 1) % c.Nodes()
	begin = time.Now()
	c.Pause(follower)
	produce(t, cl, topic, 1, "follower paused")
	t.Logf("a write with node %d paused took %v", follower, time.Since(begin).Round(time.Millisecond))
	c.Resume(follower)
	c.WaitInSync(follower)
}

// TestOneNode checks that a cluster of one node, with replication factor
// 1, starts and serves.
func TestOneNode(t *testing.T) {
	c := kafkacluster.Start(t, kafkacluster.Nodes(1), kafkacluster.AutoCreateTopics(true))
	cl := client(t, c, kgo.AllowAutoTopicCreation())
	produce(t, cl, "one-node", 0, "auto-created")
	if got := consume(t, c, "one-node", 0, 1); got[0] != "auto-created" {
		t.Fatalf("consumed %q, want auto-created", got[0])
	}
}

// TestUnavailable runs the test binary without java, or without the jars,
// and checks that Start skips saying why, or fails when CI is set.
func TestUnavailable(t *testing.T) {
	if os.Getenv("KAFKACLUSTER_CHILD") != "" {
		kafkacluster.Start(t)
		t.Fatal("Start returned without java or jars")
	}
	noJava := "PATH=" + t.TempDir()
	noJars := "KAPPA_KAFKA_CACHE=" + t.TempDir()
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"no java", []string{noJava}, []string{"--- SKIP", "java is not on PATH"}},
		{"no java in CI", []string{noJava, "CI=true"}, []string{"--- FAIL", "java is not on PATH", "CI is set"}},
		{"no jars", []string{noJars}, []string{"--- SKIP", "are not in", kafkacluster.FetchCommand}},
		{"no jars in CI", []string{noJars, "CI=1"}, []string{"--- FAIL", kafkacluster.FetchCommand, "CI is set"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if slices.Contains(tc.env, noJars) {
				if _, err := exec.LookPath("java"); err != nil {
					t.Skip("needs java on PATH to get as far as the jars")
				}
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestUnavailable$", "-test.v")
			cmd.Env = append(withoutKappaEnv(), "KAFKACLUSTER_CHILD=1")
			cmd.Env = append(cmd.Env, tc.env...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// withoutKappaEnv is the environment without the variables that would
// find java or the jars, or that make Start fail rather than skip.
func withoutKappaEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "CI", "KAPPA_JAVA", "KAPPA_KAFKA_CACHE", "KAPPA_KAFKA_FETCH":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// client returns a client of the cluster that writes each record to the
// partition it names.
func client(t *testing.T, c *kafkacluster.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(c.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates topic with n partitions, replicated to all three
// nodes.
func createTopic(t *testing.T, adm *kadm.Client, topic string, n int32) {
	t.Helper()
	resp, err := adm.CreateTopic(testContext(t), n, 3, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating %s: %v", topic, err)
	}
}

// produce writes value to the partition and waits for it to be
// acknowledged.
func produce(t *testing.T, cl *kgo.Client, topic string, partition int32, value string) {
	t.Helper()
	r := &kgo.Record{Topic: topic, Partition: partition, Value: []byte(value)}
	if err := cl.ProduceSync(testContext(t), r).FirstErr(); err != nil {
		t.Fatalf("producing %q: %v", value, err)
	}
}

// consume reads the partition from the start until it has n records.
func consume(t *testing.T, c *kafkacluster.Cluster, topic string, partition int32, n int, opts ...kgo.Opt) []string {
	t.Helper()
	opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {partition: kgo.NewOffset().AtStart()},
	}))
	cl := client(t, c, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []string
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %q from %s/%d, want %d records", got, topic, partition, n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetching %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}
