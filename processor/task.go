package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa/internal/statedir"
	"github.com/kappa-streams/kappa/internal/tasklife"
	"github.com/kappa-streams/kappa/metrics"
	"github.com/kappa-streams/kappa/state"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RawRecord is a record as consumed or produced: bytes, not types.
type RawRecord = kgo.Record

// Collector takes a task's output records. Send is asynchronous; the
// Runtime's collector keeps the first delivery error and stops the tasks
// before their next record. It must be safe for concurrent use by many
// tasks.
type Collector interface {
	Send(rec *RawRecord)
}

// ErrorPolicy says what happens to a record whose decoding or processing
// fails.
type ErrorPolicy int

const (
	// DeadLetter sends the failed input record to the dead-letter topic
	// with headers naming the error, counts it, and goes on. The default.
	DeadLetter ErrorPolicy = iota
	// FailFast stops the task, and with it the app, with a *RecordError.
	FailFast
)

// Dead-letter header keys. The DLQ record keeps the input's key, value,
// timestamp and headers, and adds these.
const (
	HeaderError     = "kappa.error"      // the error text
	HeaderNode      = "kappa.node"       // the node that failed, when known
	HeaderTopic     = "kappa.topic"      // the input record's topic
	HeaderPartition = "kappa.partition"  // its partition, in decimal
	HeaderOffset    = "kappa.offset"     // its offset, in decimal
	HeaderTask      = "kappa.task"       // the task, as "sub_partition"
	HeaderKind      = "kappa.error.kind" // "decode", "panic" or "process"
)

// TaskEnv is what a task needs from the runtime that runs it.
type TaskEnv struct {
	AppID     string
	Collector Collector
	// Partitions returns the partition count of an output topic.
	Partitions func(topic string) (int32, error)
	OnError    ErrorPolicy
	Logger     *slog.Logger
	// StateDir is the root of persistent stores. Empty keeps every store
	// in memory (streamtest does).
	StateDir string
	// Clock returns the wall-clock time for punctuation; nil is time.Now.
	// streamtest sets it to a virtual clock.
	Clock func() time.Time
	// Cache is the record-cache budget the task's stores share with the
	// other tasks of the instance; nil gives each store a default budget
	// of its own.
	Cache *state.Cache
	// Globals holds the instance's global tables by name.
	Globals map[string]*GlobalStore
	// ExactlyOnce says the runtime commits in transactions: a task whose
	// state directory was left unclean (see internal/statedir) has
	// its stores wiped at open, to be restored from the committed
	// changelogs.
	ExactlyOnce bool
	// Metrics makes tasks keep the metrics that cost something per record:
	// TaskStats.ProducedTo, EndToEnd and the stream-time part of
	// Punctuation.
	Metrics bool
}

// EndToEndSampling is how many of the records a task sends count one
// in TaskStats.EndToEnd: the first, then every EndToEndSampling-th. A
// clock read per record sent cost W1 some 4% of its throughput.
const EndToEndSampling = 16

// DLQTopic returns the dead-letter topic of application appID.
func DLQTopic(appID string) string { return appID + "-dlq" }

// RecordError is the error of one input record.
type RecordError struct {
	Topic     string
	Partition int32
	Offset    int64
	Node      string // the failing node, when known
	Err       error
}

