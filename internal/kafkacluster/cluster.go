package kafkacluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cluster is a running Apache Kafka cluster whose nodes are JVMs of their
// own on loopback. Nodes are numbered from 0, and node i has broker ID i.
//
// A Cluster is bound to the test that Start or Shared was given: its
// methods fail that test when they cannot do what they say. They may be
// called from several goroutines; the ones that change a node run one at
// a time.
type Cluster struct {
	t      testing.TB
	c      *cluster
	shared bool
}

// cluster is the state behind every Cluster bound to it.
type cluster struct {
	cfg     config
	java    string
	libs    string
	dir     string
	id      string
	seeds   []string
	startup time.Duration
	kcl     *kgo.Client  // for the cluster's own requests
	adm     *kadm.Client // over kcl

	mu      sync.Mutex // held by whatever starts, stops or signals a node
	nodes   []*server
	stopped bool
}

// Start starts a cluster for the test and stops it when the test ends:
// three nodes by default, each a combined KRaft broker and controller, on
// free loopback ports. It returns once every broker has registered and the
// group and transaction coordinators answer, and logs how long that took.
//
// Start skips the test when java or the broker's jars are missing, saying
// how to get them, but fails it when the environment variable CI is set.
// The nodes' directories, with their logs, are removed when the test
// passes and kept, and their path logged, when it fails.
func Start(t testing.TB, opts ...Opt) *Cluster {
	t.Helper()
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := start(cfg)
	if err != nil {
		failOrSkip(t, err)
	}
	cl := &Cluster{t: t, c: c}
	t.Cleanup(cl.Stop)
	t.Logf("kafkacluster: %s", c)
	return cl
}

// String describes the cluster for a log line.
func (c *cluster) String() string {
	nodes := "nodes"
	if len(c.nodes) == 1 {
		nodes = "node"
	}
	return fmt.Sprintf("%d %s of Kafka %s up in %v at %s", len(c.nodes), nodes, Version(),
		c.startup.Round(time.Millisecond), strings.Join(c.seeds, ","))
}

// failOrSkip ends the test on an error from start: a skip when the
// cluster cannot run on this machine, unless in CI, else a failure.
func failOrSkip(t testing.TB, err error) {
	t.Helper()
	var u *unavailableError
	if errors.As(err, &u) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (CI is set, so this fails rather than skips)", err)
		}
		t.Skip(err)
	}
	t.Fatal(err)
}

// Brokers returns the brokers' host:port addresses, to seed a client with.
// They stay the same when a node restarts.
func (c *Cluster) Brokers() []string { return slices.Clone(c.c.seeds) }

// Nodes returns the number of nodes.
func (c *Cluster) Nodes() int { return len(c.c.nodes) }

// StartupTime returns how long the cluster took to start, from laying out
// and formatting the nodes' directories to a cluster that answers.
func (c *Cluster) StartupTime() time.Duration { return c.c.startup }

// Dir returns the directory holding each node's configuration, data and
// logs, in node-<i> subdirectories.
func (c *Cluster) Dir() string { return c.c.dir }

// Stop ends every node: SIGTERM, and SIGKILL for any still running 3s
// later. It then removes the cluster's directory, unless the test failed:
// then it keeps it and logs its path. A node that had exited on its own,
// not by Kill or StopNode, fails the test. Stop runs when the test ends;
// calling it again does nothing. A shared cluster is stopped by RunShared,
// and Stop on it fails the test.
func (c *Cluster) Stop() {
	c.t.Helper()
	if c.shared {
		c.t.Fatal("kafkacluster: Stop on the shared cluster; RunShared stops it after the tests")
	}
	stopped, err := c.c.stop()
	if !stopped {
		return
	}
	if err != nil {
		c.t.Error(err)
	}
	if c.t.Failed() {
		c.t.Logf("kafkacluster: the test failed; the nodes' configuration, data and logs are kept in %s", c.c.dir)
		return
	}
	os.RemoveAll(c.c.dir)
}

// Kill sends SIGKILL to the node, as a crash would, and waits for its
// process to be gone. The others fence it and move its leaderships after
// the broker session timeout of 3s. Killing a stopped node does nothing.
func (c *Cluster) Kill(node int) {
	c.t.Helper()
	n := c.node(node)
	c.c.mu.Lock()
	defer c.c.mu.Unlock()
	if err := n.kill(); err != nil {
		c.t.Fatal(err)
	}
}

