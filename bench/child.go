package main

// Contenders as child processes. Kafka Streams and Quix Streams run in
// processes of their own (the JVM, Python); with -isolate, so do the Go
// contenders (the same bench binary, subcommand "contender"), so that each
// contender's peak RSS and CPU time are its own and not shared with the
// embedded broker and the harness.
//
// The harness and a child talk through the child's standard streams. The
// child prints one event per line on stdout: "processed N" whenever its
// count of processed input records changes, and events of its own (state
// changes, a restore's progress); it stops gracefully, committing what it
// processed, when its stdin ends or reads "stop", and exits 0.
//
// Peak RSS is the child's high-water mark of resident memory, VmHWM of
// /proc/<pid>/status, sampled every procSampleEvery while it runs: a peak
// in its last procSampleEvery before exit can be missed. Not ru_maxrss of
// its rusage: Linux carries into it, at exec, the high-water mark of the
// memory the child shared with the harness before (os/exec starts
// children with vfork), and the harness holds the embedded broker's every
// record, so ru_maxrss reports the harness's size whenever it is the
// larger. CPU time is utime+stime of /proc/<pid>/stat sampled every
// procSampleEvery, so the harness can take the CPU time spent between a
// trial's t0 and t1, not the process's start-up (a JVM's class loading and
// JIT warm-up, Python's imports); the total at exit comes from rusage.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// procSampleEvery is how often the harness reads a child's /proc files.
const procSampleEvery = 20 * time.Millisecond

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// childStopWait is how long a child gets to stop gracefully once told to,
// before it is killed.
const childStopWait = 90 * time.Second

// procStats is what the harness measured of a contender that ran as a
// child process. Its zero value means "not a child": nothing measured.
type procStats struct {
	mu       sync.Mutex
	pid      int
	samples  []cpuSample
	peakRSS  int64 // bytes
	exited   time.Time
	cpuTotal time.Duration // utime+stime at exit, from rusage
}

// cpuSample is the CPU time a child had used at a moment, and its peak
// RSS (VmHWM) until then.
type cpuSample struct {
	at  time.Time
	cpu time.Duration
	hwm int64
}

// measured reports whether a child process ran and exited.
func (p *procStats) measured() bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.exited.IsZero()
}

// peak returns the child's peak RSS in bytes.
func (p *procStats) peak() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peakRSS
}

// cpuAt returns the CPU time the child had used at t: the last sample
// taken at or before t, or the total at exit when t is after it.
func (p *procStats) cpuAt(t time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited.IsZero() && !t.Before(p.exited) {
		return p.cpuTotal
	}
	if s, ok := p.sampleAt(t); ok {
		return s.cpu
	}
	return 0
}

// peakAt returns the child's peak RSS until t: VmHWM as last sampled at
// or before t, or the peak at exit when t is after it.
func (p *procStats) peakAt(t time.Time) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited.IsZero() && !t.Before(p.exited) {
		return p.peakRSS
	}
	if s, ok := p.sampleAt(t); ok {
		return s.hwm
	}
	return 0
}

// sampleAt returns the last sample taken at or before t. The caller
// holds p.mu.
func (p *procStats) sampleAt(t time.Time) (cpuSample, bool) {
	i, found := slices.BinarySearchFunc(p.samples, t, func(s cpuSample, t time.Time) int { return s.at.Compare(t) })
	// samples[i] is the first at or after t.
	if found {
		return p.samples[i], true
	}
	if i == 0 {
		return cpuSample{}, false
	}
	return p.samples[i-1], true
}

// cpuBetween returns the CPU time the child used from t0 to t1.
func (p *procStats) cpuBetween(t0, t1 time.Time) time.Duration {
	return max(0, p.cpuAt(t1)-p.cpuAt(t0))
}

