package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/examples/newsrank/rank"
	"github.com/kappa-streams/kappa/examples/newsrank/world"
	"github.com/kappa-streams/kappa/internal/kafkacluster"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// newsBroker starts an embedded broker with the example's topics, four
// partitions each.
func newsBroker(t *testing.T) ([]string, *kgo.Client) {
	t.Helper()
	seeds := kafkatest.Broker(t).Addrs()
	cl := kafkatest.Client(t, seeds)
	if err := createTopics(context.Background(), cl, 4); err != nil {
		t.Fatal(err)
	}
	return seeds, cl
}

// readAll reads every committed record of topic, up to the end offsets as
// of the call.
func readAll(t testing.TB, seeds []string, topic string) []*kgo.Record {
	t.Helper()
	// Closed on return, not when the test ends: waitRankings calls this
	// again and again.
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			remaining[o.Partition] = o.Offset
		}
	})
	var out []*kgo.Record
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v (left: %v)", topic, ctx.Err(), remaining)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
			if end, ok := remaining[r.Partition]; ok && r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
		})
	}
	return out
}

// runNewsApp runs the ranking app on topics until the test ends; stop
// stops it.
func runNewsApp(t *testing.T, seeds []string, appID string, topics rank.Topics, extra ...kappa.Opt) (*kappa.App, func()) {
	t.Helper()
	app, _, err := newApp(options{appID: appID, stateDir: t.TempDir(), httpAddr: "127.0.0.1:0"}, seeds, topics, extra...)
	if err != nil {
		t.Fatal(err)
	}
	stop := kafkatest.Run(t, "app "+appID, app.Run)
	kafkatest.Eventually(t, 30*time.Second, "the app's HTTP listener", func() bool { return app.HTTPAddr() != "" })
	return app, stop
}

// log is the input of a run, as the oracle reads it.
type inputLog struct {
	partitions int32
	// events by section, in log order, with their times.
	events map[string][]timedEvent
	// streamTime is the largest event time per input partition.
	streamTime map[int32]int64
}

type timedEvent struct {
	ts int64
	e  rank.Event
}

func readInput(t *testing.T, seeds []string, topics rank.Topics, partitions int32) inputLog {
	in := inputLog{partitions: partitions, events: map[string][]timedEvent{}, streamTime: map[int32]int64{}}
	for _, topic := range []string{topics.Impressions, topics.Clicks} {
		for _, r := range readAll(t, seeds, topic) {
			var e rank.Event
			if topic == topics.Impressions {
				var im rank.Impression
				if err := json.Unmarshal(r.Value, &im); err != nil {
					t.Fatal(err)
				}
				e = rank.FromImpression("", im)
			} else {
				var c rank.Click
				if err := json.Unmarshal(r.Value, &c); err != nil {
					t.Fatal(err)
				}
				e = rank.FromClick("", c)
			}
			ts := r.Timestamp.UnixMilli()
			in.events[string(r.Key)] = append(in.events[string(r.Key)], timedEvent{ts, e})
			in.streamTime[r.Partition] = max(in.streamTime[r.Partition], ts)
		}
	}
	return in
}

