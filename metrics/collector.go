package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Instance is what one app instance reports at a scrape. The runtime fills
// it from counters its tasks keep anyway (atomic, read without stopping
// processing), so a scrape costs nothing per record.
//
// Counters are cumulative for the instance: a task that leaves it and
// comes back continues from the counts of its earlier stays, so no counter
// goes backwards while the process runs.
type Instance struct {
	Commits        int64
	CommitDuration HistogramSnapshot
	Rebalances     int64
	// TaskStates counts the instance's tasks by state name (created,
	// restoring, running, suspended, closed).
	TaskStates map[string]int
	// CacheBytes is what the record caches hold now; CacheMaxBytes their
	// budget. Both are left out while CacheMaxBytes is negative.
	CacheBytes, CacheMaxBytes int64
	Tasks                     []Task
	Globals                   []Global
}

// Global is one global table's reading on this instance.
type Global struct {
	Name string
	// ReadErrors counts the reads of the table's topic that failed and
	// were started again.
	ReadErrors int64
	// Stale is how long the table's reading has been failing: zero while
	// it reads.
	Stale time.Duration
}

// Task is one task's metrics on this instance.
type Task struct {
	ID string // as processor.TaskID.String: "<sub-topology>_<partition>"
	// Live is false for a task that ran here before and left: its counters
	// are still reported, its gauges (lag, restore) are not.
	Live    bool
	Inputs  []Input
	Outputs map[string]int64 // records produced, by topic
	// DeadLettered counts records sent to the dead-letter topic, by reason
	// (ReasonDecode, …).
	DeadLettered map[string]int64
	Late         map[string]int64 // late records dropped, by node
	Dropped      int64
	Mispartition int64
	Stores       []Store
	// Process holds the durations of the task's batches: the records of
	// one poll that the task processed in one go.
	Process HistogramSnapshot
	// EndToEnd holds, for a sample of the records sent to output and
	// repartition topics, the time from the record's timestamp to its
	// send.
	EndToEnd    HistogramSnapshot
	Punctuation HistogramSnapshot
}

// Input is one input partition of a task.
type Input struct {
	Topic     string
	Partition int32
	Consumed  int64 // records fetched for the task
	Processed int64 // records the task processed (dead-lettered ones included)
	// Lag is the high watermark of the partition, as its last fetch saw
	// it, minus the offset of the next record to process; -1 when not
	// known yet.
	Lag int64
}

// Store is one store of a task.
type Store struct {
	Name string
	// CacheHits counts lookups (reads, and the reads before writes) that
	// the record cache answered; CacheMisses those that went to the
	// engine; CacheEvictions the entries evicted from a full cache.
	CacheHits, CacheMisses, CacheEvictions int64
	// Restored counts the changelog records applied by restores.
	Restored int64
	// RestoreRemaining is the records a restore in progress has still to
	// read; 0 when none runs.
	RestoreRemaining int64
}

// collector turns an Instance into Prometheus metrics at each scrape.
type collector struct {
	snapshot func() Instance

	commits, commitDur, rebalances, tasks, cacheBytes, cacheMax *prometheus.Desc

	consumed, processed, produced, lag, deadLettered, late, dropped, mispartition,
	process, e2e, punctuation *prometheus.Desc

	remaining, restored, hits, misses, evictions *prometheus.Desc

	globalErrors, globalStale *prometheus.Desc
}

