package processor

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header is a Kafka record header. It is franz-go's type, so headers pass
// from the consumed record to produced ones without copying.
type Header = kgo.RecordHeader

// Record is a typed record passing between nodes. Timestamp and Headers
// travel with it through every operator. Headers may be shared between
// branches of the graph: treat the slice as read-only and copy it to change
// it.
type Record[K, V any] struct {
	Key       K
	Value     V
	Timestamp time.Time
	Headers   []Header
	// Tombstone marks a record with a nil value: a delete. Value is then
	// the zero V. Sinks write a nil value; tables delete the key.
	Tombstone bool
}

// RecordMetadata locates the input record being processed.
type RecordMetadata struct {
	Topic     string
	Partition int32
	Offset    int64
}

// TaskID names a task: one partition of one sub-topology. It prints as
// "sub_partition", as in Kafka Streams ("0_3").
type TaskID struct {
	SubTopology int
	Partition   int32
}

func (id TaskID) String() string { return fmt.Sprintf("%d_%d", id.SubTopology, id.Partition) }

// ParseTaskID parses the form String returns, "<sub-topology>_<partition>".
func ParseTaskID(s string) (TaskID, error) {
	var id TaskID
	sub, part, ok := strings.Cut(s, "_")
	if ok {
		n, err1 := strconv.Atoi(sub)
		p, err2 := strconv.ParseInt(part, 10, 32)
		if err1 == nil && err2 == nil && n >= 0 && p >= 0 {
			return TaskID{SubTopology: n, Partition: int32(p)}, nil
		}
	}
	return id, fmt.Errorf("processor: task ID %q is not <sub-topology>_<partition>", s)
}
