package smoke

import (
	"encoding/binary"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Input describes the records a smoke run produces: Keys keys, each with
// the values 0..Values-1, produced value by value (value 0 of every key,
// then value 1 of every key, ...). Value v of every key has the event time
// Start + v*Step, so timestamps never decrease, within a partition or
// across them. The results of processing every record once follow in
// closed form (Truth).
//
// Fill in what you need and call WithDefaults once: its default Start
// depends on the clock, so the driver, the producer and the checker must
// share one Input value.
type Input struct {
	// Keys is the number of keys, made by Key. The default is 50.
	Keys int
	// Values is the number of values per key, at most MaxValues. The
	// default is 1000.
	Values int
	// Start is the event time of value 0. The default is an hour before
	// now, rounded down to a multiple of WindowSize.
	Start time.Time
	// Step is the event time between consecutive values of a key. The
	// default is 10ms, so that a window of WindowSize holds 100 values of
	// each key.
	Step time.Duration
}

// WithDefaults returns in with every zero field set to its default.
func (in Input) WithDefaults() Input {
	if in.Keys <= 0 {
		in.Keys = 50
	}
	if in.Values <= 0 {
		in.Values = 1000
	}
	in.Values = min(in.Values, MaxValues)
	if in.Start.IsZero() {
		in.Start = time.Now().Add(-time.Hour).Truncate(WindowSize)
	}
	if in.Step <= 0 {
		in.Step = 10 * time.Millisecond
	}
	return in
}

// Len returns the number of records: Keys * Values.
func (in Input) Len() int { return in.Keys * in.Values }

// Record returns record i of the production order: value i/Keys of key
// number i%Keys.
func (in Input) Record(i int) *kgo.Record {
	k, v := i%in.Keys, int64(i/in.Keys)
	return &kgo.Record{
		Topic:     InputTopic,
		Key:       []byte(Key(k)),
		Value:     binary.BigEndian.AppendUint64(nil, uint64(v)),
		Timestamp: in.time(v),
	}
}

// Phase returns the records of phase p of n: the production order cut into
// n slices of (nearly) equal length, phase 0 first.
func (in Input) Phase(p, n int) []*kgo.Record {
	from, to := p*in.Len()/n, (p+1)*in.Len()/n
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, in.Record(i))
	}
	return recs
}

// time returns the event time of value v.
func (in Input) time(v int64) time.Time { return in.Start.Add(time.Duration(v) * in.Step) }

// Truth holds the results of processing every input record exactly once.
// Count, Sum, Min, Max and Distinct are the same for every key.
type Truth struct {
	Count, Sum, Min, Max, Distinct int64
	// Groups is the count per group (GroupOf) of keys.
	Groups map[string]int64
	// Windows is the count per window of each key, by window start in Unix
	// milliseconds; every key has the same windows.
	Windows map[int64]int64
}

// Truth computes the results of processing every input record once.
func (in Input) Truth() Truth {
	m := int64(in.Values)
	tr := Truth{
		Count: m, Sum: m * (m - 1) / 2, Min: 0, Max: m - 1, Distinct: m,
		Groups: make(map[string]int64), Windows: make(map[int64]int64),
	}
	for k := range in.Keys {
		tr.Groups[GroupOf(Key(k))] += m
	}
	// A tumbling window is [start, start+size) with start a multiple of
	// its size; computed here by hand, not with package window, so that
	// the truth does not depend on the code under test.
	size := WindowSize.Milliseconds()
	for v := range m {
		ts := in.time(v).UnixMilli()
		tr.Windows[ts-ts%size]++
	}
	return tr
}
