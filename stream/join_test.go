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
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/streamtest"
)

// joinEvent is one input record of the join oracles: a record on the
// stream (or left table) side, or on the table (or right) side; a
// tombstone when del is set.
type joinEvent struct {
	right bool
	key   string
	value string
	del   bool
	ts    int64
}

// joinEvents returns n seeded events over keys keys, with duplicates,
// tombstones (on table sides) and timestamps that go back now and then.
func joinEvents(seed uint64, n, keys int) []joinEvent {
	rng := rand.New(rand.NewPCG(seed, 11))
	evs := make([]joinEvent, n)
	ts := int64(1_000_000)
	for i := range evs {
		ts += rng.Int64N(100)
		e := joinEvent{right: rng.IntN(2) == 0, key: fmt.Sprint("k", rng.IntN(keys)), value: fmt.Sprint("v", i), ts: ts}
		if rng.IntN(10) == 0 {
			e.ts -= rng.Int64N(5000)
		}
		e.del = rng.IntN(8) == 0
		evs[i] = e
	}
	return evs
}

// TestJoinTableAgainstOracle joins a re-keyed stream with a table, inner
// and left, and compares every output record with a recomputation that
// looks each stream record up in the table as it stood when the record
// arrived.
func TestJoinTableAgainstOracle(t *testing.T) {
	evs := joinEvents(3, 10_000, 300)
	for _, left := range []bool{false, true} {
		for _, press := range pressures {
			t.Run(fmt.Sprintf("left=%v/pressure=%s", left, press.name), func(t *testing.T) {
				b := stream.NewBuilder()
				// Clicks arrive keyed by "user"; the join needs the article key.
				clicks := stream.SelectKey(stream.From(b, "clicks", codec.String(), codec.String()),
					func(_ string, v string) string { k, _, _ := strings.Cut(v, "|"); return k })
				articles := stream.TableFrom(b, "articles", codec.String(), codec.String())
				var joined stream.Stream[string, string]
				if left {
					joined = stream.LeftJoinTable(clicks, articles, func(k, v, row string, found bool) string {
						if !found {
							return v + "+none"
						}
						return v + "+" + row
					})
				} else {
					joined = stream.JoinTable(clicks, articles, func(k, v, row string) string { return v + "+" + row })
				}
				joined.To("out")
				topo, err := b.Build()
				if err != nil {
					t.Fatal(err)
				}
				d, err := streamtest.New(topo, press.opts...)
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				run := press.drive(t, d, len(evs), 3)
				cin := streamtest.NewInput(d, "clicks", codec.String(), codec.String())
				ain := streamtest.NewInput(d, "articles", codec.String(), codec.String())
				table := map[string]string{}
				var want []string
				for i, e := range evs {
					if i > 0 {
						run.after(i - 1)
					}
					at := time.UnixMilli(e.ts)
					if e.right {
						var err error
						if e.del {
							err = ain.PipeRaw([]byte(e.key), nil, at)
							delete(table, e.key)
						} else {
							err = ain.PipeAt(e.key, e.value, at)
							table[e.key] = e.value
						}
						if err != nil {
							t.Fatal(err)
						}
						continue
					}
					v := e.key + "|" + e.value
					if err := cin.PipeAt(fmt.Sprint("user", i%7), v, at); err != nil {
						t.Fatal(err)
					}
					row, ok := table[e.key]
					switch {
					case ok:
						want = append(want, fmt.Sprintf("%s=%s+%s@%d", e.key, v, row, e.ts))
					case left:
						want = append(want, fmt.Sprintf("%s=%s+none@%d", e.key, v, e.ts))
					}
				}
				run.finish()
				var got []string
				for _, r := range streamtest.NewOutput(d, "out", codec.String(), codec.String()).ReadAll() {
					got = append(got, fmt.Sprintf("%s=%s@%d", r.Key, r.Value, r.Timestamp.UnixMilli()))
				}
				if len(want) < 1000 {
					t.Fatalf("the input exercises too little: %d results", len(want))
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%d results, want %d; first difference: %s", len(got), len(want), firstDifference(got, want))
				}
			})
		}
	}
}

