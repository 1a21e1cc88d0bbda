// The record collector: every output, changelog and dead-letter record
// of the instance goes through Runtime.Send to the one producer, and the
// first delivery failure stops the runtime.

package processor

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrProduce is wrapped by every ProduceError: a record that the brokers
// did not acknowledge. The app stops without committing the input offsets
// behind it.
var ErrProduce = errors.New("processor: output not acknowledged")

// ProduceError is the first output, changelog or dead-letter record the
// brokers rejected, with the topic and partition it was for and the
// cause (a kerr error such as kerr.MessageTooLarge, or a client error).
// It wraps both ErrProduce and the cause.
type ProduceError struct {
	Topic     string
	Partition int32
	Err       error
}

// Error names the topic, the partition and the cause.
func (e *ProduceError) Error() string {
	return fmt.Sprintf("%v: topic %q partition %d: %v", ErrProduce, e.Topic, e.Partition, e.Err)
}

// Unwrap returns ErrProduce and the cause, for errors.Is and errors.As.
func (e *ProduceError) Unwrap() []error { return []error{ErrProduce, e.Err} }

// Send implements Collector: records go to the client's producer. Once a
// produce has failed, Send drops records: the runtime is stopping without
// committing, so the inputs behind them are reprocessed after a restart.
func (r *Runtime) Send(rec *RawRecord) {
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
	if r.prodErr.CompareAndSwap(nil, &ProduceError{Topic: rec.Topic, Partition: rec.Partition, Err: err}) {
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
