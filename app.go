package kappa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/kappa-streams/kappa/broker"
	"github.com/kappa-streams/kappa/internal/crash"
	"github.com/kappa-streams/kappa/internal/runner"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/query"
	"github.com/twmb/franz-go/pkg/kgo"
)

// App runs a topology as one instance of a consumer group. Start more
// instances with the same AppID, on this machine or others, and they share
// the tasks; stop one and the others take its tasks over.
type App struct {
	topo *processor.Topology
	cfg  config
	log  *slog.Logger

	stores *query.Stores
	// metrics are the app's metrics, set up by New (see metrics.go).
	metrics appMetrics

	mu      sync.Mutex
	rt      *runner.Runtime
	ln      net.Listener // the HTTP listener while running
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// ErrRunning is returned by Run on an App that is already running.
var ErrRunning = errors.New("kappa: app is already running")

// ErrInstanceIDInUse is wrapped by the error Run returns when another
// instance joined the group with this one's InstanceID.
var ErrInstanceIDInUse = runner.ErrInstanceIDInUse

// New checks the options and returns an App ready to Run. It does not
// connect: every configuration problem is reported here, each naming its
// option and the fix.
func New(topo *processor.Topology, opts ...Opt) (*App, error) {
	cfg := config{signals: true, warmups: DefaultMaxWarmupReplicas}
	for _, o := range opts {
		o(&cfg)
	}
	err := cfg.validate()
	if topo == nil {
		err = errors.Join(errors.New("kappa: New: nil topology: build one with stream.NewBuilder() ... b.Build()"), err)
	}
	if err != nil {
		return nil, err
	}
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &App{topo: topo, cfg: cfg, log: log.With("app", cfg.appID), stores: query.NewStores(topo)}
	if err := a.initMetrics(); err != nil {
		return nil, err
	}
	return a, nil
}

// Run connects, creates the topics the topology needs, joins the group and
// processes until ctx is done, Close is called, or (with HandleSignals) the
// process gets SIGINT or SIGTERM. A graceful stop finishes the records in
// hand, flushes outputs, commits, leaves the group and returns nil. A
// record that fails under FailFast, or a lost connection, stops it with an
// error. An output, changelog or dead-letter record that the brokers
// reject stops it at once, before the next record is processed and
// without committing, with a *processor.ProduceError naming the topic and
// the cause: the inputs behind it are reprocessed after a restart. Under
// ExactlyOnce the transaction holding it is aborted instead and the tasks
// reopen from their committed state; five such failures in a row stop it.
func (a *App) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	a.running, a.cancel, a.done = true, cancel, make(chan struct{})
	a.mu.Unlock()
	if sw := crash.From(ctx); sw != nil {
		sw.Arm(a.kill) // Kappa's own tests crash the app through it
	}
	defer func() {
		cancel()
		a.mu.Lock()
		a.running = false
		close(a.done)
		a.mu.Unlock()
	}()
	if a.cfg.signals {
		stop := a.handleSignals(cancel)
		defer stop()
	}

	// A stop while the app connects or prepares its topics is a stop, not
	// a failure.
	conn, err := broker.Connect(ctx, a.cfg.seeds, append(slices.Clone(a.cfg.connOpts), broker.ClientID(a.cfg.appID))...)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer conn.Close()
	plan, err := a.prepare(ctx, conn.Admin())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	endpoint, err := a.listen()
	if err != nil {
		return err
	}
	stopHTTP, err := a.serve(ctx)
	if err != nil {
		return err
	}
	defer stopHTTP()
	rt, err := runner.New(runner.Config{
		Topology:          a.topo,
		Plan:              plan,
		ClientOpts:        append(conn.ClientOpts(), clientLogger(a.cfg.logger)...),
		CommitInterval:    a.cfg.commitInterval,
		OnError:           a.cfg.onError,
		Logger:            a.log,
		Workers:           a.cfg.workers,
		MaxPollRecords:    a.cfg.maxPoll,
		SessionTimeout:    a.cfg.sessionTimeout,
		RebalanceTimeout:  a.cfg.rebalanceTimeout,
		Guarantee:         a.cfg.guarantee,
		OnBalance:         a.cfg.onBalance,
		StateDir:          a.cfg.stateDir,
		CacheBytes:        a.cfg.cacheBytes,
		MaxTaskIdle:       a.cfg.maxTaskIdle,
		Endpoint:          endpoint,
		InstanceID:        a.cfg.instanceID,
		StandbyReplicas:   a.cfg.standbys,
		MaxWarmupReplicas: a.cfg.warmups,
		Metrics:           a.metrics.runner,
		UserClientOpts:    a.cfg.clientOpts,
	})
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.rt = rt
	a.mu.Unlock()
	a.stores.SetBackend(rt)
	defer a.stores.SetBackend(nil)
	a.log.Info("running", "tasks", plan.Tasks, "brokers", a.cfg.seeds)
	err = rt.Run(ctx)
	a.log.Info("stopped", "error", err)
	return err
}

