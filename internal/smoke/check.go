package smoke

import (
	"bytes"
	"cmp"
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
//     order), so no record is skipped and found later. When out.Input
//     holds the input records, the first copies in each echo partition
//     also keep the order of the input partitions they come from, across
//     keys: the records of input partition p that go to echo partition q
//     appear in q in p's offset order.
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
// Under ExactlyOnce, additionally, as Kafka Streams' EosTestDriver checks:
//
//   - every input record appears in EchoTopic exactly once, in the order
//     of its input partition;
//   - every last result equals the truth exactly;
//   - each key's (group's, window's) results are its running aggregate:
//     the aggregate of its first j records, for increasing j. Stores
//     cache updates between commits, so j may skip records, and the
//     minimum (0 from the first record on) may repeat, once per record
//     at most. A result repeated where the aggregate moves with every
//     record (a duplicate update), one that goes back, and a value the
//     aggregate never takes are reported; an update lost shows in the
//     last result.
func Check(in Input, g Guarantee, out Outputs) Result {
	c := checker{in: in, g: g, truth: in.Truth(), p: &problems{}, res: Result{Over: make(map[string]int64)}}
	c.echo(out.Topics[EchoTopic], out.Input)
	m := c.truth
	perKey := func(want int64) map[string]int64 {
		w := make(map[string]int64, in.Keys)
		for k := range in.Keys {
			w[Key(k)] = want
		}
		return w
	}
	// The running aggregates of a key's values 0, 1, 2, ... in order, and
	// of any sequence of records for the counts.
	values := func(string) int64 { return m.Count }
	counting := func(j int64) int64 { return j + 1 }
	for _, a := range []aggregate{
		{CountTopic, perKey(m.Count), 1, -1, atLeast, values, counting},
		{SumTopic, perKey(m.Sum), 0, -1, atLeast, values, func(j int64) int64 { return j * (j + 1) / 2 }},
		{MinTopic, perKey(m.Min), 0, m.Max, exact, values, func(int64) int64 { return 0 }},
		{MaxTopic, perKey(m.Max), 0, m.Max, exact, values, func(j int64) int64 { return j }},
		{DistinctTopic, perKey(m.Distinct), 1, m.Distinct, exact, values, counting},
	} {
		c.aggregate(a, out.Topics[a.topic])
	}
	groups := func(g string) int64 { return m.Groups[g] }
	c.aggregate(aggregate{GroupCountTopic, m.Groups, 1, -1, atLeast, groups, counting}, out.Topics[GroupCountTopic])
	windows := make(map[string]int64, in.Keys*len(m.Windows))
	for k := range in.Keys {
		for start, n := range m.Windows {
			windows[windowName(Key(k), start)] = n
		}
	}
	inWindow := func(w string) int64 { return windows[w] }
	c.aggregate(aggregate{WindowCountTopic, windows, 1, -1, atLeast, inWindow, counting}, c.windowRecords(out.Topics[WindowCountTopic]))
	for _, r := range out.DeadLetters {
		c.p.add("dead letters", "%q@%d/%d: %s", r.Key, r.Partition, r.Offset, r.Headers["kappa.error"])
	}
	c.res.DeadLetters = len(out.DeadLetters)
	c.res.Problems = c.p.list()
	return c.res
}

// aggregate describes one aggregate output topic for Check.
type aggregate struct {
	topic string
	// want maps every key (group, window) to its true final result.
	want map[string]int64
	// Every result lies in [lo, hi]; hi < 0: no upper bound.
	lo, hi int64
	// atLeast allows, under AtLeastOnce, a last result above want.
	atLeast bool
	// records returns the number of input records of a key, and
	// running the key's aggregate after its first j+1 of them.
	records func(key string) int64
	running func(j int64) int64
}

// How the last result of a key compares with the truth under
// AtLeastOnce: exactly, or at least.
const (
	exact   = false
	atLeast = true
)

type checker struct {
	in    Input
	g     Guarantee
	truth Truth
	p     *problems
	res   Result
}

// echo checks EchoTopic, and when input holds the input records, the
// order of the echo partitions against them.
func (c *checker) echo(recs []Record, input []Record) {
	c.res.Echoed = len(recs)
	m := c.in.Values
	seen := make(map[string][]int, c.in.Keys) // key → copies of each value
	firsts := make(map[string]int, c.in.Keys) // key → distinct values seen
	parts := make(map[string]int32)
	var firstCopies []Record // in partition and offset order, as recs
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
			firstCopies = append(firstCopies, r)
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
	if input != nil {
		c.echoOrder(firstCopies, input, parts, seen)
	}
}

// echoOrder checks that the first copies of the echo records keep the
// order of the input: for each input partition p and echo partition q,
// the records of p whose keys go to q appear in q in p's offset order.
// Lost input records (not in seen) were reported already and are left
// out, so that what is reported here is order alone.
func (c *checker) echoOrder(firstCopies, input []Record, echoPart map[string]int32, seen map[string][]int) {
	type route struct{ from, to int32 }
	inPart := make(map[string]int32, c.in.Keys)
	want := make(map[route][]Record)
	for _, r := range input {
		key := string(r.Key)
		inPart[key] = r.Partition
		v, ok := c.decode(InputTopic, r)
		q, echoed := echoPart[key]
		if !ok || !echoed || v < 0 || v >= int64(c.in.Values) || seen[key][v] == 0 {
			continue // lost, or not of the input: reported by echo
		}
		rt := route{r.Partition, q}
		want[rt] = append(want[rt], r)
	}
	got := make(map[route][]Record, len(want))
	for _, r := range firstCopies {
		rt := route{inPart[string(r.Key)], r.Partition}
		got[rt] = append(got[rt], r)
	}
	for _, rt := range slices.SortedFunc(maps.Keys(want), func(a, b route) int {
		return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.to, b.to))
	}) {
		w, g := want[rt], got[rt]
		for i := range min(len(w), len(g)) {
			if !bytes.Equal(w[i].Key, g[i].Key) || !bytes.Equal(w[i].Value, g[i].Value) {
				c.p.add(EchoTopic+": not in input partition order",
					"record %d of input partition %d in echo partition %d is %s=%d@%d/%d, want %s=%d (input offset %d)",
					i, rt.from, rt.to, g[i].Key, int64(binary.BigEndian.Uint64(g[i].Value)), g[i].Partition, g[i].Offset,
					w[i].Key, int64(binary.BigEndian.Uint64(w[i].Value)), w[i].Offset)
				break
			}
		}
	}
}