// oracle recomputes, by brute force from the raw events, the rankings of
// every minute of section that has closed: each article's decayed counts
// are summed afresh at every tick, exp(-λ(tick − minute)) per minute,
// instead of folded step by step as the pipeline does.
func oracle(p rank.Params, section string, in inputLog) []rank.Ranking {
	evs := in.events[section]
	st := in.streamTime[processor.KeyPartition([]byte(section), in.partitions)]
	buckets := map[int64]rank.Bucket{}
	for _, te := range evs {
		m := te.ts - te.ts%time.Minute.Milliseconds()
		buckets[m] = rank.AddEvent(section, te.e, buckets[m])
	}
	var minutes []int64
	for m := range buckets {
		if m+time.Minute.Milliseconds()+rank.Grace.Milliseconds() <= st {
			minutes = append(minutes, m)
		}
	}
	slices.Sort(minutes)
	lambda := math.Ln2 / float64(p.HalfLife.Milliseconds())
	weight := func(now, then int64) float64 { return math.Exp(-lambda * float64(now-then)) }
	// since is the minute from which an article's history counts: the
	// pipeline forgets an article after p.Forget without impressions.
	since := map[string]int64{}
	last := map[string]int64{}
	var out []rank.Ranking
	for n, s := range minutes {
		for id := range since {
			if s-last[id] > p.Forget.Milliseconds() {
				delete(since, id)
			}
		}
		b := buckets[s]
		for _, id := range b.IDs() {
			if _, ok := since[id]; !ok {
				since[id], last[id] = s, 0
			}
			for k := range rank.Slots {
				if b.Articles[id].Impressions[k] > 0 {
					last[id] = s
				}
			}
		}
		var slotImps, slotClicks [rank.Slots]float64
		articles := map[string]*rank.Decayed{}
		for _, m := range minutes[:n+1] {
			w := weight(s, m)
			for id, c := range buckets[m].Articles {
				for k := range rank.Slots {
					slotImps[k] += float64(c.Impressions[k]) * w
					slotClicks[k] += float64(c.Clicks[k]) * w
				}
				from, ok := since[id]
				if !ok || m < from {
					continue
				}
				d := articles[id]
				if d == nil {
					d = &rank.Decayed{Last: last[id]}
					articles[id] = d
				}
				for k := range rank.Slots {
					d.Impressions[k] += float64(c.Impressions[k]) * w
					d.Clicks += float64(c.Clicks[k]) * w
				}
			}
		}
		tick := s + time.Minute.Milliseconds()
		w := rank.Examination(p, slotImps, slotClicks)
		for _, arm := range rank.Arms {
			out = append(out, rank.Ranking{Section: section, Arm: arm, Tick: tick, Items: rank.Rank(p, arm, section, tick, w, articles)})
		}
	}
	return out
}

// relDiff is |a-b| relative to the larger magnitude.
func relDiff(a, b float64) float64 {
	if a == b {
		return 0
	}
	return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b))
}

// sameRanking compares an emitted ranking with the oracle's: the same
// articles in the same order, scores equal to 1e-9 relative. Two articles
// may trade places only if their scores tie to that precision.
func sameRanking(got, want rank.Ranking) error {
	if len(got.Items) != len(want.Items) {
		return fmt.Errorf("%d items, oracle %d", len(got.Items), len(want.Items))
	}
	for i := range got.Items {
		g, w := got.Items[i], want.Items[i]
		if relDiff(g.Score, w.Score) > 1e-9 || relDiff(g.Clicks, w.Clicks) > 1e-9 || relDiff(g.Exposure, w.Exposure) > 1e-9 {
			return fmt.Errorf("item %d: %+v, oracle %+v", i, g, w)
		}
		if g.Article != w.Article {
			j := slices.IndexFunc(want.Items, func(it rank.Item) bool { return it.Article == g.Article })
			if j < 0 || relDiff(want.Items[j].Score, g.Score) > 1e-9 {
				return fmt.Errorf("item %d is %s, oracle has %s (scores %v, %v)", i, g.Article, w.Article, g.Score, w.Score)
			}
		}
	}
	return nil
}

// byKey groups rankings records by key, in topic order.
func byKey(t *testing.T, recs []*kgo.Record) map[string][][]byte {
	out := map[string][][]byte{}
	for _, r := range recs {
		out[string(r.Key)] = append(out[string(r.Key)], r.Value)
	}
	return out
}

func decodeRanking(t *testing.T, b []byte) rank.Ranking {
	var r rank.Ranking
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// waitRankings waits until topic holds want rankings.
func waitRankings(t *testing.T, seeds []string, topic string, want int) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	kafkatest.Eventually(t, 90*time.Second, fmt.Sprintf("%d rankings in %s", want, topic), func() bool {
		recs = readAll(t, seeds, topic)
		return len(recs) >= want
	})
	return recs
}

