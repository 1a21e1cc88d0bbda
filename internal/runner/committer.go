// The committer: one implementation per processing guarantee behind one
// interface. A commit returns a verdict, and the runtime acts on it; the
// committer never closes or reopens tasks itself.

package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// verdict is what became of a commit.
type verdict int

const (
	// committed: the tasks' outputs, changelog writes and input offsets
	// are durable together.
	committed verdict = iota
	// notCommitted: every record the tasks produced is acknowledged, but
	// their offsets were not committed (a transient error of the offset
	// commit). Nothing is lost; the next commit tries again.
	notCommitted
	// fenced: the group has moved on without this member (its generation
	// is gone). Its tasks belong to others now: close them without
	// committing, and rejoin.
	fenced
	// aborted: the work since the last commit was abandoned (under
	// exactly-once, its transaction aborted). Every task must be reopened
	// from its committed state.
	aborted
	// fatal: the instance must stop, and commit nothing more.
	fatal
)

// outcome is a commit's verdict and the error behind it.
type outcome struct {
	verdict verdict
	err     error
}

// committer makes the tasks' processed input and everything it produced
// durable together. Its methods are called with the runtime's lock held.
type committer interface {
	// begin opens what the next records go into: under exactly-once, a
	// transaction.
	begin() error
	// commit flushes the tasks' stores, waits for every record sent to
	// be acknowledged, and commits the tasks' input offsets (with their
	// stream times).
	commit(ctx context.Context, tasks []*runTask) outcome
	// abandon drops the work not committed, so that none of it is ever
	// read as committed: under exactly-once it aborts the open
	// transaction (replacing a producer that cannot) and begins the next.
	// It returns an error only when the instance cannot go on.
	abandon() error
	// spansAllTasks reports whether a commit covers every task at once
	// (one transaction), so that committing some tasks alone is not
	// possible.
	spansAllTasks() bool
}

// committerDeps are what both committers use of the runtime.
type committerDeps struct {
	r   *Runtime
	col *collector
}

// flushTasks flushes every task's stores (caches to changelogs and
// downstream), in parallel: tasks share nothing but the producer.
func (d committerDeps) flushTasks(tasks []*runTask) error {
	return d.r.parallel(len(tasks), func(i int) error {
		if err := tasks[i].FlushStores(); err != nil {
			return fmt.Errorf("processor: task %s: flush stores: %w", tasks[i].id, err)
		}
		return nil
	})
}

// commitStores writes the flushed changes and their changelog positions
// to the tasks' local stores.
func (d committerDeps) commitStores(tasks []*runTask) error {
	return d.r.parallel(len(tasks), func(i int) error {
		if err := tasks[i].CommitStores(); err != nil {
			return fmt.Errorf("processor: task %s: commit stores: %w", tasks[i].id, err)
		}
		return nil
	})
}

// offsetsOf returns the tasks' offsets to commit and their stream times.
func offsetsOf(tasks []*runTask) (map[string]map[int32]kgo.EpochOffset, map[string]map[int32]int64) {
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	times := make(map[string]map[int32]int64)
	for _, t := range tasks {
		for topic, eo := range t.next {
			if offsets[topic] == nil {
				offsets[topic] = make(map[int32]kgo.EpochOffset)
				times[topic] = make(map[int32]int64)
			}
			offsets[topic][t.id.Partition] = eo
			times[topic][t.id.Partition] = t.StreamTimeMillis()
		}
	}
	return offsets, times
}

// atLeastOnce commits offsets once every record the tasks produced is
// acknowledged. A crash between the two reprocesses the records since the
// last commit; nothing is lost.
type atLeastOnce struct{ committerDeps }

func (atLeastOnce) begin() error        { return nil }
func (atLeastOnce) abandon() error      { return nil }
func (atLeastOnce) spansAllTasks() bool { return false }

