package metrics

import (
	"bytes"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
)

func TestBucketOf(t *testing.T) {
	bounds := BucketBounds()
	for _, d := range []time.Duration{-1, 0, 1, BucketBase - 1, BucketBase, BucketBase + 1, 2 * BucketBase,
		2*BucketBase + 1, 3 * BucketBase, time.Millisecond, time.Second, 104 * time.Second,
		BucketBase << (Buckets - 1), BucketBase<<(Buckets-1) + 1, time.Hour, math.MaxInt64} {
		// The bucket is the first whose bound is at least d.
		want := Buckets
		for i, b := range bounds {
			if max(d, 0).Seconds() <= b {
				want = i
				break
			}
		}
		if got := bucketOf(max(d, 0)); got != want {
			t.Errorf("bucketOf(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 1000 {
				h.Observe(time.Duration(i) * time.Millisecond)
			}
		})
	}
	wg.Wait()
	s := h.Snapshot()
	if s.Count() != 4000 {
		t.Fatalf("count %d, want 4000", s.Count())
	}
	if want := 4 * time.Duration(999*1000/2) * time.Millisecond; s.Sum != want {
		t.Fatalf("sum %v, want %v", s.Sum, want)
	}
	buckets, n := s.cumulative()
	if n != 4000 || buckets[0.0001] != 4 || buckets[bucketBounds[Buckets-1]] != 4000 {
		t.Fatalf("cumulative: %d, %v", n, buckets)
	}
	var sum HistogramSnapshot
	sum.Add(s)
	sum.Add(s)
	if sum.Count() != 8000 || sum.Sum != 2*s.Sum {
		t.Fatalf("Add: %d, %v", sum.Count(), sum.Sum)
	}
}

func TestCounts(t *testing.T) {
	var c Counts
	if c.Snapshot() != nil {
		t.Fatal("zero Counts has counts")
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				c.Add([]string{"a", "b", "c"}[(i+w)%3], 1)
			}
		})
	}
	wg.Wait()
	got := c.Snapshot()
	if got["a"]+got["b"]+got["c"] != 4000 || len(got) != 3 {
		t.Fatalf("counts %v", got)
	}
	if c.Counter("a") != c.Counter("a") {
		t.Fatal("Counter returns different counters for one key")
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	d := time.Duration(0)
	for b.Loop() {
		h.Observe(d)
		d += 7919 * time.Nanosecond
	}
}

func BenchmarkCountsAdd(b *testing.B) {
	var c Counts
	for _, k := range []string{"out-1", "out-2", "app-x-repartition"} {
		c.Add(k, 0)
	}
	key := strings.Clone("app-x-repartition")
	b.ReportAllocs()
	for b.Loop() {
		c.Add(key, 1)
	}
}

// sample is an instance with every kind of series.
func sample() Instance {
	var h Histogram
	h.Observe(3 * time.Millisecond)
	s := h.Snapshot()
	return Instance{
		Commits: 3, CommitDuration: s, Rebalances: 2,
		TaskStates: map[string]int{"created": 0, "restoring": 1, "running": 1, "suspended": 0, "closed": 0},
		CacheBytes: 1024, CacheMaxBytes: 32 << 20,
		Tasks: []Task{
			{ID: "0_0", Live: true, Inputs: []Input{{Topic: "in", Partition: 0, Consumed: 10, Processed: 9, Lag: 1}},
				Outputs: map[string]int64{"out": 8}, DeadLettered: map[string]int64{ReasonDecode: 1},
				Late: map[string]int64{"count": 2}, Dropped: 1, Process: s, EndToEnd: s, Punctuation: s,
				Stores: []Store{{Name: "counts", CacheHits: 5, CacheMisses: 4, CacheEvictions: 1, Restored: 7, RestoreRemaining: 3}}},
			{ID: "0_1", Inputs: []Input{{Topic: "in", Partition: 1, Consumed: 10, Processed: 10, Lag: -1}}},
		},
	}
}

func TestCollectorLintAndParse(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector("app", sample))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	problems, err := promlint.New(bytes.NewReader(buf.Bytes())).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	text := buf.String()
	for _, want := range []string{
		`kappa_records_consumed_total{app="app",task="0_0",topic="in"} 10`,
		`kappa_consumer_lag_records{app="app",partition="0",task="0_0",topic="in"} 1`,
		`kappa_records_dead_lettered_total{app="app",reason="decode",task="0_0"} 1`,
		`kappa_restore_records_remaining{app="app",store="counts",task="0_0"} 3`,
		`kappa_end_to_end_latency_seconds_bucket{app="app",task="0_0",le="0.0032"} 1`,
		`kappa_tasks{app="app",state="running"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s", want)
		}
	}
	// A task that left reports counters, not gauges.
	if strings.Contains(text, `kappa_consumer_lag_records{app="app",partition="1"`) {
		t.Error("lag reported for a task that is not live")
	}
	// A second collector of the same app in one registry is refused.
	if err := reg.Register(NewCollector("app", sample)); err == nil {
		t.Error("second registration of one app ID succeeded")
	}
	if err := reg.Register(NewCollector("other", sample)); err != nil {
		t.Errorf("registration of another app ID: %v", err)
	}
}
