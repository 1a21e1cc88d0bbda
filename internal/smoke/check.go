package smoke

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Result is what Check found.
type Result struct {
	// Problems lists the broken invariants, one entry per kind of problem
	// and topic, with its count and a few examples. Empty when all hold.
	Problems []string

	// Echoed counts the records of EchoTopic, and EchoDuplicates those
	// beyond the first copy of their key and value.
	Echoed, EchoDuplicates int
	// Over sums, per aggregate output topic, how far the final results
	// exceed the truth, over all keys (or groups, or windows): the updates
	// applied twice after crashes. Always zero under ExactlyOnce.
	Over map[string]int64
	// DeadLetters counts the records of the dead-letter topic.
	DeadLetters int
}

// Err returns the problems joined into one error, or nil.
func (r Result) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	return errors.New("smoke: " + strings.Join(r.Problems, "\n"))
}

// String summarises r in one line.
func (r Result) String() string {
	var over []string
	for _, t := range slices.Sorted(maps.Keys(r.Over)) {
		over = append(over, fmt.Sprintf("%s+%d", t, r.Over[t]))
	}
	return fmt.Sprintf("%d problems; echo %d records, %d duplicates; final results over the truth: %s; dead letters %d",
		len(r.Problems), r.Echoed, r.EchoDuplicates, strings.Join(over, " "), r.DeadLetters)
}

// Check tests the outputs of a run that processed in against g's
// invariants, and returns what it found. Under both guarantees:
//
//   - Echo: every input record (key, value) appears in EchoTopic: nothing
//     is lost. Nothing else appears, and the first copies of a key's
//     values come in order: when value v first appears, each of 0..v-1
//     has appeared before it (the key's partition is read in offset
//     order), so no record is skipped and found later.
//   - Every key, group and window of the truth has a result, every result
//     is of a known key, group or window, and a key always goes to the
//     same partition of a topic.
//   - Min and max: every result lies in [0, Values-1], and the last one of
//     each key equals the truth (0 and Values-1). Duplicates cannot move
//     a minimum or a maximum, so these are exact under at-least-once too.
//   - Distinct values: every result lies in [1, Values], and the last one
//     of each key equals Values. The set of values seen ignores
//     duplicates, so this detects a lost update even where a duplicate
//     would make up for it in the count.
//   - No record reaches the dead-letter topic.
//
// Under AtLeastOnce, a crash reprocesses the records since the last commit
// from a store restored from its changelog, which may already hold their
// updates: the last count and sum of each key, count of each group and
// count of each window may exceed the truth, never fall below it.
// Intermediate results may go back after a crash (an output acknowledged
// before the changelog write that would have kept it), so only the last
// result per key is compared.
//
// Under ExactlyOnce, additionally: every input record appears in
// EchoTopic exactly once and in order; every last result equals the truth
// exactly; and each key's results never go back (counts, sums, maxima and
// distinct counts never decrease, minima never increase).
func Check(in Input, g Guarantee, out Outputs) Result {
	c := checker{in: in, g: g, truth: in.Truth(), p: &problems{}, res: Result{Over: make(map[string]int64)}}
	c.echo(out.Topics[EchoTopic])
	m := c.truth
	perKey := func(want int64) map[string]int64 {
		w := make(map[string]int64, in.Keys)
		for k := range in.Keys {
			w[Key(k)] = want
		}
		return w
	}
	c.aggregate(CountTopic, out.Topics[CountTopic], perKey(m.Count), 1, -1, atLeast, up)
	c.aggregate(SumTopic, out.Topics[SumTopic], perKey(m.Sum), 0, -1, atLeast, up)
	c.aggregate(MinTopic, out.Topics[MinTopic], perKey(m.Min), 0, m.Max, exact, down)
	c.aggregate(MaxTopic, out.Topics[MaxTopic], perKey(m.Max), 0, m.Max, exact, up)
	c.aggregate(DistinctTopic, out.Topics[DistinctTopic], perKey(m.Distinct), 1, m.Distinct, exact, up)
	c.aggregate(GroupCountTopic, out.Topics[GroupCountTopic], m.Groups, 1, -1, atLeast, up)
	windows := make(map[string]int64, in.Keys*len(m.Windows))
	for k := range in.Keys {
		for start, n := range m.Windows {
			windows[windowName(Key(k), start)] = n
		}
	}
	c.aggregate(WindowCountTopic, c.windowRecords(out.Topics[WindowCountTopic]), windows, 1, -1, atLeast, up)
	for _, r := range out.DeadLetters {
		c.p.add("dead letters", "%q@%d/%d: %s", r.Key, r.Partition, r.Offset, r.Headers["kappa.error"])
	}
	c.res.DeadLetters = len(out.DeadLetters)
	c.res.Problems = c.p.list()
	return c.res
}