// TestRankingsAreTheOraclesAndReplay runs the simulator against the app
// (the loop closed through /v1/rank) for an hour of simulated time, then:
//
//   - recomputes every emitted ranking by brute force from the input log
//     (oracle): the same order, scores equal to 1e-9;
//   - reprocesses the log from offset 0 under a new app ID, with a record
//     cache that evicts at every write and commits every 20ms: each key's
//     sequence of rankings is byte-identical;
//   - copies the input into one-partition topics and runs the app on them:
//     the same rankings as with four partitions.
func TestRankingsAreTheOraclesAndReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the newsrank app three times over an hour of simulated traffic; run without -short")
	}
	seeds, cl := newsBroker(t)
	ctx := context.Background()
	app, stop := runNewsApp(t, seeds, "nr-live", rank.Topics{})
	st := &simStats{}
	cfg := simConfig{world: world.Config{Seed: 5}, speed: 1200, rate: 400, simTime: time.Hour, rankURL: "http://" + app.HTTPAddr()}
	if err := runSim(ctx, cfg, cl, st); err != nil {
		t.Fatal(err)
	}
	t.Logf("simulated an hour: %d page views, %d impressions, %d clicks, %d rank errors", st.requests.Load(), st.impressions.Load(), st.clicks.Load(), st.rankErrors.Load())

	in := readInput(t, seeds, rank.Topics{Impressions: rank.TopicImpressions, Clicks: rank.TopicClicks}, 4)
	want := map[string]rank.Ranking{} // key@tick → oracle
	var total int
	for _, s := range rank.Sections {
		for _, r := range oracle(rank.DefaultParams, s, in) {
			want[fmt.Sprintf("%s@%d", r.Key(), r.Tick)] = r
			total++
		}
	}
	live := waitRankings(t, seeds, rank.TopicRankings, total)
	stop()
	checkOracle(t, live, want)

	// Replay under a new app ID, under pressure: a record cache of one
	// byte, which evicts at every write, and commits every 20ms.
	_, stopReplay := runNewsApp(t, seeds, "nr-replay", rank.Topics{Rankings: "rankings-replay"},
		kappa.CacheBytes(1), kappa.CommitInterval(20*time.Millisecond))
	replay := waitRankings(t, seeds, "rankings-replay", len(live))
	stopReplay()
	sameSequences(t, "replay", byKey(t, live), byKey(t, replay), false)

	// One input partition.
	kafkatest.CreateTopic(t, seeds, "impressions-1p", 1)
	kafkatest.CreateTopic(t, seeds, "clicks-1p", 1)
	copyInOrder(t, cl, seeds, rank.TopicImpressions, "impressions-1p")
	copyInOrder(t, cl, seeds, rank.TopicClicks, "clicks-1p")
	kafkatest.CreateTopic(t, seeds, "rankings-1p", 1, "cleanup.policy", "compact")
	_, stop1 := runNewsApp(t, seeds, "nr-one", rank.Topics{Impressions: "impressions-1p", Clicks: "clicks-1p", Rankings: "rankings-1p"})
	one := waitRankings(t, seeds, "rankings-1p", len(live))
	stop1()
	sameSequences(t, "one partition", byKey(t, live), byKey(t, one), true)
}

// checkOracle checks that the emitted rankings are exactly the oracle's,
// each once.
func checkOracle(t *testing.T, recs []*kgo.Record, want map[string]rank.Ranking) {
	t.Helper()
	seen := map[string]bool{}
	bad := 0
	for _, r := range recs {
		got := decodeRanking(t, r.Value)
		k := fmt.Sprintf("%s@%d", got.Key(), got.Tick)
		if string(r.Key) != got.Key() {
			t.Errorf("ranking %s under key %s", k, r.Key)
		}
		if seen[k] {
			t.Errorf("ranking %s emitted twice", k)
		}
		seen[k] = true
		w, ok := want[k]
		if !ok {
			t.Errorf("ranking %s emitted, but the oracle has no such minute", k)
			continue
		}
		if err := sameRanking(got, w); err != nil {
			bad++
			if bad <= 5 {
				t.Errorf("ranking %s: %v", k, err)
			}
		}
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("ranking %s of the oracle never emitted", k)
		}
	}
	t.Logf("%d rankings checked against the oracle, %d wrong", len(recs), bad)
}

