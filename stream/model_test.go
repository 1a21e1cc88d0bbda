package stream_test

import (
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/state"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/streamtest"
	"github.com/kappa-streams/kappa/window"
)

// The model-based test builds random topologies (chains of stateless
// operators, some of which fail or panic on some records, ending in a
// stateful operator whose results pass a function that refuses some keys)
// and runs seeded random input through them under every pressure. A model
// of the same chains computes what must come out. After draining it
// checks that no input record is unaccounted for (filtered by the
// semantics, counted in the results, or in the dead-letter topic when a
// function failed on it), that every result of a key that is not refused
// is out and every refused one is a dead letter, and that every store,
// restored from its changelog alone, holds what it held before.

// mrec is the value of the model's records: the input record's ID travels
// with it, so a dead letter names the input it came from.
type mrec struct {
	ID int   `json:"id"`
	V  int64 `json:"v"`
}

// stageKind is a stateless operator of a branch.
type stageKind int

const (
	stageFilter   stageKind = iota // drops records whose value hits a residue
	stageMapErr                    // changes values; fails (an error) on some
	stageMapPanic                  // changes values; panics on some
	stageRekey                     // changes keys: the aggregation repartitions
)

type stage struct {
	kind stageKind
	seed int64
}

// apply runs the stage on a record as the model: the new key and value,
// whether the record goes on, and whether the stage failed on it.
func (s stage) apply(key string, v int64) (string, int64, bool, bool) {
	h := int64(hashString(key))
	switch s.kind {
	case stageFilter:
		return key, v, (v+s.seed)%7 != 0, false
	case stageMapErr, stageMapPanic:
		if (h+v*s.seed)%23 == 0 {
			return key, v, false, true
		}
		return key, (v*3 + s.seed) % 100, true, false
	case stageRekey:
		return "g" + strconv.FormatInt((h+s.seed)%37, 10), v, true, false
	}
	panic("unknown stage")
}

func hashString(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32() & 0x7fffffff
}

// terminalKind is the stateful operator that ends a branch.
type terminalKind int

const (
	termCount terminalKind = iota
	termSum
	termTumbling
	termHopping
	termSliding
	termSession
	numTerminals
)

type branch struct {
	name   string
	stages []stage
	term   terminalKind
	final  bool // EmitFinal, for windowed terminals
}

func (b branch) windows() window.Windows {
	grace := 2 * time.Second
	switch b.term {
	case termTumbling:
		return window.Tumbling(10 * time.Second).Grace(grace)
	case termHopping:
		return window.Hopping(10*time.Second, 5*time.Second).Grace(grace)
	case termSliding:
		return window.Sliding(5 * time.Second).Grace(grace)
	case termSession:
		return window.Session(3 * time.Second).Grace(grace)
	}
	return nil
}

func (b branch) String() string {
	var parts []string
	for _, s := range b.stages {
		parts = append(parts, [...]string{"filter", "map-err", "map-panic", "rekey"}[s.kind])
	}
	term := [...]string{"count", "sum", "tumbling", "hopping", "sliding", "session"}[b.term]
	if b.final {
		term += "/final"
	}
	return strings.Join(append(parts, term), "→")
}

func (b branch) rekeyed() bool {
	return slices.ContainsFunc(b.stages, func(s stage) bool { return s.kind == stageRekey })
}

// randomBranches returns one to three random branches.
func randomBranches(rng *rand.Rand) []branch {
	bs := make([]branch, 1+rng.IntN(3))
	for i := range bs {
		b := branch{name: fmt.Sprint("b", i), term: terminalKind(rng.IntN(int(numTerminals)))}
		for range rng.IntN(4) {
			b.stages = append(b.stages, stage{kind: stageKind(rng.IntN(4)), seed: 1 + rng.Int64N(50)})
		}
		b.final = b.term >= termTumbling && rng.IntN(2) == 0
		bs[i] = b
	}
	return bs
}