func (c atLeastOnce) commit(ctx context.Context, tasks []*runTask) outcome {
	r := c.r
	// Still a member? An instance that was paused past the session
	// timeout has lost its tasks to others; flushing now would write its
	// stale caches to the outputs and changelogs before its offset commit
	// failed. Asking first narrows that window to the time between this
	// answer and the flush.
	if err := r.checkMembership(ctx); err != nil {
		return outcome{fenced, err}
	}
	// A failure from here to the offset commit may have dropped results
	// (a cache flushed into a failing node, a record the brokers
	// refused): no later commit may pass them, so it is fatal.
	if err := c.flushTasks(tasks); err != nil {
		return outcome{fatal, err}
	}
	if err := c.col.flush(ctx); err != nil {
		return outcome{fatal, err}
	}
	if err := c.commitStores(tasks); err != nil {
		return outcome{fatal, err}
	}
	offsets, times := offsetsOf(tasks)
	if len(offsets) == 0 {
		return outcome{committed, nil}
	}
	var err error
	r.commitOffsets(withStreamTimes(ctx, times), offsets, &err)
	switch {
	case err == nil:
		return outcome{committed, nil}
	case isFenced(err):
		return outcome{fenced, err}
	default:
		return outcome{notCommitted, fmt.Errorf("processor: commit offsets: %w", err)}
	}
}

// exactlyOnce makes every commit interval one transaction of the
// collector's producer, covering what the tasks sent (outputs,
// changelog, repartition and dead-letter records) and the input offsets
// they processed. Zombies are fenced by the group generation that every
// transactional offset commit carries (KIP-447), as in Kafka Streams'
// exactly_once_v2.
type exactlyOnce struct {
	committerDeps
	txnID string
	group string
}

func (exactlyOnce) spansAllTasks() bool { return true }

// begin opens the transaction the next records go into. It is local to
// the producer until the first record is produced. A producer that cannot
// begin (fenced, or left in a transaction by a failed abort) is replaced.
func (c exactlyOnce) begin() error {
	c.col.resetSent()
	err := c.col.producer().BeginTransaction()
	if err == nil {
		return nil
	}
	c.r.log.Warn("beginning a transaction failed: replacing the producer", "error", err)
	if err := c.col.replace(); err != nil {
		return err
	}
	if err := c.col.producer().BeginTransaction(); err != nil {
		return fmt.Errorf("processor: begin transaction: %w", err)
	}
	return nil
}

// abandon aborts the open transaction: records not yet sent are dropped,
// and those sent are never seen by readers of committed data. A producer
// that cannot abort (the brokers fenced it: a pause past the transaction
// timeout, a broker restart, a zombie) is replaced, which aborts the
// transaction at the brokers. Then the next transaction begins.
func (c exactlyOnce) abandon() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prod := c.col.producer()
	err := prod.AbortBufferedRecords(ctx)
	if err == nil {
		err = prod.EndTransaction(ctx, kgo.TryAbort)
	}
	c.col.reset()
	if err != nil {
		c.r.log.Warn("aborting the transaction failed: replacing the producer, which aborts it", "error", err)
		if err := c.col.replace(); err != nil {
			return err
		}
	}
	return c.begin()
}

func (c exactlyOnce) commit(ctx context.Context, tasks []*runTask) outcome {
	// A failure to flush the stores stops the instance: a node that
	// failed under FailFast, or a store that cannot be written. Its
	// transaction is aborted when the instance stops.
	if err := c.flushTasks(tasks); err != nil {
		return outcome{fatal, err}
	}
	if err := c.col.flush(ctx); err != nil {
		return c.abort(err)
	}
	offsets, times := offsetsOf(tasks)
	if err := c.commitTxn(ctx, offsets, times); err != nil {
		return c.abort(err)
	}
	// Local stores written, with the changelog offsets they reach, once
	// the transaction has committed them.
	if err := c.commitStores(tasks); err != nil {
		return outcome{fatal, err}
	}
	if err := c.begin(); err != nil {
		return outcome{fatal, err}
	}
	return outcome{committed, nil}
}

