package main

// W5's restore contenders in child processes: Kafka Streams always, and
// the raw loop and Kappa with -isolate (subcommand "restore-contender").
// A child restores, reports when its restore began and ended, reads its
// store back and reports what it holds (the number of records and the sum
// of their portableHash values), then waits to be told to stop.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func init() {
	register(command{
		name:    "restore-contender",
		summary: "(internal) run one Go restore contender of W5 in this process, for -isolate",
		run:     runRestoreChild,
	})
}

// restoreEvents collects what a restoring child reports.
type restoreEvents struct {
	mu       sync.Mutex
	tm       restoreTiming
	restored int64 // records the child says it restored (kstreams)
	stored   bool
	err      error
	done     chan struct{} // closed once the store is reported, or an error
	once     sync.Once
}

func (e *restoreEvents) finish(err error) {
	e.mu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.mu.Unlock()
	e.once.Do(func() { close(e.done) })
}

// restoreInChild runs spec as a restore contender until it has reported
// its store, then stops it. onEvent handles its events into ev, and calls
// ev.finish once the store is reported.
func restoreInChild(ctx context.Context, spec childSpec, ev *restoreEvents) (restoreTiming, error) {
	stats := new(procStats)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	ev.mu.Lock()
	ev.tm.Start = time.Now()
	ev.mu.Unlock()
	go func() { done <- runChild(cctx, job{Proc: stats}, spec) }()
	select {
	case <-ev.done:
	case err := <-done:
		if err == nil {
			err = errors.New("stopped before it reported its store")
		}
		return restoreTiming{}, err
	case <-ctx.Done():
		cancel()
		<-done
		return restoreTiming{}, ctx.Err()
	}
	cancel()
	runErr := <-done
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.err != nil {
		return restoreTiming{}, ev.err
	}
	if runErr != nil {
		return restoreTiming{}, runErr
	}
	tm := ev.tm
	tm.Proc = stats
	return tm, nil
}

