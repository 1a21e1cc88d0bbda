package main

// The harness is shared by every workload: it starts the embedded broker,
// runs each contender against the same input, measures it from outside by
// watching its output topic's end offsets, checks its output, and prints
// the table.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/kappa-streams/kappa/broker"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// pollEvery is how often the harness reads the output's end offsets.
const pollEvery = 5 * time.Millisecond

// commonFlags are the flags every workload takes.
type commonFlags struct {
	records    int
	partitions int
	valueSize  int
	runs       int
	seed       uint64
	timeout    time.Duration
	contenders string
	cpuprofile string
	profile    string
}

func (f *commonFlags) register(fs *flag.FlagSet, defaultRecords int) {
	fs.IntVar(&f.records, "records", defaultRecords, "input records to pre-produce")
	fs.IntVar(&f.partitions, "partitions", 4, "partitions of the input and output topics")
	fs.IntVar(&f.valueSize, "value-size", 100, "bytes per input value")
	fs.IntVar(&f.runs, "runs", 1, "runs per contender; the table reports the median")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the generated input")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "time a contender gets to produce all its output before it is reported as failed")
	fs.StringVar(&f.contenders, "contenders", "raw,kappa,goka", "comma-separated contenders to run, in this order")
	fs.StringVar(&f.cpuprofile, "cpuprofile", "", "write a CPU profile of one contender's first run (from its start to its last output) to this file")
	fs.StringVar(&f.profile, "profile", "kappa", "the contender -cpuprofile profiles")
}

func (f *commonFlags) validate() error {
	var errs []error
	if f.records < 1 {
		errs = append(errs, fmt.Errorf("-records %d: must be at least 1", f.records))
	}
	if f.partitions < 1 {
		errs = append(errs, fmt.Errorf("-partitions %d: must be at least 1", f.partitions))
	}
	if f.valueSize < 1 {
		errs = append(errs, fmt.Errorf("-value-size %d: must be at least 1", f.valueSize))
	}
	if f.runs < 1 {
		errs = append(errs, fmt.Errorf("-runs %d: must be at least 1", f.runs))
	}
	if f.timeout <= 0 {
		errs = append(errs, fmt.Errorf("-timeout %v: must be positive", f.timeout))
	}
	return errors.Join(errs...)
}

// job is what a contender is given: where to read and write, and the
// consumer group (or application ID) it must use.
type job struct {
	Brokers    []string
	In, Out    string
	Group      string
	Partitions int32
}

// contender is one implementation of a workload. run processes until ctx
// is done, then stops gracefully (committing what it processed) and
// returns nil, or returns the error that stopped it.
type contender struct {
	key   string // the name in -contenders: raw, kappa, goka
	name  string // the name in the table
	notes string // how it is configured, for the table
	run   func(ctx context.Context, j job) error
}

// expectation is what a correct contender writes: Count records whose
// key/value pairs hash to Sum (an order-independent multiset checksum).
// Check, when set, looks at each output record and explains what is wrong.
type expectation struct {
	Count int64
	Sum   uint64
	Check func(key, value []byte) error
}

// trial is one measured run of one contender.
type trial struct {
	Throughput float64       // expected records / (t1 - t0)
	Wall       time.Duration // contender start → t1
	Startup    time.Duration // contender start → t0
	Err        error
}

// harness holds the broker and the clients that measure and check.
type harness struct {
	workload string
	flags    *commonFlags
	broker   *broker.Embedded
	addrs    []string
	conn     *broker.Conn
	cl       *kgo.Client // for end offsets
	recSeed  maphash.Seed
}

func newHarness(ctx context.Context, workload string, flags *commonFlags) (*harness, error) {
	b, err := broker.NewEmbedded(broker.DefaultPartitions(flags.partitions))
	if err != nil {
		return nil, err
	}
	addrs := b.Addrs()
	conn, err := broker.Connect(ctx, addrs, broker.ClientID("bench-harness"))
	if err != nil {
		b.Close()
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ClientID("bench-watch"))
	if err != nil {
		conn.Close()
		b.Close()
		return nil, err
	}
	logf("embedded broker at %s", strings.Join(addrs, ","))
	return &harness{workload: workload, flags: flags, broker: b, addrs: addrs, conn: conn, cl: cl, recSeed: maphash.MakeSeed()}, nil
}

