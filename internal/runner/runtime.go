package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa/internal/statedir"
	"github.com/kappa-streams/kappa/internal/tasklife"
	"github.com/kappa-streams/kappa/processor"

	"github.com/kappa-streams/kappa/state"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Runtime runs a topology as one member of a consumer group: it polls the
// inputs, hands each partition's records to its task, and commits through
// its committer (at-least-once or exactly-once, see committer.go) on the
// commit interval, when tasks are revoked, and on shutdown.
//
// A record the brokers reject stops the tasks at once, as Kafka Streams'
// RecordCollector does at its next send: no task processes another record
// and no later Send produces. Under at-least-once the runtime then stops
// without committing anything more; under exactly-once the transaction is
// aborted and the tasks reopen from their committed state. Any other
// fatal error halts the runtime the same way: nothing is committed after
// it.
type Runtime struct {
	cfg  Config
	log  *slog.Logger
	cl   *kgo.Client
	env  *processor.TaskEnv
	subs map[string]int // resolved input topic → sub-topology

	restoring sync.WaitGroup
	// changelogs reads changelog partitions for restores and the global
	// tables' topics, with one client.
	changelogs *changelogReader
	// globals are the global tables, tailed by changelogs;
	// stopGlobals is closed when the runtime stops, to end their
	// retries.
	globals     []processor.GlobalSpec
	stopGlobals chan struct{}

	// built is closed when New has finished: the group callbacks
	// wait for it.
	built chan struct{}
	// standbys owns the standby tasks.
	standbys *standbyManager
	// fencedBy is the error of the last fenced commit, under mu.
	fencedBy error
	// hosts holds the query endpoint of every task's owner, from the
	// latest assignment.
	hosts        atomic.Pointer[map[processor.TaskID]string]
	standbyHosts atomic.Pointer[map[processor.TaskID][]string]
	// txnID is the transactional ID under exactly-once, "" otherwise.
	txnID string
	// instance holds the instance's slot of the state directory, whose
	// ID is in txnID; nil under at-least-once.
	instance *statedir.Instance
	// col is the record collector: the producer every task sends through.
	col *collector
	// committer commits by the guarantee: atLeastOnce or exactlyOnce.
	committer committer
	// txnFailures counts the transactions in a row that failed to commit.
	txnFailures int
	mu          sync.Mutex // held while processing a poll, committing, or rebalancing
	// tasks owns the active tasks, under mu.
	tasks *taskManager
	// dirty is set when records were processed or wall-clock punctuators
	// fired since the last commit: stores may hold changes to flush.
	dirty bool
	// fatal is the first error that stops the run loop, under mu;
	// fatalCtx is canceled with it, to wake a poll in progress.
	fatalCtx context.Context
	fatalNow context.CancelFunc
	fatal    error
	// keyParts holds the partition counts of the external inputs that
	// belong to a co-partition group (the inputs of joins): their records
	// are checked against KeyPartition.
	keyParts map[string]int32
	// warned holds the topics whose mispartitioned records were logged.
	warned sync.Map

	commits   atomic.Int64
	processed atomic.Int64
	// unconfirmed is set, by the poll loop only, once fetches fail, until
	// a heartbeat confirms that the instance is still a member of its
	// generation (member).
	unconfirmed bool
	// noCommit is set once nothing more may be committed: the instance
	// stops after a fatal error (halt), or Abort simulates a crash.
	noCommit atomic.Bool

	repartitions []string  // repartition topics read, purged after commits
	lastPurge    time.Time // when they were last purged
}

