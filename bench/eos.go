package main

// W4, exactly-once: W2's count under kappa.Guarantee(kappa.ExactlyOnce)
// against the same topology at-least-once, both committing every 100 ms,
// so that only the guarantee differs; and at-least-once with its default
// 30 s commits.

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(command{
		name:    "eos",
		summary: "W4: W2's count exactly-once against at-least-once, both committing every 100ms (kappa, kstreams)",
		run:     runEOS,
	})
	isolatable["eos"] = func(p childParams) []contender { return w4Contenders(p.commitInterval, p.cacheBytes) }
}

// w4DefaultCommit is kappa's default commit interval at-least-once
// (kappa.CommitInterval), the alos30s contender's.
const w4DefaultCommit = 30 * time.Second

// w4Store is the count's store; its changelog is "<app>-counts-changelog".
const w4Store = "counts"

func runEOS(args []string) error {
	fs := flag.NewFlagSet("eos", flag.ContinueOnError)
	var f commonFlags
	f.registerWith(fs, 500000, "eos,alos,alos30s", 1)
	// -profile's usual default, kappa, names no contender here.
	f.profile = "eos"
	fs.Lookup("profile").DefValue = f.profile
	every := fs.Duration("commit-interval", 100*time.Millisecond, "commit interval of the eos and alos contenders (kappa.CommitInterval; exactly-once's default); alos30s keeps at-least-once's default 30s")
	cache := fs.Int64("cache-bytes", -1, "kappa's record-cache budget (kappa.CacheBytes) of every contender; -1 keeps the default")
	ctx := context.Background()
	h, err := startStateful(ctx, fs, args, &f, every, "eos")
	if err != nil {
		return err
	}
	defer h.Close()

	const in = "eos-in"
	if err := h.createTopic(ctx, in, int32(f.partitions)); err != nil {
		return err
	}
	want, err := produceW2Input(ctx, h, in, &f, nil)
	if err != nil {
		return err
	}
	// The exactly-once contender is checked read committed, and exactly;
	// the at-least-once ones as W2.
	alos := expectation{
		Inputs: int64(f.records),
		Complete: func(ctx context.Context, h *harness, j job) ([]int64, error) {
			if err := noOpenTransactions(ctx, h, j); err != nil {
				return nil, err
			}
			return completeW2(ctx, h, j, want)
		},
	}
	eos := expectation{
		Inputs:        int64(f.records),
		ReadCommitted: true,
		Complete: func(ctx context.Context, h *harness, j job) ([]int64, error) {
			return completeW2Committed(ctx, h, j, want)
		},
	}
	h.params = childParams{commitInterval: *every, cacheBytes: *cache}
	sums, err := h.runEach(ctx, w4Contenders(*every, *cache), func(c contender, run int) trial {
		exp := alos
		if c.key == "eos" || c.key == "kstreams-eos" {
			exp = eos
		}
		return h.measure(ctx, c, run, in, exp)
	})
	if err != nil {
		return err
	}
	title := fmt.Sprintf("W4 exactly-once: W2's count, %d records, %d partitions, %d-byte values, %d distinct keys, commit interval %v (alos30s: %v), %d run(s); records/s are input records",
		f.records, f.partitions, f.valueSize, w2Keys, *every, w4DefaultCommit, f.runs)
	printTable(os.Stdout, title, "eos", sums, [][2]string{{"eos", "alos"}, {"eos", "alos30s"},
		{"kstreams-eos", "kstreams-alos"}, {"eos", "kstreams-eos"}, {"alos", "kstreams-alos"}, {"alos30s", "kstreams-alos30s"}})
	return nil
}

