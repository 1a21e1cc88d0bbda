package runner

// Exactly-once: every commit interval is one transaction of the instance's
// producer, covering what the tasks sent (outputs, changelog, repartition
// and dead-letter records) and the input offsets they processed.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/kappa-streams/kappa/processor"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// beginTxn opens the transaction the next records go into. It is local to
// the client until the first record is produced. Under at-least-once it
// does nothing. r.mu is held, or the loop has not started.
func (r *Runtime) beginTxn() error {
	if r.txnID == "" {
		return nil
	}
	r.txnRecords.Store(0)
	if err := r.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("processor: begin transaction: %w", err)
	}
	return nil
}

// abortTxn aborts the open transaction: records not yet sent are dropped,
// and those sent are never seen by readers of committed data.
func (r *Runtime) abortTxn() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.cl.AbortBufferedRecords(ctx); err != nil {
		r.log.Warn("aborting buffered records", "error", err)
	}
	if err := r.cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		r.log.Warn("aborting transaction", "error", err)
	}
}

// commitTxn commits the open transaction with the input offsets (and the
// tasks' stream times in their metadata). The caller has flushed every
// record. A transaction in which nothing was produced has no output to be
// atomic with: its offsets are committed as at-least-once commits them.
func (r *Runtime) commitTxn(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset, times map[string]map[int32]int64) error {
	if r.txnRecords.Load() == 0 {
		var err error
		if len(offsets) > 0 {
			r.commitOffsets(withStreamTimes(ctx, times), offsets, &err)
		}
		if err != nil {
			return err
		}
		return r.cl.EndTransaction(ctx, kgo.TryCommit)
	}
	if len(offsets) > 0 {
		if err := r.txnOffsetCommit(ctx, offsets, times); err != nil {
			return err
		}
	}
	return r.cl.EndTransaction(ctx, kgo.TryCommit)
}

// txnOffsetCommit adds the group's offsets to the open transaction. The
// commit carries the member's ID and generation (KIP-447): an instance
// the group has moved on from is refused, which fences zombies.
func (r *Runtime) txnOffsetCommit(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset, times map[string]map[int32]int64) error {
	id, epoch, err := r.cl.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("producer ID: %w", err)
	}
	member, gen := r.cl.GroupMetadata()
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = r.txnID, id, epoch, r.cfg.Plan.AppID
	addResp, err := add.RequestWith(ctx, r.cl)
	if err != nil {
		return fmt.Errorf("add offsets to transaction: %w", err)
	}
	if err := kerrFor(addResp.ErrorCode); err != nil {
		return fmt.Errorf("add offsets to transaction: %w", err)
	}
	ids, err := r.topicIDs(ctx, offsets)
	if err != nil {
		return err
	}
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = r.txnID, r.cfg.Plan.AppID, id, epoch
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
	resp, err := req.RequestWith(ctx, r.cl)
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

// txnFailed handles a transaction that could not commit: it is aborted,
// and every task is closed without committing. Fenced (the group moved on
// without this instance), the client rejoins and the tasks it gets back
// restore from the committed changelogs. Otherwise the tasks are reopened
// at once: their stores are wiped and restored from the committed
// changelogs, and their inputs start again at the committed offsets.
// r.mu is held.
func (r *Runtime) txnFailed(ctx context.Context, tasks []*runTask, err error) error {
	r.abortTxn()
	if fenced(err) || errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) {
		r.loseTasks(tasks, err)
		return r.beginTxn()
	}
	r.txnFailures++
	if r.txnFailures > maxTxnFailures {
		return fmt.Errorf("processor: %d transactions in a row failed to commit: %w", r.txnFailures, err)
	}
	r.log.Warn("transaction aborted: reopening the tasks from their committed state", "error", err)
	return r.reopen(ctx)
}

// abortAndReopen aborts the open transaction and reopens every task from
// its committed state. r.mu is held.
func (r *Runtime) abortAndReopen(ctx context.Context) error {
	r.abortTxn()
	if len(r.tasks) > 0 {
		r.log.Warn("transaction aborted: reopening the tasks from their committed state")
	}
	return r.reopen(ctx)
}