// New checks cfg and builds the Kafka client. Run starts consuming.
func New(cfg Config) (*Runtime, error) {
	if cfg.Topology == nil || cfg.Plan == nil {
		return nil, errors.New("processor: Config needs Topology and Plan")
	}
	cfg.ensureDefaults()
	appID := cfg.Plan.AppID
	r := &Runtime{
		cfg:      cfg,
		log:      cfg.Logger,
		subs:     make(map[string]int),
		keyParts: coPartitionedInputs(cfg.Topology, cfg.Plan),
	}
	r.tasks = newTaskManager(cfg.Logger, r.subs, cfg.Metrics.detach)
	// The group may ask for the standbys' positions, or hand this member
	// standbys, as soon as the client exists, before New returns: the
	// manager exists first; what its standbys open with is set below,
	// before the group callbacks may start any (built).
	r.standbys = newStandbyManager(cfg.Logger, func() { r.cl.ForceRebalance() }, cfg.Metrics.standbyTasks)
	r.fatalCtx, r.fatalNow = context.WithCancel(context.Background())
	r.stopGlobals = make(chan struct{})
	var topics []string
	for ref, sub := range cfg.Topology.Sources() {
		name := ref.Resolve(appID)
		r.subs[name] = sub
		topics = append(topics, name)
		if ref.Internal {
			r.repartitions = append(r.repartitions, name)
		}
	}
	slices.Sort(topics)
	bal := NewTaskBalancer(cfg.Topology, appID)
	bal.OnBalance = cfg.OnBalance
	bal.Endpoint = cfg.Endpoint
	bal.OnHosts = r.setHosts
	if cfg.StandbyReplicas > 0 || cfg.MaxWarmupReplicas > 0 {
		bal.Replicas = cfg.StandbyReplicas
		bal.Warmups = cfg.MaxWarmupReplicas
		// A member's process ID names it in the assignment's lists of
		// standbys. A static member's is its instance ID, the same after
		// a restart, so that an assignment handed back to it without a
		// rebalance still names its standbys.
		bal.Process = processID()
		if cfg.InstanceID != "" {
			bal.Process = "static:" + cfg.InstanceID
		}
		bal.StandbyPositions = func() map[processor.TaskID]int64 { return r.standbys.positions() }
		bal.ChangelogEnds = r.changelogEnds
		bal.OnStandbys = func(ids, warmups []processor.TaskID) { r.standbys.set(ids, warmups) }
	}
	if cfg.InstanceID != "" {
		dir := filepath.Join(cfg.StateDir, appID)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("processor: state directory %s: %w (set a writable one with kappa.StateDir)", dir, err)
		}
		bal.MetaFile = filepath.Join(dir, ".static-"+cfg.InstanceID+".meta")
		bal.metaLog = cfg.Logger.Warn
	}
	opts := append(append(slices.Clone(cfg.ClientOpts), cfg.UserClientOpts...),
		kgo.ConsumerGroup(appID),
		kgo.ConsumeTopics(topics...),
		kgo.Balancers(bal),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(r.onAssigned),
		kgo.OnPartitionsRevoked(r.onRevoked),
		kgo.OnPartitionsLost(r.onLost),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	var prodOpts []kgo.Opt
	if cfg.Guarantee == processor.ExactlyOnce {
		// One transactional producer per instance, a client of its own,
		// so that it can be replaced when the brokers fence it. Zombies
		// are fenced by the group generation that every transactional
		// offset commit carries (KIP-447), as in Kafka Streams'
		// exactly_once_v2. The ID is the instance's slot of the state
		// directory: unique among live instances, and the same after a
		// crash and restart, so that the new producer aborts the
		// transaction its predecessor left open at once (readers of
		// committed data would otherwise wait for the transaction
		// timeout).
		inst, err := statedir.LockInstance(cfg.StateDir, appID)
		if err != nil {
			return nil, fmt.Errorf("processor: %w", err)
		}
		r.instance = inst
		r.txnID = appID + "-" + inst.ID
		prodOpts = append(append(slices.Clone(cfg.ClientOpts), cfg.UserClientOpts...),
			kgo.TransactionalID(r.txnID),
			kgo.TransactionTimeout(TransactionTimeout(cfg.CommitInterval)),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerBatchCompression(kgo.NoCompression()),
		)
		opts = append(opts,
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.RequireStableFetchOffsets(),
		)
	}
	// A fetch waiting for data is not always woken when the records it
	// waits for become readable (a transaction commits; the embedded
	// broker answers a fetch of several partitions at its wait), so the
	// wait bounds how late a task sees its upstream task's repartition
	// records: at most a commit interval or 500ms, never franz-go's
	// default 5s.
	opts = append(opts, kgo.FetchMaxWait(min(max(cfg.CommitInterval, 10*time.Millisecond), 500*time.Millisecond)))
	// Everything the group callbacks use is built before the client: the
	// client may join the group, and call them, before NewClient returns.
	// They wait for built, so that they also see r.cl.
	r.built = make(chan struct{})
	defer close(r.built)
	r.changelogs = newChangelogReader(cfg.ClientOpts, cfg.Logger, cfg.Guarantee == processor.ExactlyOnce)
	r.env = &processor.TaskEnv{
		AppID:      appID,
		Collector:  nil, // set with the collector below
		Partitions: r.partitions,
		OnError:    cfg.OnError,
		Logger:     cfg.Logger,
		StateDir:   cfg.StateDir,
		Cache:      state.NewCache(state.DefaultCacheBytes),

		ExactlyOnce: cfg.Guarantee == processor.ExactlyOnce,
		Metrics:     cfg.Metrics != nil,
	}
	if cfg.CacheBytes != nil {
		r.env.Cache = state.NewCache(*cfg.CacheBytes)
	}
	r.globals = cfg.Topology.Globals()
	r.env.Globals = make(map[string]*processor.GlobalStore, len(r.globals))
	for _, g := range r.globals {
		r.env.Globals[g.Name] = processor.NewGlobalStore()
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		r.instance.Close()
		return nil, fmt.Errorf("processor: kafka client: %w", err)
	}
	r.cl = cl
	deps := committerDeps{r: r}
	if prodOpts != nil {
		newProd := func() (*kgo.Client, error) { return kgo.NewClient(prodOpts...) }
		prod, err := newProd()
		if err != nil {
			cl.Close()
			r.instance.Close()
			return nil, fmt.Errorf("processor: kafka producer: %w", err)
		}
		r.col = newCollector(cfg.Logger, prod, newProd)
		deps.col = r.col
		r.committer = exactlyOnce{committerDeps: deps, txnID: r.txnID, group: appID}
	} else {
		r.col = newCollector(cfg.Logger, cl, nil)
		deps.col = r.col
		r.committer = atLeastOnce{deps}
	}
	r.env.Collector = r.col
	// Standbys process nothing: their stores do not charge the record
	// cache's budget, which is the active tasks'.
	standbyEnv := *r.env
	standbyEnv.Cache = state.NewCache(0)
	r.standbys.open = func(id processor.TaskID) (*processor.Task, error) {
		return processor.NewTask(tasklife.K, cfg.Topology, id.SubTopology, id.Partition, &standbyEnv)
	}
	r.standbys.changelogs = r.changelogs
	return r, nil
}

