package runner

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/broker/embedded"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// committerRig is a runtime that copies "in" to "out", running on an
// embedded broker, that never commits on its own (its commit interval is
// an hour): the test calls its committer and reads the verdict.
type committerRig struct {
	t    *testing.T
	b    *embedded.Broker
	r    *Runtime
	cl   *kgo.Client
	sent int
	done chan error // Run's error
}

func newCommitterRig(t *testing.T, g processor.Guarantee) *committerRig {
	t.Helper()
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "in", 2)
	kafkatest.CreateTopic(t, seeds, "out", 2)
	bld := processor.NewBuilder()
	bld.AddSource("src", []processor.TopicRef{{Name: "in"}}, "", func(task *processor.Task, _ []processor.Child) (any, error) {
		return rawFunc(func(rec *processor.RawRecord) error {
			task.Send(&processor.RawRecord{Topic: "out", Key: rec.Key, Value: rec.Value})
			return nil
		}), nil
	})
	topo, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := topo.Plan("rig", map[string]int32{"in": 2, "out": 2})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Topology: topo, Plan: plan, ClientOpts: []kgo.Opt{kgo.SeedBrokers(seeds...)}, Guarantee: g,
		CommitInterval: time.Hour, StateDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), MaxWarmupReplicas: 0})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		r.Abort() // nothing more is committed than what the test asked for
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the runtime did not stop")
		}
	})
	kafkatest.Eventually(t, 20*time.Second, "both tasks running", func() bool {
		n := 0
		for _, rt := range r.tasks.view() {
			if rt.running() {
				n++
			}
		}
		return n == 2
	})
	return &committerRig{t: t, b: b, r: r, cl: kafkatest.Client(t, seeds), done: done}
}

// feed produces n input records and waits until the runtime has
// processed them.
func (g *committerRig) feed(n int) {
	g.t.Helper()
	for i := range n {
		kafkatest.Produce(g.t, g.cl, &kgo.Record{Topic: "in", Key: []byte(strconv.Itoa(g.sent + i)), Value: []byte("v")})
	}
	g.sent += n
	kafkatest.Eventually(g.t, 20*time.Second, "the records processed", func() bool { return g.r.Processed() >= int64(g.sent) })
}

// commit runs the committer over every running task, as the runtime's
// commit does, and returns its verdict.
func (g *committerRig) commit() outcome {
	g.r.mu.Lock()
	defer g.r.mu.Unlock()
	var tasks []*runTask
	for _, rt := range g.r.tasks.all() {
		if rt.running() {
			tasks = append(tasks, rt)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return g.r.committer.commit(ctx, tasks)
}

// committed returns the group's committed offsets of "in", summed.
func (g *committerRig) committed() int64 {
	g.t.Helper()
	offs, err := kadm.NewClient(g.cl).FetchOffsets(context.Background(), "rig")
	if err != nil {
		g.t.Fatal(err)
	}
	sum := int64(0)
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == "in" && o.Err == nil {
			sum += o.At
		}
	})
	return sum
}

// readCommitted returns how many records of "out" a read_committed
// consumer sees.
func (g *committerRig) readCommitted() int64 {
	g.t.Helper()
	ends, err := kadm.NewClient(g.cl).ListEndOffsets(context.Background(), "out")
	if err != nil {
		g.t.Fatal(err)
	}
	n := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset == 0 {
			return
		}
		rd := kafkatest.Client(g.t, g.b.Addrs(), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"out": {o.Partition: kgo.NewOffset().AtStart()}}))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			fs := rd.PollFetches(ctx)
			fs.EachRecord(func(*kgo.Record) { n++ })
		}
	})
	return n
}

// failOnce answers the next request of key with the response resp
// builds, once; resp returns nil for a request to let through.
func (g *committerRig) failOnce(key kmsg.Key, resp func(kmsg.Request) kmsg.Response) {
	c := g.b.Cluster()
	c.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := resp(req)
		if r == nil {
			c.KeepControl()
			return nil, nil, false
		}
		c.DropControl()
		return r, nil, true
	})
}

func offsetCommitError(code int16) func(kmsg.Request) kmsg.Response {
	return func(req kmsg.Request) kmsg.Response {
		return kafkatest.OffsetCommitErrorResponse(req.(*kmsg.OffsetCommitRequest), code)
	}
}

func txnOffsetCommitError(code int16) func(kmsg.Request) kmsg.Response {
	return func(req kmsg.Request) kmsg.Response {
		return kafkatest.TxnOffsetCommitErrorResponse(req.(*kmsg.TxnOffsetCommitRequest), code)
	}
}

