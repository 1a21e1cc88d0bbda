package integration_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/streamtest"
	"github.com/kappa-streams/kappa/window"
	"github.com/twmb/franz-go/pkg/kgo"
)

// windowsTopology emits the final count of each session and each sliding
// window of a key, once per window, when it closes.
func windowsTopology(t testing.TB) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	g := stream.From(b, "events", codec.String(), codec.String()).GroupByKey()
	out := stream.With(codec.Windowed(codec.String()), codec.Int64())
	stream.WindowedBy(g, window.Session(10*time.Second).Grace(5*time.Second)).
		Count(stream.Materialized("sessions"), stream.EmitFinal()).ToStream().To("session-counts", out)
	stream.WindowedBy(g, window.Sliding(10*time.Second).Grace(5*time.Second)).
		Count(stream.Materialized("sliding"), stream.EmitFinal()).ToStream().To("sliding-counts", out)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// TestWindowsRestartOnBroker stops an app with EmitFinal session and
// sliding counts in the middle of open windows, and starts it again on a
// fresh state dir (a full restore, stream time from the commit): the final
// results are exactly those of an uninterrupted run (streamtest, same
// records), each window once.
func TestWindowsRestartOnBroker(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var recs []*kgo.Record
	ts := int64(1_000_000)
	for i := range 3000 {
		ts += rng.Int64N(200)
		at := ts
		if rng.IntN(10) == 0 {
			at -= rng.Int64N(20_000) // some within grace, some late
		}
		recs = append(recs, &kgo.Record{Topic: "events", Key: fmt.Appendf(nil, "k%d", rng.IntN(40)),
			Value: fmt.Appendf(nil, "v%d", i), Timestamp: time.UnixMilli(at)})
	}
	topo := windowsTopology(t)

	// The reference: one uninterrupted run.
	d, err := streamtest.New(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pipe := streamtest.NewInput(d, "events", codec.String(), codec.String())
	for _, r := range recs {
		if err := pipe.PipeAt(string(r.Key), string(r.Value), r.Timestamp); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{}
	for _, topic := range []string{"session-counts", "sliding-counts"} {
		for _, r := range streamtest.NewOutput(d, topic, codec.Windowed(codec.String()), codec.Int64()).ReadAll() {
			want[topic] = append(want[topic], fmt.Sprintf("%s[%d,%d]=%d", r.Key.Key, r.Key.Window.Start, r.Key.Window.End, r.Value))
		}
		if len(want[topic]) < 100 {
			t.Fatalf("%s: the reference run emitted only %d results", topic, len(want[topic]))
		}
	}

	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "events", 1)
	cl := kafkatest.Client(t, seeds)
	opts := func() []kappa.Opt {
		return []kappa.Opt{kappa.AppID("windows"), kappa.Brokers(seeds...), kappa.StateDir(t.TempDir()),
			kappa.CommitInterval(100 * time.Millisecond)}
	}
	half := len(recs) / 2
	app, stop := runApp(t, topo, opts()...)
	kafkatest.Produce(t, cl, recs[:half]...)
	kafkatest.Eventually(t, 60*time.Second, "first half processed", func() bool { return app.Processed() == int64(half) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	app, stop = runApp(t, topo, opts()...)
	kafkatest.Produce(t, cl, recs[half:]...)
	kafkatest.Eventually(t, 60*time.Second, "second half processed", func() bool { return app.Processed() == int64(len(recs)-half) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"session-counts", "sliding-counts"} {
		n := int(endOffsets(t, seeds, topic))
		var got []string
		for _, r := range kafkatest.Consume(t, seeds, topic, n, 30*time.Second) {
			k, err := codec.Windowed(codec.String()).Decode(r.Key)
			if err != nil {
				t.Fatal(err)
			}
			v, err := codec.Int64().Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s[%d,%d]=%d", k.Key, k.Window.Start, k.Window.End, v))
		}
		if fmt.Sprint(got) != fmt.Sprint(want[topic]) {
			t.Fatalf("%s: %d results with a restart, %d without; first difference: %s", topic, len(got), len(want[topic]), firstDiff(got, want[topic]))
		}
	}
}

func firstDiff(got, want []string) string {
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			return "missing " + want[i]
		case i >= len(want):
			return "extra " + got[i]
		case got[i] != want[i]:
			return fmt.Sprintf("got %s, want %s", got[i], want[i])
		}
	}
	return "none"
}
