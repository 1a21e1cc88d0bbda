package main

// W1, stateless: filter about 10% of the records out and upper-case the
// values of the rest, keeping the key.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/stream"
	"github.com/lovoo/goka"
	gcodec "github.com/lovoo/goka/codec"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(command{
		name:    "stateless",
		summary: "W1: filter ~10% out, upper-case the values (raw franz-go, kappa, goka, kstreams, quix)",
		run:     runStateless,
	})
	isolatable["stateless"] = func(childParams) []contender { return w1Contenders() }
}

const (
	w1Keys   = 10000 // distinct keys
	w1KeyLen = 16    // bytes per key
)

// keepW1 is W1's filter: it drops a value whose first byte is a multiple of
// 10, which is 9 of the 95 printable ASCII bytes (about 9.5% of records).
func keepW1(v []byte) bool { return len(v) == 0 || v[0]%10 != 0 }

// mapW1 is W1's map: the value in upper case, in a new slice.
func mapW1(v []byte) []byte { return bytes.ToUpper(v) }

func runStateless(args []string) error {
	fs := flag.NewFlagSet("stateless", flag.ContinueOnError)
	var f commonFlags
	f.register(fs, 500000)
	f.lat.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	err := f.validate()
	if f.lat.rate > 0 && f.valueSize < 1+w1IndexDigits {
		err = errors.Join(err, fmt.Errorf("-value-size %d: with -rate, at least %d, for the record's index", f.valueSize, 1+w1IndexDigits))
	}
	if err != nil {
		return err
	}
	ctx := context.Background()
	h, err := newHarness(ctx, "stateless", &f)
	if err != nil {
		return err
	}
	defer h.Close()

	ratios := [][2]string{{"kappa", "raw"}, {"kappa", "goka"}, {"kappa-on", "kappa-off"}, {"kappa", "kstreams"}, {"kappa", "quix"}, {"kappa-linger5", "quix"}}
	if f.lat.rate > 0 {
		title := fmt.Sprintf("W1 stateless, end-to-end latency: %d input records/s (about 90%% pass the filter), %v measured after %v of warm-up, %d partitions, %d-byte values, %d distinct keys, %d run(s)",
			f.lat.rate, f.lat.duration, f.lat.warm, f.partitions, f.valueSize, w1Keys, f.runs)
		return h.runPaced(ctx, w1Contenders(), func() tracker { return newW1Tracker(h, &f) }, title, ratios)
	}

	const in = "stateless-in"
	if err := h.createTopic(ctx, in, int32(f.partitions)); err != nil {
		return err
	}
	exp, err := produceW1(ctx, h, in, &f)
	if err != nil {
		return err
	}
	sums, err := h.runAll(ctx, w1Contenders(), in, exp)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("W1 stateless: %d records (%d pass the filter), %d partitions, %d-byte values, %d distinct keys, %d run(s)",
		f.records, exp.Count, f.partitions, f.valueSize, w1Keys, f.runs)
	printTable(os.Stdout, title, "stateless", sums, ratios)
	return nil
}

// w1IndexDigits is how many decimal digits of a paced W1 input value,
// after its first byte, hold the record's index: digits, which
// upper-casing keeps, so that the output value tells which input it is.
const w1IndexDigits = 10

// w1Tracker makes W1's input for a paced run (latency.go), as produceW1
// does but for the index in each value, and matches each output record to
// its input by that index.
type w1Tracker struct {
	h    *harness
	eff  *effects
	rng  *rand.Rand
	keys [][]byte
	size int
	want []uint64 // by input index: recordHash of the output, for the inputs that pass
}

func newW1Tracker(h *harness, f *commonFlags) *w1Tracker {
	t := &w1Tracker{h: h, eff: newEffects(), rng: rand.New(rand.NewPCG(f.seed, 0x6b61707061)), size: f.valueSize}
	t.keys = make([][]byte, w1Keys)
	for i := range t.keys {
		t.keys[i] = fmt.Appendf(nil, "key-%0*d", w1KeyLen-4, i)
	}
	return t
}

