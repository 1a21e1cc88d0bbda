package main

// W2, count: count the records of each key, and write each key's count
// (8 bytes big-endian, Kafka's LongSerializer layout) as it changes.

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/IBM/sarama"
	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/stream"
	"github.com/lovoo/goka"
	gcodec "github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(command{
		name:    "count",
		summary: "W2: count per key over 100,000 keys, write each changed count (raw franz-go, kappa, goka, kstreams, quix)",
		run:     runCount,
	})
	isolatable["count"] = func(p childParams) []contender { return w2Contenders(p.commitInterval, p.cacheBytes) }
}

const (
	w2Keys   = 100000 // distinct keys
	w2KeyLen = 16     // bytes per key
)

func runCount(args []string) error {
	fs := flag.NewFlagSet("count", flag.ContinueOnError)
	var f commonFlags
	f.registerWith(fs, 500000, "raw,kappa,goka", 1)
	every := fs.Duration("commit-interval", time.Second, "commit interval of every contender (kappa's CommitInterval, the raw loop's, goka's sarama auto-commit)")
	cache := fs.Int64("cache-bytes", -1, "kappa's record-cache budget (kappa.CacheBytes); -1 keeps the default")
	f.lat.register(fs)
	ctx := context.Background()
	h, err := startStateful(ctx, fs, args, &f, every, "count")
	if err != nil {
		return err
	}
	defer h.Close()

	ratios := [][2]string{{"kappa", "raw"}, {"kappa", "goka"}, {"kappa-on", "kappa-off"}, {"kappa", "kstreams"}, {"kappa", "quix"}}
	if f.lat.rate > 0 {
		h.params = childParams{commitInterval: *every, cacheBytes: *cache}
		title := fmt.Sprintf("W2 count, end-to-end latency: %d input records/s, %v measured after %v of warm-up, %d partitions, %d-byte values, %d distinct keys, commit interval %v, %d run(s)",
			f.lat.rate, f.lat.duration, f.lat.warm, f.partitions, f.valueSize, w2Keys, *every, f.runs)
		return h.runPaced(ctx, w2Contenders(*every, *cache), func() tracker { return newW2Tracker(&f) }, title, ratios)
	}

	const in = "count-in"
	if err := h.createTopic(ctx, in, int32(f.partitions)); err != nil {
		return err
	}
	exp, err := produceW2(ctx, h, in, &f)
	if err != nil {
		return err
	}
	h.params = childParams{commitInterval: *every, cacheBytes: *cache}
	sums, err := h.runAll(ctx, w2Contenders(*every, *cache), in, exp)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("W2 count: %d records, %d partitions, %d-byte values, %d distinct keys, commit interval %v, %d run(s); records/s are input records",
		f.records, f.partitions, f.valueSize, w2Keys, *every, f.runs)
	printTable(os.Stdout, title, "count", sums, ratios)
	return nil
}

// w2Tracker makes W2's input for a paced run (latency.go), as
// produceW2Input does, and matches each output count to the inputs it
// counts: the output (k, c) shows the effect of the first c records of
// key k. A key's records are in one partition, produced in order, so its
// c-th record sent is its c-th counted.
type w2Tracker struct {
	eff   *effects
	rng   *rand.Rand
	keys  [][]byte
	index map[string]int
	size  int
	sent  [][]int // by key: the indices of its input records, in order
	shown []int   // by key: how many of them an output count has shown
}

func newW2Tracker(f *commonFlags) *w2Tracker {
	t := &w2Tracker{eff: newEffects(), rng: rand.New(rand.NewPCG(f.seed, 0x636f756e74)), keys: w2KeySet(), size: f.valueSize}
	t.index = make(map[string]int, len(t.keys))
	for i, k := range t.keys {
		t.index[string(k)] = i
	}
	t.sent = make([][]int, len(t.keys))
	t.shown = make([]int, len(t.keys))
	return t
}

func (t *w2Tracker) effects() *effects { return t.eff }

func (t *w2Tracker) input(at time.Time) *kgo.Record {
	k := t.rng.IntN(len(t.keys))
	r := &kgo.Record{Key: t.keys[k], Value: appendPrintable(make([]byte, 0, t.size), t.rng, t.size)}
	t.eff.mu.Lock()
	defer t.eff.mu.Unlock()
	t.sent[k] = append(t.sent[k], t.eff.add(at, true))
	return r
}