func (e *RecordError) Error() string {
	node := ""
	if e.Node != "" {
		node = " at node " + strconv.Quote(e.Node)
	}
	return fmt.Sprintf("record %s/%d@%d%s: %v", e.Topic, e.Partition, e.Offset, node, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// NodeError wraps an error returned by a user function with the node that
// called it.
type NodeError struct {
	Node string
	Err  error
}

func (e *NodeError) Error() string { return "node " + strconv.Quote(e.Node) + ": " + e.Err.Error() }
func (e *NodeError) Unwrap() error { return e.Err }

// PanicError is a recovered panic of a user function.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// DecodeFailure marks an error of decoding a record's key or value.
type DecodeFailure struct {
	Part string // "key" or "value"
	Err  error
}

func (e *DecodeFailure) Error() string { return "decode " + e.Part + ": " + e.Err.Error() }
func (e *DecodeFailure) Unwrap() error { return e.Err }

// TaskStats are a task's counters. They are updated by the task's goroutine
// and may be read from any goroutine.
type TaskStats struct {
	Processed   atomic.Int64 // input records processed without error
	DeadLetters atomic.Int64 // input records sent to the dead-letter topic
	Produced    atomic.Int64 // records sent to output topics
	// Dropped counts records dropped by the semantics, not by error:
	// tombstones reaching a key-changing operator, records with a nil key
	// reaching a key-based stateful operator.
	Dropped atomic.Int64
	// Late counts records dropped because every window they belong to had
	// closed (stream time had reached the window's close time: end + grace
	// for time windows; see package window for the others).
	Late     atomic.Int64
	Restored atomic.Int64 // changelog records applied while restoring
	// RestoreTotal is the changelog records the current restore expects.
	RestoreTotal atomic.Int64
	// DeadLettersBy counts DeadLetters by reason: metrics.ReasonDecode,
	// ReasonPanic and ReasonProcess (the HeaderKind of input records and
	// punctuations), and ReasonResult (results, see ForwardFailed).
	DeadLettersBy metrics.Counts
	// ProducedTo counts Produced by topic, and EndToEnd holds, for one in
	// EndToEndSampling of those records, the time from its timestamp to
	// its send; both only when TaskEnv.Metrics is set.
	ProducedTo metrics.Counts
	EndToEnd   metrics.Histogram
	// Punctuation holds the durations of the punctuations that fired
	// (those due at one point in stream time, or in wall-clock time), when
	// TaskEnv.Metrics is set.
	Punctuation metrics.Histogram
}

// StreamTimeMillis returns the task's stream time in Unix ms, or -1 before
// any record.
func (t *Task) StreamTimeMillis() int64 { return t.streamTime }

// SetRecordTime sets the timestamp, in Unix ms, that the current record
// counts with for stream time, in place of its record timestamp: a source
// with a timestamp extractor calls it before forwarding the record.
func (t *Task) SetRecordTime(ms int64) { t.streamTime = max(t.priorStreamTime, ms) }

// PriorStreamTimeMillis returns the stream time before the record being
// processed advanced it, or -1: what the task had seen, or restored from a
// commit, before this record.
func (t *Task) PriorStreamTimeMillis() int64 { return t.priorStreamTime }

// restoreStreamTime moves the stream time forward to ms, the stream time a
// previous owner of the task committed, so that windows closed before a
// restart stay closed after it.
func (t *Task) restoreStreamTime(ms int64) {
	if ms > t.streamTime {
		t.streamTime = ms
	}
}

// Task runs one partition of one sub-topology: it owns an instance of every
// node of that sub-topology and processes one input record at a time. Its
// methods, other than Stats, must be called from one goroutine at a time.
type Task struct {
	ID     TaskID
	env    *TaskEnv
	log    *slog.Logger
	srcs   map[string]RawReceiver
	meta   RecordMetadata
	node   string // the node running user code, for panics
	rr     uint32 // round robin for records without a key
	closer []func() error
	stats  TaskStats
	dir    *statedir.TaskDir
	stores map[string]*taskStore
	order  []string // store names in open order
	puncts []*punctuator
	late   metrics.Counts // late records dropped, by node
	// dlqLogged is when the task last logged a dead-lettered record, and
	// dlqQuiet how many it has not logged since.
	dlqLogged time.Time
	dlqQuiet  int64
	// sent counts the records sent, to sample the end-to-end latency.
	sent uint32
	// streamTime is the largest record timestamp seen, in Unix ms.
	streamTime int64
	// priorStreamTime is streamTime before the current record.
	priorStreamTime int64
	// mu is held by every life-cycle operation that changes the task's
	// stores (processing, punctuation, flush, commit, close) and by
	// interactive queries, which read the stores from other goroutines:
	// a query sees the state between two records, never within one.
	mu sync.Mutex
	// closed is set by close, under mu.
	closed bool
	// standby is set on a standby task: its restores are its catching up.
	standby bool
	// ends is the sum of the changelogs' end offsets at the last restore.
	ends int64
}

// newTask instantiates sub-topology sub for one partition.
func newTask(topo *Topology, sub int, partition int32, env *TaskEnv) (*Task, error) {
	if sub < 0 || sub >= len(topo.subs) {
		return nil, fmt.Errorf("processor: no sub-topology %d", sub)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Task{
		ID:         TaskID{SubTopology: sub, Partition: partition},
		env:        env,
		srcs:       make(map[string]RawReceiver),
		streamTime: -1, priorStreamTime: -1,
	}
	t.log = log.With("task", t.ID.String())
	s := topo.subs[sub]
	if err := t.openStores(s.Stores); err != nil {
		t.close()
		return nil, err
	}
	inst := make(map[*Node]any, len(s.Nodes))
	// Children before parents: reverse creation order.
	for i := len(s.Nodes) - 1; i >= 0; i-- {
		n := s.Nodes[i]
		children := make([]Child, len(n.Children))
		for j, c := range n.Children {
			children[j] = Child{Name: c.Name, Node: inst[c]}
		}
		v, err := n.factory(t, children)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("processor: task %s: node %q: %w", t.ID, n.Name, err)
		}
		inst[n] = v
		if n.Kind == KindSource {
			rr, ok := v.(RawReceiver)
			if !ok {
				t.close()
				return nil, fmt.Errorf("processor: task %s: source %q: factory returned %T, not a RawReceiver", t.ID, n.Name, v)
			}
			for _, ref := range n.Topics {
				t.srcs[ref.Resolve(env.AppID)] = rr
			}
		}
	}
	return t, nil
}

// AppID returns the application ID.
func (t *Task) AppID() string { return t.env.AppID }

// Logger returns the task's logger.
func (t *Task) Logger() *slog.Logger { return t.log }

// RecordMetadata returns the location of the input record being processed.
func (t *Task) RecordMetadata() RecordMetadata { return t.meta }

// StreamTime returns the largest record timestamp the task has seen, or
// the zero time before the first record.
func (t *Task) StreamTime() time.Time {
	if t.streamTime < 0 {
		return time.Time{}
	}
	return time.UnixMilli(t.streamTime)
}

// Drop counts a record dropped by the semantics (see TaskStats.Dropped).
func (t *Task) Drop() { t.stats.Dropped.Add(1) }

// DropLate counts a record that node dropped as late, per task (Stats.Late)
// and per node (LateByNode), and logs it at debug level.
func (t *Task) DropLate(node string, ts, streamTime int64) {
	t.stats.Late.Add(1)
	t.late.Add(node, 1)
	t.log.Debug("late record dropped", "node", node, "timestamp", ts, "stream_time", streamTime,
		"topic", t.meta.Topic, "partition", t.meta.Partition, "offset", t.meta.Offset)
}

// LateByNode returns the late records each node dropped. It may be called
// from any goroutine.
func (t *Task) LateByNode() map[string]int64 {
	out := t.late.Snapshot()
	if out == nil {
		out = make(map[string]int64)
	}
	return out
}

// Stats returns the task's counters.
func (t *Task) Stats() *TaskStats { return &t.stats }

// Enter records that node is about to run user code, so a panic names it.
func (t *Task) Enter(node string) { t.node = node }

// OnClose registers fn to run when the task closes, in reverse order of
// registration.
func (t *Task) OnClose(fn func() error) { t.closer = append(t.closer, fn) }

// Send hands an output record to the collector.
func (t *Task) Send(rec *RawRecord) {
	t.stats.Produced.Add(1)
	if t.env.Metrics {
		t.stats.ProducedTo.Add(rec.Topic, 1)
		if t.sent%EndToEndSampling == 0 && !rec.Timestamp.IsZero() {
			t.stats.EndToEnd.Observe(time.Since(rec.Timestamp))
		}
		t.sent++
	}
	t.env.Collector.Send(rec)
}

// PartitionCount returns the partition count of an output topic.
func (t *Task) PartitionCount(topic string) (int32, error) { return t.env.Partitions(topic) }

// PartitionFor picks the partition for key in topic the way Kafka's default
// partitioner does: murmur2 of the key bytes, so records land where Java
// producers put them. Records without a key are spread round robin.
func (t *Task) PartitionFor(topic string, key []byte) (int32, error) {
	n, err := t.env.Partitions(topic)
	if err != nil {
		return 0, err
	}
	if key == nil {
		t.rr++
		return int32(t.rr % uint32(n)), nil
	}
	return KeyPartition(key, n), nil
}

// process runs one consumed record through the task. It returns an error
// only under FailFast; under DeadLetter a failed record goes to the
// dead-letter topic and Process returns nil.
func (t *Task) process(r *RawRecord) error {
	src, ok := t.srcs[r.Topic]
	if !ok {
		return fmt.Errorf("processor: task %s does not read topic %q", t.ID, r.Topic)
	}
	t.meta = RecordMetadata{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	t.priorStreamTime = t.streamTime
	if ms := r.Timestamp.UnixMilli(); ms > t.streamTime {
		t.streamTime = ms
	}
	t.node = ""
	err := t.run(src, r)
	if err == nil {
		t.stats.Processed.Add(1)
	} else if err = t.fail(r, err); err != nil {
		return err
	}
	if len(t.puncts) == 0 {
		return nil
	}
	if !t.env.Metrics || !t.streamTimeDue() {
		return t.punctuateStreamTime() // may start punctuators scheduled before any record
	}
	start := time.Now()
	err = t.punctuateStreamTime()
	t.stats.Punctuation.Observe(time.Since(start))
	return err
}

// streamTimeDue reports whether a stream-time punctuator is due at the
// current stream time, so that punctuateStreamTime fires it.
func (t *Task) streamTimeDue() bool {
	now := t.StreamTime()
	for _, p := range t.puncts {
		if !p.done && p.kind == StreamTime && !p.next.IsZero() && !now.Before(p.next) {
			return true
		}
	}
	return false
}

func (t *Task) run(src RawReceiver, r *RawRecord) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &NodeError{Node: t.node, Err: &PanicError{Value: p, Stack: debug.Stack()}}
		}
	}()
	return src.ReceiveRaw(r)
}