// sample reads the child's /proc files once.
func (p *procStats) sample(pid int) {
	now := time.Now()
	cpu, cerr := procCPU(pid)
	hwm, herr := procHWM(pid)
	p.mu.Lock()
	defer p.mu.Unlock()
	if herr == nil {
		p.peakRSS = max(p.peakRSS, hwm)
	}
	if cerr == nil {
		p.samples = append(p.samples, cpuSample{at: now, cpu: cpu, hwm: p.peakRSS})
	}
}

// exit records the child's rusage once it has exited.
func (p *procStats) exit(st *os.ProcessState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exited = time.Now()
	if st == nil {
		return
	}
	p.cpuTotal = st.UserTime() + st.SystemTime()
}

// procCPU reads utime+stime of /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("/proc/pid/stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("/proc/pid/stat: too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// procHWM reads VmHWM of /proc/<pid>/status, in bytes.
func procHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("/proc/pid/status: VmHWM %q", strings.TrimSpace(v))
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("/proc/pid/status: no VmHWM")
}

// childSpec is a child process to run as a contender.
type childSpec struct {
	name string // for the logs
	path string
	args []string
	dir  string // working directory, or the harness's
	// progress turns the child's count of processed records into the
	// count the harness measures by; nil keeps it.
	progress func(n int64) int64
	// onEvent, when set, sees every stdout line other than "processed N",
	// split into fields, with the time the harness read it. It runs on
	// the goroutine that reads the child's stdout.
	onEvent func(at time.Time, fields []string)
}

// runChild runs spec as j's contender until ctx is done, then tells it to
// stop and waits for it. It reports the child's processed count to
// j.Progress and measures it into j.Proc. It returns nil when the child
// stopped gracefully after ctx was done, and an error when it exited
// before, failed, or had to be killed.
func runChild(ctx context.Context, j job, spec childSpec) error {
	cmd := exec.Command(spec.path, spec.args...)
	cmd.Dir = spec.dir
	cmd.Stderr = &prefixWriter{prefix: spec.name + ": ", w: os.Stderr}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", spec.path, err)
	}
	pid := cmd.Process.Pid
	stats := j.Proc
	if stats == nil {
		stats = new(procStats)
	}
	stats.mu.Lock()
	stats.pid = pid
	stats.mu.Unlock()
	var processed atomic.Int64
	if j.Progress != nil {
		conv := spec.progress
		if conv == nil {
			conv = func(n int64) int64 { return n }
		}
		j.Progress.Report(func() int64 { return conv(processed.Load()) })
	}

	// Read stdout until the child closes it.
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			now := time.Now()
			f := strings.Fields(sc.Text())
			if len(f) == 0 {
				continue
			}
			if f[0] == "processed" && len(f) == 2 {
				if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					processed.Store(n)
				}
				continue
			}
			if spec.onEvent != nil {
				spec.onEvent(now, f)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	// Sample /proc until the child exits.
	exited := make(chan struct{})
	go func() {
		tick := time.NewTicker(procSampleEvery)
		defer tick.Stop()
		for {
			stats.sample(pid)
			select {
			case <-exited:
				return
			case <-tick.C:
			}
		}
	}()
	waitErr := make(chan error, 1)
	go func() {
		<-readDone // Wait closes stdout: read it all first
		err := cmd.Wait()
		stats.exit(cmd.ProcessState)
		close(exited)
		waitErr <- err
	}()

	select {
	case err := <-waitErr:
		stdin.Close()
		if err == nil {
			err = errors.New("exited before it was told to stop")
		}
		return fmt.Errorf("%s: %w", spec.name, err)
	case <-ctx.Done():
	}
	io.WriteString(stdin, "stop\n")
	stdin.Close()
	select {
	case err := <-waitErr:
		if err != nil {
			return fmt.Errorf("%s: stopping: %w", spec.name, err)
		}
		return nil
	case <-time.After(childStopWait):
		cmd.Process.Kill()
		<-waitErr
		return fmt.Errorf("%s: did not stop within %v of being told to; killed", spec.name, childStopWait)
	}
}