func (t *w2Tracker) output(rs []*kgo.Record, at time.Time) {
	t.eff.mu.Lock()
	defer t.eff.mu.Unlock()
	t.eff.output(at)
	for _, r := range rs {
		key, c, err := decodeW2(r)
		k, ok := t.index[key]
		switch {
		case err != nil:
			t.eff.complain("%s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
		case !ok:
			t.eff.complain("%s/%d@%d: key %q is not in the input", r.Topic, r.Partition, r.Offset, key)
		case c > int64(len(t.sent[k])):
			t.eff.complain("%s/%d@%d: key %q counted %d, but %d of its records were sent", r.Topic, r.Partition, r.Offset, key, c, len(t.sent[k]))
		case c <= int64(t.shown[k]):
			t.eff.dups++
		default:
			for _, i := range t.sent[k][t.shown[k]:c] {
				t.eff.saw(i, at)
			}
			t.shown[k] = int(c)
		}
	}
}

// produceW2 writes the input (produceW2Input, with the producer's
// timestamps) and returns what a correct contender writes.
func produceW2(ctx context.Context, h *harness, topic string, f *commonFlags) (expectation, error) {
	want, err := produceW2Input(ctx, h, topic, f, nil)
	if err != nil {
		return expectation{}, err
	}
	return expectation{
		Inputs:   int64(f.records),
		Complete: func(ctx context.Context, h *harness, j job) ([]int64, error) { return completeW2(ctx, h, j, want) },
	}, nil
}

// w2KeySet returns W2's keys: w2Keys keys of w2KeyLen bytes, "key-" and
// the key's index.
func w2KeySet() [][]byte {
	keys := make([][]byte, w2Keys)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%0*d", w2KeyLen-4, i)
	}
	return keys
}

// produceW2Input writes W2's input: f.records records, each with one of
// the keys of w2KeySet, picked uniformly from f.seed, and f.valueSize
// random printable bytes. each, when not nil, is called once per record,
// in order, with the index of its key and the record before it is
// produced: it may set the record's timestamp, and read its key and value
// (it must not change them); it does not change the keys and values
// drawn. Records whose timestamp is left zero are stamped by the
// producer. produceW2Input returns the number of records of each key that
// occurs, for the check of the output.
func produceW2Input(ctx context.Context, h *harness, topic string, f *commonFlags, each func(key int, r *kgo.Record)) (map[string]int64, error) {
	rng := rand.New(rand.NewPCG(f.seed, 0x636f756e74))
	keys := w2KeySet()
	counts := make([]int64, w2Keys)
	p, err := h.newInputProducer(topic)
	if err != nil {
		return nil, err
	}
	defer p.close()
	start := time.Now()
	for i := range f.records {
		k := rng.IntN(len(keys))
		counts[k]++
		r := &kgo.Record{Key: keys[k], Value: appendPrintable(make([]byte, 0, f.valueSize), rng, f.valueSize)}
		if each != nil {
			each(k, r)
		}
		p.produce(ctx, r)
		if (i+1)%100000 == 0 {
			logf("input: %d/%d records produced", i+1, f.records)
		}
	}
	if err := p.flush(ctx); err != nil {
		return nil, err
	}
	want := make(map[string]int64, w2Keys)
	for i, n := range counts {
		if n > 0 {
			want[string(keys[i])] = n
		}
	}
	logf("input: %d records in %s in %v; %d of %d keys occur", f.records, topic, time.Since(start).Round(time.Millisecond), len(want), w2Keys)
	return want, nil
}

// appendPrintable appends n random printable ASCII bytes drawn from rng
// to dst.
func appendPrintable(dst []byte, rng *rand.Rand, n int) []byte {
	for range n {
		dst = append(dst, byte(' '+rng.IntN(95)))
	}
	return dst
}

// completeW2 reads a stopped contender's whole output and checks that the
// latest count of every key is its true count in want (completeLatest).
func completeW2(ctx context.Context, h *harness, j job, want map[string]int64) ([]int64, error) {
	return completeLatest(ctx, h, j, want, decodeW2, strconv.Quote)
}

