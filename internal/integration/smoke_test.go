package integration_test

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/broker/embedded"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/internal/smoke"
	"github.com/kappa-streams/kappa/processor"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The smoke tests run the app of internal/smoke as three OS processes
// (internal/smoke/cmd/smokeapp) against an embedded broker started here,
// in the manner of Kafka Streams' StreamsSmokeTest: they produce a
// closed-form input in phases, kill instances with SIGKILL while they
// process, restart them (once on an empty state directory), or restart the
// broker, then stop every instance with SIGTERM and check every output
// topic with smoke.Check, whose doc comment lists the invariants. They also
// check that the group's committed offsets reach the end of the input and
// of the repartition topic, that every instance stops cleanly, and under
// exactly-once that no transaction is left open.
//
// Environment:
//
//	KAPPA_SMOKE_SEED=n        seed of the kill schedule (default 1), logged by every run
//	KAPPA_SMOKE_LOGS=dir      keep the instances' logs in dir (default: printed on failure only)

// smokeApp is the application ID of the smoke runs.
const smokeApp = "smoke"

// TestSmokeAtLeastOnceCrashes produces four phases of input while three
// instances run. During each of the first three phases, at a random point
// of its production (which instances process as it arrives), it SIGKILLs
// instances chosen at random and starts them again: one in the first
// phase; one on an empty state directory in the second, so that it
// restores its stores from their changelogs; two at once in the third.
// Under at-least-once nothing may be lost and duplicates are allowed (see
// smoke.Check for the invariants).
func TestSmokeAtLeastOnceCrashes(t *testing.T) {
	res := smokeCrashes(t, smoke.AtLeastOnce, 11)
	if res.EchoDuplicates == 0 {
		// Not a failure: at-least-once allows duplicates, it does not
		// require them. But none at all means the kills missed the
		// processing, and the test proved less than it should.
		t.Logf("no duplicates: no kill landed between a record's processing and its commit")
	}
}

// TestSmokeExactlyOnceCrashes runs the scenario of
// TestSmokeAtLeastOnceCrashes under exactly-once, and checks what Kafka
// Streams' EosTestDriver checks, reading committed records only (see
// smoke.Check): the echo equals the input exactly, per partition and in
// order; every key's aggregate results are its running aggregate, each
// step at most once and never back; the final, windowed and repartitioned
// counts are exact; and once the instances have stopped no transaction is
// left open on any topic of the app (see smokeRun.verify).
func TestSmokeExactlyOnceCrashes(t *testing.T) {
	smokeCrashes(t, smoke.ExactlyOnce, 13)
}

// smokeCrashes runs the crash scenario of TestSmokeAtLeastOnceCrashes
// under g, its random choices from the seed and stream, and returns what
// smoke.Check found; the test has failed if it found problems.
func smokeCrashes(t *testing.T, g smoke.Guarantee, stream uint64) smoke.Result {
	bin := buildSmokeApp(t)
	b := kafkatest.Broker(t, embedded.DataDir(filepath.Join(t.TempDir(), "broker")))
	return smokeCrashesOn(t, bin, b.Addrs(), g, stream)
}

// smokeCrashesOn runs the crash scenario against the brokers at seeds.
func smokeCrashesOn(t *testing.T, bin string, seeds []string, g smoke.Guarantee, stream uint64) smoke.Result {
	seed := smokeSeed(t)
	rng := rand.New(rand.NewPCG(seed, stream))
	in := smoke.Input{Keys: 50, Values: 2000}.WithDefaults()

	kafkatest.CreateTopic(t, seeds, smoke.InputTopic, smoke.InputPartitions)
	r := newSmokeRun(t, bin, seeds, g)
	names := []string{"a", "b", "c"}
	for _, name := range names {
		r.start(name)
	}
	r.waitStable(60 * time.Second)

	cl := kafkatest.Client(t, seeds)
	const phases = 4
	for p := range phases {
		produced := producePaced(cl, in.Phase(p, phases))
		if p < phases-1 {
			victims := 1
			if p == 2 {
				victims = 2
			}
			wipe := p == 1
			// A random point of the phase: a scenario step, not a
			// synchronisation; what follows waits on conditions.
			pause := time.Duration(rng.Int64N(int64(pacedTime(in.Len()/phases) * 8 / 10)))
			time.Sleep(pause)
			lags := r.lag()
			killed := []string{}
			for _, i := range rng.Perm(len(names))[:victims] {
				r.procs[names[i]].kill(t)
				killed = append(killed, names[i])
			}
			r.lastKill = time.Now()
			t.Logf("phase %d: SIGKILLed %v %v into the phase (group at %v)", p, killed, pause.Round(time.Millisecond), lags)
			for _, name := range killed {
				if wipe {
					if err := os.RemoveAll(r.procs[name].stateDir); err != nil {
						t.Fatal(err)
					}
					t.Logf("phase %d: deleted %s's state directory", p, name)
				}
				r.start(name)
			}
		}
		if err := <-produced; err != nil {
			t.Fatalf("producing phase %d: %v", p, err)
		}
		r.waitStable(60 * time.Second)
	}
	r.waitCaughtUp(90 * time.Second)
	r.stopAll(60 * time.Second)
	return r.verify(in)
}