// TestJoinTablesAgainstOracle joins two tables inner, left and outer,
// materialized, and checks the result store and the last update of every
// key against the join of the two final tables, and every update against
// the join recomputed after each input record.
func TestJoinTablesAgainstOracle(t *testing.T) {
	evs := joinEvents(4, 10_000, 300)
	type result = tableJoinResult
	kinds := map[string]func(l, r string, lok, rok bool) result{
		"inner": func(l, r string, lok, rok bool) result { return result{l + "&" + r, lok && rok} },
		"left": func(l, r string, lok, rok bool) result {
			if !rok {
				r = "none"
			}
			return result{l + "&" + r, lok}
		},
		"outer": func(l, r string, lok, rok bool) result {
			if !lok {
				l = "none"
			}
			if !rok {
				r = "none"
			}
			return result{l + "&" + r, lok || rok}
		},
	}
	for kind, oracle := range kinds {
		for _, materialized := range []bool{true, false} {
			for _, press := range pressures {
				name := fmt.Sprintf("%s/materialized=%v/pressure=%s", kind, materialized, press.name)
				t.Run(name, func(t *testing.T) {
					tableJoinRun(t, evs, kind, oracle, materialized, press)
				})
			}
		}
	}
}

// tableJoinRun runs one case of TestJoinTablesAgainstOracle. Downstream of
// the join, a table aggregation with a subtractor sums the rows' lengths
// per group: it is right only if every change the join emits carries the
// right old row.
func tableJoinRun(t *testing.T, evs []joinEvent, kind string, oracle func(l, r string, lok, rok bool) tableJoinResult,
	materialized bool, press pressure,
) {
	b := stream.NewBuilder()
	lt := stream.TableFrom(b, "left", codec.String(), codec.String())
	rt := stream.TableFrom(b, "right", codec.String(), codec.String())
	var opts []stream.Option
	if materialized {
		opts = append(opts, stream.Materialized("joined"))
	}
	var joined stream.Table[string, string]
	switch kind {
	case "inner":
		joined = stream.JoinTables(lt, rt, func(_ string, l, r string) string { return l + "&" + r }, opts...)
	case "left":
		joined = stream.LeftJoinTables(lt, rt, func(_ string, l, r string, rok bool) string {
			if !rok {
				r = "none"
			}
			return l + "&" + r
		}, opts...)
	case "outer":
		joined = stream.OuterJoinTables(lt, rt, func(_ string, l string, lok bool, r string, rok bool) string {
			if !lok {
				l = "none"
			}
			if !rok {
				r = "none"
			}
			return l + "&" + r
		}, opts...)
	}
	joined.ToStream().To("out")
	group := func(v string) string { return fmt.Sprint(len(v) % 4) }
	stream.AggregateTable(stream.GroupTable(joined, func(_ string, v string) (string, string) { return group(v), v }, stream.Named("by-length")),
		func() int64 { return 0 },
		func(_ string, v string, sum int64) int64 { return sum + int64(len(v)) },
		func(_ string, v string, sum int64) int64 { return sum - int64(len(v)) },
		stream.Materialized("length-sums"), stream.WithValue(codec.Int64()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo, press.opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := map[bool]*streamtest.Input[string, string]{
		false: streamtest.NewInput(d, "left", codec.String(), codec.String()),
		true:  streamtest.NewInput(d, "right", codec.String(), codec.String()),
	}
	out := streamtest.NewOutput(d, "out", codec.String(), codec.String())
	tables := map[bool]map[string]string{false: {}, true: {}}
	// the oracle's joined rows now
	rows := func() map[string]string {
		m := map[string]string{}
		for _, side := range []bool{false, true} {
			for k := range tables[side] {
				l, lok := tables[false][k]
				r, rok := tables[true][k]
				if res := oracle(l, r, lok, rok); res.ok {
					m[k] = res.v
				}
			}
		}
		return m
	}
	// Under pressure, what is committed must be the join of the tables
	// as they stood at the commit.
	run := press.drive(t, d, len(evs), 4)
	seen := map[string]string{}
	commits := 0
	run.onCommit = func() {
		t.Helper()
		commits++
		for _, r := range out.ReadAll() {
			if r.Tombstone {
				delete(seen, r.Key)
			} else {
				seen[r.Key] = r.Value
			}
		}
		if want := rows(); !maps.Equal(seen, want) {
			for k, v := range want {
				if seen[k] != v {
					t.Errorf("key %s: output %q, oracle %q", k, seen[k], v)
				}
			}
			t.Fatalf("after commit %d: output has %d rows, the oracle %d", commits, len(seen), len(want))
		}
	}
	// With a commit after every record and a result store, each change of
	// the joined row shows at once, and only changes do.
	exact := materialized && press.commitEvery == 0 && press.restarts == 0
	if exact {
		run.onCommit = nil
	}
	final := map[string]string{}
	emitted := 0
	for i, e := range evs {
		if i > 0 {
			run.after(i - 1)
		}
		at := time.UnixMilli(e.ts)
		var err error
		if e.del {
			err = in[e.right].PipeRaw([]byte(e.key), nil, at)
			delete(tables[e.right], e.key)
		} else {
			err = in[e.right].PipeAt(e.key, e.value, at)
			tables[e.right][e.key] = e.value
		}
		if err != nil {
			t.Fatal(err)
		}
		if !exact {
			continue
		}
		l, lok := tables[false][e.key]
		r, rok := tables[true][e.key]
		want := oracle(l, r, lok, rok)
		prev, had := final[e.key]
		recs := out.ReadAll()
		switch {
		case want.ok && (!had || prev != want.v):
			if len(recs) != 1 || recs[0].Tombstone || recs[0].Value != want.v || recs[0].Key != e.key {
				t.Fatalf("after %+v: emitted %+v, want %s=%s", e, recs, e.key, want.v)
			}
			final[e.key] = want.v
		case !want.ok && had:
			if len(recs) != 1 || !recs[0].Tombstone || recs[0].Key != e.key {
				t.Fatalf("after %+v: emitted %+v, want a tombstone for %s", e, recs, e.key)
			}
			delete(final, e.key)
		default:
			if len(recs) != 0 {
				t.Fatalf("after %+v: emitted %+v, want nothing (row %v, unchanged)", e, recs, want)
			}
		}
		emitted += len(recs)
	}
	run.finish()
	want := rows()
	if materialized {
		entries, err := streamtest.ReadStore[string, string](d, "joined")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, e := range entries {
			got[e.Key] = e.Value
		}
		if !maps.Equal(got, want) {
			t.Fatalf("result store has %d rows, the oracle %d", len(got), len(want))
		}
	}
	wantSums := map[string]int64{}
	for _, v := range want {
		wantSums[group(v)] += int64(len(v))
	}
	gotSums := storeMap[int64](t, d, "length-sums")
	maps.DeleteFunc(gotSums, func(k string, v int64) bool { _, ok := wantSums[k]; return !ok && v == 0 })
	diff(t, "row lengths summed downstream", gotSums, wantSums)
	if exact && (emitted < 1000 || len(final) < 50) {
		t.Fatalf("the input exercises too little: %d updates, %d final rows", emitted, len(final))
	}
	if !exact && commits < 2 {
		t.Fatalf("the run committed %d times", commits)
	}
}

// tableJoinResult is a joined row of the table-table join oracle.
type tableJoinResult struct {
	v  string
	ok bool
}

// TestJoinCoPartitioning checks that a join of external topics with
// different partition counts fails, naming both topics and counts, and
// that a re-keyed side's repartition topic takes the other side's count.
func TestJoinCoPartitioning(t *testing.T) {
	build := func(rekey bool) *stream.Builder {
		b := stream.NewBuilder()
		clicks := stream.From(b, "clicks", codec.String(), codec.String())
		if rekey {
			clicks = stream.SelectKey(clicks, func(_, v string) string { return v })
		}
		articles := stream.TableFrom(b, "articles", codec.String(), codec.String())
		stream.JoinTable(clicks, articles, func(_, v, a string) string { return v + a }, stream.Named("enrich")).To("out")
		return b
	}
	topo, err := build(false).Build()
	if err != nil {
		t.Fatal(err)
	}
	_, err = streamtest.New(topo, streamtest.Partitions("clicks", 4), streamtest.Partitions("articles", 6))
	if err == nil || !strings.Contains(err.Error(), `"clicks" (4 partitions) and "articles" (6 partitions)`) {
		t.Fatalf("got %v, want an error naming both topics and their counts", err)
	}
	topo, err = build(true).Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo, streamtest.Partitions("clicks", 4), streamtest.Partitions("articles", 6))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if n := d.Partitions("streamtest-enrich-repartition"); n != 6 {
		t.Fatalf("repartition topic has %d partitions, want the table's 6", n)
	}
}

func firstDifference(got, want []string) string {
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			return "missing " + want[i]
		case i >= len(want):
			return "extra " + got[i]
		case got[i] != want[i]:
			return fmt.Sprintf("#%d: got %s, want %s", i, got[i], want[i])
		}
	}
	return "none"
}