// How the last result of a key compares with the truth under
// AtLeastOnce: exactly, or at least.
const (
	exact   = false
	atLeast = true
)

// Which way a key's results move under ExactlyOnce.
const (
	up   = 1
	down = -1
)

type checker struct {
	in    Input
	g     Guarantee
	truth Truth
	p     *problems
	res   Result
}

// echo checks EchoTopic.
func (c *checker) echo(recs []Record) {
	c.res.Echoed = len(recs)
	m := c.in.Values
	seen := make(map[string][]int, c.in.Keys) // key → copies of each value
	firsts := make(map[string]int, c.in.Keys) // key → distinct values seen
	parts := make(map[string]int32)
	for _, r := range recs {
		key := string(r.Key)
		v, ok := c.decode(EchoTopic, r)
		if !ok {
			continue
		}
		if i, ok := keyIndex(key); !ok || i >= c.in.Keys {
			c.p.add(EchoTopic+": unknown key", "%q@%d/%d", key, r.Partition, r.Offset)
			continue
		}
		if v < 0 || v >= int64(m) {
			c.p.add(EchoTopic+": value outside the input", "%s=%d@%d/%d", key, v, r.Partition, r.Offset)
			continue
		}
		c.samePartition(EchoTopic, parts, key, r)
		copies := seen[key]
		if copies == nil {
			copies = make([]int, m)
			seen[key] = copies
		}
		copies[v]++
		switch {
		case copies[v] == 1 && int(v) != firsts[key]:
			c.p.add(EchoTopic+": first copies out of order", "%s=%d@%d/%d arrived after %d other values of the key", key, v, r.Partition, r.Offset, firsts[key])
		case copies[v] > 1 && c.g.exact():
			c.p.add(EchoTopic+": duplicated", "%s=%d@%d/%d", key, v, r.Partition, r.Offset)
		}
		if copies[v] == 1 {
			firsts[key]++
		} else {
			c.res.EchoDuplicates++
		}
	}
	for k := range c.in.Keys {
		key := Key(k)
		copies := seen[key]
		for v := range m {
			if copies == nil || copies[v] == 0 {
				c.p.add(EchoTopic+": lost", "%s=%d", key, v)
			}
		}
	}
}

