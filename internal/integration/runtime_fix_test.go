package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/window"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The tests here run on the embedded broker and check that no result is
// lost: a rejected output stops the app before its next commit, a
// wall-clock punctuator's store writes are committed on an idle input,
// and records of a joined input that are not where Kappa's partitioner
// puts their key are counted and reported.

// TestProduceFailureStopsBeforeCommit writes an output record larger than
// the output topic's max.message.bytes. The app must stop on its own long
// before the next commit (the interval is an hour), with an error naming
// the topic and the broker's cause, and commit nothing; a restart then
// reprocesses the input from the start, so every input reaches the output.
func TestProduceFailureStopsBeforeCommit(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "words", 1)
	kafkatest.CreateTopic(t, seeds, "echo", 1, "max.message.bytes", "1000")
	var oversize atomic.Bool
	oversize.Store(true)
	bld := stream.NewBuilder()
	words := stream.From(bld, "words", codec.String(), codec.String())
	stream.MapValues(words, func(_ string, v string) string {
		if v == "big" && oversize.Load() {
			return strings.Repeat("x", 4000)
		}
		return v
	}).To("echo")
	topo, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	var inputs []*kgo.Record
	want := map[string]bool{}
	for i := range 30 {
		v := "w" + strconv.Itoa(i)
		if i == 10 {
			v = "big"
		}
		want[v] = true
		inputs = append(inputs, &kgo.Record{Topic: "words", Key: []byte("k"), Value: []byte(v)})
	}
	cl := kafkatest.Client(t, seeds)
	kafkatest.Produce(t, cl, inputs...)

	app, err := kappa.New(topo, kappa.AppID("echo"), kappa.Brokers(seeds...), kappa.CommitInterval(time.Hour), kappa.HandleSignals(false))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- app.Run(ctx) }()
	select {
	case err = <-errc:
	case <-time.After(30 * time.Second):
		cancel()
		<-errc
		t.Fatal("the app still ran 30s after an output was rejected: the failure waited for the next commit")
	}
	var pe *processor.ProduceError
	if !errors.As(err, &pe) || pe.Topic != "echo" || !errors.Is(err, processor.ErrProduce) || !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("Run returned %v, want a ProduceError for topic echo caused by MESSAGE_TOO_LARGE", err)
	}
	if msg := err.Error(); !strings.Contains(msg, `"echo"`) || !strings.Contains(msg, "MESSAGE_TOO_LARGE") {
		t.Fatalf("error %q does not name the topic and the cause", msg)
	}
	if off := committed(t, cl, "echo", "words", 0); off >= 0 {
		t.Fatalf("offset %d committed after an output was lost", off)
	}

	// A restart without the oversized output reprocesses every input.
	oversize.Store(false)
	_, stop := runApp(t, topo, kappa.AppID("echo"), kappa.Brokers(seeds...), kappa.CommitInterval(100*time.Millisecond))
	kafkatest.Eventually(t, 30*time.Second, "the restarted app to commit every input", func() bool {
		return committed(t, cl, "echo", "words", 0) == int64(len(inputs))
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, r := range kafkatest.Consume(t, seeds, "echo", int(endOffsets(t, seeds, "echo")), 30*time.Second) {
		delete(want, string(r.Value))
	}
	if len(want) > 0 {
		t.Fatalf("inputs lost: %v never reached the output", want)
	}
}

// tickWriter writes an increasing count to its store from a wall-clock
// punctuator, once it has seen a record.
type tickWriter struct {
	store state.KeyValue[string, int64]
	seen  bool
	n     int64
}

// Init opens the store and schedules the punctuator.
func (w *tickWriter) Init(ctx processor.Context[string, string]) (err error) {
	w.store, err = processor.KeyValueStore[string, int64](ctx, "ticks")
	if err != nil {
		return err
	}
	ctx.Schedule(20*time.Millisecond, processor.WallClock, func(time.Time) error {
		if !w.seen {
			return nil
		}
		w.n++
		return w.store.Put("tick", w.n)
	})
	return nil
}

// Process notes that a record arrived.
func (w *tickWriter) Process(processor.Record[string, string]) error {
	w.seen = true
	return nil
}

// Close does nothing.
func (w *tickWriter) Close() error { return nil }

// TestWallClockPunctuationIsCommitted sends one record, then nothing: the
// store writes of a wall-clock punctuator must still be flushed to the
// changelog at each commit, not only at shutdown.
func TestWallClockPunctuationIsCommitted(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "pings", 1)
	bld := stream.NewBuilder()
	pings := stream.From(bld, "pings", codec.String(), codec.String())
	stream.Process(pings, func() processor.Processor[string, string, string, string] { return &tickWriter{} },
		stream.Named("ticker"), stream.WithStore(stream.KeyValueStore("ticks", codec.String(), codec.Int64())))
	topo, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.Produce(t, kafkatest.Client(t, seeds), &kgo.Record{Topic: "pings", Key: []byte("p"), Value: []byte("ping")})
	app, stop := runApp(t, topo, kappa.AppID("ticker"), kappa.Brokers(seeds...), kappa.CommitInterval(100*time.Millisecond))
	kafkatest.Eventually(t, 30*time.Second, "the record to be processed", func() bool { return app.Processed() == 1 })
	// Before the fix, the commit after the record flushed the store at
	// most once; later punctuations stayed in the cache until shutdown.
	changes := kafkatest.Consume(t, seeds, "ticker-ticks-changelog", 3, 30*time.Second)
	for _, r := range changes {
		if string(r.Key) != "tick" {
			t.Fatalf("changelog record with key %q", r.Key)
		}
	}
	if app.Commits() < 3 {
		t.Fatalf("%d commits for %d changelog records", app.Commits(), len(changes))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the JSON log records written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestMispartitionedJoinInput writes records of a joined topic into the
// wrong partitions, as a librdkafka producer with its default partitioner
// does. They are counted in TaskStatus.Mispartitioned, records without a
// key are not, and one warning names the topic and the fix.
func TestMispartitionedJoinInput(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	const parts = 4
	kafkatest.CreateTopic(t, seeds, "orders", parts)
	kafkatest.CreateTopic(t, seeds, "payments", parts)
	bld := stream.NewBuilder()
	orders := stream.From(bld, "orders", codec.String(), codec.String())
	payments := stream.From(bld, "payments", codec.String(), codec.String())
	stream.JoinStreams(orders, payments, window.JoinWindowsOf(time.Minute, time.Minute),
		func(_ string, o, p string) string { return o + "+" + p }).To("paid")
	topo, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	const wrong = 7
	for i := range 20 {
		key := []byte("order" + strconv.Itoa(i))
		p := processor.KeyPartition(key, parts)
		if i < wrong {
			recs = append(recs, &kgo.Record{Topic: "orders", Key: key, Value: []byte("o"), Partition: (p + 1) % parts})
		} else {
			recs = append(recs, &kgo.Record{Topic: "orders", Key: key, Value: []byte("o"), Partition: p})
		}
		recs = append(recs, &kgo.Record{Topic: "payments", Key: key, Value: []byte("p"), Partition: p})
	}
	for p := range int32(parts) {
		recs = append(recs, &kgo.Record{Topic: "orders", Value: []byte("no key"), Partition: p})
	}
	kafkatest.Produce(t, kafkatest.Client(t, seeds, kgo.RecordPartitioner(kgo.ManualPartitioner())), recs...)

	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, stop := runApp(t, topo, kappa.AppID("payments"), kappa.Brokers(seeds...),
		kappa.CommitInterval(100*time.Millisecond), kappa.Logger(log))
	kafkatest.Eventually(t, 30*time.Second, "every record to be processed", func() bool {
		return app.Processed() == int64(len(recs))
	})
	total := int64(0)
	for _, st := range app.TaskStatus() {
		total += st.Mispartitioned
	}
	if total != wrong {
		t.Fatalf("%d records counted as mispartitioned, want %d", total, wrong)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	warned := map[string]int{}
	for _, l := range logs.lines(t) {
		if msg, _ := l["msg"].(string); strings.Contains(msg, "not in the partition of its key") {
			topic, _ := l["topic"].(string)
			warned[topic]++
			fix, _ := l["fix"].(string)
			if !strings.Contains(fix, "partitioner=murmur2_random") || l["partition"] == nil {
				t.Errorf("warning without the partition or the fix: %v", l)
			}
		}
	}
	if warned["orders"] != 1 || len(warned) != 1 {
		t.Fatalf("mispartition warnings per topic: %v, want one for orders", warned)
	}
}
