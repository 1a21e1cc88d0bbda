package smoke

import (
	"bytes"
	"encoding/binary"
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
	read := func(topic string) []Record {
		var recs []Record
		for _, r := range streamtest.NewOutput(d, topic, codec.Bytes(), codec.Bytes()).ReadAll() {
			recs = append(recs, Record{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
		}
		slices.SortStableFunc(recs, func(a, b Record) int { return int(a.Partition - b.Partition) })
		return recs
	}
	for _, topic := range OutputTopics {
		out.Topics[topic] = read(topic)
	}
	out.Input = read(InputTopic)
	if len(out.Input) != in.Len() {
		t.Fatalf("the driver's input topic holds %d records, want %d", len(out.Input), in.Len())
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
		{"echo records of two keys swapped", func(out *Outputs) {
			// Two records next to each other in an echo partition, of
			// different keys of one input partition: each key's values
			// stay in order, the input partition's order does not.
			inPart := map[string]int32{}
			for _, r := range out.Input {
				inPart[string(r.Key)] = r.Partition
			}
			recs := out.Topics[EchoTopic]
			for i := range len(recs) - 1 {
				a, b := recs[i], recs[i+1]
				if a.Partition == b.Partition && !bytes.Equal(a.Key, b.Key) && inPart[string(a.Key)] == inPart[string(b.Key)] {
					recs[i], recs[i+1] = recs[i+1], recs[i]
					return
				}
			}
			t.Fatal("no two neighbouring echo records of different keys")
		}, "smoke-echo: not in input partition order: 1", "smoke-echo: not in input partition order: 1"},
		{"count updated twice", func(out *Outputs) {
			// A record counted twice in the middle: every later count is
			// one too high, and the last one too.
			recs := out.Topics[CountTopic]
			i := slices.IndexFunc(recs, func(r Record) bool { return string(r.Key) == Key(2) })
			var after bool
			for j := range recs {
				if j > i && string(recs[j].Key) == Key(2) {
					recs[j].Value = int64s(int64(binary.BigEndian.Uint64(recs[j].Value)) + 1)
					after = true
				}
			}
			out.Topics[CountTopic] = slices.Insert(recs, i+1, recs[i])
			if !after {
				t.Fatal("one count of the key only")
			}
		}, "", "smoke-count: duplicate update: 1"},
		{"sum not a running sum", func(out *Outputs) {
			i := slices.IndexFunc(out.Topics[SumTopic], func(r Record) bool { return string(r.Key) == Key(6) })
			out.Topics[SumTopic][i].Value = int64s(2) // 0, 1, 3, 6, ... never 2
		}, "", "smoke-sum: not a running aggregate: 1"},
		{"min not the running min", func(out *Outputs) {
			i := slices.IndexFunc(out.Topics[MinTopic], func(r Record) bool { return string(r.Key) == Key(6) })
			out.Topics[MinTopic][i].Value = int64s(1)
		}, "", "smoke-min: not a running aggregate: 1"},
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
			out := Outputs{Topics: make(map[string][]Record), DeadLetters: slices.Clone(clean.DeadLetters), Input: clean.Input}
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

// TestParseGuarantee accepts both guarantees and nothing else.
func TestParseGuarantee(t *testing.T) {
	for _, g := range []Guarantee{AtLeastOnce, ExactlyOnce} {
		if got, err := ParseGuarantee(string(g)); err != nil || got != g {
			t.Errorf("%s: %v, %v", g, got, err)
		}
	}
	for _, s := range []string{"", "at-most-once", "exactly_once_v2"} {
		if g, err := ParseGuarantee(s); err == nil {
			t.Errorf("%q: %v, want an unknown-guarantee error", s, g)
		}
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