// The smoke tests produce their input in batches of smokeBatch records,
// one batch per smokeBatchEvery, so that instances process while the test
// kills them, as Kafka Streams' smoke test producer paces its input.
const (
	smokeBatch      = 500
	smokeBatchEvery = 50 * time.Millisecond
)

// pacedTime returns how long producePaced takes to produce n records, at
// the least.
func pacedTime(n int) time.Duration {
	return time.Duration((n+smokeBatch-1)/smokeBatch-1) * smokeBatchEvery
}

// producePaced produces recs in the background, smokeBatch records every
// smokeBatchEvery, and sends the outcome on the returned channel once
// every record is acknowledged.
func producePaced(cl *kgo.Client, recs []*kgo.Record) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		tick := time.NewTicker(smokeBatchEvery)
		defer tick.Stop()
		for len(recs) > 0 {
			n := min(smokeBatch, len(recs))
			if err := cl.ProduceSync(ctx, recs[:n]...).FirstErr(); err != nil {
				done <- err
				return
			}
			recs = recs[n:]
			if len(recs) > 0 {
				<-tick.C
			}
		}
		done <- nil
	}()
	return done
}

// TestSmokeBrokerRestart restarts the broker (same address, same data
// directory) twice while three instances process: once at once, at a
// random point after the first commit, and once after an outage longer
// than the session timeout, so that the restarted broker has expired every
// member of the group and their next commits are fenced. The instances
// must keep running through both, rejoining the group as Kafka Streams
// instances do, and in the end the group must have lost nothing. An
// instance that exits anyway is reported as a failure and started again,
// so that the run still shows whether anything was lost.
//
// Before the fix of issue 11 (a fenced commit closes the tasks and
// rejoins), every instance exited after the long outage with "processor:
// commit offsets: ... ILLEGAL_GENERATION".
func TestSmokeBrokerRestart(t *testing.T) {
	smokeBrokerRestart(t, smoke.AtLeastOnce, 12, false)
}

// TestSmokeBrokerRestartExactlyOnce runs the scenario of
// TestSmokeBrokerRestart under exactly-once: the transactions open when
// the broker goes away fail or are fenced, and the instances must go on
// from their committed state, with the exactly-once invariants of
// smoke.Check holding in the end.
//
// An instance whose tasks were lost while the broker was down used to
// exit here: reopening the tasks it kept read the committed offsets,
// which failed during the outage, and that was fatal. They now wait to be
// reopened until the offsets can be read.
func TestSmokeBrokerRestartExactlyOnce(t *testing.T) {
	smokeBrokerRestart(t, smoke.ExactlyOnce, 14, false)
}

// TestSmokeBrokerKilled runs the scenario of TestSmokeBrokerRestart with
// a crash: the broker is a `kappa broker` process, SIGKILLed instead of
// closed.
//
// Under at-least-once this failed in about half the runs. Stale writes of
// an instance that processed after the outage before it heard it had been
// dropped from the group (results that went back) are fixed: the runtime
// confirms its membership first. A loss remains, more often under load:
// every key of one task ends the same amount short, with its offsets
// committed (issue 18, left open). It runs with KAPPA_SMOKE_KNOWN_LOSS=1
// until that is fixed (.ci/run runs it and reports the outcome without
// failing); KAPPA_SMOKE_FULL_LOGS=1 prints the instances' whole logs.
func TestSmokeBrokerKilled(t *testing.T) {
	if os.Getenv("KAPPA_SMOKE_KNOWN_LOSS") == "" {
		t.Skip("known loss under at-least-once after a broker SIGKILL, not fixed yet (issue 18): set KAPPA_SMOKE_KNOWN_LOSS=1 to run it")
	}
	smokeBrokerRestart(t, smoke.AtLeastOnce, 15, true)
}

