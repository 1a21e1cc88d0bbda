package runner

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/kappa-streams/kappa/processor"
)

// TestTaskManagerBookkeeping walks the task set through an assignment, a
// revocation, an abandoned commit that reopens the tasks, and a fenced
// commit whose tasks the next assignment leaves with the member.
func TestTaskManagerBookkeeping(t *testing.T) {
	subs := map[string]int{"in": 0, "app-by-key-repartition": 1}
	var closed []processor.TaskID
	m := newTaskManager(slog.New(slog.DiscardHandler), subs, func(rt *runTask) { closed = append(closed, rt.id) })
	id := func(sub int, p int32) processor.TaskID { return processor.TaskID{SubTopology: sub, Partition: p} }
	viewIDs := func() []processor.TaskID {
		var out []processor.TaskID
		for _, rt := range m.view() {
			out = append(out, rt.id)
		}
		return out
	}
	for _, tid := range []processor.TaskID{id(1, 0), id(0, 1), id(0, 0)} {
		m.add(&runTask{id: tid})
	}
	if got, want := viewIDs(), []processor.TaskID{id(0, 0), id(0, 1), id(1, 0)}; !slices.Equal(got, want) {
		t.Fatalf("published tasks %v, want %v in task order", got, want)
	}

	// A revocation of in[1] and of a partition this member does not run.
	revoked := map[string][]int32{"in": {1, 5}, "other": {0}}
	if got := m.ofPartitions(revoked); len(got) != 1 || !got[id(0, 1)] {
		t.Fatalf("tasks of the revoked partitions: %v, want only 0_1", got)
	}
	m.close(m.ofPartitions(revoked), true)
	if got := viewIDs(); !slices.Equal(got, []processor.TaskID{id(0, 0), id(1, 0)}) {
		t.Fatalf("tasks after the revocation: %v", got)
	}
	if !slices.Equal(closed, []processor.TaskID{id(0, 1)}) {
		t.Fatalf("closed callbacks %v, want [0_1]", closed)
	}

	// An abandoned commit: every task suspends, closes, waits to reopen.
	suspended := m.suspendAll()
	m.reopenLater(suspended)
	if len(m.all()) != 0 || len(m.view()) != 0 {
		t.Fatalf("tasks left after suspendAll: %v", m.all())
	}
	// 1_0 is assigned again meanwhile, from the committed offsets.
	m.add(&runTask{id: id(1, 0)})
	if got := m.toReopen(); !slices.Equal(got, []processor.TaskID{id(0, 0)}) {
		t.Fatalf("to reopen: %v, want [0_0] (1_0 runs again)", got)
	}
	m.reopened(id(0, 0))
	if got := m.toReopen(); len(got) != 0 {
		t.Fatalf("to reopen after reopened: %v", got)
	}

	// A fenced commit: the tasks wait for the next assignment. It revokes
	// 1_0's partition and leaves 0_0's, which then waits to reopen.
	m.add(&runTask{id: id(0, 0)})
	m.rejoinLater(m.suspendAll())
	m.forget(map[string][]int32{"app-by-key-repartition": {0}})
	if got := m.toReopen(); len(got) != 0 {
		t.Fatalf("to reopen before the assignment ends: %v", got)
	}
	m.assignmentDone()
	if got := m.toReopen(); !slices.Equal(got, []processor.TaskID{id(0, 0)}) {
		t.Fatalf("to reopen after the assignment: %v, want [0_0]", got)
	}
	if n := len(closed); n != 5 {
		t.Fatalf("%d tasks closed in all, want 5 (0_1, then 0_0 and 1_0, then 1_0 and 0_0)", n)
	}
}
