package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa/state"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// RuntimeConfig is everything a Runtime needs. The root kappa package fills
// it from the App's options; defaults are filled by NewRuntime.
type RuntimeConfig struct {
	Topology *Topology
	Plan     *Plan
	// ClientOpts connect to the cluster (seeds, TLS, SASL).
	ClientOpts []kgo.Opt
	// CommitInterval is the time between commits. Default 30s.
	CommitInterval time.Duration
	OnError        ErrorPolicy
	Logger         *slog.Logger
	// Workers bounds how many tasks process at once. Default GOMAXPROCS.
	Workers int
	// MaxPollRecords bounds the records taken per poll. Default 10000.
	MaxPollRecords int
	// SessionTimeout is the group session timeout: how long a member that
	// died without leaving keeps its tasks. Default 45s (Kafka's default).
	SessionTimeout time.Duration
	// StateDir is the root of persistent stores. Default: a "kappa"
	// directory under the system temp dir.
	StateDir string
	// OnBalance, when set, sees each assignment this member computes as
	// group leader.
	OnBalance func(map[string][]TaskID)
	// MaxTaskIdle bounds how long a task reading several partitions waits
	// for records of one that has none buffered and is not caught up,
	// before it processes the others without it. Default 100ms.
	MaxTaskIdle time.Duration
	// CacheBytes is the record-cache budget shared by the stores of all
	// tasks; nil is state.DefaultCacheBytes, 0 turns caching off.
	CacheBytes *int64
}

// Runtime runs a topology as one member of a consumer group: it polls the
// inputs, hands each partition's records to its task, and commits.
//
// Commits are at-least-once: every output and dead-letter record is
// acknowledged by the brokers (Flush) before the input offsets that
// produced them are committed. They happen on the commit interval, when
// tasks are revoked, and on shutdown. A crash between the two steps
// reprocesses the uncommitted records; nothing is lost.
//
// A record the brokers reject stops the runtime at once, as Kafka
// Streams' RecordCollector does at its next send: no task processes
// another record, no later Send produces, and nothing is committed any
// more, so the input whose output was lost is reprocessed after a
// restart.
type Runtime struct {
	cfg  RuntimeConfig
	log  *slog.Logger
	cl   *kgo.Client
	env  *TaskEnv
	subs map[string]int // resolved input topic → sub-topology

	restoring sync.WaitGroup
	// globals are the global tables, read by a goroutine that globalsDone
	// waits for.
	globals     []GlobalSpec
	globalsDone sync.WaitGroup

	mu    sync.Mutex // held while processing a poll, committing, or rebalancing
	tasks map[TaskID]*runTask
	// dirty is set when records were processed or wall-clock punctuators
	// fired since the last commit: stores may hold changes to flush.
	dirty bool
	// prodErr is the first produce failure; once set, Send drops records,
	// tasks stop processing and commits refuse. failed is canceled with
	// it, to wake a poll in progress.
	prodErr   atomic.Pointer[ProduceError]
	failed    context.Context
	failedNow context.CancelFunc
	// fatal is the first error that stops the run loop.
	fatal error
	// keyParts holds the partition counts of the external inputs that
	// belong to a co-partition group (the inputs of joins): their records
	// are checked against KeyPartition.
	keyParts map[string]int32
	// warned holds the topics whose mispartitioned records were logged.
	warned sync.Map

	commits   atomic.Int64
	processed atomic.Int64
	aborted   atomic.Bool // Abort was called: commit nothing more

	repartitions []string  // repartition topics read, purged after commits
	lastPurge    time.Time // when they were last purged
}