// parseStore reads the event "store KEYS SUM" into ev.
func (e *restoreEvents) parseStore(f []string) {
	if len(f) != 3 {
		e.finish(fmt.Errorf("bad event %q", strings.Join(f, " ")))
		return
	}
	n, err1 := strconv.ParseInt(f[1], 10, 64)
	sum, err2 := strconv.ParseUint(f[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		e.finish(fmt.Errorf("bad event %q: %w", strings.Join(f, " "), err))
		return
	}
	e.mu.Lock()
	e.tm.Keys, e.tm.PortableSum, e.stored = n, sum, true
	e.mu.Unlock()
	e.finish(nil)
}

// kstreamsRestore restores W5's store in Kafka Streams (the jar's
// topology "restore", application w5App): timed from the first
// onRestoreStart it reports to the state RUNNING, both as the harness
// reads them from its stdout. It checks that Kafka Streams restored
// rj.Records records.
func kstreamsRestore(ctx context.Context, h *harness, rj restoreJob) (restoreTiming, error) {
	p := &h.flags.peers
	args := strings.Fields(p.jvmOpts)
	args = append(args, "-cp", p.jar, kstreamsMain, "restore",
		"--bootstrap", strings.Join(rj.Brokers, ","), "--in", w5In, "--app-id", w5App,
		"--threads", strconv.Itoa(p.kstreamsThreads()), "--replication", strconv.Itoa(p.replicas),
		"--state-dir", rj.Dir)
	if h.kfake() {
		// The changelog exists (the harness made it); see KfakeCompat.java.
		args = append(args, "--kfake-compat", "true")
	}
	ev := &restoreEvents{done: make(chan struct{})}
	spec := childSpec{name: "kstreams", path: p.java, args: args, onEvent: func(at time.Time, f []string) {
		switch f[0] {
		case "restore-start":
			ev.mu.Lock()
			if ev.tm.Began.IsZero() {
				ev.tm.Began = at
			}
			ev.mu.Unlock()
		case "running":
			n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
			ev.mu.Lock()
			ev.tm.Done, ev.restored = at, n
			began := ev.tm.Began
			ev.mu.Unlock()
			switch {
			case err != nil:
				ev.finish(fmt.Errorf("bad event %q", strings.Join(f, " ")))
			case began.IsZero():
				ev.finish(errors.New("running before any restore began"))
			case n != rj.Records:
				ev.finish(fmt.Errorf("running after restoring %d records, want %d", n, rj.Records))
			}
		case "store":
			ev.parseStore(f)
		case "store-error":
			ev.finish(fmt.Errorf("reading the store: %s", strings.Join(f[1:], " ")))
		case "state":
			logf("kstreams: %s", strings.Join(f, " "))
		}
	}}
	return restoreInChild(ctx, spec, ev)
}

// isolatedRestore runs the Go restore contender key (w5Restorers) in a
// child process: this binary, subcommand "restore-contender", which
// reports its own restoreTiming.
func isolatedRestore(ctx context.Context, key string, rj restoreJob) (restoreTiming, error) {
	self, err := os.Executable()
	if err != nil {
		return restoreTiming{}, err
	}
	args := []string{"restore-contender", "-key", key, "-brokers", strings.Join(rj.Brokers, ","),
		"-changelog", rj.Changelog, "-partitions", strconv.Itoa(int(rj.Partitions)),
		"-records", strconv.FormatInt(rj.Records, 10), "-dir", rj.Dir}
	ev := &restoreEvents{done: make(chan struct{})}
	spec := childSpec{name: key, path: self, args: args, onEvent: func(_ time.Time, f []string) {
		switch f[0] {
		case "timing":
			var ts [3]int64
			var errs []error
			for i := range ts {
				if len(f) == 4 {
					var err error
					ts[i], err = strconv.ParseInt(f[i+1], 10, 64)
					errs = append(errs, err)
				}
			}
			if err := errors.Join(errs...); err != nil || len(f) != 4 {
				ev.finish(fmt.Errorf("bad event %q", strings.Join(f, " ")))
				return
			}
			ev.mu.Lock()
			// The child's Start is when its restore function began; the
			// harness's (set when it started the child) includes the
			// process's start.
			ev.tm.Began, ev.tm.Done = time.Unix(0, ts[1]), time.Unix(0, ts[2])
			ev.mu.Unlock()
		case "store":
			ev.parseStore(f)
		}
	}}
	return restoreInChild(ctx, spec, ev)
}

// runRestoreChild is the subcommand "restore-contender": it restores W5's
// store with one Go restorer, prints "timing START BEGAN DONE" (Unix
// nanoseconds) and "store KEYS SUM" (portableHash), and waits until stdin
// ends or reads "stop".
func runRestoreChild(args []string) error {
	fs := flag.NewFlagSet("restore-contender", flag.ContinueOnError)
	key := fs.String("key", "", "restore contender: raw or kappa")
	brokers := fs.String("brokers", "", "comma-separated seed brokers")
	var rj restoreJob
	var parts int
	fs.StringVar(&rj.Changelog, "changelog", "", "the changelog topic")
	fs.IntVar(&parts, "partitions", 4, "its partitions")
	fs.Int64Var(&rj.Records, "records", 0, "its records")
	fs.StringVar(&rj.Dir, "dir", "", "an empty directory for the store")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, ok := w5Restorers[*key]
	if !ok {
		return fmt.Errorf("no restore contender %q", *key)
	}
	rj.Brokers, rj.Partitions = strings.Split(*brokers, ","), int32(parts)
	tm, err := r.restore(context.Background(), rj)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "timing %d %d %d\n", tm.Start.UnixNano(), tm.Began.UnixNano(), tm.Done.UnixNano())
	w.Flush()
	var n int64
	var sum uint64
	if err := r.scan(rj, func(k, v []byte) {
		n++
		sum += portableHash(k, v)
	}); err != nil {
		return fmt.Errorf("reading the restored store: %w", err)
	}
	fmt.Fprintf(w, "store %d %d\n", n, sum)
	w.Flush()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "stop" {
			break
		}
	}
	return nil
}