func (t *w1Tracker) effects() *effects { return t.eff }

func (t *w1Tracker) input(at time.Time) *kgo.Record {
	k := t.keys[t.rng.IntN(len(t.keys))]
	v := make([]byte, t.size)
	v[0] = byte(' ' + t.rng.IntN(95))
	for j := 1 + w1IndexDigits; j < len(v); j++ {
		v[j] = byte(' ' + t.rng.IntN(95))
	}
	keep := keepW1(v)
	t.eff.mu.Lock()
	defer t.eff.mu.Unlock()
	i := t.eff.add(at, keep)
	copy(v[1:1+w1IndexDigits], fmt.Appendf(nil, "%0*d", w1IndexDigits, i))
	var want uint64
	if keep {
		want = t.h.recordHash(k, mapW1(v))
	}
	t.want = append(t.want, want)
	return &kgo.Record{Key: k, Value: v}
}

func (t *w1Tracker) output(rs []*kgo.Record, at time.Time) {
	t.eff.mu.Lock()
	defer t.eff.mu.Unlock()
	t.eff.output(at)
	for _, r := range rs {
		if len(r.Value) < 1+w1IndexDigits {
			t.eff.complain("%s/%d@%d: value of %d bytes, want %d", r.Topic, r.Partition, r.Offset, len(r.Value), t.size)
			continue
		}
		i, err := strconv.Atoi(string(r.Value[1 : 1+w1IndexDigits]))
		switch {
		case err != nil || i < 0 || i >= len(t.want):
			t.eff.complain("%s/%d@%d: value %.20q... names no input record sent", r.Topic, r.Partition, r.Offset, r.Value)
		case !t.eff.expected[i]:
			t.eff.complain("%s/%d@%d: input %d should have been filtered out", r.Topic, r.Partition, r.Offset, i)
		case t.h.recordHash(r.Key, r.Value) != t.want[i]:
			t.eff.complain("%s/%d@%d: key %q and value %.20q... are not input %d's, mapped", r.Topic, r.Partition, r.Offset, r.Key, r.Value, i)
		case !t.eff.saw(i, at):
			t.eff.dups++
		}
	}
}

// produceW1 writes the input: f.records records, each with one of w1Keys
// keys of w1KeyLen bytes and f.valueSize random printable bytes, from
// f.seed. It returns what a correct contender writes.
func produceW1(ctx context.Context, h *harness, topic string, f *commonFlags) (expectation, error) {
	rng := rand.New(rand.NewPCG(f.seed, 0x6b61707061))
	keys := make([][]byte, w1Keys)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%0*d", w1KeyLen-4, i)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.addrs...), kgo.ClientID("bench-input"),
		kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return expectation{}, err
	}
	defer cl.Close()
	var perr atomic.Pointer[error]
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			perr.CompareAndSwap(nil, &err)
		}
	}
	start := time.Now()
	exp := expectation{Check: checkW1(f.valueSize)}
	for i := range f.records {
		k := keys[rng.IntN(len(keys))]
		v := make([]byte, f.valueSize)
		for j := range v {
			v[j] = byte(' ' + rng.IntN(95))
		}
		if keepW1(v) {
			exp.Count++
			exp.Sum += h.recordHash(k, mapW1(v))
		}
		cl.Produce(ctx, &kgo.Record{Key: k, Value: v}, promise)
		if (i+1)%100000 == 0 {
			logf("input: %d/%d records produced", i+1, f.records)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return expectation{}, err
	}
	if p := perr.Load(); p != nil {
		return expectation{}, fmt.Errorf("producing the input: %w", *p)
	}
	logf("input: %d records in %s in %v; %d pass the filter", f.records, topic, time.Since(start).Round(time.Millisecond), exp.Count)
	return exp, nil
}

