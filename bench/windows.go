package main

// W3, windows: W2's count, a tumbling 1-minute windowed count and a
// hopping 5-minute/1-minute windowed count, all in Kappa, over W2's input
// with event times, 5% of them out of order.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/window"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(command{
		name:    "windows",
		summary: "W3: W2's count against tumbling 1m and hopping 5m/1m windowed counts, 5% out of order (kappa)",
		run:     runWindows,
	})
}

const (
	// w3Step is the event time between consecutive records: 500,000
	// records span 33 minutes, so most windows close well before the end.
	w3Step = 4 * time.Millisecond
	// w3Grace is the grace period of both window definitions.
	w3Grace = time.Minute
	// w3OutOfOrder is the share of records stamped earlier than the
	// current event time, by 1 ms to w3Grace.
	w3OutOfOrder = 0.05
)

// w3Epoch is the event time of the first record, a whole minute.
var w3Epoch = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// The window definitions of the windowed contenders.
var (
	w3Tumbling = window.Tumbling(time.Minute).Grace(w3Grace)
	w3Hopping  = window.Hopping(5*time.Minute, time.Minute).Grace(w3Grace)
)

func runWindows(args []string) error {
	fs := flag.NewFlagSet("windows", flag.ContinueOnError)
	var f commonFlags
	f.registerWith(fs, 500000, "count,tumbling,window", 1)
	// -profile's usual default, kappa, names no contender here.
	f.profile = "window"
	fs.Lookup("profile").DefValue = f.profile
	every := fs.Duration("commit-interval", time.Second, "commit interval of every contender (kappa's CommitInterval)")
	cache := fs.Int64("cache-bytes", -1, "kappa's record-cache budget (kappa.CacheBytes) of every contender; -1 keeps the default")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	err := f.validate()
	if *every <= 0 {
		err = errors.Join(err, fmt.Errorf("-commit-interval %v: must be positive", *every))
	}
	if err != nil {
		return err
	}
	ctx := context.Background()
	h, err := newHarness(ctx, "windows", &f)
	if err != nil {
		return err
	}
	defer h.Close()
	h.startLabel = "first input processed"

	const in = "windows-in"
	if err := h.createTopic(ctx, in, int32(f.partitions)); err != nil {
		return err
	}
	exps, err := produceW3(ctx, h, in, &f)
	if err != nil {
		return err
	}
	sums, err := h.runEach(ctx, w3Contenders(*every, *cache), func(c contender, run int) trial {
		return h.measure(ctx, c, run, in, exps[c.key])
	})
	if err != nil {
		return err
	}
	span := (time.Duration(f.records-1) * w3Step).Round(time.Second)
	title := fmt.Sprintf("W3 windows: %d records, %d partitions, %d-byte values, %d distinct keys, event time +%v per record (%v in all), %.0f%% out of order by up to the grace period %v, commit interval %v, %d run(s); records/s are input records",
		f.records, f.partitions, f.valueSize, w2Keys, w3Step, span, 100*w3OutOfOrder, w3Grace, *every, f.runs)
	printTable(os.Stdout, title, "windows", sums, [][2]string{{"window", "count"}})
	return nil
}

// produceW3 writes W2's input (produceW2Input, the same keys and values
// for the same seed) with event times: record i is stamped w3Epoch +
// i×w3Step, except a w3OutOfOrder share of the records, drawn from f.seed,
// which are stamped 1 ms to w3Grace earlier than that. Since a task's
// stream time is at most the latest stamp produced before, those records
// are out of order but never late. produceW3 counts the records of each
// key in each window of w3Tumbling and w3Hopping as it goes, and returns
// each contender's expectation by its key.
func produceW3(ctx context.Context, h *harness, topic string, f *commonFlags) (map[string]expectation, error) {
	rng := rand.New(rand.NewPCG(f.seed, 0x77696e646f7773))
	keys := w2KeySet()
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = string(k)
	}
	step, grace := w3Step.Milliseconds(), w3Grace.Milliseconds()
	tumbling := make(map[window.Windowed[string]]int64)
	hopping := make(map[window.Windowed[string]]int64)
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
		r.Timestamp = time.UnixMilli(ts)
	}
	want, err := produceW2Input(ctx, h, topic, f, stamp)
	if err != nil {
		return nil, err
	}
	if mayBeLate > 0 {
		return nil, fmt.Errorf("input: %d (record, window) pairs may be late, depending on partitioning, so the expected counts are unknown", mayBeLate)
	}
	logf("input: event time %v to %v, %d records out of order; %d tumbling and %d hopping windowed keys",
		w3Epoch.Format(time.RFC3339), time.UnixMilli(latest).UTC().Format(time.RFC3339), outOfOrder, len(tumbling), len(hopping))
	windowed := func(counts map[window.Windowed[string]]int64) expectation {
		return expectation{
			Inputs: int64(f.records),
			Complete: func(ctx context.Context, h *harness, j job) ([]int64, error) {
				return completeLatest(ctx, h, j, counts, decodeW3, window.Windowed[string].String)
			},
		}
	}
	return map[string]expectation{
		"count": {
			Inputs:   int64(f.records),
			Complete: func(ctx context.Context, h *harness, j job) ([]int64, error) { return completeW2(ctx, h, j, want) },
		},
		"tumbling": windowed(tumbling),
		"window":   windowed(hopping),
	}, nil
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

func w3Contenders(every time.Duration, cacheBytes int64) []contender {
	cacheNote := kappaCacheNote(cacheBytes)
	windowed := func(w window.TimeWindows) string {
		n := len(w.WindowsFor(w3Epoch.UnixMilli()))
		return fmt.Sprintf("From(String, Bytes) → GroupByKey → WindowedBy(%v) → Count(Materialized) → ToStream → To(Windowed(String), Int64); "+
			"windows per record: %d; segmented LevelDB window store (retention %v), changelog, %s", w, n, w.Retention(), cacheNote)
	}
	return []contender{
		kappaCountContender(every, cacheBytes, "W2's topology, ignoring the timestamps"),
		{key: "tumbling", name: "kappa tumbling 1m", run: func(ctx context.Context, j job) error { return kappaW3(ctx, j, w3Tumbling, every, cacheBytes) },
			notes: windowed(w3Tumbling)},
		{key: "window", name: "kappa hopping 5m/1m", run: func(ctx context.Context, j job) error { return kappaW3(ctx, j, w3Hopping, every, cacheBytes) },
			notes: windowed(w3Hopping)},
	}
}

// kappaW3 is a windowed count over w as a Kappa topology, run by
// runKappa.
func kappaW3(ctx context.Context, j job, w window.TimeWindows, every time.Duration, cacheBytes int64) error {
	b := stream.NewBuilder()
	stream.WindowedBy(stream.From(b, j.In, codec.String(), codec.Bytes()).GroupByKey(), w).
		Count(stream.Materialized("wcounts")).
		ToStream().
		To(j.Out, stream.With(codec.Windowed(codec.String()), codec.Int64()))
	return runKappa(ctx, j, b, "bench-windows-kappa-", every, cacheBytes)
}
