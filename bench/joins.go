package main

// W8, joins: W2's count against a stream–table join of clicks with
// articles and a stream–stream join of clicks with impressions within 10
// minutes, all in Kappa.

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/window"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(command{
		name:    "joins",
		summary: "W8: W2's count against a stream–table join with 100,000 articles and a 10-minute stream–stream join (kappa, kstreams)",
		run:     runJoins,
	})
	isolatable["joins"] = func(p childParams) []contender { return w8Contenders(p.commitInterval, p.cacheBytes, 0) }
}

// The input topics. The clicks are W2's input: the count and the
// stream–table join both read them.
const (
	w8Clicks      = "joins-clicks"
	w8Articles    = "joins-articles"
	w8Impressions = "joins-impressions"
	w8AdClicks    = "joins-impression-clicks" // the stream–stream join's clicks
)

const (
	// w8ArticleStore is the store of the articles table.
	w8ArticleStore = "articles"
	// w8ImpressionKeyLen is the length of an impression ID, as W2's keys.
	w8ImpressionKeyLen = 16
	// w8Step is the event time between consecutive impressions, W3's
	// spacing: for 500,000 clicks, 625,000 impressions span 42 minutes,
	// four times the join window.
	w8Step = 4 * time.Millisecond
	// w8Unclicked is the number of impressions never clicked, per click:
	// one impression in five is not clicked.
	w8Unclicked = 0.25
	// A click comes w8ClickMin to w8ClickMax after its impression,
	// uniformly.
	w8ClickMin = time.Second
	w8ClickMax = time.Minute
	// w8Grace is the stream–stream join's grace period. A task takes the
	// records of its two topics in timestamp order, but waits for a
	// lagging topic only 100 ms (kappa.MaxTaskIdle's default) before it
	// goes on without it, and a fetch hands it up to 1 MiB of each
	// partition, some 8,000 records or two to three minutes of event time
	// here: one topic can get that far ahead of the other. A click more
	// than the grace period behind stream time would be dropped as late,
	// so the grace covers that, with room.
	w8Grace = 5 * time.Minute
	// w8TaskIdle is how long a task of the stream–table join waits for an
	// input that has nothing fetched and is not caught up
	// (kappa.MaxTaskIdle), so that it reads all its articles, stamped
	// before every click, before its first click. With the default 100 ms,
	// on the reference VM (two cores for the broker, the app and the
	// harness), the articles fell behind in each of several runs and 1% to
	// 8% of the clicks found no row. A Kafka Streams application that
	// needs a table loaded first sets max.task.idle.ms likewise.
	w8TaskIdle = 5 * time.Second
)

// w8Window is the stream–stream join's window, from the impression side:
// an impression at t matches the clicks on it from t to t + 10 minutes.
var w8Window = window.JoinWindowsOf(0, 10*time.Minute).Grace(w8Grace)

// w8Sections are the articles' sections, one drawn uniformly per article.
var w8Sections = []string{"world", "politics", "business", "technology", "science", "health", "sport", "culture", "travel", "opinion"}

func runJoins(args []string) error {
	fs := flag.NewFlagSet("joins", flag.ContinueOnError)
	var f commonFlags
	f.registerWith(fs, 500000, "count,streamtable,streamstream", 1)
	// -profile's usual default, kappa, names no contender here.
	f.profile = "streamstream"
	fs.Lookup("profile").DefValue = f.profile
	// The stream–stream join takes about 3 minutes at 500,000 clicks on
	// the reference VM, and took 3m44s under load: close to the usual 5m.
	f.timeout = 15 * time.Minute
	fs.Lookup("timeout").DefValue = f.timeout.String()
	every := fs.Duration("commit-interval", time.Second, "commit interval of every contender (kappa's CommitInterval)")
	cache := fs.Int64("cache-bytes", -1, "kappa's record-cache budget (kappa.CacheBytes) of every contender; -1 keeps the default")
	ctx := context.Background()
	h, err := startStateful(ctx, fs, args, &f, every, "joins")
	if err != nil {
		return err
	}
	defer h.Close()

	for _, t := range []string{w8Articles, w8Clicks, w8Impressions, w8AdClicks} {
		if err := h.createTopic(ctx, t, int32(f.partitions)); err != nil {
			return err
		}
	}
	exps, err := produceW8Table(ctx, h, &f)
	if err != nil {
		return err
	}
	if exps["streamstream"], err = produceW8Streams(ctx, h, &f); err != nil {
		return err
	}
	ins := map[string]string{"count": w8Clicks, "streamtable": w8Clicks, "streamstream": w8AdClicks}
	h.params = childParams{commitInterval: *every, cacheBytes: *cache}
	sums, err := h.runEach(ctx, w8Contenders(*every, *cache, f.records), func(c contender, run int) trial {
		k := strings.TrimPrefix(c.key, "kstreams-")
		return h.measure(ctx, c, run, ins[k], exps[k])
	})
	if err != nil {
		return err
	}
	title := fmt.Sprintf("W8 joins: %d clicks (W2's input: %d-byte values, keyed by one of %d articles drawn uniformly) joined with a table of the %d articles (%d-byte values); "+
		"%d impressions (+%v each, %d never clicked) and %d clicks %v–%v after their impression joined within %v; %d partitions, commit interval %v, %d run(s); records/s are click records",
		f.records, f.valueSize, w2Keys, w2Keys, f.valueSize,
		w8ImpressionCount(f.records), w8Step, w8ImpressionCount(f.records)-f.records, f.records, w8ClickMin, w8ClickMax, w8Window, f.partitions, *every, f.runs)
	printTable(os.Stdout, title, "joins", sums, [][2]string{{"streamtable", "count"}, {"streamstream", "count"},
		{"count", "kstreams-count"}, {"streamtable", "kstreams-streamtable"}, {"streamstream", "kstreams-streamstream"}})
	return nil
}