// abort abandons the transaction after err and says what the runtime
// does next: rejoin if the group moved on, reopen the tasks otherwise.
func (c exactlyOnce) abort(err error) outcome {
	if aerr := c.abandon(); aerr != nil {
		return outcome{fatal, errors.Join(err, aerr)}
	}
	if isFenced(err) {
		return outcome{fenced, err}
	}
	return outcome{aborted, err}
}

// commitTxn commits the open transaction with the input offsets (and the
// tasks' stream times in their metadata). The caller has flushed every
// record. A transaction in which nothing was produced has no output to be
// atomic with: its offsets are committed as at-least-once commits them.
func (c exactlyOnce) commitTxn(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset, times map[string]map[int32]int64) error {
	prod := c.col.producer()
	if c.col.sent.Load() == 0 {
		var err error
		if len(offsets) > 0 {
			c.r.commitOffsets(withStreamTimes(ctx, times), offsets, &err)
		}
		if err != nil {
			return err
		}
		return prod.EndTransaction(ctx, kgo.TryCommit)
	}
	if len(offsets) > 0 {
		if err := c.txnOffsetCommit(ctx, prod, offsets, times); err != nil {
			return err
		}
	}
	return prod.EndTransaction(ctx, kgo.TryCommit)
}

// txnOffsetCommit adds the group's offsets to the open transaction. The
// commit carries the member's ID and generation (KIP-447): an instance
// the group has moved on from is refused, which fences zombies.
func (c exactlyOnce) txnOffsetCommit(ctx context.Context, prod *kgo.Client, offsets map[string]map[int32]kgo.EpochOffset, times map[string]map[int32]int64) error {
	id, epoch, err := prod.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("producer ID: %w", err)
	}
	member, gen := c.r.cl.GroupMetadata()
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = c.txnID, id, epoch, c.group
	addResp, err := add.RequestWith(ctx, prod)
	if err != nil {
		return fmt.Errorf("add offsets to transaction: %w", err)
	}
	if err := kerrFor(addResp.ErrorCode); err != nil {
		return fmt.Errorf("add offsets to transaction: %w", err)
	}
	ids, err := c.r.topicIDs(ctx, offsets)
	if err != nil {
		return err
	}
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = c.txnID, c.group, id, epoch
	req.Generation, req.MemberID = gen, member
	for topic, parts := range offsets {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic, rt.TopicID = topic, ids[topic] // newer versions name topics by ID
		for p, eo := range parts {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, eo.Offset, eo.Epoch
			if ms, ok := times[topic][p]; ok && ms >= 0 {
				rp.Metadata = kmsg.StringPtr(streamTimeMeta + strconv.FormatInt(ms, 10))
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, prod)
	if err != nil {
		return fmt.Errorf("commit offsets in transaction: %w", err)
	}
	var errs []error
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerrFor(p.ErrorCode); err != nil {
				errs = append(errs, fmt.Errorf("topic %q partition %d: %w", t.Topic, p.Partition, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("commit offsets in transaction: %w", errors.Join(errs...))
	}
	return nil
}

// isFenced reports whether err says this member no longer belongs to the
// group's current generation: it was evicted (a pause longer than the
// session timeout, a broker restart that forgot it) or the group moved on
// without it. Its tasks belong to others now.
func isFenced(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.FencedInstanceID)
}

// topicIDs returns the IDs of the topics of offsets, which newer versions
// of TxnOffsetCommit name topics by, from metadata cached for a minute.
func (r *Runtime) topicIDs(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) (map[string][16]byte, error) {
	req := kmsg.NewPtrMetadataRequest()
	for topic := range offsets {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := r.cl.RequestCachedMetadata(ctx, req, time.Minute)
	if err != nil {
		return nil, fmt.Errorf("metadata of the input topics: %w", err)
	}
	ids := make(map[string][16]byte, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Topic != nil {
			ids[*t.Topic] = t.TopicID
		}
	}
	return ids, nil
}