// TestSmokeBrokerKilledExactlyOnce is TestSmokeBrokerKilled under
// exactly-once. The transactions open when the broker dies are aborted
// by the broker when it starts again, which must write their ABORT
// markers: without them, read_committed consumers skip the later,
// committed transactions of the same producers, and committed output
// records were invisible (31,500 echo records in one run here).
//
// With the markers it passes in most runs, but not all: a kill that lands
// while the broker writes a transaction's COMMIT markers leaves some of
// its partitions committed and the others aborted on restart (the
// embedded broker keeps no transaction log to finish the commit from, as
// Kafka's coordinator does), and a count then goes past the truth (1 run
// in 10 here). It runs with KAPPA_SMOKE_BROKER_KILL=1 (.ci/run runs it and
// reports the outcome without failing).
func TestSmokeBrokerKilledExactlyOnce(t *testing.T) {
	if os.Getenv("KAPPA_SMOKE_BROKER_KILL") == "" && os.Getenv("KAPPA_SMOKE_KNOWN_LOSS") == "" {
		t.Skip("a SIGKILL during a transaction's commit markers can half-commit it on the embedded broker: set KAPPA_SMOKE_BROKER_KILL=1 to run it")
	}
	smokeBrokerRestart(t, smoke.ExactlyOnce, 16, true)
}

// smokeBrokerRestart runs the scenario of TestSmokeBrokerRestart under g,
// its random choices from the seed and stream. With kill the broker is a
// process that is SIGKILLed; otherwise it runs in the test and is closed.
func smokeBrokerRestart(t *testing.T, g smoke.Guarantee, stream uint64, kill bool) {
	bin := buildSmokeApp(t)
	dataDir := filepath.Join(t.TempDir(), "broker")
	var seeds []string
	var stopBroker, startBroker func()
	if kill {
		p := kafkatest.StartBrokerProcess(t, dataDir)
		seeds = p.Addrs()
		stopBroker, startBroker = p.Kill, p.Start
	} else {
		b, err := embedded.New(embedded.DataDir(dataDir))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		seeds = b.Addrs()
		stopBroker = func() { b.Close() }
		startBroker = func() {
			deadline := time.Now().Add(30 * time.Second)
			for {
				nb, err := embedded.New(embedded.Listen(seeds[0]), embedded.DataDir(dataDir))
				if err == nil {
					b = nb
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("the broker did not start again on %s: %v", seeds[0], err)
				}
				time.Sleep(50 * time.Millisecond) // the port may not be free yet: retry
			}
		}
	}
	smokeRestarts(t, bin, smokeBroker{seeds: seeds, down: stopBroker, up: startBroker, what: "broker"}, g, stream)
}

// smokeBroker is what a restart scenario takes down and brings back: the
// embedded broker, or one node of a cluster.
type smokeBroker struct {
	seeds []string
	// down stops the broker (or node); up starts it again on the same
	// address and data.
	down, up func()
	// what names it in the test's log.
	what string
}

// smokeRestarts runs the scenario of TestSmokeBrokerRestart against b
// under g, its random choices from the seed and stream.
func smokeRestarts(t *testing.T, bin string, b smokeBroker, g smoke.Guarantee, stream uint64) {
	seed := smokeSeed(t)
	rng := rand.New(rand.NewPCG(seed, stream))
	in := smoke.Input{Keys: 50, Values: 1500}.WithDefaults()
	seeds := b.seeds
	kafkatest.CreateTopic(t, seeds, smoke.InputTopic, smoke.InputPartitions)
	r := newSmokeRun(t, bin, seeds, g)
	r.restartExited = true
	for _, name := range []string{"a", "b", "c"} {
		r.start(name)
	}
	r.waitStable(60 * time.Second)

	// restart stops the broker, keeps it down for outage (a scenario
	// step), and starts it again on the same address and data directory.
	restart := func(outage time.Duration) {
		t.Helper()
		lags := r.lag()
		b.down()
		time.Sleep(outage)
		b.up()
		r.lastKill = time.Now()
		t.Logf("%s restarted after %v down (group before: %v)", b.what, outage, lags)
	}

	cl := kafkatest.Client(t, seeds)
	const phases = 3
	for p := range phases {
		produced := producePaced(cl, in.Phase(p, phases))
		switch p {
		case 0:
			r.waitFor(30*time.Second, "a first commit of the input", func() (bool, string) {
				lags, err := smoke.GroupLag(context.Background(), r.cl, smokeApp, g)
				if err != nil {
					return false, err.Error()
				}
				return lags[0].Committed > 0, fmt.Sprint(lags)
			})
			time.Sleep(time.Duration(rng.Int64N(int64(pacedTime(in.Len()/phases) / 2)))) // a random point of the phase
			restart(0)
		case 1:
			time.Sleep(time.Duration(rng.Int64N(int64(pacedTime(in.Len()/phases) / 2))))
			restart(smokeSessionTimeout + time.Second)
		}
		if err := <-produced; err != nil {
			t.Fatalf("producing phase %d: %v", p, err)
		}
		r.waitStable(60 * time.Second)
	}
	r.waitCaughtUp(90 * time.Second)
	r.stopAll(60 * time.Second)
	r.verify(in)
	if len(r.exits) > 0 {
		t.Errorf("instances exited on their own around the broker restarts and had to be started again: %v", r.exits)
	}
}

