package ksdiff_test

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/kappa-streams/kappa/processor"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kind is a topology of the comparison. Each has a Kappa builder
// (kappa_test.go) and a Kafka Streams one of the same name (KsDiff.java).
type kind string

const (
	tumbling     kind = "tumbling"      // windowed count, EmitFinal / suppress(untilWindowCloses)
	session      kind = "session"       // session-windowed count, every update
	sessionFinal kind = "session-final" // session-windowed count, EmitFinal / emitStrategy(onWindowClose)
	// sessionSuppress is Kafka Streams only: session count, then
	// suppress(untilWindowCloses).
	sessionSuppress kind = "session-suppress"
	streamTable     kind = "stream-table" // stream JoinTable table
	tableTable      kind = "table-table"  // table JoinTables table
	rekeyCount      kind = "rekey-count"  // SelectKey, GroupByKey, Count
)

// reading says how an output is read for the comparison.
type reading int

const (
	// asTable reads the output as a table: the latest value per key, a nil
	// value deleting the key.
	asTable reading = iota
	// asFinal reads it as a table too, and also requires one record per key
	// on each side: a final window result is emitted once.
	asFinal
	// asStream compares every record, per key, in order.
	asStream
)

// Window parameters of the windowed topologies. Times in the generated input
// lie on a grid of unit, coarse enough that records often land exactly on a
// window's end, its grace limit or a session's gap: the off-by-one cases.
const (
	size  = 2 * time.Second // tumbling windows
	grace = 1 * time.Second // for tumbling windows and sessions
	gap   = 2 * time.Second // sessions
	unit  = 250             // ms
	// t0 is the time the generated input starts from: a whole minute, so
	// whole windows, and the start of a segment of the window stores.
	t0 = 1_699_999_980_000
	// flushAfter is how far after the input's last record the flush
	// records are: every window and session of the input has closed then.
	flushAfter = time.Hour
)

// diffCase is one topology over one input, run by both Kappa and Kafka
// Streams as a sub-topology of their one app.
type diffCase struct {
	name       string // the sub-test; also part of the topic and store names
	kappa, ks  kind   // the topology on each side, usually the same
	partitions int32  // of each input topic
	inputs     int    // number of input topics
	recs       []in   // the input, in production order
	reading    reading

	// Crafted cases only: the difference they show, and the final table
	// each side must produce (keys starting with "~", the flush records'
	// own windows, aside).
	difference        string
	wantKappa, wantKS map[string]string
}

// in is an input record.
type in struct {
	topic int    // index into the case's input topics
	key   string // keys and values are strings on both sides
	value []byte // nil: a tombstone
	ts    int64  // Unix ms
}

func (c *diffCase) input(i int) string { return fmt.Sprintf("ksdiff-%s-in%d", c.name, i) }
func (c *diffCase) inputTopics() []string {
	ts := make([]string, c.inputs)
	for i := range ts {
		ts[i] = c.input(i)
	}
	return ts
}
func (c *diffCase) outKappa() string    { return "ksdiff-" + c.name + "-kappa" }
func (c *diffCase) outKStreams() string { return "ksdiff-" + c.name + "-kstreams" }

// records returns the input as records to produce, each in the partition
// of its key by murmur2 (processor.KeyPartition), as Kafka's Java producer
// and Kappa's sinks place them.
func (c *diffCase) records() []*kgo.Record {
	out := make([]*kgo.Record, len(c.recs))
	for i, r := range c.recs {
		out[i] = &kgo.Record{
			Topic: c.input(r.topic), Key: []byte(r.key), Value: r.value,
			Partition: processor.KeyPartition([]byte(r.key), c.partitions), Timestamp: time.UnixMilli(r.ts),
		}
	}
	return out
}