// ForwardFailed handles the failure err of forwarding a result that is
// not part of the record being processed: a final window result, a join's
// non-match, a change flushed from a store's cache. Such a result was
// caused by earlier records, so failing the current record for it would
// blame (and dead-letter) the wrong one. Under DeadLetter the result goes
// to the dead-letter topic, with its encoded key and value and headers
// naming from (the store or node that emitted it) and the error, is
// counted, and ForwardFailed returns nil; under FailFast it returns the
// error, which stops the task. Call it from the task's goroutine.
func (t *Task) ForwardFailed(from string, key, value []byte, err error) error {
	at := &RawRecord{Topic: from, Partition: t.ID.Partition, Offset: -1, Key: key, Value: value, Timestamp: t.changelogTime()}
	return t.failAs(at, fmt.Errorf("forward from %q: %w", from, err), true)
}

// Guard runs fn, which forwards a result downstream, and turns a panic of
// the user code it reaches into an error naming the node, as Process does
// for records. Pair it with ForwardFailed.
func (t *Task) Guard(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &NodeError{Node: t.node, Err: &PanicError{Value: p, Stack: debug.Stack()}}
		}
	}()
	return fn()
}

// fail handles the failure err of an input record or a punctuation (r
// locates it) by the error policy.
func (t *Task) fail(r *RawRecord, err error) error { return t.failAs(r, err, false) }

