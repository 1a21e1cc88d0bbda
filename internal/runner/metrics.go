// The instance's metrics: what the runtime counts besides its tasks'
// own counters, and the accumulators that keep every counter going up
// while tasks come and go.

package runner

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa/internal/tasklife"
	"github.com/kappa-streams/kappa/metrics"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Metrics holds an app instance's metrics across the Runtimes that run
// it (one per App.Run), for metrics.NewCollector to read at each scrape
// (Snapshot). Nothing here is written per record: tasks count into their
// own atomic counters (processor.TaskStats, runTask), the runtime adds
// per-batch and per-commit figures, and Snapshot reads them all.
//
// Counters never go backwards while the process runs. A task's counters
// start at zero each time it opens (processor.Task is new), so when a
// task closes on this instance (revoked, lost, reopened, shut down) its
// final counts are added to those of its earlier stays, and a scrape
// reports the sum of both; the counters the runtime keeps itself (inputs,
// batch durations, restores) live here and are never reset. A task that
// left keeps being reported with the counts it reached.
//
// A nil *Metrics turns the metrics off: the runtime skips everything it
// would measure for them.
type Metrics struct {
	commits    atomic.Int64
	commitDur  metrics.Histogram
	rebalances atomic.Int64
	standbys   atomic.Int64 // standby tasks kept now
	// globals are the global tables' readings, set by the runtime that
	// reads them.
	globals atomic.Pointer[[]*globalReading]
	cache   atomic.Pointer[state.Cache]

	// mu guards tasks and each task's live stay and past counts: a task
	// closing folds its counts in under it, and a scrape reads them under
	// it, so no count is seen twice or missed. Processing never takes it.
	mu    sync.Mutex
	tasks map[processor.TaskID]*taskMetrics
}

// NewMetrics returns the metrics of an instance with no task yet.
func NewMetrics() *Metrics {
	return &Metrics{tasks: make(map[processor.TaskID]*taskMetrics)}
}

// taskMetrics is one task's metrics on this instance, over all its stays.
type taskMetrics struct {
	id processor.TaskID
	// inputs and stores are created at the task's first stay, and added to
	// (never removed from) under Metrics.mu; their counters are atomic.
	inputs map[string]*inputMetrics
	stores map[string]*storeMetrics
	// process holds the durations of the task's batches.
	process metrics.Histogram

	// Guarded by Metrics.mu:
	live *runTask // the current stay, nil while the task is not here
	past pastCounts
}

// pastCounts are the counts of a task's stays that ended.
type pastCounts struct {
	produced, deadLettered, late map[string]int64
	dropped, mispartitioned      int64
	endToEnd, punctuation        metrics.HistogramSnapshot
}

// inputMetrics are a task's counters of one input partition.
type inputMetrics struct {
	topic     string
	partition int32
	consumed  atomic.Int64
	processed atomic.Int64
	// hw is the partition's high watermark as last fetched, and pos the
	// offset of the next record to process; -1 until known in the current
	// stay.
	hw, pos atomic.Int64
}

// storeMetrics are a task's counters of one store.
type storeMetrics struct {
	restored atomic.Int64
	// restoring is set while a restore reads the store's changelog, up to
	// end; next is the offset after the last record it applied.
	restoring atomic.Bool
	end, next atomic.Int64

	// Guarded by Metrics.mu: the cache counters of the live stay's store
	// (nil until it is open), and those of the stays that ended.
	live      *state.Metrics
	pastCache state.CacheStats
}

// attach starts a stay of rt's task on this instance: its input counters
// are handed to rt. r.mu is held.
func (m *Metrics) attach(rt *runTask, cache *state.Cache, stores []*processor.StoreSpec) {
	if m == nil {
		return
	}
	m.cache.Store(cache)
	m.mu.Lock()
	defer m.mu.Unlock()
	tm := m.tasks[rt.id]
	if tm == nil {
		tm = &taskMetrics{id: rt.id, inputs: make(map[string]*inputMetrics), stores: make(map[string]*storeMetrics)}
		m.tasks[rt.id] = tm
	}
	rt.m = tm
	rt.in = make([]*inputMetrics, len(rt.inputs))
	rt.done = make([]int64, len(rt.inputs))
	for i, topic := range rt.inputs {
		in := tm.inputs[topic]
		if in == nil {
			in = &inputMetrics{topic: topic, partition: rt.id.Partition}
			tm.inputs[topic] = in
		}
		in.hw.Store(-1)
		in.pos.Store(-1)
		rt.in[i] = in
	}
	for _, sp := range stores {
		if tm.stores[sp.Name] == nil {
			tm.stores[sp.Name] = &storeMetrics{}
		}
	}
	tm.live = rt
}

