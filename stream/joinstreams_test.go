package stream_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/streamtest"
	"github.com/kappa-streams/kappa/window"
)

// ssEvents returns the input of the stream-stream join oracle: n seeded
// events over keys keys, with tombstones, duplicate timestamps, and
// records out of order within grace and beyond it.
func ssEvents(seed uint64, n, keys int) []joinEvent {
	rng := rand.New(rand.NewPCG(seed, 13))
	evs := make([]joinEvent, n)
	ts := int64(1_000_000)
	for i := range evs {
		ts += rng.Int64N(60)
		e := joinEvent{right: rng.IntN(2) == 0, key: fmt.Sprint("k", rng.IntN(keys)), value: fmt.Sprint("v", i), ts: ts}
		switch rng.IntN(20) {
		case 0:
			e.ts -= rng.Int64N(3000) // out of order, mostly within grace
		case 1:
			e.ts -= 3000 + rng.Int64N(10_000) // often late
		case 2:
			e.del = true
		case 3:
			if i > 0 {
				e.ts = evs[i-1].ts // a duplicate timestamp
			}
		}
		evs[i] = e
	}
	return evs
}

// oracleStreamJoin recomputes a stream-stream join by nested loops over
// the records in arrival order (stream time counts tombstones too, which
// the join drops): a record at t of a side whose window seen
// from it is [t - before, t + after] is late when t + after + grace < stream
// time; otherwise it matches every kept record of the other side in its
// window (in time, then arrival order) and is kept. Before each record,
// the kept records that never matched and whose t + before + after + grace
// stream time has passed are emitted as non-matches (left and outer),
// ordered by that time, side, key, t and arrival.
func oracleStreamJoin(evs []joinEvent, w window.JoinWindows, leftNM, rightNM bool) (out []string, late int) {
	type kept struct {
		joinEvent
		seq     int
		matched bool
		emitted bool
	}
	before, after, grace := w.Before().Milliseconds(), w.After().Milliseconds(), w.GracePeriod().Milliseconds()
	var store []*kept
	seqs := map[bool]int{}
	st := int64(-1)
	emitAt := func(k *kept) int64 { return k.ts + before + after + grace + 1 }
	for _, e := range evs {
		seq := seqs[e.right]
		seqs[e.right]++
		st = max(st, e.ts) // tombstones move stream time too (they are records of the task)
		if e.del {
			continue
		}
		var due []*kept
		for _, k := range store {
			if !k.matched && !k.emitted && ((k.right && rightNM) || (!k.right && leftNM)) && emitAt(k) <= st {
				due = append(due, k)
			}
		}
		slices.SortFunc(due, func(a, b *kept) int {
			if c := cmp.Compare(emitAt(a), emitAt(b)); c != 0 {
				return c
			}
			if a.right != b.right {
				if a.right {
					return 1
				}
				return -1
			}
			return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.ts, b.ts), cmp.Compare(a.seq, b.seq))
		})
		for _, k := range due {
			k.emitted = true
			if k.right {
				out = append(out, fmt.Sprintf("%s=none&%s@%d", k.key, k.value, k.ts))
			} else {
				out = append(out, fmt.Sprintf("%s=%s&none@%d", k.key, k.value, k.ts))
			}
		}
		lo, hi := e.ts-before, e.ts+after
		if e.right {
			lo, hi = e.ts-after, e.ts+before
		}
		if hi+grace < st {
			late++
			continue
		}
		var matches []*kept
		for _, k := range store {
			if k.right != e.right && k.key == e.key && lo <= k.ts && k.ts <= hi {
				matches = append(matches, k)
			}
		}
		slices.SortStableFunc(matches, func(a, b *kept) int { return cmp.Or(cmp.Compare(a.ts, b.ts), cmp.Compare(a.seq, b.seq)) })
		for _, m := range matches {
			m.matched = true
			l, r := e.value, m.value
			if e.right {
				l, r = r, l
			}
			out = append(out, fmt.Sprintf("%s=%s&%s@%d", e.key, l, r, max(e.ts, m.ts)))
		}
		k := &kept{joinEvent: e, seq: seq, matched: len(matches) > 0}
		if emitAt(k) <= st {
			// Its window closed before it came (a negative bound): no
			// record can match it later, and its non-match is final now.
			if !k.matched && ((k.right && rightNM) || (!k.right && leftNM)) {
				if k.right {
					out = append(out, fmt.Sprintf("%s=none&%s@%d", k.key, k.value, k.ts))
				} else {
					out = append(out, fmt.Sprintf("%s=%s&none@%d", k.key, k.value, k.ts))
				}
			}
			continue
		}
		store = append(store, k)
	}
	return out, late
}

