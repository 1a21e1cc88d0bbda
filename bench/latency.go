package main

// End-to-end latency (issue 19). With -rate, W1 and W2 do not pre-produce
// their input: each run gets an input topic of its own, which the harness
// fills at a steady rate while the contender runs, and the harness reads
// the contender's output as it is written. A record's latency is the time
// from the harness handing it to its producer (the record's timestamp) to
// the harness's consumer receiving the first output record that shows its
// effect: for W1 the record's own transformed copy (its value carries the
// record's index), for W2 the first count of its key at or above its rank
// among its key's records. Both clocks are the harness's, so no clock
// skew enters, but its own producer (no linger, acks=all) and its
// consumer's fetches are part of every figure, for every contender alike.
//
// A paced run has three phases. It produces 100 records/s until the first
// output appears (the contender has joined its group and is running),
// then -rate records/s for -warm (not measured: the JIT, caches and the
// backlog of the first phase), then -rate records/s for -duration, the
// measured window. It then waits until every record's effect has appeared
// and stops the contender. The percentiles are over the records produced
// in the measured window; CPU s / M records is the contender's CPU time
// over the window per million records produced in it, at that rate; the
// peak RSS is of the whole run. A rate the contender cannot sustain shows
// as latencies that grow through the window: the log gives the p99 of the
// window's first and last fifth, and the table notes the ratio when the
// last fifth's p99 exceeds the first's by more than 2x and 100 ms.
// -cpuprofile covers the measured window of the profiled contender's first
// run (with -isolate off, so that a Go contender runs in the harness's
// process).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// probeRate is the input rate (records/s) of a paced run until the
// contender's first output.
const probeRate = 100

// latencyFlags are the flags of the paced mode, for the workloads that
// have one (W1, W2).
type latencyFlags struct {
	rate     int
	duration time.Duration
	warm     time.Duration
}

func (l *latencyFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&l.rate, "rate", 0, "measure end-to-end latency instead of throughput: produce the input at this many records/s while each contender runs (0: pre-produce -records and measure throughput)")
	fs.DurationVar(&l.duration, "duration", 30*time.Second, "with -rate, the measured window")
	fs.DurationVar(&l.warm, "warm", 10*time.Second, "with -rate, how long the input runs at -rate after the contender's first output before the measured window")
}

func (l *latencyFlags) validate() error {
	var errs []error
	if l.rate < 0 {
		errs = append(errs, fmt.Errorf("-rate %d: must be 0 or more", l.rate))
	}
	if l.rate > 0 && l.duration <= 0 {
		errs = append(errs, fmt.Errorf("-duration %v: must be positive", l.duration))
	}
	if l.rate > 0 && l.warm < 0 {
		errs = append(errs, fmt.Errorf("-warm %v: must be 0 or more", l.warm))
	}
	return errors.Join(errs...)
}

// effects is a paced run's ledger: when each input record was sent and
// when its effect was first seen in the output. A workload's tracker
// keeps one and says which output record completes which inputs. It is
// safe for concurrent use.
type effects struct {
	mu       sync.Mutex
	base     time.Time
	sent     []time.Duration // by input index, since base
	seen     []time.Duration // by input index, since base; -1 until seen, and for inputs without effect
	expected []bool          // the input has an effect on the output
	pending  int             // inputs expected and not seen
	first    time.Time       // first output record read, or zero
	dups     int64           // output records that completed nothing new
	bad      []string
	nbad     int
}

func newEffects() *effects { return &effects{base: time.Now()} }

// add notes input record i (the next index), sent at t, and whether it
// has an effect on the output. The caller holds e.mu.
func (e *effects) add(t time.Time, expected bool) int {
	i := len(e.sent)
	e.sent = append(e.sent, t.Sub(e.base))
	e.seen = append(e.seen, -1)
	e.expected = append(e.expected, expected)
	if expected {
		e.pending++
	}
	return i
}

// saw marks input i's effect seen at t, unless it was already; it reports
// whether it was new. The caller holds e.mu.
func (e *effects) saw(i int, t time.Time) bool {
	if e.seen[i] >= 0 {
		return false
	}
	e.seen[i] = t.Sub(e.base)
	if e.expected[i] {
		e.pending--
	}
	return true
}

