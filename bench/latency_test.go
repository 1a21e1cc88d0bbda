package main

import (
	"encoding/binary"
	"hash/maphash"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var d []time.Duration
		for _, v := range n {
			d = append(d, time.Duration(v)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"one", ms(7), 0.5, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p99.9 of 100 is the last", ms(hundred...), 0.999, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.q); got != tc.want {
				t.Errorf("percentile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

// countRecord is W2's output record: key and count.
func countRecord(key string, n int64) *kgo.Record {
	return &kgo.Record{Key: []byte(key), Value: binary.BigEndian.AppendUint64(nil, uint64(n))}
}

func TestW2TrackerMatchesCountsToInputs(t *testing.T) {
	tr := newW2Tracker(&commonFlags{seed: 1, valueSize: 10})
	base := time.Now()
	var keys []string
	for i := range 6 {
		r := tr.input(base.Add(time.Duration(i) * time.Millisecond))
		keys = append(keys, string(r.Key))
	}
	if got := len(tr.eff.sent); got != 6 {
		t.Fatalf("%d inputs noted, want 6", got)
	}
	// Count every key's records, and write each key's count once, as a
	// cache flushed at a commit does.
	counts := make(map[string]int64)
	for _, k := range keys {
		counts[k]++
	}
	at := base.Add(time.Second)
	var out []*kgo.Record
	for k, n := range counts {
		out = append(out, countRecord(k, n))
	}
	tr.output(out, at)
	if _, pending, err := tr.eff.state(); pending != 0 || err != nil {
		t.Fatalf("pending %d, error %v; want 0, nil", pending, err)
	}
	lat, sent := tr.eff.window(base, base.Add(time.Hour))
	if sent != 6 || len(lat) != 6 {
		t.Fatalf("window: %d latencies of %d sent, want 6 of 6", len(lat), sent)
	}
	for i, l := range lat {
		if want := time.Second - time.Duration(i)*time.Millisecond; l != want {
			t.Errorf("input %d: latency %v, want %v", i, l, want)
		}
	}
	// The same counts again complete nothing: duplicates.
	tr.output(out, at.Add(time.Second))
	if tr.eff.dups != int64(len(out)) {
		t.Errorf("%d duplicates, want %d", tr.eff.dups, len(out))
	}
	// A count above the records sent is wrong.
	tr.output([]*kgo.Record{countRecord(keys[0], counts[keys[0]]+1)}, at)
	if _, _, err := tr.eff.state(); err == nil || !strings.Contains(err.Error(), "were sent") {
		t.Errorf("count above the records sent: error %v", err)
	}
}

func TestW1TrackerMatchesOutputsByIndex(t *testing.T) {
	h := &harness{recSeed: maphash.MakeSeed()}
	tr := newW1Tracker(h, &commonFlags{seed: 1, valueSize: 40})
	base := time.Now()
	var kept []*kgo.Record
	for i := range 200 {
		r := tr.input(base.Add(time.Duration(i) * time.Millisecond))
		if keepW1(r.Value) {
			kept = append(kept, &kgo.Record{Key: r.Key, Value: mapW1(r.Value)})
		}
	}
	if len(kept) == 0 || len(kept) == 200 {
		t.Fatalf("%d of 200 inputs pass the filter", len(kept))
	}
	_, pending, _ := tr.eff.state()
	if pending != len(kept) {
		t.Fatalf("pending %d, want %d (the inputs that pass)", pending, len(kept))
	}
	tr.output(kept, base.Add(time.Second))
	if _, pending, err := tr.eff.state(); pending != 0 || err != nil {
		t.Fatalf("pending %d, error %v; want 0, nil", pending, err)
	}
	lat, sent := tr.eff.window(base, base.Add(time.Hour))
	if sent != 200 || len(lat) != len(kept) {
		t.Fatalf("window: %d latencies of %d sent, want %d of 200", len(lat), sent, len(kept))
	}
	// An output that is not its input, mapped, is wrong.
	bad := &kgo.Record{Key: kept[0].Key, Value: append([]byte(nil), kept[0].Value...)}
	bad.Value[len(bad.Value)-1] ^= 1
	tr.output([]*kgo.Record{bad}, base.Add(time.Second))
	if _, _, err := tr.eff.state(); err == nil {
		t.Error("a changed value passed")
	}
}
