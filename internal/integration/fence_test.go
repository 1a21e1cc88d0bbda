package integration_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFencedInstanceRejoins makes the coordinator answer this instance's
// heartbeats with ILLEGAL_GENERATION, as it does after a broker restart
// or a pause longer than the session timeout: the group moved on without
// it. The instance must not exit: it closes its tasks without committing
// (no stale flush), rejoins, gets its tasks back, and loses nothing.
func TestFencedInstanceRejoins(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 2)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	app, stop := runApp(t, countTopology(t), kappa.AppID(countsApp), kappa.Brokers(seeds...),
		kappa.CommitInterval(100*time.Millisecond), kappa.Logger(log))
	kafkatest.Eventually(t, 30*time.Second, "the instance to run its tasks", func() bool {
		st := app.TaskStatus()
		return len(st) == 4 && st[0].Ready && st[3].Ready
	})
	inputs, _ := makeClicks(4000, 50)
	cl := kafkatest.Client(t, seeds)
	kafkatest.Produce(t, cl, inputs[:2000]...)
	out := newTail(t, seeds, countsOut)
	out.waitEqual(truthCounts(inputs[:2000]), 30*time.Second)
	commitsBefore := app.Commits()

	// From now on, every heartbeat of the current generation is fenced,
	// until the instance rejoins and gets a new one.
	var mu sync.Mutex
	fencedGen := int32(-1)
	fences, rejoined := 0, false
	b.Cluster().ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		b.Cluster().KeepControl()
		hb := req.(*kmsg.HeartbeatRequest)
		mu.Lock()
		defer mu.Unlock()
		if fencedGen < 0 {
			fencedGen = hb.Generation
		}
		if hb.Generation > fencedGen {
			rejoined = true
			return nil, nil, false // a new generation: let it through
		}
		fences++
		resp := hb.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.IllegalGeneration.Code
		return resp, nil, true
	})
	// Its commits of that generation are refused the same way.
	b.Cluster().ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		b.Cluster().KeepControl()
		oc := req.(*kmsg.OffsetCommitRequest)
		mu.Lock()
		defer mu.Unlock()
		if fencedGen < 0 || oc.Generation > fencedGen {
			return nil, nil, false
		}
		resp := oc.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range oc.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.IllegalGeneration.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	kafkatest.Produce(t, cl, inputs[2000:3000]...)
	kafkatest.Eventually(t, 60*time.Second, "the instance to be fenced and rejoin in a new generation", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return fences > 0 && rejoined
	})
	kafkatest.Produce(t, cl, inputs[3000:]...)
	kafkatest.Eventually(t, 60*time.Second, "the fenced instance to rejoin and commit again", func() bool {
		st := app.TaskStatus()
		return app.Commits() > commitsBefore && len(st) == 4 && st[0].Ready && st[1].Ready && st[2].Ready && st[3].Ready &&
			committed(t, cl, countsApp, "clicks", 0)+committed(t, cl, countsApp, "clicks", 1) == int64(len(inputs))
	})
	// At least once: every click is counted, maybe more than once (the
	// input since the last commit is reprocessed after the rejoin).
	waitLatestCounts(t, seeds, truthCounts(inputs))
	if err := stop(); err != nil {
		t.Fatalf("the instance stopped with %v after being fenced", err)
	}
	if !bytes.Contains([]byte(logs.String()), []byte("no longer a member")) && !bytes.Contains([]byte(logs.String()), []byte("tasks lost")) {
		t.Fatalf("no log line says the tasks were lost:\n%s", logs.String())
	}
}

// TestExactlyOnceFencedProducerRecovers fences the instance's
// transactional producer again and again while it runs under exactly-once,
// as a zombie with its transactional ID, a pause past the transaction
// timeout or a broker restart does: another producer initializes the same
// transactional ID, which bumps its epoch and aborts the open
// transaction. The instance's next produce, offset commit or abort is
// refused (INVALID_PRODUCER_EPOCH, PRODUCER_FENCED). It must not stop: it
// replaces its producer, reopens its tasks from their committed state,
// and the counts read committed end exact.
func TestExactlyOnceFencedProducerRecovers(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 2)
	inputs, _ := makeClicks(6000, 50)
	cl := kafkatest.Client(t, seeds)
	kafkatest.Produce(t, cl, inputs[:1000]...)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	app, stop := runApp(t, countTopology(t), kappa.AppID(countsApp), kappa.Brokers(seeds...),
		kappa.Guarantee(kappa.ExactlyOnce), kappa.StateDir(t.TempDir()), kappa.CacheBytes(1<<10),
		kappa.CommitInterval(200*time.Millisecond), kappa.Logger(log))
	kafkatest.Eventually(t, 60*time.Second, "the first commits", func() bool { return app.Commits() > 0 })
	adm := kadm.NewClient(cl)
	var txnID string
	kafkatest.Eventually(t, 30*time.Second, "the instance's transactional ID to be listed", func() bool {
		txns, err := adm.ListTransactions(context.Background(), nil, nil)
		if err != nil {
			return false
		}
		for _, tx := range txns.Sorted() {
			if strings.HasPrefix(tx.TxnID, countsApp+"-") {
				txnID = tx.TxnID
			}
		}
		return txnID != ""
	})
	// Five fences, each while the instance has records of an open
	// transaction in flight.
	for i := range 5 {
		from, to := 1000+i*1000, 2000+i*1000
		kafkatest.Produce(t, cl, inputs[from:to]...)
		before := app.Processed()
		kafkatest.Eventually(t, 30*time.Second, "the instance to process more", func() bool { return app.Processed() > before })
		zombie := kafkatest.Client(t, seeds, kgo.TransactionalID(txnID))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, _, err := zombie.ProducerID(ctx); err != nil { // InitProducerID: the epoch bump
			t.Fatalf("fence %d: init producer ID %s: %v", i, txnID, err)
		}
		cancel()
		zombie.Close()
	}
	want := truthCounts(inputs)
	stopWhenExact(t, seeds, want, stop)
	if !strings.Contains(logs.String(), "replacing the producer") {
		t.Fatalf("no log line says the fenced producer was replaced:\n%s", lastLogLines(logs.String(), 40))
	}
}

// lastLogLines returns the last n lines of logs.
func lastLogLines(logs string, n int) string {
	lines := strings.Split(strings.TrimRight(logs, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
