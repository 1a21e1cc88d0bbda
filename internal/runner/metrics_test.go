package runner

import (
	"testing"
	"time"

	"github.com/kappa-streams/kappa/metrics"
	"github.com/kappa-streams/kappa/processor"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMetricsContinueAcrossStays runs a task, closes it and opens it
// again on the same instance: the snapshot counts what it did, reports
// the lag only while it runs, and its counters continue from where its
// first stay left them. No broker is needed: the client points at a
// closed port and only buffers.
func TestMetricsContinueAcrossStays(t *testing.T) {
	b := processor.NewBuilder()
	b.AddSource("src", []processor.TopicRef{{Name: "in"}}, "", func(task *processor.Task, _ []processor.Child) (any, error) {
		task.Schedule(time.Minute, processor.WallClock, func(time.Time) error { return nil })
		return rawFunc(func(rec *processor.RawRecord) error {
			if string(rec.Value) == "late" {
				task.DropLate("src", rec.Timestamp.UnixMilli(), task.StreamTimeMillis())
				return nil
			}
			task.Send(&processor.RawRecord{Topic: "out", Value: rec.Value, Timestamp: rec.Timestamp})
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
	m := NewMetrics()
	r, err := New(Config{Topology: topo, Plan: plan, ClientOpts: []kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	defer r.cl.Close()
	id := processor.TaskID{SubTopology: 0, Partition: 0}

	// stay assigns the task, fetches records [from, from+n) of a partition
	// whose high watermark is hw, with the one at offset late marked late,
	// and processes them.
	stay := func(from, n, late, hw int64) *runTask {
		t.Helper()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.assign(id)
		rt, _ := r.tasks.get(id)
		p := kgo.FetchTopicPartition{Topic: "in", FetchPartition: kgo.FetchPartition{Partition: 0, HighWatermark: hw}}
		for off := from; off < from+n; off++ {
			v := "v"
			if off == late {
				v = "late"
			}
			p.Records = append(p.Records, &kgo.Record{Topic: "in", Offset: off, Value: []byte(v), Timestamp: time.Now().Add(-time.Second)})
		}
		rt.fetched(p)
		rt.buf["in"] = append(rt.buf["in"], p.Records...)
		rt.caughtUp["in"] = true
		if got, err := r.runBuffered(rt, time.Now()); err != nil || got != n {
			t.Fatalf("processed %d, error %v; want %d", got, err, n)
		}
		return rt
	}
	check := func(what string, live bool, processed, produced, late, lag int64) metrics.Task {
		t.Helper()
		s := m.Snapshot()
		if len(s.Tasks) != 1 {
			t.Fatalf("%s: %d tasks in the snapshot, want 1", what, len(s.Tasks))
		}
		mt := s.Tasks[0]
		in := mt.Inputs[0]
		if mt.ID != "0_0" || mt.Live != live || in.Topic != "in" || in.Consumed != processed || in.Processed != processed ||
			mt.Outputs["out"] != produced || mt.Late["src"] != late || in.Lag != lag || (mt.EndToEnd.Count() == 0) != (produced == 0) {
			t.Fatalf("%s: snapshot %+v; want live %v, %d consumed and processed, %d produced, %d late, lag %d",
				what, mt, live, processed, produced, late, lag)
		}
		return mt
	}

	stay(0, 5, 2, 10)
	check("first stay", true, 5, 4, 1, 5)
	if err := r.punctuate(time.Now().Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if s := m.Snapshot(); s.Tasks[0].Punctuation.Count() != 1 || s.TaskStates["running"] != 1 {
		t.Fatalf("after a wall-clock punctuation: %d punctuations, states %v", s.Tasks[0].Punctuation.Count(), s.TaskStates)
	}

	r.mu.Lock()
	r.tasks.close(map[processor.TaskID]bool{id: true}, false)
	r.mu.Unlock()
	check("closed", false, 5, 4, 1, -1)

	stay(5, 3, 6, 8)
	mt := check("second stay", true, 8, 6, 2, 0)
	if mt.Punctuation.Count() != 1 || mt.Process.Count() != 2 {
		t.Fatalf("second stay: %d punctuations and %d batches, want 1 and 2", mt.Punctuation.Count(), mt.Process.Count())
	}
}