// build adds the branch to the topology, reading in, ending in the
// topic "<name>-out" through a function that refuses failing keys.
func (b branch) build(in stream.Stream[string, mrec]) {
	s := in
	for i, st := range b.stages {
		name := stream.Named(fmt.Sprintf("%s-%d", b.name, i))
		switch st.kind {
		case stageFilter:
			s = s.Filter(func(k string, v mrec) bool { _, _, ok, _ := st.apply(k, v.V); return ok }, name)
		case stageMapErr:
			s = stream.MapValuesErr(s, func(k string, v mrec) (mrec, error) {
				_, nv, _, failed := st.apply(k, v.V)
				if failed {
					return mrec{}, fmt.Errorf("record %d refused", v.ID)
				}
				return mrec{ID: v.ID, V: nv}, nil
			}, name)
		case stageMapPanic:
			s = stream.MapValues(s, func(k string, v mrec) mrec {
				_, nv, _, failed := st.apply(k, v.V)
				if failed {
					panic(fmt.Sprintf("record %d refused", v.ID))
				}
				return mrec{ID: v.ID, V: nv}
			}, name)
		case stageRekey:
			s = stream.SelectKey(s, func(k string, v mrec) string { nk, _, _, _ := st.apply(k, v.V); return nk }, name)
		}
	}
	g := s.GroupByKey(stream.Named(b.name + "-group"))
	store := stream.Materialized(b.name + "-store")
	refuse := func(k string) error {
		if failing(k) {
			return fmt.Errorf("key %s refused", k)
		}
		return nil
	}
	switch b.term {
	case termCount, termSum:
		var t stream.Table[string, int64]
		if b.term == termCount {
			t = g.Count(store)
		} else {
			t = stream.Aggregate(g, func() int64 { return 0 }, func(_ string, v mrec, sum int64) int64 { return sum + v.V },
				store, stream.WithValue(codec.Int64()))
		}
		stream.MapValuesErr(t.ToStream(), func(k string, n int64) (int64, error) { return n, refuse(k) }).To(b.name + "-out")
	default:
		opts := []stream.Option{store}
		if b.final {
			opts = append(opts, stream.EmitFinal())
		}
		t := stream.WindowedBy(g, b.windows()).Count(opts...)
		stream.MapValuesErr(t.ToStream(), func(k window.Windowed[string], n int64) (int64, error) { return n, refuse(k.Key) }).To(b.name + "-out")
	}
}

// modelInput is one input record.
type modelInput struct {
	key string
	v   int64
	ts  int64
}

func modelInputs(rng *rand.Rand, n int) []modelInput {
	recs := make([]modelInput, n)
	ts := int64(1_000_000)
	for i := range recs {
		ts += rng.Int64N(400)
		t := ts
		if rng.IntN(10) == 0 {
			t -= rng.Int64N(6000) // out of order, within grace and beyond
		}
		recs[i] = modelInput{key: fmt.Sprint("k", rng.IntN(60)), v: rng.Int64N(100), ts: t}
	}
	return recs
}

// modelExpect is what the model predicts for a topology.
type modelExpect struct {
	// failed holds the IDs of the input records some function failed on,
	// with the node that failed; each is a dead letter.
	failed map[int]string
	// results holds each branch's results by key ("key" or
	// "key@[start,end]"), and closed the windows closed at the end.
	results []map[string]int64
	closed  []map[string]bool
	late    int
}

