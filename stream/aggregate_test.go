package stream_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/streamtest"
)

type purchase struct {
	Item   string `json:"item"`
	Amount int64  `json:"amount"`
}

type event struct {
	user      string
	p         purchase
	tombstone bool
}

// purchases returns n seeded random events by 2000 users over keys items;
// one in twenty is a tombstone.
func purchases(seed uint64, n, keys int) []event {
	rng := rand.New(rand.NewPCG(seed, 99))
	evs := make([]event, n)
	for i := range evs {
		evs[i] = event{user: fmt.Sprintf("u%04d", rng.IntN(2000)),
			p: purchase{Item: fmt.Sprintf("item%05d", rng.IntN(keys)), Amount: rng.Int64N(100)}}
		if rng.IntN(20) == 0 {
			evs[i].tombstone = true
		}
	}
	return evs
}

func storeMap[V any](t *testing.T, d *streamtest.Driver, name string) map[string]V {
	t.Helper()
	es, err := streamtest.ReadStore[string, V](d, name)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]V, len(es))
	for _, e := range es {
		if _, dup := m[e.Key]; dup {
			t.Fatalf("store %s: key %s in two partitions", name, e.Key)
		}
		m[e.Key] = e.Value
	}
	return m
}

// latest is the compacted view of a table's output topic.
func latest[V any](recs []streamtest.OutputRecord[string, V]) map[string]V {
	m := map[string]V{}
	for _, r := range recs {
		if r.Tombstone {
			delete(m, r.Key)
		} else {
			m[r.Key] = r.Value
		}
	}
	return m
}

func diff[V comparable](t *testing.T, what string, got, want map[string]V) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
	n := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			if n++; n <= 5 {
				t.Errorf("%s: key %s = %v (present %v), want %v", what, k, g, ok, w)
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			if n++; n <= 5 {
				t.Errorf("%s: unexpected key %s = %v", what, k, g)
			}
		}
	}
	t.Fatalf("%s: %d keys differ (got %d keys, want %d)", what, n, len(got), len(want))
}

