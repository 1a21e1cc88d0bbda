package smoke

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/streamtest"
)

// run processes in once on the in-memory driver, committing at random
// points with a tiny cache (so updates are emitted as a busy app emits
// them), and returns the outputs as Read would.
func run(t *testing.T, in Input) Outputs {
	t.Helper()
	topo, err := Topology()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo, streamtest.Partitions(InputTopic, InputPartitions),
		streamtest.ManualCommit(), streamtest.CacheBytes(2048))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pipe := streamtest.NewInput(d, InputTopic, codec.Bytes(), codec.Bytes())
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range in.Len() {
		r := in.Record(i)
		if err := pipe.PipeRaw(r.Key, r.Value, r.Timestamp); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(200) == 0 {
			if err := d.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	out := Outputs{Topics: make(map[string][]Record)}
	for _, topic := range OutputTopics {
		for _, r := range streamtest.NewOutput(d, topic, codec.Bytes(), codec.Bytes()).ReadAll() {
			out.Topics[topic] = append(out.Topics[topic], Record{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
		}
		slices.SortStableFunc(out.Topics[topic], func(a, b Record) int { return int(a.Partition - b.Partition) })
	}
	for _, dl := range d.DeadLetters() {
		out.DeadLetters = append(out.DeadLetters, Record{Key: dl.Key, Value: dl.Value, Headers: map[string]string{"kappa.error": dl.Error}})
	}
	return out
}

// TestUninterruptedRunIsExact checks the topology and the closed-form
// truth against each other: one run without crashes meets even the
// exactly-once invariants.
func TestUninterruptedRunIsExact(t *testing.T) {
	in := Input{Keys: 20, Values: 250}.WithDefaults()
	out := run(t, in)
	for _, g := range []Guarantee{AtLeastOnce, ExactlyOnce} {
		res := Check(in, g, out)
		if err := res.Err(); err != nil {
			t.Fatalf("%s: %v", g, err)
		}
		if res.Echoed != in.Len() || res.EchoDuplicates != 0 {
			t.Fatalf("%s: %s", g, res)
		}
	}
}

// TestCheckFindsProblems breaks outputs of a clean run in the ways a buggy
// runtime would, and checks that Check reports each, under the guarantees
// that forbid it.
func TestCheckFindsProblems(t *testing.T) {
	in := Input{Keys: 10, Values: 120}.WithDefaults()
	clean := run(t, in)
	int64s := func(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
	// lastOf returns the index of the last record of key in topic.
	lastOf := func(out Outputs, topic, key string) int {
		recs := out.Topics[topic]
		for i := len(recs) - 1; i >= 0; i-- {
			if string(recs[i].Key) == key {
				return i
			}
		}
		t.Fatalf("%s: no record of %s", topic, key)
		return -1
	}
	for _, tc := range []struct {
		name   string
		mutate func(out *Outputs)
		// want is the problem reported under each guarantee; "" means
		// the guarantee allows the change.
		alos, eos string
	}{
		{"echo record lost", func(out *Outputs) {
			recs := out.Topics[EchoTopic]
			out.Topics[EchoTopic] = slices.Delete(recs, 7, 8)
		}, "smoke-echo: lost: 1", "smoke-echo: lost: 1"},
		{"echo record duplicated", func(out *Outputs) {
			recs := out.Topics[EchoTopic]
			out.Topics[EchoTopic] = slices.Insert(recs, 30, recs[29])
		}, "", "smoke-echo: duplicated: 1"},
		{"echo record skipped and found later", func(out *Outputs) {
			recs := out.Topics[EchoTopic]
			r := recs[3]
			out.Topics[EchoTopic] = append(slices.Delete(recs, 3, 4), r)
		}, "smoke-echo: first copies out of order", "smoke-echo: first copies out of order"},
		{"count below the truth", func(out *Outputs) {
			i := lastOf(*out, CountTopic, Key(3))
			out.Topics[CountTopic][i].Value = int64s(in.Truth().Count - 1)
		}, "smoke-count: wrong final result: 1", "smoke-count: wrong final result: 1"},
		{"count above the truth", func(out *Outputs) {
			i := lastOf(*out, CountTopic, Key(3))
			out.Topics[CountTopic][i].Value = int64s(in.Truth().Count + 2)
		}, "", "smoke-count: wrong final result: 1"},
		{"count went back", func(out *Outputs) {
			r := out.Topics[CountTopic][lastOf(*out, CountTopic, Key(4))]
			r.Value = int64s(1)
			out.Topics[CountTopic] = append(out.Topics[CountTopic], r, out.Topics[CountTopic][lastOf(*out, CountTopic, Key(4))])
		}, "", "smoke-count: result went back: 1"},
		{"distinct value lost", func(out *Outputs) {
			i := lastOf(*out, DistinctTopic, Key(5))
			out.Topics[DistinctTopic][i].Value = int64s(in.Truth().Distinct - 1)
		}, "smoke-distinct: wrong final result: 1", "smoke-distinct: wrong final result: 1"},
		{"max out of range", func(out *Outputs) {
			r := out.Topics[MaxTopic][0]
			r.Value = int64s(in.Truth().Max + 1)
			out.Topics[MaxTopic] = slices.Insert(out.Topics[MaxTopic], 0, r)
		}, "smoke-max: result out of range: 1", "smoke-max: result out of range: 1"},
		{"window missing", func(out *Outputs) {
			recs := out.Topics[WindowCountTopic]
			first := string(recs[0].Key)
			out.Topics[WindowCountTopic] = slices.DeleteFunc(recs, func(r Record) bool { return string(r.Key) == first })
		}, "smoke-window-count: no result: 1", "smoke-window-count: no result: 1"},
		{"group count below the truth", func(out *Outputs) {
			i := lastOf(*out, GroupCountTopic, "g2")
			out.Topics[GroupCountTopic][i].Value = int64s(1)
		}, "smoke-group-count: wrong final result: 1", "smoke-group-count: wrong final result: 1"},
		{"dead letter", func(out *Outputs) {
			out.DeadLetters = append(out.DeadLetters, Record{Key: []byte("x"), Headers: map[string]string{"kappa.error": "boom"}})
		}, "dead letters: 1", "dead letters: 1"},
		{"key in two partitions", func(out *Outputs) {
			i := lastOf(*out, SumTopic, Key(1))
			r := out.Topics[SumTopic][i]
			r.Partition = (r.Partition + 1) % InputPartitions
			out.Topics[SumTopic] = append(out.Topics[SumTopic], r)
		}, "smoke-sum: key in two partitions: 1", "smoke-sum: key in two partitions: 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := Outputs{Topics: make(map[string][]Record), DeadLetters: slices.Clone(clean.DeadLetters)}
			for topic, recs := range clean.Topics {
				out.Topics[topic] = slices.Clone(recs)
			}
			tc.mutate(&out)
			for g, want := range map[Guarantee]string{AtLeastOnce: tc.alos, ExactlyOnce: tc.eos} {
				err := Check(in, g, out).Err()
				switch {
				case want == "" && err != nil:
					t.Errorf("%s allows it, but Check says: %v", g, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("%s: Check says %v, want a problem containing %q", g, err, want)
				}
			}
		})
	}
}

// TestStatusLine round-trips status lines and ignores other output.
func TestStatusLine(t *testing.T) {
	for _, s := range []Status{
		{Instance: "a", Tasks: []string{"0_1", "1_1"}, Ready: true},
		{Instance: "b"},
	} {
		got, ok := ParseStatus(s.String() + "\n")
		if !ok || got.String() != s.String() {
			t.Errorf("ParseStatus(%q) = %v, %t", s.String(), got, ok)
		}
	}
	for _, line := range []string{"", "time=... level=INFO msg=running", "smokeapp status instance=a"} {
		if _, ok := ParseStatus(line); ok {
			t.Errorf("ParseStatus(%q) accepted it", line)
		}
	}
}

// TestParseGuarantee accepts at-least-once only, for now.
func TestParseGuarantee(t *testing.T) {
	if g, err := ParseGuarantee("at-least-once"); err != nil || g != AtLeastOnce {
		t.Fatalf("at-least-once: %v, %v", g, err)
	}
	if _, err := ParseGuarantee("exactly-once"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("exactly-once: %v, want ErrUnsupported", err)
	}
	if _, err := ParseGuarantee("at-most-once"); err == nil || errors.Is(err, ErrUnsupported) {
		t.Fatalf("at-most-once: %v, want an unknown-guarantee error", err)
	}
}

// TestInputTruth checks the closed forms against a count over the records.
func TestInputTruth(t *testing.T) {
	in := Input{Keys: 9, Values: 333, Step: 7 * time.Millisecond}.WithDefaults()
	tr := in.Truth()
	var n, sum int64
	windows := map[int64]int64{}
	for i := range in.Len() {
		r := in.Record(i)
		if string(r.Key) == Key(0) {
			n++
			sum += int64(binary.BigEndian.Uint64(r.Value))
			ms := r.Timestamp.UnixMilli()
			windows[ms-ms%WindowSize.Milliseconds()]++
		}
	}
	if n != tr.Count || sum != tr.Sum || len(windows) != len(tr.Windows) {
		t.Fatalf("count %d sum %d windows %d, truth %+v", n, sum, len(windows), tr)
	}
	var phased int
	for p := range 4 {
		phased += len(in.Phase(p, 4))
	}
	if phased != in.Len() {
		t.Fatalf("phases hold %d records, want %d", phased, in.Len())
	}
}