func (h *harness) Close() {
	h.cl.Close()
	h.conn.Close()
	h.broker.Close()
}

// recordHash is the hash of one key/value pair; the checksum of a topic is
// the sum of its records' hashes, so it ignores order and partitioning.
func (h *harness) recordHash(key, value []byte) uint64 {
	var m maphash.Hash
	m.SetSeed(h.recSeed)
	var n [8]byte
	for i, l := 0, uint64(len(key)); i < 8; i++ {
		n[i] = byte(l >> (8 * i))
	}
	m.Write(n[:])
	m.Write(key)
	m.Write(value)
	return m.Sum64()
}

func (h *harness) createTopic(ctx context.Context, name string, partitions int32) error {
	return h.conn.Admin().Create(ctx, broker.TopicSpec{Name: name, Partitions: partitions})
}

// endOffsets returns the sum of the high watermarks of topic's partitions.
func (h *harness) endOffsets(ctx context.Context, topic string, partitions int32) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = -1 // latest: the high watermark
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, h.cl)
	if err != nil {
		return 0, err
	}
	var sum int64
	seen := 0
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return 0, fmt.Errorf("end offset of %s/%d: %w", topic, p.Partition, err)
			}
			sum += p.Offset
			seen++
		}
	}
	if seen != int(partitions) {
		return 0, fmt.Errorf("end offsets of %s: %d of %d partitions answered", topic, seen, partitions)
	}
	return sum, nil
}

// measure runs one contender once on a fresh output topic and consumer
// group, measures it, stops it, checks its output and deletes the output.
func (h *harness) measure(ctx context.Context, c contender, run int, in string, exp expectation) trial {
	parts := int32(h.flags.partitions)
	j := job{
		Brokers:    h.addrs,
		In:         in,
		Out:        fmt.Sprintf("%s-out-%s-%d", h.workload, c.key, run),
		Group:      fmt.Sprintf("bench-%s-%s-%d", h.workload, c.key, run),
		Partitions: parts,
	}
	if err := h.createTopic(ctx, j.Out, parts); err != nil {
		return trial{Err: err}
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.conn.Admin().Delete(dctx, j.Out); err != nil {
			logf("%s: deleting %s: %v", c.key, j.Out, err)
		}
		// Start every contender from a similar heap: the broker keeps
		// every topic in memory.
		runtime.GC()
	}()

	profiling := h.flags.cpuprofile != "" && h.flags.profile == c.key && run == 0
	stopProfile := func() {}
	if profiling {
		f, err := os.Create(h.flags.cpuprofile)
		if err != nil {
			return trial{Err: err}
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return trial{Err: err}
		}
		stopProfile = func() {
			pprof.StopCPUProfile()
			f.Close()
			logf("%s: CPU profile written to %s", c.key, h.flags.cpuprofile)
			stopProfile = func() {}
		}
		defer func() { stopProfile() }()
	}

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.run(cctx, j) }()

	tr, runErr := h.watch(ctx, c, j, exp, start, done)
	stopProfile()
	cancel()
	if runErr == nil {
		select {
		case runErr = <-done:
			if runErr != nil {
				runErr = fmt.Errorf("stopping: %w", runErr)
			}
		case <-time.After(time.Minute):
			runErr = errors.New("did not stop within 1m of its context being canceled")
		}
	}
	if runErr != nil {
		tr.Err = runErr
		return tr
	}
	if err := h.verify(ctx, j, exp); err != nil {
		tr.Err = fmt.Errorf("wrong output: %w", err)
		return tr
	}
	logf("%s: run %d: %.0f records/s, wall %v (first output after %v); output verified",
		c.key, run+1, tr.Throughput, tr.Wall.Round(time.Millisecond), tr.Startup.Round(time.Millisecond))
	return tr
}