// embeddedBroker starts an embedded broker with a data directory for the
// test and returns its address.
func embeddedBroker(t *testing.T) []string {
	return kafkatest.Broker(t, embedded.DataDir(filepath.Join(t.TempDir(), "broker"))).Addrs()
}

// smokeSessionTimeout is the instances' session timeout: the embedded
// broker's minimum, so that a killed instance's tasks move on soon.
const smokeSessionTimeout = 6 * time.Second

// buildSmokeApp builds the smokeapp program into a temporary directory and
// returns its path; it skips the test under -short.
func buildSmokeApp(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("smoke test: builds the smokeapp program and runs three of its processes for 20-30s; run without -short")
	}
	bin := filepath.Join(t.TempDir(), "smokeapp")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/kappa-streams/kappa/internal/smoke/cmd/smokeapp")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build smokeapp: %v\n%s", err, out)
	}
	t.Logf("built smokeapp in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// smokeSeed returns the seed of the run's random choices: KAPPA_SMOKE_SEED
// or 1.
func smokeSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(1)
	if s := os.Getenv("KAPPA_SMOKE_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KAPPA_SMOKE_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Logf("seed %d (set KAPPA_SMOKE_SEED to change it)", seed)
	return seed
}

// smokeRun drives the app instances of one smoke test.
type smokeRun struct {
	t         *testing.T
	bin       string
	seeds     []string
	guarantee smoke.Guarantee
	dir       string // state directories
	logDir    string
	cl        *kgo.Client
	adm       *kadm.Client
	procs     map[string]*smokeProc
	// lastKill is when the test last SIGKILLed instances, restarted the
	// broker, or found an instance exited: under exactly-once, the
	// transactions left open then are aborted by the broker within
	// smokeTxnTimeout of it.
	lastKill time.Time
	started  int // processes started, to number their logs
	// restartExited makes the waits restart an instance that exited on
	// its own, noting it in exits, instead of failing the test.
	restartExited bool
	exits         []string
	// standbys is the instances' StandbyReplicas.
	standbys int
	// session is the instances' session timeout, smokeSessionTimeout
	// unless set; static makes them static members.
	session time.Duration
	static  bool
}

// newSmokeRun prepares a run against seeds under g; instances that are
// still running when the test ends are killed.
func newSmokeRun(t *testing.T, bin string, seeds []string, g smoke.Guarantee) *smokeRun {
	cl := kafkatest.Client(t, seeds)
	r := &smokeRun{t: t, bin: bin, seeds: seeds, guarantee: g, dir: t.TempDir(), logDir: t.TempDir(),
		cl: cl, adm: kadm.NewClient(cl), procs: make(map[string]*smokeProc)}
	t.Logf("guarantee %s", g)
	if d := os.Getenv("KAPPA_SMOKE_LOGS"); d != "" {
		r.logDir = filepath.Join(d, fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()))
		if err := os.MkdirAll(r.logDir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("instance logs in %s", r.logDir)
	}
	t.Cleanup(func() {
		for _, p := range r.procs {
			if !p.exited() {
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			r.dumpLogs()
		}
	})
	return r
}

// smokeProc is one smokeapp process.
type smokeProc struct {
	name, stateDir, logPath string
	cmd                     *exec.Cmd
	done                    chan struct{} // closed when the process has exited
	err                     error         // Wait's result, once done

	mu     sync.Mutex
	status smoke.Status // the last status line printed
}

// start starts instance name, with the state directory the instance has
// had since the run began.
func (r *smokeRun) start(name string) {
	t := r.t
	t.Helper()
	r.started++
	p := &smokeProc{
		name:     name,
		stateDir: filepath.Join(r.dir, name),
		logPath:  filepath.Join(r.logDir, fmt.Sprintf("%02d-%s.log", r.started, name)),
		done:     make(chan struct{}),
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	session := r.session
	if session == 0 {
		session = smokeSessionTimeout
	}
	p.cmd = exec.Command(r.bin, "-brokers", strings.Join(r.seeds, ","), "-app-id", smokeApp,
		"-state-dir", p.stateDir, "-commit-interval", "100ms", "-session-timeout", session.String(), "-instance", name,
		"-guarantee", string(r.guarantee), "-standby-replicas", strconv.Itoa(r.standbys), "-static="+strconv.FormatBool(r.static))
	p.cmd.Stderr = logf
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		defer logf.Close()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if s, ok := smoke.ParseStatus(line); ok {
				p.mu.Lock()
				p.status = s
				p.mu.Unlock()
			}
		}
		p.err = p.cmd.Wait()
	}()
	r.procs[name] = p
}

// exited reports whether the process has exited.
func (p *smokeProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to die.
func (p *smokeProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !p.exited() {
		t.Fatalf("SIGKILL %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still runs 10s after SIGKILL", p.name)
	}
}

// stopAll sends SIGTERM to every instance at once and waits until they
// exit, each with status 0: a graceful stop commits and leaves the group.
func (r *smokeRun) stopAll(within time.Duration) {
	t := r.t
	t.Helper()
	start := time.Now()
	for _, p := range r.procs {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM %s: %v", p.name, err)
		}
	}
	deadline := time.After(within)
	for _, name := range slices.Sorted(maps.Keys(r.procs)) {
		p := r.procs[name]
		select {
		case <-p.done:
			if p.err != nil {
				t.Errorf("instance %s did not stop cleanly on SIGTERM: %v", name, p.err)
			}
		case <-deadline:
			t.Fatalf("instance %s still runs %v after SIGTERM", name, within)
		}
	}
	t.Logf("all instances stopped in %v", time.Since(start).Round(time.Millisecond))
}

// waitFor polls cond until it holds, failing the test with what and cond's
// last detail after within. Instances that exit on their own fail the test
// at once (or are restarted, with restartExited).
func (r *smokeRun) waitFor(within time.Duration, what string, cond func() (bool, string)) {
	t := r.t
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		r.checkExits()
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", within, what, detail)
		}
		<-tick.C
	}
}