// w8ImpressionCount is the number of impressions for clicks clicks.
func w8ImpressionCount(clicks int) int { return clicks + int(float64(clicks)*w8Unclicked) }

// w8Joined is the value both joins write: the click's value, a tab and
// what the join adds (the article's section, the impression's article).
func w8Joined(click, added []byte) []byte {
	v := make([]byte, 0, len(click)+1+len(added))
	return append(append(append(v, click...), '\t'), added...)
}

// firstField returns v up to its first tab, or all of v.
func firstField(v []byte) []byte {
	if i := bytes.IndexByte(v, '\t'); i >= 0 {
		return v[:i]
	}
	return v
}

// produceW8Table writes the stream–table join's inputs: first the
// articles, w2Keys records keyed by W2's keys (w2KeySet), each valued
// with a section of w8Sections drawn from f.seed, a tab and a random
// printable title, f.valueSize bytes in all, and stamped an hour before
// the clicks (they were published before anyone clicked them); then the
// clicks, W2's input (produceW2Input, the same keys and values for the
// same seed) with the producer's timestamps. It returns the expectations
// of the count, which reads the clicks as W2 does, and of the join, which
// writes one record per click: its key, and w8Joined of its value and its
// article's section.
func produceW8Table(ctx context.Context, h *harness, f *commonFlags) (map[string]expectation, error) {
	rng := rand.New(rand.NewPCG(f.seed, 0x61727469636c65))
	keys := w2KeySet()
	sections := make([][]byte, len(keys))
	p, err := h.newInputProducer(w8Articles)
	if err != nil {
		return nil, err
	}
	defer p.close()
	start := time.Now()
	published := start.Add(-time.Hour)
	for i, k := range keys {
		sections[i] = []byte(w8Sections[rng.IntN(len(w8Sections))])
		v := append(append(make([]byte, 0, f.valueSize), sections[i]...), '\t')
		v = appendPrintable(v, rng, f.valueSize-len(v))
		p.produce(ctx, &kgo.Record{Key: k, Value: v, Timestamp: published})
	}
	if err := p.flush(ctx); err != nil {
		return nil, err
	}
	logf("input: %d articles in %s in %v", len(keys), w8Articles, time.Since(start).Round(time.Millisecond))
	var sum uint64
	want, err := produceW2Input(ctx, h, w8Clicks, f, func(k int, r *kgo.Record) {
		sum += h.recordHash(r.Key, w8Joined(r.Value, sections[k]))
	})
	if err != nil {
		return nil, err
	}
	return map[string]expectation{
		"count": {
			Inputs:   int64(f.records),
			Complete: func(ctx context.Context, h *harness, j job) ([]int64, error) { return completeW2(ctx, h, j, want) },
		},
		"streamtable": {
			Inputs:     int64(f.records),
			MoreInputs: []string{w8Articles},
			Complete: func(ctx context.Context, h *harness, j job) ([]int64, error) {
				return completeExact(ctx, h, j, want, sum)
			},
		},
	}, nil
}

