package integration_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/query"
)

// TestStaticMembershipRollingRestart restarts each of three instances
// with static membership (InstanceID) in turn: each gets its own tasks
// back, no rebalance is computed, and the counts are right at the end.
func TestStaticMembershipRollingRestart(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "words", 6)
	tr := makeQueryInput(30, 2000, 11)
	kafkatest.Produce(t, kafkatest.Client(t, seeds), tr.recs[:1000]...)
	topo := queryTopology(t)
	var balances atomic.Int64
	dir := t.TempDir()
	start := func(i int) (*kappa.App, func() error) {
		return runApp(t, topo, kappa.AppID("static"), kappa.Brokers(seeds...), kappa.CommitInterval(100*time.Millisecond),
			kappa.StateDir(filepath.Join(dir, fmt.Sprint(i))), kappa.InstanceID(fmt.Sprintf("instance-%d", i)),
			kappa.SessionTimeout(30*time.Second),
			kappa.OnBalance(func(map[string][]processor.TaskID) { balances.Add(1) }))
	}
	apps := make([]*kappa.App, 3)
	stops := make([]func() error, 3)
	for i := range apps {
		apps[i], stops[i] = start(i)
	}
	stable := func() bool {
		for _, a := range apps {
			sts := a.TaskStatus()
			if len(sts) != 2 {
				return false
			}
			for _, st := range sts {
				if !st.Ready {
					return false
				}
			}
		}
		return true
	}
	kafkatest.Eventually(t, 60*time.Second, "two tasks ready on each instance", stable)
	before := balances.Load()
	for i := range apps {
		tasks := apps[i].Tasks()
		if err := stops[i](); err != nil {
			t.Fatalf("stopping instance %d: %v", i, err)
		}
		apps[i], stops[i] = start(i)
		kafkatest.Eventually(t, 30*time.Second, fmt.Sprintf("instance %d back with its tasks", i), stable)
		if got := apps[i].Tasks(); !slices.Equal(got, tasks) {
			t.Errorf("instance %d had tasks %v, got %v after its restart", i, tasks, got)
		}
	}
	if n := balances.Load() - before; n != 0 {
		t.Errorf("%d rebalances during the rolling restart of static members, want none", n)
	}
	kafkatest.Produce(t, kafkatest.Client(t, seeds), tr.recs[1000:]...)
	kafkatest.Eventually(t, 60*time.Second, "every count right", func() bool {
		for k, want := range tr.counts {
			var got int64
			var found bool
			for _, a := range apps {
				kv, err := query.KeyValue[string, int64](a.Stores(), "counts")
				if err != nil {
					t.Fatal(err)
				}
				if v, ok, err := kv.Get(k); err == nil && ok {
					got, found = v, true
				}
			}
			if !found || got != want {
				return false
			}
		}
		return true
	})
}

// TestDuplicateInstanceID starts a second instance with the first one's
// InstanceID: the first stops with an error naming the ID, the second
// runs.
func TestDuplicateInstanceID(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "words", 2)
	topo := queryTopology(t)
	opts := func() []kappa.Opt {
		return []kappa.Opt{kappa.AppID("dup"), kappa.Brokers(seeds...), kappa.CommitInterval(100 * time.Millisecond),
			kappa.StateDir(t.TempDir()), kappa.InstanceID("same"), kappa.HandleSignals(false)}
	}
	first, err := kappa.New(topo, opts()...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	firstDone := make(chan error, 1)
	go func() { firstDone <- first.Run(ctx) }()
	kafkatest.Eventually(t, 30*time.Second, "the first instance's tasks", func() bool { return len(first.Tasks()) == 2 })
	second, _ := runApp(t, topo, opts()...)
	select {
	case err := <-firstDone:
		if !errors.Is(err, kappa.ErrInstanceIDInUse) || !strings.Contains(err.Error(), `"same"`) {
			t.Errorf("the first instance stopped with %v, want ErrInstanceIDInUse naming the ID", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the first instance still runs a minute after another joined with its InstanceID")
	}
	kafkatest.Eventually(t, 30*time.Second, "the second instance's tasks", func() bool { return len(second.Tasks()) == 2 })
}

// TestStaticMemberKeepsStandbysAcrossRestart runs two static members with
// StandbyReplicas(1), each keeping copies of the other's tasks, and
// restarts one within the session timeout: the coordinator hands it its
// last assignment back without a rebalance, and that assignment names its
// standbys by its process. The restarted instance must keep its standbys
// (they used to be named by a process ID drawn anew at each start, and
// the restarted instance kept none until the next rebalance).
func TestStaticMemberKeepsStandbysAcrossRestart(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "words", 4)
	tr := makeQueryInput(200, 4000, 17)
	kafkatest.Produce(t, kafkatest.Client(t, seeds), tr.recs...)
	topo := queryTopology(t)
	dir := t.TempDir()
	var balances atomic.Int64
	start := func(i int) (*kappa.App, func() error) {
		return runApp(t, topo, kappa.AppID("static-standby"), kappa.Brokers(seeds...), kappa.CommitInterval(100*time.Millisecond),
			kappa.StateDir(filepath.Join(dir, fmt.Sprint(i))), kappa.InstanceID(fmt.Sprintf("instance-%d", i)),
			kappa.StandbyReplicas(1), kappa.SessionTimeout(30*time.Second),
			kappa.OnBalance(func(map[string][]processor.TaskID) { balances.Add(1) }))
	}
	count := func(a *kappa.App, s processor.TaskState) int {
		n := 0
		for _, st := range a.TaskStatus() {
			if st.State == s {
				n++
			}
		}
		return n
	}
	standbys := func(a *kappa.App) int { return count(a, processor.TaskStandby) }
	a0, _ := start(0)
	a1, stop1 := start(1)
	// Balanced, warm-ups done: each instance runs half the tasks and keeps
	// copies of the other half.
	kafkatest.Eventually(t, 60*time.Second, "the tasks balanced, with standbys of the other's on each instance", func() bool {
		r0, r1 := count(a0, processor.TaskRunning), count(a1, processor.TaskRunning)
		return r0 > 0 && r0 == r1 && standbys(a0) == r1 && standbys(a1) == r0
	})
	had := standbys(a1)
	before := balances.Load()
	kill(a1) // a crash: no leave, no commit
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	a1, _ = start(1)
	kafkatest.Eventually(t, 20*time.Second, fmt.Sprintf("the restarted instance's %d standbys", had), func() bool {
		return standbys(a1) == had
	})
	if n := balances.Load() - before; n != 0 {
		t.Errorf("%d rebalances for a static member's restart within its session timeout, want none", n)
	}
}