// reopen closes every task without committing and marks it to be opened
// again from its committed state: its inputs rewound to the committed
// offsets, its stores (left unclean) wiped and restored from the committed
// changelogs. The open transaction has been aborted; reopen begins the
// next. r.mu is held.
func (r *Runtime) reopen(ctx context.Context) error {
	all := make(map[processor.TaskID]bool, len(r.tasks))
	for id, t := range r.tasks {
		all[id] = true
		r.setState(t, processor.TaskSuspended)
	}
	r.closeTasks(all)
	r.dirty = false
	for id := range all {
		r.reopening[id] = true
	}
	r.tryReopen(ctx)
	return r.beginTxn()
}

// tryReopen opens the tasks waiting to be reopened, once their committed
// offsets can be read: while the brokers are unreachable it leaves them
// waiting (the poll loop calls it again), rather than stopping the
// instance. Records fetched meanwhile for their partitions are dropped;
// the rewind fetches them again. r.mu is held.
func (r *Runtime) tryReopen(ctx context.Context) {
	if len(r.reopening) == 0 {
		return
	}
	ids := make([]processor.TaskID, 0, len(r.reopening))
	for id := range r.reopening {
		if _, open := r.tasks[id]; open {
			delete(r.reopening, id) // assigned again meanwhile, from the committed offsets
			continue
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.rewind(rctx, ids); err != nil {
		r.log.Warn("tasks to reopen wait for their committed offsets", "tasks", len(ids), "error", err)
		return
	}
	for _, id := range ids {
		delete(r.reopening, id)
		r.assign(id)
	}
}

// maxTxnFailures bounds the transactions in a row that may fail to commit
// before the runtime gives up.
const maxTxnFailures = 5

// rewind sets the fetch positions of the tasks' input partitions to their
// committed offsets, so their records since the last commit are fetched
// and processed again.
func (r *Runtime) rewind(ctx context.Context, ids []processor.TaskID) error {
	offs, err := kadm.NewClient(r.cl).FetchOffsets(ctx, r.cfg.Plan.AppID)
	if err != nil {
		return fmt.Errorf("processor: committed offsets: %w", err)
	}
	set := make(map[string]map[int32]kgo.EpochOffset)
	for _, id := range ids {
		for topic, parts := range r.partitionsOf(id) {
			for _, p := range parts {
				eo := kgo.EpochOffset{Epoch: -1, Offset: 0} // never committed: from the start
				if o, ok := offs.Lookup(topic, p); ok && o.Err == nil && o.At >= 0 {
					eo = kgo.EpochOffset{Epoch: o.LeaderEpoch, Offset: o.At}
				}
				if set[topic] == nil {
					set[topic] = make(map[int32]kgo.EpochOffset)
				}
				set[topic][p] = eo
			}
		}
	}
	r.cl.SetOffsets(set)
	return nil
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

// recoverProduce handles a rejected output under exactly-once: the
// transaction that held it is aborted, so none of its records is ever
// read, and every task is reopened from its committed state, to process
// its input again. It reports false under at-least-once, where a lost
// output stops the app, and after maxTxnFailures transactions in a row
// failed: a failure that repeats (a record too large for its topic) stops
// the app too.
func (r *Runtime) recoverProduce(ctx context.Context) bool {
	if r.txnID == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.txnFailures++
	if r.txnFailures > maxTxnFailures {
		return false
	}
	perr := r.prodErr.Load()
	r.abortTxn() // every record still buffered fails now, with no promise left pending
	r.log.Warn("output rejected: transaction aborted, reopening the tasks from their committed state", "error", perr)
	r.prodErr.Store(nil)
	r.failed, r.failedNow = context.WithCancel(context.Background())
	if err := r.reopen(ctx); err != nil {
		r.fail(err)
	}
	return true
}