// opened notes the stores of rt's task, now open, whose cache counters
// the metrics read. r.mu is held, and the task is not processing.
func (m *Metrics) opened(rt *runTask, t *processor.Task) {
	if m == nil || rt.m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, sm := range rt.m.stores {
		if s, ok := t.Store(name); ok {
			if ms, ok := s.(state.Metered); ok {
				sm.live = ms.Metrics()
			}
		}
	}
}

// detach ends the stay of rt's task: its counts are added to those of
// its earlier stays. Call it once the task is closed. r.mu is held.
func (m *Metrics) detach(rt *runTask) {
	if m == nil || rt.m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	tm := rt.m
	if tm.live != rt {
		return
	}
	tm.live = nil
	p := &tm.past
	if t := rt.published.Load(); t != nil {
		s := t.Stats()
		p.produced = addCounts(p.produced, &s.ProducedTo)
		p.deadLettered = addCounts(p.deadLettered, &s.DeadLettersBy)
		p.late = addMap(p.late, t.LateByNode())
		p.dropped += s.Dropped.Load()
		p.endToEnd.Add(s.EndToEnd.Snapshot())
		p.punctuation.Add(s.Punctuation.Snapshot())
	}
	p.mispartitioned += rt.mispartitioned.Load()
	for _, sm := range tm.stores {
		if sm.live != nil {
			sm.pastCache.Add(sm.live.Cache())
			sm.live = nil
		}
		sm.restoring.Store(false)
	}
}

func addCounts(dst map[string]int64, c *metrics.Counts) map[string]int64 {
	c.Each(func(k string, n int64) {
		if dst == nil {
			dst = make(map[string]int64)
		}
		dst[k] += n
	})
	return dst
}

func addMap(dst, src map[string]int64) map[string]int64 {
	for k, n := range src {
		if dst == nil {
			dst = make(map[string]int64)
		}
		dst[k] += n
	}
	return dst
}

// rebalanced counts a rebalance: an assignment received.
// standbyTasks records how many standby tasks the instance keeps.
func (m *Metrics) standbyTasks(n int) {
	if m != nil {
		m.standbys.Store(int64(n))
	}
}

func (m *Metrics) rebalanced() {
	if m != nil {
		m.rebalances.Add(1)
	}
}

// committed counts a completed commit that took d.
func (m *Metrics) committed(d time.Duration) {
	if m != nil {
		m.commits.Add(1)
		m.commitDur.Observe(d)
	}
}