// complain notes a wrong output record. The caller holds e.mu.
func (e *effects) complain(format string, args ...any) {
	e.nbad++
	if len(e.bad) < 3 {
		e.bad = append(e.bad, fmt.Sprintf(format, args...))
	}
}

// output is called with every output record batch read at t, before the
// tracker looks at them.
func (e *effects) output(t time.Time) {
	if e.first.IsZero() {
		e.first = t
	}
}

// state returns the time of the first output record (zero if none yet),
// the number of inputs sent whose effect is expected and not yet seen,
// and the error of the wrong output records seen, if any.
func (e *effects) state() (first time.Time, pending int, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.nbad > 0 {
		err = fmt.Errorf("%d wrong output records, such as: %s", e.nbad, strings.Join(e.bad, "; "))
	}
	return e.first, e.pending, err
}

// window returns the latencies of the inputs sent in [from, to) whose
// effect was seen, in the order they were sent, and the number of inputs
// sent then.
func (e *effects) window(from, to time.Time) (lat []time.Duration, sent int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	lo, hi := from.Sub(e.base), to.Sub(e.base)
	for i, s := range e.sent {
		if s < lo || s >= hi {
			continue
		}
		sent++
		if e.expected[i] && e.seen[i] >= 0 {
			lat = append(lat, e.seen[i]-s)
		}
	}
	return lat, sent
}

// tracker is a workload's side of a paced run: it makes the input records
// and matches output records to the inputs whose effect they show, in its
// effects.
type tracker interface {
	// input returns the next input record, to be produced at once, and
	// notes it as sent at t. It is called from one goroutine.
	input(t time.Time) *kgo.Record
	// output takes the output records of one fetch, read at t. It is
	// called from one goroutine, another than input's.
	output(rs []*kgo.Record, t time.Time)
	// effects is the tracker's ledger.
	effects() *effects
}

// latencyStats are the latencies of one paced run's measured window.
type latencyStats struct {
	n                   int           // inputs with an effect, sent in the window
	p50, p99, p999, max time.Duration // over them
	firstP99, lastP99   time.Duration // p99 of the window's first and last fifth
	lag                 time.Duration // the harness's producer's worst lag behind its schedule
	dups                int64
}

// percentile returns the q-quantile of sorted by nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// p99Of returns the 99th percentile of lat, which it does not change.
func p99Of(lat []time.Duration) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	return percentile(s, 0.99)
}

func newLatencyStats(lat []time.Duration) *latencyStats {
	fifth := len(lat) / 5
	st := &latencyStats{n: len(lat), firstP99: p99Of(lat[:fifth]), lastP99: p99Of(lat[len(lat)-fifth:])}
	s := slices.Clone(lat)
	slices.Sort(s)
	st.p50, st.p99, st.p999 = percentile(s, 0.50), percentile(s, 0.99), percentile(s, 0.999)
	st.max = s[len(s)-1]
	return st
}

// growing reports whether the latencies grew through the window, as a
// rate the contender cannot sustain makes them: the p99 of its last fifth
// more than twice, and 100 ms more than, that of its first.
func (st *latencyStats) growing() bool {
	return st.lastP99 > 2*st.firstP99 && st.lastP99-st.firstP99 > 100*time.Millisecond
}

