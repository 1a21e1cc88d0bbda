package streamtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/internal/tasklife"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
)

// Opt configures a Driver.
type Opt func(*cfg)

type cfg struct {
	appID        string
	parts        map[string]int32
	onError      processor.ErrorPolicy
	start        time.Time
	manualCommit bool
	cacheBytes   int64
}

// AppID sets the application ID, which prefixes internal topics, overriding
// the default "streamtest".
func AppID(id string) Opt { return func(c *cfg) { c.appID = id } }

// Partitions gives topic n partitions, overriding the default of 1 for
// inputs. Output topics default to the partition count of the
// sub-topology writing them, as in a running app.
func Partitions(topic string, n int) Opt {
	return func(c *cfg) { c.parts[topic] = int32(n) }
}

// FailFast makes a failed record stop the driver: the Pipe call returns
// the error and later Pipes fail too. The default sends failed records to
// the dead-letter topic, as a running app does.
func FailFast() Opt { return func(c *cfg) { c.onError = processor.FailFast } }

// ManualCommit stops the driver from committing after every piped record.
// Stores then hold their cached updates, deduplicated per key, until
// Commit is called, as they would between an app's commits. By default the
// driver commits after each record, so every update shows at once.
func ManualCommit() Opt { return func(c *cfg) { c.manualCommit = true } }

// StartTime sets the timestamp of records piped without one, overriding
// the default 2026-01-01T00:00:00Z.
func StartTime(t time.Time) Opt { return func(c *cfg) { c.start = t } }

// CacheBytes sets the record-cache budget shared by all the driver's
// stores, overriding the default state.DefaultCacheBytes, as
// kappa.CacheBytes does for an app. 0 turns caching off. A budget of a few
// bytes keeps caching on but evicts at almost every write, which is how
// tests put a topology under cache pressure.
func CacheBytes(n int64) Opt { return func(c *cfg) { c.cacheBytes = n } }

// NoCache turns every store's record cache off, whatever the topology's
// stream.CacheSize options say: each update is forwarded downstream and
// logged as it happens. It is CacheBytes(0).
func NoCache() Opt { return CacheBytes(0) }

// Driver runs a topology in memory, deterministically and without a broker.
// Records piped into an input are processed before Pipe returns, including
// everything they cause through repartition topics. It runs the same task
// code as a kappa.App. A Driver is not safe for concurrent use.
type Driver struct {
	cfg    cfg
	topo   *processor.Topology
	plan   *processor.Plan
	env    *processor.TaskEnv
	tasks  map[processor.TaskID]*task
	topics map[string]*topic
	queue  []*processor.RawRecord
	now    time.Time
	wall   time.Time // the virtual wall clock of punctuation
	// streamTimes keeps closed tasks' stream times for their reopening.
	streamTimes map[processor.TaskID]int64
	// globals holds the global tables by topic.
	globals map[string]*processor.GlobalStore
	err     error
}

type topic struct {
	parts   [][]*processor.RawRecord
	ordered []*processor.RawRecord // every record, in the order produced
}

// New returns a driver for topo. It fails if the topology cannot be
// planned, for example when a repartition count is invalid.
func New(topo *processor.Topology, opts ...Opt) (*Driver, error) {
	if topo == nil {
		return nil, errors.New("streamtest: New: nil topology (did Build return an error?)")
	}
	c := cfg{appID: "streamtest", parts: make(map[string]int32), start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		cacheBytes: state.DefaultCacheBytes}
	for _, o := range opts {
		o(&c)
	}
	external := make(map[string]int32, len(c.parts))
	for _, ref := range topo.ExternalSources() {
		external[ref.Name] = 1
	}
	for t, n := range c.parts {
		external[t] = n
	}
	plan, err := topo.Plan(c.appID, external)
	if err != nil {
		return nil, err
	}
	d := &Driver{
		cfg:    c,
		topo:   topo,
		plan:   plan,
		tasks:  make(map[processor.TaskID]*task),
		topics: make(map[string]*topic),
		now:    c.start,
		wall:   c.start,

		streamTimes: make(map[processor.TaskID]int64),
	}
	d.env = &processor.TaskEnv{
		AppID:      c.appID,
		Collector:  collector{d},
		Partitions: d.partitionCount,
		OnError:    c.onError,
		Clock:      func() time.Time { return d.wall },
		Cache:      state.NewCache(c.cacheBytes),
		Globals:    make(map[string]*processor.GlobalStore),
	}
	d.globals = make(map[string]*processor.GlobalStore)
	for _, g := range topo.Globals() {
		d.env.Globals[g.Name] = processor.NewGlobalStore()
		d.globals[g.Topic] = d.env.Globals[g.Name]
	}
	return d, nil
}