// checkExits handles instances that exited although the test did not stop
// them.
func (r *smokeRun) checkExits() {
	t := r.t
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(r.procs)) {
		p := r.procs[name]
		if !p.exited() {
			continue
		}
		tail := lastLines(p.logPath, 5)
		if !r.restartExited {
			t.Fatalf("instance %s exited on its own: %v; its log ends with:\n%s", name, p.err, tail)
		}
		r.exits = append(r.exits, fmt.Sprintf("%s (%v)", name, p.err))
		r.lastKill = time.Now()
		t.Logf("instance %s exited on its own (%v), starting it again; its log ends with:\n%s", name, p.err, tail)
		r.start(name)
	}
}

// waitStable waits until every instance reports ready tasks and together
// they run each of the app's tasks exactly once.
func (r *smokeRun) waitStable(within time.Duration) {
	r.t.Helper()
	start := time.Now()
	r.waitFor(within, "every task to run, ready, on exactly one instance", func() (bool, string) {
		owner := map[string]string{}
		var detail []string
		ok := true
		for _, name := range slices.Sorted(maps.Keys(r.procs)) {
			p := r.procs[name]
			p.mu.Lock()
			s := p.status
			p.mu.Unlock()
			detail = append(detail, fmt.Sprintf("%s: ready=%t tasks=%v", name, s.Ready, s.Tasks))
			if !s.Ready {
				ok = false
			}
			for _, id := range s.Tasks {
				if _, dup := owner[id]; dup {
					ok = false
				}
				owner[id] = name
			}
		}
		return ok && len(owner) == smoke.Tasks, strings.Join(detail, "; ")
	})
	r.t.Logf("group stable after %v", time.Since(start).Round(time.Millisecond))
}

// lag returns the group's lag, for logs.
func (r *smokeRun) lag() []smoke.Lag {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lags, err := smoke.GroupLag(ctx, r.cl, smokeApp, r.guarantee)
	if err != nil {
		r.t.Logf("group lag: %v", err)
	}
	return lags
}

// waitCaughtUp waits until the group's committed offsets reach the ends of
// the input and repartition topics.
func (r *smokeRun) waitCaughtUp(within time.Duration) {
	r.t.Helper()
	start := time.Now()
	r.waitFor(within, "the group's commits to reach the end of its inputs", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lags, err := smoke.GroupLag(ctx, r.cl, smokeApp, r.guarantee)
		if err != nil {
			return false, err.Error()
		}
		return smoke.CaughtUp(lags), fmt.Sprint(lags)
	})
	r.t.Logf("group caught up after %v: %v", time.Since(start).Round(time.Millisecond), r.lag())
}

// smokeTxnTimeout is the transaction timeout of the instances under
// exactly-once (runner.New: the larger of 10s and two commit
// intervals): the broker aborts a transaction a killed instance left open
// within this time of its start.
const smokeTxnTimeout = 10 * time.Second

