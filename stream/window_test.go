package stream_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/state"
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
	// ghost marks a record the task sees but the aggregation does not
	// (filtered out, or failed, upstream in the same task): it moves
	// stream time and nothing else.
	ghost bool
}

// windowInput returns n records over keys keys, in time order with 10%
// moved back in time, half of those within grace and half beyond it, by
// up to beyond more.
func windowInput(seed uint64, n, keys int, grace, beyond int64) []timedRecord {
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
				t -= grace + 1 + rng.Int64N(beyond) // beyond it
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
func oracleCounts(w window.TimeWindows, recs []timedRecord) (counts map[winKey]int64, closed, gone map[winKey]bool, late int) {
	counts = make(map[winKey]int64)
	st := int64(-1)
	grace := w.GracePeriod().Milliseconds()
	size, adv := w.Size().Milliseconds(), w.Advance().Milliseconds()
	for _, r := range recs {
		st = max(st, r.ts)
		if r.ghost {
			continue
		}
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
	return counts, closed, nil, late
}

// oracleSliding recomputes sliding-window counts by brute force from the
// definition: the windows of a key are [t-d, t] (never starting before 0:
// [0, d] for t < d) for each accepted record at t, and [t+1, t+1+d] for
// each one with a later record within d+1. A record is late when stream
// time > t + d + grace (every window that could hold it has closed). An
// accepted record counts in every open window that holds it; a window
// that comes to exist while open counts every accepted record it holds;
// a window that would come to exist when already closed never does.
func oracleSliding(w window.SlidingWindows, recs []timedRecord) (counts map[winKey]int64, closed, gone map[winKey]bool, late int) {
	d, grace := w.TimeDifference().Milliseconds(), w.GracePeriod().Milliseconds()
	counts = make(map[winKey]int64)
	accepted := make(map[string][]int64)
	st := int64(-1)
	isClosed := func(wk winKey) bool { return st > wk.end+grace }
	for _, r := range recs {
		st = max(st, r.ts)
		if r.ghost {
			continue
		}
		if st > r.ts+d+grace {
			late++
			continue
		}
		acc := append(accepted[r.key], r.ts)
		accepted[r.key] = acc
		starts := make(map[int64]bool)
		for _, t := range acc {
			starts[max(0, t-d)] = true
			for _, u := range acc {
				if t+1 <= u && u <= t+1+d {
					starts[t+1] = true
				}
			}
		}
		for s := range starts {
			wk := winKey{r.key, s, s + d}
			if isClosed(wk) {
				continue
			}
			if _, ok := counts[wk]; ok {
				if s <= r.ts && r.ts <= s+d {
					counts[wk]++
				}
				continue
			}
			for _, t := range acc {
				if s <= t && t <= s+d {
					counts[wk]++
				}
			}
		}
	}
	closed = make(map[winKey]bool)
	for wk := range counts {
		if isClosed(wk) {
			closed[wk] = true
		}
	}
	return counts, closed, nil, late
}

// oracleSessions recomputes session counts by brute force: a record at t
// joins the open sessions (stream time ≤ end + gap + grace) whose
// [start - gap, end + gap] holds t, boundaries included, and they merge
// into one session with it. It is late when it joins no open session that
// starts at or before it and its own session [t, t] would be closed
// (stream time > t + gap + grace). gone holds the sessions merged away.
func oracleSessions(w window.SessionWindows, recs []timedRecord) (counts map[winKey]int64, closed, gone map[winKey]bool, late int) {
	gap, grace := w.Gap().Milliseconds(), w.GracePeriod().Milliseconds()
	type session struct {
		start, end, n int64
	}
	sessions := make(map[string][]session)
	gone = make(map[winKey]bool)
	st := int64(-1)
	isClosed := func(end int64) bool { return st > end+gap+grace }
	for _, r := range recs {
		st = max(st, r.ts)
		if r.ghost {
			continue
		}
		merged := session{r.ts, r.ts, 1}
		covered := false
		var keep []session
		var used []session
		for _, s := range sessions[r.key] {
			if s.start-gap <= r.ts && r.ts <= s.end+gap && !isClosed(s.end) {
				used = append(used, s)
				covered = covered || s.start <= r.ts
				continue
			}
			keep = append(keep, s)
		}
		if !covered && isClosed(r.ts) {
			late++
			continue
		}
		for _, s := range used {
			merged.start, merged.end, merged.n = min(merged.start, s.start), max(merged.end, s.end), merged.n+s.n
		}
		for _, s := range used {
			if s.start != merged.start || s.end != merged.end {
				gone[winKey{r.key, s.start, s.end}] = true
			}
		}
		sessions[r.key] = append(keep, merged)
	}
	counts = make(map[winKey]int64)
	closed = make(map[winKey]bool)
	for k, ss := range sessions {
		for _, s := range ss {
			wk := winKey{k, s.start, s.end}
			counts[wk] = s.n
			delete(gone, wk)
			if isClosed(s.end) {
				closed[wk] = true
			}
		}
	}
	return counts, closed, gone, late
}

// TestWindowedCountAgainstOracle runs a windowed count of every window
// type, with and without EmitFinal, with no cache and the default one,
// restarting its task halfway, and compares the store, every emitted
// result and the late count with a brute-force recomputation.
func TestWindowedCountAgainstOracle(t *testing.T) {
	const grace = 30_000
	type oracle func([]timedRecord) (map[winKey]int64, map[winKey]bool, map[winKey]bool, int)
	defs := []struct {
		name   string
		w      window.Windows
		beyond int64 // how far out-of-order records go beyond grace
		oracle oracle
	}{
		{"tumbling", window.Tumbling(time.Minute).Grace(grace * time.Millisecond), 5 * 60_000, nil},
		{"hopping", window.Hopping(5*time.Minute, time.Minute).Grace(grace * time.Millisecond), 5 * 60_000, nil},
		{"sliding", window.Sliding(10 * time.Minute).Grace(grace * time.Millisecond), 30 * 60_000, nil},
		{"session", window.Session(10 * time.Minute).Grace(grace * time.Millisecond), 30 * 60_000, nil},
	}
	for i := range defs {
		switch w := defs[i].w.(type) {
		case window.TimeWindows:
			defs[i].oracle = func(r []timedRecord) (map[winKey]int64, map[winKey]bool, map[winKey]bool, int) {
				return oracleCounts(w, r)
			}
		case window.SlidingWindows:
			defs[i].oracle = func(r []timedRecord) (map[winKey]int64, map[winKey]bool, map[winKey]bool, int) {
				return oracleSliding(w, r)
			}
		case window.SessionWindows:
			defs[i].oracle = func(r []timedRecord) (map[winKey]int64, map[winKey]bool, map[winKey]bool, int) {
				return oracleSessions(w, r)
			}
		}
	}
	for _, def := range defs {
		w := def.w
		recs := windowInput(42, 10_000, 1000, grace, def.beyond)
		want, closed, gone, wantLate := def.oracle(recs)
		if wantLate == 0 || len(closed) == 0 || (def.name == "session" && len(gone) == 0) {
			t.Fatalf("%s: the input exercises too little: %d late, %d closed, %d merged away", def.name, wantLate, len(closed), len(gone))
		}
		_, timeWindows := w.(window.TimeWindows)
		for _, final := range []bool{false, true} {
			// cache is 0 (none), -1 (the default) or -2 (the default
			// budget, under one of the pressures).
			type mode struct {
				cache int
				press *pressure
			}
			modes := []mode{{0, nil}, {-1, nil}}
			for i := range pressures[1:] {
				modes = append(modes, mode{-2, &pressures[1+i]})
			}
			for _, m := range modes {
				cache := m.cache
				name := fmt.Sprintf("%s/final=%v/cache=%d", def.name, final, cache)
				if m.press != nil {
					name = fmt.Sprintf("%s/final=%v/pressure=%s", def.name, final, m.press.name)
				}
				t.Run(name, func(t *testing.T) {
					b := stream.NewBuilder()
					opts := []stream.Option{stream.Materialized("counts")}
					if cache >= 0 {
						opts = append(opts, stream.CacheSize(cache))
					}
					if final {
						opts = append(opts, stream.EmitFinal())
					}
					in := stream.From(b, "in", codec.String(), codec.String())
					counts := stream.WindowedBy(in.GroupByKey(), w).Count(opts...)
					counts.ToStream().To("out")
					// A downstream function that fails on some keys: their
					// results go to the dead-letter topic, no other's.
					stream.MapValuesErr(counts.ToStream(), func(k window.Windowed[string], n int64) (int64, error) {
						if failing(k.Key) {
							return 0, fmt.Errorf("key %s refused", k.Key)
						}
						return n, nil
					}).To("checked")
					topo, err := b.Build()
					if err != nil {
						t.Fatal(err)
					}
					var dopts []streamtest.Opt
					if m.press != nil {
						dopts = m.press.opts
					}
					d, err := streamtest.New(topo, dopts...)
					if err != nil {
						t.Fatal(err)
					}
					defer d.Close()
					pipe := streamtest.NewInput(d, "in", codec.String(), codec.String())
					run := pressure{restarts: 0}.drive(t, d, len(recs), 0)
					if m.press != nil {
						run = m.press.drive(t, d, len(recs), 42)
					}
					for i, r := range recs {
						if err := pipe.PipeAt(r.key, "v", time.UnixMilli(r.ts)); err != nil {
							t.Fatal(err)
						}
						if m.press != nil {
							run.after(i)
							continue
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
							run.restart()
						}
					}
					run.finish()

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
						if r.Err != nil {
							t.Fatalf("output %v: %v", wk, r.Err)
						}
						if _, ok := want[wk]; !ok && !gone[wk] {
							t.Fatalf("emitted %v = %d, a window the oracle never had", wk, r.Value)
						}
						v := r.Value
						if r.Tombstone {
							v = -1 // a merged-away session
						}
						emitted[wk] = append(emitted[wk], v)
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
							if timeWindows && cache == 0 && int64(len(vs)) != n {
								t.Fatalf("window %v: %d updates without a cache, want %d", wk, len(vs), n)
							}
						}
						// A merged-away session's last update deletes it.
						for wk := range gone {
							if vs := emitted[wk]; len(vs) == 0 || vs[len(vs)-1] != -1 {
								t.Fatalf("merged-away session %v: updates %v, want a tombstone last", wk, vs)
							}
						}
					}
					if late := run.lateCount(); late != int64(wantLate) {
						t.Fatalf("%d late records counted, oracle %d", late, wantLate)
					}
					// The failing function's output: the same results as
					// out, less the refused keys', which are dead letters.
					refused := checkDeadLetters(t, d, func(b []byte) (string, bool) {
						k, _, _, ok := state.ParseWindowKey(b)
						return string(k), ok
					})
					wantChecked := map[winKey][]int64{}
					for wk, vs := range emitted {
						if !failing(wk.key) {
							wantChecked[wk] = vs
							continue
						}
						if !refused[wk.key] {
							t.Fatalf("window %v was refused downstream but its key is not in the dead-letter topic", wk)
						}
						// Tombstones (merged-away sessions) pass a mapper
						// without calling it.
						if del := slices.DeleteFunc(slices.Clone(vs), func(v int64) bool { return v != -1 }); len(del) > 0 {
							wantChecked[wk] = del
						}
					}
					gotChecked := map[winKey][]int64{}
					for _, r := range streamtest.NewOutput(d, "checked", codec.Windowed(codec.String()), codec.Int64()).ReadAll() {
						v := r.Value
						if r.Tombstone {
							v = -1
						}
						wk := winKey{r.Key.Key, r.Key.Window.Start, r.Key.Window.End}
						gotChecked[wk] = append(gotChecked[wk], v)
					}
					if !maps.EqualFunc(gotChecked, wantChecked, slices.Equal) {
						t.Fatalf("the failing function's output has %d windows, want %d", len(gotChecked), len(wantChecked))
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

// TestSessionMerges walks the session merge cases: a record bridging two
// sessions, one landing exactly on the gap boundary, one a millisecond
// beyond it, and a bridge across a restart, with AggregateSessions and its
// merger, checking the store and the updates emitted.
func TestSessionMerges(t *testing.T) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.String())
	ws := stream.WindowedBy(in.GroupByKey(), window.Session(10*time.Second).Grace(time.Minute))
	stream.AggregateSessions(ws, func() string { return "" },
		func(_ string, v, agg string) string { return agg + v },
		func(_ string, agg, session string) string { return agg + session },
		stream.Materialized("sessions"), stream.WithValue(codec.String())).
		ToStream().To("out", stream.With(codec.Windowed(codec.String()), codec.String()))
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
	out := streamtest.NewOutput(d, "out", codec.Windowed(codec.String()), codec.String())
	step := func(ms int64, v, wantStore, wantOut string) {
		t.Helper()
		if err := pipe.PipeAt("k", v, time.UnixMilli(ms)); err != nil {
			t.Fatal(err)
		}
		if got := windowLines(t, d, "sessions"); fmt.Sprint(got) != wantStore {
			t.Fatalf("after %s@%d: store %v, want %s", v, ms, got, wantStore)
		}
		var emitted []string
		for _, r := range out.ReadAll() {
			if r.Tombstone {
				emitted = append(emitted, fmt.Sprintf("[%d,%d]=nil", r.Key.Window.Start, r.Key.Window.End))
			} else {
				emitted = append(emitted, fmt.Sprintf("[%d,%d]=%s", r.Key.Window.Start, r.Key.Window.End, r.Value))
			}
		}
		if fmt.Sprint(emitted) != wantOut {
			t.Fatalf("after %s@%d: emitted %v, want %s", v, ms, emitted, wantOut)
		}
	}
	step(0, "a", "[[0,0]=a]", "[[0,0]=a]")
	step(20_000, "b", "[[0,0]=a [20000,20000]=b]", "[[20000,20000]=b]") // 20s apart: two sessions
	// 10s from both: bridges them, merging "a" and "b" before adding "c".
	step(10_000, "c", "[[0,20000]=abc]", "[[0,0]=nil [20000,20000]=nil [0,20000]=abc]")
	step(30_000, "d", "[[0,30000]=abcd]", "[[0,20000]=nil [0,30000]=abcd]")    // exactly the gap after: joins
	step(40_001, "e", "[[0,30000]=abcd [40001,40001]=e]", "[[40001,40001]=e]") // gap + 1ms after: a new session
	// Restart: the sessions come back from the changelog and still merge.
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := d.CloseTasks(); err != nil {
		t.Fatal(err)
	}
	step(35_000, "f", "[[0,40001]=abcdef]", "[[0,30000]=nil [40001,40001]=nil [0,40001]=abcdef]")
}

// TestSlidingWindowsCases pins sliding windows on a few records: the
// windows a record creates on arrival, in order and out of order, and the
// shared window [0, d] of records before d.
func TestSlidingWindowsCases(t *testing.T) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.String())
	stream.WindowedBy(in.GroupByKey(), window.Sliding(10*time.Second).Grace(time.Minute)).
		Reduce(func(agg, v string) string { return agg + v }, stream.Materialized("sliding"))
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
	step := func(ms int64, v, want string) {
		t.Helper()
		if err := pipe.PipeAt("k", v, time.UnixMilli(ms)); err != nil {
			t.Fatal(err)
		}
		if got := windowLines(t, d, "sliding"); fmt.Sprint(got) != want {
			t.Fatalf("after %s@%d:\n got %v\nwant %s", v, ms, got, want)
		}
	}
	step(5_000, "a", "[[0,10000]=a]")                                  // before d: the window [0, d]
	step(8_000, "b", "[[0,10000]=ab [5001,15001]=b]")                  // a's right window holds b
	step(30_000, "c", "[[0,10000]=ab [5001,15001]=b [20000,30000]=c]") // nothing near: only its left window
	// Out of order: d joins c's window (updates fold in arrival order),
	// and creates its own left window and its right window, which holds c.
	step(25_000, "d", "[[0,10000]=ab [5001,15001]=b [15000,25000]=d [20000,30000]=cd [25001,35001]=c]")
}

// TestTimestampExtractor windows records by a time carried in their value
// rather than the record timestamp: stream time and lateness follow the
// extracted time, output records carry it, and a time before the epoch
// sends the record to the dead-letter topic.
func TestTimestampExtractor(t *testing.T) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.Int64(),
		stream.TimestampExtractor(func(_ string, ms int64, _ time.Time) time.Time { return time.UnixMilli(ms) }))
	in.To("copy")
	stream.WindowedBy(in.GroupByKey(), window.Tumbling(time.Minute)).Count(stream.EmitFinal()).ToStream().To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pipe := streamtest.NewInput(d, "in", codec.String(), codec.Int64())
	recordTime := time.UnixMilli(1_000_000_000) // far from the values' times: must not matter
	for _, ms := range []int64{1_000, 30_000, 61_000, 59_000, 125_000, -5} {
		if err := pipe.PipeAt("k", ms, recordTime); err != nil {
			t.Fatal(err)
		}
	}
	got := streamtest.NewOutput(d, "out", codec.Windowed(codec.String()), codec.Int64()).ReadAll()
	var s []string
	for _, r := range got {
		s = append(s, fmt.Sprintf("[%d,%d)=%d", r.Key.Window.Start, r.Key.Window.End, r.Value))
	}
	// 59000 arrives after 61000 closed [0, 60000) (no grace): late.
	if want := "[[0,60000)=2 [60000,120000)=1]"; fmt.Sprint(s) != want {
		t.Fatalf("results %v, want %s", s, want)
	}
	if st := d.TaskStatus(); len(st) != 1 || st[0].Late != 1 {
		t.Fatalf("task status %+v, want 1 late record", st)
	}
	copies := streamtest.NewOutput(d, "copy", codec.String(), codec.Int64()).ReadAll()
	if len(copies) != 5 || !copies[1].Timestamp.Equal(time.UnixMilli(30_000)) {
		t.Fatalf("copies %+v, want 5 records carrying the extracted times", copies)
	}
	dl := d.DeadLetters()
	if len(dl) != 1 || !strings.Contains(dl[0].Error, "before the Unix epoch") {
		t.Fatalf("dead letters %+v, want the record with a negative time", dl)
	}
}

// windowLines returns a window store's entries as "[start,end]=value".
func windowLines(t *testing.T, d *streamtest.Driver, store string) []string {
	t.Helper()
	entries, err := streamtest.ReadWindowStore[string, string](d, store)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range entries {
		lines = append(lines, fmt.Sprintf("[%d,%d]=%s", e.Start, e.End, e.Value))
	}
	return lines
}