func (d *Driver) partitionCount(name string) (int32, error) {
	if n, ok := d.plan.Partitions[name]; ok {
		return n, nil
	}
	return 0, fmt.Errorf("topic %q does not exist", name)
}

type collector struct{ d *Driver }

func (c collector) Send(r *processor.RawRecord) {
	d := c.d
	d.append(r)
	if _, internal := d.subOf(r.Topic); internal {
		d.queue = append(d.queue, r)
	}
}

// subOf returns the sub-topology reading the resolved topic name.
func (d *Driver) subOf(name string) (int, bool) {
	for _, ref := range []processor.TopicRef{{Name: name}, {Name: trimApp(name, d.env.AppID), Internal: true}} {
		if ref.Name == "" {
			continue
		}
		if s, ok := d.topo.SubTopologyOf(ref); ok {
			return s, true
		}
	}
	return 0, false
}

func trimApp(name, app string) string {
	if len(name) > len(app)+1 && name[:len(app)] == app && name[len(app)] == '-' {
		return name[len(app)+1:]
	}
	return ""
}

func (d *Driver) append(r *processor.RawRecord) {
	t := d.topics[r.Topic]
	if t == nil {
		n, err := d.partitionCount(r.Topic)
		if err != nil {
			n = 1
		}
		t = &topic{parts: make([][]*processor.RawRecord, n)}
		d.topics[r.Topic] = t
	}
	for int(r.Partition) >= len(t.parts) {
		t.parts = append(t.parts, nil)
	}
	r.Offset = int64(len(t.parts[r.Partition]))
	t.parts[r.Partition] = append(t.parts[r.Partition], r)
	t.ordered = append(t.ordered, r)
}

// pipe appends an input record and processes it and everything it causes.
// The record goes to the partition of its key, as a Kafka producer would
// put it, unless fixed is set: then to r.Partition.
func (d *Driver) pipe(r *processor.RawRecord, fixed bool) error {
	if d.err != nil {
		return fmt.Errorf("streamtest: driver stopped by an earlier error: %w", d.err)
	}
	if g, ok := d.globals[r.Topic]; ok {
		// A global table's topic: every instance reads it whole, so the
		// row is there for every task at once.
		n, _ := d.partitionCount(r.Topic)
		if r.Key != nil && !fixed {
			r.Partition = processor.KeyPartition(r.Key, n)
		}
		d.append(r)
		g.Apply(r)
		return nil
	}
	if _, ok := d.subOf(r.Topic); !ok {
		return fmt.Errorf("streamtest: no source reads topic %q", r.Topic)
	}
	n, _ := d.partitionCount(r.Topic)
	switch {
	case fixed && (r.Partition < 0 || r.Partition >= n):
		return fmt.Errorf("streamtest: topic %q has %d partitions, no partition %d", r.Topic, n, r.Partition)
	case !fixed && r.Key != nil:
		r.Partition = processor.KeyPartition(r.Key, n)
	}
	d.append(r)
	d.queue = append(d.queue, r)
	if err := d.drain(); err != nil {
		return err
	}
	if !d.cfg.manualCommit {
		return d.Commit()
	}
	return nil
}

// drain processes queued records until none are left.
func (d *Driver) drain() error {
	for len(d.queue) > 0 {
		next := d.queue[0]
		d.queue = d.queue[1:]
		if err := d.process(next); err != nil {
			d.err = err
			d.queue = nil
			return err
		}
	}
	return nil
}

