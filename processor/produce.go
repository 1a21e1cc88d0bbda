package processor

import (
	"errors"
	"fmt"
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