// StopNode stops the node with SIGTERM, which makes the broker hand its
// leaderships over in a controlled shutdown, and waits for it to exit.
// Stopping a stopped node does nothing.
func (c *Cluster) StopNode(node int) {
	c.t.Helper()
	n := c.node(node)
	c.c.mu.Lock()
	defer c.c.mu.Unlock()
	if err := c.c.stopNode(n); err != nil {
		c.t.Fatal(err)
	}
}

// Restart starts the node again over its data directory and on its ports,
// stopping it first with SIGTERM if it runs, and waits as WaitInSync does
// for it to be back.
func (c *Cluster) Restart(node int) {
	c.t.Helper()
	n := c.node(node)
	c.c.mu.Lock()
	defer c.c.mu.Unlock()
	begin := time.Now()
	if err := c.c.stopNode(n); err != nil {
		c.t.Fatal(err)
	}
	if err := c.c.startNode(n); err != nil {
		c.t.Fatal(err)
	}
	if err := c.c.waitInSync(n); err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("kafkacluster: node %d restarted and in sync in %v", n.id, time.Since(begin).Round(time.Millisecond))
}

// WaitInSync waits until the node has registered with the controller and
// is in the ISR of every partition it replicates: after Resume, say. It
// fails the test if the node is not running, or is not back within the
// Timeout.
func (c *Cluster) WaitInSync(node int) {
	c.t.Helper()
	n := c.node(node)
	c.c.mu.Lock()
	defer c.c.mu.Unlock()
	if err := c.c.waitInSync(n); err != nil {
		c.t.Fatal(err)
	}
}

// Pause stops the node's process with SIGSTOP: it holds its connections
// open but answers nothing, as a node in a long GC pause or a partition
// would. The others fence it after the broker session timeout of 3s.
func (c *Cluster) Pause(node int) {
	c.t.Helper()
	n := c.node(node)
	c.c.mu.Lock()
	defer c.c.mu.Unlock()
	if !n.running() {
		c.t.Fatalf("kafkacluster: Pause(%d): the node is not running", node)
	}
	if err := n.signal(syscall.SIGSTOP); err != nil {
		c.t.Fatal(err)
	}
	n.paused = true
}

// Resume continues a paused node with SIGCONT. Resuming a node that is not
// paused does nothing.
func (c *Cluster) Resume(node int) {
	c.t.Helper()
	n := c.node(node)
	c.c.mu.Lock()
	defer c.c.mu.Unlock()
	if !n.paused {
		return
	}
	if err := n.signal(syscall.SIGCONT); err != nil {
		c.t.Fatal(err)
	}
	n.paused = false
}

// Leader returns the node that leads the partition, as the cluster's
// metadata has it now; an error when the metadata cannot be read, or the
// partition is unknown or has no leader. It does not fail the test, so
// that a test can poll it while leadership moves.
func (c *Cluster) Leader(topic string, partition int32) (node int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.c.metadata(ctx, topic)
	if err != nil {
		return -1, err
	}
	if len(m.Topics) != 1 {
		return -1, fmt.Errorf("kafkacluster: topic %q not in the metadata", topic)
	}
	td := m.Topics[0]
	if err := kerr.ErrorForCode(td.ErrorCode); err != nil {
		return -1, fmt.Errorf("kafkacluster: topic %q: %w", topic, err)
	}
	for _, pd := range td.Partitions {
		if pd.Partition != partition {
			continue
		}
		if err := kerr.ErrorForCode(pd.ErrorCode); err != nil {
			return -1, fmt.Errorf("kafkacluster: %s/%d: %w", topic, partition, err)
		}
		if pd.Leader < 0 {
			return -1, fmt.Errorf("kafkacluster: %s/%d has no leader", topic, partition)
		}
		return int(pd.Leader), nil
	}
	return -1, fmt.Errorf("kafkacluster: topic %q has no partition %d", topic, partition)
}

// node returns node i, failing the test if there is none.
func (c *Cluster) node(i int) *server {
	c.t.Helper()
	if i < 0 || i >= len(c.c.nodes) {
		c.t.Fatalf("kafkacluster: no node %d in a cluster of %d", i, len(c.c.nodes))
	}
	return c.c.nodes[i]
}

// start formats and starts a cluster and waits until it answers. When it
// fails after creating the cluster's directory, it stops what it started
// and keeps the directory, naming it in the error.
func start(cfg config) (*cluster, error) {
	java, err := findJava()
	if err != nil {
		return nil, err
	}
	libs, err := findLibs()
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	dir, err := os.MkdirTemp("", "kafkacluster-")
	if err != nil {
		return nil, err
	}
	c := &cluster{cfg: cfg, java: java, libs: libs, dir: dir, id: newClusterID()}
	if err := c.launch(); err != nil {
		c.stop()
		return nil, fmt.Errorf("%w\n(the nodes' configuration, data and logs are kept in %s)", err, dir)
	}
	c.startup = time.Since(begin)
	return c, nil
}