// prepare sizes the topology against the cluster and creates the internal
// and missing output topics.
func (a *App) prepare(ctx context.Context, adm *broker.Admin) (*processor.Plan, error) {
	existing, err := adm.List(ctx)
	if err != nil {
		return nil, err
	}
	var known []string
	for _, ref := range a.topo.ExternalSources() {
		if slices.Contains(existing, ref.Name) {
			known = append(known, ref.Name)
		}
	}
	for _, t := range a.topo.StaticOutputs() {
		if slices.Contains(existing, t) && !slices.Contains(known, t) {
			known = append(known, t)
		}
	}
	counts, err := adm.PartitionCounts(ctx, known...)
	if err != nil {
		return nil, err
	}
	plan, err := a.topo.Plan(a.cfg.appID, counts)
	if err != nil {
		return nil, fmt.Errorf("kappa: %w", err)
	}
	rf, minISR, err := a.replication(ctx, adm)
	if err != nil {
		return nil, err
	}
	withISR := func(configs map[string]string) map[string]string {
		if minISR <= 1 {
			return configs
		}
		out := maps.Clone(configs)
		if out == nil {
			out = make(map[string]string, 1)
		}
		if _, ok := out["min.insync.replicas"]; !ok {
			out["min.insync.replicas"] = strconv.Itoa(minISR)
		}
		return out
	}
	var specs []broker.TopicSpec
	for _, it := range plan.Internal {
		specs = append(specs, broker.TopicSpec{Name: it.Ref.Name, Partitions: it.Partitions, Configs: withISR(it.Configs), Replicas: int16(rf)})
	}
	for name, n := range plan.Outputs {
		specs = append(specs, broker.TopicSpec{Name: name, Partitions: n, Configs: withISR(nil), Replicas: int16(rf)})
	}
	slices.SortFunc(specs, func(x, y broker.TopicSpec) int { return strings.Compare(x.Name, y.Name) })
	if err := adm.EnsureTopics(ctx, specs...); err != nil {
		return nil, fmt.Errorf("kappa: topics of app %q: %w", a.cfg.appID, err)
	}
	return plan, nil
}

// replication returns the replication factor and min.insync.replicas of
// the topics the app creates: those set, or 3 (fewer on a smaller
// cluster) and one less.
func (a *App) replication(ctx context.Context, adm *broker.Admin) (rf, minISR int, err error) {
	brokers, err := adm.BrokerCount(ctx)
	if err != nil {
		return 0, 0, err
	}
	rf = min(3, max(1, brokers))
	if a.cfg.replicas != nil {
		rf = *a.cfg.replicas
		if rf > brokers {
			return 0, 0, fmt.Errorf("kappa: ReplicationFactor(%d): the cluster has %d broker(s); set it to at most %d", rf, brokers, brokers)
		}
	}
	minISR = max(1, rf-1)
	if a.cfg.minISR != nil {
		minISR = *a.cfg.minISR
		if minISR > rf {
			return 0, 0, fmt.Errorf("kappa: MinInsyncReplicas(%d): above the replication factor %d; set it to at most %d, usually %d", minISR, rf, rf, max(1, rf-1))
		}
	}
	return rf, minISR, nil
}

func (a *App) handleSignals(cancel context.CancelFunc) (stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	quit := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			a.log.Info("signal: stopping gracefully; send it again to exit at once", "signal", sig.String())
			cancel()
		case <-quit:
			return
		}
		select {
		case <-ch:
			a.log.Warn("second signal: exiting without commit")
			os.Exit(1)
		case <-quit:
		}
	}()
	return func() { signal.Stop(ch); close(quit) }
}

// Close stops a running App gracefully and waits for Run to return, at most
// until ctx is done. It is a no-op on an App that is not running.
func (a *App) Close(ctx context.Context) error {
	a.mu.Lock()
	if !a.running {
		a.mu.Unlock()
		return nil
	}
	cancel, done := a.cancel, a.done
	a.mu.Unlock()
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kappa: Close: %w", ctx.Err())
	}
}

// Tasks returns the tasks this instance runs now; nil before it has joined.
func (a *App) Tasks() []processor.TaskID {
	if rt := a.runtime(); rt != nil {
		return rt.Tasks()
	}
	return nil
}

// Processed returns how many input records this instance has processed.
func (a *App) Processed() int64 {
	if rt := a.runtime(); rt != nil {
		return rt.Processed()
	}
	return 0
}

// TaskStatus returns a snapshot of this instance's tasks: whether each is
// ready or still restoring its stores, its restore progress and its record
// counts, among them Mispartitioned, the records of joined inputs that a
// producer put in another partition than Kappa's partitioner would (see
// docs/joins.md). Standby tasks (StandbyReplicas) follow the active
// ones, in state processor.TaskStandby, with RestoreTarget − Restored the
// changelog records they are behind. It is nil before the instance has
// joined.
func (a *App) TaskStatus() []processor.TaskStatus {
	if rt := a.runtime(); rt != nil {
		return rt.TaskStatus()
	}
	return nil
}

// Commits returns how many offset commits this instance has completed.
func (a *App) Commits() int64 {
	if rt := a.runtime(); rt != nil {
		return rt.Commits()
	}
	return 0
}

// kill stops Run without a final commit, as a crash would. Tests use it
// through export_test.go.
func (a *App) kill() {
	if rt := a.runtime(); rt != nil {
		rt.Abort()
	}
	a.mu.Lock()
	cancel := a.cancel
	a.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (a *App) runtime() *runner.Runtime {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rt
}

// Topology returns the topology the App runs.
func (a *App) Topology() *processor.Topology { return a.topo }

func clientLogger(l *slog.Logger) []kgo.Opt {
	if l == nil {
		return nil
	}
	return []kgo.Opt{kgo.WithLogger(broker.NewKgoLogger(l))}
}
