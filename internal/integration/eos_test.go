package integration_test

import (
	"context"
	"encoding/binary"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// readCommitted reads every committed record of topic, as a consumer with
// isolation.level read_committed does, up to the last stable offsets.
// Transaction markers are kept, so every offset below the end arrives as a
// record and the read knows where to stop; they are not returned.
func readCommitted(t *testing.T, seeds []string, topic string) []*kgo.Record {
	t.Helper()
	// Clients are closed here, not at the test's end: this runs in a
	// polling loop.
	adm, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListCommittedOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	start := map[string]map[int32]kgo.Offset{topic: {}}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			start[topic][o.Partition] = kgo.NewOffset().AtStart()
			left[o.Partition] = o.Offset
		}
	})
	if len(left) == 0 {
		return nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(start), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(left) > 0 {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s committed: partitions %v not read to their ends", topic, left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	return out
}

// TestExactlyOnceCrashAndRestart counts clicks per article under
// exactly-once, crashes the instance (Abort: nothing more is flushed or
// committed, caches are dropped, the open transaction is left to time out
// or be aborted) in the middle of the input, and restarts it on the same
// state directory. The counts that read-committed consumers see must
// equal the truth exactly: no click lost, none counted twice, and every
// count a key's committed sequence shows rises by one each time.
func TestExactlyOnceCrashAndRestart(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 2)
	dir := t.TempDir()
	opts := []kappa.Opt{kappa.AppID(countsApp), kappa.Brokers(seeds...), kappa.Guarantee(kappa.ExactlyOnce),
		kappa.StateDir(dir), kappa.CacheBytes(4 << 10)}
	inputs, _ := makeClicks(6000, 50)
	cl := kafkatest.Client(t, seeds)
	kafkatest.Produce(t, cl, inputs[:3000]...)

	// A long commit interval, so that the crash comes with a transaction
	// full of processed records open.
	app, stop := runApp(t, countTopology(t), append(opts, kappa.CommitInterval(time.Second))...)
	kafkatest.Eventually(t, 60*time.Second, "the first instance to process and commit", func() bool {
		return committed(t, cl, countsApp, "clicks", 0)+committed(t, cl, countsApp, "clicks", 1) == 3000
	})
	kafkatest.Produce(t, cl, inputs[3000:4500]...)
	kafkatest.Eventually(t, 60*time.Second, "the first instance to process records it has not committed", func() bool {
		return app.Processed() >= 3000+2700+1000
	})
	kill(app) // a crash: nothing more is flushed or committed
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	kafkatest.Produce(t, cl, inputs[4500:]...)
	_, stop2 := runApp(t, countTopology(t), opts...)
	want := truthCounts(inputs)
	stopWhenExact(t, seeds, want, stop2)
}

// TestExactlyOnceRejectedOutputRetried makes the broker reject one
// produce of the output topic (INVALID_RECORD, not retriable). Under
// exactly-once the transaction holding it is aborted and the tasks reopen
// from their committed state: the app goes on, and the counts read
// committed are exact.
func TestExactlyOnceRejectedOutputRetried(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 2)
	kafkatest.CreateTopic(t, seeds, countsOut, 2)
	// Produce requests name topics by ID in their newer versions.
	details, err := kadm.NewClient(kafkatest.Client(t, seeds)).ListTopics(context.Background(), countsOut)
	if err != nil {
		t.Fatal(err)
	}
	outID := details[countsOut].ID
	var rejected atomic.Int32
	b.Cluster().ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		pr := req.(*kmsg.ProduceRequest)
		hit := false
		for _, tp := range pr.Topics {
			hit = hit || tp.Topic == countsOut || tp.TopicID == outID
		}
		if !hit {
			b.Cluster().KeepControl() // not this one: wait for a produce to the output
			return nil, nil, false
		}
		b.Cluster().DropControl() // once only (KeepControl above kept it so far)
		rejected.Add(1)
		return kafkatest.ProduceErrorResponse(pr, kerr.InvalidRecord.Code), nil, true
	})
	inputs, _ := makeClicks(3000, 50)
	cl := kafkatest.Client(t, seeds)
	kafkatest.Produce(t, cl, inputs...)
	_, stop := runApp(t, countTopology(t), kappa.AppID(countsApp), kappa.Brokers(seeds...), kappa.Guarantee(kappa.ExactlyOnce),
		kappa.StateDir(t.TempDir()))
	want := truthCounts(inputs)
	waitCommittedCounts(t, seeds, want)
	if err := stop(); err != nil {
		t.Fatalf("the app stopped with %v after one rejected output", err)
	}
	if rejected.Load() != 1 {
		t.Fatalf("%d produce requests rejected, want 1", rejected.Load())
	}
	checkCommittedSequences(t, seeds, want)
}