// randomCases returns the generated cases of every topology for seed.
func randomCases(seed uint64) []*diffCase {
	mk := func(k kind, n int, gen func(*rand.Rand) []in, r reading) *diffCase {
		return &diffCase{
			name: fmt.Sprintf("%s-s%d", k, seed), kappa: k, ks: k, partitions: 3, inputs: n,
			recs: gen(rand.New(rand.NewPCG(seed, kindStream(k)))), reading: r,
		}
	}
	// Kafka Streams' final session results come from suppress: its
	// emitStrategy(onWindowClose) loses results (session-final-far-flush).
	sessionsFinal := mk(sessionFinal, 1, genSessions, asFinal)
	sessionsFinal.ks = sessionSuppress
	return []*diffCase{
		mk(tumbling, 1, genTumbling, asFinal),
		mk(session, 1, genSessions, asTable),
		sessionsFinal,
		mk(streamTable, 2, genStreamTable, asStream),
		mk(tableTable, 2, genTableTable, asTable),
		mk(rekeyCount, 1, genRekey, asTable),
	}
}

// kindStream numbers a kind's random stream, so that each topology of a seed
// gets input of its own (FNV-1a of the name).
func kindStream(k kind) uint64 {
	h := fnv.New64a()
	h.Write([]byte(k))
	return h.Sum64()
}

// pick returns one of n keys, skewed towards the first ones, so that some
// keys have many records (long sessions, many updates) and others few.
func pick(rng *rand.Rand, prefix string, n int) string {
	return fmt.Sprintf("%s%02d", prefix, int(float64(n)*math.Pow(rng.Float64(), 2)))
}

// genTumbling: records whose timestamps run behind an arrival clock by a
// random delay: none for most, up to the grace period (inclusive) for a
// fifth, and 1.25 to 4 s for a tenth, which makes them late for their
// window or not, depending on where in it they fall. The input ends with a
// flush record per partition. Windowed inputs hold no tombstones: Kafka
// Streams counts them, Kappa does not (case windowed-tombstone).
func genTumbling(rng *rand.Rand) []in {
	var recs []in
	arrival := int64(t0 + 10_000)
	for i := range 1500 {
		arrival += unit * rng.Int64N(3)
		var delay int64
		switch r := rng.IntN(10); {
		case r < 2:
			delay = unit * rng.Int64N(grace.Milliseconds()/unit+1)
		case r == 2:
			delay = unit * (5 + rng.Int64N(12))
		}
		recs = append(recs, in{key: pick(rng, "k", 24), value: fmt.Appendf(nil, "v%d", i), ts: arrival - delay})
	}
	return withFlush(recs, 3)
}

// genSessions: records with delays below the grace period, and a few
// records far behind stream time, 1.25 to 5 s (late or not), each at a time
// further than the gap from every other record of its key.
//
// Both keep the input where Kafka Streams and Kappa agree (the crafted
// cases show where they do not). A record exactly grace behind stream time
// and exactly gap after a session's end joins the session in Kappa but
// not in Kafka Streams, whose store no longer returns the session then
// (session-merge-at-grace-limit); delays below grace never meet that.
// And a record more than grace behind stream time may fall within the gap
// of a session that is closed, or before an open one, where the two
// differ too (session-extended-back-late); isolated ones never do.
func genSessions(rng *rand.Rand) []in {
	var recs []in
	var arrivals []int64
	arrival := int64(t0 + 10_000)
	for i := range 1500 {
		arrival += unit * rng.Int64N(3)
		var delay int64
		if rng.IntN(10) < 3 {
			delay = unit * rng.Int64N(grace.Milliseconds()/unit)
		}
		recs = append(recs, in{key: pick(rng, "k", 24), value: fmt.Appendf(nil, "v%d", i), ts: arrival - delay})
		arrivals = append(arrivals, arrival)
	}
	isolated := func(key string, ts int64) bool {
		for _, r := range recs {
			if r.key == key && abs(r.ts-ts) <= gap.Milliseconds() {
				return false
			}
		}
		return true
	}
	for range 120 {
		at := rng.IntN(len(recs))
		key := pick(rng, "k", 24)
		ts := arrivals[at] - grace.Milliseconds() - unit*(1+rng.Int64N(16))
		if !isolated(key, ts) {
			continue
		}
		recs = append(recs[:at+1], append([]in{{key: key, value: []byte("late"), ts: ts}}, recs[at+1:]...)...)
		arrivals = append(arrivals[:at+1], append([]int64{arrivals[at]}, arrivals[at+1:]...)...)
	}
	return withFlush(recs, 3)
}