// TestStreamAggregationsAgainstBruteForce re-keys purchases by item and
// counts, sums and takes the max per item, at several cache sizes and
// commit patterns, comparing stores and outputs with a recomputation.
func TestStreamAggregationsAgainstBruteForce(t *testing.T) {
	evs := purchases(1, 20000, 10000)
	wantCount, wantSum, wantMax := map[string]int64{}, map[string]int64{}, map[string]int64{}
	for _, e := range evs {
		if e.tombstone {
			continue
		}
		k := e.p.Item
		wantCount[k]++
		wantSum[k] += e.p.Amount
		if m, ok := wantMax[k]; !ok || e.p.Amount > m {
			wantMax[k] = e.p.Amount
		}
	}
	wantChecked := map[string]int64{}
	for k, n := range wantCount {
		if !failing(k) {
			wantChecked[k] = n
		}
	}
	type tcase struct {
		name        string
		cache       []stream.Option
		commitEvery int // 0: the driver commits after each record
		press       *pressure
	}
	cases := []tcase{
		{"cache=0", []stream.Option{stream.CacheSize(0)}, 0, nil},
		{"cache=0/commit=1000", []stream.Option{stream.CacheSize(0)}, 1000, nil},
		{"cache=50/commit=777", []stream.Option{stream.CacheSize(50)}, 777, nil},
		{"cache=default/commit=5000", nil, 5000, nil},
	}
	for i := range pressures {
		cases = append(cases, tcase{name: "pressure=" + pressures[i].name, press: &pressures[i]})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			in := stream.From(b, "purchases", codec.String(), codec.JSON[purchase]())
			byItem := stream.GroupBy(in, func(_ string, p purchase) string { return p.Item }, stream.Named("by-item"))
			counts := byItem.Count(append([]stream.Option{stream.Materialized("counts")}, tc.cache...)...)
			counts.ToStream().To("counts-out")
			// A downstream function that fails on some keys: their updates
			// go to the dead-letter topic, and no other key's are lost.
			stream.MapValuesErr(counts.ToStream(), func(k string, n int64) (int64, error) {
				if failing(k) {
					return 0, fmt.Errorf("key %s refused", k)
				}
				return n, nil
			}).To("counts-checked")
			stream.Aggregate(byItem, func() int64 { return 0 }, func(_ string, p purchase, sum int64) int64 { return sum + p.Amount },
				append([]stream.Option{stream.Materialized("sums")}, tc.cache...)...).ToStream().To("sums-out")
			// Map changes the key, so GroupByKey repartitions on its own.
			amounts := stream.Map(in, func(_ string, p purchase) (string, int64) { return p.Item, p.Amount }, stream.WithValue(codec.Int64()))
			amounts.GroupByKey(stream.Named("max-by-item")).
				Reduce(func(a, v int64) int64 { return max(a, v) }, append([]stream.Option{stream.Materialized("maxes")}, tc.cache...)...)
			topo, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			opts := []streamtest.Opt{streamtest.Partitions("purchases", 4)}
			if tc.commitEvery > 0 {
				opts = append(opts, streamtest.ManualCommit())
			}
			if tc.press != nil {
				opts = append(opts, tc.press.opts...)
			}
			d, err := streamtest.New(topo, opts...)
			if err != nil {
				t.Fatal(err)
			}
			var run *pressured
			if tc.press != nil {
				run = tc.press.drive(t, d, len(evs), 1)
			}
			pin := streamtest.NewInput(d, "purchases", codec.String(), codec.JSON[purchase]())
			for i, e := range evs {
				var err error
				if e.tombstone {
					err = pin.PipeRaw([]byte(e.user), nil, time.Time{})
				} else {
					err = pin.Pipe(e.user, e.p)
				}
				if err != nil {
					t.Fatal(err)
				}
				if tc.commitEvery > 0 && i%tc.commitEvery == 0 {
					d.Commit()
				}
				if run != nil {
					run.after(i)
				}
			}
			if err := d.Commit(); err != nil {
				t.Fatal(err)
			}
			refused := checkDeadLetters(t, d, func(b []byte) (string, bool) { return string(b), true })
			for k := range wantCount {
				if failing(k) && !refused[k] {
					t.Fatalf("key %s was refused downstream but is not in the dead-letter topic", k)
				}
			}
			diff(t, "counts store", storeMap[int64](t, d, "counts"), wantCount)
			diff(t, "sums store", storeMap[int64](t, d, "sums"), wantSum)
			diff(t, "maxes store", storeMap[int64](t, d, "maxes"), wantMax)
			diff(t, "counts output", latest(streamtest.NewOutput(d, "counts-out", codec.String(), codec.Int64()).ReadAll()), wantCount)
			diff(t, "sums output", latest(streamtest.NewOutput(d, "sums-out", codec.String(), codec.Int64()).ReadAll()), wantSum)
			diff(t, "counts output after a failing function", latest(streamtest.NewOutput(d, "counts-checked", codec.String(), codec.Int64()).ReadAll()), wantChecked)
			if d.Partitions("<app>-by-item-repartition") != 0 {
				t.Fatal("unresolved internal topic name")
			}
			for _, topic := range []string{"streamtest-by-item-repartition", "streamtest-max-by-item-repartition"} {
				if got := d.Partitions(topic); got != 4 {
					t.Fatalf("%s has %d partitions, want the source's 4", topic, got)
				}
			}
		})
	}
}

type profile struct {
	Region string `json:"region"`
	Score  int64  `json:"score"`
}