// model runs the branches over the input: a record goes through the
// branches in order, as the source forwards it to them, and a failure
// stops it there (the runtime dead-letters the record and the branches
// after the failing one never see it).
func model(bs []branch, recs []modelInput) modelExpect {
	ex := modelExpect{failed: map[int]string{}}
	per := make([][]timedRecord, len(bs))
	sums := make([]map[string]int64, len(bs))
	for i := range bs {
		sums[i] = map[string]int64{}
	}
	for id, r := range recs {
		stopped := false
		for bi, b := range bs {
			if stopped {
				// The task saw the record, so its stream time moved.
				if !b.rekeyed() {
					per[bi] = append(per[bi], timedRecord{key: r.key, ts: r.ts, ghost: true})
				}
				continue
			}
			key, v, on := r.key, r.v, true
			for si, st := range b.stages {
				var failed bool
				key, v, on, failed = st.apply(key, v)
				if failed {
					ex.failed[id] = fmt.Sprintf("%s-%d", b.name, si)
					stopped = true
				}
				if !on {
					break
				}
			}
			if !on {
				if !b.rekeyed() {
					per[bi] = append(per[bi], timedRecord{key: key, ts: r.ts, ghost: true})
				}
				continue
			}
			per[bi] = append(per[bi], timedRecord{key: key, ts: r.ts})
			switch b.term {
			case termCount:
				sums[bi][key]++
			case termSum:
				sums[bi][key] += v
			}
		}
	}
	for bi, b := range bs {
		closed := map[string]bool{}
		res := sums[bi]
		if w := b.windows(); w != nil {
			var counts map[winKey]int64
			var cl map[winKey]bool
			var late int
			switch w := w.(type) {
			case window.TimeWindows:
				counts, cl, _, late = oracleCounts(w, per[bi])
			case window.SlidingWindows:
				counts, cl, _, late = oracleSliding(w, per[bi])
			case window.SessionWindows:
				counts, cl, _, late = oracleSessions(w, per[bi])
			}
			ex.late += late
			res = map[string]int64{}
			for wk, n := range counts {
				k := fmt.Sprintf("%s@[%d,%d]", wk.key, wk.start, wk.end)
				res[k] = n
				if cl[wk] {
					closed[k] = true
				}
			}
		}
		ex.results = append(ex.results, res)
		ex.closed = append(ex.closed, closed)
	}
	return ex
}

// resultKey returns the key part of a result key.
func resultKey(k string) string {
	key, _, _ := strings.Cut(k, "@")
	return key
}

func TestRandomTopologiesLoseNothing(t *testing.T) {
	seeds := 16
	if testing.Short() {
		seeds = 6
	}
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 2026))
		bs := randomBranches(rng)
		recs := modelInputs(rng, 3000)
		ex := model(bs, recs)
		var desc []string
		for _, b := range bs {
			desc = append(desc, b.String())
		}
		for _, press := range pressures {
			t.Run(fmt.Sprintf("seed=%d/%s", seed, press.name), func(t *testing.T) {
				t.Logf("branches: %s", strings.Join(desc, " | "))
				runModel(t, bs, recs, ex, press, seed)
			})
		}
	}
}

