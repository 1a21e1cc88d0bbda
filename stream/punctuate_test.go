package stream_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/streamtest"
)

// counter counts records per key in a declared store and emits every
// count on each punctuation.
type counter struct {
	kind   processor.PunctuationType
	every  time.Duration
	ctx    processor.Context[string, int64]
	counts state.KeyValue[string, int64]
	fired  *[]time.Time
}

func (c *counter) Init(ctx processor.Context[string, int64]) error {
	c.ctx = ctx
	kv, err := processor.KeyValueStore[string, int64](ctx, "counts")
	if err != nil {
		return err
	}
	c.counts = kv
	ctx.Schedule(c.every, c.kind, c.emit)
	return nil
}

func (c *counter) emit(now time.Time) error {
	*c.fired = append(*c.fired, now)
	return c.counts.All(func(k string, n int64) bool {
		c.ctx.Forward(processor.Record[string, int64]{Key: k, Value: n, Timestamp: now})
		return true
	})
}

func (c *counter) Process(rec processor.Record[string, string]) error {
	n, _, err := c.counts.Get(rec.Key)
	if err != nil {
		return err
	}
	return c.counts.Put(rec.Key, n+1)
}

func (c *counter) Close() error { return nil }

func counterTopology(t *testing.T, kind processor.PunctuationType, every time.Duration, fired *[]time.Time) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.String())
	out := stream.Process(in, func() processor.Processor[string, string, string, int64] {
		return &counter{kind: kind, every: every, fired: fired}
	}, stream.Named("counter"), stream.WithValue(codec.Int64()),
		stream.WithStore(stream.KeyValueStore("counts", codec.String(), codec.Int64())))
	out.To("counts")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestPunctuateStreamTime(t *testing.T) {
	var fired []time.Time
	topo := counterTopology(t, processor.StreamTime, time.Minute, &fired)
	plan, err := topo.Plan("app", map[string]int32{"in": 3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(plan.Internal, func(it processor.InternalTopic) bool {
		return it.Ref.Name == "app-counts-changelog" && it.Partitions == 3 && it.Configs["cleanup.policy"] == "compact"
	}) {
		t.Fatalf("no changelog for the declared store: %+v", plan.Internal)
	}
	d, err := streamtest.New(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := streamtest.NewInput(d, "in", codec.String(), codec.String())
	out := streamtest.NewOutput(d, "counts", codec.String(), codec.Int64())
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	// The first record starts the schedule at t0+1m; nothing fires yet.
	in.PipeAt("a", "x", t0)
	in.PipeAt("a", "x", t0.Add(30*time.Second))
	in.PipeAt("b", "x", t0.Add(59*time.Second))
	if out.Len() != 0 || len(fired) != 0 {
		t.Fatalf("fired before the interval: %v", fired)
	}
	// Crossing t0+1m fires once, after the record that crossed it.
	in.PipeAt("b", "x", t0.Add(61*time.Second))
	if got, want := out.ReadKeyValues(), []string{"a=2", "b=2"}; !slices.Equal(got, want) {
		t.Fatalf("first punctuation: got %v, want %v", got, want)
	}
	// An out-of-order record does not move stream time back or fire.
	in.PipeAt("a", "x", t0)
	if out.Len() != 0 {
		t.Fatal("out-of-order record fired a punctuation")
	}
	// A jump over several intervals fires once.
	in.PipeAt("c", "x", t0.Add(10*time.Minute))
	if got, want := out.ReadKeyValues(), []string{"a=3", "b=2", "c=1"}; !slices.Equal(got, want) {
		t.Fatalf("second punctuation: got %v, want %v", got, want)
	}
	if len(fired) != 2 || !fired[1].Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("fired at %v", fired)
	}
	// Wall-clock time does not drive a stream-time punctuator.
	if err := d.AdvanceWallClock(time.Hour); err != nil {
		t.Fatal(err)
	}
	if len(fired) != 2 {
		t.Fatalf("wall clock fired a stream-time punctuator: %v", fired)
	}
}

func TestPunctuateWallClock(t *testing.T) {
	var fired []time.Time
	topo := counterTopology(t, processor.WallClock, 10*time.Second, &fired)
	d, err := streamtest.New(topo, streamtest.Partitions("in", 2))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := streamtest.NewInput(d, "in", codec.String(), codec.String())
	out := streamtest.NewOutput(d, "counts", codec.String(), codec.Int64())
	start := d.WallClock()

	// Record timestamps do not drive a wall-clock punctuator.
	in.PipeAt("a", "x", start.Add(time.Hour))
	in.PipeAt("b", "x", start.Add(2*time.Hour))
	if len(fired) != 0 {
		t.Fatalf("records fired a wall-clock punctuator: %v", fired)
	}
	if err := d.AdvanceWallClock(9 * time.Second); err != nil {
		t.Fatal(err)
	}
	if len(fired) != 0 {
		t.Fatalf("fired early: %v", fired)
	}
	// Both tasks' punctuators fire, each emitting its own partition's keys.
	if err := d.AdvanceWallClock(time.Second); err != nil {
		t.Fatal(err)
	}
	if len(fired) != 2 {
		t.Fatalf("fired %d times, want once per task (2)", len(fired))
	}
	got := out.ReadKeyValues()
	slices.Sort(got)
	if want := []string{"a=1", "b=1"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, r := range out.ReadAll() {
		t.Fatalf("read twice: %v", r)
	}
}

func TestProcessStoreRestores(t *testing.T) {
	var fired []time.Time
	topo := counterTopology(t, processor.StreamTime, time.Hour, &fired)
	d, err := streamtest.New(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := streamtest.NewInput(d, "in", codec.String(), codec.String())
	for i := range 5 {
		in.Pipe(fmt.Sprint("k", i%2), "x")
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := d.CloseTasks(); err != nil {
		t.Fatal(err)
	}
	in.Pipe("k0", "x")
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	entries, err := streamtest.ReadStore[string, int64](d, "counts")
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(entries)
	if want := "[{k0 4} {k1 2}]"; got != want {
		t.Fatalf("store after restart: got %s, want %s", got, want)
	}
}

func TestProcessStoreUndeclared(t *testing.T) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.String())
	stream.Process(in, func() processor.Processor[string, string, string, int64] {
		return &counter{kind: processor.StreamTime, every: time.Minute, fired: new([]time.Time)}
	}, stream.Named("counter"), stream.WithValue(codec.Int64())).To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo, streamtest.FailFast())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = streamtest.NewInput(d, "in", codec.String(), codec.String()).Pipe("a", "x")
	if err == nil || !strings.Contains(err.Error(), `no state store "counts"`) {
		t.Fatalf("got %v, want an error naming the undeclared store", err)
	}
}