// verify checks, under exactly-once, that no transaction is left open;
// then that the committed offsets still cover every input; then reads
// every output topic (committed records only, under exactly-once) and
// checks it against the truth of in.
func (r *smokeRun) verify(in smoke.Input) smoke.Result {
	t := r.t
	t.Helper()
	if r.guarantee == smoke.ExactlyOnce {
		r.checkNoOpenTransactions()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lags, err := smoke.GroupLag(ctx, r.cl, smokeApp, r.guarantee)
	if err != nil {
		t.Fatal(err)
	}
	if !smoke.CaughtUp(lags) {
		t.Errorf("after the instances stopped, the group's commits are %v: not at the ends", lags)
	}
	if lags[0].End != int64(in.Len()) {
		t.Errorf("input topic holds %d records, want the %d produced: the truth does not hold", lags[0].End, in.Len())
	}
	start := time.Now()
	out, err := smoke.Read(ctx, r.seeds, smokeApp, r.guarantee)
	if err != nil {
		t.Fatal(err)
	}
	res := smoke.Check(in, r.guarantee, out)
	t.Logf("checked %d input records against the outputs in %v: %s", in.Len(), time.Since(start).Round(time.Millisecond), res)
	if err := res.Err(); err != nil {
		t.Error(err)
	}
	return res
}

// checkNoOpenTransactions checks that the last stable offset equals the
// end offset on every partition of every topic of the app, once the
// instances have stopped: a graceful stop ends its transaction, and the
// broker aborts those of killed instances within smokeTxnTimeout of the
// last kill, which it waits for if need be. A transaction still open then
// was left by an instance that stopped or still ran: it is reported.
func (r *smokeRun) checkNoOpenTransactions() {
	t := r.t
	t.Helper()
	start := time.Now()
	deadline := r.lastKill.Add(smokeTxnTimeout + 2*time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var first []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		open, err := smoke.OpenTransactions(ctx, r.adm, smokeApp)
		cancel()
		if err != nil {
			t.Fatalf("open transactions: %v", err)
		}
		if first == nil {
			first = open
		}
		if len(open) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("transactions left open %v after the instances stopped, %v after the last SIGKILL (the broker aborts a killed instance's within %v): %v",
				time.Since(start).Round(time.Millisecond), time.Since(r.lastKill).Round(time.Millisecond), smokeTxnTimeout, open)
			return
		}
		<-tick.C
	}
	if len(first) == 0 {
		t.Logf("no transaction open once the instances stopped")
	} else {
		t.Logf("transactions of killed instances open on %d partitions once the instances stopped, aborted by the broker %v later (%v after the last SIGKILL), such as %v",
			len(first), time.Since(start).Round(time.Millisecond), time.Since(r.lastKill).Round(time.Millisecond), first[:min(3, len(first))])
	}
}

// dumpLogs prints the end of every instance's log: the last 40 lines, or
// all of them with KAPPA_SMOKE_FULL_LOGS=1.
func (r *smokeRun) dumpLogs() {
	n := 40
	if os.Getenv("KAPPA_SMOKE_FULL_LOGS") != "" {
		n = 1 << 30
	}
	entries, err := os.ReadDir(r.logDir)
	if err != nil {
		r.t.Log(err)
		return
	}
	for _, e := range entries {
		r.t.Logf("--- %s (last lines):\n%s", e.Name(), lastLines(filepath.Join(r.logDir, e.Name()), n))
	}
}

// lastLines returns the last n lines of the file at path, each cut to 500
// bytes.
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = lines[max(0, len(lines)-n):]
	for i, l := range lines {
		if len(l) > 500 {
			lines[i] = l[:500] + "…"
		}
	}
	return strings.Join(lines, "\n")
}

// TestSmokeCrashDuringRebalance SIGKILLs an instance while the group is
// rebalancing (another instance has just been restarted and is joining)
// under at-least-once, and bounds what is processed twice: a crash
// reprocesses the records of its tasks since their last commit. While the
// group joins and syncs, franz-go holds commits back and the commit blocks
// the instance's loop, so no member processes much past its last commit;
// the victim's tasks are reprocessed from their last commit, at most a few
// commit intervals of input, however long the rebalance lasts.
func TestSmokeCrashDuringRebalance(t *testing.T) { smokeCrashDuringRebalance(t, embeddedBroker) }

// smokeCrashDuringRebalance runs the scenario of TestSmokeCrashDuringRebalance against brokers(t).
func smokeCrashDuringRebalance(t *testing.T, brokers func(*testing.T) []string) {
	bin := buildSmokeApp(t)
	in := smoke.Input{Keys: 50, Values: 2000}.WithDefaults()
	seeds := brokers(t)
	kafkatest.CreateTopic(t, seeds, smoke.InputTopic, smoke.InputPartitions)
	r := newSmokeRun(t, bin, seeds, smoke.AtLeastOnce)
	produced := r.startAndFeed(in, "a", "b", "c")
	// A leaves and comes back: the group rebalances when it joins again.
	r.procs["a"].kill(t)
	r.start("a")
	r.waitFor(30*time.Second, "a rebalance", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		groups, err := r.adm.DescribeGroups(ctx, smokeApp)
		if err != nil {
			return false, err.Error()
		}
		st := groups[smokeApp].State
		return st == "PreparingRebalance" || st == "CompletingRebalance", st
	})
	r.procs["b"].kill(t)
	r.lastKill = time.Now()
	r.start("b")
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	r.waitStable(60 * time.Second)
	r.waitCaughtUp(90 * time.Second)
	r.stopAll(60 * time.Second)
	res := r.verify(in)
	perInterval := float64(smokeBatch) * float64(100*time.Millisecond) / float64(smokeBatchEvery)
	t.Logf("echo duplicates: %d, %.1f commit intervals of input", res.EchoDuplicates, float64(res.EchoDuplicates)/perInterval)
	if max := int(8 * perInterval); res.EchoDuplicates > max {
		t.Errorf("%d echo records processed twice after two kills, more than %d (8 commit intervals of input)", res.EchoDuplicates, max)
	}
}

