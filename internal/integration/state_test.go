package integration_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/broker"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The tests here run stateful topologies on the embedded broker: restores
// from local state and from scratch, and a crashed instance's tasks taken
// over by a survivor.

const (
	countsStore   = "article-counts"
	countsOut     = "article-counts"
	countsApp     = "counter"
	countsRepart  = countsApp + "-by-article-repartition"
	countsChanged = countsApp + "-" + countsStore + "-changelog"
)

// countTopology counts human clicks per article. Clicks are keyed by user,
// so grouping by article goes through a repartition topic.
func countTopology(t testing.TB) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	clicks := stream.From(b, "clicks", codec.String(), codec.JSON[click]())
	human := clicks.FilterNot(func(_ string, c click) bool { return c.Bot })
	byArticle := stream.GroupBy(human, func(_ string, c click) string { return c.Article }, stream.Named("by-article"))
	byArticle.Count(stream.Materialized(countsStore)).ToStream().To(countsOut)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// truthCounts recomputes the human clicks per article of recs.
func truthCounts(recs []*kgo.Record) map[string]int64 {
	want := make(map[string]int64)
	for _, r := range recs {
		c, err := codec.JSON[click]().Decode(r.Value)
		if err != nil {
			panic(err)
		}
		if !c.Bot {
			want[c.Article]++
		}
	}
	return want
}

// tail follows an output topic of counts from its start, keeping the
// latest count per key.
type tail struct {
	t      testing.TB
	cl     *kgo.Client
	latest map[string]int64
}

func newTail(t testing.TB, seeds []string, topic string) *tail {
	cl := kafkatest.Client(t, seeds, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	return &tail{t: t, cl: cl, latest: make(map[string]int64)}
}

// poll reads what arrived within a short wait.
func (tl *tail) poll() {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	fs := tl.cl.PollFetches(ctx)
	fs.EachRecord(func(r *kgo.Record) {
		if len(r.Value) != 8 {
			tl.t.Errorf("count of %q: %d bytes, want 8", r.Key, len(r.Value))
			return
		}
		tl.latest[string(r.Key)] = int64(binary.BigEndian.Uint64(r.Value))
	})
}

// waitEqual waits until the latest counts equal want.
func (tl *tail) waitEqual(want map[string]int64, within time.Duration) {
	tl.t.Helper()
	deadline := time.Now().Add(within)
	for {
		tl.poll()
		if maps.Equal(tl.latest, want) {
			return
		}
		if time.Now().After(deadline) {
			tl.t.Fatalf("counts after %v: %s", within, diffCounts(tl.latest, want))
		}
	}
}

// diffCounts describes how got differs from want, briefly.
func diffCounts(got, want map[string]int64) string {
	var d []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			d = append(d, fmt.Sprintf("%s=%d (want %d)", k, got[k], want[k]))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s=%d (unexpected)", k, got[k]))
		}
	}
	if len(d) > 5 {
		d = append(d[:5], fmt.Sprintf("and %d more", len(d)-5))
	}
	return fmt.Sprintf("%d keys differ: %v", len(d), d)
}