type runTask struct {
	*Task // nil until opened
	id    TaskID
	// opening is the task while its stores restore, for progress reports.
	opening atomic.Pointer[Task]
	// ready is set once the task is open and its stores restored; until
	// then its partitions are paused.
	ready  bool
	cancel context.CancelFunc // stops a restore in progress
	// inputs are the task's input topics (those that have its partition).
	inputs []string
	// buf holds, per input topic, the records fetched and not processed
	// yet: all of them while the task restores.
	buf map[string][]*kgo.Record
	// caughtUp marks the inputs whose last fetch reached the partition's
	// high watermark (no record is missing from buf), false for those that
	// lag, and has no entry for inputs not fetched yet.
	caughtUp map[string]bool
	// assigned is when the task became ready: inputs not fetched yet are
	// waited for up to MaxTaskIdle after it, and then taken as idle.
	assigned time.Time
	// blockedSince is when the task last stopped because an input that is
	// not caught up had nothing buffered; zero when not blocked.
	blockedSince time.Time
	// next holds, per input topic, the offset after the last record
	// processed, to commit.
	next map[string]kgo.EpochOffset
	// keyParts holds the partition counts of the task's inputs whose
	// records are checked against KeyPartition; nil when none is.
	keyParts map[string]int32
	// mispartitioned counts the records of those inputs that were not in
	// the partition of their key.
	mispartitioned atomic.Int64
}

// ErrProduce is wrapped by every ProduceError: a record that the brokers
// did not acknowledge. The app stops without committing the input offsets
// behind it.
var ErrProduce = errors.New("processor: output not acknowledged")

// ProduceError is the first output, changelog or dead-letter record the
// brokers rejected, with the topic and partition it was for and the
// cause (a kerr error such as kerr.MessageTooLarge, or a client error).
// It wraps both ErrProduce and the cause.
type ProduceError struct {
	Topic     string
	Partition int32
	Err       error
}

// Error names the topic, the partition and the cause.
func (e *ProduceError) Error() string {
	return fmt.Sprintf("%v: topic %q partition %d: %v", ErrProduce, e.Topic, e.Partition, e.Err)
}

// Unwrap returns ErrProduce and the cause, for errors.Is and errors.As.
func (e *ProduceError) Unwrap() []error { return []error{ErrProduce, e.Err} }

// NewRuntime checks cfg and builds the Kafka client. Run starts consuming.
func NewRuntime(cfg RuntimeConfig) (*Runtime, error) {
	if cfg.Topology == nil || cfg.Plan == nil {
		return nil, errors.New("processor: RuntimeConfig needs Topology and Plan")
	}
	if cfg.MaxTaskIdle <= 0 {
		cfg.MaxTaskIdle = 100 * time.Millisecond
	}
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = 30 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxPollRecords <= 0 {
		cfg.MaxPollRecords = 10000
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 45 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join(os.TempDir(), "kappa")
	}
	appID := cfg.Plan.AppID
	r := &Runtime{
		cfg:      cfg,
		log:      cfg.Logger,
		subs:     make(map[string]int),
		tasks:    make(map[TaskID]*runTask),
		keyParts: coPartitionedInputs(cfg.Topology, cfg.Plan),
	}
	r.failed, r.failedNow = context.WithCancel(context.Background())
	var topics []string
	for ref, sub := range cfg.Topology.bySource {
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
	opts := append(slices.Clone(cfg.ClientOpts),
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
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("processor: kafka client: %w", err)
	}
	r.cl = cl
	r.env = &TaskEnv{
		AppID:      appID,
		Collector:  r,
		Partitions: r.partitions,
		OnError:    cfg.OnError,
		Logger:     cfg.Logger,
		StateDir:   cfg.StateDir,
		Cache:      state.NewCache(state.DefaultCacheBytes),
	}
	if cfg.CacheBytes != nil {
		r.env.Cache = state.NewCache(*cfg.CacheBytes)
	}
	r.globals = cfg.Topology.Globals()
	r.env.Globals = make(map[string]*GlobalStore, len(r.globals))
	for _, g := range r.globals {
		r.env.Globals[g.Name] = NewGlobalStore()
	}
	return r, nil
}

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

// Send implements Collector: records go to the client's producer. Once a
// produce has failed, Send drops records: the runtime is stopping without
// committing, so the inputs behind them are reprocessed after a restart.
func (r *Runtime) Send(rec *RawRecord) {
	if r.prodErr.Load() != nil {
		return
	}
	r.cl.Produce(context.Background(), rec, r.promise)
}

// promise keeps the first delivery failure and wakes the run loop, which
// stops: tasks observe it before their next record.
func (r *Runtime) promise(rec *kgo.Record, err error) {
	if err == nil {
		return
	}
	if r.prodErr.CompareAndSwap(nil, &ProduceError{Topic: rec.Topic, Partition: rec.Partition, Err: err}) {
		r.log.Error("output not acknowledged: stopping without committing; the input is reprocessed after a restart",
			"topic", rec.Topic, "partition", rec.Partition, "error", err)
		r.failedNow()
	}
}

// produceErr returns the first produce failure, or nil.
func (r *Runtime) produceErr() error {
	if e := r.prodErr.Load(); e != nil {
		return e
	}
	return nil
}

// Client returns the runtime's Kafka client.
func (r *Runtime) Client() *kgo.Client { return r.cl }

// Commits returns how many commits have completed.
func (r *Runtime) Commits() int64 { return r.commits.Load() }

// Processed returns how many input records this member has processed.
func (r *Runtime) Processed() int64 { return r.processed.Load() }

// Tasks returns the IDs of the tasks this member runs now.
func (r *Runtime) Tasks() []TaskID {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]TaskID, 0, len(r.tasks))
	for id := range r.tasks {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareTaskIDs)
	return ids
}

