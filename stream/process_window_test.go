package stream_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/streamtest"
)

// windowCounter counts each key's records per 10-second window in a
// declared window store and forwards each window's count as it changes.
type windowCounter struct {
	ctx    processor.Context[string, string]
	counts state.WindowStore[string, int64]
}

func (c *windowCounter) Init(ctx processor.Context[string, string]) error {
	c.ctx = ctx
	ws, err := processor.WindowStore[string, int64](ctx, "per10s")
	c.counts = ws
	return err
}

func (c *windowCounter) Process(rec processor.Record[string, string]) error {
	start := rec.Timestamp.UnixMilli() / 10_000 * 10_000
	n, _, err := c.counts.Get(rec.Key, start, start+10_000)
	if err != nil {
		return err
	}
	if err := c.counts.Put(rec.Key, start, start+10_000, n+1); err != nil {
		return err
	}
	c.ctx.Forward(processor.Record[string, string]{Key: rec.Key, Value: fmt.Sprintf("%d@%d", n+1, start), Timestamp: rec.Timestamp})
	return nil
}

func (c *windowCounter) Close() error { return nil }

// TestProcessWindowStore uses a window store from the Processor API: reads
// and writes, a one-key time-range Fetch, restore after a restart, and
// expiry beyond the declared retention.
func TestProcessWindowStore(t *testing.T) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.String())
	stream.Process(in, func() processor.Processor[string, string, string, string] { return &windowCounter{} },
		stream.WithStore(stream.WindowStore("per10s", time.Minute, codec.String(), codec.Int64()))).To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pipe := streamtest.NewInput(d, "in", codec.String(), codec.String())
	for _, ms := range []int64{1_000, 5_000, 12_000, 25_000, 29_000} {
		if err := pipe.PipeAt("k", "x", time.UnixMilli(ms)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pipe.PipeAt("other", "x", time.UnixMilli(3_000)); err != nil {
		t.Fatal(err)
	}
	fetch := func(from, to int64) string {
		t.Helper()
		ws, err := streamtest.WindowStore[string, int64](d, "per10s", 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		err = ws.Fetch("k", from, to, func(start, end int64, n int64) bool {
			got = append(got, fmt.Sprintf("[%d,%d)=%d", start, end, n))
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, " ")
	}
	// Starts in [from, to], both included.
	if got, want := fetch(0, 19_999), "[0,10000)=2 [10000,20000)=1"; got != want {
		t.Fatalf("Fetch(k, 0, 19999) = %s, want %s", got, want)
	}
	if got, want := fetch(10_000, 20_000), "[10000,20000)=1 [20000,30000)=2"; got != want {
		t.Fatalf("Fetch(k, 10000, 20000) = %s, want %s", got, want)
	}
	// The store comes back from its changelog after a restart.
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := d.CloseTasks(); err != nil {
		t.Fatal(err)
	}
	if err := pipe.PipeAt("k", "x", time.UnixMilli(21_000)); err != nil {
		t.Fatal(err)
	}
	if got, want := fetch(0, 100_000), "[0,10000)=2 [10000,20000)=1 [20000,30000)=3"; got != want {
		t.Fatalf("after restart: Fetch = %s, want %s", got, want)
	}
	// Windows starting more than the retention (1m) before the latest
	// start written expire with their segments.
	if err := pipe.PipeAt("k", "x", time.UnixMilli(400_000)); err != nil {
		t.Fatal(err)
	}
	if got, want := fetch(0, 1_000_000), "[400000,410000)=1"; got != want {
		t.Fatalf("after retention: Fetch = %s, want %s", got, want)
	}
	out := streamtest.NewOutput(d, "out", codec.String(), codec.String()).ReadValues()
	if got, want := strings.Join(out, " "), "1@0 2@0 1@10000 1@20000 2@20000 1@0 3@20000 1@400000"; got != want {
		t.Fatalf("forwarded %s, want %s", got, want)
	}
}

func TestProcessWindowStoreErrors(t *testing.T) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.String())
	stream.Process(in, func() processor.Processor[string, string, string, string] { return &windowCounter{} },
		stream.WithStore(stream.WindowStore("per10s", 0, codec.String(), codec.Int64()))).To("out")
	if _, err := b.Build(); err == nil || !strings.Contains(err.Error(), `store "per10s": retention 0s`) {
		t.Fatalf("Build: %v, want an error naming the store's retention", err)
	}
	b = stream.NewBuilder()
	in = stream.From(b, "in", codec.String(), codec.String())
	stream.Process(in, func() processor.Processor[string, string, string, string] { return &windowCounter{} },
		stream.WithStore(stream.KeyValueStore("per10s", codec.String(), codec.Int64()))).To("out")
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
	if err == nil || !strings.Contains(err.Error(), "not a window store") {
		t.Fatalf("got %v, want an error saying the store is not a window store", err)
	}
}