// decodeW2 reads an output record of W2: the key, and its count in 8
// bytes big-endian.
func decodeW2(r *kgo.Record) (string, int64, error) {
	if len(r.Value) != 8 {
		return "", 0, fmt.Errorf("value of %d bytes, want 8", len(r.Value))
	}
	return string(r.Key), int64(binary.BigEndian.Uint64(r.Value)), nil
}

func w2Contenders(every time.Duration, cacheBytes int64) []contender {
	return []contender{
		{key: "raw", name: "raw franz-go", run: func(ctx context.Context, j job) error { return rawW2(ctx, j, every) },
			notes: "one PollRecords(10000) loop, partitions on GOMAXPROCS goroutines, map[string]*count per partition in memory (no store, no changelog); " +
				"at each commit and on stop: Produce the changed counts, Flush, commit"},
		{key: "kappa", name: "kappa", run: func(ctx context.Context, j job) error { return kappaW2(ctx, j, every, cacheBytes) },
			notes: kappaW2Notes(cacheBytes)},
		{key: "kappa-off", name: "kappa, metrics off", run: func(ctx context.Context, j job) error { return kappaW2With(ctx, j, every, cacheBytes, metricsOff) },
			notes: metricsOffNotes},
		{key: "kappa-on", name: "kappa, metrics scraped", run: func(ctx context.Context, j job) error { return kappaW2With(ctx, j, every, cacheBytes, metricsScraped) },
			notes: metricsScrapedNotes},
		{key: "goka", name: "goka", run: func(ctx context.Context, j job) error { return gokaW2(ctx, j, every) },
			notes: "goka " + gokaVersion + ", sarama " + saramaVersion + " (protocol V2_1_0_0); group table (Persist) in goka's default LevelDB storage, Emit per record; no compression"},
		kstreamsCount("kstreams", "kafka streams", every, cacheBytes, "at_least_once"),
		{key: "quix", name: "quix streams", run: quixRun("count", every.Seconds()), child: true,
			missing: (*peerFlags).quixMissing,
			notes: fmt.Sprintf("Quix Streams 3 (confluent-kafka): dataframe(bytes) → apply(count, stateful) → to_topic, every count written (Quix has no record cache); "+
				"RocksDB state with its changelog; commit_interval %v; in a child process", every)},
	}
}

// kstreamsCount is W2's count in Kafka Streams as the contender key, under
// the processing guarantee g (processing.guarantee), committing every
// every with Kappa's cache budget.
func kstreamsCount(key, name string, every time.Duration, cacheBytes int64, g string) contender {
	p := childParams{commitInterval: every, cacheBytes: cacheBytes}
	return contender{key: key, name: name, child: true, missing: (*peerFlags).kstreamsMissing,
		run: kstreamsRun("count", func(job) []string { return append(commitArgs(p), "--guarantee", g) }, nil),
		notes: kstreamsNotes(fmt.Sprintf("stream(String, ByteArray) → groupByKey → count(Materialized.as(\"counts\")) → toStream → to(String, Long); "+
			"processing.guarantee %s, commit.interval.ms %d, statestore.cache.max.bytes %s", g, every.Milliseconds(), kstreamsCacheNote(cacheBytes)))}
}

// kstreamsCacheNote is the cache budget commitArgs gives, for the notes.
func kstreamsCacheNote(cacheBytes int64) string {
	if cacheBytes < 0 {
		return "32 MiB (Kappa's default)"
	}
	return fmt.Sprint(cacheBytes)
}

// count is one key's count in the raw loop.
type count struct {
	key   string
	n     int64
	dirty bool // changed since the last commit
}

// countPartition is the raw loop's state of one input partition.
type countPartition struct {
	counts  map[string]*count
	changed []*count
}