// produceW8Streams writes the stream–stream join's inputs, keyed by
// impression ID ("imp-" and the impression's index, w8ImpressionKeyLen
// bytes). Impression i is stamped w3Epoch + i×w8Step and valued with the
// key of an article drawn uniformly from W2's keys, a tab and random
// printable bytes, f.valueSize bytes in all. f.records of the
// impressions, drawn from f.seed, are clicked once each, w8ClickMin to
// w8ClickMax later; the clicks, valued with f.valueSize random printable
// bytes, are written in timestamp order after the impressions. It returns
// the join's expectation: one record per click, its key and w8Joined of
// its value and its impression's article. The throughput counts the
// clicks only, but the harness waits for both topics to be processed.
func produceW8Streams(ctx context.Context, h *harness, f *commonFlags) (expectation, error) {
	rng := rand.New(rand.NewPCG(f.seed, 0x696d7072657373))
	articles := w2KeySet()
	n, m := f.records, w8ImpressionCount(f.records)
	impKey := func(i int) []byte { return fmt.Appendf(nil, "imp-%0*d", w8ImpressionKeyLen-4, i) }
	p, err := h.newInputProducer(w8Impressions)
	if err != nil {
		return expectation{}, err
	}
	defer p.close()
	start := time.Now()
	type click struct {
		imp int
		ts  int64
	}
	clicks := make([]click, 0, n)
	article := make([]int32, m) // each impression's article
	epoch, step := w3Epoch.UnixMilli(), w8Step.Milliseconds()
	minDelay, maxDelay := w8ClickMin.Milliseconds(), w8ClickMax.Milliseconds()
	for i := range m {
		ts := epoch + int64(i)*step
		a := rng.IntN(len(articles))
		article[i] = int32(a)
		v := append(append(make([]byte, 0, f.valueSize), articles[a]...), '\t')
		v = appendPrintable(v, rng, f.valueSize-len(v))
		p.produce(ctx, &kgo.Record{Key: impKey(i), Value: v, Timestamp: time.UnixMilli(ts)})
		// Selection sampling: impression i is clicked with probability
		// (clicks left)/(impressions left), so exactly n are, every set
		// of n equally likely.
		if rng.IntN(m-i) < n-len(clicks) {
			clicks = append(clicks, click{imp: i, ts: ts + minDelay + rng.Int64N(maxDelay-minDelay+1)})
		}
	}
	slices.SortStableFunc(clicks, func(a, b click) int { return cmp.Compare(a.ts, b.ts) })
	want := make(map[string]int64, n)
	var sum uint64
	for _, c := range clicks {
		k := impKey(c.imp)
		v := appendPrintable(make([]byte, 0, f.valueSize), rng, f.valueSize)
		p.produce(ctx, &kgo.Record{Topic: w8AdClicks, Key: k, Value: v, Timestamp: time.UnixMilli(c.ts)})
		want[string(k)] = 1
		sum += h.recordHash(k, w8Joined(v, articles[article[c.imp]]))
	}
	if err := p.flush(ctx); err != nil {
		return expectation{}, err
	}
	logf("input: %d impressions in %s and %d clicks in %s in %v; event time %v to %v",
		m, w8Impressions, n, w8AdClicks, time.Since(start).Round(time.Millisecond),
		w3Epoch.Format(time.RFC3339), time.UnixMilli(clicks[len(clicks)-1].ts).UTC().Format(time.RFC3339))
	return expectation{
		Inputs:     int64(n + m),
		Counted:    int64(n),
		MoreInputs: []string{w8Impressions},
		Complete: func(ctx context.Context, h *harness, j job) ([]int64, error) {
			return completeExact(ctx, h, j, want, sum)
		},
	}, nil
}