func w4Contenders(every time.Duration, cacheBytes int64) []contender {
	topology := "W2's topology: " + kappaW2Notes(cacheBytes)
	return []contender{
		{key: "eos", name: "kappa exactly-once", run: func(ctx context.Context, j job) error {
			return kappaW4(ctx, j, every, cacheBytes, kappa.ExactlyOnce)
		}, notes: fmt.Sprintf("Guarantee(ExactlyOnce), CommitInterval(%v): one transaction per commit; output checked read_committed, exact; %s", every, topology)},
		{key: "alos", name: "kappa at-least-once", run: func(ctx context.Context, j job) error {
			return kappaW4(ctx, j, every, cacheBytes, kappa.AtLeastOnce)
		}, notes: fmt.Sprintf("Guarantee(AtLeastOnce), CommitInterval(%v); %s", every, topology)},
		{key: "alos30s", name: "kappa at-least-once, 30s commits", run: func(ctx context.Context, j job) error {
			return kappaW4(ctx, j, w4DefaultCommit, cacheBytes, kappa.AtLeastOnce)
		}, notes: fmt.Sprintf("Guarantee(AtLeastOnce), CommitInterval(%v) (the default; the drain's stop commits at once); %s", w4DefaultCommit, topology)},
		kstreamsCount("kstreams-eos", "kafka streams exactly_once_v2", every, cacheBytes, "exactly_once_v2"),
		kstreamsCount("kstreams-alos", "kafka streams at_least_once", every, cacheBytes, "at_least_once"),
		kstreamsCount("kstreams-alos30s", "kafka streams at_least_once, 30s commits", w4DefaultCommit, cacheBytes, "at_least_once"),
	}
}