// rawW2 is the hand-written count: counts in memory per partition, the
// changed ones written out at each commit, then the input offsets
// committed. It keeps no local store and no changelog: what it counted is
// lost on a crash, which is the point of comparison, not a design to copy.
func rawW2(ctx context.Context, j job, every time.Duration) error {
	parts := make([]countPartition, j.Partitions)
	for i := range parts {
		parts[i].counts = make(map[string]*count)
	}
	var processed atomic.Int64
	j.Progress.Report(processed.Load)
	var perr atomic.Pointer[error]
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			perr.CompareAndSwap(nil, &err)
		}
	}
	// commit writes every changed count, waits until all are
	// acknowledged, then commits every polled offset.
	commit := func(ctx context.Context, cl *kgo.Client) error {
		for i := range parts {
			p := &parts[i]
			vals := make([]byte, 8*len(p.changed))
			for k, c := range p.changed {
				v := binary.BigEndian.AppendUint64(vals[8*k:8*k], uint64(c.n))
				// The key string is never modified: share its bytes.
				cl.Produce(context.Background(), &kgo.Record{Key: unsafe.Slice(unsafe.StringData(c.key), len(c.key)), Value: v}, promise)
				c.dirty = false
			}
			clear(p.changed)
			p.changed = p.changed[:0]
		}
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		if p := perr.Load(); p != nil {
			return *p
		}
		return cl.CommitUncommittedOffsets(ctx)
	}
	var revokeErr atomic.Pointer[error]
	cl, err := rawGroupClient(j, commit, &revokeErr)
	if err != nil {
		return err
	}
	defer cl.Close()
	workers := runtime.GOMAXPROCS(0)
	lastCommit := time.Now()
	for {
		pctx, cancel := context.WithDeadline(ctx, lastCommit.Add(every))
		fs := cl.PollRecords(pctx, 10000)
		cancel()
		if fs.IsClientClosed() {
			return errors.New("client closed")
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				ferr = err
			}
		})
		if ferr != nil {
			cl.AllowRebalance()
			return ferr
		}
		// Records returned are counted even when ctx is done: their
		// offsets are committed below.
		processParallel(fs, workers, func(fp kgo.FetchTopicPartition) {
			p := &parts[fp.Partition]
			for _, r := range fp.Records {
				c := p.counts[string(r.Key)]
				if c == nil {
					c = &count{key: string(r.Key)}
					p.counts[c.key] = c
				}
				c.n++
				if !c.dirty {
					c.dirty = true
					p.changed = append(p.changed, c)
				}
			}
			processed.Add(int64(len(fp.Records)))
		})
		if ctx.Err() != nil {
			break
		}
		if time.Since(lastCommit) >= every {
			// A commit that has begun finishes even if ctx ends meanwhile.
			if err := commit(context.WithoutCancel(ctx), cl); err != nil {
				cl.AllowRebalance()
				return err
			}
			lastCommit = time.Now()
		}
		cl.AllowRebalance()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := commit(sctx, cl); err != nil {
		return err
	}
	cl.AllowRebalance()
	if p := revokeErr.Load(); p != nil {
		return *p
	}
	return nil
}

// kappaCacheNote describes Kappa's record-cache budget for the table's
// notes: cacheBytes, or the default when it is negative.
func kappaCacheNote(cacheBytes int64) string {
	if cacheBytes >= 0 {
		return fmt.Sprintf("cache budget %d bytes (-cache-bytes)", cacheBytes)
	}
	return "cache budget 32 MiB per instance (default)"
}

// kappaW2Notes describes kappaW2 for the table's notes.
func kappaW2Notes(cacheBytes int64) string {
	return "From(String, Bytes) → GroupByKey → Count(Materialized) → ToStream → To(String, Int64); LevelDB store, changelog, " + kappaCacheNote(cacheBytes)
}

// kappaCountContender is kappaW2 as the contender "count", the reference
// of a workload that compares other Kappa topologies with W2's count on
// the same input. what says what it is there, for the notes.
func kappaCountContender(every time.Duration, cacheBytes int64, what string) contender {
	return contender{key: "count", name: "kappa count", run: func(ctx context.Context, j job) error { return kappaW2(ctx, j, every, cacheBytes) },
		notes: what + ": " + kappaW2Notes(cacheBytes)}
}

// kappaW2 is W2 as a Kappa topology, run by runKappa.
func kappaW2(ctx context.Context, j job, every time.Duration, cacheBytes int64) error {
	return kappaW2With(ctx, j, every, cacheBytes, metricsDefault)
}

// kappaW2With is kappaW2 with its metrics kept as m says.
func kappaW2With(ctx context.Context, j job, every time.Duration, cacheBytes int64, m metricsMode) error {
	b := stream.NewBuilder()
	stream.From(b, j.In, codec.String(), codec.Bytes()).
		GroupByKey().
		Count(stream.Materialized("counts")).
		ToStream().
		To(j.Out, stream.With(codec.String(), codec.Int64()))
	return runKappaWith(ctx, j, b, "bench-count-kappa-", every, cacheBytes, m)
}

