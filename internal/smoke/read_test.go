package smoke

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRead reads outputs with plain and transactional records on the
// embedded broker: at-least-once sees every record, exactly-once only the
// committed ones, and both stop at the ends although transaction markers
// sit there.
func TestRead(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, InputTopic, 2)
	for _, topic := range OutputTopics {
		kafkatest.CreateTopic(t, seeds, topic, 2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := func(topic, v string) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte(v)}
	}
	kafkatest.Produce(t, kafkatest.Client(t, seeds), rec(CountTopic, "plain1"), rec(CountTopic, "plain2"), rec(InputTopic, "in"))
	txn := kafkatest.Client(t, seeds, kgo.TransactionalID("smoke-read-test"))
	for _, tc := range []struct {
		values []string
		commit kgo.TransactionEndTry
	}{{[]string{"c1", "c2", "c3"}, kgo.TryCommit}, {[]string{"a1", "a2"}, kgo.TryAbort}, {[]string{"c4"}, kgo.TryCommit}} {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range tc.values {
			if err := txn.ProduceSync(ctx, rec(EchoTopic, v)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(ctx, tc.commit); err != nil {
			t.Fatal(err)
		}
	}
	values := func(recs []Record) string {
		var vs []string
		for _, r := range recs {
			vs = append(vs, string(r.Value))
		}
		return strings.Join(vs, ",")
	}
	for g, want := range map[Guarantee]string{AtLeastOnce: "c1,c2,c3,a1,a2,c4", ExactlyOnce: "c1,c2,c3,c4"} {
		out, err := Read(ctx, seeds, "app", g)
		if err != nil {
			t.Fatalf("%s: %v", g, err)
		}
		if got := values(out.Topics[EchoTopic]); got != want {
			t.Errorf("%s: echo %s, want %s", g, got, want)
		}
		if got := values(out.Topics[CountTopic]); got != "plain1,plain2" {
			t.Errorf("%s: count %s, want plain1,plain2", g, got)
		}
		if got := values(out.Input); got != "in" {
			t.Errorf("%s: input %s, want in", g, got)
		}
		if len(out.DeadLetters) != 0 {
			t.Errorf("%s: %d dead letters from a topic that does not exist", g, len(out.DeadLetters))
		}
	}
}

// TestReadMissingOutput reports an output topic that does not exist.
func TestReadMissingOutput(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, InputTopic, 1)
	for _, topic := range OutputTopics[1:] {
		kafkatest.CreateTopic(t, seeds, topic, 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Read(ctx, seeds, "app", AtLeastOnce); err == nil || !strings.Contains(err.Error(), OutputTopics[0]) {
		t.Fatalf("Read: %v, want an error naming %s", err, OutputTopics[0])
	}
}

// TestGroupLag commits offsets for a group and checks what GroupLag says.
func TestGroupLag(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	const app = "lagging"
	kafkatest.CreateTopic(t, seeds, InputTopic, 2)
	kafkatest.CreateTopic(t, seeds, RepartitionTopic(app), 2)
	cl := kafkatest.Client(t, seeds)
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: InputTopic, Partition: int32(i % 2), Value: []byte("v")},
			&kgo.Record{Topic: RepartitionTopic(app), Partition: int32(i % 2), Value: []byte("v")})
	}
	kafkatest.Produce(t, kafkatest.Client(t, seeds, kgo.RecordPartitioner(kgo.ManualPartitioner())), recs...)
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	lags, err := GroupLag(ctx, cl, app, AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	if CaughtUp(lags) || lags[0].Behind != 10 || lags[1].Behind != 10 {
		t.Fatalf("no commits: %+v", lags)
	}
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: InputTopic, Partition: 0, At: 5})
	offs.Add(kadm.Offset{Topic: InputTopic, Partition: 1, At: 5})
	offs.Add(kadm.Offset{Topic: RepartitionTopic(app), Partition: 0, At: 2})
	if _, err := adm.CommitOffsets(ctx, app, offs); err != nil {
		t.Fatal(err)
	}
	lags, err = GroupLag(ctx, cl, app, AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	if CaughtUp(lags) || lags[0].Behind != 0 || lags[0].Committed != 10 || lags[1].Behind != 8 || lags[1].Committed != 2 {
		t.Fatalf("input committed, repartition partly: %+v", lags)
	}
	offs.Add(kadm.Offset{Topic: RepartitionTopic(app), Partition: 0, At: 5})
	offs.Add(kadm.Offset{Topic: RepartitionTopic(app), Partition: 1, At: 5})
	if _, err := adm.CommitOffsets(ctx, app, offs); err != nil {
		t.Fatal(err)
	}
	if lags, err = GroupLag(ctx, cl, app, AtLeastOnce); err != nil || !CaughtUp(lags) {
		t.Fatalf("all committed: %+v, %v", lags, err)
	}
}

