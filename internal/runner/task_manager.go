// The task manager: tasks created on assignment, restored off the poll
// loop, and closed on revocation or loss.

package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kappa-streams/kappa/internal/tasklife"
	"github.com/kappa-streams/kappa/processor"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// assign starts the task id. A task without stores opens at once; one with
// stores has its partitions paused while a goroutine opens and restores it,
// so restoring never holds up polling, heartbeats or other tasks. r.mu is
// held.
func (r *Runtime) assign(id processor.TaskID) {
	if r.tasks.has(id) {
		return
	}
	// A standby of the task here closes; the task opens over its stores
	// once it has released them (openAndRestore waits for the lock).
	r.standbys.release(id)
	rt := &runTask{id: id, next: make(map[string]kgo.EpochOffset),
		buf: make(map[string][]*kgo.Record), caughtUp: make(map[string]bool), assigned: time.Now()}
	for _, ref := range r.cfg.Topology.SubTopologies()[id.SubTopology].Sources {
		if name := ref.Resolve(r.cfg.Plan.AppID); r.cfg.Plan.Partitions[name] > id.Partition {
			rt.inputs = append(rt.inputs, name)
			if n, ok := r.keyParts[name]; ok {
				if rt.keyParts == nil {
					rt.keyParts = make(map[string]int32)
				}
				rt.keyParts[name] = n
			}
		}
	}
	r.tasks.add(rt)
	r.cfg.Metrics.attach(rt, r.env.Cache, r.cfg.Topology.SubTopologies()[id.SubTopology].Stores)
	if len(r.cfg.Topology.SubTopologies()[id.SubTopology].Stores) == 0 {
		t, err := processor.NewTask(tasklife.K, r.cfg.Topology, id.SubTopology, id.Partition, r.env)
		if err != nil {
			r.fail(err)
			return
		}
		rt.Task, rt.Ops = t, t.Lifecycle(tasklife.K)
		rt.published.Store(t)
		if err := rt.MarkUnclean(); err != nil {
			r.fail(err)
			return
		}
		r.tasks.setState(rt, processor.TaskRunning)
		r.log.Info("task started", "task", id.String())
		return
	}
	r.tasks.setState(rt, processor.TaskRestoring)
	parts := r.partitionsOf(id)
	r.cl.PauseFetchPartitions(parts)
	ctx, cancel := context.WithCancel(context.Background())
	rt.cancel = cancel
	r.restoring.Add(1)
	go func() {
		defer r.restoring.Done()
		t, err := r.openAndRestoreRetrying(ctx, rt)
		r.mu.Lock()
		defer r.mu.Unlock()
		if cur, _ := r.tasks.get(id); cur != rt || ctx.Err() != nil {
			if t != nil {
				t.Lifecycle(tasklife.K).Close() // revoked while restoring
			}
			return
		}
		if err != nil {
			r.fail(fmt.Errorf("processor: task %s: %w", id, err))
			return
		}
		ops := t.Lifecycle(tasklife.K)
		if err := ops.MarkUnclean(); err != nil {
			ops.Close()
			r.fail(fmt.Errorf("processor: task %s: %w", id, err))
			return
		}
		rt.Task, rt.Ops, rt.cancel, rt.assigned = t, ops, nil, time.Now()
		r.cfg.Metrics.opened(rt, t)
		r.tasks.setState(rt, processor.TaskRunning)
		r.cl.ResumeFetchPartitions(parts)
		r.log.Info("task started", "task", id.String(), "restored", t.Stats().Restored.Load())
	}()
}

// restoreRetryFor bounds how long a task's open and restore are retried
// after failures (brokers restarting or unreachable) before the instance
// gives up.
const restoreRetryFor = 5 * time.Minute