// waitCommittedCounts waits, up to 60s, until the latest counts of the
// output that read_committed consumers see equal want.
func waitCommittedCounts(t *testing.T, seeds []string, want map[string]int64) {
	t.Helper()
	latest := func() map[string]int64 {
		m := map[string]int64{}
		for _, r := range readCommitted(t, seeds, countsOut) {
			m[string(r.Key)] = int64(binary.BigEndian.Uint64(r.Value))
		}
		return m
	}
	deadline := time.Now().Add(60 * time.Second)
	for got := latest(); !maps.Equal(got, want); got = latest() {
		if time.Now().After(deadline) {
			t.Fatalf("committed counts after 60s: %s", diffCounts(got, want))
		}
	}
}

// stopWhenExact waits until the counts read committed equal want, stops
// the app with stop, which must return no error, and checks every key's
// committed sequence of counts.
func stopWhenExact(t *testing.T, seeds []string, want map[string]int64, stop func() error) {
	t.Helper()
	waitCommittedCounts(t, seeds, want)
	if err := stop(); err != nil {
		t.Fatalf("the app stopped with %v", err)
	}
	checkCommittedSequences(t, seeds, want)
}

// checkCommittedSequences checks every key's committed counts: each rises
// strictly (no update applied twice, none going backwards) and the last
// equals want.
func checkCommittedSequences(t *testing.T, seeds []string, want map[string]int64) {
	t.Helper()
	last := map[string]int64{}
	for _, r := range readCommitted(t, seeds, countsOut) {
		n := int64(binary.BigEndian.Uint64(r.Value))
		k := string(r.Key)
		if prev, ok := last[k]; ok && n <= prev {
			t.Fatalf("article %s: committed count %d after %d: an update was applied twice or went backwards", k, n, prev)
		}
		last[k] = n
	}
	if !maps.Equal(last, want) {
		t.Fatalf("committed counts differ from the truth: %s", diffCounts(last, want))
	}
}

// TestGlobalTableWrittenInTransactions bootstraps a global table whose
// topic was written by a transactional producer, so that its last offset
// is a transaction marker, not a row: the bootstrap must still end, with
// every committed row and none of an aborted transaction.
func TestGlobalTableWrittenInTransactions(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "articles", 1)
	kafkatest.CreateTopic(t, seeds, "views", 1)
	tx := kafkatest.Client(t, seeds, kgo.TransactionalID("article-writer"))
	ctx := context.Background()
	for _, commit := range []bool{true, false, true} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		title := "kept"
		if !commit {
			title = "aborted"
		}
		for _, a := range []string{"a1", "a2"} {
			tx.Produce(ctx, &kgo.Record{Topic: "articles", Key: []byte(a), Value: []byte(title + "-" + a)}, nil)
		}
		if err := tx.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tx.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	bld := stream.NewBuilder()
	articles := stream.GlobalTable(bld, "articles", codec.String(), codec.String())
	views := stream.From(bld, "views", codec.String(), codec.String())
	stream.JoinGlobal(views, articles, func(_ string, a string) string { return a },
		func(_ string, _ string, title string) string { return title }).To("titled")
	topo, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []kappa.ProcessingGuarantee{kappa.AtLeastOnce, kappa.ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) {
			app := "titler-" + strings.ReplaceAll(g.String(), "-", "")
			_, stop := runApp(t, topo, kappa.AppID(app), kappa.Brokers(seeds...), kappa.Guarantee(g))
			defer stop()
			if g == kappa.AtLeastOnce {
				kafkatest.Produce(t, kafkatest.Client(t, seeds), &kgo.Record{Topic: "views", Key: []byte("u"), Value: []byte("a1")},
					&kgo.Record{Topic: "views", Key: []byte("u"), Value: []byte("a2")})
			}
			out := kafkatest.Consume(t, seeds, "titled", 2*int(1+g), 30*time.Second)
			for _, r := range out[len(out)-2:] {
				if !strings.HasPrefix(string(r.Value), "kept-") {
					t.Fatalf("joined %q: want the committed row, not an aborted one", r.Value)
				}
			}
		})
	}
}