// aggregate checks one aggregate output topic: recs are its records with
// their keys as named in want, which maps every key to its true final
// result. Every result must lie in [lo, hi] (hi < 0: no upper bound); the
// last one per key must equal want, or be at least want when atLeast is set
// and the guarantee is at-least-once. Under exactly-once, results must move
// only in direction dir, and the last must equal want.
func (c *checker) aggregate(topic string, recs []Record, want map[string]int64, lo, hi int64, atLeastAllowed bool, dir int) {
	last := make(map[string]int64, len(want))
	parts := make(map[string]int32, len(want))
	for _, r := range recs {
		key := string(r.Key)
		v, ok := c.decode(topic, r)
		if !ok {
			continue
		}
		if _, known := want[key]; !known {
			c.p.add(topic+": unknown key", "%q=%d@%d/%d", key, v, r.Partition, r.Offset)
			continue
		}
		c.samePartition(topic, parts, key, r)
		if v < lo || (hi >= 0 && v > hi) {
			c.p.add(topic+": result out of range", "%s=%d@%d/%d, want %d..%d", key, v, r.Partition, r.Offset, lo, hi)
		}
		if prev, ok := last[key]; ok && c.g.exact() && (v-prev)*int64(dir) < 0 {
			c.p.add(topic+": result went back", "%s: %d after %d @%d/%d", key, v, prev, r.Partition, r.Offset)
		}
		last[key] = v
	}
	var over int64
	for _, key := range slices.Sorted(maps.Keys(want)) {
		w := want[key]
		got, ok := last[key]
		switch {
		case !ok:
			c.p.add(topic+": no result", "%s", key)
		case got == w:
		case got > w && atLeastAllowed && !c.g.exact():
			over += got - w
		default:
			c.p.add(topic+": wrong final result", "%s=%d, want %d", key, got, w)
		}
	}
	c.res.Over[topic] = over
}

// windowRecords rewrites the keys of WindowCountTopic records to the names
// windowName gives, so aggregate can check them; a window of the wrong size
// is a problem.
func (c *checker) windowRecords(recs []Record) []Record {
	out := make([]Record, 0, len(recs))
	size := WindowSize.Milliseconds()
	for _, r := range recs {
		if len(r.Key) < 16 {
			c.p.add(WindowCountTopic+": undecodable key", "%q@%d/%d", r.Key, r.Partition, r.Offset)
			continue
		}
		n := len(r.Key) - 16
		start := int64(binary.BigEndian.Uint64(r.Key[n:]))
		end := int64(binary.BigEndian.Uint64(r.Key[n+8:]))
		if end-start != size || start%size != 0 {
			c.p.add(WindowCountTopic+": not a tumbling window of WindowSize", "%s[%d,%d)@%d/%d", r.Key[:n], start, end, r.Partition, r.Offset)
			continue
		}
		r.Key = []byte(windowName(string(r.Key[:n]), start))
		out = append(out, r)
	}
	return out
}

// windowName names a key's window for the checks.
func windowName(key string, start int64) string { return fmt.Sprintf("%s@%d", key, start) }

// decode reads an int64 value, reporting a tombstone or a value of the
// wrong size.
func (c *checker) decode(topic string, r Record) (int64, bool) {
	if len(r.Value) != 8 {
		c.p.add(topic+": undecodable value", "%q: %d bytes (nil: %t)@%d/%d", r.Key, len(r.Value), r.Value == nil, r.Partition, r.Offset)
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(r.Value)), true
}

// samePartition checks that key stays in one partition of topic.
func (c *checker) samePartition(topic string, parts map[string]int32, key string, r Record) {
	if p, ok := parts[key]; ok && p != r.Partition {
		c.p.add(topic+": key in two partitions", "%s in %d and %d", key, p, r.Partition)
	}
	parts[key] = r.Partition
}

// problems collects broken invariants by kind, keeping a few examples of
// each.
type problems struct {
	kinds    []string
	count    map[string]int
	examples map[string][]string
}

// maxExamples bounds the examples kept per kind of problem.
const maxExamples = 5

func (p *problems) add(kind, format string, args ...any) {
	if p.count == nil {
		p.count, p.examples = make(map[string]int), make(map[string][]string)
	}
	if p.count[kind] == 0 {
		p.kinds = append(p.kinds, kind)
	}
	p.count[kind]++
	if len(p.examples[kind]) < maxExamples {
		p.examples[kind] = append(p.examples[kind], fmt.Sprintf(format, args...))
	}
}

func (p *problems) list() []string {
	var out []string
	for _, k := range p.kinds {
		s := fmt.Sprintf("%s: %d, such as %s", k, p.count[k], strings.Join(p.examples[k], "; "))
		out = append(out, s)
	}
	return out
}
