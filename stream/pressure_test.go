package stream_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kappa-streams/kappa/streamtest"
)

// pressure is a way of driving an oracle test: the driver's options, and
// when it commits and restarts. The driver's default (a commit after every
// record, a cache large enough for the whole test) hides cache eviction
// and the batching of updates between commits, which is where results
// were once lost, so every stateful oracle also runs under the pressures
// below.
type pressure struct {
	name string
	opts []streamtest.Opt
	// commitEvery is 0 when the driver commits after every record;
	// otherwise commits are manual, at random points, on average once
	// in commitEvery records.
	commitEvery int
	// restarts is how many clean restarts (a commit, then every task
	// closed and reopened from the changelogs) happen at random points.
	restarts int
}

// pressures are the ways every stateful oracle test runs: the driver's
// default, a cache of one byte that evicts at every write with frequent
// commits, and a small cache with rare ones; both with restarts.
var pressures = []pressure{
	{name: "commit-each"},
	{name: "evict", opts: []streamtest.Opt{streamtest.CacheBytes(1), streamtest.ManualCommit()}, commitEvery: 40, restarts: 2},
	{name: "cache=1KiB", opts: []streamtest.Opt{streamtest.CacheBytes(1 << 10), streamtest.ManualCommit()}, commitEvery: 400, restarts: 1},
}

// pressured drives one run under a pressure.
type pressured struct {
	t         *testing.T
	d         *streamtest.Driver
	p         pressure
	rng       *rand.Rand
	restartAt []int
	late      int64 // late records counted by the tasks closed so far
	// onCommit, when set, is called after each commit the run makes, so
	// that a test can compare what is committed with its oracle.
	onCommit func()
}

// drive starts a run of n records under p on d.
func (p pressure) drive(t *testing.T, d *streamtest.Driver, n int, seed uint64) *pressured {
	r := &pressured{t: t, d: d, p: p, rng: rand.New(rand.NewPCG(seed, 0x9e3779b9))}
	for range p.restarts {
		r.restartAt = append(r.restartAt, r.rng.IntN(n))
	}
	return r
}

// after is called after record i was piped: it commits or restarts when
// the pressure says so.
func (r *pressured) after(i int) {
	r.t.Helper()
	switch {
	case r.p.commitEvery == 0 && r.onCommit != nil:
		r.onCommit() // the driver committed after the record
	case r.p.commitEvery > 0 && r.rng.IntN(r.p.commitEvery) == 0:
		r.commit()
	}
	if slices.Contains(r.restartAt, i) {
		r.restart()
	}
}

// restart commits and closes every task, as a clean restart of the app
// does; the next records reopen them from the changelogs.
func (r *pressured) restart() {
	r.t.Helper()
	r.commit()
	for _, st := range r.d.TaskStatus() {
		r.late += st.Late // counters start over with the task
	}
	if err := r.d.CloseTasks(); err != nil {
		r.t.Fatal(err)
	}
}

// finish commits what is left.
func (r *pressured) finish() {
	r.t.Helper()
	r.commit()
}

func (r *pressured) commit() {
	r.t.Helper()
	if err := r.d.Commit(); err != nil {
		r.t.Fatal(err)
	}
	if r.onCommit != nil {
		r.onCommit()
	}
}

// lateCount returns the late records counted over the run.
func (r *pressured) lateCount() int64 {
	n := r.late
	for _, st := range r.d.TaskStatus() {
		n += st.Late
	}
	return n
}

// failing reports whether key is one of those that the oracle tests'
// failing user functions refuse: about one key in ten.
func failing(key string) bool { return strings.HasSuffix(key, "3") }

// checkDeadLetters checks that every dead letter is for a failing key,
// decoding keys with key, and returns the keys seen.
func checkDeadLetters(t *testing.T, d *streamtest.Driver, key func([]byte) (string, bool)) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for _, dl := range d.DeadLetters() {
		k, ok := key(dl.Key)
		if !ok || !failing(k) {
			t.Fatalf("dead letter for key %q (decoded %q) that no function refuses: %s", dl.Key, k, dl.Error)
		}
		seen[k] = true
	}
	return seen
}
