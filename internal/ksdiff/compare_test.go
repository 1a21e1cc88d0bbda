package ksdiff_test

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kappa-streams/kappa/processor"
	"github.com/twmb/franz-go/pkg/kgo"
)

// result is an output topic reduced for the comparison.
type result struct {
	table map[string]string   // the latest value per key, deleted keys removed
	seq   map[string][]string // every value per key in order, "null" for a delete
	emits map[string]int      // records with a value, per key
}

// reduce reads recs, in offset order, as a table and as per-key sequences.
// A key's records are all in one partition on both sides (murmur2 of the
// same key bytes), so their order is the order in which they were written.
func reduce(recs []*kgo.Record) result {
	r := result{table: map[string]string{}, seq: map[string][]string{}, emits: map[string]int{}}
	for _, rec := range recs {
		k := string(rec.Key)
		if rec.Value == nil {
			delete(r.table, k)
			r.seq[k] = append(r.seq[k], "null")
			continue
		}
		v := string(rec.Value)
		r.table[k] = v
		r.seq[k] = append(r.seq[k], v)
		r.emits[k]++
	}
	return r
}

// compare checks a case's two outputs: equal final tables (and, by the
// case's reading, one result per window, or equal sequences per key), or,
// for a crafted case, the final table each side is documented to produce.
func compare(t *testing.T, c *diffCase, kappaOut, ksOut []*kgo.Record) {
	t.Helper()
	kappa, ks := reduce(kappaOut), reduce(ksOut)
	if c.wantKappa != nil {
		if got := withoutFlush(kappa.table); !maps.Equal(got, c.wantKappa) {
			t.Errorf("Kappa's final table is not the documented one:\n%s", diffTables(got, c.wantKappa, "Kappa", "documented"))
		}
		if got := withoutFlush(ks.table); !maps.Equal(got, c.wantKS) {
			t.Errorf("Kafka Streams' final table is not the one this case documents:\n%s", diffTables(got, c.wantKS, "Kafka Streams", "documented"))
		}
		if t.Failed() {
			t.Logf("Kappa wrote %s\nKafka Streams wrote %s", records(kappaOut), records(ksOut))
		}
		switch {
		case t.Failed():
		case c.difference != "":
			t.Logf("differ as documented: %s", c.difference)
		default:
			t.Logf("agree as documented")
		}
		return
	}
	if len(ks.table) == 0 {
		t.Errorf("Kafka Streams wrote no results (%d records); Kappa %d keys", len(ksOut), len(kappa.table))
	}
	var diffs []string
	first := ""
	note := func(key, d string) {
		if first == "" {
			first = key
		}
		diffs = append(diffs, d)
	}
	for _, k := range sortedKeys(kappa.table, ks.table) {
		kv, kok := kappa.table[k]
		sv, sok := ks.table[k]
		switch {
		case !sok:
			note(k, fmt.Sprintf("%s: Kappa %s, Kafka Streams none", k, kv))
		case !kok:
			note(k, fmt.Sprintf("%s: Kappa none, Kafka Streams %s", k, sv))
		case kv != sv:
			note(k, fmt.Sprintf("%s: Kappa %s, Kafka Streams %s", k, kv, sv))
		}
	}
	switch c.reading {
	case asFinal:
		for _, k := range sortedKeys(kappa.emits, ks.emits) {
			if n, m := kappa.emits[k], ks.emits[k]; n > 1 || m > 1 {
				note(k, fmt.Sprintf("%s: a final result emitted %d times by Kappa, %d times by Kafka Streams", k, n, m))
			}
		}
	case asStream:
		for _, k := range sortedKeys(kappa.seq, ks.seq) {
			if a, b := kappa.seq[k], ks.seq[k]; !slices.Equal(a, b) {
				note(k, fmt.Sprintf("%s: the outputs differ at record %d of the key: Kappa %v, Kafka Streams %v",
					k, firstDifference(a, b), around(a, firstDifference(a, b)), around(b, firstDifference(a, b))))
			}
		}
	}
	if len(diffs) == 0 {
		t.Logf("agree: %d keys, %d records from Kappa, %d from Kafka Streams", len(ks.table), len(kappaOut), len(ksOut))
		return
	}
	shown := diffs
	if len(shown) > 12 {
		shown = append(shown[:12:12], fmt.Sprintf("and %d more", len(diffs)-12))
	}
	t.Errorf("Kappa and Kafka Streams differ on %d of %d keys:\n  %s\n%s", len(diffs), len(sortedKeys(kappa.table, ks.table)),
		strings.Join(shown, "\n  "), inputOf(c, first))
}

