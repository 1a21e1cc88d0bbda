package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The tests here check the rule that after a failure nothing more is
// committed than what the failure left whole: under exactly-once the
// open transaction aborts, and a restarted instance ends with the exact
// counts.

// failingCountTopology is countTopology with a node after the count that
// fails while fail reports true for the article and its new count.
// With byKey the clicks are keyed by article already, and counted with
// no repartition topic between.
func failingCountTopology(t testing.TB, byKey bool, fail func(article string, n int64) bool) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	clicks := stream.From(b, "clicks", codec.String(), codec.JSON[click]())
	human := clicks.FilterNot(func(_ string, c click) bool { return c.Bot })
	byArticle := stream.GroupBy(human, func(_ string, c click) string { return c.Article }, stream.Named("by-article"))
	if byKey {
		byArticle = human.GroupByKey()
	}
	counts := byArticle.Count(stream.Materialized(countsStore)).ToStream()
	stream.MapValuesErr(counts, func(article string, n int64) (int64, error) {
		if fail(article, n) {
			return 0, fmt.Errorf("article %s: refusing count %d", article, n)
		}
		return n, nil
	}, stream.Named("check")).To(countsOut)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// clicksByArticle is makeClicks keyed by article, to be counted by key
// with no repartition topic: under exactly-once with a long commit
// interval a repartition topic's records are not read until the commit.
func clicksByArticle(t testing.TB, n, users int) []*kgo.Record {
	inputs, _ := makeClicks(n, users)
	for _, r := range inputs {
		var c click
		if err := json.Unmarshal(r.Value, &c); err != nil {
			t.Fatal(err)
		}
		r.Key = []byte(c.Article)
	}
	return inputs
}

// TestExactlyOnceFailFastCommitsNothingMore fails a record under FailFast
// after it has updated the count store (no record cache, so the store and
// its changelog are written before the failing node runs). The app stops
// with the record's error. Its open transaction holds the store's
// changelog write but not the record's offset: committing it would make a
// restart count the record twice. A restart without the failure must end
// with the exact counts, each key's committed counts rising by one.
func TestExactlyOnceFailFastCommitsNothingMore(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 2)
	kafkatest.CreateTopic(t, seeds, countsOut, 2)
	inputs := clicksByArticle(t, 3000, 50)
	kafkatest.Produce(t, kafkatest.Client(t, seeds), inputs...)
	dir := t.TempDir()
	opts := []kappa.Opt{kappa.AppID(countsApp), kappa.Brokers(seeds...), kappa.Guarantee(kappa.ExactlyOnce),
		kappa.StateDir(dir), kappa.CacheBytes(0), kappa.OnError(kappa.FailFast), kappa.HandleSignals(false),
		kappa.CommitInterval(5 * time.Minute)} // no commit but the final one

	var failures atomic.Int64
	app, err := kappa.New(failingCountTopology(t, true, func(article string, n int64) bool {
		if article == "a5" && n == 20 {
			failures.Add(1)
			return true
		}
		return false
	}), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = app.Run(ctx)
	var re *processor.RecordError
	if !errors.As(err, &re) || failures.Load() != 1 {
		t.Fatalf("Run returned %v after %d failures, want the RecordError of the one failing record", err, failures.Load())
	}
	if n := len(readCommitted(t, seeds, countsOut)); n != 0 {
		t.Fatalf("%d counts committed by the instance that failed (its only commit would be the final one): want none", n)
	}

	_, stop := runApp(t, failingCountTopology(t, true, func(string, int64) bool { return false }),
		append(opts[:len(opts)-1], kappa.CommitInterval(100*time.Millisecond))...)
	want := truthCounts(inputs)
	stopWhenExact(t, seeds, want, stop)
}

// TestFailedRevocationCommitStopsCommitting fails the commit that a
// revocation makes: the first instance's counts are in its record cache
// (a commit interval of 5 minutes), a second instance joins, and flushing the
// cache on revocation reaches a node that fails under FailFast. The
// revoked results never reached the output, so no later commit may pass
// them: the first instance stops with the error and commits nothing more,
// and its transaction (exactly-once) aborts. The second instance, and a
// restart of the first without the failure, must end with counts that
// are exact under exactly-once and complete under at-least-once.
func TestFailedRevocationCommitStopsCommitting(t *testing.T) {
	for _, g := range []kappa.ProcessingGuarantee{kappa.ExactlyOnce, kappa.AtLeastOnce} {
		t.Run(g.String(), func(t *testing.T) {
			b := kafkatest.Broker(t)
			seeds := b.Addrs()
			kafkatest.CreateTopic(t, seeds, "clicks", 4)
			kafkatest.CreateTopic(t, seeds, countsOut, 4)
			inputs := clicksByArticle(t, 4000, 60)
			cl := kafkatest.Client(t, seeds)
			kafkatest.Produce(t, cl, inputs...)
			var armed atomic.Bool
			var failures atomic.Int64
			fail := func(string, int64) bool {
				if armed.Load() {
					failures.Add(1)
					return true
				}
				return false
			}
			base := []kappa.Opt{kappa.AppID(countsApp), kappa.Brokers(seeds...), kappa.Guarantee(g),
				kappa.OnError(kappa.FailFast), kappa.HandleSignals(false)}
			first, err := kappa.New(failingCountTopology(t, true, fail),
				append(base, kappa.StateDir(t.TempDir()), kappa.CommitInterval(5*time.Minute))...)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- first.Run(ctx) }()
			// Every input processed (the counts sit in the cache, unflushed:
			// the interval is an hour), then a second instance joins and
			// the first must give up tasks.
			kafkatest.Eventually(t, 60*time.Second, "the first instance to process every click", func() bool {
				return first.Processed() >= int64(len(inputs))
			})
			armed.Store(true)
			_, stop2 := runApp(t, failingCountTopology(t, true, func(string, int64) bool { return false }),
				append(base, kappa.StateDir(t.TempDir()), kappa.CommitInterval(100*time.Millisecond))...)
			select {
			case err := <-errc:
				var re *processor.RecordError
				if !errors.As(err, &re) || failures.Load() == 0 {
					t.Fatalf("the first instance stopped with %v after %d failures, want a RecordError", err, failures.Load())
				}
			case <-time.After(60 * time.Second):
				t.Fatal("the first instance did not stop after its revocation commit failed")
			}
			want := truthCounts(inputs)
			if g == kappa.ExactlyOnce {
				stopWhenExact(t, seeds, want, stop2)
				return
			}
			// At-least-once may count what the first instance flushed to
			// the changelog before the failure twice, never less.
			waitLatestCounts(t, seeds, want)
			if err := stop2(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// waitLatestCounts waits, up to 60s, until the latest count of every key
// of the output, read uncommitted, is at least its count in want: under
// at-least-once a count may include an update applied twice, but none is
// missing in the end.
func waitLatestCounts(t *testing.T, seeds []string, want map[string]int64) {
	t.Helper()
	tl := newTail(t, seeds, countsOut)
	deadline := time.Now().Add(60 * time.Second)
	for {
		tl.poll()
		short := 0
		for k, n := range want {
			if tl.latest[k] < n {
				short++
			}
		}
		if short == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s, %d of %d keys count less than the truth: %s", short, len(want), diffCounts(tl.latest, want))
		}
	}
}
