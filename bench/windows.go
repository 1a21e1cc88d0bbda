package main

// W3, windows: W2's count against a windowed count of each kind of
// window (tumbling 1 minute, hopping 5 minutes/1 minute, sliding 1 minute,
// sessions with a 5-minute gap), all in Kappa, over W2's input with event
// times, 5% of them out of order. Besides input records/s, it reports the
// results each contender wrote to its output and results/s, since a
// windowed count writes several results per input record.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/window"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(command{
		name:    "windows",
		summary: "W3: W2's count against tumbling, hopping, sliding and session windowed counts, 5% out of order (kappa, kstreams)",
		run:     runWindows,
	})
	isolatable["windows"] = func(p childParams) []contender { return w3Contenders(p.commitInterval, p.cacheBytes, nil) }
}

const (
	// w3Step is the event time between consecutive records: 500,000
	// records span 33 minutes, so most windows close well before the end.
	w3Step = 4 * time.Millisecond
	// w3Grace is the grace period of every window definition.
	w3Grace = time.Minute
	// w3OutOfOrder is the share of records stamped earlier than the
	// current event time, by 1 ms to w3Grace.
	w3OutOfOrder = 0.05
)

// w3Epoch is the event time of the first record, a whole minute.
var w3Epoch = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// The window definitions of the windowed contenders.
//
// A key's records are w2Keys × w3Step = 6m40s of event time apart on
// average (whatever the number of records), at random (the gaps are
// about exponentially distributed). w3Session's 5-minute gap is of that
// order, so sessions are meaningful: about half of a key's records
// (1 - e^(-5/6.67) = 53%) fall within the gap of the one before and
// extend its session, the others start one. A 1-minute gap would leave
// 86% of the sessions with one record. The same holds for w3Sliding's
// 1 minute: most of its windows hold one record.
var (
	w3Tumbling = window.Tumbling(time.Minute).Grace(w3Grace)
	w3Hopping  = window.Hopping(5*time.Minute, time.Minute).Grace(w3Grace)
	w3Sliding  = window.Sliding(time.Minute).Grace(w3Grace)
	w3Session  = window.Session(5 * time.Minute).Grace(w3Grace)
)

// w3DefaultContenders are the contenders a run without -contenders
// measures.
const w3DefaultContenders = "count,tumbling,window,sliding,session"

func runWindows(args []string) error {
	fs := flag.NewFlagSet("windows", flag.ContinueOnError)
	var f commonFlags
	f.registerWith(fs, 500000, w3DefaultContenders, 1)
	// -profile's usual default, kappa, names no contender here.
	f.profile = "window"
	fs.Lookup("profile").DefValue = f.profile
	every := fs.Duration("commit-interval", time.Second, "commit interval of every contender (kappa's CommitInterval)")
	cache := fs.Int64("cache-bytes", -1, "kappa's record-cache budget (kappa.CacheBytes) of every contender; -1 keeps the default")
	ctx := context.Background()
	h, err := startStateful(ctx, fs, args, &f, every, "windows")
	if err != nil {
		return err
	}
	defer h.Close()

	const in = "windows-in"
	if err := h.createTopic(ctx, in, int32(f.partitions)); err != nil {
		return err
	}
	exps, finals, err := produceW3(ctx, h, in, &f)
	if err != nil {
		return err
	}
	h.params = childParams{commitInterval: *every, cacheBytes: *cache}
	sums, err := h.runEach(ctx, w3Contenders(*every, *cache, finals), func(c contender, run int) trial {
		return h.measure(ctx, c, run, in, exps[strings.TrimPrefix(c.key, "kstreams-")])
	})
	if err != nil {
		return err
	}
	span := (time.Duration(f.records-1) * w3Step).Round(time.Second)
	title := fmt.Sprintf("W3 windows: %d records, %d partitions, %d-byte values, %d distinct keys, event time +%v per record (%v in all), %.0f%% out of order by up to the grace period %v, commit interval %v, %d run(s); "+
		"records/s are input records, results are the records written to the output topic (its end offsets after the contender stopped), results/s are results over the same time as records/s",
		f.records, f.partitions, f.valueSize, w2Keys, w3Step, span, 100*w3OutOfOrder, w3Grace, *every, f.runs)
	printW3Table(os.Stdout, title, sums)
	return nil
}

