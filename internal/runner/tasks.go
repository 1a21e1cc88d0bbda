// The set of active tasks: which tasks this instance runs, their
// life-cycle states, and which wait to be reopened from their committed
// state. The runtime decides when tasks open, commit and close
// (task_manager.go, commit.go, reopen.go); taskManager keeps the
// bookkeeping, so that each of those steps changes it in one way.

package runner

import (
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/kappa-streams/kappa/processor"
)

// taskManager owns the active tasks of an instance. Its methods are
// called with the runtime's lock held, except view, which status reads
// call without it.
type taskManager struct {
	log *slog.Logger
	// subs maps each input topic to its sub-topology.
	subs map[string]int
	// closed is called for each task once it is closed (the metrics let
	// go of it).
	closed func(*runTask)

	tasks     map[processor.TaskID]*runTask
	published atomic.Pointer[[]*runTask]
	// reopening holds the tasks closed after their uncommitted work was
	// abandoned, which wait to be opened again from their committed
	// state (Runtime.tryReopen).
	reopening map[processor.TaskID]bool
	// rejoining holds the tasks a fenced commit closed: the group may
	// give them back to this member in the rebalance that follows without
	// revoking them (its client still owns their partitions), so those
	// neither revoked nor lost by the end of that rebalance are reopened
	// (rejoined).
	rejoining map[processor.TaskID]bool
}

func newTaskManager(log *slog.Logger, subs map[string]int, closed func(*runTask)) *taskManager {
	return &taskManager{
		log: log, subs: subs, closed: closed,
		tasks:     make(map[processor.TaskID]*runTask),
		reopening: make(map[processor.TaskID]bool),
		rejoining: make(map[processor.TaskID]bool),
	}
}

// get returns the task id, if this instance runs it.
func (m *taskManager) get(id processor.TaskID) (*runTask, bool) {
	t, ok := m.tasks[id]
	return t, ok
}

// has reports whether this instance runs the task id.
func (m *taskManager) has(id processor.TaskID) bool {
	_, ok := m.tasks[id]
	return ok
}

// all returns every task, for reading only.
func (m *taskManager) all() map[processor.TaskID]*runTask { return m.tasks }

// ids returns the IDs of every task.
func (m *taskManager) ids() map[processor.TaskID]bool {
	ids := make(map[processor.TaskID]bool, len(m.tasks))
	for id := range m.tasks {
		ids[id] = true
	}
	return ids
}

// add records a new task, Created, and publishes the set.
func (m *taskManager) add(t *runTask) {
	m.tasks[t.id] = t
	m.publish()
}

// setState moves t to s, logging the transition.
func (m *taskManager) setState(t *runTask, s processor.TaskState) {
	if old := processor.TaskState(t.state.Swap(int32(s))); old != s {
		m.log.Debug("task state", "task", t.id.String(), "from", old.String(), "to", s.String())
	}
}

// close closes the tasks ids and forgets them. clean says their last
// commit succeeded, so their stores hold what their committed changelogs
// do; under exactly-once, a task closed otherwise has its stores wiped
// when it opens again.
func (m *taskManager) close(ids map[processor.TaskID]bool, clean bool) {
	for id := range ids {
		t, ok := m.tasks[id]
		if !ok {
			continue
		}
		delete(m.tasks, id)
		if t.cancel != nil {
			t.cancel() // the restore goroutine closes what it opened
		}
		if t.Task != nil {
			if clean && t.running() {
				if err := t.MarkClean(); err != nil {
					m.log.Warn("marking task directory clean", "task", id.String(), "error", err)
				}
			}
			if err := t.Close(); err != nil {
				m.log.Warn("closing task", "task", id.String(), "error", err)
			}
		}
		m.setState(t, processor.TaskClosed)
		m.closed(t)
	}
	m.publish()
}

// suspendAll moves every task to Suspended, closes them unclean, and
// returns their IDs: their uncommitted work is abandoned.
func (m *taskManager) suspendAll() map[processor.TaskID]bool {
	ids := m.ids()
	for _, t := range m.tasks {
		m.setState(t, processor.TaskSuspended)
	}
	m.close(ids, false)
	return ids
}

// ofPartitions returns the tasks this instance runs that read parts.
func (m *taskManager) ofPartitions(parts map[string][]int32) map[processor.TaskID]bool {
	ids := make(map[processor.TaskID]bool)
	m.eachID(parts, func(id processor.TaskID) {
		if m.has(id) {
			ids[id] = true
		}
	})
	return ids
}

// eachID calls fn with the ID of each task that reads one of parts.
func (m *taskManager) eachID(parts map[string][]int32, fn func(processor.TaskID)) {
	for topic, ps := range parts {
		if sub, ok := m.subs[topic]; ok {
			for _, p := range ps {
				fn(processor.TaskID{SubTopology: sub, Partition: p})
			}
		}
	}
}

// reopenLater marks ids to be reopened from their committed state.
func (m *taskManager) reopenLater(ids map[processor.TaskID]bool) {
	for id := range ids {
		m.reopening[id] = true
	}
}

// rejoinLater marks ids, closed by a fenced commit, to be reopened if the
// next assignment leaves them with this member.
func (m *taskManager) rejoinLater(ids map[processor.TaskID]bool) {
	for id := range ids {
		m.rejoining[id] = true
	}
}

// assignmentDone ends a rebalance: the tasks a fenced commit closed that
// the group left with this member, and that no callback opened again,
// wait to be reopened.
func (m *taskManager) assignmentDone() {
	for id := range m.rejoining {
		if !m.has(id) {
			m.reopening[id] = true
		}
	}
	clear(m.rejoining)
}

// forget drops the tasks that read parts from those waiting to be
// reopened or rejoined: they are no longer this instance's.
func (m *taskManager) forget(parts map[string][]int32) {
	m.eachID(parts, func(id processor.TaskID) {
		delete(m.reopening, id)
		delete(m.rejoining, id)
	})
}

// toReopen returns the tasks waiting to be reopened, in task order;
// those assigned again meanwhile (from the committed offsets) no longer
// wait.
func (m *taskManager) toReopen() []processor.TaskID {
	var ids []processor.TaskID
	for id := range m.reopening {
		if m.has(id) {
			delete(m.reopening, id)
			continue
		}
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareTaskIDs)
	return ids
}

// reopened records that id no longer waits to be reopened.
func (m *taskManager) reopened(id processor.TaskID) { delete(m.reopening, id) }

// publish makes the current set of tasks visible to status readers.
func (m *taskManager) publish() {
	view := make([]*runTask, 0, len(m.tasks))
	for _, t := range m.tasks {
		view = append(view, t)
	}
	slices.SortFunc(view, func(a, b *runTask) int { return compareTaskIDs(a.id, b.id) })
	m.published.Store(&view)
}

// view returns the tasks as last published, in task order. Any goroutine
// may call it.
func (m *taskManager) view() []*runTask {
	if v := m.published.Load(); v != nil {
		return *v
	}
	return nil
}