// Commit flushes every task's store caches, forwarding their updates
// downstream (and through repartition topics) until nothing is left, then
// commits the stores, as an app's commit does.
func (d *Driver) Commit() error {
	if d.err != nil {
		return d.err
	}
	for {
		for _, id := range d.taskIDs() {
			if err := d.tasks[id].FlushStores(); err != nil {
				d.err = err
				return err
			}
		}
		if len(d.queue) == 0 {
			break
		}
		if err := d.drain(); err != nil {
			return err
		}
	}
	for _, id := range d.taskIDs() {
		if err := d.tasks[id].CommitStores(); err != nil {
			d.err = err
			return err
		}
	}
	return nil
}

// taskIDs returns the open tasks in a fixed order, for determinism.
func (d *Driver) taskIDs() []processor.TaskID {
	ids := make([]processor.TaskID, 0, len(d.tasks))
	for id := range d.tasks {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b processor.TaskID) int {
		if a.SubTopology != b.SubTopology {
			return a.SubTopology - b.SubTopology
		}
		return int(a.Partition - b.Partition)
	})
	return ids
}

func (d *Driver) process(r *processor.RawRecord) error {
	sub, _ := d.subOf(r.Topic)
	t, err := d.task(sub, r.Partition)
	if err != nil {
		return err
	}
	return t.Process(r)
}

// task returns the task of sub-topology sub for partition p, opening it
// (and restoring its stores from the driver's changelogs) on first use.
func (d *Driver) task(sub int, p int32) (*task, error) {
	id := processor.TaskID{SubTopology: sub, Partition: p}
	if t, ok := d.tasks[id]; ok {
		return t, nil
	}
	pt, err := processor.NewTask(tasklife.K, d.topo, sub, p, d.env)
	if err != nil {
		return nil, err
	}
	t := &task{pt, pt.Lifecycle(tasklife.K)}
	if st, ok := d.streamTimes[id]; ok {
		t.RestoreStreamTime(st)
	}
	if err := t.Restore(context.Background(), changelogs{d}); err != nil {
		t.Close()
		return nil, err
	}
	d.tasks[id] = t
	return t, nil
}

// changelogs reads the driver's in-memory topics for restores
// (tasklife.ChangelogReader), so a driver whose tasks are closed and
// reopened restores their stores like an app does.
type changelogs struct{ d *Driver }

// EndOffset returns the length of the in-memory partition.
func (c changelogs) EndOffset(_ context.Context, topic string, partition int32) (int64, error) {
	t := c.d.topics[topic]
	if t == nil || int(partition) >= len(t.parts) {
		return 0, nil
	}
	return int64(len(t.parts[partition])), nil
}

// ReadChangelog hands apply the in-memory partition from offset from.
func (c changelogs) ReadChangelog(_ context.Context, topic string, partition int32, from, _ int64, apply func([]*processor.RawRecord) error) (int64, error) {
	t := c.d.topics[topic]
	if t == nil || int(partition) >= len(t.parts) {
		return from, nil
	}
	log := t.parts[partition]
	if from >= int64(len(log)) {
		return from, nil
	}
	if err := apply(log[from:]); err != nil {
		return from, err
	}
	return int64(len(log)), nil
}

// CloseTasks closes every task, keeping the topics, as a restart of the
// app does; the next records reopen the tasks and restore their stores from
// the changelogs.
func (d *Driver) CloseTasks() error {
	for id, t := range d.tasks {
		d.streamTimes[id] = t.StreamTimeMillis() // committed with the offsets, as an app does
	}
	err := d.Close()
	d.tasks = make(map[processor.TaskID]*task)
	return err
}

// task is an open task with its life-cycle operations.
type task struct {
	*processor.Task
	tasklife.Ops
}

// TaskStatus returns the counters of the open tasks, in task order: records
// processed, dead-lettered, dropped and late, and restored.
func (d *Driver) TaskStatus() []processor.TaskStatus {
	var out []processor.TaskStatus
	for _, id := range d.taskIDs() {
		st := d.tasks[id].Status()
		st.Ready = true
		out = append(out, st)
	}
	return out
}

// Err returns the error that stopped the driver under FailFast, if any.
func (d *Driver) Err() error { return d.err }

// Close closes every task. It returns their errors joined.
func (d *Driver) Close() error {
	var errs []error
	for _, t := range d.tasks {
		errs = append(errs, t.Close())
	}
	d.tasks = nil
	return errors.Join(errs...)
}

// Partitions returns the partition count the driver uses for a topic, as a
// running app would create it.
func (d *Driver) Partitions(topic string) int {
	n, _ := d.partitionCount(topic)
	return int(n)
}