// printW3Table is printTable with two more columns, the results written
// and results/s (medians of the runs), and the RESULT line's ratios of
// results/s, named a/b.results, after its ratios of input records/s.
// window/count comes first, as it did before the other ratios existed.
//
// With contenders that ran as child processes, it has printTable's peak
// RSS and CPU columns too, and the RESULT line compares each Kappa
// contender with its Kafka Streams peer (kstreams-<key>) by input
// records/s, results/s, peak RSS and CPU per record.
func printW3Table(w io.Writer, title string, sums []summary) {
	fmt.Fprintf(w, "%s\n\n", title)
	fmt.Fprintf(w, "machine: %s\n\n", machineInfo())
	procs := slices.ContainsFunc(sums, func(s summary) bool { return s.rss > 0 })
	if procs {
		fmt.Fprintln(w, "| contender | records/s | results | results/s | peak RSS | CPU s / M records | wall time | notes |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|")
	} else {
		fmt.Fprintln(w, "| contender | records/s | results | results/s | wall time | notes |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|")
	}
	for _, s := range sums {
		if !s.ok {
			dashes := "– | – | – | – |"
			if procs {
				dashes = "– | – | – | – | – | – |"
			}
			fmt.Fprintf(w, "| %s | %s %s |\n", s.c.name, dashes, escapeCell(s.notes))
			continue
		}
		notes := s.notes
		if len(s.good) > 1 {
			var results, rates []string
			for _, t := range s.good {
				results = append(results, groupDigits(float64(t.Results)))
				rates = append(rates, groupDigits(t.ResultRate))
			}
			notes += fmt.Sprintf("; results of the runs (%s), results/s (%s)", strings.Join(results, ", "), strings.Join(rates, ", "))
		}
		if procs {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s.c.name, groupDigits(s.throughput),
				groupDigits(w3Results(s)), groupDigits(w3ResultRate(s)), rssCell(s), cpuCell(s), s.wall.Round(time.Millisecond), escapeCell(notes))
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", s.c.name, groupDigits(s.throughput),
			groupDigits(w3Results(s)), groupDigits(w3ResultRate(s)), s.wall.Round(time.Millisecond), escapeCell(notes))
	}
	var ratios, peers [][2]string
	for _, k := range []string{"window", "tumbling", "sliding", "session"} {
		ratios = append(ratios, [2]string{k, "count"})
	}
	for _, k := range []string{"count", "tumbling", "window", "sliding", "session"} {
		peers = append(peers, [2]string{k, "kstreams-" + k})
	}
	line := appendRatios("RESULT windows", sums, ratios, "", func(s summary) float64 { return s.throughput })
	line = appendRatios(line, sums, ratios, ".results", w3ResultRate)
	line = appendRatios(line, sums, peers, "", func(s summary) float64 { return s.throughput })
	line = appendProcRatios(line, sums, peers)
	fmt.Fprintf(w, "\n%s\n", line)
}

// w3Results is the median of the results written in s's runs.
func w3Results(s summary) float64 {
	return median(s.good, func(t trial) float64 { return float64(t.Results) })
}

// w3ResultRate is the median of the results/s of s's runs.
func w3ResultRate(s summary) float64 {
	return median(s.good, func(t trial) float64 { return t.ResultRate })
}