// endOffsets returns the sum of a topic's end offsets.
func endOffsets(t testing.TB, seeds []string, topic string) int64 {
	t.Helper()
	n, err := sumEndOffsets(t, seeds, topic)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sumEndOffsets returns the sum of a topic's end offsets, or an error when
// it does not exist (yet).
func sumEndOffsets(t testing.TB, seeds []string, topic string) (int64, error) {
	infos, err := broker.NewAdmin(kafkatest.Client(t, seeds)).Describe(context.Background(), topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, o := range infos[0].EndOffsets {
		n += o
	}
	return n, nil
}

// restored sums the changelog records an app's tasks restored, once every
// task is ready.
func restored(t testing.TB, app *kappa.App, tasks int) int64 {
	t.Helper()
	var sts []processor.TaskStatus
	kafkatest.Eventually(t, 30*time.Second, fmt.Sprintf("%d ready tasks", tasks), func() bool {
		sts = app.TaskStatus()
		n := 0
		for _, st := range sts {
			if st.Ready {
				n++
			}
		}
		return n == tasks && len(sts) == tasks
	})
	var n int64
	for _, st := range sts {
		n += st.Restored
		if st.Restored != st.RestoreTarget {
			t.Errorf("task %s: restored %d of %d", st.ID, st.Restored, st.RestoreTarget)
		}
	}
	return n
}

// TestRestoreFromLocalState runs a counting app on one machine, then on
// another (a fresh state dir, so a full restore), then on the first again:
// that restart restores exactly the changelog records the second machine
// wrote after the first stopped, and every run's counts are right.
func TestRestoreFromLocalState(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 4)
	topo := countTopology(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	opts := func(dir string) []kappa.Opt {
		return []kappa.Opt{kappa.AppID(countsApp), kappa.Brokers(seeds...), kappa.StateDir(dir),
			kappa.CommitInterval(100 * time.Millisecond), kappa.SessionTimeout(10 * time.Second)}
	}
	inputs, _ := makeClicks(30_000, 300)
	cl := kafkatest.Client(t, seeds)
	out := newTail(t, seeds, countsOut)

	// Machine A counts the first third, and stops cleanly.
	a, stopA := runApp(t, topo, opts(dirA)...)
	if n := restored(t, a, 8); n != 0 {
		t.Fatalf("first run restored %d records from an empty changelog", n)
	}
	kafkatest.Produce(t, cl, inputs[:10_000]...)
	out.waitEqual(truthCounts(inputs[:10_000]), 60*time.Second)
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	afterA := endOffsets(t, seeds, countsChanged)
	if afterA == 0 {
		t.Fatal("nothing was written to the changelog")
	}

	// Machine B starts with no state: it restores the whole changelog.
	bApp, stopB := runApp(t, topo, opts(dirB)...)
	if n := restored(t, bApp, 8); n != afterA {
		t.Fatalf("full restore on a fresh state dir: %d records, want the whole changelog (%d)", n, afterA)
	}
	kafkatest.Produce(t, cl, inputs[10_000:20_000]...)
	out.waitEqual(truthCounts(inputs[:20_000]), 60*time.Second)
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	afterB := endOffsets(t, seeds, countsChanged)

	// Machine A again: only what B wrote is restored, from the changelog
	// position stored with A's local data.
	a2, stopA2 := runApp(t, topo, opts(dirA)...)
	if n, want := restored(t, a2, 8), afterB-afterA; n != want {
		t.Fatalf("restart from local state restored %d records, want the tail of %d", n, want)
	}
	kafkatest.Produce(t, cl, inputs[20_000:]...)
	out.waitEqual(truthCounts(inputs), 60*time.Second)
	if err := stopA2(); err != nil {
		t.Fatal(err)
	}

	// With A's state dir deleted, a full restore gives the same counts:
	// one more click per article lands on the restored counts.
	if err := os.RemoveAll(dirA); err != nil {
		t.Fatal(err)
	}
	afterA2 := endOffsets(t, seeds, countsChanged)
	a3, stopA3 := runApp(t, topo, opts(dirA)...)
	if n := restored(t, a3, 8); n != afterA2 {
		t.Fatalf("restore after deleting the state dir: %d records, want %d", n, afterA2)
	}
	extra, _ := makeClicks(97, 1) // one (human or bot) click per article
	for _, r := range extra {
		r.Key = []byte("late")
	}
	kafkatest.Produce(t, cl, extra...)
	out.waitEqual(truthCounts(append(slices.Clone(inputs), extra...)), 60*time.Second)
	if err := stopA3(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dirA, countsApp)); err != nil {
		t.Fatalf("state dir not recreated: %v", err)
	}
}

// TestCrashedInstanceTakenOver kills one of two instances without a
// commit. The survivor takes its tasks over, restores their stores and
// reprocesses from the last commit: counts may exceed the truth by records
// processed twice, never fall short.
func TestCrashedInstanceTakenOver(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 4)
	topo := countTopology(t)
	opts := func(dir string) []kappa.Opt {
		return []kappa.Opt{kappa.AppID(countsApp), kappa.Brokers(seeds...), kappa.StateDir(dir),
			kappa.CommitInterval(time.Second), kappa.SessionTimeout(10 * time.Second)}
	}
	a1, stop1 := runApp(t, topo, opts(t.TempDir())...)
	a2, stop2 := runApp(t, topo, opts(t.TempDir())...)
	kafkatest.Eventually(t, 30*time.Second, "both instances to own tasks", func() bool {
		return len(a1.Tasks()) > 0 && len(a2.Tasks()) > 0 && len(a1.Tasks())+len(a2.Tasks()) == 8
	})
	inputs, _ := makeClicks(40_000, 400)
	cl := kafkatest.Client(t, seeds)
	kafkatest.Produce(t, cl, inputs[:20_000]...)
	kafkatest.Eventually(t, 30*time.Second, "instance 2 to process records", func() bool { return a2.Processed() > 1000 })

	kill(a2)
	if err := stop2(); err != nil {
		t.Fatalf("killed instance: %v", err)
	}
	kafkatest.Eventually(t, 30*time.Second, "the survivor to own every task", func() bool {
		sts := a1.TaskStatus()
		ready := 0
		for _, st := range sts {
			if st.Ready {
				ready++
			}
		}
		return ready == 8
	})
	kafkatest.Produce(t, cl, inputs[20_000:]...)

	want := truthCounts(inputs)
	out := newTail(t, seeds, countsOut)
	deadline := time.Now().Add(60 * time.Second)
	for {
		out.poll()
		if len(out.latest) == len(want) && !slices.ContainsFunc(slices.Collect(maps.Keys(want)), func(k string) bool {
			return out.latest[k] < want[k]
		}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts after the takeover: %s", diffCounts(out.latest, want))
		}
	}
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	// Let the last flush arrive, then check no count is below the truth
	// and every count is bounded by the records there were to count twice.
	out.poll()
	var over int64
	for k, n := range want {
		if out.latest[k] < n {
			t.Errorf("%s: count %d below the truth %d", k, out.latest[k], n)
		}
		over += out.latest[k] - n
	}
	if over > 20_000 {
		t.Errorf("counts exceed the truth by %d in all, more than the records the killed instance could have seen", over)
	}
	t.Logf("counted %d records twice after the crash", over)
}