// AdvanceTime moves the default record timestamp forward by step.
func (d *Driver) AdvanceTime(step time.Duration) { d.now = d.now.Add(step) }

// Now returns the timestamp given to records piped without one.
func (d *Driver) Now() time.Time { return d.now }

// WallClock returns the driver's virtual wall clock, which starts at the
// StartTime and moves only with AdvanceWallClock.
func (d *Driver) WallClock() time.Time { return d.wall }

// AdvanceWallClock moves the virtual wall clock forward by step and fires
// the wall-clock punctuators that come due, in every task, as a running app
// would between polls. It opens every task first, so punctuators scheduled
// in Init run even for partitions that have seen no record yet. Records the
// punctuators forward are processed before it returns.
func (d *Driver) AdvanceWallClock(step time.Duration) error {
	if d.err != nil {
		return d.err
	}
	for sub, n := range d.plan.Tasks {
		for p := int32(0); p < n; p++ {
			if _, err := d.task(sub, p); err != nil {
				d.err = err
				return err
			}
		}
	}
	d.wall = d.wall.Add(step)
	for _, id := range d.taskIDs() {
		if err := d.tasks[id].PunctuateWallClock(d.wall); err != nil {
			d.err = err
			return err
		}
		if err := d.drain(); err != nil {
			return err
		}
	}
	return nil
}

// DeadLetter is a record the app sent to its dead-letter topic.
type DeadLetter struct {
	Key, Value []byte
	Timestamp  time.Time
	Error      string // the kappa.error header
	Kind       string // "decode", "process" or "panic"
	Node       string // the failing node, when known
	Topic      string // the input record's topic
	Partition  int32
	Offset     int64
}

