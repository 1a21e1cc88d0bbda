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
	"maps"
	"math"
	"slices"
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

// setStandbys records this member's standby tasks from its latest
// assignment, and which are warm-ups; the run loop starts and stops them.
func (r *Runtime) setStandbys(ids, warmups []processor.TaskID) {
	r.standbyMu.Lock()
	r.wantStandby = ids
	r.warmups = make(map[processor.TaskID]bool, len(warmups))
	for _, id := range warmups {
		r.warmups[id] = true
	}
	r.standbyMu.Unlock()
	r.standbyVer.Add(1)
}

// caughtUp is called when a standby has caught up. A warm-up copy that
// is close enough asks for a rebalance, once: its member's metadata now
// reports the small lag, and the leader moves the task to it (KIP-441's
// probing rebalance).
func (r *Runtime) caughtUp(sb *standby) {
	r.standbyMu.Lock()
	warm := r.warmups[sb.id]
	if warm && sb.lag() <= AcceptableLag {
		delete(r.warmups, sb.id)
	}
	r.standbyMu.Unlock()
	if warm && sb.lag() <= AcceptableLag {
		r.log.Info("warm-up copy caught up: asking for a rebalance to take the task", "task", sb.id.String())
		r.cl.ForceRebalance()
	}
}

// reconcileStandbys starts the wanted standbys and stops the others and
// those whose task runs here as active. r.mu is held.
func (r *Runtime) reconcileStandbys() {
	ver := r.standbyVer.Load()
	if ver == r.standbyApplied {
		return
	}
	r.standbyApplied = ver
	r.stopping = slices.DeleteFunc(r.stopping, func(sb *standby) bool {
		select {
		case <-sb.done:
			return true
		default:
			return false
		}
	})
	r.standbyMu.Lock()
	want := make(map[processor.TaskID]bool, len(r.wantStandby))
	for _, id := range r.wantStandby {
		if _, active := r.tasks[id]; !active {
			want[id] = true
		}
	}
	r.standbyMu.Unlock()
	for id := range r.standbys {
		if !want[id] {
			r.stopStandby(id)
		}
	}
	for id := range want {
		if _, ok := r.standbys[id]; !ok {
			r.startStandby(id)
		}
	}
	r.publishStandbys()
}

// startStandby starts the standby of id. r.mu is held.
func (r *Runtime) startStandby(id processor.TaskID) {
	ctx, cancel := context.WithCancel(context.Background())
	sb := &standby{id: id, cancel: cancel, done: make(chan struct{})}
	r.standbys[id] = sb
	r.log.Info("standby started", "task", id.String())
	go r.runStandby(ctx, sb)
}

// stopStandby stops the standby of id, if any, without waiting for it to
// close: a task opening over its directory waits for the lock. r.mu is
// held.
func (r *Runtime) stopStandby(id processor.TaskID) {
	if sb, ok := r.standbys[id]; ok {
		sb.cancel()
		delete(r.standbys, id)
		r.stopping = append(r.stopping, sb)
		r.publishStandbys()
	}
}

// publishStandbys makes the standbys visible to status reads and to the
// group metadata, which do not take r.mu. r.mu is held.
func (r *Runtime) publishStandbys() {
	view := slices.SortedFunc(maps.Values(r.standbys), func(a, b *standby) int { return compareTaskIDs(a.id, b.id) })
	r.standbyView.Store(&view)
	r.cfg.Metrics.standbyTasks(len(view))
}

// standbyPositions reports the changelog offsets each standby reached,
// summed, for the group metadata: -1 before its first catch-up.
func (r *Runtime) standbyPositions() map[processor.TaskID]int64 {
	v := r.standbyView.Load()
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

// runStandby keeps the standby's stores caught up until ctx is done.
func (r *Runtime) runStandby(ctx context.Context, sb *standby) {
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
		t, err := tasklife.New[*processor.Task](r.cfg.Topology, sb.id.SubTopology, sb.id.Partition, r.standbyEnv)
		if err != nil {
			if !errors.Is(err, processor.ErrTaskLocked) {
				r.log.Warn("opening standby task", "task", sb.id.String(), "error", err)
			}
			if !wait(standbyEvery) {
				return
			}
			continue
		}
		sb.task.Store(t)
		ops := tasklife.Of(t)
		for ctx.Err() == nil {
			if err := ops.CatchUp(ctx, r.changelogs); err != nil {
				if ctx.Err() == nil {
					r.log.Warn("standby task catching up", "task", sb.id.String(), "error", err)
				}
				break
			}
			if applied, end, err := ops.Positions(); err == nil {
				sb.applied.Store(applied)
				sb.end.Store(end)
			}
			sb.caughtUp.Store(true)
			r.caughtUp(sb)
			// A standby holds committed changelog data only: its
			// directory is clean, whatever an earlier owner left.
			if err := ops.MarkClean(); err != nil {
				r.log.Warn("marking standby directory clean", "task", sb.id.String(), "error", err)
			}
			if !wait(standbyEvery) {
				break
			}
		}
		sb.task.Store(nil)
		if err := ops.Close(); err != nil {
			r.log.Warn("closing standby task", "task", sb.id.String(), "error", err)
		}
		if ctx.Err() == nil && !wait(standbyEvery) {
			return
		}
	}
}

// standbyStatus returns the status of each standby task.
func (r *Runtime) standbyStatus() []processor.TaskStatus {
	v := r.standbyView.Load()
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

// stopStandbys stops every standby and waits until all are closed.
func (r *Runtime) stopStandbys() {
	r.mu.Lock()
	for id := range r.standbys {
		r.stopStandby(id)
	}
	stopping := r.stopping
	r.stopping = nil
	r.mu.Unlock()
	for _, sb := range stopping {
		<-sb.done
	}
}
