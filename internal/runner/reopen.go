package runner

// Reopening tasks from their committed state: after their uncommitted work
// was abandoned (an aborted transaction, a lost output under
// exactly-once), every task is closed without committing and opened again,
// its inputs rewound to the committed offsets and its stores restored
// from the committed changelogs.

import (
	"context"
	"fmt"
	"time"

	"github.com/kappa-streams/kappa/processor"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// reopen closes every task without committing and marks it to be opened
// again from its committed state: its inputs rewound to the committed
// offsets, its stores (left unclean) wiped and restored from the committed
// changelogs. The run loop opens them (tryReopen). The uncommitted work
// has been abandoned. r.mu is held.
func (r *Runtime) reopen() {
	r.tasks.reopenLater(r.tasks.suspendAll())
	r.dirty = false
}

// abandonAndReopen abandons the uncommitted work of every task (under
// exactly-once, aborts the open transaction) and reopens the tasks from
// their committed state. It reports false, after halting, when the
// instance cannot go on: under at-least-once, where nothing can be
// abandoned, and after maxTxnFailures abandoned transactions in a row (a
// failure that repeats, such as a record too large for its topic). r.mu is
// held.
func (r *Runtime) abandonAndReopen(why error) bool {
	if !r.committer.spansAllTasks() {
		r.halt(why)
		return false
	}
	if err := r.committer.abandon(); err != nil {
		r.halt(err)
		return false
	}
	return r.reopenAfterAbort(why) == nil
}

// reopenAfterAbort counts an abandoned transaction and reopens every task
// from its committed state; after maxTxnFailures in a row (a failure that
// repeats, such as a record too large for its topic) it halts instead and
// returns the error. r.mu is held.
func (r *Runtime) reopenAfterAbort(why error) error {
	r.txnFailures++
	if r.txnFailures > maxTxnFailures {
		return r.halt(fmt.Errorf("processor: %d transactions in a row failed to commit: %w", r.txnFailures, why))
	}
	if len(r.tasks.all()) > 0 {
		r.log.Warn("transaction aborted: reopening the tasks from their committed state", "error", why)
	}
	r.reopen()
	return nil
}

// tryReopen opens the tasks waiting to be reopened, once their committed
// offsets can be read: while the brokers are unreachable it leaves them
// waiting (the poll loop calls it again), rather than stopping the
// instance. Records fetched meanwhile for their partitions are dropped;
// the rewind fetches them again. r.mu is held.
func (r *Runtime) tryReopen(ctx context.Context) {
	ids := r.tasks.toReopen()
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
		r.tasks.reopened(id)
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
	offs, err := kadm.NewClient(r.cl).FetchOffsets(kadm.RequireStable(ctx), r.cfg.Plan.AppID)
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