// DeadLetters returns every record sent to the dead-letter topic so far.
func (d *Driver) DeadLetters() []DeadLetter {
	t := d.topics[processor.DLQTopic(d.env.AppID)]
	if t == nil {
		return nil
	}
	out := make([]DeadLetter, 0, len(t.ordered))
	for _, r := range t.ordered {
		dl := DeadLetter{Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
		for _, h := range r.Headers {
			v := string(h.Value)
			switch h.Key {
			case processor.HeaderError:
				dl.Error = v
			case processor.HeaderKind:
				dl.Kind = v
			case processor.HeaderNode:
				dl.Node = v
			case processor.HeaderTopic:
				dl.Topic = v
			case processor.HeaderPartition:
				p, _ := strconv.ParseInt(v, 10, 32)
				dl.Partition = int32(p)
			case processor.HeaderOffset:
				dl.Offset, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		out = append(out, dl)
	}
	return out
}

// Input pipes typed records into a topic the topology reads.
type Input[K, V any] struct {
	d     *Driver
	topic string
	kc    codec.Codec[K]
	vc    codec.Codec[V]
}

// NewInput returns an input for topic, encoding with kc and vc.
func NewInput[K, V any](d *Driver, topic string, kc codec.Codec[K], vc codec.Codec[V]) *Input[K, V] {
	return &Input[K, V]{d: d, topic: topic, kc: kc, vc: vc}
}

// Pipe sends one record stamped with the driver's current time. The
// partition is murmur2 of the encoded key, as a Kafka producer picks it.
func (in *Input[K, V]) Pipe(key K, value V) error {
	return in.PipeRecord(processor.Record[K, V]{Key: key, Value: value, Timestamp: in.d.now})
}

// PipeAt sends one record with timestamp ts.
func (in *Input[K, V]) PipeAt(key K, value V, ts time.Time) error {
	return in.PipeRecord(processor.Record[K, V]{Key: key, Value: value, Timestamp: ts})
}

// PipeRecord sends one record with its timestamp and headers. A zero
// timestamp is replaced by the driver's current time. A record with
// Tombstone set is sent with a nil value (a delete for a table), whatever
// its Value.
func (in *Input[K, V]) PipeRecord(rec processor.Record[K, V]) error {
	r, err := in.raw(rec)
	if err != nil {
		return err
	}
	return in.d.pipe(r, false)
}

// PipeTo sends one record, as PipeRecord does, into the given partition
// of the topic instead of the one its key hashes to: the way a producer
// with another partitioner, or a manual one, would write it. Records with
// the same key in different partitions reach different tasks.
func (in *Input[K, V]) PipeTo(partition int32, rec processor.Record[K, V]) error {
	r, err := in.raw(rec)
	if err != nil {
		return err
	}
	r.Partition = partition
	return in.d.pipe(r, true)
}

// Tombstone sends a delete of key: a record with a nil value.
func (in *Input[K, V]) Tombstone(key K) error {
	return in.PipeRecord(processor.Record[K, V]{Key: key, Tombstone: true})
}

// raw encodes rec for topic in.
func (in *Input[K, V]) raw(rec processor.Record[K, V]) (*processor.RawRecord, error) {
	kb, err := in.kc.Encode(rec.Key)
	if err != nil {
		return nil, err
	}
	var vb []byte
	if !rec.Tombstone {
		if vb, err = in.vc.Encode(rec.Value); err != nil {
			return nil, err
		}
	}
	ts := rec.Timestamp
	if ts.IsZero() {
		ts = in.d.now
	}
	return &processor.RawRecord{Topic: in.topic, Key: kb, Value: vb, Timestamp: ts, Headers: rec.Headers}, nil
}

// PipeRaw sends bytes as they are, for example malformed values to test
// the dead-letter path. A nil value is a tombstone.
func (in *Input[K, V]) PipeRaw(key, value []byte, ts time.Time, headers ...processor.Header) error {
	if ts.IsZero() {
		ts = in.d.now
	}
	return in.d.pipe(&processor.RawRecord{Topic: in.topic, Key: key, Value: value, Timestamp: ts, Headers: headers}, false)
}

// OutputRecord is a record read from an output topic.
type OutputRecord[K, V any] struct {
	Key       K
	Value     V
	Timestamp time.Time
	Headers   []processor.Header
	Partition int32
	Offset    int64
	// Tombstone marks a record with a nil value (a delete).
	Tombstone bool
	// Err is set when the record's bytes did not decode with the
	// output's codecs; Key and Value are then zero.
	Err error
}

// Output reads typed records from a topic the topology writes.
type Output[K, V any] struct {
	d     *Driver
	topic string
	kc    codec.Codec[K]
	vc    codec.Codec[V]
	read  int
}

// NewOutput returns a reader of topic, decoding with kc and vc. It starts at
// the topic's first record.
func NewOutput[K, V any](d *Driver, topic string, kc codec.Codec[K], vc codec.Codec[V]) *Output[K, V] {
	return &Output[K, V]{d: d, topic: topic, kc: kc, vc: vc}
}

// ReadAll returns the records written since the last read, in the order
// they were produced (across partitions).
func (o *Output[K, V]) ReadAll() []OutputRecord[K, V] {
	t := o.d.topics[o.topic]
	if t == nil || o.read >= len(t.ordered) {
		return nil
	}
	recs := t.ordered[o.read:]
	o.read = len(t.ordered)
	out := make([]OutputRecord[K, V], len(recs))
	for i, r := range recs {
		or := OutputRecord[K, V]{Timestamp: r.Timestamp, Headers: r.Headers, Partition: r.Partition, Offset: r.Offset, Tombstone: r.Value == nil}
		var kerr, verr error
		if r.Key != nil {
			or.Key, kerr = o.kc.Decode(r.Key)
		}
		if r.Value != nil {
			or.Value, verr = o.vc.Decode(r.Value)
		}
		or.Err = errors.Join(kerr, verr)
		out[i] = or
	}
	return out
}

// ReadValues returns the values written since the last read.
func (o *Output[K, V]) ReadValues() []V {
	recs := o.ReadAll()
	vs := make([]V, len(recs))
	for i, r := range recs {
		vs[i] = r.Value
	}
	return vs
}

// ReadKeyValues returns the keys and values written since the last read,
// formatted as "key=value", for compact assertions and examples.
func (o *Output[K, V]) ReadKeyValues() []string {
	recs := o.ReadAll()
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = fmt.Sprintf("%v=%v", r.Key, r.Value)
	}
	return out
}

// Len returns the number of unread records.
func (o *Output[K, V]) Len() int {
	t := o.d.topics[o.topic]
	if t == nil {
		return 0
	}
	return len(t.ordered) - o.read
}