// Abort makes Run, once its context is canceled, stop as a crashed
// process would: nothing more is flushed or committed, caches are dropped,
// and the next owner of its tasks reprocesses from the last commit. It
// exists to test failure handling; a graceful stop cancels the context
// alone.
func (r *Runtime) Abort() { r.aborted.Store(true) }

// TaskStatus is a snapshot of one task of this member.
type TaskStatus struct {
	ID TaskID
	// Ready is false while the task's stores restore; it processes nothing
	// until then.
	Ready bool
	// Processed, DeadLetters, Dropped and Late (records outside every open
	// window) count input records; Produced
	// counts output records.
	Processed, DeadLetters, Produced, Dropped, Late int64
	// Restored counts changelog records applied by restores so far, and
	// RestoreTarget the records those restores set out to read (the
	// changelogs' end offsets minus the offsets stored with the local
	// data). While a restore runs, Restored/RestoreTarget is its progress.
	Restored, RestoreTarget int64
	// Mispartitioned counts the records of the task's co-partitioned
	// inputs (the external topics of joins) that were not in the
	// partition Kappa's partitioner (KeyPartition, murmur2) gives their
	// key, since the task started on this instance. A join misses matches
	// for them. Records without a key are not counted. The producer of
	// such a topic used another partitioner; see docs/joins.md.
	Mispartitioned int64
}

// Status returns a snapshot of the task's counters; Ready is left false.
// It may be called from any goroutine.
func (t *Task) Status() TaskStatus {
	s := t.Stats()
	return TaskStatus{
		ID: t.ID, Processed: s.Processed.Load(), DeadLetters: s.DeadLetters.Load(),
		Produced: s.Produced.Load(), Dropped: s.Dropped.Load(), Late: s.Late.Load(),
		Restored: s.Restored.Load(), RestoreTarget: s.RestoreTotal.Load(),
	}
}

// TaskStatus returns a snapshot of every task this member runs, in task
// order. It may be called from any goroutine, also while tasks restore.
func (r *Runtime) TaskStatus() []TaskStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]TaskStatus, 0, len(r.tasks))
	for id, rt := range r.tasks {
		t := rt.Task
		if t == nil {
			t = rt.opening.Load()
		}
		st := TaskStatus{ID: id}
		if t != nil {
			st = t.Status()
		}
		st.Ready = rt.ready
		st.Mispartitioned = rt.mispartitioned.Load()
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b TaskStatus) int { return compareTaskIDs(a.ID, b.ID) })
	return out
}

func compareTaskIDs(a, b TaskID) int {
	if a.SubTopology != b.SubTopology {
		return a.SubTopology - b.SubTopology
	}
	return int(a.Partition - b.Partition)
}

