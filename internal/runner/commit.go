// The commit path: prepare (flush the caches), commit (acknowledged
// outputs, then input offsets), post-commit (stores written with their
// changelog positions).

package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/kappa-streams/kappa/processor"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// withStreamTimes returns ctx carrying a pre-commit hook that writes each
// task's stream time into the metadata of its partitions' offsets.
func withStreamTimes(ctx context.Context, times map[string]map[int32]int64) context.Context {
	return kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			rt := &req.Topics[i]
			for j := range rt.Partitions {
				rp := &rt.Partitions[j]
				if ms, ok := times[rt.Topic][rp.Partition]; ok && ms >= 0 {
					rp.Metadata = kmsg.StringPtr(streamTimeMeta + strconv.FormatInt(ms, 10))
				}
			}
		}
		return nil
	})
}

// finalCommit commits what was processed before stopping, within a bound
// so a dead cluster cannot hang shutdown.
func (r *Runtime) finalCommit() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return r.commitLocked(ctx)
}

// commitLocked takes the lock and commits.
func (r *Runtime) commitLocked(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.commit(ctx, nil)
}

// commit flushes every produced record, then commits the input offsets of
// the given tasks (all when nil). After a produce failure it commits
// nothing and returns the failure. r.mu is held.
func (r *Runtime) commit(ctx context.Context, only map[processor.TaskID]bool) error {
	if (!r.dirty && only == nil) || r.aborted.Load() {
		return nil
	}
	if err := r.produceErr(); err != nil {
		return err
	}
	start := time.Now()
	eos := r.txnID != ""
	if eos {
		// One transaction holds every task's records: committing some
		// tasks' offsets with all of them would make the others' outputs
		// visible without their offsets, duplicated after a crash.
		only = nil
	}
	var tasks []*runTask
	for id, t := range r.tasks {
		if t.running() && (only == nil || only[id]) {
			tasks = append(tasks, t)
		}
	}
	// 0. Still a member? An instance that was paused past the session
	// timeout (a GC pause, a stopped VM) has lost its tasks to others;
	// flushing now would write its stale caches to the outputs and
	// changelogs before its offset commit failed. Asking first narrows
	// that window to the time between this answer and the flush. Under
	// exactly-once the flush goes into a transaction that the fenced
	// offset commit aborts, so nobody reads it: no need to ask, every
	// 100ms, at the cost of a round trip.
	if !eos {
		if err := r.checkMembership(ctx); err != nil {
			r.loseTasks(tasks, err)
			return nil
		}
	}
	// 1. Flush caches: changes go downstream and to the changelogs. Tasks
	// share nothing but the client, so they flush in parallel.
	err := r.parallel(len(tasks), func(i int) error {
		if err := tasks[i].FlushStores(); err != nil {
			return fmt.Errorf("processor: task %s: flush stores: %w", tasks[i].id, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// 2. Every output and changelog record acknowledged.
	if err := r.cl.Flush(ctx); err != nil {
		return fmt.Errorf("processor: flush before commit: %w", err)
	}
	if err := r.produceErr(); err != nil {
		return err
	}
	// 3. Local stores written, with the changelog offsets they reach
	// (under exactly-once, once the transaction has committed them).
	commitStores := func() error {
		return r.parallel(len(tasks), func(i int) error {
			if err := tasks[i].CommitStores(); err != nil {
				return fmt.Errorf("processor: task %s: commit stores: %w", tasks[i].id, err)
			}
			return nil
		})
	}
	if !eos {
		if err := commitStores(); err != nil {
			return err
		}
	}
	// 4. Input offsets.
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	times := make(map[string]map[int32]int64)
	for _, t := range tasks {
		id := t.id
		for topic, eo := range t.next {
			if offsets[topic] == nil {
				offsets[topic] = make(map[int32]kgo.EpochOffset)
				times[topic] = make(map[int32]int64)
			}
			offsets[topic][id.Partition] = eo
			times[topic][id.Partition] = t.StreamTimeMillis()
		}
	}
	if eos {
		if err := r.commitTxn(ctx, offsets, times); err != nil {
			return r.txnFailed(ctx, tasks, err)
		}
		r.txnFailures = 0
		if err := commitStores(); err != nil {
			return err
		}
		if err := r.beginTxn(); err != nil {
			return err
		}
		r.dirty = false
		r.commits.Add(1)
		r.cfg.Metrics.committed(time.Since(start))
		r.purge(ctx, offsets)
		return nil
	}
	var commitErr error
	if len(offsets) > 0 {
		r.commitOffsets(withStreamTimes(ctx, times), offsets, &commitErr)
	}
	if fenced(commitErr) {
		r.loseTasks(tasks, commitErr)
		return nil
	}
	if commitErr != nil {
		return fmt.Errorf("processor: commit offsets: %w", commitErr)
	}
	if only == nil {
		r.dirty = false
	}
	r.commits.Add(1)
	r.cfg.Metrics.committed(time.Since(start))
	r.purge(ctx, offsets)
	return nil
}

// purgeEvery bounds how often committed records are deleted from
// repartition topics.
const purgeEvery = 30 * time.Second

// purge deletes the records of repartition topics below the committed
// offsets: nothing reads them again, and the topics keep them otherwise
// (they are created with infinite retention, so nothing unprocessed
// expires while the app is down). A failure is only logged: the next
// purge covers it.
func (r *Runtime) purge(ctx context.Context, committed map[string]map[int32]kgo.EpochOffset) {
	if len(r.repartitions) == 0 || time.Since(r.lastPurge) < purgeEvery {
		return
	}
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.TimeoutMillis = 5000
	for _, topic := range r.repartitions {
		parts := committed[topic]
		if len(parts) == 0 {
			continue
		}
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = topic
		for p, eo := range parts {
			rp := kmsg.NewDeleteRecordsRequestTopicPartition()
			rp.Partition, rp.Offset = p, eo.Offset
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	if len(req.Topics) == 0 {
		return // nothing committed on a repartition topic yet: try next commit
	}
	r.lastPurge = time.Now()
	shards := r.cl.RequestSharded(ctx, req)
	for _, sh := range shards {
		if sh.Err != nil {
			r.log.Warn("purging repartition topics", "error", sh.Err)
			continue
		}
		for _, t := range sh.Resp.(*kmsg.DeleteRecordsResponse).Topics {
			for _, p := range t.Partitions {
				if err := kerrFor(p.ErrorCode); err != nil {
					r.log.Warn("purging repartition topic", "topic", t.Topic, "partition", p.Partition, "error", err)
				}
			}
		}
	}
}

func (r *Runtime) commitOffsets(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset, commitErr *error) {
	r.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			*commitErr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerrFor(p.ErrorCode); e != nil {
					*commitErr = errors.Join(*commitErr, fmt.Errorf("topic %q partition %d: %w", t.Topic, p.Partition, e))
				}
			}
		}
	})
}

// fenced reports whether err says this member no longer belongs to the
// group's current generation: it was evicted (a pause longer than the
// session timeout, a broker restart that forgot it) or the group moved on
// without it. Its tasks belong to others now.
func fenced(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.FencedInstanceID)
}

// ErrInstanceIDInUse is wrapped by the error Run returns when another
// instance joined the group with this one's InstanceID.
var ErrInstanceIDInUse = errors.New("another instance uses this instance ID")

// staticConflict returns the error that stops a static member another
// instance has fenced (FENCED_INSTANCE_ID), in fetches or in fenced.
func (r *Runtime) staticConflict(fetches kgo.Fetches) error {
	var conflict error
	fetches.EachError(func(_ string, _ int32, err error) {
		if errors.Is(err, kerr.FencedInstanceID) {
			conflict = err
		}
	})
	if conflict == nil && r.fencedBy != nil && errors.Is(r.fencedBy, kerr.FencedInstanceID) {
		conflict = r.fencedBy
	}
	if conflict == nil || r.cfg.InstanceID == "" {
		return nil
	}
	return fmt.Errorf("kappa: InstanceID(%q): %w: give each instance of app %q its own ID (%v)",
		r.cfg.InstanceID, ErrInstanceIDInUse, r.cfg.Plan.AppID, conflict)
}

// checkMembership asks the group coordinator whether this member is still
// in the group's current generation, with a heartbeat: a fenced answer
// (see fenced) is returned; any other, including a rebalance in progress
// or a failed request, is not, and the commit goes on and finds out.
func (r *Runtime) checkMembership(ctx context.Context) error {
	member, gen := r.cl.GroupMetadata()
	if member == "" || gen < 0 {
		return nil // not joined yet: nothing to commit for
	}
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group = r.cfg.Plan.AppID
	req.Generation = gen
	req.MemberID = member
	resp, err := req.RequestWith(ctx, r.cl)
	if err != nil {
		return nil
	}
	if err := kerrFor(resp.ErrorCode); fenced(err) {
		return err
	}
	return nil
}

// loseTasks closes every task after a commit of tasks was fenced,
// without flushing or committing anything more: another member owns them
// and has, or will, reprocess their input from the last commit. Kafka
// Streams calls such tasks migrated, closes them dirty and rejoins; the
// client rejoins the group on its own (its next heartbeat fails the same
// way, and it reports every partition lost) and the assignment it gets
// back starts new tasks, restored from the changelogs, at the committed
// offsets. r.mu is held.
func (r *Runtime) loseTasks(tasks []*runTask, why error) {
	r.fencedBy = why
	ids := make(map[processor.TaskID]bool, len(r.tasks))
	for id, t := range r.tasks {
		ids[id] = true
		r.setState(t, processor.TaskSuspended)
	}
	r.log.Warn("this instance is no longer a member of the group's generation: its tasks are closed without "+
		"committing and it rejoins; their input since the last commit is reprocessed by their next owner",
		"tasks", len(ids), "committing", len(tasks), "error", why)
	r.closeTasks(ids)
	r.dirty = false
	for id := range ids {
		r.rejoinReopen[id] = true
	}
}