// TestSmokeStandbyFailover runs two instances with StandbyReplicas(1),
// each keeping a warm copy of the other's tasks, and SIGKILLs one once the
// input is counted and the copies have caught up: the survivor opens the
// killed instance's tasks without replaying their changelogs, and the
// outputs hold what at-least-once requires.
func TestSmokeStandbyFailover(t *testing.T) { smokeStandbyFailover(t, embeddedBroker) }

// smokeStandbyFailover runs the scenario of TestSmokeStandbyFailover against brokers(t).
func smokeStandbyFailover(t *testing.T, brokers func(*testing.T) []string) {
	bin := buildSmokeApp(t)
	in := smoke.Input{Keys: 50, Values: 2000}.WithDefaults()
	seeds := brokers(t)
	kafkatest.CreateTopic(t, seeds, smoke.InputTopic, smoke.InputPartitions)
	r := newSmokeRun(t, bin, seeds, smoke.AtLeastOnce)
	r.standbys = 1
	r.start("a")
	r.start("b")
	r.waitStable(60 * time.Second)
	cl := kafkatest.Client(t, seeds)
	if err := <-producePaced(cl, in.Phase(0, 1)); err != nil {
		t.Fatal(err)
	}
	r.waitCaughtUp(90 * time.Second)

	// The changelog end of each task: the offsets its standby must reach.
	ends := map[string]int64{}
	topics, err := r.adm.ListTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var changelogs []string
	for _, name := range topics.Names() {
		if strings.HasPrefix(name, smokeApp+"-") && strings.HasSuffix(name, "-changelog") {
			changelogs = append(changelogs, name)
		}
	}
	listed, err := r.adm.ListEndOffsets(context.Background(), changelogs...)
	if err != nil {
		t.Fatal(err)
	}
	subOf := map[string]int{} // changelog → sub-topology of its store
	topo, err := smoke.Topology()
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range topo.SubTopologies() {
		for _, sp := range sub.Stores {
			subOf[smokeApp+"-"+sp.Name+"-changelog"] = sub.ID
		}
	}
	listed.Each(func(o kadm.ListedOffset) {
		ends[processor.TaskID{SubTopology: subOf[o.Topic], Partition: o.Partition}.String()] += o.Offset
	})
	status := func(name string) smoke.Status {
		p := r.procs[name]
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.status
	}
	r.waitFor(60*time.Second, "each instance's standbys caught up with the other's tasks", func() (bool, string) {
		var detail []string
		ok := true
		for _, name := range []string{"a", "b"} {
			s := status(name)
			detail = append(detail, s.String())
			if len(s.Standbys) == 0 {
				ok = false
			}
			for id, applied := range s.Standbys {
				if applied != ends[id] {
					ok = false
				}
			}
		}
		return ok, strings.Join(detail, "; ")
	})
	before := status("b")
	moved := status("a").Tasks
	var total int64
	for _, id := range moved {
		total += ends[id]
	}
	r.procs["a"].kill(t)
	r.lastKill = time.Now()
	delete(r.procs, "a")
	r.waitStable(60 * time.Second)
	after := status("b")
	restored := after.Restored - before.Restored
	t.Logf("b took over a's tasks %v: restored %d changelog records of their %d", moved, restored, total)
	if restored > total/10 {
		t.Errorf("the tasks taken over restored %d of their %d changelog records: their standbys did not spare the restore", restored, total)
	}
	r.stopAll(60 * time.Second)
	r.verify(in)
}

// TestSmokePausePastTransactionTimeout stops an instance (SIGSTOP) under
// exactly-once for longer than its transaction timeout, but not its
// session timeout, and continues it: the broker has aborted its
// transaction and fenced its producer's epoch, while the group still
// counts it as a member. Its next produce or commit is refused
// (INVALID_PRODUCER_EPOCH, PRODUCER_FENCED). The instance must not exit:
// it replaces its producer and reopens its tasks from their committed
// state, and the outputs hold what exactly-once requires.
func TestSmokePausePastTransactionTimeout(t *testing.T) {
	smokePausePastTransactionTimeout(t, embeddedBroker)
}