// produceW3 writes W2's input (produceW2Input, the same keys and values
// for the same seed) with event times: record i is stamped w3Epoch +
// i×w3Step, except a w3OutOfOrder share of the records, drawn from f.seed,
// which are stamped 1 ms to w3Grace earlier than that. Since a task's
// stream time is at most the latest stamp produced before, those records
// are out of order but never late. produceW3 counts the records of each
// key in each window of w3Tumbling and w3Hopping, and merges them into
// sessions of w3Session, as it goes; it finds the windows of w3Sliding
// from each key's stamps at the end. It returns each contender's
// expectation by its key, and the number of final results (distinct keys
// or windowed keys) each contender's output must hold.
func produceW3(ctx context.Context, h *harness, topic string, f *commonFlags) (map[string]expectation, map[string]int, error) {
	rng := rand.New(rand.NewPCG(f.seed, 0x77696e646f7773))
	keys := w2KeySet()
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = string(k)
	}
	step, grace := w3Step.Milliseconds(), w3Grace.Milliseconds()
	diff := w3Sliding.TimeDifference().Milliseconds()
	tumbling := make(map[window.Windowed[string]]int64)
	hopping := make(map[window.Windowed[string]]int64)
	stamps := make([][]int64, len(keys))            // each key's stamps, for the sliding windows
	sessions := make([][]w3SessionCount, len(keys)) // each key's sessions so far
	var (
		wins       []window.Window
		i          int64
		latest     int64 // the largest stamp produced so far
		outOfOrder int
		mayBeLate  int
	)
	// add counts a record of key k at ts in its windows of w. streamTime
	// bounds the stream time of the task that processes it: a window it
	// does not close takes the record whatever the partitioning.
	add := func(counts map[window.Windowed[string]]int64, w window.TimeWindows, k int, ts, streamTime int64) {
		wins = w.AppendWindowsFor(wins[:0], ts)
		for _, win := range wins {
			if w.Closed(win, streamTime) {
				mayBeLate++
				continue
			}
			counts[window.Windowed[string]{Key: names[k], Window: win}]++
		}
	}
	// merge merges a record of key k at ts into the sessions of its key,
	// following window.SessionWindows.Merge, at the bound streamTime of
	// the task's stream time. Where a session it would merge, or its own
	// session, could be closed at the task's stream time, the outcome
	// depends on partitioning: it counts as maybe late.
	merge := func(k int, ts, streamTime int64) {
		merged := w3SessionCount{Window: window.Window{Start: ts, End: ts}, n: 1}
		covered := false
		kept := sessions[k][:0]
		for _, s := range sessions[k] {
			if !w3Session.Merges(s.Window, ts) {
				kept = append(kept, s)
				continue
			}
			if w3Session.Closed(s.Window, streamTime) {
				mayBeLate++
			}
			merged.Start, merged.End, merged.n = min(merged.Start, s.Start), max(merged.End, s.End), merged.n+s.n
			covered = covered || s.Start <= ts
		}
		if !covered && w3Session.Closed(window.Window{Start: ts, End: ts}, streamTime) {
			mayBeLate++
		}
		sessions[k] = append(kept, merged)
	}
	stamp := func(k int, r *kgo.Record) {
		ts := w3Epoch.UnixMilli() + i*step
		i++
		if rng.Float64() < w3OutOfOrder {
			ts -= 1 + rng.Int64N(grace)
			outOfOrder++
		}
		latest = max(latest, ts)
		add(tumbling, w3Tumbling, k, ts, latest)
		add(hopping, w3Hopping, k, ts, latest)
		// Every sliding window that holds ts ends at ts or later, so the
		// window ending at ts is the first of them to close.
		if w3Sliding.Closed(window.Window{Start: ts - diff, End: ts}, latest) {
			mayBeLate++
		}
		stamps[k] = append(stamps[k], ts)
		merge(k, ts, latest)
		r.Timestamp = time.UnixMilli(ts)
	}
	want, err := produceW2Input(ctx, h, topic, f, stamp)
	if err != nil {
		return nil, nil, err
	}
	if mayBeLate > 0 {
		return nil, nil, fmt.Errorf("input: %d (record, window) pairs may be late, depending on partitioning, so the expected counts are unknown", mayBeLate)
	}
	sliding := w3SlidingCounts(w3Sliding, names, stamps)
	final := make(map[window.Windowed[string]]int64)
	finalOf := make(map[string][]w3SessionCount)
	single := 0
	for k, ss := range sessions {
		for _, s := range ss {
			final[window.Windowed[string]{Key: names[k], Window: s.Window}] = s.n
			if s.n == 1 {
				single++
			}
		}
		if len(ss) > 0 {
			finalOf[names[k]] = ss
		}
	}
	logf("input: event time %v to %v, %d records out of order; %d tumbling, %d hopping and %d sliding windowed keys, %d sessions (%d of one record)",
		w3Epoch.Format(time.RFC3339), time.UnixMilli(latest).UTC().Format(time.RFC3339), outOfOrder,
		len(tumbling), len(hopping), len(sliding), len(final), single)
	windowed := func(counts map[window.Windowed[string]]int64) expectation {
		return expectation{
			Inputs: int64(f.records),
			Complete: func(ctx context.Context, h *harness, j job) ([]int64, error) {
				return completeLatest(ctx, h, j, counts, decodeW3, window.Windowed[string].String)
			},
		}
	}
	exps := map[string]expectation{
		"count": {
			Inputs:   int64(f.records),
			Complete: func(ctx context.Context, h *harness, j job) ([]int64, error) { return completeW2(ctx, h, j, want) },
		},
		"tumbling": windowed(tumbling),
		"window":   windowed(hopping),
		"sliding":  windowed(sliding),
		"session": {
			Inputs: int64(f.records),
			Complete: func(ctx context.Context, h *harness, j job) ([]int64, error) {
				return completeSessions(ctx, h, j, final, finalOf)
			},
		},
	}
	finals := map[string]int{"count": len(want), "tumbling": len(tumbling), "window": len(hopping),
		"sliding": len(sliding), "session": len(final)}
	return exps, finals, nil
}