// NewCollector returns a Prometheus collector of one app instance's
// metrics, labelled app=appID. snapshot is called once per scrape, on the
// scraping goroutine. Register it in one registry once per app ID: a
// second registration of the same app ID fails.
func NewCollector(appID string, snapshot func() Instance) prometheus.Collector {
	app := prometheus.Labels{LabelApp: appID}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, app)
	}
	task := []string{LabelTask}
	taskTopic := []string{LabelTask, LabelTopic}
	taskStore := []string{LabelTask, LabelStore}
	return &collector{
		snapshot: snapshot,

		commits:    d(CommitsTotal, "Commits completed: at-least-once offset commits, or exactly-once transactions."),
		commitDur:  d(CommitDuration, "Time a completed commit took: cache flush, producer flush, store writes and the offset commit or transaction."),
		rebalances: d(RebalancesTotal, "Group rebalances this instance took part in (assignments received)."),
		tasks:      d(TasksByState, "Tasks of this instance by life-cycle state.", LabelState),
		cacheBytes: d(RecordCacheBytes, "Estimated bytes the record caches of the instance's stores hold."),
		cacheMax:   d(RecordCacheMaxBytes, "Budget of the record caches of the instance's stores (kappa.CacheBytes)."),

		consumed:     d(RecordsConsumed, "Input records fetched for the task.", taskTopic...),
		processed:    d(RecordsProcessed, "Input records the task processed, those sent to the dead-letter topic included.", taskTopic...),
		produced:     d(RecordsProduced, "Records the task sent to output and repartition topics (not changelog or dead-letter records).", taskTopic...),
		lag:          d(ConsumerLag, "High watermark of the input partition, as last fetched, minus the offset of the task's next record.", LabelTask, LabelTopic, LabelPartition),
		deadLettered: d(RecordsDeadLettered, "Records sent to the dead-letter topic, by reason: decode, panic or process (the kappa.error.kind header), or result for a result that was not the current record's.", LabelTask, LabelReason),
		late:         d(LateRecordsDropped, "Records dropped because every window they belonged to had closed, by the operator that dropped them.", LabelTask, LabelNode),
		dropped:      d(RecordsDropped, "Records dropped by the semantics: tombstones reaching a key-changing operator, records without a key reaching a key-based stateful operator.", task...),
		mispartition: d(RecordsMispartition, "Records of joined inputs that were not in the partition Kappa's partitioner gives their key (see docs/joins.md).", task...),
		process:      d(ProcessBatch, "Time the task took to process the records one poll gave it (one batch).", task...),
		e2e:          d(EndToEndLatency, "Time from a record's timestamp to its send to an output or repartition topic, for one record sent in 16.", task...),
		punctuation:  d(PunctuationDuration, "Time the punctuators due at one point took, stream-time and wall-clock.", task...),

		remaining: d(RestoreRemaining, "Changelog records a store's restore in progress has still to read; 0 when it is not restoring.", taskStore...),
		restored:  d(RecordsRestored, "Changelog records applied to the store by restores.", taskStore...),
		hits:      d(StoreCacheHits, "Store lookups the record cache answered.", taskStore...),
		misses:    d(StoreCacheMisses, "Store lookups the record cache could not answer, which read the engine.", taskStore...),
		evictions: d(StoreCacheEvictions, "Entries evicted from the store's record cache because the budget was full.", taskStore...),

		globalErrors: d(GlobalReadErrors, "Reads of a global table's topic that failed and were started again, with backoff.", LabelTable),
		globalStale:  d(GlobalStaleness, "How long a global table's reading has been failing: 0 while it reads; updates written meanwhile are not in the table.", LabelTable),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.commits, c.commitDur, c.rebalances, c.tasks, c.cacheBytes, c.cacheMax,
		c.consumed, c.processed, c.produced, c.lag, c.deadLettered, c.late, c.dropped, c.mispartition,
		c.process, c.e2e, c.punctuation,
		c.remaining, c.restored, c.hits, c.misses, c.evictions,
		c.globalErrors, c.globalStale,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	in := c.snapshot()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	histogram := func(d *prometheus.Desc, s *HistogramSnapshot, labels ...string) {
		buckets, n := s.cumulative()
		ch <- prometheus.MustNewConstHistogram(d, n, s.Sum.Seconds(), buckets, labels...)
	}
	counter(c.commits, in.Commits)
	histogram(c.commitDur, &in.CommitDuration)
	counter(c.rebalances, in.Rebalances)
	for state, n := range in.TaskStates {
		gauge(c.tasks, int64(n), state)
	}
	if in.CacheMaxBytes >= 0 {
		gauge(c.cacheBytes, in.CacheBytes)
		gauge(c.cacheMax, in.CacheMaxBytes)
	}
	for _, g := range in.Globals {
		counter(c.globalErrors, g.ReadErrors, g.Name)
		ch <- prometheus.MustNewConstMetric(c.globalStale, prometheus.GaugeValue, g.Stale.Seconds(), g.Name)
	}
	for i := range in.Tasks {
		t := &in.Tasks[i]
		for _, p := range t.Inputs {
			counter(c.consumed, p.Consumed, t.ID, p.Topic)
			counter(c.processed, p.Processed, t.ID, p.Topic)
			if t.Live && p.Lag >= 0 {
				gauge(c.lag, p.Lag, t.ID, p.Topic, strconv.Itoa(int(p.Partition)))
			}
		}
		for topic, n := range t.Outputs {
			counter(c.produced, n, t.ID, topic)
		}
		for reason, n := range t.DeadLettered {
			counter(c.deadLettered, n, t.ID, reason)
		}
		for node, n := range t.Late {
			counter(c.late, n, t.ID, node)
		}
		counter(c.dropped, t.Dropped, t.ID)
		counter(c.mispartition, t.Mispartition, t.ID)
		histogram(c.process, &t.Process, t.ID)
		histogram(c.e2e, &t.EndToEnd, t.ID)
		histogram(c.punctuation, &t.Punctuation, t.ID)
		for _, s := range t.Stores {
			if t.Live {
				gauge(c.remaining, s.RestoreRemaining, t.ID, s.Name)
			}
			counter(c.restored, s.Restored, t.ID, s.Name)
			counter(c.hits, s.CacheHits, t.ID, s.Name)
			counter(c.misses, s.CacheMisses, t.ID, s.Name)
			counter(c.evictions, s.CacheEvictions, t.ID, s.Name)
		}
	}
}
