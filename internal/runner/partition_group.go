// The partition group of a task: the records fetched for each of its
// inputs, buffered, and the choice of the next one to process.

package runner

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa/internal/tasklife"
	"github.com/kappa-streams/kappa/processor"

	"github.com/twmb/franz-go/pkg/kgo"
)

// runTask is the runtime's record of a task: its life-cycle state, its
// partition group (the records fetched for each input, not processed
// yet) and the offsets to commit.
type runTask struct {
	*processor.Task // nil until the task is running; use published from other goroutines
	tasklife.Ops    // the life cycle of Task, nil with it
	id              processor.TaskID
	// state is the task's life-cycle state, readable from any goroutine.
	state atomic.Int32
	// published is the task once created, also while it restores, for
	// status reads from other goroutines.
	published atomic.Pointer[processor.Task]
	cancel    context.CancelFunc // stops a restore in progress
	// inputs are the task's input topics (those that have its partition).
	inputs []string
	// buf holds, per input topic, the records fetched and not processed
	// yet: all of them while the task restores.
	buf map[string][]*kgo.Record
	// caughtUp marks the inputs whose last fetch reached the partition's
	// high watermark (no record is missing from buf), false for those that
	// lag, and has no entry for inputs not fetched yet.
	caughtUp map[string]bool
	// assigned is when the task started running: inputs not fetched yet are
	// waited for up to MaxTaskIdle after it, and then taken as idle.
	assigned time.Time
	// blockedSince is when the task last stopped because an input that is
	// not caught up had nothing buffered; zero when not blocked.
	blockedSince time.Time
	// next holds, per input topic, the offset after the last record
	// processed, to commit.
	next map[string]kgo.EpochOffset
	// keyParts holds the partition counts of the task's inputs whose
	// records are checked against KeyPartition; nil when none is.
	keyParts map[string]int32
	// mispartitioned counts the records of those inputs that were not in
	// the partition of their key.
	mispartitioned atomic.Int64
	// m holds the task's metrics on this instance, and in its counters of
	// each input (in the order of inputs); nil when metrics are off.
	m  *taskMetrics
	in []*inputMetrics
	// done counts the records of each input processed in the current
	// batch, for the metrics.
	done []int64
}

// buffered reports whether the task holds unprocessed records.
func (t *runTask) buffered() bool {
	for _, recs := range t.buf {
		if len(recs) > 0 {
			return true
		}
	}
	return false
}

// runBuffered processes a task's buffered records, always taking the one
// with the lowest timestamp among the heads of its inputs, so that a task
// reading several partitions (a join) processes them in the same order on
// every run, whatever the fetches. While an input that is not caught up
// has nothing buffered, the task waits for it, at most MaxTaskIdle; then
// it goes on without it, as Kafka Streams does after max.task.idle.ms.
func (r *Runtime) runBuffered(t *runTask, now time.Time) (int64, error) {
	n := int64(0)
	var start time.Time
	if t.m != nil {
		start = time.Now()
	}
	defer func() {
		r.processed.Add(n)
		if t.m != nil && n > 0 {
			t.batchDone(start)
		}
	}()
	for {
		if r.col.err.Load() != nil {
			// An output was lost: stop before the next record, as the
			// next send would fail. Its offset and the following ones
			// are never committed.
			return n, nil
		}
		pick, pickIdx, blocked := "", 0, false
		for i, topic := range t.inputs {
			recs := t.buf[topic]
			if len(recs) == 0 {
				caughtUp, fetched := t.caughtUp[topic]
				blocked = blocked || (fetched && !caughtUp) || (!fetched && now.Sub(t.assigned) < r.cfg.MaxTaskIdle)
				continue
			}
			if pick == "" || recs[0].Timestamp.Before(t.buf[pick][0].Timestamp) {
				pick, pickIdx = topic, i
			}
		}
		if pick == "" {
			t.blockedSince = time.Time{}
			return n, nil
		}
		if blocked {
			if t.blockedSince.IsZero() {
				t.blockedSince = now
			}
			if now.Sub(t.blockedSince) < r.cfg.MaxTaskIdle {
				return n, nil
			}
		} else {
			t.blockedSince = time.Time{}
		}
		rec := t.buf[pick][0]
		if parts, ok := t.keyParts[pick]; ok && rec.Key != nil && processor.KeyPartition(rec.Key, parts) != rec.Partition {
			r.mispartitioned(t, rec, parts)
		}
		if err := t.Process(rec); err != nil {
			return n, err // this record's offset is not marked: it is not committed
		}
		t.buf[pick][0] = nil
		t.buf[pick] = t.buf[pick][1:]
		n++
		if t.done != nil {
			t.done[pickIdx]++
		}
		t.next[rec.Topic] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}
	}
}

// coPartitionedInputs returns the partition counts of the external topics
// that belong to a co-partition group of two or more topics (the inputs
// of joins). A join matches only keys that its inputs hold in the same
// partition, so records of these topics must be where KeyPartition puts
// them. Repartition topics are written by Kappa with KeyPartition and are
// not checked.
func coPartitionedInputs(topo *processor.Topology, plan *processor.Plan) map[string]int32 {
	var parts map[string]int32
	for _, g := range topo.CoPartitioned() {
		if len(g) < 2 {
			continue
		}
		for _, ref := range g {
			if n := plan.Partitions[ref.Name]; !ref.Internal && n > 0 {
				if parts == nil {
					parts = make(map[string]int32)
				}
				parts[ref.Name] = n
			}
		}
	}
	return parts
}

// mispartitioned counts a record of a co-partitioned input that is not in
// the partition of its key, and logs a warning the first time for its
// topic. It runs on the task's worker goroutine.
func (r *Runtime) mispartitioned(t *runTask, rec *kgo.Record, parts int32) {
	t.mispartitioned.Add(1)
	if _, seen := r.warned.LoadOrStore(rec.Topic, true); seen {
		return
	}
	r.log.Warn("record of a joined input is not in the partition of its key: joins can miss matches; "+
		"counted in TaskStatus.Mispartitioned, logged once per topic",
		"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
		"key_partition", processor.KeyPartition(rec.Key, parts),
		"fix", "write the topic with Kafka's murmur2 partitioner, the default of Java clients and franz-go; "+
			"librdkafka clients (kcat, confluent-kafka-go, confluent-kafka-python) need partitioner=murmur2_random")
}

// nextUnblock returns when the first task waiting for an input gives up
// waiting, or zero.
func (r *Runtime) nextUnblock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var next time.Time
	for _, t := range r.tasks.all() {
		if !t.blockedSince.IsZero() {
			if at := t.blockedSince.Add(r.cfg.MaxTaskIdle); next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	return next
}