// TestJoinGlobalAgainstOracle joins a stream keyed by user with a global
// table of articles, looked up by a field of the value, inner and left,
// with upserts and deletes in the table, on a topology whose stream has 3
// partitions and whose table topic has 5: no co-partitioning needed.
func TestJoinGlobalAgainstOracle(t *testing.T) {
	evs := joinEvents(5, 10_000, 300)
	for _, left := range []bool{false, true} {
		for _, press := range pressures {
			t.Run(fmt.Sprintf("left=%v/pressure=%s", left, press.name), func(t *testing.T) {
				b := stream.NewBuilder()
				clicks := stream.From(b, "clicks", codec.String(), codec.String())
				articles := stream.GlobalTable(b, "articles", codec.String(), codec.String())
				article := func(_ string, v string) string { a, _, _ := strings.Cut(v, "|"); return a }
				var joined stream.Stream[string, string]
				if left {
					joined = stream.LeftJoinGlobal(clicks, articles, article, func(_ string, v, row string, found bool) string {
						if !found {
							row = "none"
						}
						return v + "+" + row
					})
				} else {
					joined = stream.JoinGlobal(clicks, articles, article, func(_ string, v, row string) string { return v + "+" + row })
				}
				joined.To("out")
				topo, err := b.Build()
				if err != nil {
					t.Fatal(err)
				}
				d, err := streamtest.New(topo, append([]streamtest.Opt{streamtest.Partitions("clicks", 3), streamtest.Partitions("articles", 5)}, press.opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				run := press.drive(t, d, len(evs), 5)
				cin := streamtest.NewInput(d, "clicks", codec.String(), codec.String())
				ain := streamtest.NewInput(d, "articles", codec.String(), codec.String())
				table := map[string]string{}
				want := map[string][]string{} // per user: output order is per partition
				for i, e := range evs {
					if i > 0 {
						run.after(i - 1)
					}
					at := time.UnixMilli(e.ts)
					if e.right {
						var err error
						if e.del {
							err = ain.PipeRaw([]byte(e.key), nil, at)
							delete(table, e.key)
						} else {
							err = ain.PipeAt(e.key, e.value, at)
							table[e.key] = e.value
						}
						if err != nil {
							t.Fatal(err)
						}
						continue
					}
					user := fmt.Sprint("user", i%7)
					v := e.key + "|" + e.value
					if err := cin.PipeAt(user, v, at); err != nil {
						t.Fatal(err)
					}
					row, ok := table[e.key]
					switch {
					case ok:
						want[user] = append(want[user], fmt.Sprintf("%s+%s@%d", v, row, e.ts))
					case left:
						want[user] = append(want[user], fmt.Sprintf("%s+none@%d", v, e.ts))
					}
				}
				run.finish()
				got := map[string][]string{}
				for _, r := range streamtest.NewOutput(d, "out", codec.String(), codec.String()).ReadAll() {
					got[r.Key] = append(got[r.Key], fmt.Sprintf("%s@%d", r.Value, r.Timestamp.UnixMilli()))
				}
				for user, w := range want {
					if !slices.Equal(got[user], w) {
						t.Fatalf("%s: %d results, want %d; first difference: %s", user, len(got[user]), len(w), firstDifference(got[user], w))
					}
				}
				if len(got) != len(want) {
					t.Fatalf("results for %d users, want %d", len(got), len(want))
				}
			})
		}
	}
}