// pacedRun measures contender c's end-to-end latency once (run is its
// number, for the names), as the file's comment describes, with the input
// and output of newTracker.
func (h *harness) pacedRun(ctx context.Context, c contender, run int, newTracker func() tracker) trial {
	lf := h.flags.lat
	parts := int32(h.flags.partitions)
	j := job{
		Brokers:    h.addrs,
		In:         fmt.Sprintf("%s-lat-in-%s-%d%s", h.workload, c.key, run, h.nonce),
		Out:        fmt.Sprintf("%s-lat-out-%s-%d%s", h.workload, c.key, run, h.nonce),
		Group:      fmt.Sprintf("bench-%s-lat-%s-%d%s", h.workload, c.key, run, h.nonce),
		Partitions: parts,
		Proc:       new(procStats),
		Peers:      &h.flags.peers,
		Kfake:      h.kfake(),
		Progress:   new(progress),
	}
	if h.broker == nil {
		j.Replicas = h.flags.peers.replicas
	}
	for _, t := range []string{j.In, j.Out} {
		if err := h.createTopic(ctx, t, parts); err != nil {
			return trial{Err: err}
		}
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.conn.Admin().Delete(dctx, j.In, j.Out); err != nil {
			logf("%s: deleting %s and %s: %v", c.key, j.In, j.Out, err)
		}
		runtime.GC()
	}()
	tr := newTracker()
	eff := tr.effects()

	prod, err := newPacedProducer(h.addrs, j.In)
	if err != nil {
		return trial{Err: err}
	}
	defer prod.close()
	starts := make(map[int32]kgo.Offset, parts)
	for p := range parts {
		starts[p] = kgo.NewOffset().AtStart()
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(h.addrs...), kgo.ClientID("bench-latency"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{j.Out: starts}))
	if err != nil {
		return trial{Err: err}
	}
	defer cons.Close()

	// Read the output as it comes.
	rctx, stopReading := context.WithCancel(ctx)
	var readErr atomic.Pointer[error]
	var reading sync.WaitGroup
	reading.Go(func() {
		var rs []*kgo.Record
		for rctx.Err() == nil {
			fs := cons.PollFetches(rctx)
			now := time.Now()
			fs.EachError(func(_ string, _ int32, err error) {
				if rctx.Err() == nil {
					readErr.CompareAndSwap(nil, &err)
				}
			})
			rs = rs[:0]
			fs.EachRecord(func(r *kgo.Record) { rs = append(rs, r) })
			if len(rs) > 0 {
				tr.output(rs, now)
			}
		}
	})
	defer func() {
		stopReading()
		reading.Wait()
	}()

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.run(cctx, j) }()

	// fail stops the contender, unless it has stopped, and returns a
	// failed trial.
	exited := false
	fail := func(err error) trial {
		cancel()
		if !exited {
			select {
			case <-done:
			case <-time.After(time.Minute):
			}
		}
		return trial{Err: err}
	}
	deadline := start.Add(h.flags.timeout)
	check := func(what string) error {
		select {
		case err := <-done:
			exited = true
			if err == nil {
				err = errors.New("returned")
			}
			return fmt.Errorf("stopped %s: %w", what, err)
		default:
		}
		if e := readErr.Load(); e != nil {
			return fmt.Errorf("reading the output %s: %w", what, *e)
		}
		if _, _, err := eff.state(); err != nil {
			return fmt.Errorf("wrong output %s: %w", what, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v %s", h.flags.timeout, what)
		}
		return ctx.Err()
	}

	// Phase 1: a trickle until the contender writes.
	if err := prod.pace(ctx, tr, probeRate, 0, func() (bool, error) {
		if first, _, _ := eff.state(); !first.IsZero() {
			return true, nil
		}
		return false, check("before its first output")
	}); err != nil {
		return fail(err)
	}
	first, _, _ := eff.state()
	logf("%s: first output after %v; %d records/s for %v, then measuring for %v", c.key, first.Sub(start).Round(time.Millisecond), lf.rate, lf.warm, lf.duration)
	// Phase 2 and 3: warm-up and the measured window, at -rate.
	paced := time.Now()
	var m0 time.Time
	lastLog := paced
	// -cpuprofile covers the measured window.
	stopProfile := func() {}
	defer func() { stopProfile() }()
	if err := prod.pace(ctx, tr, lf.rate, lf.warm+lf.duration, func() (bool, error) {
		now := time.Now()
		if m0.IsZero() && now.Sub(paced) >= lf.warm {
			m0 = now
			stop, err := h.startProfile(c.key, run)
			if err != nil {
				return false, err
			}
			stopProfile = stop
		}
		if now.Sub(lastLog) >= 5*time.Second {
			_, pending, _ := eff.state()
			logf("%s: %d records sent, %d still without their effect in the output", c.key, prod.sent, pending)
			lastLog = now
		}
		return false, check("while the input was produced")
	}); err != nil {
		return fail(err)
	}
	m1 := time.Now()
	stopProfile()
	if m0.IsZero() {
		m0 = paced.Add(lf.warm)
	}
	if err := prod.flush(ctx); err != nil {
		return fail(err)
	}
	// Wait for the effect of every record.
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		_, pending, _ := eff.state()
		if pending == 0 {
			break
		}
		if err := check("with the effect of " + fmt.Sprint(pending) + " input records not in the output"); err != nil {
			return fail(err)
		}
		<-tick.C
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			return trial{Err: fmt.Errorf("stopping: %w", err)}
		}
	case <-time.After(time.Minute):
		return trial{Err: errors.New("did not stop within 1m of its context being canceled")}
	}
	if e := readErr.Load(); e != nil {
		return trial{Err: fmt.Errorf("reading the output: %w", *e)}
	}
	if _, _, err := eff.state(); err != nil {
		return trial{Err: fmt.Errorf("wrong output: %w", err)}
	}
	lat, sent := eff.window(m0, m1)
	if len(lat) == 0 {
		return trial{Err: errors.New("no record with an effect in the measured window: use a longer -duration or a higher -rate")}
	}
	st := newLatencyStats(lat)
	st.lag = prod.maxLag
	eff.mu.Lock()
	st.dups = eff.dups
	eff.mu.Unlock()
	out := trial{
		Throughput: float64(sent) / m1.Sub(m0).Seconds(),
		Startup:    m0.Sub(start),
		Wall:       m1.Sub(start),
		Counted:    int64(sent),
		Latency:    st,
	}
	addProc(&out, j.Proc, start)
	out.Load = loadAverage()
	logf("%s: run %d: %d records at %.0f records/s in the window: latency p50 %v, p99 %v, p99.9 %v, max %v (p99 of the first fifth %v, of the last %v); producer lag at most %v%s; load %.2f",
		c.key, run+1, sent, out.Throughput, ms(st.p50), ms(st.p99), ms(st.p999), ms(st.max), ms(st.firstP99), ms(st.lastP99), ms(st.lag), procNote(out), out.Load)
	return out
}

