package smoke

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/window"
)

// The topics of the smoke app. Keys are strings; values are int64s
// (codec.Int64, 8 bytes big-endian), and the window counts' keys are
// codec.Windowed(codec.String()).
const (
	// InputTopic is the topic the app reads, with InputPartitions
	// partitions; the driver creates it.
	InputTopic = "smoke-input"
	// EchoTopic receives every input record unchanged.
	EchoTopic = "smoke-echo"
	// CountTopic receives the number of values per key.
	CountTopic = "smoke-count"
	// SumTopic receives the sum of the values per key.
	SumTopic = "smoke-sum"
	// MinTopic receives the smallest value per key.
	MinTopic = "smoke-min"
	// MaxTopic receives the largest value per key.
	MaxTopic = "smoke-max"
	// DistinctTopic receives the number of distinct values per key: unlike
	// the count, a duplicate cannot hide a lost record from it.
	DistinctTopic = "smoke-distinct"
	// GroupCountTopic receives the number of records per group of keys
	// (see GroupOf), counted behind a repartition topic.
	GroupCountTopic = "smoke-group-count"
	// WindowCountTopic receives the number of records per key and tumbling
	// window of WindowSize.
	WindowCountTopic = "smoke-window-count"
)

// OutputTopics lists every topic the app writes, the dead-letter topic
// aside.
var OutputTopics = []string{EchoTopic, CountTopic, SumTopic, MinTopic, MaxTopic, DistinctTopic, GroupCountTopic, WindowCountTopic}

const (
	// InputPartitions is the partition count of InputTopic.
	InputPartitions = 4
	// Tasks is the number of tasks the app runs: one per input partition
	// for the sub-topology reading InputTopic, and as many for the one
	// reading the repartition topic.
	Tasks = 2 * InputPartitions
	// Groups is the number of key groups GroupOf maps keys to.
	Groups = 7
	// WindowSize is the size of the tumbling windows.
	WindowSize = time.Second
	// WindowGrace is the windows' grace period: a day, so that no record
	// is ever late, however often it is reprocessed after a crash.
	WindowGrace = 24 * time.Hour
	// MaxValues bounds Input.Values: the distinct-value aggregate keeps one
	// bit per value.
	MaxValues = 1 << 20
	// repartitionName names the repartition topic of the group count:
	// "<app>-by-group-repartition".
	repartitionName = "by-group"
)

// RepartitionTopic returns the name of the app's repartition topic.
func RepartitionTopic(appID string) string { return appID + "-" + repartitionName + "-repartition" }

// DeadLetterTopic returns the name of the app's dead-letter topic.
func DeadLetterTopic(appID string) string { return appID + "-dlq" }

// Key returns the key of key number i: "k0000", "k0001", ...
func Key(i int) string { return fmt.Sprintf("k%04d", i) }

// keyIndex returns the number of a key made by Key.
func keyIndex(key string) (int, bool) {
	s, ok := strings.CutPrefix(key, "k")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil && i >= 0
}

// GroupOf returns the group of a key made by Key: "g<i mod Groups>". It
// panics on any other key, which sends the record to the dead-letter
// topic, where Check finds it.
func GroupOf(key string) string {
	i, ok := keyIndex(key)
	if !ok {
		panic(fmt.Sprintf("smoke: key %q was not made by smoke.Key", key))
	}
	return "g" + strconv.Itoa(i%Groups)
}

// Topology builds the smoke app. Every operator and store is named, so
// internal topics keep their names across versions:
//
//   - the input is copied to EchoTopic;
//   - grouped by key, four Aggregates compute count, sum, min and max, and
//     a fifth the set of values seen, emitted as its size, each to its
//     topic;
//   - grouped by GroupOf (through the repartition topic
//     "<app>-by-group-repartition"), Count counts records per group;
//   - windowed into tumbling windows of WindowSize with WindowGrace,
//     Count counts records per key and window.
//
// The guarantee does not change the topology; it is an option of the app.
func Topology() (*processor.Topology, error) {
	b := stream.NewBuilder()
	in := stream.From(b, InputTopic, codec.String(), codec.Int64(), stream.Named("input"))
	in.To(EchoTopic, stream.Named("echo"))

	byKey := in.GroupByKey(stream.Named("by-key"))
	aggregate := func(name, topic string, init int64, fn func(agg, v int64) int64) {
		t := stream.Aggregate(byKey, func() int64 { return init },
			func(_ string, v, agg int64) int64 { return fn(agg, v) },
			stream.Named(name), stream.Materialized(name))
		t.ToStream(stream.Named(name+"-changes")).To(topic, stream.Named(name+"-out"))
	}
	aggregate("count", CountTopic, 0, func(n, _ int64) int64 { return n + 1 })
	aggregate("sum", SumTopic, 0, func(s, v int64) int64 { return s + v })
	aggregate("min", MinTopic, math.MaxInt64, func(m, v int64) int64 { return min(m, v) })
	aggregate("max", MaxTopic, math.MinInt64, func(m, v int64) int64 { return max(m, v) })

	seen := stream.Aggregate(byKey, func() []byte { return nil }, addValue,
		stream.Named("distinct"), stream.Materialized("distinct"), stream.With(codec.String(), codec.Bytes()))
	stream.MapTableValues(seen, func(_ string, set []byte) int64 { return int64(popCount(set)) }, stream.Named("distinct-size")).
		ToStream(stream.Named("distinct-changes")).To(DistinctTopic, stream.Named("distinct-out"))

	stream.GroupBy(in, func(k string, _ int64) string { return GroupOf(k) }, stream.Named(repartitionName)).
		Count(stream.Named("group-count"), stream.Materialized("group-count")).
		ToStream(stream.Named("group-count-changes")).To(GroupCountTopic, stream.Named("group-count-out"))

	stream.WindowedBy(byKey, window.Tumbling(WindowSize).Grace(WindowGrace)).
		Count(stream.Named("window-count"), stream.Materialized("window-count")).
		ToStream(stream.Named("window-count-changes")).
		To(WindowCountTopic, stream.Named("window-count-out"), stream.With(codec.Windowed(codec.String()), codec.Int64()))
	return b.Build()
}

// addValue returns the bit set seen with bit v set, copying it so that the
// stored value is never changed in place. A value outside [0, MaxValues)
// panics, which sends the record to the dead-letter topic.
func addValue(_ string, v int64, seen []byte) []byte {
	if v < 0 || v >= MaxValues {
		panic(fmt.Sprintf("smoke: value %d outside [0, %d)", v, MaxValues))
	}
	n := max(len(seen), int(v/8)+1)
	out := make([]byte, n)
	copy(out, seen)
	out[v/8] |= 1 << (v % 8)
	return out
}

// popCount returns the number of bits set in set.
func popCount(set []byte) int {
	n := 0
	for _, b := range set {
		n += bits.OnesCount8(b)
	}
	return n
}