// TransactionTimeout is the transaction timeout of an exactly-once
// instance that commits every interval: long enough that a commit
// interval, a slow flush and a rebalance fit in one transaction, and no
// longer than brokers allow by default (transaction.max.timeout.ms, 15m).
func TransactionTimeout(interval time.Duration) time.Duration {
	return min(15*time.Minute, max(10*time.Second, 2*interval))
}

// MaxCommitIntervalExactlyOnce is the longest commit interval under
// exactly-once: a transaction spans one, and must end well within its
// timeout.
const MaxCommitIntervalExactlyOnce = 5 * time.Minute

// partitions answers from the plan, then from cluster metadata for topics
// chosen per record.
func (r *Runtime) partitions(topic string) (int32, error) {
	if n, ok := r.cfg.Plan.Partitions[topic]; ok {
		return n, nil
	}
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := r.cl.RequestCachedMetadata(context.Background(), req, time.Minute)
	if err != nil {
		return 0, fmt.Errorf("metadata of topic %q: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if t.ErrorCode == 0 && len(t.Partitions) > 0 {
			return int32(len(t.Partitions)), nil
		}
	}
	return 0, fmt.Errorf("topic %q does not exist", topic)
}

// Client returns the runtime's Kafka client.
func (r *Runtime) Client() *kgo.Client { return r.cl }

// Commits returns how many commits have completed.
func (r *Runtime) Commits() int64 { return r.commits.Load() }

// Processed returns how many input records this member has processed.
func (r *Runtime) Processed() int64 { return r.processed.Load() }

