package kappa_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

type click struct {
	User    string `json:"user"`
	Seq     int    `json:"seq"`
	Article string `json:"article"`
	Bot     bool   `json:"bot"`
}

// routerTopology drops bots and emits "<user>:<seq>:<article>" keyed by
// user: every surviving input appears once, and per-key order can be
// checked from the sequence numbers.
func routerTopology(t testing.TB) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	clicks := stream.From(b, "clicks", codec.String(), codec.JSON[click]())
	human := clicks.Filter(func(_ string, c click) bool { return !c.Bot }, stream.Named("humans"))
	stream.MapValues(human, func(_ string, c click) string {
		return fmt.Sprintf("%s:%d:%s", c.User, c.Seq, c.Article)
	}, stream.Named("format")).To("routed")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// makeClicks returns n clicks over users users with per-user sequence
// numbers; every tenth is a bot.
func makeClicks(n, users int) ([]*kgo.Record, int) {
	recs := make([]*kgo.Record, n)
	seq := make([]int, users)
	humans := 0
	for i := range n {
		u := i % users
		c := click{User: "u" + strconv.Itoa(u), Seq: seq[u], Article: "a" + strconv.Itoa(i%97), Bot: i%10 == 9}
		seq[u]++
		if !c.Bot {
			humans++
		}
		v, _ := json.Marshal(c)
		recs[i] = &kgo.Record{Topic: "clicks", Key: []byte(c.User), Value: v}
	}
	return recs, humans
}

// checkRouted verifies each human click appears, in per-user order, at
// least once (exactlyOnce: exactly once).
func checkRouted(t *testing.T, out []*kgo.Record, inputs []*kgo.Record, exactlyOnce bool) {
	t.Helper()
	want := make(map[string]bool)
	for _, r := range inputs {
		var c click
		json.Unmarshal(r.Value, &c)
		if !c.Bot {
			want[fmt.Sprintf("%s:%d:%s", c.User, c.Seq, c.Article)] = true
		}
	}
	seen := make(map[string]int)
	last := make(map[string]int)
	for _, r := range out {
		v := string(r.Value)
		seen[v]++
		parts := strings.Split(v, ":")
		if parts[0] != string(r.Key) {
			t.Fatalf("output %q has key %q", v, r.Key)
		}
		seq, _ := strconv.Atoi(parts[1])
		if prev, ok := last[parts[0]]; ok && seq <= prev && exactlyOnce {
			t.Fatalf("user %s: seq %d after %d: per-key order broken", parts[0], seq, prev)
		}
		last[parts[0]] = seq
		if !want[v] {
			t.Fatalf("unexpected output %q", v)
		}
	}
	missing := 0
	for v := range want {
		if seen[v] == 0 {
			missing++
		}
		if exactlyOnce && seen[v] > 1 {
			t.Fatalf("%q appears %d times", v, seen[v])
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d records missing from the output", missing, len(want))
	}
}

// runApp runs an app in the background; the returned stop cancels it and
// returns Run's error.
func runApp(t *testing.T, topo *processor.Topology, opts ...kappa.Opt) (*kappa.App, func() error) {
	t.Helper()
	app, err := kappa.New(topo, append([]kappa.Opt{kappa.HandleSignals(false)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- app.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(60 * time.Second):
				runErr = errors.New("app did not stop within 60s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return app, stop
}

func TestTwoInstances200k(t *testing.T) {
	if testing.Short() {
		t.Skip("200k records through the broker; run without -short")
	}
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 4)
	topo := routerTopology(t)
	opts := []kappa.Opt{kappa.AppID("router"), kappa.Brokers(seeds...), kappa.CommitInterval(200 * time.Millisecond), kappa.SessionTimeout(10 * time.Second)}
	a1, stop1 := runApp(t, topo, opts...)
	a2, stop2 := runApp(t, topo, opts...)
	kafkatest.Eventually(t, 30*time.Second, "both instances to own tasks", func() bool {
		return len(a1.Tasks()) == 2 && len(a2.Tasks()) == 2
	})
	inputs, humans := makeClicks(200_000, 1000)
	kafkatest.Produce(t, kafkatest.Client(t, seeds), inputs...)
	out := kafkatest.Consume(t, seeds, "routed", humans, 90*time.Second)
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	// Nothing extra arrives after both stopped and committed.
	out = kafkatest.Consume(t, seeds, "routed", len(out), 10*time.Second)
	checkRouted(t, out, inputs, true)
	if a1.Processed() == 0 || a2.Processed() == 0 {
		t.Fatalf("work not shared: %d and %d processed", a1.Processed(), a2.Processed())
	}
}