// w3SessionCount is a session of one key and the number of its records.
type w3SessionCount struct {
	window.Window
	n int64
}

// w3SlidingCounts returns the sliding windows of w over the records of
// each key k, stamped stamps[k] (which it sorts), with the number of
// records each holds, assuming no record is late for any window: by the
// definition of window.SlidingWindows, the window [t-d, t] ending at each
// record's stamp t, and the window [t+1, t+1+d] starting right after it
// when a record falls into it.
func w3SlidingCounts(w window.SlidingWindows, names []string, stamps [][]int64) map[window.Windowed[string]]int64 {
	d := w.TimeDifference().Milliseconds()
	counts := make(map[window.Windowed[string]]int64)
	for k, ts := range stamps {
		slices.Sort(ts)
		holds := func(win window.Window) int64 {
			lo, _ := slices.BinarySearch(ts, win.Start)
			hi, _ := slices.BinarySearch(ts, win.End+1)
			return int64(hi - lo)
		}
		for i, t := range ts {
			if i > 0 && ts[i-1] == t {
				continue
			}
			start := max(0, t-d) // windows never start before 0
			left := window.Window{Start: start, End: start + d}
			counts[window.Windowed[string]{Key: names[k], Window: left}] = holds(left)
			right := window.Window{Start: t + 1, End: t + 1 + d}
			if n := holds(right); n > 0 {
				counts[window.Windowed[string]{Key: names[k], Window: right}] = n
			}
		}
	}
	return counts
}