// Tasks returns the IDs of the tasks this member runs now.
func (r *Runtime) Tasks() []processor.TaskID {
	view := r.tasksView()
	ids := make([]processor.TaskID, len(view))
	for i, t := range view {
		ids[i] = t.id
	}
	return ids
}

// Abort makes Run, once its context is canceled, stop as a crashed
// process would: nothing more is flushed or committed, caches are dropped,
// and the next owner of its tasks reprocesses from the last commit. It
// exists to test failure handling; a graceful stop cancels the context
// alone.
func (r *Runtime) Abort() { r.noCommit.Store(true) }

// TaskStatus returns a snapshot of every task this member runs, in task
// order. It may be called from any goroutine, also while tasks restore.
//
// It takes no lock that processing or committing holds: the set of tasks
// is published on every change and every counter is atomic, so a status
// read never waits for a poll's processing or a commit's broker
// acknowledgements.
func (r *Runtime) TaskStatus() []processor.TaskStatus {
	view := r.tasksView()
	out := make([]processor.TaskStatus, 0, len(view))
	for _, rt := range view {
		st := processor.TaskStatus{ID: rt.id}
		if t := rt.published.Load(); t != nil {
			st = t.Status()
		}
		st.State = rt.stateOf()
		st.Ready = st.State == processor.TaskRunning
		st.Mispartitioned = rt.mispartitioned.Load()
		out = append(out, st)
	}
	return append(out, r.standbys.status()...)
}

// tasksView returns the tasks as last published, in task order.
func (r *Runtime) tasksView() []*runTask {
	return r.tasks.view()
}

func compareTaskIDs(a, b processor.TaskID) int {
	if a.SubTopology != b.SubTopology {
		return a.SubTopology - b.SubTopology
	}
	return int(a.Partition - b.Partition)
}

