package metrics

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Buckets is the number of finite buckets of a [Histogram]. Their upper
// bounds are BucketBase·2^i for i from 0 to Buckets-1: 100µs, 200µs,
// 400µs, … 104.9s; one more bucket holds what is above the last.
const Buckets = 21

// BucketBase is the upper bound of a [Histogram]'s first bucket.
const BucketBase = 100 * time.Microsecond

// Histogram counts durations in the fixed exponential buckets of
// [BucketBounds]. It is safe for concurrent use and costs two uncontended
// atomic additions per observation, with no search: the bucket is the bit
// length of the duration in units of BucketBase. A scrape reads it with
// Snapshot and turns it into a Prometheus histogram. The zero value is
// ready to use.
type Histogram struct {
	counts [Buckets + 1]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Int64               // nanoseconds
}

// bucketOf returns the index of the bucket of d: the first whose upper
// bound is at least d.
func bucketOf(d time.Duration) int {
	if d <= BucketBase {
		return 0
	}
	return min(bits.Len64(uint64((d-1)/BucketBase)), Buckets)
}

// Observe counts d. A negative d counts as 0.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	h.counts[bucketOf(d)].Add(1)
	h.sum.Add(int64(d))
}

// Snapshot returns the histogram's counts now.
func (h *Histogram) Snapshot() HistogramSnapshot {
	var s HistogramSnapshot
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// HistogramSnapshot is a [Histogram]'s counts at one moment: Counts per
// bucket (not cumulative; the last counts durations above every bound)
// and the Sum of the durations observed.
type HistogramSnapshot struct {
	Counts [Buckets + 1]uint64
	Sum    time.Duration
}

// Count returns the number of observations.
func (s *HistogramSnapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Add adds the counts of o to s: a task's histogram of an earlier life on
// an instance, merged with its current one, continues where it left off.
func (s *HistogramSnapshot) Add(o HistogramSnapshot) {
	for i := range s.Counts {
		s.Counts[i] += o.Counts[i]
	}
	s.Sum += o.Sum
}

// BucketBounds returns the finite upper bounds of a [Histogram]'s buckets,
// in seconds.
func BucketBounds() []float64 {
	b := make([]float64, Buckets)
	for i := range b {
		b[i] = (BucketBase << i).Seconds()
	}
	return b
}

// bucketBounds are BucketBounds, computed once.
var bucketBounds = BucketBounds()

// cumulative returns s's buckets as Prometheus wants them: upper bound in
// seconds → observations at most that, and the total count.
func (s *HistogramSnapshot) cumulative() (map[float64]uint64, uint64) {
	m := make(map[float64]uint64, Buckets)
	var n uint64
	for i, b := range bucketBounds {
		n += s.Counts[i]
		m[b] = n
	}
	return m, n + s.Counts[Buckets]
}