// kappaW4 is kappaW2 under the guarantee g.
func kappaW4(ctx context.Context, j job, every time.Duration, cacheBytes int64, g kappa.ProcessingGuarantee) error {
	b := stream.NewBuilder()
	stream.From(b, j.In, codec.String(), codec.Bytes()).
		GroupByKey().
		Count(stream.Materialized(w4Store)).
		ToStream().
		To(j.Out, stream.With(codec.String(), codec.Int64()))
	dir, err := os.MkdirTemp("", "bench-eos-kappa-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	app, err := newKappaApp(j, b, dir, every, cacheBytes, kappa.Guarantee(g))
	if err != nil {
		return err
	}
	j.Progress.Report(app.Processed)
	return app.Run(ctx)
}

// noOpenTransactions checks that a stopped contender left no transaction
// open on its output or its store's changelog: on every partition the
// last stable offset equals the high watermark.
func noOpenTransactions(ctx context.Context, h *harness, j job) error {
	var errs []error
	for _, topic := range []string{j.Out, j.Group + "-" + w4Store + "-changelog"} {
		hw, err := listOffsets(ctx, h.cl, topic, j.Partitions, false)
		if err != nil {
			return err
		}
		lso, err := listOffsets(ctx, h.cl, topic, j.Partitions, true)
		if err != nil {
			return err
		}
		if !slices.Equal(hw, lso) {
			errs = append(errs, fmt.Errorf("%s: last stable offsets %v below the high watermarks %v: a transaction is left open", topic, lso, hw))
		}
	}
	return errors.Join(errs...)
}

// completeW2Committed is the Complete of W2's count exactly-once. It
// checks that no transaction is left open (noOpenTransactions), then
// reads the output as a read_committed consumer, up to the last stable
// offsets, and checks that every key is one of want, stays in one
// partition, and that its counts rise strictly (an update applied twice
// would repeat a count, a lost one could not be made up), never above its
// true count, and end at it. It returns, per partition, one past the
// record from which each of its keys shows its true count: end offsets
// that drain compares with last stable offsets.
func completeW2Committed(ctx context.Context, h *harness, j job, want map[string]int64) ([]int64, error) {
	if err := noOpenTransactions(ctx, h, j); err != nil {
		return nil, err
	}
	type keyState struct {
		n         int64
		partition int32
		at        int64 // offset of the record with the true count, or -1
	}
	seen := make(map[string]*keyState, len(want))
	var bad []string
	nbad := 0
	complain := func(format string, args ...any) {
		nbad++
		if len(bad) < 3 {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	var n, commits, aborts int64
	err := readCommitted(ctx, h, j, func(r *kgo.Record) {
		if r.Attrs.IsControl() {
			// The key of a transaction marker: version, then type
			// (0 abort, 1 commit), both int16.
			if len(r.Key) >= 4 && binary.BigEndian.Uint16(r.Key[2:]) == 1 {
				commits++
			} else {
				aborts++
			}
			return
		}
		n++
		k, c, err := decodeW2(r)
		if err != nil {
			complain("%s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			return
		}
		w, ok := want[k]
		if !ok {
			complain("%s/%d@%d: key %q is not in the input", r.Topic, r.Partition, r.Offset, k)
			return
		}
		st := seen[k]
		if st == nil {
			st = &keyState{partition: r.Partition, at: -1}
			seen[k] = st
		}
		switch {
		case st.partition != r.Partition:
			complain("key %q in partitions %d and %d", k, st.partition, r.Partition)
		case c > w:
			complain("%s/%d@%d: key %q counted %d, but it occurs %d times", r.Topic, r.Partition, r.Offset, k, c, w)
		case c <= st.n:
			complain("%s/%d@%d: key %q counted %d after %d: an update applied twice, or undone", r.Topic, r.Partition, r.Offset, k, c, st.n)
		case c == w:
			st.at = r.Offset
		}
		st.n = max(st.n, c)
	})
	if err != nil {
		return nil, err
	}
	need := make([]int64, j.Partitions)
	for k, w := range want {
		st := seen[k]
		switch {
		case st == nil:
			complain("key %q (count %d) never committed", k, w)
		case st.n != w || st.at < 0:
			complain("key %q: latest committed count %d, want %d", k, st.n, w)
		default:
			need[st.partition] = max(need[st.partition], st.at+1)
		}
	}
	if nbad > 0 {
		return nil, fmt.Errorf("%d problems, such as: %s", nbad, strings.Join(bad, "; "))
	}
	logf("output: %d committed records, %d commit and %d abort markers, no transaction open; the counts of each of %d keys rise to exactly its true count",
		n, commits, aborts, len(want))
	return need, nil
}

// readCommitted reads a stopped contender's whole output as a consumer
// with isolation.level read_committed, up to each partition's last stable
// offset, calling fn with each record. Transaction markers are kept, and
// passed to fn (r.Attrs.IsControl()): every offset below the end arrives
// as a record (or as a marker ending aborted records), so the read knows
// where to stop.
func readCommitted(ctx context.Context, h *harness, j job, fn func(r *kgo.Record)) error {
	lsos, err := kadm.NewClient(h.cl).ListCommittedOffsets(ctx, j.Out)
	if err != nil {
		return err
	}
	if err := lsos.Error(); err != nil {
		return fmt.Errorf("last stable offsets of %s: %w", j.Out, err)
	}
	starts := make(map[int32]kgo.Offset, j.Partitions)
	left := make(map[int32]int64, j.Partitions) // partition → its last stable offset
	for p := range j.Partitions {
		o, ok := lsos.Lookup(j.Out, p)
		if !ok {
			return fmt.Errorf("last stable offsets of %s: partition %d not listed", j.Out, p)
		}
		if o.Offset > 0 {
			starts[p] = kgo.NewOffset().AtStart()
			left[p] = o.Offset
		}
	}
	if len(left) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.addrs...), kgo.ClientID("bench-verify"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{j.Out: starts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return err
	}
	defer cl.Close()
	vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for len(left) > 0 {
		fs := cl.PollFetches(vctx)
		if vctx.Err() != nil {
			return fmt.Errorf("reading %s read committed: partitions %v (partition: last stable offset) not read to their ends: %w", j.Out, left, vctx.Err())
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return // past the last stable offset listed
			}
			if r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			fn(r)
		})
	}
	return nil
}