// Run consumes and processes until ctx is done or a fatal error occurs. On
// ctx cancellation it finishes the records in hand, commits, closes its
// tasks and leaves the group, then returns nil.
//
// After a fatal error (a record that fails under FailFast, a store that
// cannot be written, a lost output under at-least-once) nothing more is
// committed: Run returns the error, and under exactly-once the open
// transaction is aborted, so that no effect of the failing record is ever
// read as committed. A lost output under exactly-once is not fatal: the
// transaction that held it is aborted and the tasks are reopened from
// their committed state.
func (r *Runtime) Run(ctx context.Context) (err error) {
	defer func() {
		r.shutdown()
		if err == nil {
			err = r.fatal
		}
	}()
	// Global tables are read whole before any task processes a record.
	if err := r.startGlobals(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := r.committer.begin(); err != nil {
		return r.halt(err)
	}
	lastCommit := time.Now()
	for {
		// Polls end by the next commit or punctuation even without input,
		// since caches and punctuators must not wait for records.
		wake := lastCommit.Add(r.cfg.CommitInterval)
		if next := r.nextWallClock(); !next.IsZero() && next.Before(wake) {
			wake = next
		}
		if next := r.nextUnblock(); !next.IsZero() && next.Before(wake) {
			wake = next
		}
		// A produce failure ends the poll at once.
		pctx, cancel := context.WithDeadline(ctx, wake)
		unwake := context.AfterFunc(r.col.failedDone(), cancel)
		unwakeFatal := context.AfterFunc(r.fatalCtx, cancel)
		fetches := r.cl.PollRecords(pctx, r.cfg.MaxPollRecords)
		unwake()
		unwakeFatal()
		cancel()
		if fetches.IsClientClosed() {
			return r.halt(errors.New("processor: kafka client closed"))
		}
		err := r.step(ctx, fetches, &lastCommit)
		r.cl.AllowRebalance()
		if err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// step handles one poll: it processes the records, runs the punctuators
// due, reopens the tasks waiting for it and commits when the interval has
// passed. Once ctx is done it commits what was processed instead. It
// returns an error when the instance must stop. The group does not
// rebalance while it runs (BlockRebalanceOnPoll).
func (r *Runtime) step(ctx context.Context, fetches kgo.Fetches, lastCommit *time.Time) error {
	if ctx.Err() != nil {
		if r.noCommit.Load() {
			return nil
		}
		if err := r.recoverProduce(); err != nil {
			return err
		}
		return r.finalCommit()
	}
	if err := r.recoverProduce(); err != nil {
		return err
	}
	if err := r.fatalErr(); err != nil {
		return err
	}
	// Another instance with this one's InstanceID fenced it: running on
	// would fence that one in turn, forever.
	if err := r.staticConflict(fetches); err != nil {
		return r.halt(err)
	}
	// Fetch errors are retried by the client; they are worth a log line.
	cutOff := false
	fetches.EachError(func(topic string, p int32, err error) {
		// The poll's own deadline (the next commit or punctuation) ends
		// fetches too: that is not an error.
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			r.log.Warn("fetch error", "topic", topic, "partition", p, "error", err)
			cutOff = true
		}
	})
	member := r.member(ctx, cutOff)
	if err := r.process(fetches, member); err != nil {
		return r.haltLocked(err)
	}
	if err := r.recoverProduce(); err != nil {
		return err
	}
	if member {
		if err := r.punctuate(time.Now()); err != nil {
			return r.haltLocked(err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tryReopen(ctx)
	if !member || time.Since(*lastCommit) < r.cfg.CommitInterval {
		return nil
	}
	*lastCommit = time.Now()
	cctx, cancel := commitContext(ctx)
	defer cancel()
	if _, err := r.commit(cctx, nil); err != nil {
		return err
	}
	return r.recoverProduceLocked()
}

// member reports whether the instance may process, punctuate and commit
// now. After its fetches failed (cutOff: a broker unreachable, a leader
// gone, the group session lost), the group may have moved its tasks to
// others while it could not hear of it. Until a heartbeat of its
// generation is answered it only buffers what it fetches: processing its
// stale state would write results older than those of the tasks' new
// owners, which under at-least-once nothing fences, and which could land
// after theirs. While fetches keep failing (a deleted topic, say) it
// skips one poll and asks at the next, so the tasks go on. A
// fenced answer closes its tasks, as a fenced commit does, and it rejoins.
func (r *Runtime) member(ctx context.Context, cutOff bool) bool {
	if cutOff && !r.unconfirmed {
		// The first poll that fails is not processed: the group's
		// callbacks, held back while a poll is handled, run first.
		r.unconfirmed = true
		return false
	}
	if !r.unconfirmed {
		return true
	}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fenced, confirmed := r.heartbeat(hctx)
	switch {
	case fenced != nil:
		r.mu.Lock()
		r.loseTasks(nil, fenced)
		r.mu.Unlock()
		r.unconfirmed = false
		return false
	case !confirmed:
		return false
	}
	r.unconfirmed = false
	return true
}

// finalCommitTimeout bounds the last commit of a stopping instance, so
// that a dead cluster cannot hang its shutdown.
const finalCommitTimeout = 30 * time.Second

// commitContext returns the context a commit of the run loop runs under.
// A stop (ctx done) does not cut it short, since a commit that fails half
// way stops the instance without committing: it ends finalCommitTimeout
// after ctx does.
func commitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(finalCommitTimeout, cancel) })
	return cctx, func() { stop(); cancel() }
}

// recoverProduce handles a lost output: under exactly-once the
// transaction that held it is aborted, so none of its records is ever
// read, and every task is reopened from its committed state, to process
// its input again. Under at-least-once, and when failures repeat, it
// halts and returns the failure.
func (r *Runtime) recoverProduce() error {
	if r.col.Err() == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recoverProduceLocked()
}

// recoverProduceLocked is recoverProduce with r.mu held.
func (r *Runtime) recoverProduceLocked() error {
	perr := r.col.Err()
	if perr == nil {
		return nil
	}
	if !r.abandonAndReopen(perr) {
		return r.fatal
	}
	return nil
}

// haltLocked is halt taking r.mu.
func (r *Runtime) haltLocked(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.halt(err)
}

func (r *Runtime) fatalErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal
}

// nextWallClock returns the earliest wall-clock punctuation due.
func (r *Runtime) nextWallClock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var next time.Time
	for _, t := range r.tasks.all() {
		if !t.running() {
			continue
		}
		if n := t.NextWallClock(); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

// punctuate runs the wall-clock punctuators that are due. A punctuation
// makes the next commit flush and commit, as processed records do: the
// punctuator may have written stores or forwarded records, even on a task
// whose inputs are idle.
func (r *Runtime) punctuate(now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.col.Err() != nil {
		return nil // the work since the last commit is abandoned
	}
	var errs []error
	for _, t := range r.tasks.all() {
		if !t.running() {
			continue
		}
		if due := t.NextWallClock(); !due.IsZero() && !now.Before(due) {
			r.dirty = true
		}
		errs = append(errs, r.punctuateWallClock(t, now))
	}
	return errors.Join(errs...)
}

// process runs one poll's records through their tasks, several tasks at
// once, or only buffers them when run is false. It returns the first fatal
// (fail-fast) error.
func (r *Runtime) process(fetches kgo.Fetches, run bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.standbys.reconcile(r.tasks.has)
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		sub, ok := r.subs[p.Topic]
		if !ok {
			return
		}
		t, ok := r.tasks.get(processor.TaskID{SubTopology: sub, Partition: p.Partition})
		if !ok {
			// Records of a partition not (or no longer) ours; the
			// client drops them on revoke, so this is a race to ignore.
			return
		}
		if p.Err != nil {
			return
		}
		t.fetched(p)
		if n := len(p.Records); n > 0 {
			t.buf[p.Topic] = append(t.buf[p.Topic], p.Records...)
			// Under read_committed nothing past the last stable offset
			// can be fetched yet: reaching it is caught up.
			end := p.HighWatermark
			if r.txnID != "" {
				end = p.LastStableOffset
			}
			t.caughtUp[p.Topic] = p.Records[n-1].Offset+1 >= end
		} else {
			t.caughtUp[p.Topic] = true
		}
	})
	if !run {
		return nil
	}
	var ready []*runTask
	for _, t := range r.tasks.all() {
		if t.running() && t.buffered() {
			ready = append(ready, t)
		}
	}
	now := time.Now()
	var processed atomic.Int64
	err := r.parallel(len(ready), func(i int) error {
		n, err := r.runBuffered(ready[i], now)
		processed.Add(n)
		return err
	})
	r.dirty = r.dirty || processed.Load() > 0
	return err
}