// Run consumes and processes until ctx is done or a fatal error occurs. On
// ctx cancellation it finishes the records in hand, commits, closes its
// tasks and leaves the group, then returns nil. A rejected output record
// stops it promptly, without a commit, with a *ProduceError.
func (r *Runtime) Run(ctx context.Context) (err error) {
	gctx, stopGlobals := context.WithCancel(ctx)
	defer func() {
		stopGlobals()
		r.globalsDone.Wait()
		r.shutdown()
		if err == nil {
			err = r.fatal
		}
	}()
	// Global tables are read whole before any task processes a record.
	if err := r.startGlobals(gctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
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
		unwake := context.AfterFunc(r.failed, cancel)
		fetches := r.cl.PollRecords(pctx, r.cfg.MaxPollRecords)
		unwake()
		cancel()
		if ctx.Err() != nil {
			r.cl.AllowRebalance()
			if r.aborted.Load() {
				return nil
			}
			return r.finalCommit()
		}
		if err := r.produceErr(); err != nil {
			r.cl.AllowRebalance()
			return err
		}
		if err := r.fatalErr(); err != nil {
			r.cl.AllowRebalance()
			return errors.Join(err, r.finalCommit())
		}
		if fetches.IsClientClosed() {
			return errors.New("processor: kafka client closed")
		}
		// Fetch errors are retried by the client; they are worth a log line.
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				r.log.Warn("fetch error", "topic", topic, "partition", p, "error", err)
			}
		})
		err := r.process(fetches)
		if perr := r.produceErr(); perr != nil {
			// Tasks stopped at the failure; nothing more is committed.
			r.cl.AllowRebalance()
			return errors.Join(perr, err)
		}
		if err != nil {
			r.cl.AllowRebalance()
			return errors.Join(err, r.finalCommit())
		}
		if err := r.punctuate(time.Now()); err != nil {
			r.cl.AllowRebalance()
			return errors.Join(err, r.finalCommit())
		}
		if time.Since(lastCommit) >= r.cfg.CommitInterval {
			if err := r.commitLocked(ctx); err != nil && ctx.Err() == nil {
				r.cl.AllowRebalance()
				return err
			}
			lastCommit = time.Now()
		}
		r.cl.AllowRebalance()
	}
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
	for _, t := range r.tasks {
		if !t.ready {
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
	if r.prodErr.Load() != nil {
		return nil // stopping; Run returns the failure
	}
	var errs []error
	for _, t := range r.tasks {
		if !t.ready {
			continue
		}
		if due := t.NextWallClock(); !due.IsZero() && !now.Before(due) {
			r.dirty = true
		}
		errs = append(errs, t.PunctuateWallClock(now))
	}
	return errors.Join(errs...)
}

// process runs one poll's records through their tasks, several tasks at
// once. It returns the first fatal (fail-fast) error.
func (r *Runtime) process(fetches kgo.Fetches) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		sub, ok := r.subs[p.Topic]
		if !ok {
			return
		}
		t, ok := r.tasks[TaskID{SubTopology: sub, Partition: p.Partition}]
		if !ok {
			// Records of a partition not (or no longer) ours; the
			// client drops them on revoke, so this is a race to ignore.
			return
		}
		if p.Err != nil {
			return
		}
		if n := len(p.Records); n > 0 {
			t.buf[p.Topic] = append(t.buf[p.Topic], p.Records...)
			t.caughtUp[p.Topic] = p.Records[n-1].Offset+1 >= p.HighWatermark
		} else {
			t.caughtUp[p.Topic] = true
		}
	})
	var run []*runTask
	for _, t := range r.tasks {
		if t.ready && t.buffered() {
			run = append(run, t)
		}
	}
	now := time.Now()
	var processed atomic.Int64
	err := r.parallel(len(run), func(i int) error {
		n, err := r.runBuffered(run[i], now)
		processed.Add(n)
		return err
	})
	r.dirty = r.dirty || processed.Load() > 0
	return err
}

// buffered reports whether the task holds unprocessed records.
func (t *runTask) buffered() bool {
	for _, recs := range t.buf {
		if len(recs) > 0 {
			return true
		}
	}
	return false
}

