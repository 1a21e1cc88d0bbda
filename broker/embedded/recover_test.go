package embedded_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/broker"
	"github.com/kappa-streams/kappa/broker/embedded"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKilledBrokerAbortsOpenTransactions commits a transaction, leaves
// one open, SIGKILLs the broker (`kappa broker` as a process), starts it
// again over the same data directory, and lets the same transactional ID
// commit a transaction after. A read_committed consumer from the start
// must see every committed record and none of the open transaction's.
// Without the ABORT marker the restart writes, the consumer skips the
// producer's batches from the open transaction on, the committed ones
// after it too.
func TestKilledBrokerAbortsOpenTransactions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the kappa command and runs its broker as a process; run without -short")
	}
	p := kafkatest.StartBrokerProcess(t, filepath.Join(t.TempDir(), "data"))
	checkOpenTransactionAborted(t, p.Addrs(), p.Restart)
}

// TestCleanRestartLeavesOpenTransactions stops the broker cleanly while
// a producer has a transaction open, and starts it again: the broker keeps
// the transaction open as it was, for its producer to end, so the start
// writes no marker of its own. The next producer with the transactional
// ID aborts it, and a read_committed consumer sees every committed record.
func TestCleanRestartLeavesOpenTransactions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	b, err := embedded.New(embedded.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { b.Close() }()
	addr := b.Addrs()[0]
	checkOpenTransactionAborted(t, b.Addrs(), func() {
		b.Close()
		b, err = embedded.New(embedded.DataDir(dir), embedded.Listen(addr))
		if err != nil {
			t.Fatal(err)
		}
		if n := b.RecoveredTxns(); n != 0 {
			t.Errorf("the clean restart aborted %d open transactions, want none", n)
		}
	})
}

// checkOpenTransactionAborted commits a transaction, leaves one open,
// restarts the broker at seeds, commits one more with the same
// transactional ID, and reads the topic committed from its start.
func checkOpenTransactionAborted(t *testing.T, seeds []string, restart func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := broker.Connect(ctx, seeds)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Admin().Create(ctx, broker.TopicSpec{Name: "out", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	txn := func(values []string, commit bool) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.TransactionalID("writer"), kgo.DefaultProduceTopic("out"))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if err := cl.ProduceSync(ctx, kgo.StringRecord(v)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
		}
	}
	txn([]string{"c1", "c2"}, true)
	txn([]string{"open1", "open2"}, false) // left open by the stop
	restart()
	txn([]string{"c3", "c4"}, true)
	rd, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("out"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var got []string
	for len(got) < 4 && ctx.Err() == nil {
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if fmt.Sprint(got) != "[c1 c2 c3 c4]" {
		t.Fatalf("read committed %v, want [c1 c2 c3 c4]", got)
	}
}
