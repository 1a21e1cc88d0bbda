// Standby tasks: warm copies of other instances' tasks
// (kappa.StandbyReplicas). A standby opens the task's stores and, every
// standbyEvery, brings them up to their changelogs' ends, read committed
// under exactly-once; it processes nothing. When the task comes to this
// instance, the standby closes and the task opens over stores that are
// already caught up, restoring only what was written since.

package runner

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa/internal/tasklife"
	"github.com/kappa-streams/kappa/processor"
)

// standbyEvery is how often a standby catches up with its changelogs.
const standbyEvery = time.Second

// notCaughtUp is the lag a standby reports before its first catch-up.
const notCaughtUp = math.MaxInt32

// standby is one standby task.
type standby struct {
	id     processor.TaskID
	cancel context.CancelFunc
	done   chan struct{}
	task   atomic.Pointer[processor.Task] // nil while closed
	// caughtUp is set once the standby reached its changelogs' ends.
	caughtUp atomic.Bool
	// applied and end are the changelog offsets the standby's stores
	// reached, and the changelogs' ends, both summed over its stores, at
	// its last catch-up.
	applied, end atomic.Int64
}

// lag is how many changelog records the standby was behind the
// changelogs' ends at its last catch-up: 0 once caught up, until the
// next catch-up finds more.
func (s *standby) lag() int64 {
	if !s.caughtUp.Load() {
		return notCaughtUp
	}
	return max(0, s.end.Load()-s.applied.Load())
}

// standbyManager owns the standby tasks of one instance. The group
// callbacks tell it what the latest assignment wants (set); the poll loop
// applies that between polls (reconcile), and stops the standby of a task
// that becomes active here (release). Status reads and the group metadata
// read the published view without any lock.
type standbyManager struct {
	log *slog.Logger
	// open opens a standby task over its local stores.
	open func(processor.TaskID) (*processor.Task, error)
	// changelogs reads the changelogs the standbys catch up from.
	changelogs tasklife.ChangelogReader
	// rebalance asks the group for a rebalance: a warm-up copy that has
	// caught up calls it so the leader moves the task onto it.
	rebalance func()
	// count reports how many standbys run, for the metrics.
	count func(int)
	// every is how often a standby catches up (standbyEvery).
	every time.Duration

	// mu guards want and warmups, written by the group callbacks.
	mu      sync.Mutex
	want    []processor.TaskID
	warmups map[processor.TaskID]bool
	// ver counts the changes to want, and to which tasks are active;
	// applied is the last one reconcile applied.
	ver     atomic.Int64
	applied int64

	// running are the standbys, and stopping those stopped and maybe not
	// closed yet; both are owned by the goroutine that calls reconcile,
	// release and stopAll (the poll loop, under the runtime's lock).
	running  map[processor.TaskID]*standby
	stopping []*standby
	// view is the running standbys as last published, in task order.
	view atomic.Pointer[[]*standby]
}

// newStandbyManager returns a manager without standbys. Its open and
// changelogs must be set before the first reconcile.
func newStandbyManager(log *slog.Logger, rebalance func(), count func(int)) *standbyManager {
	return &standbyManager{
		log: log, rebalance: rebalance, count: count,
		every:   standbyEvery,
		running: make(map[processor.TaskID]*standby),
	}
}

// set records this member's standby tasks from its latest assignment, and
// which of them are warm-ups; reconcile starts and stops them.
func (m *standbyManager) set(ids, warmups []processor.TaskID) {
	m.mu.Lock()
	m.want = ids
	m.warmups = make(map[processor.TaskID]bool, len(warmups))
	for _, id := range warmups {
		m.warmups[id] = true
	}
	m.mu.Unlock()
	m.ver.Add(1)
}

// caughtUp is called when a standby has caught up. A warm-up copy that
// is close enough asks for a rebalance, once: its member's metadata now
// reports the small lag, and the leader moves the task to it (KIP-441's
// probing rebalance).
func (m *standbyManager) caughtUp(sb *standby) {
	near := sb.lag() <= AcceptableLag
	m.mu.Lock()
	warm := m.warmups[sb.id]
	if warm && near {
		delete(m.warmups, sb.id)
	}
	m.mu.Unlock()
	if warm && near {
		m.log.Info("warm-up copy caught up: asking for a rebalance to take the task", "task", sb.id.String())
		m.rebalance()
	}
}

// reconcile starts the wanted standbys and stops the others and those
// whose task is active here, if anything changed since the last call.
func (m *standbyManager) reconcile(active func(processor.TaskID) bool) {
	ver := m.ver.Load()
	if ver == m.applied {
		return
	}
	m.applied = ver
	m.stopping = slices.DeleteFunc(m.stopping, func(sb *standby) bool {
		select {
		case <-sb.done:
			return true
		default:
			return false
		}
	})
	m.mu.Lock()
	want := make(map[processor.TaskID]bool, len(m.want))
	for _, id := range m.want {
		if !active(id) {
			want[id] = true
		}
	}
	m.mu.Unlock()
	for id := range m.running {
		if !want[id] {
			m.stop(id)
		}
	}
	for id := range want {
		if _, ok := m.running[id]; !ok {
			m.start(id)
		}
	}
	m.publish()
}

// release stops the standby of id, which is becoming active here, without
// waiting for it to close: the task opening over its directory waits for
// the lock. The next reconcile looks again at what is wanted.
func (m *standbyManager) release(id processor.TaskID) {
	m.stop(id)
	m.ver.Add(1)
}