// TestInternalTopicConfigs checks the repartition and changelog topics an
// app creates: partition counts from their upstream sources, and configs.
func TestInternalTopicConfigs(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 6)
	app, stop := runApp(t, countTopology(t), kappa.AppID(countsApp), kappa.Brokers(seeds...), kappa.StateDir(t.TempDir()))
	kafkatest.Eventually(t, 30*time.Second, "tasks to start", func() bool { return len(app.Tasks()) == 12 })
	infos, err := broker.NewAdmin(kafkatest.Client(t, seeds)).Describe(context.Background(), countsRepart, countsChanged, countsApp+"-dlq")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		info   broker.TopicInfo
		policy string
	}{{infos[0], "delete"}, {infos[1], "compact"}, {infos[2], "delete"}} {
		if tc.info.Partitions != 6 {
			t.Errorf("%s: %d partitions, want 6 (the source's)", tc.info.Name, tc.info.Partitions)
		}
		if got := tc.info.Configs["cleanup.policy"]; got != tc.policy {
			t.Errorf("%s: cleanup.policy=%q, want %q", tc.info.Name, got, tc.policy)
		}
	}
	// Repartition topics keep records until the app purges them after
	// committing, so none expires unprocessed while the app is down.
	if got := infos[0].Configs["retention.ms"]; got != "-1" {
		t.Errorf("%s: retention.ms=%q, want -1", infos[0].Name, got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestRepartitionPurged checks that records of a repartition topic are
// deleted once the app has committed past them, and only those.
func TestRepartitionPurged(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 2)
	inputs, _ := makeClicks(2000, 50)
	_, stop := runApp(t, countTopology(t), kappa.AppID(countsApp), kappa.Brokers(seeds...), kappa.StateDir(t.TempDir()),
		kappa.CommitInterval(100*time.Millisecond))
	kafkatest.Produce(t, kafkatest.Client(t, seeds), inputs...)
	newTail(t, seeds, countsOut).waitEqual(truthCounts(inputs), 60*time.Second)
	adm := kadm.NewClient(kafkatest.Client(t, seeds))
	var starts kadm.ListedOffsets
	kafkatest.Eventually(t, 30*time.Second, "repartition records purged", func() bool {
		var err error
		if starts, err = adm.ListStartOffsets(context.Background(), countsRepart); err != nil {
			t.Fatal(err)
		}
		purged := int64(0)
		starts.Each(func(o kadm.ListedOffset) { purged += o.Offset })
		return purged > 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(context.Background(), countsRepart)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(context.Background(), countsApp)
	if err != nil {
		t.Fatal(err)
	}
	starts.Each(func(o kadm.ListedOffset) {
		c, _ := committed.Lookup(countsRepart, o.Partition)
		end, _ := ends.Lookup(countsRepart, o.Partition)
		if o.Offset > c.At || c.At > end.Offset {
			t.Errorf("%s/%d: purged up to %d, committed %d, end %d: purged past the commit", countsRepart, o.Partition, o.Offset, c.At, end.Offset)
		}
	})
}