func runModel(t *testing.T, bs []branch, recs []modelInput, ex modelExpect, press pressure, seed uint64) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.JSON[mrec]())
	for _, br := range bs {
		br.build(in)
	}
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo, press.opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	run := press.drive(t, d, len(recs), seed)
	pipe := streamtest.NewInput(d, "in", codec.String(), codec.JSON[mrec]())
	for id, r := range recs {
		if err := pipe.PipeAt(r.key, mrec{ID: id, V: r.v}, time.UnixMilli(r.ts)); err != nil {
			t.Fatal(err)
		}
		run.after(id)
	}
	run.finish()

	// Every dead letter is accounted for: an input record a function
	// failed on, once, or a result of a refused key.
	gotFailed := map[int]string{}
	refused := make([]map[string]bool, len(bs))
	for i := range refused {
		refused[i] = map[string]bool{}
	}
	for _, dl := range d.DeadLetters() {
		if dl.Offset >= 0 {
			v, err := codec.JSON[mrec]().Decode(dl.Value)
			if err != nil {
				t.Fatalf("dead letter %+v: %v", dl, err)
			}
			if prev, dup := gotFailed[v.ID]; dup {
				t.Fatalf("record %d dead-lettered twice (%s, %s)", v.ID, prev, dl.Node)
			}
			gotFailed[v.ID] = dl.Node
			continue
		}
		// A result: from a branch's store (a cache flush) or its
		// windowed aggregation (a final result).
		bi := slices.IndexFunc(bs, func(br branch) bool { return strings.HasPrefix(dl.Topic, br.name+"-") })
		if bi < 0 {
			t.Fatalf("dead letter from %q, no branch's: %s", dl.Topic, dl.Error)
		}
		key := string(dl.Key)
		if bs[bi].windows() != nil {
			kb, _, _, ok := state.ParseWindowKey(dl.Key)
			if !ok {
				t.Fatalf("dead letter from %q: key %x is not a window key", dl.Topic, dl.Key)
			}
			key = string(kb)
		}
		if !failing(key) {
			t.Fatalf("branch %s: result of key %q dead-lettered, but only failing keys are refused: %s", bs[bi].name, key, dl.Error)
		}
		refused[bi][key] = true
	}
	if !maps.Equal(gotFailed, ex.failed) {
		for id, node := range ex.failed {
			if gotFailed[id] != node {
				t.Errorf("record %d: failed at %q, dead letter says %q", id, node, gotFailed[id])
			}
		}
		t.Fatalf("%d records dead-lettered, the model says %d", len(gotFailed), len(ex.failed))
	}

	// Every result is out, but those of refused keys, which are dead
	// letters.
	for bi, br := range bs {
		want := ex.results[bi]
		got := map[string]int64{}
		emitted := map[string]int{}
		if br.windows() != nil {
			for _, r := range streamtest.NewOutput(d, br.name+"-out", codec.Windowed(codec.String()), codec.Int64()).ReadAll() {
				k := fmt.Sprintf("%s@[%d,%d]", r.Key.Key, r.Key.Window.Start, r.Key.Window.End)
				emitted[k]++
				if r.Tombstone {
					delete(got, k)
				} else {
					got[k] = r.Value
				}
			}
		} else {
			got = latest(streamtest.NewOutput(d, br.name+"-out", codec.String(), codec.Int64()).ReadAll())
		}
		for k, n := range want {
			switch {
			case failing(resultKey(k)):
				if _, ok := got[k]; ok {
					t.Fatalf("branch %s (%s): result %s of a refused key is out", br.name, br, k)
				}
				if (!br.final || ex.closed[bi][k]) && !refused[bi][resultKey(k)] {
					t.Fatalf("branch %s (%s): result %s of a refused key is not a dead letter", br.name, br, k)
				}
			case br.final && !ex.closed[bi][k]:
				if _, ok := got[k]; ok {
					t.Fatalf("branch %s (%s): window %s emitted before it closed", br.name, br, k)
				}
			case br.final:
				if got[k] != n || emitted[k] != 1 {
					t.Fatalf("branch %s (%s): window %s emitted %d times, last %d; want once %d", br.name, br, k, emitted[k], got[k], n)
				}
			default:
				if g, ok := got[k]; !ok || g != n {
					t.Fatalf("branch %s (%s): result %s = %d (out %v), the model says %d", br.name, br, k, g, ok, n)
				}
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Fatalf("branch %s (%s): result %s = %d, which the model never had", br.name, br, k, got[k])
			}
		}
	}
	if late := run.lateCount(); late != int64(ex.late) {
		t.Fatalf("%d late records counted, the model says %d", late, ex.late)
	}

	// Restoring every store from its changelog alone gives what it held.
	before := modelStores(t, d, bs)
	if err := d.CloseTasks(); err != nil {
		t.Fatal(err)
	}
	if after := modelStores(t, d, bs); !maps.Equal(before, after) {
		for k, v := range before {
			if after[k] != v {
				t.Errorf("store entry %s: %d before, %d after a restore", k, v, after[k])
			}
		}
		t.Fatalf("stores hold %d entries, %d after a restore from their changelogs", len(before), len(after))
	}
}

// modelStores reads every branch's store into one map.
func modelStores(t *testing.T, d *streamtest.Driver, bs []branch) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	for _, br := range bs {
		name := br.name + "-store"
		if br.windows() == nil {
			es, err := streamtest.ReadStore[string, int64](d, name)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				m[name+"/"+e.Key] = e.Value
			}
			continue
		}
		es, err := streamtest.ReadWindowStore[string, int64](d, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			m[fmt.Sprintf("%s/%s@[%d,%d]", name, e.Key, e.Start, e.End)] = e.Value
		}
	}
	return m
}
