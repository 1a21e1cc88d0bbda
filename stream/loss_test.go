package stream_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/streamtest"
	"github.com/kappa-streams/kappa/window"
)

// The tests of this file reproduce, each in its smallest form, a way a
// result was once lost without a trace. They stay as regression tests;
// the oracle tests under cache pressure (pressure_test.go) look for the
// whole class.

// storeLines returns a key-value store's entries as "key=value", in key
// order.
func storeLines[V any](t *testing.T, d *streamtest.Driver, name string) []string {
	t.Helper()
	entries, err := streamtest.ReadStore[string, V](d, name)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, fmt.Sprintf("%s=%v", e.Key, e.Value))
	}
	return out
}

// TestFlushFailureKeepsLaterKeys: a downstream error while a cache flush
// forwards one key must not cost the keys after it. The failing key goes
// to the dead-letter topic, the others downstream, and the store keeps
// every update, before and after a restart.
func TestFlushFailureKeepsLaterKeys(t *testing.T) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.String())
	counts := in.GroupByKey().Count(stream.Materialized("counts"))
	stream.MapValuesErr(counts.ToStream(), func(k string, n int64) (int64, error) {
		if k == "b" {
			return 0, errors.New("b is refused")
		}
		return n, nil
	}).To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo, streamtest.ManualCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pipe := streamtest.NewInput(d, "in", codec.String(), codec.String())
	out := streamtest.NewOutput(d, "out", codec.String(), codec.Int64())
	for _, k := range []string{"a", "b", "c"} {
		if err := pipe.Pipe(k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := out.ReadKeyValues(); fmt.Sprint(got) != "[a=1 c=1]" {
		t.Fatalf("out %v, want [a=1 c=1]", got)
	}
	dl := d.DeadLetters()
	if len(dl) != 1 || string(dl[0].Key) != "b" || dl[0].Topic != "counts" {
		t.Fatalf("dead letters %+v, want b's change from store counts", dl)
	}
	if got := storeLines[int64](t, d, "counts"); fmt.Sprint(got) != "[a=1 b=1 c=1]" {
		t.Fatalf("store %v, want [a=1 b=1 c=1]", got)
	}
	if err := d.CloseTasks(); err != nil {
		t.Fatal(err)
	}
	if err := pipe.Pipe("c", "v"); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := storeLines[int64](t, d, "counts"); fmt.Sprint(got) != "[a=1 b=1 c=2]" {
		t.Fatalf("store after restart %v, want [a=1 b=1 c=2]", got)
	}
	if got := out.ReadKeyValues(); fmt.Sprint(got) != "[c=2]" {
		t.Fatalf("out after restart %v, want [c=2]", got)
	}
}

// TestFlushPanicKeepsLaterKeys is TestFlushFailureKeepsLaterKeys with a
// panicking downstream function and a cache so small that the failures
// happen during evictions, in the middle of processing other records.
func TestFlushPanicKeepsLaterKeys(t *testing.T) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.String())
	counts := in.GroupByKey().Count(stream.Materialized("counts"))
	stream.MapValues(counts.ToStream(), func(k string, n int64) int64 {
		if k == "b" {
			panic("b is refused")
		}
		return n
	}).To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo, streamtest.ManualCommit(), streamtest.CacheBytes(1))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pipe := streamtest.NewInput(d, "in", codec.String(), codec.String())
	for range 3 {
		for _, k := range []string{"a", "b", "c", "d"} {
			if err := pipe.Pipe(k, "v"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	last := latest(streamtest.NewOutput(d, "out", codec.String(), codec.Int64()).ReadAll())
	if fmt.Sprint(last) != "map[a:3 c:3 d:3]" {
		t.Fatalf("latest outputs %v, want a, c and d at 3", last)
	}
	var kinds []string
	for _, dl := range d.DeadLetters() {
		if string(dl.Key) != "b" {
			t.Fatalf("dead letter for key %q", dl.Key)
		}
		kinds = append(kinds, dl.Kind)
	}
	if len(kinds) == 0 || slices.ContainsFunc(kinds, func(k string) bool { return k != "panic" }) {
		t.Fatalf("dead letter kinds %v, want panics of b's changes", kinds)
	}
	if got := storeLines[int64](t, d, "counts"); fmt.Sprint(got) != "[a=3 b=3 c=3 d=3]" {
		t.Fatalf("store %v, want every key at 3", got)
	}
}

// TestEmitFinalUnderEviction: a final result must come out when the
// record that closes its window also moves the store's retention past it,
// with a cache that evicts at every write.
func TestEmitFinalUnderEviction(t *testing.T) {
	for _, tc := range []struct {
		name  string
		w     window.Windows
		times []int64
		want  string
	}{
		{"session", window.Session(time.Second), []int64{1000, 9000}, "[a@[1000,1000]=1]"},
		{"tumbling", window.Tumbling(10 * time.Second), []int64{1000, 1_000_000}, "[a@[0,10000]=1]"},
		{"hopping", window.Hopping(10*time.Second, 5*time.Second), []int64{6000, 1_000_000}, "[a@[0,10000]=1 a@[5000,15000]=1]"},
		{"sliding", window.Sliding(10 * time.Second), []int64{1000, 1_000_000}, "[a@[0,10000]=1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			in := stream.From(b, "in", codec.String(), codec.String())
			stream.WindowedBy(in.GroupByKey(), tc.w).Count(stream.EmitFinal()).ToStream().To("out")
			topo, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			d, err := streamtest.New(topo, streamtest.CacheBytes(1))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			pipe := streamtest.NewInput(d, "in", codec.String(), codec.String())
			for i, ms := range tc.times {
				if err := pipe.PipeAt(string(rune('a'+i)), "v", time.UnixMilli(ms)); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, r := range streamtest.NewOutput(d, "out", codec.Windowed(codec.String()), codec.Int64()).ReadAll() {
				got = append(got, fmt.Sprintf("%s@[%d,%d]=%d", r.Key.Key, r.Key.Window.Start, r.Key.Window.End, r.Value))
			}
			if fmt.Sprint(got) != tc.want {
				t.Fatalf("results %v, want %s", got, tc.want)
			}
		})
	}
}

// TestJoinStreamsNegativeBoundNonMatch: with a negative bound, a record
// can arrive on time (not late) when no record of the other side can match
// it any more. Its non-match must still be emitted.
func TestJoinStreamsNegativeBoundNonMatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		w     window.JoinWindows
		right bool // the records go to the right side
	}{
		{"left", window.JoinWindowsOf(-time.Second, 3*time.Second).Grace(time.Second), false},
		{"outer-right", window.JoinWindowsOf(3*time.Second, -time.Second).Grace(time.Second), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			l := stream.From(b, "left", codec.String(), codec.String())
			r := stream.From(b, "right", codec.String(), codec.String())
			if tc.right {
				stream.OuterJoinStreams(l, r, tc.w, func(_ string, lv string, lok bool, rv string, rok bool) string {
					return fmt.Sprintf("%s:%s", orNil(lv, lok), orNil(rv, rok))
				}).To("out")
			} else {
				stream.LeftJoinStreams(l, r, tc.w, func(_ string, lv string, rv string, rok bool) string {
					return fmt.Sprintf("%s:%s", lv, orNil(rv, rok))
				}).To("out")
			}
			topo, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			d, err := streamtest.New(topo)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			side := "left"
			if tc.right {
				side = "right"
			}
			pipe := streamtest.NewInput(d, side, codec.String(), codec.String())
			for _, rec := range []struct {
				k  string
				ms int64
			}{{"z", 13653}, {"k", 10333}, {"z", 100_000}, {"z", 200_000}} {
				if err := pipe.PipeAt(rec.k, fmt.Sprint(rec.k, rec.ms), time.UnixMilli(rec.ms)); err != nil {
					t.Fatal(err)
				}
			}
			got := streamtest.NewOutput(d, "out", codec.String(), codec.String()).ReadKeyValues()
			// k's window has closed when it arrives: its non-match comes
			// out at once, before z13653's.
			want := "[k=k10333:nil z=z13653:nil z=z100000:nil]"
			if tc.right {
				want = "[k=nil:k10333 z=nil:z13653 z=nil:z100000]"
			}
			if fmt.Sprint(got) != want {
				t.Fatalf("out %v, want %s", got, want)
			}
			for _, st := range d.TaskStatus() {
				if st.Late != 0 {
					t.Fatalf("%d late records, want none", st.Late)
				}
			}
		})
	}
}