// parallel calls fn(0) to fn(n-1) on up to Workers goroutines, each task's
// work on one goroutine at a time, and returns their errors joined.
func (r *Runtime) parallel(n int, fn func(i int) error) error {
	errs := make([]error, n)
	if n == 1 || r.cfg.Workers == 1 {
		for i := range n {
			errs[i] = fn(i)
		}
		return errors.Join(errs...)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.cfg.Workers, n) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				errs[i] = fn(int(i))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fail records a fatal error; the run loop returns it. r.mu is held.
func (r *Runtime) fail(err error) {
	if r.fatal == nil {
		r.fatal = err
		r.fatalNow() // wake the poll in progress
	}
}

// shutdown leaves the group (revoking, and so committing and closing,
// every task) and closes the client.
func (r *Runtime) shutdown() {
	// Nothing more is committed: a graceful stop committed already, and
	// anything else must not be. Under exactly-once the open transaction
	// is aborted.
	r.noCommit.Store(true)
	r.mu.Lock()
	if err := r.committer.abandon(); err != nil {
		r.log.Warn("aborting the open transaction", "error", err)
	}
	r.mu.Unlock()
	r.cl.CloseAllowingRebalance()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tasks.close(r.tasks.ids(), false)
	r.mu.Unlock()
	r.restoring.Wait()
	r.mu.Lock()
	waitStandbys := r.standbys.stopAll()
	r.mu.Unlock()
	waitStandbys()
	close(r.stopGlobals)
	r.changelogs.close()
	r.col.close()
	r.instance.Close()
	r.mu.Lock()
}

func kerrFor(code int16) error {
	if code == 0 {
		return nil
	}
	return kerr.ErrorForCode(code)
}

// processID returns a random ID for this runtime's process, which names
// it in the assignment's list of standbys.
func processID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