// ms rounds d for a log line or a table cell.
func ms(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Microsecond)
}

// pacedProducer produces a paced run's input: uncompressed, without
// linger, each record stamped with the time it is handed over.
type pacedProducer struct {
	cl      *kgo.Client
	err     atomic.Pointer[error]
	promise func(*kgo.Record, error)
	sent    int
	maxLag  time.Duration // worst lateness of a record behind its schedule, at -rate
}

func newPacedProducer(addrs []string, topic string) (*pacedProducer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ClientID("bench-paced-input"),
		kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	p := &pacedProducer{cl: cl}
	p.promise = func(_ *kgo.Record, err error) {
		if err != nil {
			p.err.CompareAndSwap(nil, &err)
		}
	}
	return p, nil
}

// pace produces tr's records at rate records/s, record i at i/rate after
// it starts, for d (until stop says so when d is 0). It calls stop about
// every millisecond; stop ends the pacing when it returns true or an
// error. Lateness behind the schedule counts in maxLag when d is not 0.
func (p *pacedProducer) pace(ctx context.Context, tr tracker, rate int, d time.Duration, stop func() (bool, error)) error {
	base := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := 0; ; {
		now := time.Now()
		if d > 0 && now.Sub(base) >= d {
			return nil
		}
		for ; base.Add(time.Duration(i) * interval).Before(now); i++ {
			if d > 0 {
				p.maxLag = max(p.maxLag, now.Sub(base.Add(time.Duration(i)*interval)))
			}
			t := time.Now()
			r := tr.input(t)
			r.Timestamp = t
			p.cl.Produce(ctx, r, p.promise)
			p.sent++
		}
		if e := p.err.Load(); e != nil {
			return fmt.Errorf("producing the input: %w", *e)
		}
		if done, err := stop(); done || err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

// flush waits until every record is acknowledged.
func (p *pacedProducer) flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return err
	}
	if e := p.err.Load(); e != nil {
		return fmt.Errorf("producing the input: %w", *e)
	}
	return nil
}

func (p *pacedProducer) close() { p.cl.Close() }

// runPaced runs every selected contender of all in the paced mode with
// the workload's tracker, and prints the latency table and its RESULT
// line ("RESULT <workload>-latency a/b.p99=<ratio> ..."), with the pairs
// ratios.
func (h *harness) runPaced(ctx context.Context, all []contender, newTracker func() tracker, title string, ratios [][2]string) error {
	sums, err := h.runEach(ctx, all, func(c contender, run int) trial { return h.pacedRun(ctx, c, run, newTracker) })
	if err != nil {
		return err
	}
	printLatencyTable(os.Stdout, title, h.workload+"-latency", sums, ratios)
	return nil
}