// smokePausePastTransactionTimeout runs the scenario of TestSmokePausePastTransactionTimeout against brokers(t).
func smokePausePastTransactionTimeout(t *testing.T, brokers func(*testing.T) []string) {
	bin := buildSmokeApp(t)
	in := smoke.Input{Keys: 50, Values: 1500}.WithDefaults()
	seeds := brokers(t)
	kafkatest.CreateTopic(t, seeds, smoke.InputTopic, smoke.InputPartitions)
	r := newSmokeRun(t, bin, seeds, smoke.ExactlyOnce)
	r.session = 30 * time.Second // longer than the pause: the group keeps the paused member
	produced := r.startAndFeed(in, "a", "b")
	a := r.procs["a"]
	pause := smokeTxnTimeout + 3*time.Second
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pause) // the scenario: a pause of this length
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	r.lastKill = time.Now()
	t.Logf("instance a paused for %v", pause)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	r.waitStable(60 * time.Second)
	r.waitCaughtUp(90 * time.Second)
	r.stopAll(60 * time.Second)
	r.verify(in) // exact, and no instance exited (the waits fail the test on an exit)
	// The embedded broker aborts a transaction past its timeout only when
	// its timer fires, which it does not always do within the pause: say
	// whether this run fenced the paused instance.
	log := readFile(t, a.logPath)
	fenced := strings.Contains(log, "reopening the tasks") &&
		(strings.Contains(log, "PRODUCER_FENCED") || strings.Contains(log, "INVALID_PRODUCER_EPOCH"))
	t.Logf("the paused instance's transaction was fenced by the broker: %v", fenced)
}

// TestSmokeStaticRestartKeepsStandbys runs two static members with
// StandbyReplicas(1) and SIGKILLs one, then starts it again within the
// session timeout: the coordinator hands it its last assignment back
// without a rebalance, and it must keep its standby copies.
func TestSmokeStaticRestartKeepsStandbys(t *testing.T) {
	smokeStaticRestartKeepsStandbys(t, embeddedBroker)
}

// smokeStaticRestartKeepsStandbys runs the scenario of TestSmokeStaticRestartKeepsStandbys against brokers(t).
func smokeStaticRestartKeepsStandbys(t *testing.T, brokers func(*testing.T) []string) {
	bin := buildSmokeApp(t)
	in := smoke.Input{Keys: 50, Values: 400}.WithDefaults()
	seeds := brokers(t)
	kafkatest.CreateTopic(t, seeds, smoke.InputTopic, smoke.InputPartitions)
	r := newSmokeRun(t, bin, seeds, smoke.AtLeastOnce)
	r.session, r.static, r.standbys = 30*time.Second, true, 1
	for _, name := range []string{"a", "b"} {
		r.start(name)
	}
	r.waitStable(60 * time.Second)
	cl := kafkatest.Client(t, seeds)
	if err := <-producePaced(cl, in.Phase(0, 1)); err != nil {
		t.Fatal(err)
	}
	r.waitCaughtUp(90 * time.Second)
	standbys := func(p *smokeProc) int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.status.Standbys)
	}
	var had int
	r.waitFor(60*time.Second, "standbys on both instances", func() (bool, string) {
		had = standbys(r.procs["b"])
		return standbys(r.procs["a"]) > 0 && had > 0, fmt.Sprintf("a %d, b %d", standbys(r.procs["a"]), had)
	})
	r.procs["b"].kill(t)
	r.lastKill = time.Now()
	r.start("b")
	r.waitFor(20*time.Second, fmt.Sprintf("the restarted static member's %d standbys", had), func() (bool, string) {
		n := standbys(r.procs["b"])
		return n == had, fmt.Sprintf("%d standbys", n)
	})
	r.stopAll(60 * time.Second)
	r.verify(in)
}

// startAndFeed starts the instances names, waits until the group is
// stable, produces in's input paced in the background, and waits for a
// first commit of it. The returned channel reports the produce's outcome.
func (r *smokeRun) startAndFeed(in smoke.Input, names ...string) <-chan error {
	r.t.Helper()
	for _, name := range names {
		r.start(name)
	}
	r.waitStable(60 * time.Second)
	produced := producePaced(kafkatest.Client(r.t, r.seeds), in.Phase(0, 1))
	r.waitFor(30*time.Second, "a first commit of the input", func() (bool, string) {
		lags, err := smoke.GroupLag(context.Background(), r.cl, smokeApp, r.guarantee)
		if err != nil {
			return false, err.Error()
		}
		return lags[0].Committed > 0, fmt.Sprint(lags)
	})
	return produced
}

// readFile returns the content of path.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