// records lists recs as key=value, with times relative to t0.
func records(recs []*kgo.Record) string {
	var b strings.Builder
	for _, r := range recs {
		v := "null"
		if r.Value != nil {
			v = string(r.Value)
		}
		fmt.Fprintf(&b, "\n  %s=%s at %s", r.Key, v, rel(r.Timestamp.UnixMilli()))
	}
	return b.String()
}

// diffTables describes how got differs from want.
func diffTables(got, want map[string]string, gotName, wantName string) string {
	var b strings.Builder
	for _, k := range sortedKeys(got, want) {
		g, gok := got[k]
		w, wok := want[k]
		if gok != wok || g != w {
			fmt.Fprintf(&b, "  %s: %s %s, %s %s\n", k, gotName, orNone(g, gok), wantName, orNone(w, wok))
		}
	}
	return b.String()
}

func orNone(v string, ok bool) string {
	if !ok {
		return "none"
	}
	return v
}

func sortedKeys[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func firstDifference(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// around returns the elements of s near i.
func around(s []string, i int) []string {
	return s[max(0, i-2):min(len(s), i+3)]
}

// inputOf describes the input records behind an output key, with their
// partitions, offsets and times (relative to t0), and the stream time of
// their partition once each was read, for a case with one input. For a
// window, the records of its key within 5 s of it.
func inputOf(c *diffCase, outKey string) string {
	key, bounds, windowed := strings.Cut(outKey, "@")
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if windowed {
		s, e, _ := strings.Cut(bounds, "@")
		start, _ := strconv.ParseInt(s, 10, 64)
		end, _ := strconv.ParseInt(e, 10, 64)
		from, to = start-5000, end+5000
	}
	var b strings.Builder
	fmt.Fprintf(&b, "input of %q (times relative to t0 = %d", outKey, int64(t0))
	if windowed {
		fmt.Fprintf(&b, "; the window is [%s, %s]", rel(from+5000), rel(to-5000))
	}
	b.WriteString("):\n")
	type tp struct{ topic, p int32 }
	offsets := map[tp]int64{}
	streamTime := map[tp]int64{}
	n := 0
	for _, r := range c.recs {
		p := processor.KeyPartition([]byte(r.key), c.partitions)
		at := tp{int32(r.topic), p}
		off := offsets[at]
		offsets[at]++
		streamTime[at] = max(streamTime[at], r.ts)
		mine := r.key == key
		if c.kappa == rekeyCount {
			mine = r.value != nil && category(string(r.value)) == key
		}
		if !mine || r.ts < from || r.ts > to {
			continue
		}
		if n++; n > 60 {
			continue
		}
		v := "null"
		if r.value != nil {
			v = string(r.value)
		}
		fmt.Fprintf(&b, "  %s/%d@%d key %s ts %s value %s", c.input(r.topic), p, off, r.key, rel(r.ts), v)
		if c.inputs == 1 {
			fmt.Fprintf(&b, " (stream time %s)", rel(streamTime[at]))
		}
		b.WriteByte('\n')
	}
	if n > 60 {
		fmt.Fprintf(&b, "  and %d more\n", n-60)
	}
	return b.String()
}

// rel formats a time relative to t0, in seconds.
func rel(ts int64) string {
	return strconv.FormatFloat(float64(ts-t0)/1000, 'f', 3, 64)
}