// launch lays out, formats and starts the nodes, and waits for the
// cluster to answer.
func (c *cluster) launch() error {
	ports, err := freePorts(2 * c.cfg.nodes)
	if err != nil {
		return err
	}
	for i := range c.cfg.nodes {
		n := &server{
			id:             i,
			dir:            filepath.Join(c.dir, fmt.Sprintf("node-%d", i)),
			brokerAddr:     fmt.Sprintf("127.0.0.1:%d", ports[2*i]),
			controllerAddr: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1]),
		}
		c.nodes = append(c.nodes, n)
		c.seeds = append(c.seeds, n.brokerAddr)
	}
	if err := os.WriteFile(c.log4j2(), []byte(log4j2Properties), 0o644); err != nil {
		return err
	}
	for _, n := range c.nodes {
		if err := os.MkdirAll(n.logsDir(), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(n.properties(), []byte(serverProperties(c.cfg, c.nodes, n)), 0o644); err != nil {
			return err
		}
	}
	// Formatting starts a JVM per node: run them side by side.
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() { errs[i] = c.format(n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if err := c.startNode(n); err != nil {
			return err
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds...), kgo.DialTimeout(2*time.Second))
	if err != nil {
		return err
	}
	c.kcl, c.adm = cl, kadm.NewClient(cl)
	return c.poll("the cluster to answer", c.nodes, c.ready)
}

func (c *cluster) log4j2() string { return filepath.Join(c.dir, "log4j2.properties") }

// format writes the node's meta.properties and the bootstrap metadata
// with kafka-storage format (kafka.tools.StorageTool in Kafka 4).
func (c *cluster) format(n *server) error {
	share, _ := cdsFlags(c.java, c.libs, false)
	args := append(slices.Clone(c.cfg.jvm), share...)
	args = append(args,
		"-Dlog4j2.configurationFile="+c.log4j2(),
		"-Dkafka.logs.dir="+n.logsDir(),
		"-cp", filepath.Join(c.libs, "*"),
		"kafka.tools.StorageTool", "format", "--cluster-id", c.id, "--config", n.properties())
	cmd := exec.Command(c.java, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := startProcess(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	os.WriteFile(filepath.Join(n.logsDir(), "format.log"), out.Bytes(), 0o644)
	if err != nil {
		return fmt.Errorf("kafkacluster: formatting node %d: %v\n%s", n.id, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// stopNode stops the node with SIGTERM and waits up to the Timeout for it
// to exit. The caller holds c.mu.
func (c *cluster) stopNode(n *server) error {
	forced, err := n.terminate(time.Now().Add(c.cfg.timeout))
	if err == nil && forced {
		err = fmt.Errorf("kafkacluster: node %d did not stop within %v of SIGTERM, and was killed; see %s",
			n.id, c.cfg.timeout, filepath.Join(n.logsDir(), "server.log"))
	}
	return err
}

// startNode starts the node's JVM. The caller holds c.mu.
func (c *cluster) startNode(n *server) error {
	return n.start(c.java, c.libs, c.cfg.jvm, c.log4j2())
}

// poll calls cond, each call bounded by 5s, until it returns nil, and
// fails when that takes longer than the Timeout or one of the nodes to
// watch exits. The caller holds c.mu.
func (c *cluster) poll(what string, watch []*server, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, n := range watch {
			if !n.running() {
				return fmt.Errorf("kafkacluster: while waiting for %s, %w", what, n.exitErr())
			}
		}
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		err := cond(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafkacluster: timed out after %v waiting for %s: %w", c.cfg.timeout, what, err)
		case <-tick.C:
		}
	}
}

// Probe names for the coordinator lookups that create the internal topics.
const probe = "kafkacluster-probe"

// ready says why the cluster cannot serve tests yet, or nil: every broker
// has registered, the group and transaction coordinators answer (which
// creates their topics), and every partition has a leader and a full ISR.
func (c *cluster) ready(ctx context.Context) error {
	m, err := c.metadata(ctx)
	if err != nil {
		return err
	}
	if m.ClusterID == nil || *m.ClusterID != c.id {
		return fmt.Errorf("a broker answers for another cluster than %q: another process on our ports?", c.id)
	}
	if len(m.Brokers) != len(c.nodes) {
		return fmt.Errorf("%d of %d brokers registered", len(m.Brokers), len(c.nodes))
	}
	if m.ControllerID < 0 {
		return errors.New("no active controller")
	}
	// Look both coordinators up at once, so that the brokers create
	// their topics side by side.
	var groupErr, txnErr error
	var wg sync.WaitGroup
	wg.Go(func() { groupErr = c.adm.FindGroupCoordinators(ctx, probe).Error() })
	wg.Go(func() { txnErr = c.adm.FindTxnCoordinators(ctx, probe).Error() })
	wg.Wait()
	if groupErr != nil {
		return fmt.Errorf("group coordinator: %w", groupErr)
	}
	if txnErr != nil {
		return fmt.Errorf("transaction coordinator: %w", txnErr)
	}
	if m, err = c.metadata(ctx); err != nil {
		return err
	}
	internal := 0
	for _, td := range m.Topics {
		if err := kerr.ErrorForCode(td.ErrorCode); err != nil {
			return fmt.Errorf("topic %s: %w", name(td), err)
		}
		if td.IsInternal {
			internal++
		}
		for _, pd := range td.Partitions {
			if pd.Leader < 0 || len(pd.ISR) < len(pd.Replicas) {
				return fmt.Errorf("%s/%d: leader %d, ISR %v of replicas %v", name(td), pd.Partition, pd.Leader, pd.ISR, pd.Replicas)
			}
		}
	}
	if internal < 2 {
		return errors.New("__consumer_offsets and __transaction_state not both created yet")
	}
	return nil
}

// waitInSync polls until node n is back in the cluster, as rejoined says.
// The caller holds c.mu.
func (c *cluster) waitInSync(n *server) error {
	what := fmt.Sprintf("node %d to be back in sync", n.id)
	return c.poll(what, []*server{n}, func(ctx context.Context) error { return c.rejoined(ctx, n) })
}

// rejoined says why node n is not back yet, or nil: it has registered and
// is in the ISR of every partition it replicates.
func (c *cluster) rejoined(ctx context.Context, n *server) error {
	m, err := c.metadata(ctx)
	if err != nil {
		return err
	}
	id := int32(n.id)
	if !slices.ContainsFunc(m.Brokers, func(b kmsg.MetadataResponseBroker) bool { return b.NodeID == id }) {
		return fmt.Errorf("node %d has not registered", n.id)
	}
	for _, td := range m.Topics {
		for _, pd := range td.Partitions {
			if slices.Contains(pd.Replicas, id) && !slices.Contains(pd.ISR, id) {
				return fmt.Errorf("node %d not in the ISR %v of %s/%d", n.id, pd.ISR, name(td), pd.Partition)
			}
		}
	}
	return nil
}

// metadata asks a broker for the metadata of the topics, or of all topics
// if none are named. It does not use kadm's Metadata, which answers from
// the client's cache: its broker list is only as fresh as the client's
// last full metadata fetch, which may be minutes old.
func (c *cluster) metadata(ctx context.Context, topics ...string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	m, err := req.RequestWith(ctx, c.kcl)
	if err != nil {
		return nil, fmt.Errorf("kafkacluster: metadata: %w", err)
	}
	return m, nil
}

func name(td kmsg.MetadataResponseTopic) string {
	if td.Topic == nil {
		return "<unnamed>"
	}
	return *td.Topic
}

// stopGrace is how long stop lets the nodes shut down before it kills
// them. The brokers are done in a second or two; what remains is the last
// Raft leader waiting 5s for voters that have already gone to acknowledge
// its resignation, of no use to a cluster whose data is thrown away.
const stopGrace = 3 * time.Second

// stop ends every node, side by side, with SIGTERM and after stopGrace
// SIGKILL, and closes the client. It reports false if the cluster was
// stopped already, and as an error any node that had exited on its own.
func (c *cluster) stop() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false, nil
	}
	c.stopped = true
	var errs []error
	for _, n := range c.nodes {
		if n.cmd != nil && !n.down && !n.running() {
			errs = append(errs, fmt.Errorf("kafkacluster: while the cluster ran, %w", n.exitErr()))
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, n := range c.nodes {
		deadline := time.Now().Add(stopGrace)
		if n.dumping {
			// Let it finish writing the CDS archive.
			deadline = time.Now().Add(c.cfg.timeout)
		}
		wg.Go(func() {
			if _, err := n.terminate(deadline); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if c.kcl != nil {
		c.kcl.Close()
	}
	return true, errors.Join(errs...)
}

// newClusterID returns a random cluster ID in Kafka's Uuid form: 16 bytes
// in unpadded URL-safe base64, not starting with '-' (which a command line
// would take for a flag).
func newClusterID() string {
	for {
		var b [16]byte
		rand.Read(b[:])
		id := base64.RawURLEncoding.EncodeToString(b[:])
		if id[0] != '-' {
			return id
		}
	}
}