func w8Contenders(every time.Duration, cacheBytes int64, records int) []contender {
	cacheNote := kappaCacheNote(cacheBytes)
	impressions := w8ImpressionCount(records)
	p := childParams{commitInterval: every, cacheBytes: cacheBytes}
	return []contender{
		kappaCountContender(every, cacheBytes, "W2's topology on the clicks"),
		{key: "streamtable", name: "kappa stream–table join", run: func(ctx context.Context, j job) error { return kappaStreamTable(ctx, j, every, cacheBytes) },
			notes: fmt.Sprintf("TableFrom(articles, String, Bytes, Materialized), From(clicks, String, Bytes) → JoinTable → To(String, Bytes); LevelDB store, changelog, %s, MaxTaskIdle(%v); "+
				"each task reads its articles (stamped before every click) before its clicks; timed from the moment it has processed more records than the %d articles", cacheNote, w8TaskIdle, w2Keys)},
		{key: "streamstream", name: "kappa stream–stream join", run: func(ctx context.Context, j job) error { return kappaStreamStream(ctx, j, every, cacheBytes) },
			notes: fmt.Sprintf("From(impressions, String, Bytes), From(clicks, String, Bytes) → JoinStreams(%v) → To(String, Bytes); two segmented LevelDB record stores (retention %v, records also in memory within the cache budget), changelogs, %s; "+
				"timed from its first input; it also processes the %d impressions, which records/s does not count (all inputs/s = %.2f × records/s)",
				w8Window, w8Window.Retention(), cacheNote, impressions, float64(records+impressions)/float64(records))},
		kstreamsCount("kstreams-count", "kafka streams count", every, cacheBytes, "at_least_once"),
		{key: "kstreams-streamtable", name: "kafka streams stream–table join", child: true, missing: (*peerFlags).kstreamsMissing,
			run: kstreamsRun("streamtable", func(job) []string {
				return append(commitArgs(p), "--articles", w8Articles, "--max-task-idle-ms", strconv.FormatInt(w8TaskIdle.Milliseconds(), 10))
			}, func(n int64) int64 { return max(0, n-w2Keys) }),
			notes: kstreamsNotes(fmt.Sprintf("table(articles, Materialized.as(\"articles\")), stream(clicks).join(table, Joined.with(String, ByteArray, ByteArray)) → to; "+
				"max.task.idle.ms %d (Kappa's MaxTaskIdle), commit.interval.ms %d, statestore.cache.max.bytes %s; timed as Kappa's, from the moment it has processed more records (process-total) than the %d articles",
				w8TaskIdle.Milliseconds(), every.Milliseconds(), kstreamsCacheNote(cacheBytes), w2Keys))},
		{key: "kstreams-streamstream", name: "kafka streams stream–stream join", child: true, missing: (*peerFlags).kstreamsMissing,
			run: kstreamsRun("streamstream", func(job) []string {
				return slices.Concat(commitArgs(p), []string{"--impressions", w8Impressions, "--max-task-idle-ms", "100"},
					msArg("before-ms", w8Window.Before()), msArg("after-ms", w8Window.After()), msArg("grace-ms", w8Window.GracePeriod()))
			}, nil),
			notes: kstreamsNotes(fmt.Sprintf("stream(impressions).join(stream(clicks), JoinWindows.ofTimeDifferenceAndGrace(%v, %v).before(%v), StreamJoined.with(String, ByteArray, ByteArray)) → to; "+
				"max.task.idle.ms 100 (Kappa's default MaxTaskIdle; Kafka Streams' default is 0), commit.interval.ms %d, statestore.cache.max.bytes %s; it also processes the impressions",
				w8Window.After(), w8Window.GracePeriod(), w8Window.Before(), every.Milliseconds(), kstreamsCacheNote(cacheBytes)))},
	}
}

// kappaStreamTable is the stream–table join as a Kappa topology, with
// kappa.MaxTaskIdle(w8TaskIdle), so that each task reads all its articles
// (stamped before every click) before its first click. It reports as
// processed input the records it has processed beyond the w2Keys
// articles: so the harness times it from the moment it has processed
// more records than there are articles, after which it processes exactly
// as many records as there are clicks. Those are not all clicks: when the
// first tasks start on their clicks, the others are still reading their
// articles (about 15% of them, measured), and as many clicks are
// processed before that moment as articles after it. A Peek counting the
// clicks would time from the first click, but its counter, shared by the
// tasks, cost a fifth of the throughput.
func kappaStreamTable(ctx context.Context, j job, every time.Duration, cacheBytes int64) error {
	b := stream.NewBuilder()
	articles := stream.TableFrom(b, w8Articles, codec.String(), codec.Bytes(), stream.Materialized(w8ArticleStore))
	clicks := stream.From(b, j.In, codec.String(), codec.Bytes())
	stream.JoinTable(clicks, articles, func(_ string, click, article []byte) []byte { return w8Joined(click, firstField(article)) }).
		To(j.Out, stream.With(codec.String(), codec.Bytes()))
	dir, err := os.MkdirTemp("", "bench-joins-kappa-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	app, err := newKappaApp(j, b, dir, every, cacheBytes, kappa.MaxTaskIdle(w8TaskIdle))
	if err != nil {
		return err
	}
	j.Progress.Report(func() int64 { return max(0, app.Processed()-w2Keys) })
	return app.Run(ctx)
}

// kappaStreamStream is the stream–stream join as a Kappa topology, run by
// runKappa.
func kappaStreamStream(ctx context.Context, j job, every time.Duration, cacheBytes int64) error {
	b := stream.NewBuilder()
	impressions := stream.From(b, w8Impressions, codec.String(), codec.Bytes())
	clicks := stream.From(b, j.In, codec.String(), codec.Bytes())
	stream.JoinStreams(impressions, clicks, w8Window, func(_ string, impression, click []byte) []byte { return w8Joined(click, firstField(impression)) }).
		To(j.Out, stream.With(codec.String(), codec.Bytes()))
	return runKappa(ctx, j, b, "bench-joins-kappa-", every, cacheBytes)
}