// runBuffered processes a task's buffered records, always taking the one
// with the lowest timestamp among the heads of its inputs, so that a task
// reading several partitions (a join) processes them in the same order on
// every run, whatever the fetches. While an input that is not caught up
// has nothing buffered, the task waits for it, at most MaxTaskIdle; then
// it goes on without it, as Kafka Streams does after max.task.idle.ms.
func (r *Runtime) runBuffered(t *runTask, now time.Time) (int64, error) {
	n := int64(0)
	defer func() { r.processed.Add(n) }()
	for {
		if r.prodErr.Load() != nil {
			// An output was lost: stop before the next record, as the
			// next send would fail. Its offset and the following ones
			// are never committed.
			return n, nil
		}
		pick, blocked := "", false
		for _, topic := range t.inputs {
			recs := t.buf[topic]
			if len(recs) == 0 {
				caughtUp, fetched := t.caughtUp[topic]
				blocked = blocked || (fetched && !caughtUp) || (!fetched && now.Sub(t.assigned) < r.cfg.MaxTaskIdle)
				continue
			}
			if pick == "" || recs[0].Timestamp.Before(t.buf[pick][0].Timestamp) {
				pick = topic
			}
		}
		if pick == "" {
			t.blockedSince = time.Time{}
			return n, nil
		}
		if blocked {
			if t.blockedSince.IsZero() {
				t.blockedSince = now
			}
			if now.Sub(t.blockedSince) < r.cfg.MaxTaskIdle {
				return n, nil
			}
		} else {
			t.blockedSince = time.Time{}
		}
		rec := t.buf[pick][0]
		if parts, ok := t.keyParts[pick]; ok && rec.Key != nil && KeyPartition(rec.Key, parts) != rec.Partition {
			r.mispartitioned(t, rec, parts)
		}
		if err := t.Process(rec); err != nil {
			return n, err // this record's offset is not marked: it is not committed
		}
		t.buf[pick][0] = nil
		t.buf[pick] = t.buf[pick][1:]
		n++
		t.next[rec.Topic] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}
	}
}

// coPartitionedInputs returns the partition counts of the external topics
// that belong to a co-partition group of two or more topics (the inputs
// of joins). A join matches only keys that its inputs hold in the same
// partition, so records of these topics must be where KeyPartition puts
// them. Repartition topics are written by Kappa with KeyPartition and are
// not checked.
func coPartitionedInputs(topo *Topology, plan *Plan) map[string]int32 {
	var parts map[string]int32
	for _, g := range topo.copart {
		if len(g.topics) < 2 {
			continue
		}
		for _, ref := range g.topics {
			if n := plan.Partitions[ref.Name]; !ref.Internal && n > 0 {
				if parts == nil {
					parts = make(map[string]int32)
				}
				parts[ref.Name] = n
			}
		}
	}
	return parts
}

// mispartitioned counts a record of a co-partitioned input that is not in
// the partition of its key, and logs a warning the first time for its
// topic. It runs on the task's worker goroutine.
func (r *Runtime) mispartitioned(t *runTask, rec *kgo.Record, parts int32) {
	t.mispartitioned.Add(1)
	if _, seen := r.warned.LoadOrStore(rec.Topic, true); seen {
		return
	}
	r.log.Warn("record of a joined input is not in the partition of its key: joins can miss matches; "+
		"counted in TaskStatus.Mispartitioned, logged once per topic",
		"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
		"key_partition", KeyPartition(rec.Key, parts),
		"fix", "write the topic with Kafka's murmur2 partitioner, the default of Java clients and franz-go; "+
			"librdkafka clients (kcat, confluent-kafka-go, confluent-kafka-python) need partitioner=murmur2_random")
}