// openAndRestoreRetrying is openAndRestore, tried again after a failure,
// with backoff, for up to restoreRetryFor: a restore that fails because
// the brokers restart must not stop the instance.
func (r *Runtime) openAndRestoreRetrying(ctx context.Context, rt *runTask) (*processor.Task, error) {
	deadline := time.Now().Add(restoreRetryFor)
	backoff := 100 * time.Millisecond
	for {
		t, err := r.openAndRestore(ctx, rt)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return t, err
		}
		r.log.Warn("opening or restoring task failed; trying again", "task", rt.id.String(), "in", backoff, "error", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// openAndRestore opens a task, waiting for its state directory if the
// previous owner on this machine still holds it, and restores its stores.
func (r *Runtime) openAndRestore(ctx context.Context, rt *runTask) (*processor.Task, error) {
	id := rt.id
	backoff := 10 * time.Millisecond
	for {
		t, err := processor.NewTask(tasklife.K, r.cfg.Topology, id.SubTopology, id.Partition, r.env)
		if err == nil {
			rt.published.Store(t)
			ops := t.Lifecycle(tasklife.K)
			st, err := r.committedStreamTime(ctx, id)
			if err != nil {
				ops.Close()
				return nil, err
			}
			ops.RestoreStreamTime(st)
			if err := ops.Restore(ctx, r.restoreReader(rt)); err != nil {
				ops.Close()
				return nil, err
			}
			return t, nil
		}
		if !errors.Is(err, processor.ErrTaskLocked) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// streamTimeMeta prefixes the stream time in committed offsets' metadata.
const streamTimeMeta = "kappa.st="

// committedStreamTime reads the stream time the task's last owner
// committed with its input offsets: the largest over its partitions, -1
// when none was committed.
func (r *Runtime) committedStreamTime(ctx context.Context, id processor.TaskID) (int64, error) {
	offs, err := kadm.NewClient(r.cl).FetchOffsets(kadm.RequireStable(ctx), r.cfg.Plan.AppID)
	if err != nil {
		return -1, fmt.Errorf("processor: task %s: committed offsets: %w", id, err)
	}
	st := int64(-1)
	for topic, parts := range r.partitionsOf(id) {
		for _, p := range parts {
			o, ok := offs.Lookup(topic, p)
			if !ok || o.Err != nil {
				continue
			}
			if v, ok := strings.CutPrefix(o.Metadata, streamTimeMeta); ok {
				if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > st {
					st = ms
				}
			}
		}
	}
	return st, nil
}

// partitionsOf returns the input partitions of a task.
func (r *Runtime) partitionsOf(id processor.TaskID) map[string][]int32 {
	parts := make(map[string][]int32)
	for _, ref := range r.cfg.Topology.SubTopologies()[id.SubTopology].Sources {
		topic := ref.Resolve(r.cfg.Plan.AppID)
		if id.Partition < r.cfg.Plan.Partitions[topic] {
			parts[topic] = []int32{id.Partition}
		}
	}
	return parts
}

func (r *Runtime) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	<-r.built
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cfg.Metrics.rebalanced()
	for topic, parts := range assigned {
		sub, ok := r.subs[topic]
		if !ok {
			continue
		}
		for _, p := range parts {
			r.assign(processor.TaskID{SubTopology: sub, Partition: p})
		}
	}
	// The tasks a fenced commit closed that the group left with this
	// member: its client still owns their partitions, so no callback
	// assigns them again. They reopen from their committed state.
	r.tasks.assignmentDone()
	r.log.Info("tasks assigned", "assigned", assigned)
}

// onRevoked commits and closes the revoked tasks. It runs while no poll is
// being processed (BlockRebalanceOnPoll), and on Close.
//
// A commit that fails here is not swallowed: under exactly-once the open
// transaction is aborted and the tasks kept are reopened from their
// committed state; a fatal failure stops the instance, and nothing more
// is committed. The revoked tasks close without committing, so their next
// owner processes their input since the last commit again.
func (r *Runtime) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	<-r.built
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := r.tasks.ofPartitions(revoked)
	r.tasks.forget(revoked)
	if len(ids) == 0 {
		r.log.Info("tasks revoked", "revoked", revoked, "running", 0)
		return // nothing of this member's moves: nothing to commit
	}
	if r.col.Err() != nil {
		// An output was lost: abandon the work it belongs to.
		r.recoverProduceLocked()
	}
	ok, err := r.commit(ctx, ids)
	if err != nil {
		r.log.Error("commit on revoke failed: the instance stops without committing more", "error", err)
	}
	// A verdict other than committed closed and marked every task for
	// reopening or rejoining; the revoked ones are no longer this
	// member's.
	r.tasks.forget(revoked)
	r.tasks.close(ids, ok && !r.noCommit.Load())
	r.log.Info("tasks revoked", "revoked", revoked)
}

// onLost closes tasks without committing: another member owns them now.
//
// Under exactly-once the open transaction holds the lost tasks' records
// too: committing it later would make their outputs visible without their
// offsets, and their next owner would produce them again. So it is
// aborted, and the tasks kept lose their uncommitted work with it: they
// are reopened from their committed state.
func (r *Runtime) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	<-r.built
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := r.tasks.ofPartitions(lost)
	r.tasks.forget(lost)
	r.tasks.close(ids, false)
	r.log.Warn("tasks lost", "lost", lost)
	if !r.committer.spansAllTasks() || len(ids) == 0 || r.noCommit.Load() {
		return
	}
	if err := r.committer.abandon(); err != nil {
		r.halt(err)
		return
	}
	r.reopen()
}

// stateOf returns t's state.
func (t *runTask) stateOf() processor.TaskState { return processor.TaskState(t.state.Load()) }

// running reports whether the task is Running: open, restored, processing.
func (t *runTask) running() bool { return t.stateOf() == processor.TaskRunning }
