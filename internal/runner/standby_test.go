package runner

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/internal/tasklife"
	"github.com/kappa-streams/kappa/processor"

	"github.com/twmb/franz-go/pkg/kgo"
)

// noChangelogs is a ChangelogReader for tasks without logged stores,
// which never read one.
type noChangelogs struct{}

func (noChangelogs) EndOffset(context.Context, string, int32) (int64, error) { return 0, nil }

func (noChangelogs) ReadChangelog(_ context.Context, _ string, _ int32, from, _ int64, _ func([]*kgo.Record) error) (int64, error) {
	return from, nil
}

// newTestStandbys returns a standby manager over a one-source topology
// whose standbys catch up every millisecond, and a count of the
// rebalances it asked for.
func newTestStandbys(t *testing.T) (*standbyManager, *atomic.Int32) {
	t.Helper()
	b := processor.NewBuilder()
	b.AddSource("src", []processor.TopicRef{{Name: "in"}}, "", func(*processor.Task, []processor.Child) (any, error) {
		return rawFunc(func(*processor.RawRecord) error { return nil }), nil
	})
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	env := &processor.TaskEnv{AppID: "app", StateDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	var rebalances atomic.Int32
	m := newStandbyManager(slog.New(slog.DiscardHandler), func() { rebalances.Add(1) }, func(int) {})
	// Before it is set up, the group may already ask for positions.
	if pos := m.positions(); len(pos) != 0 {
		t.Fatalf("positions of a new manager: %v", pos)
	}
	m.open = func(id processor.TaskID) (*processor.Task, error) {
		return processor.NewTask(tasklife.K, topo, id.SubTopology, id.Partition, env)
	}
	m.changelogs = noChangelogs{}
	m.every = time.Millisecond
	return m, &rebalances
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func standbyIDs(m *standbyManager) []processor.TaskID {
	var out []processor.TaskID
	for _, st := range m.status() {
		if st.State != processor.TaskStandby {
			panic("a standby's status is not TaskStandby")
		}
		out = append(out, st.ID)
	}
	return out
}

// TestStandbyManagerFollowsAssignments walks a standby manager through
// assignments: it starts what is wanted, skips and releases what is
// active here, stops what is no longer wanted, reports positions once
// caught up, asks for one rebalance per warm-up that caught up, and
// stops everything.
func TestStandbyManagerFollowsAssignments(t *testing.T) {
	m, rebalances := newTestStandbys(t)
	a, b, c := processor.TaskID{Partition: 0}, processor.TaskID{Partition: 1}, processor.TaskID{Partition: 2}
	none := func(processor.TaskID) bool { return false }

	m.reconcile(none)
	if got := standbyIDs(m); len(got) != 0 {
		t.Fatalf("standbys before any assignment: %v", got)
	}
	m.set([]processor.TaskID{b, a}, []processor.TaskID{b})
	m.reconcile(none)
	if got := standbyIDs(m); !slices.Equal(got, []processor.TaskID{a, b}) {
		t.Fatalf("standbys after the first assignment: %v, want [%v %v]", got, a, b)
	}
	waitFor(t, "both standbys to catch up", func() bool {
		pos := m.positions()
		return pos[a] == 0 && pos[b] == 0
	})
	waitFor(t, "the warm-up's rebalance", func() bool { return rebalances.Load() == 1 })

	// The task of a becomes active here: its standby stops at once and
	// the next reconcile does not start it again while it is active.
	m.release(a)
	if got := standbyIDs(m); !slices.Equal(got, []processor.TaskID{b}) {
		t.Fatalf("standbys after a's release: %v, want [%v]", got, b)
	}
	activeA := func(id processor.TaskID) bool { return id == a }
	m.reconcile(activeA)
	if got := standbyIDs(m); !slices.Equal(got, []processor.TaskID{b}) {
		t.Fatalf("standbys while a is active: %v, want [%v]", got, b)
	}

	m.set([]processor.TaskID{c}, nil)
	m.reconcile(activeA)
	if got := standbyIDs(m); !slices.Equal(got, []processor.TaskID{c}) {
		t.Fatalf("standbys after the second assignment: %v, want [%v]", got, c)
	}
	if pos := m.positions(); pos[c] != -1 && pos[c] != 0 {
		t.Fatalf("position of a new standby: %d, want -1 before its catch-up or 0", pos[c])
	}
	waitFor(t, "c to catch up", func() bool { return m.positions()[c] == 0 })
	if n := rebalances.Load(); n != 1 {
		t.Fatalf("%d rebalances asked for; only the one warm-up should ask", n)
	}

	wait := m.stopAll()
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stopAll's wait did not return")
	}
	if got := standbyIDs(m); len(got) != 0 {
		t.Fatalf("standbys after stopAll: %v", got)
	}
}

// TestStandbyManagerRetriesLockedTask opens a standby whose directory is
// still locked by the closing active task: it retries until the lock is
// released, and a stop ends the retries.
func TestStandbyManagerRetriesLockedTask(t *testing.T) {
	m, _ := newTestStandbys(t)
	open := m.open
	var tries atomic.Int32
	var free atomic.Bool
	m.open = func(id processor.TaskID) (*processor.Task, error) {
		tries.Add(1)
		if !free.Load() {
			return nil, processor.ErrTaskLocked
		}
		return open(id)
	}
	a := processor.TaskID{Partition: 0}
	m.set([]processor.TaskID{a}, nil)
	m.reconcile(func(processor.TaskID) bool { return false })
	waitFor(t, "retries of a locked open", func() bool { return tries.Load() >= 3 })
	if pos := m.positions(); pos[a] != -1 {
		t.Fatalf("position of a standby that never opened: %d, want -1", pos[a])
	}
	free.Store(true)
	waitFor(t, "the standby to open and catch up", func() bool { return m.positions()[a] == 0 })
	m.stopAll()()
}