// failAs is fail; result says r is a result (ForwardFailed), which the
// metrics count apart.
func (t *Task) failAs(r *RawRecord, err error, result bool) error {
	re := &RecordError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
	var ne *NodeError
	if errors.As(err, &ne) {
		re.Node = ne.Node
	}
	if t.env.OnError == FailFast {
		return re
	}
	kind := "process"
	var pe *PanicError
	var de *DecodeFailure
	switch {
	case errors.As(err, &pe):
		kind = "panic"
	case errors.As(err, &de):
		kind = "decode"
	}
	dlq := DLQTopic(t.env.AppID)
	headers := make([]Header, 0, len(r.Headers)+7)
	headers = append(headers, r.Headers...)
	headers = append(headers,
		Header{Key: HeaderError, Value: []byte(err.Error())},
		Header{Key: HeaderKind, Value: []byte(kind)},
		Header{Key: HeaderNode, Value: []byte(re.Node)},
		Header{Key: HeaderTopic, Value: []byte(r.Topic)},
		Header{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		Header{Key: HeaderOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
		Header{Key: HeaderTask, Value: []byte(t.ID.String())},
	)
	out := &RawRecord{Topic: dlq, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp, Headers: headers}
	if n, perr := t.env.Partitions(dlq); perr == nil {
		out.Partition = r.Partition % n
	}
	reason := kind
	if result {
		reason = metrics.ReasonResult
	}
	t.stats.DeadLetters.Add(1)
	t.stats.DeadLettersBy.Add(reason, 1)
	t.env.Collector.Send(out)
	t.logDeadLetter(r, re.Node, reason, err)
	return nil
}

// deadLetterLogEvery bounds how often a task logs dead-lettered records.
const deadLetterLogEvery = 5 * time.Second

// logDeadLetter logs a dead-lettered record as a warning, at most one line
// per deadLetterLogEvery per task: the line names the record and counts,
// in "suppressed", the dead letters not logged since the previous line.
// Every one is counted in Stats and in the metrics.
func (t *Task) logDeadLetter(r *RawRecord, node, reason string, err error) {
	now := t.now()
	if since := now.Sub(t.dlqLogged); !t.dlqLogged.IsZero() && since >= 0 && since < deadLetterLogEvery {
		t.dlqQuiet++
		return
	}
	t.log.Warn("record sent to dead-letter topic", "topic", r.Topic, "partition", r.Partition,
		"offset", r.Offset, "node", node, "reason", reason, "error", err, "suppressed", t.dlqQuiet)
	t.dlqLogged, t.dlqQuiet = now, 0
}

// close closes every node of the task. It returns the errors joined.
func (t *Task) close() error {
	var errs []error
	for i := len(t.closer) - 1; i >= 0; i-- {
		errs = append(errs, t.closer[i]())
	}
	t.closer = nil
	for i := len(t.order) - 1; i >= 0; i-- {
		ts := t.stores[t.order[i]]
		if ts.store != nil {
			errs = append(errs, ts.store.Close())
		} else {
			errs = append(errs, ts.engine.Close())
		}
	}
	t.stores, t.order = nil, nil
	if t.dir != nil {
		errs = append(errs, t.dir.Close())
		t.dir = nil
	}
	return errors.Join(errs...)
}

// NewTask creates the task of partition partition of sub-topology sub of
// topo. It is for Kappa's runtime and test driver, which hold k; a task
// made any other way is not run.
func NewTask(k tasklife.Key, topo *Topology, sub int, partition int32, env *TaskEnv) (*Task, error) {
	k.Check()
	return newTask(topo, sub, partition, env)
}

// Lifecycle returns the operations that drive the task through its life
// (restore, process, commit, close). It is for Kappa's runtime and test
// driver, which hold k.
func (t *Task) Lifecycle(k tasklife.Key) tasklife.Ops {
	k.Check()
	return taskOps{t}
}

// taskOps gives internal/runner and streamtest the life-cycle methods of
// a task, which are not exported to users of this package.
type taskOps struct{ t *Task }

func (o taskOps) Restore(ctx context.Context, r tasklife.ChangelogReader) error {
	return o.t.restore(ctx, r)
}
func (o taskOps) CatchUp(ctx context.Context, r tasklife.ChangelogReader) error {
	o.t.standby = true
	return o.t.restore(ctx, r)
}
func (o taskOps) Positions() (applied, end int64, err error) { return o.t.positions() }
func (o taskOps) RestoreStreamTime(ms int64)                 { o.t.restoreStreamTime(ms) }
func (o taskOps) NextWallClock() time.Time                   { return o.t.nextWallClock() }
func (o taskOps) MarkUnclean() error                         { return o.t.markUnclean() }
func (o taskOps) MarkClean() error                           { return o.t.markClean() }
func (o taskOps) Process(rec *RawRecord) error               { return locked1(o.t, o.t.process, rec) }
func (o taskOps) PunctuateWallClock(now time.Time) error {
	return locked1(o.t, o.t.punctuateWallClock, now)
}
func (o taskOps) FlushStores() error  { return locked(o.t, o.t.flushStores) }
func (o taskOps) CommitStores() error { return locked(o.t, o.t.commitStores) }
func (o taskOps) Close() error {
	return locked(o.t, func() error {
		o.t.closed = true
		return o.t.close()
	})
}

// Read runs fn with the store name under the task's lock, unless the
// task is closed.
func (o taskOps) Read(name string, fn func(store any) error) error {
	o.t.mu.Lock()
	defer o.t.mu.Unlock()
	if o.t.closed {
		return state.ErrClosed
	}
	s, ok := o.t.Store(name)
	if !ok {
		return fmt.Errorf("processor: task %s has no store %q", o.t.ID, name)
	}
	return fn(s)
}

func locked(t *Task, fn func() error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fn()
}

func locked1[A any](t *Task, fn func(A) error, a A) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fn(a)
}