// genStreamTable: a stream (topic 0) and a table (topic 1) of the same keys,
// out of order within each topic, with deletes in the table and tombstones
// (dropped by both) in the stream. Stream records have odd timestamps and
// table records even ones: both sides process a task's records in
// timestamp order across its partitions, and how each breaks a tie between
// partitions is not part of the comparison.
func genStreamTable(rng *rand.Rand) []in {
	var recs []in
	clock := int64(t0)
	for i := range 1600 {
		clock += rng.Int64N(40)
		ts := clock - rng.Int64N(300)
		key := pick(rng, "k", 20)
		if rng.IntN(4) == 0 {
			v := fmt.Appendf(nil, "r%d", i)
			if rng.IntN(7) == 0 {
				v = nil
			}
			recs = append(recs, in{topic: 1, key: key, value: v, ts: ts &^ 1})
			continue
		}
		v := fmt.Appendf(nil, "s%d", i)
		if rng.IntN(30) == 0 {
			v = nil
		}
		recs = append(recs, in{topic: 0, key: key, value: v, ts: ts | 1})
	}
	return recs
}

// genTableTable: two tables of the same keys, updated and deleted in random
// order and out of order in time.
func genTableTable(rng *rand.Rand) []in {
	var recs []in
	clock := int64(t0)
	for i := range 1200 {
		clock += rng.Int64N(40)
		side := rng.IntN(2)
		v := fmt.Appendf(nil, "%c%d", "lr"[side], i)
		if rng.IntN(5) == 0 {
			v = nil
		}
		recs = append(recs, in{topic: side, key: pick(rng, "k", 30), value: v, ts: clock - rng.Int64N(300)})
	}
	return recs
}

// genRekey: records whose value names a category ("c3|v17"), which the
// topology makes the key before counting; a few tombstones, which neither
// side counts.
func genRekey(rng *rand.Rand) []in {
	var recs []in
	clock := int64(t0)
	for i := range 1500 {
		clock += rng.Int64N(40)
		v := fmt.Appendf(nil, "%s|v%d", pick(rng, "c", 8), i)
		if rng.IntN(20) == 0 {
			v = nil
		}
		recs = append(recs, in{key: fmt.Sprintf("u%02d", rng.IntN(60)), value: v, ts: clock - rng.Int64N(300)})
	}
	return recs
}

// category is the new key of rekeyCount: the value up to its first '|', as
// KsDiff.category.
func category(v string) string {
	c, _, _ := strings.Cut(v, "|")
	return c
}

// withFlush appends to the input of topic 0 one flush record per
// partition, flushAfter past the latest timestamp, so that every window
// and session of the input closes and its final result is emitted. Kafka
// Streams and Kappa read the same records, so the flush is identical for
// both.
func withFlush(recs []in, partitions int32) []in {
	var last int64
	for _, r := range recs {
		last = max(last, r.ts)
	}
	for p := range partitions {
		recs = append(recs, in{key: flushKey(p, partitions), value: []byte("flush"), ts: last + flushAfter.Milliseconds()})
	}
	return recs
}

// flushKey returns a key in partition p of n, by murmur2.
func flushKey(p, n int32) string {
	for i := 0; ; i++ {
		k := "~flush-" + strconv.Itoa(i)
		if processor.KeyPartition([]byte(k), n) == p {
			return k
		}
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