// TestTableAggregationWithSubtractor keeps users in a table whose rows move
// between regions and get deleted, and aggregates per region with an adder
// and a subtractor; the result must match a recomputation from the final
// table at every cache size, including after a restart.
func TestTableAggregationWithSubtractor(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	type upd struct {
		user string
		p    profile
		del  bool
	}
	var upds []upd
	for range 15000 {
		u := upd{user: fmt.Sprintf("u%04d", rng.IntN(3000)), p: profile{Region: fmt.Sprintf("r%02d", rng.IntN(40)), Score: rng.Int64N(50)}}
		u.del = rng.IntN(8) == 0
		upds = append(upds, u)
	}
	final := map[string]profile{}
	everRegion := map[string]bool{}
	for _, u := range upds {
		if u.del {
			delete(final, u.user)
		} else {
			final[u.user] = u.p
			everRegion[u.p.Region] = true
		}
	}
	wantCount, wantScore := map[string]int64{}, map[string]int64{}
	for r := range everRegion {
		wantCount[r], wantScore[r] = 0, 0 // groups stay, at zero, once seen
	}
	for _, p := range final {
		wantCount[p.Region]++
		wantScore[p.Region] += p.Score
	}
	wantTable := map[string]profile{}
	maps.Copy(wantTable, final)

	type mode struct {
		cache   int
		restart bool
		press   *pressure
	}
	var modes []mode
	for _, cache := range []int{0, 3, -1} {
		for _, restart := range []bool{false, true} {
			modes = append(modes, mode{cache, restart, nil})
		}
	}
	for i := range pressures[1:] {
		modes = append(modes, mode{-1, false, &pressures[1+i]})
	}
	for _, m := range modes {
		cache, restart := m.cache, m.restart
		{
			name := fmt.Sprintf("cache=%d/restart=%v", cache, restart)
			if m.press != nil {
				name = "pressure=" + m.press.name
			}
			t.Run(name, func(t *testing.T) {
				var copts []stream.Option
				if cache >= 0 {
					copts = append(copts, stream.CacheSize(cache))
				}
				b := stream.NewBuilder()
				users := stream.TableFrom(b, "profiles", codec.String(), codec.JSON[profile](), append([]stream.Option{stream.Materialized("profiles-store")}, copts...)...)
				byRegion := stream.GroupTable(users, func(u string, p profile) (string, profile) { return p.Region, p }, stream.Named("by-region"))
				byRegion.Count(append([]stream.Option{stream.Materialized("region-counts")}, copts...)...)
				stream.AggregateTable(byRegion, func() int64 { return 0 },
					func(_ string, p profile, s int64) int64 { return s + p.Score },
					func(_ string, p profile, s int64) int64 { return s - p.Score },
					append([]stream.Option{stream.Materialized("region-scores"), stream.WithValue(codec.Int64())}, copts...)...).
					ToStream().To("region-scores-out")
				users.Filter(func(_ string, p profile) bool { return p.Score >= 25 }).ToStream().To("high-scorers")
				topo, err := b.Build()
				if err != nil {
					t.Fatal(err)
				}
				dopts := []streamtest.Opt{streamtest.Partitions("profiles", 3), streamtest.ManualCommit()}
				var run *pressured
				if m.press != nil {
					dopts = append(dopts, m.press.opts...)
				}
				d, err := streamtest.New(topo, dopts...)
				if err != nil {
					t.Fatal(err)
				}
				if m.press != nil {
					run = m.press.drive(t, d, len(upds), 5)
				}
				in := streamtest.NewInput(d, "profiles", codec.String(), codec.JSON[profile]())
				for i, u := range upds {
					if run != nil {
						if i > 0 {
							run.after(i - 1)
						}
						if err := pipeProfile(in, u.user, u.p, u.del); err != nil {
							t.Fatal(err)
						}
						continue
					}
					var err error
					if u.del {
						err = in.PipeRaw([]byte(u.user), nil, time.Time{})
					} else {
						err = in.Pipe(u.user, u.p)
					}
					if err != nil {
						t.Fatal(err)
					}
					if i%1000 == 999 {
						d.Commit()
					}
					if restart && i == len(upds)/2 {
						d.Commit()
						if err := d.CloseTasks(); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := d.Commit(); err != nil {
					t.Fatal(err)
				}
				diff(t, "table store", storeMap[profile](t, d, "profiles-store"), wantTable)
				diff(t, "region counts", storeMap[int64](t, d, "region-counts"), wantCount)
				diff(t, "region scores", storeMap[int64](t, d, "region-scores"), wantScore)
				diff(t, "region scores output", latest(streamtest.NewOutput(d, "region-scores-out", codec.String(), codec.Int64()).ReadAll()), wantScore)
				wantHigh := map[string]profile{}
				for u, p := range final {
					if p.Score >= 25 {
						wantHigh[u] = p
					}
				}
				diff(t, "filtered table output", latest(streamtest.NewOutput(d, "high-scorers", codec.String(), codec.JSON[profile]()).ReadAll()), wantHigh)
			})
		}
	}
}

func pipeProfile(in *streamtest.Input[string, profile], user string, p profile, del bool) error {
	if del {
		return in.Tombstone(user)
	}
	return in.Pipe(user, p)
}

func TestToTableAndTombstones(t *testing.T) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.String())
	tbl := in.ToTable(stream.Materialized("latest"))
	stream.MapTableValues(tbl, func(_, v string) int64 { return int64(len(v)) }, stream.WithValue(codec.Int64())).ToStream().To("lengths")
	in.Filter(func(string, string) bool { return true }).To("copy")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := streamtest.New(topo)
	pin := streamtest.NewInput(d, "in", codec.String(), codec.String())
	pin.Pipe("a", "xx")
	pin.Pipe("b", "yyy")
	pin.PipeRaw([]byte("a"), nil, time.Time{})
	got := streamtest.NewOutput(d, "lengths", codec.String(), codec.Int64()).ReadAll()
	if len(got) != 3 || got[0].Value != 2 || got[1].Value != 3 || !got[2].Tombstone || got[2].Key != "a" {
		t.Fatalf("lengths: %+v", got)
	}
	copies := streamtest.NewOutput(d, "copy", codec.String(), codec.String()).ReadAll()
	if len(copies) != 3 || !copies[2].Tombstone {
		t.Fatalf("a tombstone did not pass through Filter to the sink: %+v", copies)
	}
	diff(t, "latest", storeMap[string](t, d, "latest"), map[string]string{"b": "yyy"})
}