// nextUnblock returns when the first task waiting for an input gives up
// waiting, or zero.
func (r *Runtime) nextUnblock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var next time.Time
	for _, t := range r.tasks {
		if !t.blockedSince.IsZero() {
			if at := t.blockedSince.Add(r.cfg.MaxTaskIdle); next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	return next
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

// assign starts the task id. A task without stores opens at once; one with
// stores has its partitions paused while a goroutine opens and restores it,
// so restoring never holds up polling, heartbeats or other tasks. r.mu is
// held.
func (r *Runtime) assign(id TaskID) {
	if _, ok := r.tasks[id]; ok {
		return
	}
	rt := &runTask{id: id, next: make(map[string]kgo.EpochOffset),
		buf: make(map[string][]*kgo.Record), caughtUp: make(map[string]bool), assigned: time.Now()}
	for _, ref := range r.cfg.Topology.subs[id.SubTopology].Sources {
		if name := ref.Resolve(r.cfg.Plan.AppID); r.cfg.Plan.Partitions[name] > id.Partition {
			rt.inputs = append(rt.inputs, name)
			if n, ok := r.keyParts[name]; ok {
				if rt.keyParts == nil {
					rt.keyParts = make(map[string]int32)
				}
				rt.keyParts[name] = n
			}
		}
	}
	r.tasks[id] = rt
	if len(r.cfg.Topology.subs[id.SubTopology].Stores) == 0 {
		t, err := NewTask(r.cfg.Topology, id.SubTopology, id.Partition, r.env)
		if err != nil {
			r.fail(err)
			return
		}
		rt.Task, rt.ready = t, true
		r.log.Info("task started", "task", id.String())
		return
	}
	parts := r.partitionsOf(id)
	r.cl.PauseFetchPartitions(parts)
	ctx, cancel := context.WithCancel(context.Background())
	rt.cancel = cancel
	r.restoring.Add(1)
	go func() {
		defer r.restoring.Done()
		t, err := r.openAndRestore(ctx, rt)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.tasks[id] != rt || ctx.Err() != nil {
			if t != nil {
				t.Close() // revoked while restoring
			}
			return
		}
		if err != nil {
			r.fail(fmt.Errorf("processor: task %s: %w", id, err))
			return
		}
		rt.Task, rt.ready, rt.cancel, rt.assigned = t, true, nil, time.Now()
		r.cl.ResumeFetchPartitions(parts)
		r.log.Info("task started", "task", id.String(), "restored", t.stats.Restored.Load())
	}()
}

// openAndRestore opens a task, waiting for its state directory if the
// previous owner on this machine still holds it, and restores its stores.
func (r *Runtime) openAndRestore(ctx context.Context, rt *runTask) (*Task, error) {
	id := rt.id
	backoff := 10 * time.Millisecond
	for {
		t, err := NewTask(r.cfg.Topology, id.SubTopology, id.Partition, r.env)
		if err == nil {
			rt.opening.Store(t)
			st, err := r.committedStreamTime(ctx, id)
			if err != nil {
				t.Close()
				return nil, err
			}
			t.RestoreStreamTime(st)
			if err := t.Restore(ctx, r); err != nil {
				t.Close()
				return nil, err
			}
			return t, nil
		}
		if !errors.Is(err, ErrTaskLocked) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// streamTimeMeta prefixes the stream time in committed offsets' metadata.
const streamTimeMeta = "kappa.st="

// committedStreamTime reads the stream time the task's last owner
// committed with its input offsets: the largest over its partitions, -1
// when none was committed.
func (r *Runtime) committedStreamTime(ctx context.Context, id TaskID) (int64, error) {
	offs, err := kadm.NewClient(r.cl).FetchOffsets(ctx, r.cfg.Plan.AppID)
	if err != nil {
		return -1, fmt.Errorf("processor: task %s: committed offsets: %w", id, err)
	}
	st := int64(-1)
	for topic, parts := range r.partitionsOf(id) {
		for _, p := range parts {
			o, ok := offs.Lookup(topic, p)
			if !ok || o.Err != nil {
				continue
			}
			if v, ok := strings.CutPrefix(o.Metadata, streamTimeMeta); ok {
				if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > st {
					st = ms
				}
			}
		}
	}
	return st, nil
}

// withStreamTimes returns ctx carrying a pre-commit hook that writes each
// task's stream time into the metadata of its partitions' offsets.
func withStreamTimes(ctx context.Context, times map[string]map[int32]int64) context.Context {
	return kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			rt := &req.Topics[i]
			for j := range rt.Partitions {
				rp := &rt.Partitions[j]
				if ms, ok := times[rt.Topic][rp.Partition]; ok && ms >= 0 {
					rp.Metadata = kmsg.StringPtr(streamTimeMeta + strconv.FormatInt(ms, 10))
				}
			}
		}
		return nil
	})
}

// fail records a fatal error; the run loop returns it. r.mu is held.
func (r *Runtime) fail(err error) {
	if r.fatal == nil {
		r.fatal = err
	}
}

// partitionsOf returns the input partitions of a task.
func (r *Runtime) partitionsOf(id TaskID) map[string][]int32 {
	parts := make(map[string][]int32)
	for _, ref := range r.cfg.Topology.subs[id.SubTopology].Sources {
		topic := ref.Resolve(r.cfg.Plan.AppID)
		if id.Partition < r.cfg.Plan.Partitions[topic] {
			parts[topic] = []int32{id.Partition}
		}
	}
	return parts
}

// ReadChangelog implements ChangelogReader with a short-lived client that
// reads one partition directly, outside the group.
func (r *Runtime) ReadChangelog(ctx context.Context, topic string, partition int32, from int64, apply func([]*RawRecord) error) (int64, error) {
	end, err := r.EndOffset(ctx, topic, partition)
	if err != nil {
		return from, err
	}
	if from >= end {
		return from, nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(r.cfg.ClientOpts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20),
	)...)
	if err != nil {
		return from, err
	}
	defer cl.Close()
	next := from
	for next < end {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return next, err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return next, ferr
		}
		var applyErr error
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if applyErr != nil || len(p.Records) == 0 {
				return
			}
			recs := p.Records
			if i := slices.IndexFunc(recs, func(rec *kgo.Record) bool { return rec.Offset >= end }); i >= 0 {
				recs = recs[:i]
			}
			if len(recs) > 0 {
				applyErr = apply(recs)
				next = recs[len(recs)-1].Offset + 1
			}
			if len(recs) < len(p.Records) {
				next = end
			}
		})
		if applyErr != nil {
			return next, applyErr
		}
	}
	return next, nil
}

