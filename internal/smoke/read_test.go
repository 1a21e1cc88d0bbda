package smoke

import (
	"context"
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
	for _, topic := range OutputTopics {
		kafkatest.CreateTopic(t, seeds, topic, 2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := func(topic, v string) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte(v)}
	}
	kafkatest.Produce(t, kafkatest.Client(t, seeds), rec(CountTopic, "plain1"), rec(CountTopic, "plain2"))
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
		if len(out.DeadLetters) != 0 {
			t.Errorf("%s: %d dead letters from a topic that does not exist", g, len(out.DeadLetters))
		}
	}
}

// TestReadMissingOutput reports an output topic that does not exist.
func TestReadMissingOutput(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
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

	lags, err := GroupLag(ctx, adm, app)
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
	lags, err = GroupLag(ctx, adm, app)
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
	if lags, err = GroupLag(ctx, adm, app); err != nil || !CaughtUp(lags) {
		t.Fatalf("all committed: %+v, %v", lags, err)
	}
}
