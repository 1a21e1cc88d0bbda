package kafkacluster

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// shared is the cluster that the tests of one test binary share.
var shared struct {
	mu      sync.Mutex
	inMain  bool // RunShared is running the tests
	opts    []Opt
	started bool // the first Shared call has tried to start it
	c       *cluster
	err     error
}

// RunShared runs the package's tests with m, for tests that share one
// cluster through Shared, and then stops that cluster. The cluster starts
// at the first call of Shared, so a run in which no test needs it starts
// no JVM. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(kafkacluster.RunShared(m)) }
//
// The cluster's directory is removed if every test passed, and kept, its
// path printed, if not.
func RunShared(m *testing.M, opts ...Opt) int {
	shared.mu.Lock()
	shared.inMain, shared.opts = true, opts
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	c := shared.c
	shared.mu.Unlock()
	if c == nil {
		return code
	}
	if _, err := c.stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "kafkacluster: the shared cluster's configuration, data and logs are kept in %s\n", c.dir)
	} else {
		os.RemoveAll(c.dir)
	}
	return code
}

// Shared returns the cluster that the package's tests share, bound to t,
// starting it at the first call with the options given to RunShared,
// which must run the tests. It skips or fails t as Start does when the
// cluster cannot start.
//
// Tests that share a cluster see each other's topics and groups, so each
// names its own. A test that stops, kills or pauses nodes disturbs the
// others, and should start a cluster of its own.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatal("kafkacluster: Shared needs the package's TestMain to run the tests with kafkacluster.RunShared(m)")
	}
	if !shared.started {
		shared.started = true
		cfg, err := newConfig(shared.opts)
		if err == nil {
			shared.c, err = start(cfg)
		}
		shared.err = err
		if err == nil {
			t.Logf("kafkacluster: shared cluster: %s", shared.c)
		}
	}
	if shared.err != nil {
		failOrSkip(t, shared.err)
	}
	return &Cluster{t: t, c: shared.c, shared: true}
}