// watch polls the output's end offsets until they reach exp.Count, the
// contender fails, or the timeout passes. A non-nil error means the trial
// failed; the contender's own error is then already consumed from done.
func (h *harness) watch(ctx context.Context, c contender, j job, exp expectation, start time.Time, done <-chan error) (trial, error) {
	deadline := time.NewTimer(h.flags.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var t0 time.Time
	var last int64
	lastLog := start
	for {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("returned before writing all its output")
			}
			return trial{}, fmt.Errorf("stopped after %d of %d records: %w", last, exp.Count, err)
		case <-deadline.C:
			return trial{}, fmt.Errorf("timed out after %v with %d of %d records written", h.flags.timeout, last, exp.Count)
		case <-ctx.Done():
			return trial{}, ctx.Err()
		case <-tick.C:
		}
		n, err := h.endOffsets(ctx, j.Out, j.Partitions)
		now := time.Now()
		if err != nil {
			if now.Sub(lastLog) >= time.Second {
				logf("%s: reading end offsets: %v", c.key, err)
				lastLog = now
			}
			continue
		}
		last = n
		if n > 0 && t0.IsZero() {
			t0 = now
		}
		if n >= exp.Count {
			if !now.After(t0) {
				return trial{}, fmt.Errorf("all %d records appeared between two observations %v apart: too few to measure, use more -records", n, pollEvery)
			}
			return trial{
				Throughput: float64(exp.Count) / now.Sub(t0).Seconds(),
				Wall:       now.Sub(start),
				Startup:    t0.Sub(start),
			}, nil
		}
		if now.Sub(lastLog) >= time.Second {
			logf("%s: %d/%d output records after %v", c.key, n, exp.Count, now.Sub(start).Round(time.Millisecond))
			lastLog = now
		}
	}
}

