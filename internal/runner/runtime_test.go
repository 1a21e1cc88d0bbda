package runner

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/processor"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// rawFunc adapts a function to RawReceiver.
type rawFunc func(rec *processor.RawRecord) error

// ReceiveRaw calls f.
func (f rawFunc) ReceiveRaw(rec *processor.RawRecord) error { return f(rec) }

// TestProduceFailureStopsTasks fails a produce while a task processes the
// first of three buffered records: the task processes no other record,
// later sends are dropped, wall-clock punctuation stops, and a commit
// returns the failure without committing anything. No broker is needed:
// the client points at a closed port and only buffers.
func TestProduceFailureStopsTasks(t *testing.T) {
	var r *Runtime
	processed := 0
	b := processor.NewBuilder()
	b.AddSource("src", []processor.TopicRef{{Name: "in"}}, "", func(task *processor.Task, _ []processor.Child) (any, error) {
		return rawFunc(func(rec *processor.RawRecord) error {
			processed++
			task.Send(&processor.RawRecord{Topic: "out", Value: rec.Value})
			if rec.Offset == 0 {
				// The brokers reject an earlier output while this
				// record is processed.
				r.col.promise(&kgo.Record{Topic: "out", Partition: 0, Context: r.col.failedDone()}, kerr.MessageTooLarge)
			}
			return nil
		}), nil
	})
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := topo.Plan("app", map[string]int32{"in": 1})
	if err != nil {
		t.Fatal(err)
	}
	r, err = New(Config{Topology: topo, Plan: plan, ClientOpts: []kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.cl.Close()

	id := processor.TaskID{SubTopology: 0, Partition: 0}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.assign(id)
	rt, _ := r.tasks.get(id)
	if rt == nil || !rt.running() {
		t.Fatal("task without stores not ready at assignment")
	}
	fired := 0
	rt.Schedule(time.Millisecond, processor.WallClock, func(time.Time) error { fired++; return nil })
	rt.caughtUp["in"] = true
	for off := range int64(3) {
		rt.buf["in"] = append(rt.buf["in"], &kgo.Record{Topic: "in", Offset: off, Value: []byte("v")})
	}
	n, err := r.runBuffered(rt, time.Now())
	if err != nil || n != 1 || processed != 1 || len(rt.buf["in"]) != 2 {
		t.Fatalf("after the failure: %d processed (%d by the source), %d still buffered, error %v; want 1, 1, 2, nil",
			n, processed, len(rt.buf["in"]), err)
	}
	before := r.cl.BufferedProduceRecords()
	r.col.Send(&processor.RawRecord{Topic: "out", Value: []byte("late")})
	if after := r.cl.BufferedProduceRecords(); after != before {
		t.Fatalf("a send after the failure was produced: %d buffered records, had %d", after, before)
	}
	r.mu.Unlock()
	err = r.punctuate(time.Now().Add(time.Hour))
	r.mu.Lock()
	if err != nil || fired != 0 {
		t.Fatalf("punctuation after the failure: %d fired, error %v", fired, err)
	}
	r.dirty = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = r.commit(ctx, nil)
	var pe *processor.ProduceError
	if !errors.As(err, &pe) || pe.Topic != "out" || !errors.Is(err, processor.ErrProduce) || !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("commit after the failure: %v, want the ProduceError of topic out", err)
	}
	if r.Commits() != 0 {
		t.Fatalf("%d commits completed after the failure", r.Commits())
	}
	select {
	case <-r.col.failedDone().Done():
	default:
		t.Fatal("the failure did not wake the run loop")
	}
}

// TestWallClockPunctuationMarksCommit checks that a wall-clock punctuation
// on a task without input makes the next commit run, and that a
// punctuator not yet due does not.
func TestWallClockPunctuationMarksCommit(t *testing.T) {
	b := processor.NewBuilder()
	b.AddSource("src", []processor.TopicRef{{Name: "in"}}, "", func(task *processor.Task, _ []processor.Child) (any, error) {
		task.Schedule(time.Minute, processor.WallClock, func(time.Time) error { return nil })
		return rawFunc(func(*processor.RawRecord) error { return nil }), nil
	})
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := topo.Plan("app", map[string]int32{"in": 1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Topology: topo, Plan: plan, ClientOpts: []kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.cl.Close()
	r.mu.Lock()
	r.assign(processor.TaskID{SubTopology: 0, Partition: 0})
	r.mu.Unlock()
	if err := r.punctuate(time.Now()); err != nil || r.dirty {
		t.Fatalf("no punctuator due: dirty %v, error %v", r.dirty, err)
	}
	if err := r.punctuate(time.Now().Add(2 * time.Minute)); err != nil || !r.dirty {
		t.Fatalf("a punctuator fired: dirty %v, error %v; want the next commit to flush", r.dirty, err)
	}
}

// TestCoPartitionedInputs checks which inputs have their records' partitions
// checked: the external topics of a co-partition group, not its
// repartition topics, and no topic of a group of one.
func TestCoPartitionedInputs(t *testing.T) {
	b := processor.NewBuilder()
	pass := func(*processor.Task, []processor.Child) (any, error) {
		return rawFunc(func(*processor.RawRecord) error { return nil }), nil
	}
	left := b.AddSource("left", []processor.TopicRef{{Name: "left"}}, "", pass)
	right := b.AddSource("right", []processor.TopicRef{{Name: "right"}}, "", pass)
	rep := b.AddSource("rep", []processor.TopicRef{{Name: "rep-repartition", Internal: true}}, "", pass)
	self := b.AddSource("self", []processor.TopicRef{{Name: "self"}}, "", pass)
	b.AddInternalTopic(processor.InternalTopic{Ref: processor.TopicRef{Name: "rep-repartition", Internal: true}})
	b.AddSink("to-rep", &processor.TopicRef{Name: "rep-repartition", Internal: true}, "", nil, self)
	b.CoPartition("join a", left, right, rep)
	b.CoPartition("join b", self, self)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := topo.Plan("app", map[string]int32{"left": 3, "right": 3, "self": 5})
	if err != nil {
		t.Fatal(err)
	}
	got := coPartitionedInputs(topo, plan)
	if len(got) != 2 || got["left"] != 3 || got["right"] != 3 {
		t.Fatalf("checked inputs %v, want left and right with 3 partitions", got)
	}
}
