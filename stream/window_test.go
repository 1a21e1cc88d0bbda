package stream_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/streamtest"
	"github.com/kappa-streams/kappa/window"
)

// winKey identifies one key's window in the oracle.
type winKey struct {
	key        string
	start, end int64
}

// timedRecord is one input record of the oracle tests.
type timedRecord struct {
	key string
	ts  int64
}

// windowInput returns n records over keys keys, in time order with 10%
// moved back in time, half of those within grace and half beyond it.
func windowInput(seed uint64, n, keys int, grace int64) []timedRecord {
	rng := rand.New(rand.NewPCG(seed, 7))
	recs := make([]timedRecord, n)
	ts := int64(1_000_000)
	for i := range recs {
		ts += rng.Int64N(2000)
		t := ts
		if rng.IntN(10) == 0 {
			if rng.IntN(2) == 0 {
				t -= rng.Int64N(grace + 1) // within grace
			} else {
				t -= grace + 1 + rng.Int64N(5*60_000) // beyond it
			}
		}
		recs[i] = timedRecord{key: fmt.Sprint("k", rng.IntN(keys)), ts: max(t, 0)}
	}
	return recs
}

// oracleCounts recomputes windowed counts by brute force, following the
// semantics: stream time is the largest timestamp so far, the current
// record included; a record counts in each of its windows that has not
// closed (stream time < end + grace). It returns the final counts, the
// windows closed by the final stream time, and the late records.
func oracleCounts(w window.TimeWindows, recs []timedRecord) (counts map[winKey]int64, closed map[winKey]bool, late int) {
	counts = make(map[winKey]int64)
	st := int64(-1)
	grace := w.GracePeriod().Milliseconds()
	size, adv := w.Size().Milliseconds(), w.Advance().Milliseconds()
	for _, r := range recs {
		st = max(st, r.ts)
		counted := false
		// Every aligned start s with s ≤ ts < s + size.
		for s := r.ts - r.ts%adv; s > r.ts-size && s >= 0; s -= adv {
			wk := winKey{r.key, s, s + size}
			if st >= wk.end+grace {
				continue
			}
			counts[wk]++
			counted = true
		}
		if !counted {
			late++
		}
	}
	closed = make(map[winKey]bool)
	for wk := range counts {
		if st >= wk.end+grace {
			closed[wk] = true
		}
	}
	return counts, closed, late
}

