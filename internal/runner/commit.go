// The runtime's side of commits: which tasks a commit covers, and what
// the committer's verdict does to them (committer.go holds the commit
// itself); halting after a fatal error; purging repartition topics; and
// losing the tasks when the group has moved on.

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
	ctx, cancel := context.WithTimeout(context.Background(), finalCommitTimeout)
	defer cancel()
	return r.commitLocked(ctx)
}

// commitLocked takes the lock and commits.
func (r *Runtime) commitLocked(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.commit(ctx, nil)
	return err
}

// commit commits the given tasks (all when nil; always all when one
// transaction spans them) and acts on the committer's verdict. It returns
// an error only when the instance must stop; it then commits nothing more
// (halt). committed reports whether the tasks' work is committed. r.mu is
// held.
func (r *Runtime) commit(ctx context.Context, only map[processor.TaskID]bool) (ok bool, err error) {
	if r.noCommit.Load() {
		return false, nil
	}
	if err := r.col.Err(); err != nil {
		// An output was lost: nothing after it may be committed. Run
		// abandons the work (exactly-once) or stops (at-least-once).
		return false, err
	}
	if r.committer.spansAllTasks() {
		only = nil
	}
	if !r.dirty {
		return true, nil // nothing processed since the last commit
	}
	var tasks []*runTask
	for id, t := range r.tasks.all() {
		if t.running() && (only == nil || only[id]) {
			tasks = append(tasks, t)
		}
	}
	if len(tasks) == 0 {
		return true, nil
	}
	start := time.Now()
	res := r.committer.commit(ctx, tasks)
	switch res.verdict {
	case committed:
		r.txnFailures = 0
		if only == nil {
			r.dirty = false
		}
		r.commits.Add(1)
		r.cfg.Metrics.committed(time.Since(start))
		offsets, _ := offsetsOf(tasks)
		r.purge(ctx, offsets)
		return true, nil
	case notCommitted:
		r.log.Warn("offsets not committed; every output is acknowledged, and the next commit tries again", "error", res.err)
		return false, nil
	case fenced:
		r.loseTasks(tasks, res.err)
		return false, nil
	case aborted:
		return false, r.reopenAfterAbort(res.err)
	default:
		return false, r.halt(res.err)
	}
}

// halt records that the instance stops with err: from now on nothing is
// committed, neither by the run loop nor by the revocations of its
// shutdown, and under exactly-once the open transaction is aborted when
// it stops. It returns err. r.mu is held, or the loop is stopping.
func (r *Runtime) halt(err error) error {
	r.noCommit.Store(true)
	r.fail(err)
	return err
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
	fenced, _ := r.heartbeat(ctx)
	return fenced
}

// heartbeat sends the group coordinator a heartbeat of this member's
// generation. fenced is the answer when the group has moved on without
// it (see isFenced); confirmed says the coordinator answered otherwise:
// the member is in the generation (a rebalance may be in progress). A
// member that has not joined yet is confirmed: it has nothing to lose.
func (r *Runtime) heartbeat(ctx context.Context) (fenced error, confirmed bool) {
	member, gen := r.cl.GroupMetadata()
	if member == "" || gen < 0 {
		return nil, true
	}
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group = r.cfg.Plan.AppID
	req.Generation = gen
	req.MemberID = member
	if r.cfg.InstanceID != "" {
		req.InstanceID = kmsg.StringPtr(r.cfg.InstanceID)
	}
	resp, err := req.RequestWith(ctx, r.cl)
	if err != nil {
		return nil, false
	}
	err = kerrFor(resp.ErrorCode)
	if isFenced(err) {
		return err, false
	}
	return nil, err == nil || errors.Is(err, kerr.RebalanceInProgress)
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
	ids := r.tasks.suspendAll()
	r.log.Warn("this instance is no longer a member of the group's generation: its tasks are closed without "+
		"committing and it rejoins; their input since the last commit is reprocessed by their next owner",
		"tasks", len(ids), "committing", len(tasks), "error", why)
	r.dirty = false
	r.tasks.rejoinLater(ids)
}
