package ksdiff_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/window"
)

// kappaApp is the Kappa app, running in the test's process.
type kappaApp struct {
	*kappa.App
	cancel context.CancelFunc
	exited chan struct{}
	err    error // what Run returned, once exited is closed
}

// startKappa runs topo as app appID, at-least-once with a commit every
// 100 ms, as KsDiff runs Kafka Streams. It is stopped when the test ends if
// stop has not stopped it.
func startKappa(t *testing.T, topo *processor.Topology, appID string, brokers []string) *kappaApp {
	t.Helper()
	app, err := kappa.New(topo,
		kappa.AppID(appID), kappa.Brokers(brokers...), kappa.StateDir(t.TempDir()),
		kappa.CommitInterval(100*time.Millisecond), kappa.HandleSignals(false),
		// Kafka Streams (max.task.idle.ms 0) waits as long as it takes
		// for a join's input that is known to lag; Kappa waits at most
		// MaxTaskIdle, 100 ms by default, which a loaded machine can
		// exceed, and a stream-table join then reads the table ahead of
		// or behind the stream.
		kappa.MaxTaskIdle(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &kappaApp{App: app, cancel: cancel, exited: make(chan struct{})}
	go func() {
		a.err = app.Run(ctx)
		close(a.exited)
	}()
	t.Cleanup(func() { a.stop(60 * time.Second) })
	return a
}

// failed returns why the app cannot make progress any more, or nil.
func (a *kappaApp) failed() error {
	select {
	case <-a.exited:
		return fmt.Errorf("Kappa stopped: Run returned %v", a.err)
	default:
		return nil
	}
}

// stop stops the app (which commits) and waits for Run to return.
func (a *kappaApp) stop(within time.Duration) error {
	a.cancel()
	select {
	case <-a.exited:
		return a.err
	case <-time.After(within):
		return fmt.Errorf("Kappa did not stop within %v", within)
	}
}

// kappaTopology builds every case's Kappa side into one topology: one
// sub-topology (two for rekeyCount) per case, with its own topics and
// stores, as KsDiff builds them into one Kafka Streams topology.
func kappaTopology(t *testing.T, cases []*diffCase) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	for _, c := range cases {
		addKappa(b, c)
	}
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func addKappa(b *stream.Builder, c *diffCase) {
	str := codec.String()
	source := func(i int) stream.Stream[string, string] { return stream.From(b, c.input(i), str, str) }
	table := func(i int, store string) stream.Table[string, string] {
		return stream.TableFrom(b, c.input(i), str, str, stream.Materialized(c.name+"-"+store))
	}
	sessions := window.Session(gap).Grace(grace)
	switch c.kappa {
	case tumbling:
		counts := stream.WindowedBy(source(0).GroupByKey(), window.Tumbling(size).Grace(grace)).
			Count(stream.Materialized(c.name+"-counts"), stream.EmitFinal())
		writeWindowed(counts, c.outKappa())
	case session:
		writeWindowed(stream.WindowedBy(source(0).GroupByKey(), sessions).
			Count(stream.Materialized(c.name+"-sessions")), c.outKappa())
	case sessionFinal:
		writeWindowed(stream.WindowedBy(source(0).GroupByKey(), sessions).
			Count(stream.Materialized(c.name+"-sessions"), stream.EmitFinal()), c.outKappa())
	case streamTable:
		stream.JoinTable(source(0), table(1, "rows"), func(_, v, row string) string { return v + "|" + row }).
			To(c.outKappa())
	case tableTable:
		stream.JoinTables(table(0, "left"), table(1, "right"), func(_, l, r string) string { return l + "|" + r }).
			ToStream().To(c.outKappa())
	case rekeyCount:
		counts := stream.SelectKey(source(0), func(_, v string) string { return category(v) }).
			GroupByKey(stream.Named(c.name + "-rekey")).Count(stream.Materialized(c.name + "-counts"))
		stream.MapValues(counts.ToStream(), decimal).To(c.outKappa())
	default:
		panic(fmt.Sprintf("ksdiff: no Kappa topology %q", c.kappa))
	}
}

// writeWindowed writes windowed counts as KsDiff does: key "key@start@end",
// the count in decimal, a deleted window as a tombstone.
func writeWindowed(counts stream.Table[window.Windowed[string], int64], topic string) {
	stream.MapValues(counts.ToStream(), func(_ window.Windowed[string], n int64) string { return decimal("", n) }).
		To(topic, stream.WithKey(windowedKey))
}

func decimal(_ string, n int64) string { return strconv.FormatInt(n, 10) }

// windowedKey encodes a windowed key as "key@start@end".
var windowedKey = codec.Func("ksdiff-windowed",
	func(k window.Windowed[string]) ([]byte, error) {
		return []byte(windowKey(k.Key, k.Window.Start, k.Window.End)), nil
	},
	func(b []byte) (window.Windowed[string], error) {
		var k window.Windowed[string]
		f := strings.Split(string(b), "@")
		if len(f) != 3 {
			return k, errors.New("want key@start@end")
		}
		start, err1 := strconv.ParseInt(f[1], 10, 64)
		end, err2 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return k, err
		}
		return window.Windowed[string]{Key: f[0], Window: window.Window{Start: start, End: end}}, nil
	})