func orNil(v string, ok bool) string {
	if !ok {
		return "nil"
	}
	return v
}

// TestJoinTablesBothSidesDelete: when both sides of an inner table-table
// join delete a key between two commits, the joined row is deleted too.
func TestJoinTablesBothSidesDelete(t *testing.T) {
	b := stream.NewBuilder()
	l := stream.TableFrom(b, "left", codec.String(), codec.Int64())
	r := stream.TableFrom(b, "right", codec.String(), codec.Int64())
	stream.JoinTables(l, r, func(_ string, lv, rv int64) string { return fmt.Sprintf("L%d:R%d", lv, rv) },
		stream.Materialized("joined"), stream.WithValue(codec.String())).ToStream().To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo, streamtest.ManualCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	lin := streamtest.NewInput(d, "left", codec.String(), codec.Int64())
	rin := streamtest.NewInput(d, "right", codec.String(), codec.Int64())
	out := streamtest.NewOutput(d, "out", codec.String(), codec.String())
	must0 := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must0(lin.Pipe("k", 1))
	must0(rin.Pipe("k", 2))
	must0(d.Commit())
	if got := latest(out.ReadAll()); fmt.Sprint(got) != "map[k:L1:R2]" {
		t.Fatalf("out %v, want k=L1:R2", got)
	}
	must0(lin.Tombstone("k"))
	must0(rin.PipeRecord(processor.Record[string, int64]{Key: "k", Tombstone: true}))
	must0(d.Commit())
	recs := out.ReadAll()
	if len(recs) == 0 || !recs[len(recs)-1].Tombstone {
		t.Fatalf("out %+v, want a tombstone for k last", recs)
	}
	if got := storeLines[string](t, d, "joined"); len(got) != 0 {
		t.Fatalf("joined store %v, want empty", got)
	}
}
