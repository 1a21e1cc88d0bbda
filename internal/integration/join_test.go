package integration_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/window"
	"github.com/twmb/franz-go/pkg/kgo"
)

// impressionsAndClicks returns impressions and the clicks on some of them,
// keyed by impression ID, clicks 1 to 60 s after their impression, in time
// order with some clicks arriving out of order.
func impressionsAndClicks(n int) (imps, clicks []*kgo.Record) {
	rng := rand.New(rand.NewPCG(9, 9))
	base := time.UnixMilli(1_000_000_000)
	for i := range n {
		at := base.Add(time.Duration(i) * 20 * time.Millisecond)
		id := fmt.Sprintf("imp%d", rng.IntN(n/4)) // repeated IDs: several matches per key
		imps = append(imps, &kgo.Record{Topic: "impressions", Key: []byte(id), Value: fmt.Appendf(nil, "i%d", i), Timestamp: at})
		if rng.IntN(3) > 0 {
			clicks = append(clicks, &kgo.Record{Topic: "clicks", Key: []byte(id), Value: fmt.Appendf(nil, "c%d", i),
				Timestamp: at.Add(time.Second + time.Duration(rng.IntN(59_000))*time.Millisecond)})
		}
	}
	slices.SortStableFunc(clicks, func(a, b *kgo.Record) int { return a.Timestamp.Compare(b.Timestamp) })
	return imps, clicks
}

// clickJoinTopology left-joins impressions with their clicks within a
// minute, writing to out.
func clickJoinTopology(t testing.TB, out string) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	imps := stream.From(b, "impressions", codec.String(), codec.String())
	clicks := stream.From(b, "clicks", codec.String(), codec.String())
	stream.LeftJoinStreams(imps, clicks, window.JoinWindowsOf(0, time.Minute).Grace(5*time.Second),
		func(_ string, imp, click string, clicked bool) string {
			if !clicked {
				return imp + "+none"
			}
			return imp + "+" + click
		}).To(out)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// readPerKey reads topic whole and returns each key's values and
// timestamps, in order.
func readPerKey(t testing.TB, seeds []string, topic string) map[string][]string {
	t.Helper()
	n := int(endOffsets(t, seeds, topic))
	got := map[string][]string{}
	for _, r := range kafkatest.Consume(t, seeds, topic, n, 30*time.Second) {
		got[string(r.Key)] = append(got[string(r.Key)], fmt.Sprintf("%s@%d", r.Value, r.Timestamp.UnixMilli()))
	}
	return got
}