// produceErrorTo fails a produce to topic (whose ID is id).
func produceErrorTo(topic string, id [16]byte, code int16) func(kmsg.Request) kmsg.Response {
	return func(req kmsg.Request) kmsg.Response {
		pr := req.(*kmsg.ProduceRequest)
		for _, tp := range pr.Topics {
			if tp.Topic == topic || tp.TopicID == id {
				return kafkatest.ProduceErrorResponse(pr, code)
			}
		}
		return nil
	}
}

func wantVerdict(t *testing.T, what string, got outcome, want verdict) {
	t.Helper()
	if got.verdict != want {
		t.Fatalf("%s: verdict %d (%v), want %d", what, got.verdict, got.err, want)
	}
}

// TestAtLeastOnceVerdicts checks each verdict of the at-least-once
// committer: committed; not committed when the offset commit fails
// transiently (the outputs are acknowledged, the offsets stay); fenced
// when the group refuses the member's generation; and that a refused
// output stops the instance with no offset committed past it.
func TestAtLeastOnceVerdicts(t *testing.T) {
	g := newCommitterRig(t, processor.AtLeastOnce)
	g.feed(10)
	wantVerdict(t, "first commit", g.commit(), committed)
	if n := g.committed(); n != 10 {
		t.Fatalf("committed offsets sum to %d after the first commit, want 10", n)
	}

	g.feed(5)
	g.failOnce(kmsg.OffsetCommit, offsetCommitError(kerr.OffsetMetadataTooLarge.Code))
	wantVerdict(t, "commit whose offset commit fails", g.commit(), notCommitted)
	if n := g.committed(); n != 10 {
		t.Fatalf("committed offsets sum to %d after a failed offset commit, want 10", n)
	}
	wantVerdict(t, "commit after it", g.commit(), committed)
	if n := g.committed(); n != 15 {
		t.Fatalf("committed offsets sum to %d after the retry, want 15", n)
	}

	g.feed(5)
	g.failOnce(kmsg.OffsetCommit, offsetCommitError(kerr.IllegalGeneration.Code))
	wantVerdict(t, "commit refused for its generation", g.commit(), fenced)

	// A refused output: the run loop, woken by the failure, halts before
	// any commit could pass it (the committer's fatal verdict is the same
	// rule at commit time), and nothing is committed.
	g2 := newCommitterRig(t, processor.AtLeastOnce)
	details, err := kadm.NewClient(g2.cl).ListTopics(context.Background(), "out")
	if err != nil {
		t.Fatal(err)
	}
	g2.failOnce(kmsg.Produce, produceErrorTo("out", details["out"].ID, kerr.MessageTooLarge.Code))
	for i := range 3 {
		kafkatest.Produce(t, g2.cl, &kgo.Record{Topic: "in", Key: []byte(strconv.Itoa(i)), Value: []byte("v")})
	}
	select {
	case err := <-g2.done:
		g2.done <- err // for the cleanup
		if !errors.Is(err, kerr.MessageTooLarge) {
			t.Fatalf("the runtime stopped with %v, want the refusal", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the runtime did not stop after a refused output")
	}
	if n := g2.committed(); n != 0 {
		t.Fatalf("offsets committed past a refused output: sum %d", n)
	}
}

// TestExactlyOnceVerdicts checks each verdict of the exactly-once
// committer: committed, with the outputs visible to read_committed
// readers; aborted when the transaction's offset commit fails, with
// nothing of it visible and the next transaction committing; fenced when
// the group refuses the member's generation.
func TestExactlyOnceVerdicts(t *testing.T) {
	g := newCommitterRig(t, processor.ExactlyOnce)
	g.feed(10)
	wantVerdict(t, "first commit", g.commit(), committed)
	if n, c := g.readCommitted(), g.committed(); n != 10 || c != 10 {
		t.Fatalf("after the first commit: %d outputs read committed, offsets sum %d; want 10, 10", n, c)
	}

	g.feed(5)
	g.failOnce(kmsg.TxnOffsetCommit, txnOffsetCommitError(kerr.UnknownServerError.Code))
	wantVerdict(t, "commit whose offsets fail", g.commit(), aborted)
	if n, c := g.readCommitted(), g.committed(); n != 10 || c != 10 {
		t.Fatalf("after the aborted commit: %d outputs read committed, offsets sum %d; want 10, 10", n, c)
	}

	g.feed(5)
	g.failOnce(kmsg.TxnOffsetCommit, txnOffsetCommitError(kerr.IllegalGeneration.Code))
	wantVerdict(t, "commit refused for its generation", g.commit(), fenced)
	if n := g.readCommitted(); n != 10 {
		t.Fatalf("after the fenced commit: %d outputs read committed, want 10", n)
	}
}