// checkW1 explains what is wrong with one output record, cheaply. (Whether
// the right records were filtered out is the checksum's job: upper-casing
// changes the first byte.)
func checkW1(valueSize int) func(key, value []byte) error {
	return func(key, value []byte) error {
		switch {
		case len(key) != w1KeyLen:
			return fmt.Errorf("key %q: want %d bytes", key, w1KeyLen)
		case len(value) != valueSize:
			return fmt.Errorf("value of %d bytes, want %d", len(value), valueSize)
		case bytes.IndexFunc(value, func(r rune) bool { return 'a' <= r && r <= 'z' }) >= 0:
			return fmt.Errorf("value %.20q... is not upper case", value)
		}
		return nil
	}
}

func w1Contenders() []contender {
	return []contender{
		{key: "raw", name: "raw franz-go", run: rawW1,
			notes: "one PollRecords(10000) loop, async Produce (linger 10ms default), no compression, Flush then commit every 30s and on stop"},
		{key: "raw1", name: "raw1", run: func(ctx context.Context, j job) error { return rawW1Workers(ctx, j, 1) }},
		{key: "kappa", name: "kappa", run: kappaW1,
			notes: "From(codec.String, codec.Bytes) → Filter → MapValues → To; default options"},
		{key: "kappa-off", name: "kappa, metrics off", run: func(ctx context.Context, j job) error { return kappaW1With(ctx, j, metricsOff) },
			notes: metricsOffNotes},
		{key: "kappa-on", name: "kappa, metrics scraped", run: func(ctx context.Context, j job) error { return kappaW1With(ctx, j, metricsScraped) },
			notes: metricsScrapedNotes},
		{key: "kappa-linger5", name: "kappa, 5ms linger", run: func(ctx context.Context, j job) error {
			return kappaW1With(ctx, j, metricsDefault, kappa.ClientOpts(kgo.ProducerLinger(5*time.Millisecond)))
		}, notes: "as kappa, with kappa.ClientOpts(kgo.ProducerLinger(5ms)): librdkafka's default linger (Quix) instead of franz-go's 10ms, for the latency runs"},
		{key: "goka", name: "goka", run: gokaW1,
			notes: "goka " + gokaVersion + ", sarama " + saramaVersion + " (protocol V2_1_0_0), no compression, FNV partitioner (goka default)"},
		{key: "kstreams", name: "kafka streams", run: kstreamsRun("stateless", nil, nil), child: true,
			missing: (*peerFlags).kstreamsMissing,
			notes:   kstreamsNotes("stream(String, ByteArray) → filter → mapValues → to; default config (at-least-once, commit.interval.ms 30000 as Kappa's 30s)")},
		{key: "quix", name: "quix streams", run: quixRun("stateless", rawCommitInterval.Seconds()), child: true,
			missing: (*peerFlags).quixMissing,
			notes:   fmt.Sprintf("Quix Streams 3 (confluent-kafka): dataframe(bytes) → filter → apply(upper) → to_topic; commit_interval %v as Kappa's; in a child process", rawCommitInterval)},
	}
}

// rawCommitInterval is Kappa's default CommitInterval, so both contenders
// give the same at-least-once guarantee at the same cost.
const rawCommitInterval = 30 * time.Second

// rawW1 is the hand-written consume → filter/map → produce loop: the
// practical limit on this broker.
func rawW1(ctx context.Context, j job) error { return rawW1Workers(ctx, j, runtime.GOMAXPROCS(0)) }