func TestWindowedCountAgainstOracle(t *testing.T) {
	const grace = 30_000
	defs := map[string]window.TimeWindows{
		"tumbling": window.Tumbling(time.Minute).Grace(grace * time.Millisecond),
		"hopping":  window.Hopping(5*time.Minute, time.Minute).Grace(grace * time.Millisecond),
	}
	recs := windowInput(42, 10_000, 1000, grace)
	for name, w := range defs {
		want, closed, wantLate := oracleCounts(w, recs)
		for _, final := range []bool{false, true} {
			for _, cache := range []int{0, 10000} {
				t.Run(fmt.Sprintf("%s/final=%v/cache=%d", name, final, cache), func(t *testing.T) {
					b := stream.NewBuilder()
					opts := []stream.Option{stream.Materialized("counts"), stream.CacheSize(cache)}
					if final {
						opts = append(opts, stream.EmitFinal())
					}
					in := stream.From(b, "in", codec.String(), codec.String())
					stream.WindowedBy(in.GroupByKey(), w).Count(opts...).ToStream().To("out")
					topo, err := b.Build()
					if err != nil {
						t.Fatal(err)
					}
					d, err := streamtest.New(topo)
					if err != nil {
						t.Fatal(err)
					}
					defer d.Close()
					pipe := streamtest.NewInput(d, "in", codec.String(), codec.String())
					var lateBefore int64
					for i, r := range recs {
						if err := pipe.PipeAt(r.key, "v", time.UnixMilli(r.ts)); err != nil {
							t.Fatal(err)
						}
						if i%1000 == 999 {
							if err := d.Commit(); err != nil {
								t.Fatal(err)
							}
						}
						if i == len(recs)/2 {
							// A restart in the middle of open windows: the
							// store restores from its changelog and stream
							// time from the commit; nothing is lost or
							// emitted twice.
							if err := d.Commit(); err != nil {
								t.Fatal(err)
							}
							for _, st := range d.TaskStatus() {
								lateBefore += st.Late // counters start over with the task
							}
							if err := d.CloseTasks(); err != nil {
								t.Fatal(err)
							}
						}
					}
					if err := d.Commit(); err != nil {
						t.Fatal(err)
					}

					// The store holds exactly the oracle's counts of live windows.
					entries, err := streamtest.ReadWindowStore[string, int64](d, "counts")
					if err != nil {
						t.Fatal(err)
					}
					got := make(map[winKey]int64)
					for _, e := range entries {
						got[winKey{e.Key, e.Start, e.End}] = e.Value
					}
					for wk, n := range got {
						if want[wk] != n {
							t.Fatalf("store %v = %d, oracle %d", wk, n, want[wk])
						}
					}
					for wk, n := range want {
						if _, ok := got[wk]; !ok && !closed[wk] {
							t.Fatalf("store lacks open window %v (oracle %d)", wk, n)
						}
					}

					out := streamtest.NewOutput(d, "out", codec.Windowed(codec.String()), codec.Int64()).ReadAll()
					emitted := make(map[winKey][]int64)
					for _, r := range out {
						wk := winKey{r.Key.Key, r.Key.Window.Start, r.Key.Window.End}
						emitted[wk] = append(emitted[wk], r.Value)
					}
					if final {
						// Exactly one result per closed window, the final one;
						// nothing for open windows.
						for wk, vs := range emitted {
							if !closed[wk] {
								t.Fatalf("emitted %v before it closed: %v", wk, vs)
							}
							if len(vs) != 1 || vs[0] != want[wk] {
								t.Fatalf("window %v: emitted %v, want once %d", wk, vs, want[wk])
							}
						}
						for wk := range closed {
							if _, ok := emitted[wk]; !ok {
								t.Fatalf("closed window %v never emitted", wk)
							}
						}
					} else {
						// The last update of every window is its count; with
						// no cache, every update is emitted.
						for wk, n := range want {
							vs := emitted[wk]
							if len(vs) == 0 || vs[len(vs)-1] != n {
								t.Fatalf("window %v: updates %v, want last %d", wk, vs, n)
							}
							if cache == 0 && int64(len(vs)) != n {
								t.Fatalf("window %v: %d updates without a cache, want %d", wk, len(vs), n)
							}
						}
					}
					late := lateBefore
					for _, st := range d.TaskStatus() {
						late += st.Late
					}
					if late != int64(wantLate) {
						t.Fatalf("%d late records counted, oracle %d", late, wantLate)
					}
				})
			}
		}
	}
}

// TestEmitFinalBoundary checks a window is emitted exactly when stream time
// reaches its end + grace, not a millisecond earlier, and that a record
// arriving then is late.
func TestEmitFinalBoundary(t *testing.T) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.String())
	w := window.Tumbling(time.Minute).Grace(10 * time.Second)
	stream.WindowedBy(in.GroupByKey(), w).Count(stream.EmitFinal()).ToStream().To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pipe := streamtest.NewInput(d, "in", codec.String(), codec.String())
	out := streamtest.NewOutput(d, "out", codec.Windowed(codec.String()), codec.Int64())
	at := func(ms int64) {
		t.Helper()
		if err := pipe.PipeAt("k", "v", time.UnixMilli(ms)); err != nil {
			t.Fatal(err)
		}
	}
	at(0)
	at(59_999)
	at(69_999) // stream time end + grace - 1: [0, 60000) still open
	at(1)      // within grace: counted
	if n := out.Len(); n != 0 {
		t.Fatalf("%d results before the window closed", n)
	}
	at(70_000) // closes [0, 60000)
	got := out.ReadAll()
	if len(got) != 1 || got[0].Key.Window != (window.Window{Start: 0, End: 60_000}) || got[0].Value != 3 {
		t.Fatalf("got %+v, want one result for [0,60000) = 3", got)
	}
	if !got[0].Timestamp.Equal(time.UnixMilli(59_999)) {
		t.Fatalf("result timestamp %v, want the window's last millisecond", got[0].Timestamp)
	}
	at(2) // late now
	if st := d.TaskStatus(); len(st) != 1 || st[0].Late != 1 {
		t.Fatalf("task status %+v, want 1 late record", st)
	}
	if out.Len() != 0 {
		t.Fatal("a late record changed a final result")
	}
}