// EndOffset implements ChangelogReader: it lists the partition's latest offset.
func (r *Runtime) EndOffset(ctx context.Context, topic string, partition int32) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = partition
	rp.Timestamp = -1 // latest
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, r.cl)
	if err != nil {
		return 0, fmt.Errorf("end offset of %s/%d: %w", topic, partition, err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerrFor(p.ErrorCode); err != nil {
				return 0, fmt.Errorf("end offset of %s/%d: %w", topic, partition, err)
			}
			return p.Offset, nil
		}
	}
	return 0, fmt.Errorf("end offset of %s/%d: no answer", topic, partition)
}

// finalCommit commits what was processed before stopping, within a bound
// so a dead cluster cannot hang shutdown.
func (r *Runtime) finalCommit() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return r.commitLocked(ctx)
}

// commitLocked takes the lock and commits.
func (r *Runtime) commitLocked(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.commit(ctx, nil)
}

// commit flushes every produced record, then commits the input offsets of
// the given tasks (all when nil). After a produce failure it commits
// nothing and returns the failure. r.mu is held.
func (r *Runtime) commit(ctx context.Context, only map[TaskID]bool) error {
	if (!r.dirty && only == nil) || r.aborted.Load() {
		return nil
	}
	if err := r.produceErr(); err != nil {
		return err
	}
	var tasks []*runTask
	for id, t := range r.tasks {
		if t.ready && (only == nil || only[id]) {
			tasks = append(tasks, t)
		}
	}
	// 1. Flush caches: changes go downstream and to the changelogs. Tasks
	// share nothing but the client, so they flush in parallel.
	err := r.parallel(len(tasks), func(i int) error {
		if err := tasks[i].FlushStores(); err != nil {
			return fmt.Errorf("processor: task %s: flush stores: %w", tasks[i].id, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// 2. Every output and changelog record acknowledged.
	if err := r.cl.Flush(ctx); err != nil {
		return fmt.Errorf("processor: flush before commit: %w", err)
	}
	if err := r.produceErr(); err != nil {
		return err
	}
	// 3. Local stores written, with the changelog offsets they reach.
	err = r.parallel(len(tasks), func(i int) error {
		if err := tasks[i].CommitStores(); err != nil {
			return fmt.Errorf("processor: task %s: commit stores: %w", tasks[i].id, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// 4. Input offsets.
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	times := make(map[string]map[int32]int64)
	for _, t := range tasks {
		id := t.id
		for topic, eo := range t.next {
			if offsets[topic] == nil {
				offsets[topic] = make(map[int32]kgo.EpochOffset)
				times[topic] = make(map[int32]int64)
			}
			offsets[topic][id.Partition] = eo
			times[topic][id.Partition] = t.StreamTimeMillis()
		}
	}
	var commitErr error
	if len(offsets) > 0 {
		r.commitOffsets(withStreamTimes(ctx, times), offsets, &commitErr)
	}
	if commitErr != nil {
		return fmt.Errorf("processor: commit offsets: %w", commitErr)
	}
	if only == nil {
		r.dirty = false
	}
	r.commits.Add(1)
	r.purge(ctx, offsets)
	return nil
}

// purgeEvery bounds how often committed records are deleted from
// repartition topics.
const purgeEvery = 30 * time.Second

// purge deletes the records of repartition topics below the committed
// offsets: nothing reads them again, and the topics keep them otherwise
// (they are created with infinite retention, so nothing unprocessed
// expires while the app is down). A failure is only logged: the next
// purge covers it.
func (r *Runtime) purge(ctx context.Context, committed map[string]map[int32]kgo.EpochOffset) {
	if len(r.repartitions) == 0 || time.Since(r.lastPurge) < purgeEvery {
		return
	}
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.TimeoutMillis = 5000
	for _, topic := range r.repartitions {
		parts := committed[topic]
		if len(parts) == 0 {
			continue
		}
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = topic
		for p, eo := range parts {
			rp := kmsg.NewDeleteRecordsRequestTopicPartition()
			rp.Partition, rp.Offset = p, eo.Offset
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	if len(req.Topics) == 0 {
		return // nothing committed on a repartition topic yet: try next commit
	}
	r.lastPurge = time.Now()
	shards := r.cl.RequestSharded(ctx, req)
	for _, sh := range shards {
		if sh.Err != nil {
			r.log.Warn("purging repartition topics", "error", sh.Err)
			continue
		}
		for _, t := range sh.Resp.(*kmsg.DeleteRecordsResponse).Topics {
			for _, p := range t.Partitions {
				if err := kerrFor(p.ErrorCode); err != nil {
					r.log.Warn("purging repartition topic", "topic", t.Topic, "partition", p.Partition, "error", err)
				}
			}
		}
	}
}

func (r *Runtime) commitOffsets(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset, commitErr *error) {
	r.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			*commitErr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerrFor(p.ErrorCode); e != nil {
					*commitErr = errors.Join(*commitErr, fmt.Errorf("topic %q partition %d: %w", t.Topic, p.Partition, e))
				}
			}
		}
	})
}

func (r *Runtime) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for topic, parts := range assigned {
		sub, ok := r.subs[topic]
		if !ok {
			continue
		}
		for _, p := range parts {
			r.assign(TaskID{SubTopology: sub, Partition: p})
		}
	}
	r.log.Info("tasks assigned", "assigned", assigned)
}

// onRevoked commits and closes the revoked tasks. It runs while no poll is
// being processed (BlockRebalanceOnPoll), and on Close.
func (r *Runtime) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := r.tasksOf(revoked)
	if err := r.commit(ctx, ids); err != nil {
		r.log.Error("commit on revoke failed; the next owner reprocesses from the last commit", "error", err)
	}
	r.closeTasks(ids)
	r.log.Info("tasks revoked", "revoked", revoked)
}

// onLost closes tasks without committing: another member owns them now.
func (r *Runtime) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeTasks(r.tasksOf(lost))
	r.log.Warn("tasks lost", "lost", lost)
}

func (r *Runtime) tasksOf(parts map[string][]int32) map[TaskID]bool {
	ids := make(map[TaskID]bool)
	for topic, ps := range parts {
		if sub, ok := r.subs[topic]; ok {
			for _, p := range ps {
				if _, running := r.tasks[TaskID{SubTopology: sub, Partition: p}]; running {
					ids[TaskID{SubTopology: sub, Partition: p}] = true
				}
			}
		}
	}
	return ids
}

func (r *Runtime) closeTasks(ids map[TaskID]bool) {
	for id := range ids {
		t, ok := r.tasks[id]
		if !ok {
			continue
		}
		delete(r.tasks, id)
		if t.cancel != nil {
			t.cancel() // the restore goroutine closes what it opened
		}
		if t.Task != nil {
			if err := t.Close(); err != nil {
				r.log.Warn("closing task", "task", id.String(), "error", err)
			}
		}
	}
}

// shutdown leaves the group (revoking, and so committing and closing,
// every task) and closes the client.
func (r *Runtime) shutdown() {
	r.cl.CloseAllowingRebalance()
	r.mu.Lock()
	defer r.mu.Unlock()
	all := make(map[TaskID]bool, len(r.tasks))
	for id := range r.tasks {
		all[id] = true
	}
	r.closeTasks(all)
	r.mu.Unlock()
	r.restoring.Wait()
	r.mu.Lock()
}

func kerrFor(code int16) error {
	if code == 0 {
		return nil
	}
	return kerr.ErrorForCode(code)
}