// completeSessions is the Complete of the session count. It reads a
// stopped contender's whole output and checks it as completeLatest does,
// with sessions that were merged away: the latest record of each final
// session (want) is its count, and the latest record of every other
// windowed key written is a tombstone, whose window lies within a final
// session of its key (finalOf, each key's final sessions); no count is
// above that of the final session that holds its window, and each
// windowed key stays in one partition. It returns, per partition, the
// end offset that completes the output: one past the record from which
// each windowed key shows its final state.
func completeSessions(ctx context.Context, h *harness, j job, want map[window.Windowed[string]]int64, finalOf map[string][]w3SessionCount) ([]int64, error) {
	type keyState struct {
		n         int64 // latest count, -1 after a tombstone
		partition int32
		done      bool  // n is the final state
		since     int64 // offset of the record from which done has held
	}
	seen := make(map[window.Windowed[string]]*keyState, len(want))
	var bad []string
	nbad := 0
	complain := func(format string, args ...any) {
		nbad++
		if len(bad) < 3 {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	var n, tombstones int64
	_, err := h.readOutput(ctx, j, func(r *kgo.Record) {
		n++
		k, err := w3KeyCodec.Decode(r.Key)
		if err != nil {
			complain("%s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			return
		}
		c := int64(-1)
		if r.Value == nil {
			tombstones++
		} else if c, err = w3CountCodec.Decode(r.Value); err != nil {
			complain("%s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			return
		}
		w, final := want[k]
		if !final {
			i := slices.IndexFunc(finalOf[k.Key], func(s w3SessionCount) bool { return s.Start <= k.Window.Start && k.Window.End <= s.End })
			if i < 0 {
				complain("%s/%d@%d: session %v is within no session of the input", r.Topic, r.Partition, r.Offset, k)
				return
			}
			w = finalOf[k.Key][i].n
		}
		st := seen[k]
		if st == nil {
			st = &keyState{partition: r.Partition, since: -1}
			seen[k] = st
		}
		if st.partition != r.Partition {
			complain("session %v in partitions %d and %d", k, st.partition, r.Partition)
			return
		}
		if c > w {
			complain("%s/%d@%d: session %v counted %d, but its final session holds %d records", r.Topic, r.Partition, r.Offset, k, c, w)
		}
		done := c == w && final || c < 0 && !final
		if done && !st.done {
			st.since = r.Offset
		}
		st.n, st.done = c, done
	})
	if err != nil {
		return nil, err
	}
	need := make([]int64, j.Partitions)
	for k, st := range seen {
		if _, final := want[k]; !final && !st.done {
			complain("session %v was merged away, but its latest count is %d, not a tombstone", k, st.n)
		}
	}
	for k, w := range want {
		st := seen[k]
		switch {
		case st == nil:
			complain("session %v (count %d) never written", k, w)
		case !st.done && st.n < 0:
			complain("session %v: latest record a tombstone, want count %d", k, w)
		case !st.done:
			complain("session %v: latest count %d, want %d", k, st.n, w)
		}
	}
	for _, st := range seen {
		if st.done {
			need[st.partition] = max(need[st.partition], st.since+1)
		}
	}
	if nbad > 0 {
		return nil, fmt.Errorf("%d problems, such as: %s", nbad, strings.Join(bad, "; "))
	}
	logf("output: %d records (%d tombstones of merged sessions), the latest count of each of %d sessions is right and %d merged-away sessions are deleted",
		n, tombstones, len(want), len(seen)-len(want))
	return need, nil
}

// The codecs of the windowed contenders' output.
var (
	w3KeyCodec   = codec.Windowed(codec.String())
	w3CountCodec = codec.Int64()
)

// decodeW3 reads an output record of a windowed count with the codecs
// that wrote it.
func decodeW3(r *kgo.Record) (window.Windowed[string], int64, error) {
	k, err := w3KeyCodec.Decode(r.Key)
	if err != nil {
		return k, 0, err
	}
	n, err := w3CountCodec.Decode(r.Value)
	return k, n, err
}

// w3Contenders returns W3's contenders; finals holds the number of final
// results of each (produceW3), for the notes.
func w3Contenders(every time.Duration, cacheBytes int64, finals map[string]int) []contender {
	cacheNote := kappaCacheNote(cacheBytes)
	windowed := func(w window.Windows, perRecord, store string) string {
		return fmt.Sprintf("From(String, Bytes) → GroupByKey → WindowedBy(%v) → Count(Materialized) → ToStream → To(Windowed(String), Int64); "+
			"windows per record: %s; %s (retention %v), changelog, %s", w, perRecord, store, w.Retention(), cacheNote)
	}
	timeWindows := func(w window.TimeWindows) string {
		return windowed(w, fmt.Sprint(len(w.WindowsFor(w3Epoch.UnixMilli()))), "segmented LevelDB window store")
	}
	final := func(key, what string) string {
		return fmt.Sprintf("%s final results (%s)", groupDigits(float64(finals[key])), what)
	}
	run := func(w window.Windows) func(context.Context, job) error {
		return func(ctx context.Context, j job) error { return kappaW3(ctx, j, w, every, cacheBytes) }
	}
	return []contender{
		kappaCountContender(every, cacheBytes, final("count", "keys")+"; W2's topology, ignoring the timestamps"),
		{key: "tumbling", name: "kappa tumbling 1m", run: run(w3Tumbling),
			notes: final("tumbling", "windowed keys") + "; " + timeWindows(w3Tumbling)},
		{key: "window", name: "kappa hopping 5m/1m", run: run(w3Hopping),
			notes: final("window", "windowed keys") + "; " + timeWindows(w3Hopping)},
		{key: "sliding", name: "kappa sliding 1m", run: run(w3Sliding),
			notes: final("sliding", "windowed keys") + "; " + windowed(w3Sliding, "the open windows that hold it, and those it makes exist",
				"segmented LevelDB window store and one of the records")},
		{key: "session", name: "kappa session 5m", run: run(w3Session),
			notes: final("session", "sessions") + "; merged-away sessions are written as tombstones, counted as results; " +
				windowed(w3Session, "one session", "segmented LevelDB session store")},
		kstreamsCount("kstreams-count", "kafka streams count", every, cacheBytes, "at_least_once"),
		kstreamsWindowed("kstreams-tumbling", "kafka streams tumbling 1m", "tumbling", every, cacheBytes,
			"TimeWindows.ofSizeAndGrace(1m, 1m)", slices.Concat(msArg("size-ms", w3Tumbling.Size()), msArg("advance-ms", w3Tumbling.Advance()), msArg("grace-ms", w3Tumbling.GracePeriod()))),
		kstreamsWindowed("kstreams-window", "kafka streams hopping 5m/1m", "hopping", every, cacheBytes,
			"TimeWindows.ofSizeAndGrace(5m, 1m).advanceBy(1m)", slices.Concat(msArg("size-ms", w3Hopping.Size()), msArg("advance-ms", w3Hopping.Advance()), msArg("grace-ms", w3Hopping.GracePeriod()))),
		kstreamsWindowed("kstreams-sliding", "kafka streams sliding 1m", "sliding", every, cacheBytes,
			"SlidingWindows.ofTimeDifferenceAndGrace(1m, 1m)", slices.Concat(msArg("size-ms", w3Sliding.TimeDifference()), msArg("grace-ms", w3Sliding.GracePeriod()))),
		kstreamsWindowed("kstreams-session", "kafka streams session 5m", "session", every, cacheBytes,
			"SessionWindows.ofInactivityGapAndGrace(5m, 1m)", slices.Concat(msArg("gap-ms", w3Session.Gap()), msArg("grace-ms", w3Session.GracePeriod()))),
	}
}

// kstreamsWindowed is a windowed count in Kafka Streams over the windows
// def (the jar's topology, with windowArgs) as the contender key: W3's
// Kappa topology, writing Kappa's windowed key layout.
func kstreamsWindowed(key, name, topology string, every time.Duration, cacheBytes int64, def string, windowArgs []string) contender {
	p := childParams{commitInterval: every, cacheBytes: cacheBytes}
	return contender{key: key, name: name, child: true, missing: (*peerFlags).kstreamsMissing,
		run: kstreamsRun(topology, func(job) []string { return append(commitArgs(p), windowArgs...) }, nil),
		notes: kstreamsNotes(fmt.Sprintf("stream(String, ByteArray) → groupByKey → windowedBy(%s) → count(Materialized.as(\"wcounts\")) → toStream → "+
			"to(key bytes + window start + end, 8 bytes big-endian each, as Kappa's codec.Windowed; Long); commit.interval.ms %d, statestore.cache.max.bytes %s",
			def, every.Milliseconds(), kstreamsCacheNote(cacheBytes)))}
}

// msArg is the jar's flag "--name ms" of d.
func msArg(name string, d time.Duration) []string {
	return []string{"--" + name, strconv.FormatInt(d.Milliseconds(), 10)}
}

// kappaW3 is a windowed count over w as a Kappa topology, run by
// runKappa.
func kappaW3(ctx context.Context, j job, w window.Windows, every time.Duration, cacheBytes int64) error {
	b := stream.NewBuilder()
	stream.WindowedBy(stream.From(b, j.In, codec.String(), codec.Bytes()).GroupByKey(), w).
		Count(stream.Materialized("wcounts")).
		ToStream().
		To(j.Out, stream.With(codec.Windowed(codec.String()), codec.Int64()))
	return runKappa(ctx, j, b, "bench-windows-kappa-", every, cacheBytes)
}