// runKappa builds b's topology and runs it as j's application until ctx
// is done, with default options but the commit interval and, when
// cacheBytes is not negative, the record-cache budget, in a fresh state
// directory named from dirPattern (as os.MkdirTemp's pattern).
func runKappa(ctx context.Context, j job, b *stream.Builder, dirPattern string, every time.Duration, cacheBytes int64) error {
	return runKappaWith(ctx, j, b, dirPattern, every, cacheBytes, metricsDefault)
}

// runKappaWith is runKappa with the app's metrics kept as m says.
func runKappaWith(ctx context.Context, j job, b *stream.Builder, dirPattern string, every time.Duration, cacheBytes int64, m metricsMode) error {
	dir, err := os.MkdirTemp("", dirPattern)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mopts, reg := m.opts()
	app, err := newKappaApp(j, b, dir, every, cacheBytes, mopts...)
	if err != nil {
		return err
	}
	j.Progress.Report(app.Processed)
	return m.run(ctx, app, reg)
}

// newKappaApp builds b's topology into an app of j's application ID with
// default options but the commit interval, the state directory dir,
// when cacheBytes is not negative the record-cache budget, and more.
func newKappaApp(j job, b *stream.Builder, dir string, every time.Duration, cacheBytes int64, more ...kappa.Opt) (*kappa.App, error) {
	topo, err := b.Build()
	if err != nil {
		return nil, err
	}
	opts := []kappa.Opt{kappa.AppID(j.Group), kappa.Brokers(j.Brokers...), kappa.HandleSignals(false),
		kappa.StateDir(dir), kappa.CommitInterval(every)}
	if j.Replicas > 0 {
		opts = append(opts, kappa.ReplicationFactor(j.Replicas))
	}
	if cacheBytes >= 0 {
		opts = append(opts, kappa.CacheBytes(cacheBytes))
	}
	return kappa.New(topo, append(opts, more...)...)
}

// int64Codec is goka's codec for int64 as 8 big-endian bytes, the layout of
// Kafka's LongSerializer and of codec.Int64. (goka's own codec.Int64
// writes decimal text.)
type int64Codec struct{}

func (int64Codec) Encode(v any) ([]byte, error) {
	n, ok := v.(int64)
	if !ok {
		return nil, fmt.Errorf("int64Codec: %T is not an int64", v)
	}
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(n)), nil
}

func (int64Codec) Decode(b []byte) (any, error) {
	if len(b) != 8 {
		return nil, fmt.Errorf("int64Codec: %d bytes, want 8", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// gokaW2 is W2 as a goka processor: the count in its group table, each new
// count emitted to the output.
func gokaW2(ctx context.Context, j job, every time.Duration) error {
	dir, err := os.MkdirTemp("", "bench-count-goka-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var processed atomic.Int64
	j.Progress.Report(processed.Load)
	out := goka.Stream(j.Out)
	g := goka.DefineGroup(goka.Group(j.Group),
		goka.Input(goka.Stream(j.In), new(gcodec.Bytes), func(gctx goka.Context, _ any) {
			n := int64(1)
			if v := gctx.Value(); v != nil {
				n += v.(int64)
			}
			gctx.SetValue(n)
			gctx.Emit(out, gctx.Key(), n)
			processed.Add(1)
		}),
		goka.Persist(int64Codec{}),
		goka.Output(out, int64Codec{}),
	)
	cfg := func() *sarama.Config {
		c := gokaConfig()
		c.Consumer.Offsets.AutoCommit.Interval = every
		return c
	}
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication = 1
	tm.Stream.Replication = 1 // goka creates its group table topic; the harness the others
	p, err := goka.NewProcessor(j.Brokers, g,
		goka.WithClientID(j.Group),
		goka.WithLogger(log.New(os.Stderr, "goka: ", log.Lmicroseconds)),
		goka.WithStorageBuilder(storage.DefaultBuilder(dir)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cfg(), tm)),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(cfg())),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(cfg())),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(cfg())),
	)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}