func (m *standbyManager) start(id processor.TaskID) {
	ctx, cancel := context.WithCancel(context.Background())
	sb := &standby{id: id, cancel: cancel, done: make(chan struct{})}
	m.running[id] = sb
	m.log.Info("standby started", "task", id.String())
	go m.run(ctx, sb)
}

func (m *standbyManager) stop(id processor.TaskID) {
	if sb, ok := m.running[id]; ok {
		sb.cancel()
		delete(m.running, id)
		m.stopping = append(m.stopping, sb)
		m.publish()
	}
}

// publish makes the standbys visible to status reads and to the group
// metadata.
func (m *standbyManager) publish() {
	view := slices.SortedFunc(maps.Values(m.running), func(a, b *standby) int { return compareTaskIDs(a.id, b.id) })
	m.view.Store(&view)
	m.count(len(view))
}

// positions reports the changelog offsets each standby reached, summed,
// for the group metadata: -1 before its first catch-up.
func (m *standbyManager) positions() map[processor.TaskID]int64 {
	v := m.view.Load()
	if v == nil {
		return nil
	}
	out := make(map[processor.TaskID]int64, len(*v))
	for _, sb := range *v {
		pos := int64(-1)
		if sb.caughtUp.Load() {
			pos = sb.applied.Load()
		}
		out[sb.id] = pos
	}
	return out
}

// changelogEnds returns the end offsets of the tasks' changelogs, summed
// per task, as the leader balances, with one listing request per broker
// (last stable offsets under exactly-once, as standbys read committed). A
// task whose ends cannot be read within a few seconds is left out.
func (r *Runtime) changelogEnds(ids []processor.TaskID) map[processor.TaskID]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	subs := r.cfg.Topology.SubTopologies()
	topicsOf := make(map[int][]string)
	var all []string
	for _, id := range ids {
		if id.SubTopology < 0 || id.SubTopology >= len(subs) || topicsOf[id.SubTopology] != nil {
			continue
		}
		topics := []string{}
		for _, sp := range subs[id.SubTopology].Stores {
			if sp.Logging {
				topics = append(topics, processor.ChangelogRef(sp.Name).Resolve(r.cfg.Plan.AppID))
			}
		}
		topicsOf[id.SubTopology] = topics
		all = append(all, topics...)
	}
	listed, err := r.changelogs.endOffsets(ctx, all...)
	if err != nil {
		r.log.Warn("changelog end offsets for the standby lags", "error", err)
		return nil
	}
	out := make(map[processor.TaskID]int64, len(ids))
next:
	for _, id := range ids {
		sum := int64(0)
		for _, topic := range topicsOf[id.SubTopology] {
			o, ok := listed.Lookup(topic, id.Partition)
			if !ok || o.Err != nil {
				continue next
			}
			sum += o.Offset
		}
		out[id] = sum
	}
	return out
}

// run keeps the standby's stores caught up until ctx is done.
func (m *standbyManager) run(ctx context.Context, sb *standby) {
	defer close(sb.done)
	wait := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	for ctx.Err() == nil {
		t, err := m.open(sb.id)
		if err != nil {
			if !errors.Is(err, processor.ErrTaskLocked) {
				m.log.Warn("opening standby task", "task", sb.id.String(), "error", err)
			}
			if !wait(m.every) {
				return
			}
			continue
		}
		sb.task.Store(t)
		ops := t.Lifecycle(tasklife.K)
		for ctx.Err() == nil {
			if err := ops.CatchUp(ctx, m.changelogs); err != nil {
				if ctx.Err() == nil {
					m.log.Warn("standby task catching up", "task", sb.id.String(), "error", err)
				}
				break
			}
			if applied, end, err := ops.Positions(); err == nil {
				sb.applied.Store(applied)
				sb.end.Store(end)
			}
			sb.caughtUp.Store(true)
			m.caughtUp(sb)
			// A standby holds committed changelog data only: its
			// directory is clean, whatever an earlier owner left.
			if err := ops.MarkClean(); err != nil {
				m.log.Warn("marking standby directory clean", "task", sb.id.String(), "error", err)
			}
			if !wait(m.every) {
				break
			}
		}
		sb.task.Store(nil)
		if err := ops.Close(); err != nil {
			m.log.Warn("closing standby task", "task", sb.id.String(), "error", err)
		}
		if ctx.Err() == nil && !wait(m.every) {
			return
		}
	}
}

// status returns the status of each standby task.
func (m *standbyManager) status() []processor.TaskStatus {
	v := m.view.Load()
	if v == nil {
		return nil
	}
	out := make([]processor.TaskStatus, 0, len(*v))
	for _, sb := range *v {
		st := processor.TaskStatus{ID: sb.id}
		if t := sb.task.Load(); t != nil {
			st = t.Status()
		}
		// For a standby, Restored and RestoreTarget are the changelog
		// offsets its stores reached and the changelogs' ends, summed, at
		// its last catch-up.
		st.Restored, st.RestoreTarget = sb.applied.Load(), sb.end.Load()
		st.State = processor.TaskStandby
		out = append(out, st)
	}
	return out
}

// stopAll stops every standby and returns a function that waits until all
// are closed, to call without the runtime's lock.
func (m *standbyManager) stopAll() (wait func()) {
	for id := range m.running {
		m.stop(id)
	}
	stopping := m.stopping
	m.stopping = nil
	return func() {
		for _, sb := range stopping {
			<-sb.done
		}
	}
}