// TestJoinStreamsAgainstOracle runs inner, left and outer stream-stream
// joins over seeded input with duplicates, tombstones and out-of-order and
// late records, restarting the task halfway, and compares every output
// record (key, value, timestamp, in order) with the nested-loop oracle.
// The join stores keep their records in memory within the cache budget:
// with the default budget, fetches are served from memory; with a small
// one, from memory and LevelDB; with none, from LevelDB after each commit.
func TestJoinStreamsAgainstOracle(t *testing.T) {
	evs := ssEvents(8, 10_000, 100)
	type mode struct {
		name  string
		opts  []streamtest.Opt
		press *pressure
	}
	modes := []mode{
		{name: "cache=default"},
		{name: "cache=16384", opts: []streamtest.Opt{streamtest.CacheBytes(16 << 10)}},
		{name: "cache=0", opts: []streamtest.Opt{streamtest.CacheBytes(0)}},
	}
	for i := range pressures[1:] {
		p := &pressures[1+i]
		modes = append(modes, mode{name: "pressure=" + p.name, opts: p.opts, press: p})
	}
	windows := []window.JoinWindows{
		window.JoinWindowsOf(3*time.Second, time.Second).Grace(2 * time.Second),
		// Negative bounds: a record can come on time when its window has
		// closed already.
		window.JoinWindowsOf(-time.Second, 3*time.Second).Grace(time.Second),
		window.JoinWindowsOf(3*time.Second, -time.Second).Grace(time.Second),
	}
	for wi, w := range windows {
		for _, kind := range []string{"inner", "left", "outer"} {
			leftNM, rightNM := kind != "inner", kind == "outer"
			want, wantLate := oracleStreamJoin(evs, w, leftNM, rightNM)
			for mi, m := range modes {
				if wi > 0 && mi%2 == 1 {
					continue // the negative bounds run on half the modes, to keep the test short
				}
				name, opts := fmt.Sprintf("%v/%s/%s", w, kind, m.name), m.opts
				t.Run(name, func(t *testing.T) {
					b := stream.NewBuilder()
					l := stream.From(b, "impressions", codec.String(), codec.String())
					r := stream.From(b, "clicks", codec.String(), codec.String())
					show := func(v string, ok bool) string {
						if !ok {
							return "none"
						}
						return v
					}
					var j stream.Stream[string, string]
					switch kind {
					case "inner":
						j = stream.JoinStreams(l, r, w, func(_ string, lv, rv string) string { return lv + "&" + rv })
					case "left":
						j = stream.LeftJoinStreams(l, r, w, func(_ string, lv, rv string, rok bool) string { return lv + "&" + show(rv, rok) })
					case "outer":
						j = stream.OuterJoinStreams(l, r, w, func(_ string, lv string, lok bool, rv string, rok bool) string {
							return show(lv, lok) + "&" + show(rv, rok)
						})
					}
					j.To("out")
					topo, err := b.Build()
					if err != nil {
						t.Fatal(err)
					}
					d, err := streamtest.New(topo, opts...)
					if err != nil {
						t.Fatal(err)
					}
					defer d.Close()
					in := map[bool]*streamtest.Input[string, string]{
						false: streamtest.NewInput(d, "impressions", codec.String(), codec.String()),
						true:  streamtest.NewInput(d, "clicks", codec.String(), codec.String()),
					}
					run := pressure{}.drive(t, d, len(evs), 0)
					if m.press != nil {
						run = m.press.drive(t, d, len(evs), 8)
					}
					for i, e := range evs {
						switch {
						case m.press != nil && i > 0:
							run.after(i - 1)
						case m.press == nil && i == len(evs)/2:
							run.restart() // in the middle of open join windows
						}
						at := time.UnixMilli(e.ts)
						if e.del {
							err = in[e.right].PipeRaw([]byte(e.key), nil, at)
						} else {
							err = in[e.right].PipeAt(e.key, e.value, at)
						}
						if err != nil {
							t.Fatal(err)
						}
					}
					run.finish()
					var got []string
					for _, r := range streamtest.NewOutput(d, "out", codec.String(), codec.String()).ReadAll() {
						got = append(got, fmt.Sprintf("%s=%s@%d", r.Key, r.Value, r.Timestamp.UnixMilli()))
					}
					nonMatches := 0
					for _, s := range want {
						if strings.Contains(s, "none&") || strings.Contains(s, "&none") {
							nonMatches++
						}
					}
					if len(want) < 1000 || wantLate == 0 || (leftNM && nonMatches < 100) {
						t.Fatalf("the input exercises too little: %d results, %d non-matches, %d late", len(want), nonMatches, wantLate)
					}
					if !slices.Equal(got, want) {
						t.Fatalf("%d results, oracle %d; first difference: %s", len(got), len(want), firstDifference(got, want))
					}
					if late := run.lateCount(); late != int64(wantLate) {
						t.Fatalf("%d late records counted, oracle %d", late, wantLate)
					}
				})
			}
		}
	}
}

// TestJoinStreamsRekeyed joins two streams whose keys change before the
// join: both sides are repartitioned first, to repartition topics with
// the count of the sides' group, and the matches are those of the new keys.
func TestJoinStreamsRekeyed(t *testing.T) {
	b := stream.NewBuilder()
	byUser := func(_ string, v string) string { u, _, _ := strings.Cut(v, "/"); return u }
	l := stream.SelectKey(stream.From(b, "views", codec.String(), codec.String()), byUser)
	r := stream.SelectKey(stream.From(b, "buys", codec.String(), codec.String()), byUser)
	stream.JoinStreams(l, r, window.JoinWindowsOf(time.Minute, time.Minute),
		func(user, view, buy string) string { return view + "&" + buy }, stream.Named("view-buy")).To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo, streamtest.Partitions("views", 3), streamtest.Partitions("buys", 3))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, side := range []string{"left", "right"} {
		if n := d.Partitions("streamtest-view-buy-" + side + "-repartition"); n != 3 {
			t.Fatalf("%s repartition topic: %d partitions, want 3", side, n)
		}
	}
	views := streamtest.NewInput(d, "views", codec.String(), codec.String())
	buys := streamtest.NewInput(d, "buys", codec.String(), codec.String())
	base := time.UnixMilli(1_000_000)
	views.PipeAt("item1", "ann/item1", base)
	views.PipeAt("item2", "bob/item2", base.Add(time.Second))
	buys.PipeAt("order1", "ann/order1", base.Add(30*time.Second))
	buys.PipeAt("order2", "bob/order2", base.Add(5*time.Minute)) // too late for bob's view
	var got []string
	for _, r := range streamtest.NewOutput(d, "out", codec.String(), codec.String()).ReadAll() {
		got = append(got, r.Key+"="+r.Value)
	}
	if want := "[ann=ann/item1&ann/order1]"; fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %s", got, want)
	}
}
