package streamtest_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/streamtest"
)

// counting builds in → GroupByKey → Count("counts") → out.
func counting(t *testing.T) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	stream.From(b, "in", codec.String(), codec.String()).GroupByKey().
		Count(stream.Materialized("counts")).ToStream().To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// TestPipeTo writes a key into a partition it does not hash to: it is
// counted by that partition's task, apart from the same key's records in
// its own partition.
func TestPipeTo(t *testing.T) {
	d, err := streamtest.New(counting(t), streamtest.Partitions("in", 4))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := streamtest.NewInput(d, "in", codec.String(), codec.String())
	if err := in.Pipe("k", "v"); err != nil {
		t.Fatal(err)
	}
	home := processor.KeyPartition([]byte("k"), 4)
	other := (home + 1) % 4
	if err := in.PipeTo(other, processor.Record[string, string]{Key: "k", Value: "v"}); err != nil {
		t.Fatal(err)
	}
	// Two tasks counted "k" once each; the sink writes both results to
	// the key's partition of "out".
	if got := fmt.Sprint(streamtest.NewOutput(d, "out", codec.String(), codec.Int64()).ReadKeyValues()); got != "[k=1 k=1]" {
		t.Fatalf("out %s, want k counted once by each of two tasks", got)
	}
	for _, p := range []int32{home, other} {
		kv, err := streamtest.KeyValueStore[string, int64](d, "counts", int(p))
		if err != nil {
			t.Fatal(err)
		}
		if n, ok, err := kv.Get("k"); err != nil || !ok || n != 1 {
			t.Fatalf("partition %d's store: k = %d (%v, %v), want 1", p, n, ok, err)
		}
	}
	err = in.PipeTo(4, processor.Record[string, string]{Key: "k", Value: "v"})
	if err == nil || !strings.Contains(err.Error(), "no partition 4") {
		t.Fatalf("piping to partition 4 of 4: %v, want an error naming the partition", err)
	}
}

// TestTombstone sends typed deletes to a table.
func TestTombstone(t *testing.T) {
	b := stream.NewBuilder()
	stream.TableFrom(b, "in", codec.String(), codec.Int64(), stream.Materialized("rows")).ToStream().To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := streamtest.NewInput(d, "in", codec.String(), codec.Int64())
	for _, step := range []func() error{
		func() error { return in.Pipe("a", 1) },
		func() error { return in.Pipe("b", 2) },
		func() error { return in.Tombstone("a") },
		func() error {
			return in.PipeRecord(processor.Record[string, int64]{Key: "b", Value: 99, Tombstone: true})
		},
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	recs := streamtest.NewOutput(d, "out", codec.String(), codec.Int64()).ReadAll()
	if len(recs) != 4 || !recs[2].Tombstone || !recs[3].Tombstone || recs[3].Key != "b" {
		t.Fatalf("out %+v, want two rows, then tombstones for a and b", recs)
	}
	rows, err := streamtest.ReadStore[string, int64](d, "rows")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 0 {
		t.Fatalf("rows %v, want none", rows)
	}
}

// TestNoCache forwards every update at once, even between manual commits.
func TestNoCache(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []streamtest.Opt
		want string
	}{
		{"default cache", nil, "[]"},
		{"no cache", []streamtest.Opt{streamtest.NoCache()}, "[k=1 k=2 k=3]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := streamtest.New(counting(t), append(tc.opts, streamtest.ManualCommit())...)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			in := streamtest.NewInput(d, "in", codec.String(), codec.String())
			for range 3 {
				if err := in.Pipe("k", "v"); err != nil {
					t.Fatal(err)
				}
			}
			out := streamtest.NewOutput(d, "out", codec.String(), codec.Int64())
			if got := fmt.Sprint(out.ReadKeyValues()); got != tc.want {
				t.Fatalf("before a commit: %s, want %s", got, tc.want)
			}
			if err := d.Commit(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