// TestGroupLagExactlyOnce writes the repartition topic in transactions:
// under exactly-once, a group committed after the last record of a
// partition has caught up although the commit marker (and an aborted
// transaction) follow it, and a partition with a transaction open is
// behind and counted as open; OpenTransactions names it.
func TestGroupLagExactlyOnce(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	const app = "txns"
	repartition := RepartitionTopic(app)
	kafkatest.CreateTopic(t, seeds, InputTopic, 1)
	kafkatest.CreateTopic(t, seeds, repartition, 2)
	kafkatest.CreateTopic(t, seeds, EchoTopic, 1)
	cl := kafkatest.Client(t, seeds)
	kafkatest.Produce(t, cl, &kgo.Record{Topic: InputTopic, Value: []byte("v")})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	txn := kafkatest.Client(t, seeds, kgo.TransactionalID("lag-test"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	// write writes recs in a transaction it leaves open.
	write := func(recs ...*kgo.Record) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := txn.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	end := func(try kgo.TransactionEndTry) {
		t.Helper()
		if err := txn.EndTransaction(ctx, try); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(topic string, p int32) *kgo.Record {
		return &kgo.Record{Topic: topic, Partition: p, Value: []byte("v")}
	}
	// Partition 0: 3 records, a commit marker (offset 3), 1 aborted record,
	// an abort marker (5); partition 1: 1 record, a commit marker (1).
	write(rec(repartition, 0), rec(repartition, 0), rec(repartition, 0), rec(repartition, 1))
	end(kgo.TryCommit)
	write(rec(repartition, 0))
	end(kgo.TryAbort)

	adm := kadm.NewClient(cl)
	commit := func(p int32, at int64) {
		t.Helper()
		var offs kadm.Offsets
		offs.Add(kadm.Offset{Topic: InputTopic, Partition: 0, At: 1})
		offs.Add(kadm.Offset{Topic: repartition, Partition: p, At: at})
		if _, err := adm.CommitOffsets(ctx, app, offs); err != nil {
			t.Fatal(err)
		}
	}
	lag := func(g Guarantee) []Lag {
		t.Helper()
		lags, err := GroupLag(ctx, cl, app, g)
		if err != nil {
			t.Fatal(err)
		}
		return lags
	}
	commit(0, 2)
	commit(1, 1)
	if lags := lag(ExactlyOnce); CaughtUp(lags) || lags[1].Behind != 4 {
		t.Fatalf("a record left on partition 0: %v, want 4 behind (the end offset counts)", lags)
	}
	commit(0, 3)
	if lags := lag(ExactlyOnce); !CaughtUp(lags) || lags[1].Committed != 4 || lags[1].End != 4 {
		t.Fatalf("every record committed: %v, want caught up at 4/4", lags)
	}
	if lags := lag(AtLeastOnce); CaughtUp(lags) || lags[1].End != 8 {
		t.Fatalf("at-least-once counts markers as records: %v, want the end offsets 8", lags)
	}
	if open, err := OpenTransactions(ctx, adm, app); err != nil || len(open) != 0 {
		t.Fatalf("OpenTransactions: %v, %v, want none", open, err)
	}

	// A transaction left open on partition 1 and the echo topic.
	write(rec(repartition, 1), rec(EchoTopic, 0))
	lags := lag(ExactlyOnce)
	if CaughtUp(lags) || lags[1].Open != 1 {
		t.Fatalf("a transaction open: %v, want one open partition and not caught up", lags)
	}
	open, err := OpenTransactions(ctx, adm, app)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{EchoTopic + "/0: 0 < 1", repartition + "/1: 2 < 3"}; !slices.Equal(open, want) {
		t.Fatalf("OpenTransactions: %q, want %q", open, want)
	}
	end(kgo.TryCommit)
	if lags := lag(ExactlyOnce); CaughtUp(lags) || lags[1].Open != 0 || lags[1].Behind != 3 {
		t.Fatalf("the transaction committed: %v, want 3 behind: its record, its marker and the one before", lags)
	}
}