// sameSequences compares each key's rankings; with tailOK, one side may
// have scored a few more minutes at the end (its stream time went
// further).
func sameSequences(t *testing.T, what string, a, b map[string][][]byte, tailOK bool) {
	t.Helper()
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range a {
			if !yield(k) {
				return
			}
		}
	})
	var n int
	for _, k := range keys {
		x, y := a[k], b[k]
		m := min(len(x), len(y))
		for i := range m {
			if !bytes.Equal(x[i], y[i]) {
				t.Fatalf("%s: key %s, ranking %d differs:\n%s\n%s", what, k, i, x[i], y[i])
			}
		}
		if diff := max(len(x)-len(y), len(y)-len(x)); diff > 0 && (!tailOK || diff > 2) {
			t.Errorf("%s: key %s has %d rankings, the live run %d", what, k, len(y), len(x))
		}
		n += m
	}
	if len(a) != len(b) {
		t.Errorf("%s: %d keys, the live run %d", what, len(b), len(a))
	}
	t.Logf("%s: %d rankings byte-identical over %d keys", what, n, len(keys))
}

// copyInOrder copies topic into dst (one partition), in timestamp order,
// each source partition's records in their order.
func copyInOrder(t *testing.T, cl *kgo.Client, seeds []string, topic, dst string) {
	t.Helper()
	recs := readAll(t, seeds, topic)
	slices.SortStableFunc(recs, func(a, b *kgo.Record) int {
		if c := a.Timestamp.Compare(b.Timestamp); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
			return c
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		out[i] = &kgo.Record{Topic: dst, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	}
	if err := cl.ProduceSync(context.Background(), out...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// appProcess is the app run as a separate OS process (-role app).
type appProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
}

func startAppProcess(t *testing.T, bin string, seeds []string, addr, dir string) *appProcess {
	t.Helper()
	cmd := exec.Command(bin, "-role", "app", "-brokers", strings.Join(seeds, ","), "-app-id", "nr-kill",
		"-http", addr, "-state-dir", dir, "-print", "0")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &appProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("app process output:\n%s", logs.String())
		}
	})
	return p
}

// TestKilledAppEndsWithTheSameRankings runs the app as a separate process
// while the simulator runs against it, SIGKILLs it in the middle, and
// starts it again on the same state directory. Under exactly-once, its
// rankings topic then holds, key by key, exactly the rankings of an
// uninterrupted run over the same log (a replay under another app ID).
func TestKilledAppEndsWithTheSameRankings(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example and runs it as a process twice; run without -short")
	}
	seeds, cl := newsBroker(t)
	killedAppEndsWithTheSameRankings(t, seeds, cl, time.Time{}, false)
}

// TestKilledAppOnApacheKafka runs TestKilledAppEndsWithTheSameRankings on
// a three-node Apache Kafka cluster (internal/kafkacluster): the app
// process and the simulator run with -brokers and the cluster's
// addresses, as a deployment would. Two things Kafka does and the embedded
// broker does not are set aside, as a deployment that replays its log
// must. Kafka's log cleaner compacts the articles table as it runs, and a
// replay over a compacted table joins each event with the article's
// latest version rather than the one it met (the rankings then differ in
// the last digits); here nothing younger than a day is compacted, and the
// latest ranking of every key is compared, since the rankings topic is a
// table too. And
// Kafka deletes records by their timestamps: the windowed stores'
// changelogs keep a window's retention plus a day, as Kafka Streams' do,
// so the simulated day starts two hours ago rather than on the world's
// default date, which is older than that (a restore after the SIGKILL
// found the windows' changelogs emptied).
//
// It fails today (issue 19, open): at the last tick, every key's ranking
// differs from the replay's in the scores' second or third digit. The
// suspect is the order in which the replay meets article updates and
// events when their partitions' fetches come from different brokers. It
// runs with KAPPA_KAFKA_ALL=1.
func TestKilledAppOnApacheKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Apache Kafka cluster; run without -short")
	}
	if os.Getenv("KAPPA_KAFKA_ALL") == "" {
		t.Skip("fails today on Apache Kafka (rankings differ from the replay's; issue 19): set KAPPA_KAFKA_ALL=1 to run it")
	}
	c := kafkacluster.Start(t, kafkacluster.BrokerConfig("log.cleaner.min.compaction.lag.ms", strconv.Itoa(24*60*60*1000)))
	seeds := c.Brokers()
	cl := kafkatest.Client(t, seeds)
	if err := createTopics(context.Background(), cl, 4); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	killedAppEndsWithTheSameRankings(t, seeds, cl, start, true)
}