// prefixWriter writes each line written to it to w with prefix before it.
type prefixWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// childParams are the workload parameters a Go contender needs to be
// rebuilt in a child process: the flags its constructor takes.
type childParams struct {
	commitInterval time.Duration
	cacheBytes     int64
}

func (p childParams) args() []string {
	return []string{"-commit-interval", p.commitInterval.String(), "-cache-bytes", strconv.FormatInt(p.cacheBytes, 10)}
}

// isolatable holds, by workload, the constructor of its Go contenders
// that the subcommand "contender" runs in a child process.
var isolatable = map[string]func(p childParams) []contender{}

func init() {
	register(command{
		name:    "contender",
		summary: "(internal) run one Go contender of a workload in this process, for -isolate",
		run:     runContenderChild,
	})
}

// isolate returns c run in a child process: this binary, subcommand
// "contender", with h's workload and params.
func (h *harness) isolate(c contender) contender {
	self, err := os.Executable()
	run := func(ctx context.Context, j job) error {
		if err != nil {
			return fmt.Errorf("-isolate: %w", err)
		}
		args := append([]string{"contender", "-workload", h.workload, "-key", c.key,
			"-brokers", strings.Join(j.Brokers, ","), "-in", j.In, "-out", j.Out, "-group", j.Group,
			"-partitions", strconv.Itoa(int(j.Partitions)), "-replication", strconv.Itoa(j.Replicas)}, h.params.args()...)
		return runChild(ctx, j, childSpec{name: c.key, path: self, args: args})
	}
	c.run = run
	c.child = true
	if c.notes != "" {
		c.notes += "; "
	}
	c.notes += "in a child process (-isolate)"
	return c
}

// runContenderChild is the subcommand "contender": it runs one Go
// contender of a workload as the harness asks (see isolate), printing
// its processed count on stdout, until stdin ends or reads "stop".
func runContenderChild(args []string) error {
	fs := flag.NewFlagSet("contender", flag.ContinueOnError)
	workload := fs.String("workload", "", "workload whose contender to run")
	key := fs.String("key", "", "contender key")
	brokers := fs.String("brokers", "", "comma-separated seed brokers")
	in := fs.String("in", "", "input topic")
	out := fs.String("out", "", "output topic")
	group := fs.String("group", "", "consumer group / application ID")
	parts := fs.Int("partitions", 4, "partitions of the input and output topics")
	replicas := fs.Int("replication", 0, "replication factor of the topics Kappa creates; 0 keeps its default")
	var p childParams
	fs.DurationVar(&p.commitInterval, "commit-interval", time.Second, "the workload's -commit-interval")
	fs.Int64Var(&p.cacheBytes, "cache-bytes", -1, "the workload's -cache-bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	build, ok := isolatable[*workload]
	if !ok {
		return fmt.Errorf("workload %q has no Go contenders to isolate", *workload)
	}
	all := build(p)
	i := slices.IndexFunc(all, func(c contender) bool { return c.key == *key && c.run != nil && !c.child })
	if i < 0 {
		return fmt.Errorf("workload %s has no Go contender %q", *workload, *key)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "stop" {
				break
			}
		}
		cancel()
	}()
	j := job{Brokers: strings.Split(*brokers, ","), In: *in, Out: *out, Group: *group,
		Partitions: int32(*parts), Progress: new(progress), Replicas: *replicas}
	done := make(chan error, 1)
	go func() { done <- all[i].run(ctx, j) }()
	return reportUntil(done, j.Progress.processed)
}

// reportUntil prints "processed N" on stdout whenever processed changes,
// every 5 ms, until done yields; it returns what done yields.
func reportUntil(done <-chan error, processed func() int64) error {
	w := bufio.NewWriter(os.Stdout)
	last := int64(-1)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	report := func() {
		if n := processed(); n != last {
			fmt.Fprintf(w, "processed %d\n", n)
			w.Flush()
			last = n
		}
	}
	for {
		select {
		case err := <-done:
			report()
			fmt.Fprintln(w, "closed")
			w.Flush()
			return err
		case <-tick.C:
			report()
		}
	}
}