// aggregate checks the records of one aggregate output topic, their
// keys as named in a.want: see Check.
func (c *checker) aggregate(a aggregate, recs []Record) {
	topic := a.topic
	last := make(map[string]int64, len(a.want))
	parts := make(map[string]int32, len(a.want))
	next := make(map[string]int64, len(a.want)) // key → records its results have covered
	broken := make(map[string]bool)             // keys whose results left their running aggregate
	results := make(map[string]int, len(a.want))
	// The highest result of each key and where it and the last one are:
	// a final result below the truth after a higher one is a write that
	// went back (a stale owner's), not input that was never counted.
	highest := make(map[string]int64, len(a.want))
	highAt := make(map[string]string, len(a.want))
	lastAt := make(map[string]string, len(a.want))
	for _, r := range recs {
		key := string(r.Key)
		v, ok := c.decode(topic, r)
		if !ok {
			continue
		}
		if _, known := a.want[key]; !known {
			c.p.add(topic+": unknown key", "%q=%d@%d/%d", key, v, r.Partition, r.Offset)
			continue
		}
		c.samePartition(topic, parts, key, r)
		if v < a.lo || (a.hi >= 0 && v > a.hi) {
			c.p.add(topic+": result out of range", "%s=%d@%d/%d, want %d..%d", key, v, r.Partition, r.Offset, a.lo, a.hi)
		}
		prev, seen := last[key]
		last[key] = v
		lastAt[key] = fmt.Sprintf("%d/%d", r.Partition, r.Offset)
		if h, ok := highest[key]; !ok || v > h {
			highest[key], highAt[key] = v, lastAt[key]
		}
		results[key]++
		if !c.g.exact() || broken[key] {
			continue
		}
		// The earliest step after the last one matched whose running
		// aggregate is v: matching greedily finds a way through the
		// running aggregates if there is one.
		n, j := a.records(key), next[key]
		for j < n && a.running(j) != v {
			j++
		}
		if j < n {
			next[key] = j + 1
			continue
		}
		// Not found: say why, and check the key no further, so that one
		// fault is reported once.
		broken[key] = true
		where := fmt.Sprintf("%s=%d@%d/%d is result %d; those before cover %d of its %d records", key, v, r.Partition, r.Offset, results[key], next[key], n)
		switch {
		case seen && v == prev:
			c.p.add(topic+": duplicate update", "%s (the last result again)", where)
		case seen && a.taken(next[key], v):
			c.p.add(topic+": result went back", "%s (last result %d)", where, prev)
		default:
			c.p.add(topic+": not a running aggregate", "%s: no later step of the key's running aggregate has this value", where)
		}
	}
	var over int64
	for _, key := range slices.Sorted(maps.Keys(a.want)) {
		w := a.want[key]
		got, ok := last[key]
		switch {
		case !ok:
			c.p.add(topic+": no result", "%s", key)
		case got == w:
		case got > w && a.atLeast && !c.g.exact():
			over += got - w
		case highest[key] > got:
			c.p.add(topic+": wrong final result", "%s=%d at %s, want %d; an earlier result at %s was %d: the result went back", key, got, lastAt[key], w, highAt[key], highest[key])
		default:
			c.p.add(topic+": wrong final result", "%s=%d, want %d", key, got, w)
		}
	}
	c.res.Over[topic] = over
}

// taken reports whether the running aggregate had the value v in one of
// its first n steps.
func (a aggregate) taken(n, v int64) bool {
	for j := range n {
		if a.running(j) == v {
			return true
		}
	}
	return false
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