// killedAppEndsWithTheSameRankings is the scenario of
// TestKilledAppEndsWithTheSameRankings on the brokers at seeds, whose
// topics exist; cl is a client of them. The simulated day starts at start
// (zero: the world's default). compacted says the brokers compact the
// rankings topic: only each key's latest ranking is compared then.
func killedAppEndsWithTheSameRankings(t *testing.T, seeds []string, cl *kgo.Client, start time.Time, compacted bool) {
	bin := filepath.Join(t.TempDir(), "newsrank")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	p := startAppProcess(t, bin, seeds, addr, dir)
	ready := func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	kafkatest.Eventually(t, 60*time.Second, "the app process ready", ready)

	st := &simStats{}
	simDone := make(chan error, 1)
	go func() {
		simDone <- runSim(ctx, simConfig{world: world.Config{Seed: 9, Start: start}, speed: 240, rate: 200, simTime: 90 * time.Minute,
			rankURL: "http://" + addr}, cl, st)
	}()
	ranked := func() bool {
		resp, err := http.Get("http://" + addr + "/v1/rank?section=politics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var ans RankAnswer
		return json.NewDecoder(resp.Body).Decode(&ans) == nil && len(ans.Items) > 0
	}
	// Kill it once it has ranked something, well before the end.
	kafkatest.Eventually(t, 60*time.Second, "a first ranking", ranked)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	t.Logf("SIGKILLed the app at simulated %s", time.UnixMilli(st.simNow.Load()).UTC().Format("15:04"))
	startAppProcess(t, bin, seeds, addr, dir)
	kafkatest.Eventually(t, 60*time.Second, "rankings served again after the restart", ranked)
	t.Logf("serving again at simulated %s", time.UnixMilli(st.simNow.Load()).UTC().Format("15:04"))
	if err := <-simDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("simulated: %d page views, %d impressions, %d clicks, %d rank errors (while the app was down)",
		st.requests.Load(), st.impressions.Load(), st.clicks.Load(), st.rankErrors.Load())

	// The uninterrupted run over the same log.
	_, stopReplay := runNewsApp(t, seeds, "nr-uninterrupted", rank.Topics{Rankings: "rankings-uninterrupted"})
	in := readInput(t, seeds, rank.Topics{Impressions: rank.TopicImpressions, Clicks: rank.TopicClicks}, 4)
	var total int
	for _, s := range rank.Sections {
		total += len(oracle(rank.DefaultParams, s, in))
	}
	want := waitRankings(t, seeds, "rankings-uninterrupted", total)
	stopReplay()
	if compacted {
		wantLast := lastByKey(byKey(t, want))
		var differ []string
		for deadline := time.Now().Add(90 * time.Second); ; {
			gotLast := lastByKey(byKey(t, readAll(t, seeds, rank.TopicRankings)))
			differ = differ[:0]
			for k, w := range wantLast {
				if g, ok := gotLast[k]; !ok || !bytes.Equal(g, w) {
					differ = append(differ, fmt.Sprintf("%s: %.120s against %.120s", k, g, w))
				}
			}
			if len(differ) == 0 && len(gotLast) == len(wantLast) {
				break
			}
			if time.Now().After(deadline) {
				slices.Sort(differ)
				t.Fatalf("after 90 s, %d of %d keys' latest rankings differ from the uninterrupted run's (%d keys written), such as:\n%s",
					len(differ), len(wantLast), len(gotLast), strings.Join(differ[:min(3, len(differ))], "\n"))
			}
			time.Sleep(500 * time.Millisecond) // polling a topic another process writes
		}
		t.Logf("killed and restarted: the latest rankings of all %d keys are byte-identical to the uninterrupted run's", len(wantLast))
		return
	}
	got := waitRankings(t, seeds, rank.TopicRankings, total)
	sameSequences(t, "killed and restarted", byKey(t, want), byKey(t, got), false)
}

// lastByKey returns the latest value of each key.
func lastByKey(m map[string][][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, vs := range m {
		out[k] = vs[len(vs)-1]
	}
	return out
}
