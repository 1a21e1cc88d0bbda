// The record collector: every output, changelog and dead-letter record
// of the instance goes through Runtime.Send to the one producer, and the
// first delivery failure stops the runtime.

package runner

import (
	"context"

	"github.com/kappa-streams/kappa/processor"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Send implements Collector: records go to the client's producer. Once a
// produce has failed, Send drops records: the runtime is stopping without
// committing, so the inputs behind them are reprocessed after a restart.
func (r *Runtime) Send(rec *processor.RawRecord) {
	if r.prodErr.Load() != nil {
		return
	}
	if r.txnID != "" {
		r.txnRecords.Add(1)
	}
	r.cl.Produce(context.Background(), rec, r.promise)
}

// promise keeps the first delivery failure and wakes the run loop, which
// stops: tasks observe it before their next record.
func (r *Runtime) promise(rec *kgo.Record, err error) {
	if err == nil {
		return
	}
	if r.prodErr.CompareAndSwap(nil, &processor.ProduceError{Topic: rec.Topic, Partition: rec.Partition, Err: err}) {
		r.log.Error("output not acknowledged: stopping without committing; the input is reprocessed after a restart",
			"topic", rec.Topic, "partition", rec.Partition, "error", err)
		r.failedNow()
	}
}

// produceErr returns the first produce failure, or nil.
func (r *Runtime) produceErr() error {
	if e := r.prodErr.Load(); e != nil {
		return e
	}
	return nil
}