// Snapshot returns the instance's metrics now. It may be called from any
// goroutine, and waits for no processing or commit.
func (m *Metrics) Snapshot() metrics.Instance {
	in := metrics.Instance{
		Commits:        m.commits.Load(),
		CommitDuration: m.commitDur.Snapshot(),
		Rebalances:     m.rebalances.Load(),
		TaskStates:     make(map[string]int),
		CacheMaxBytes:  -1,
	}
	for s := processor.TaskCreated; s <= processor.TaskStandby; s++ {
		in.TaskStates[s.String()] = 0
	}
	in.TaskStates[processor.TaskStandby.String()] = int(m.standbys.Load())
	if c := m.cache.Load(); c != nil {
		in.CacheBytes, in.CacheMaxBytes = c.UsedBytes(), c.MaxBytes()
	}
	if gs := m.globals.Load(); gs != nil {
		for _, g := range *gs {
			in.Globals = append(in.Globals, g.snapshot())
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := slices.SortedFunc(maps.Keys(m.tasks), compareTaskIDs)
	in.Tasks = make([]metrics.Task, 0, len(ids))
	for _, id := range ids {
		tm := m.tasks[id]
		rt := tm.live
		p := &tm.past
		mt := metrics.Task{
			ID: id.String(), Live: rt != nil,
			Outputs: maps.Clone(p.produced), DeadLettered: maps.Clone(p.deadLettered), Late: maps.Clone(p.late),
			Dropped: p.dropped, Mispartition: p.mispartitioned,
			Process: tm.process.Snapshot(), EndToEnd: p.endToEnd, Punctuation: p.punctuation,
		}
		if rt != nil {
			in.TaskStates[rt.stateOf().String()]++
			mt.Mispartition += rt.mispartitioned.Load()
			if t := rt.published.Load(); t != nil {
				s := t.Stats()
				mt.Outputs = addCounts(mt.Outputs, &s.ProducedTo)
				mt.DeadLettered = addCounts(mt.DeadLettered, &s.DeadLettersBy)
				mt.Late = addMap(mt.Late, t.LateByNode())
				mt.Dropped += s.Dropped.Load()
				mt.EndToEnd.Add(s.EndToEnd.Snapshot())
				mt.Punctuation.Add(s.Punctuation.Snapshot())
			}
		}
		for _, topic := range slices.Sorted(maps.Keys(tm.inputs)) {
			im := tm.inputs[topic]
			lag := int64(-1)
			if hw, pos := im.hw.Load(), im.pos.Load(); rt != nil && hw >= 0 && pos >= 0 {
				lag = max(hw-pos, 0)
			}
			mt.Inputs = append(mt.Inputs, metrics.Input{Topic: topic, Partition: im.partition,
				Consumed: im.consumed.Load(), Processed: im.processed.Load(), Lag: lag})
		}
		for _, name := range slices.Sorted(maps.Keys(tm.stores)) {
			sm := tm.stores[name]
			cs := sm.pastCache
			if sm.live != nil {
				cs.Add(sm.live.Cache())
			}
			ms := metrics.Store{Name: name, CacheHits: cs.Hits, CacheMisses: cs.Misses, CacheEvictions: cs.Evictions,
				Restored: sm.restored.Load()}
			if sm.restoring.Load() {
				ms.RestoreRemaining = max(sm.end.Load()-sm.next.Load(), 0)
			}
			mt.Stores = append(mt.Stores, ms)
		}
		in.Tasks = append(in.Tasks, mt)
	}
	return in
}

// fetched notes, for the metrics, a fetch of one of the task's input
// partitions: the records consumed, and the high watermark for the lag.
// The poll loop calls it with r.mu held.
func (t *runTask) fetched(p kgo.FetchTopicPartition) {
	if t.in == nil {
		return
	}
	i := slices.Index(t.inputs, p.Topic)
	if i < 0 {
		return
	}
	in := t.in[i]
	if n := len(p.Records); n > 0 {
		in.consumed.Add(int64(n))
		if in.pos.Load() < 0 {
			in.pos.Store(p.Records[0].Offset)
		}
	}
	if p.HighWatermark >= 0 {
		in.hw.Store(p.HighWatermark)
	}
}

// batchDone notes a batch of the task's records, processed since start:
// the records of each input in t.done, and the positions they reached.
// It runs on the task's worker goroutine.
func (t *runTask) batchDone(start time.Time) {
	t.m.process.Observe(time.Since(start))
	for i, n := range t.done {
		if n == 0 {
			continue
		}
		t.done[i] = 0
		in := t.in[i]
		in.processed.Add(n)
		if eo, ok := t.next[in.topic]; ok {
			in.pos.Store(eo.Offset)
		}
	}
}

// punctuateWallClock runs the task's wall-clock punctuators due at now,
// timing them when any is due. r.mu is held.
func (r *Runtime) punctuateWallClock(t *runTask, now time.Time) error {
	if due := t.NextWallClock(); r.cfg.Metrics == nil || due.IsZero() || now.Before(due) {
		return t.PunctuateWallClock(now)
	}
	start := time.Now()
	err := t.PunctuateWallClock(now)
	t.Stats().Punctuation.Observe(time.Since(start))
	return err
}

// restoreReader returns the changelog reader a restore of rt's task
// reads through: r.changelogs, metered per store when metrics are on.
func (r *Runtime) restoreReader(rt *runTask) tasklife.ChangelogReader {
	if rt.m == nil {
		return r.changelogs
	}
	stores := make(map[string]*storeMetrics)
	r.cfg.Metrics.mu.Lock() // a restore runs off the loop, while other stays may start
	for _, sp := range r.cfg.Topology.SubTopologies()[rt.id.SubTopology].Stores {
		if sm := rt.m.stores[sp.Name]; sm != nil && sp.Logging {
			stores[processor.ChangelogRef(sp.Name).Resolve(r.cfg.Plan.AppID)] = sm
		}
	}
	r.cfg.Metrics.mu.Unlock()
	return &meteredReader{changelogReader: r.changelogs, stores: stores}
}

// meteredReader is a changelog reader that counts, per store, the records
// a restore applies and how many it has still to read.
type meteredReader struct {
	*changelogReader
	stores map[string]*storeMetrics // by changelog topic
}

// EndOffset implements tasklife.ChangelogReader. A restore asks for the
// end before it reads; the end is what the remaining records count to.
func (m *meteredReader) EndOffset(ctx context.Context, topic string, partition int32) (int64, error) {
	end, err := m.changelogReader.EndOffset(ctx, topic, partition)
	if sm := m.stores[topic]; sm != nil && err == nil {
		sm.end.Store(end)
	}
	return end, err
}

// ReadChangelog implements tasklife.ChangelogReader.
func (m *meteredReader) ReadChangelog(ctx context.Context, topic string, partition int32, from, end int64, apply func([]*kgo.Record) error) (int64, error) {
	sm := m.stores[topic]
	if sm == nil {
		return m.changelogReader.ReadChangelog(ctx, topic, partition, from, end, apply)
	}
	sm.next.Store(from)
	sm.restoring.Store(true)
	defer sm.restoring.Store(false)
	return m.changelogReader.ReadChangelog(ctx, topic, partition, from, end, func(recs []*kgo.Record) error {
		if err := apply(recs); err != nil {
			return err
		}
		sm.restored.Add(int64(len(recs)))
		if n := len(recs); n > 0 {
			sm.next.Store(recs[n-1].Offset + 1)
		}
		return nil
	})
}