// latencySummary is the medians of a contender's paced runs.
type latencySummary struct {
	p50, p99, p999, max float64 // nanoseconds
}

func summariseLatency(s summary) latencySummary {
	m := func(f func(st *latencyStats) time.Duration) float64 {
		return median(s.good, func(t trial) float64 { return float64(f(t.Latency)) })
	}
	return latencySummary{
		p50:  m(func(st *latencyStats) time.Duration { return st.p50 }),
		p99:  m(func(st *latencyStats) time.Duration { return st.p99 }),
		p999: m(func(st *latencyStats) time.Duration { return st.p999 }),
		max:  m(func(st *latencyStats) time.Duration { return st.max }),
	}
}

// latencyNotes describes a contender's paced runs for the table.
func latencyNotes(s summary) string {
	var notes []string
	if s.c.notes != "" {
		notes = append(notes, s.c.notes)
	}
	var each, growing []string
	for _, t := range s.good {
		st := t.Latency
		each = append(each, fmt.Sprintf("p99 %v of %d records, load %.1f", ms(st.p99), st.n, t.Load))
		if st.growing() {
			growing = append(growing, fmt.Sprintf("p99 %v in the window's first fifth, %v in its last", ms(st.firstP99), ms(st.lastP99)))
		}
		if st.dups > 0 {
			notes = append(notes, fmt.Sprintf("%d output records repeated an effect already seen", st.dups))
		}
	}
	notes = append(notes, fmt.Sprintf("median of %d runs (%s)", len(s.good), strings.Join(each, "; ")))
	if len(growing) > 0 {
		notes = append(notes, "latency grew through the window, the rate is past what it sustains: "+strings.Join(growing, "; "))
	}
	lag := slices.MaxFunc(s.good, func(a, b trial) int { return int(a.Latency.lag - b.Latency.lag) }).Latency.lag
	notes = append(notes, fmt.Sprintf("the harness's producer at most %v behind its schedule", ms(lag)))
	if strings.HasPrefix(s.notes, "failed") || strings.Contains(s.notes, "runs failed") {
		notes = append(notes, s.notes)
	}
	return strings.Join(notes, "; ")
}

// printLatencyTable writes the title, the machine, the latency table and
// the line "RESULT <workload> a/b.p99=<ratio> ..." to w: for each pair
// of ratios whose contenders both succeeded, the ratio of their median
// p99 latencies (below 1 is better for a), and, when both ran as child
// processes, of their peak RSS (a/b.rss) and CPU per record at the rate
// (a/b.cpu).
func printLatencyTable(w io.Writer, title, workload string, sums []summary, ratios [][2]string) {
	fmt.Fprintf(w, "%s\n\n", title)
	fmt.Fprintf(w, "machine: %s\n\n", machineInfo())
	fmt.Fprintln(w, "| contender | input records/s | p50 | p99 | p99.9 | max | peak RSS | CPU s / M records | notes |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, s := range sums {
		if !s.ok {
			fmt.Fprintf(w, "| %s | – | – | – | – | – | – | – | %s |\n", s.c.name, escapeCell(s.notes))
			continue
		}
		l := summariseLatency(s)
		d := func(v float64) time.Duration { return ms(time.Duration(v)) }
		fmt.Fprintf(w, "| %s | %s | %v | %v | %v | %v | %s | %s | %s |\n", s.c.name, groupDigits(s.throughput),
			d(l.p50), d(l.p99), d(l.p999), d(l.max), rssCell(s), cpuCell(s), escapeCell(latencyNotes(s)))
	}
	// A failed contender has no latency to compare: no entry, rather
	// than appendRatios' 0.00, which would read as the best.
	var both [][2]string
	for _, r := range ratios {
		num := slices.IndexFunc(sums, func(s summary) bool { return s.c.key == r[0] })
		den := slices.IndexFunc(sums, func(s summary) bool { return s.c.key == r[1] })
		if num >= 0 && den >= 0 && sums[num].ok && sums[den].ok {
			both = append(both, r)
		}
	}
	line := appendRatios("RESULT "+workload, sums, both, ".p99", func(s summary) float64 { return summariseLatency(s).p99 })
	line = appendProcRatios(line, sums, ratios)
	fmt.Fprintf(w, "\n%s\n", line)
}
