// The record collector: every output, changelog, repartition and
// dead-letter record of the instance goes through one producer, and the
// first delivery failure stops the tasks.

package runner

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/kappa-streams/kappa/processor"
	"github.com/twmb/franz-go/pkg/kgo"
)

// collector owns the instance's producer. Under at-least-once that is the
// group's client; under exactly-once it is a transactional client of its
// own, which the exactly-once committer replaces when the brokers fence
// it: a fenced transactional producer never recovers, as in Kafka
// Streams, where the StreamsProducer is closed and created again.
//
// Send may be called from the tasks' goroutines while the runtime's lock
// is held; replace, reset and the producer's transaction calls only under
// that lock, with no task processing.
type collector struct {
	log  *slog.Logger
	prod atomic.Pointer[kgo.Client]
	// newProd makes a new producer for replace; nil when the producer is
	// the group's client, which is never replaced.
	newProd func() (*kgo.Client, error)
	// sent counts the records sent since the last resetSent, under
	// exactly-once (countSent): those of the open transaction.
	sent      atomic.Int64
	countSent bool

	// err is the first delivery failure since the last reset; once set,
	// Send drops records and the tasks stop.
	err atomic.Pointer[processor.ProduceError]
	// epoch is the span between two resets. Its context is every record's
	// context, so that a delivery failure of a record sent before the last
	// reset (its work abandoned already) is told from a new one; it is
	// canceled at the first failure, which fails the epoch's records still
	// buffered and wakes a poll in progress.
	epoch atomic.Pointer[epoch]
}

type epoch struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newEpoch() *epoch {
	ctx, cancel := context.WithCancel(context.Background())
	return &epoch{ctx, cancel}
}

func newCollector(log *slog.Logger, prod *kgo.Client, newProd func() (*kgo.Client, error)) *collector {
	c := &collector{log: log, newProd: newProd, countSent: newProd != nil}
	c.prod.Store(prod)
	c.epoch.Store(newEpoch())
	return c
}

// producer returns the client records are produced with.
func (c *collector) producer() *kgo.Client { return c.prod.Load() }

// Send implements processor.Collector: records go to the producer. Once a
// produce has failed, Send drops records: nothing after the failure is
// committed, so the inputs behind them are processed again.
func (c *collector) Send(rec *processor.RawRecord) {
	if c.err.Load() != nil {
		return
	}
	if c.countSent {
		c.sent.Add(1)
	}
	e := c.epoch.Load()
	rec.Context = e.ctx
	c.prod.Load().Produce(e.ctx, rec, c.promise)
}

// promise keeps the first delivery failure and wakes the run loop: tasks
// observe it before their next record.
//
// Records sent before the last reset are no new failure, whatever their
// error: their work is abandoned already (an aborted transaction's
// records, a replaced producer's).
func (c *collector) promise(rec *kgo.Record, err error) {
	if err == nil {
		return
	}
	e := c.epoch.Load()
	if rec.Context != e.ctx {
		return
	}
	if c.err.CompareAndSwap(nil, &processor.ProduceError{Topic: rec.Topic, Partition: rec.Partition, Err: err}) {
		c.log.Error("output not acknowledged: nothing after it is committed; its input is processed again",
			"topic", rec.Topic, "partition", rec.Partition, "error", err)
		e.cancel()
	}
}

// Err returns the first delivery failure since the last reset, or nil.
func (c *collector) Err() error {
	if e := c.err.Load(); e != nil {
		return e
	}
	return nil
}

// failedDone returns a context canceled at the next delivery failure.
func (c *collector) failedDone() context.Context { return c.epoch.Load().ctx }

// flush waits until every record sent is acknowledged or failed, and
// returns the first failure.
func (c *collector) flush(ctx context.Context) error {
	if err := c.prod.Load().Flush(ctx); err != nil {
		return fmt.Errorf("processor: flush before commit: %w", err)
	}
	return c.Err()
}

// reset forgets the delivery failure, once the work it spoiled has been
// abandoned (the transaction aborted), so that Send produces again.
func (c *collector) reset() {
	old := c.epoch.Swap(newEpoch())
	old.cancel()
	c.err.Store(nil)
}

// resetSent starts counting the records of a new transaction.
func (c *collector) resetSent() { c.sent.Store(0) }

// replace closes the producer and makes a new one. Under exactly-once the
// new producer's initialization bumps the transactional ID's epoch, which
// aborts whatever transaction the old one left open.
func (c *collector) replace() error {
	if c.newProd == nil {
		return nil
	}
	old := c.prod.Load()
	old.Close() // records still buffered fail; the transaction they belong to is abandoned
	p, err := c.newProd()
	if err != nil {
		return fmt.Errorf("processor: new producer: %w", err)
	}
	c.prod.Store(p)
	return nil
}

// close closes the producer when it is the collector's own.
func (c *collector) close() {
	if c.newProd != nil {
		c.prod.Load().Close()
	}
}