// TestJoinThreeInstancesAndReplay runs a stream-stream join on three
// instances over 6-partition inputs: every task (partition p of both
// inputs) runs on exactly one instance, and every impression's results
// are complete. A replay of the same input by one instance under a new
// application ID then gives the same output sequence for every key.
func TestJoinThreeInstancesAndReplay(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "impressions", 6)
	kafkatest.CreateTopic(t, seeds, "clicks", 6)
	imps, clicks := impressionsAndClicks(3000)
	cl := kafkatest.Client(t, seeds)
	kafkatest.Produce(t, cl, append(slices.Clone(imps), clicks...)...)

	// The expected results: per impression, its clicks within a minute
	// after it, or "none".
	want := map[string]int{}
	for _, imp := range imps {
		for _, c := range clicks {
			if string(c.Key) == string(imp.Key) && !c.Timestamp.Before(imp.Timestamp) && !c.Timestamp.After(imp.Timestamp.Add(time.Minute)) {
				want[fmt.Sprintf("%s=%s+%s", imp.Key, imp.Value, c.Value)]++
			}
		}
	}

	topo := clickJoinTopology(t, "joined-a")
	var apps []*kappa.App
	for range 3 {
		app, _ := runApp(t, topo, kappa.AppID("join-a"), kappa.Brokers(seeds...), kappa.StateDir(t.TempDir()),
			kappa.CommitInterval(100*time.Millisecond), kappa.SessionTimeout(10*time.Second), kappa.MaxTaskIdle(5*time.Second))
		apps = append(apps, app)
	}
	total := int64(len(imps) + len(clicks))
	kafkatest.Eventually(t, 60*time.Second, "all records processed by 3 instances", func() bool {
		var n int64
		for _, a := range apps {
			n += a.Processed()
		}
		return n >= total
	})
	seen := map[processor.TaskID]int{}
	for _, a := range apps {
		for _, id := range a.Tasks() {
			seen[id]++
		}
	}
	if len(seen) != 6 {
		t.Fatalf("tasks %v, want 6 (one per partition of both inputs)", seen)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("task %s runs on %d instances", id, n)
		}
	}
	// Every match shows up (outputs are written asynchronously).
	kafkatest.Eventually(t, 30*time.Second, "every match written", func() bool {
		if _, err := sumEndOffsets(t, seeds, "joined-a"); err != nil {
			return false
		}
		got := map[string]int{}
		for key, vs := range readPerKey(t, seeds, "joined-a") {
			for _, v := range vs {
				val, _, _ := cutLast(v, "@")
				got[key+"="+val]++
			}
		}
		for k, n := range want {
			if got[k] < n {
				return false
			}
		}
		return true
	})

	// Replay under a new application ID, on one instance.
	_, stop := runApp(t, clickJoinTopology(t, "joined-b"), kappa.AppID("join-b"), kappa.Brokers(seeds...),
		kappa.StateDir(t.TempDir()), kappa.CommitInterval(100*time.Millisecond), kappa.MaxTaskIdle(5*time.Second))
	kafkatest.Eventually(t, 60*time.Second, "the replay to catch up", func() bool {
		n, err := sumEndOffsets(t, seeds, "joined-b")
		return err == nil && n >= endOffsets(t, seeds, "joined-a")
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	a, bOut := readPerKey(t, seeds, "joined-a"), readPerKey(t, seeds, "joined-b")
	for key, vs := range a {
		if !slices.Equal(vs, bOut[key]) {
			t.Fatalf("key %s: first run %v, replay %v", key, vs, bOut[key])
		}
	}
	if len(a) != len(bOut) {
		t.Fatalf("%d keys in the first run, %d in the replay", len(a), len(bOut))
	}
	nonMatches := 0
	for _, vs := range a {
		for _, v := range vs {
			if s, _, _ := cutLast(v, "@"); strings.HasSuffix(s, "+none") {
				nonMatches++
			}
		}
	}
	if nonMatches == 0 {
		t.Fatal("no impression was emitted without a click: the left join's non-matches went untested")
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func cutLast(s, sep string) (string, string, bool) {
	for i := len(s) - len(sep); i >= 0; i-- {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

// TestGlobalTableBootstrap checks that a global table is read whole
// before any record is joined with it, whatever the partition counts, and
// that rows written later reach the running app.
func TestGlobalTableBootstrap(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "articles", 3)
	kafkatest.CreateTopic(t, seeds, "views", 2)
	cl := kafkatest.Client(t, seeds)
	var articles, views []*kgo.Record
	for i := range 1000 {
		articles = append(articles, &kgo.Record{Topic: "articles", Key: fmt.Appendf(nil, "a%d", i), Value: fmt.Appendf(nil, "section%d", i%7)})
	}
	for i := range 2000 {
		views = append(views, &kgo.Record{Topic: "views", Key: fmt.Appendf(nil, "u%d", i%50), Value: fmt.Appendf(nil, "a%d", i%1000)})
	}
	kafkatest.Produce(t, cl, articles...)
	kafkatest.Produce(t, cl, views...) // already there when the app starts

	bld := stream.NewBuilder()
	g := stream.GlobalTable(bld, "articles", codec.String(), codec.String())
	v := stream.From(bld, "views", codec.String(), codec.String())
	stream.JoinGlobal(v, g, func(_ string, article string) string { return article },
		func(_ string, article, section string) string { return article + ":" + section }).To("sections")
	topo, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	app, stop := runApp(t, topo, kappa.AppID("global"), kappa.Brokers(seeds...), kappa.StateDir(t.TempDir()),
		kappa.CommitInterval(100*time.Millisecond))
	kafkatest.Eventually(t, 60*time.Second, "views processed", func() bool { return app.Processed() == int64(len(views)) })
	kafkatest.Eventually(t, 30*time.Second, "joined views written", func() bool {
		n, err := sumEndOffsets(t, seeds, "sections")
		return err == nil && n == int64(len(views))
	})

	// A row written now reaches the running instance.
	kafkatest.Produce(t, cl, &kgo.Record{Topic: "articles", Key: []byte("fresh"), Value: []byte("breaking")})
	kafkatest.Eventually(t, 30*time.Second, "the new row to be joined", func() bool {
		kafkatest.Produce(t, cl, &kgo.Record{Topic: "views", Key: []byte("u1"), Value: []byte("fresh")})
		for _, vs := range readPerKey(t, seeds, "sections") {
			for _, v := range vs {
				if s, _, _ := cutLast(v, "@"); s == "fresh:breaking" {
					return true
				}
			}
		}
		return false
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