func rawW1Workers(ctx context.Context, j job, workers int) error {
	var perr atomic.Pointer[error]
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			perr.CompareAndSwap(nil, &err)
		}
	}
	// commit acknowledges every produced record, then commits every
	// polled offset: outputs are durable before their inputs commit.
	commit := func(ctx context.Context, cl *kgo.Client) error {
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
	emit := func(p kgo.FetchTopicPartition) {
		for _, r := range p.Records {
			if keepW1(r.Value) {
				cl.Produce(context.Background(), &kgo.Record{Key: r.Key, Value: mapW1(r.Value), Timestamp: r.Timestamp}, promise)
			}
		}
	}
	lastCommit := time.Now()
	for {
		fs := cl.PollRecords(ctx, 10000)
		if ctx.Err() != nil {
			// The final commit covers every polled offset, so the records
			// polled as the context ended are processed first.
			processParallel(fs, workers, emit)
			break
		}
		if fs.IsClientClosed() {
			return errors.New("client closed")
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			cl.AllowRebalance()
			return ferr
		}
		processParallel(fs, workers, emit)
		if time.Since(lastCommit) >= rawCommitInterval {
			if err := commit(ctx, cl); err != nil {
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

// processParallel calls fn for each partition of fs that has records, on up
// to workers goroutines, and returns when all calls have.
func processParallel(fs kgo.Fetches, workers int, fn func(kgo.FetchTopicPartition)) {
	var parts []kgo.FetchTopicPartition
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			parts = append(parts, p)
		}
	})
	if workers <= 1 || len(parts) <= 1 {
		for _, p := range parts {
			fn(p)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(parts)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(parts)); i = next.Add(1) - 1 {
				fn(parts[i])
			}
		})
	}
	wg.Wait()
}

// kappaW1 is W1 as a Kappa topology, with default options.
func kappaW1(ctx context.Context, j job) error { return kappaW1With(ctx, j, metricsDefault) }

// kappaW1With is kappaW1 with its metrics kept as m says, and the options
// more.
func kappaW1With(ctx context.Context, j job, m metricsMode, more ...kappa.Opt) error {
	b := stream.NewBuilder()
	src := stream.From(b, j.In, codec.String(), codec.Bytes())
	kept := src.Filter(func(_ string, v []byte) bool { return keepW1(v) })
	stream.MapValues(kept, func(_ string, v []byte) []byte { return mapW1(v) }).To(j.Out)
	topo, err := b.Build()
	if err != nil {
		return err
	}
	mopts, reg := m.opts()
	opts := append([]kappa.Opt{kappa.AppID(j.Group), kappa.Brokers(j.Brokers...), kappa.HandleSignals(false)}, mopts...)
	app, err := kappa.New(topo, append(opts, more...)...)
	if err != nil {
		return err
	}
	return m.run(ctx, app, reg)
}

const (
	gokaVersion   = "v1.1.17"
	saramaVersion = "v1.46.3"
)

// gokaConfig is goka's default sarama configuration, with a protocol
// version the embedded broker serves, reading new groups from the start,
// and no compression, as the other contenders.
func gokaConfig() *sarama.Config {
	cfg := goka.DefaultConfig()
	// Before 2.1, sarama sends Fetch v3 and older, which the broker
	// refuses.
	cfg.Version = sarama.V2_1_0_0
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Producer.Compression = sarama.CompressionNone
	return cfg
}

// gokaW1 is W1 as a goka processor.
func gokaW1(ctx context.Context, j job) error {
	out := goka.Stream(j.Out)
	g := goka.DefineGroup(goka.Group(j.Group),
		goka.Input(goka.Stream(j.In), new(gcodec.Bytes), func(gctx goka.Context, msg any) {
			v := msg.([]byte)
			if keepW1(v) {
				gctx.Emit(out, gctx.Key(), mapW1(v))
			}
		}),
		goka.Output(out, new(gcodec.Bytes)),
	)
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication = 1
	tm.Stream.Replication = 1
	tm.NoCreate = true // the harness creates the topics
	p, err := goka.NewProcessor(j.Brokers, g,
		goka.WithClientID(j.Group),
		goka.WithLogger(log.New(os.Stderr, "goka: ", log.Lmicroseconds)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(gokaConfig(), tm)),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(gokaConfig())),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(gokaConfig())),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(gokaConfig())),
	)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}