// verify reads the whole output topic and checks it against exp.
func (h *harness) verify(ctx context.Context, j job, exp expectation) error {
	total, err := h.endOffsets(ctx, j.Out, j.Partitions)
	if err != nil {
		return err
	}
	if total != exp.Count {
		return fmt.Errorf("%d records in %s, want %d", total, j.Out, exp.Count)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.addrs...), kgo.ClientID("bench-verify"),
		kgo.ConsumeTopics(j.Out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var n int64
	var sum uint64
	var bad []string
	for n < total {
		fs := cl.PollFetches(vctx)
		if vctx.Err() != nil {
			return fmt.Errorf("read %d of %d records of %s: %w", n, total, j.Out, vctx.Err())
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			sum += h.recordHash(r.Key, r.Value)
			if exp.Check != nil && len(bad) < 3 {
				if err := exp.Check(r.Key, r.Value); err != nil {
					bad = append(bad, fmt.Sprintf("%s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err))
				}
			}
		})
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	if sum != exp.Sum {
		return fmt.Errorf("%d records, but their keys and values are not the expected ones (checksum %x, want %x)", n, sum, exp.Sum)
	}
	return nil
}

// runAll runs every selected contender h.flags.runs times, one after
// another, and summarises each.
func (h *harness) runAll(ctx context.Context, all []contender, in string, exp expectation) ([]summary, error) {
	var chosen []contender
	for _, k := range strings.Split(h.flags.contenders, ",") {
		k = strings.TrimSpace(k)
		i := slices.IndexFunc(all, func(c contender) bool { return c.key == k })
		if i < 0 {
			return nil, fmt.Errorf("-contenders: unknown contender %q", k)
		}
		if slices.ContainsFunc(chosen, func(c contender) bool { return c.key == k }) {
			return nil, fmt.Errorf("-contenders: %q given twice", k)
		}
		chosen = append(chosen, all[i])
	}
	trials := make([][]trial, len(chosen))
	for run := range h.flags.runs {
		for i, c := range chosen {
			logf("%s: run %d of %d", c.key, run+1, h.flags.runs)
			tr := h.measure(ctx, c, run, in, exp)
			if tr.Err != nil {
				logf("%s: run %d failed: %v", c.key, run+1, tr.Err)
			}
			trials[i] = append(trials[i], tr)
		}
	}
	out := make([]summary, len(chosen))
	for i, c := range chosen {
		out[i] = summarise(c, trials[i])
	}
	return out, nil
}

// summary is a contender's line in the table.
type summary struct {
	c          contender
	ok         bool
	throughput float64 // median of the successful runs
	wall       time.Duration
	notes      string
}

func summarise(c contender, trials []trial) summary {
	var good []trial
	var errs []string
	for _, t := range trials {
		if t.Err != nil {
			errs = append(errs, t.Err.Error())
		} else {
			good = append(good, t)
		}
	}
	s := summary{c: c}
	var notes []string
	if c.notes != "" {
		notes = append(notes, c.notes)
	}
	if len(good) == 0 {
		s.notes = "failed: " + errs[0]
		if c.notes != "" {
			s.notes += "; " + c.notes
		}
		return s
	}
	s.ok = true
	s.throughput = median(good, func(t trial) float64 { return t.Throughput })
	s.wall = time.Duration(median(good, func(t trial) float64 { return float64(t.Wall) }))
	startup := time.Duration(median(good, func(t trial) float64 { return float64(t.Startup) }))
	notes = append(notes, fmt.Sprintf("first output after %v", startup.Round(time.Millisecond)))
	if len(trials) > 1 {
		var each []string
		for _, t := range good {
			each = append(each, groupDigits(t.Throughput))
		}
		notes = append(notes, fmt.Sprintf("median of %d runs (%s)", len(good), strings.Join(each, ", ")))
	}
	if len(errs) > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d runs failed: %s", len(errs), len(trials), errs[0]))
	}
	s.notes = strings.Join(notes, "; ")
	return s
}

func median(ts []trial, f func(trial) float64) float64 {
	vs := make([]float64, len(ts))
	for i, t := range ts {
		vs[i] = f(t)
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// printTable writes the title, the machine, the table and the line
// "RESULT <workload> a/b=<ratio> ..." to w.
// ratios lists the RESULT entries as "a/b" pairs of contender keys; an
// entry whose denominator failed is left out, one whose numerator failed
// is 0.00.
func printTable(w io.Writer, title, workload string, sums []summary, ratios [][2]string) {
	fmt.Fprintf(w, "%s\n\n", title)
	fmt.Fprintf(w, "machine: %s\n\n", machineInfo())
	fmt.Fprintln(w, "| contender | records/s | wall time | notes |")
	fmt.Fprintln(w, "|---|---:|---:|---|")
	for _, s := range sums {
		if !s.ok {
			fmt.Fprintf(w, "| %s | – | – | %s |\n", s.c.name, escapeCell(s.notes))
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", s.c.name, groupDigits(s.throughput),
			s.wall.Round(time.Millisecond), escapeCell(s.notes))
	}
	byKey := func(k string) (summary, bool) {
		i := slices.IndexFunc(sums, func(s summary) bool { return s.c.key == k })
		if i < 0 {
			return summary{}, false
		}
		return sums[i], true
	}
	line := "RESULT " + workload
	for _, r := range ratios {
		num, ok1 := byKey(r[0])
		den, ok2 := byKey(r[1])
		if !ok1 || !ok2 || !den.ok {
			continue
		}
		v := 0.0
		if num.ok {
			v = num.throughput / den.throughput
		}
		line += fmt.Sprintf(" %s/%s=%.2f", r[0], r[1], v)
	}
	fmt.Fprintf(w, "\n%s\n", line)
}

func escapeCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// groupDigits formats v rounded to an integer with thousands separators.
func groupDigits(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// machineInfo describes where the benchmark ran.
func machineInfo() string {
	info := fmt.Sprintf("%s/%s, NumCPU %d, GOMAXPROCS %d, %s", runtime.GOOS, runtime.GOARCH,
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	if m := cpuModel(); m != "" {
		info += ", " + m
	}
	return info
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}
