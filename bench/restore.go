package main

// W5, restore: rebuild a key-value store of N distinct keys from its
// changelog into an empty state directory.

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
	"github.com/kappa-streams/kappa/stream"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(command{
		name:    "restore",
		summary: "W5: restore a store of N distinct keys from its changelog (raw franz-go + goleveldb, kappa, kstreams)",
		run:     runRestore,
	})
}

// w5Restorers are the restore contenders' restorers by key; kstreams
// brings its own (kstreamsRestore).
var w5Restorers = map[string]restorer{
	"raw":   {restore: rawRestore, scan: scanRaw},
	"kappa": {restore: kappaRestore, scan: scanKappa},
}

const (
	w5KeyLen = 16
	// w5App is the application ID of every kappa run. Its store's
	// changelog is the topic the workload fills, so each run restores
	// the same data into a fresh state directory; runs do not write to
	// it, since the app's input stays empty.
	w5App   = "bench-restore"
	w5Store = "store"
	w5In    = "restore-in" // the table's (empty) source topic
)

// restoreJob is what a restore contender is given.
type restoreJob struct {
	Brokers    []string
	Changelog  string
	Partitions int32
	Records    int64
	Dir        string // an empty directory of its own, for its store
}

// restoreTiming is what a restore contender measures: when it started,
// when its restore began (for Kappa, when its tasks were assigned), and
// when the last record was written to its store. A contender in a child
// process also says what its store held: Keys records whose
// portableHash values sum to PortableSum.
type restoreTiming struct {
	Start, Began, Done time.Time
	Keys               int64
	PortableSum        uint64
	// Proc is what was measured of the child process, if any.
	Proc *procStats
}

// restorer is a restore contender: restore fills a store under rj.Dir
// and stops; scan then reads the store back for the check. A restorer in
// a child process (kstreams, or any with -isolate) has no scan: its child
// reads the store back itself and restore returns what it found as
// restoreTiming.Keys and PortableSum (portableHash).
type restorer struct {
	restore func(ctx context.Context, rj restoreJob) (restoreTiming, error)
	scan    func(rj restoreJob, fn func(key, value []byte)) error
}

// portableHash is the FNV-1a hash (64 bits) of the key's length as 8
// bytes little-endian, the key and the value: a record checksum that a
// child process in another language computes alike (KStreamsBench.java
// portableHash). The checksum of a store is the sum of its records'.
func portableHash(key, value []byte) uint64 {
	const (
		offset = 0xcbf29ce484222325
		prime  = 0x100000001b3
	)
	h := uint64(offset)
	for i, l := 0, uint64(len(key)); i < 8; i++ {
		h ^= (l >> (8 * i)) & 0xff
		h *= prime
	}
	for _, b := range key {
		h ^= uint64(b)
		h *= prime
	}
	for _, b := range value {
		h ^= uint64(b)
		h *= prime
	}
	return h
}

func runRestore(args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	var f commonFlags
	f.registerWith(fs, 1000000, "raw,kappa", 1)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := f.validate(); err != nil {
		return err
	}
	ctx := context.Background()
	h, err := newHarness(ctx, "restore", &f)
	if err != nil {
		return err
	}
	defer h.Close()
	h.startLabel = "restore began"

	parts := int32(f.partitions)
	changelog := processor.ChangelogRef(w5Store).Resolve(w5App)
	if err := h.createTopicWith(ctx, changelog, parts, map[string]string{"cleanup.policy": "compact"}); err != nil {
		return err
	}
	if err := h.createTopic(ctx, w5In, parts); err != nil {
		return err
	}
	want, portable, err := produceW5(ctx, h, changelog, &f)
	if err != nil {
		return err
	}

	all := []contender{
		{key: "raw", name: "raw franz-go + goleveldb",
			notes: "one client reading all partitions directly (Kappa's fetch sizes), one pre-sized goleveldb batch per fetched partition, one DB (Kappa's LevelDB options)"},
		{key: "kappa", name: "kappa",
			notes: "TableFrom(String, Bytes, Materialized) in an empty StateDir: default restore, one task per partition, each with its own client and LevelDB; timed from tasks assigned to all tasks ready"},
		{key: "kstreams", name: "kafka streams", child: true, missing: (*peerFlags).kstreamsMissing,
			notes: kstreamsNotes("table(String, ByteArray, Materialized.as(\"store\")) in an empty state.dir: default restore (the state updater thread), RocksDB; " +
				"timed from the first onRestoreStart to the state RUNNING (every task restored); the store is then read back through interactive queries and checked")},
	}
	restorers := maps.Clone(w5Restorers)
	restorers["kstreams"] = restorer{restore: func(ctx context.Context, rj restoreJob) (restoreTiming, error) { return kstreamsRestore(ctx, h, rj) }}
	// With -isolate, raw and kappa restore in child processes too.
	var chosen []contender
	for _, k := range strings.Split(f.contenders, ",") {
		i := slices.IndexFunc(all, func(c contender) bool { return c.key == strings.TrimSpace(k) })
		if i >= 0 && (all[i].missing == nil || all[i].missing(&f.peers) == "") {
			chosen = append(chosen, all[i])
		}
	}
	if h.isolating(chosen) {
		for _, k := range []string{"raw", "kappa"} {
			restorers[k] = restorer{restore: func(ctx context.Context, rj restoreJob) (restoreTiming, error) { return isolatedRestore(ctx, k, rj) }}
			i := slices.IndexFunc(all, func(c contender) bool { return c.key == k })
			all[i].notes += "; in a child process (-isolate), which reads its store back itself"
		}
	}
	sums, err := h.runEach(ctx, all, func(c contender, run int) trial {
		return measureRestore(ctx, h, c, restorers[c.key], run, restoreJob{
			Brokers: h.addrs, Changelog: changelog, Partitions: parts, Records: int64(f.records),
		}, want, portable)
	})
	if err != nil {
		return err
	}
	title := fmt.Sprintf("W5 restore: %d distinct keys (%d-byte keys, %d-byte values) in a %d-partition changelog, %d run(s); records/s are changelog records written to the store",
		f.records, w5KeyLen, f.valueSize, f.partitions, f.runs)
	printTable(os.Stdout, title, "restore", sums, [][2]string{{"kappa", "raw"}, {"kappa", "kstreams"}})
	return nil
}

// produceW5 writes the changelog: f.records records with distinct keys of
// w5KeyLen bytes and f.valueSize random printable bytes from f.seed. It
// returns the checksum of the records, which a restored store must hold,
// by recordHash and by portableHash.
func produceW5(ctx context.Context, h *harness, topic string, f *commonFlags) (uint64, uint64, error) {
	rng := rand.New(rand.NewPCG(f.seed, 0x7265))
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.addrs...), kgo.ClientID("bench-input"),
		kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	var perr atomic.Pointer[error]
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			perr.CompareAndSwap(nil, &err)
		}
	}
	start := time.Now()
	var sum, portable uint64
	for i := range f.records {
		k := fmt.Appendf(nil, "k-%0*d", w5KeyLen-2, i)
		v := make([]byte, f.valueSize)
		for j := range v {
			v[j] = byte(' ' + rng.IntN(95))
		}
		sum += h.recordHash(k, v)
		portable += portableHash(k, v)
		cl.Produce(ctx, &kgo.Record{Key: k, Value: v}, promise)
		if (i+1)%200000 == 0 {
			logf("changelog: %d/%d records produced", i+1, f.records)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, 0, err
	}
	if p := perr.Load(); p != nil {
		return 0, 0, fmt.Errorf("producing the changelog: %w", *p)
	}
	logf("changelog: %d records in %s in %v", f.records, topic, time.Since(start).Round(time.Millisecond))
	return sum, portable, nil
}

// measureRestore runs one restore in a fresh directory, then reads the
// store back and checks it holds exactly the changelog's records.
func measureRestore(ctx context.Context, h *harness, c contender, r restorer, run int, rj restoreJob, want, portable uint64) trial {
	dir, err := os.MkdirTemp("", "bench-restore-"+c.key+"-")
	if err != nil {
		return trial{Err: err}
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			logf("%s: removing %s: %v", c.key, dir, err)
		}
		runtime.GC()
	}()
	rj.Dir = dir
	stopProfile, err := h.startProfile(c.key, run)
	if err != nil {
		return trial{Err: err}
	}
	rctx, cancel := context.WithTimeout(ctx, h.flags.timeout)
	tm, err := r.restore(rctx, rj)
	cancel()
	stopProfile()
	if err != nil {
		return trial{Err: err}
	}
	var n int64
	var sum uint64
	if r.scan == nil {
		n, sum, want = tm.Keys, tm.PortableSum, portable
	} else if err := r.scan(rj, func(k, v []byte) {
		n++
		sum += h.recordHash(k, v)
	}); err != nil {
		return trial{Err: fmt.Errorf("reading the restored store: %w", err)}
	}
	switch {
	case n != rj.Records:
		return trial{Err: fmt.Errorf("restored store holds %d keys, want %d", n, rj.Records)}
	case sum != want:
		return trial{Err: fmt.Errorf("restored store holds %d keys, but not the changelog's keys and values (checksum %x, want %x)", n, sum, want)}
	case !tm.Done.After(tm.Began):
		return trial{Err: errors.New("restore took no measurable time: use more -records")}
	}
	tr := trial{
		Throughput: float64(rj.Records) / tm.Done.Sub(tm.Began).Seconds(),
		Wall:       tm.Done.Sub(tm.Start),
		Startup:    tm.Began.Sub(tm.Start),
		Counted:    rj.Records,
	}
	if tm.Proc.measured() {
		// Until the restore is done: the child then reads its store
		// back for the check, which is not part of the restore.
		tr.PeakRSS = tm.Proc.peakAt(tm.Done)
		tr.CPU = tm.Proc.cpuBetween(tm.Began, tm.Done)
	}
	logf("%s: run %d: %.0f records/s, restore %v, wall %v (restore began after %v)%s; store verified",
		c.key, run+1, tr.Throughput, tm.Done.Sub(tm.Began).Round(time.Millisecond), tr.Wall.Round(time.Millisecond), tr.Startup.Round(time.Millisecond), procNote(tr))
	return tr
}

// levelDBOptions are the options state.OpenLevelDB uses with its
// defaults, so the raw loop's engine is tuned as Kappa's.
func levelDBOptions() *opt.Options {
	return &opt.Options{
		WriteBuffer:        4 << 20,
		BlockCacheCapacity: 32 << 20,
		Compression:        opt.NoCompression,
		Filter:             filter.NewBloomFilter(10),
		NoSync:             true,
	}
}

// rawRestore is the hand-written restore: one client reads every
// partition of the changelog from the start to the end offsets it had at
// the start, and writes each fetched partition's records to one goleveldb
// DB as one batch. Timed from its start (before opening the DB) to the
// last batch written.
func rawRestore(ctx context.Context, rj restoreJob) (restoreTiming, error) {
	start := time.Now()
	db, err := leveldb.OpenFile(filepath.Join(rj.Dir, "db"), levelDBOptions())
	if err != nil {
		return restoreTiming{}, err
	}
	defer db.Close()
	starts := make(map[int32]kgo.Offset, rj.Partitions)
	for p := range rj.Partitions {
		starts[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(rj.Brokers...), kgo.ClientID("bench-restore-raw"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{rj.Changelog: starts}),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	if err != nil {
		return restoreTiming{}, err
	}
	defer cl.Close()
	ends, err := listEnds(ctx, cl, rj.Changelog, rj.Partitions)
	if err != nil {
		return restoreTiming{}, err
	}
	left := 0
	for _, e := range ends {
		if e > 0 {
			left++
		}
	}
	// One batch, reused: Reset keeps its buffer. It is sized for each
	// fetch before filling it, since goleveldb v1.0.0 grows a batch of
	// more than 3000 records by only about 3000 records at a time, which
	// makes filling a large one quadratic.
	b := new(leveldb.Batch)
	room := 0
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return restoreTiming{}, err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return restoreTiming{}, ferr
		}
		var werr error
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			end := ends[p.Partition]
			if werr != nil || len(p.Records) == 0 || p.Records[0].Offset >= end {
				return
			}
			size := 0
			for _, r := range p.Records {
				size += 1 + 2*binary.MaxVarintLen32 + len(r.Key) + len(r.Value)
			}
			if size > room {
				// Load takes the slice as the batch's buffer.
				if werr = b.Load(make([]byte, 0, size)); werr != nil {
					return
				}
				room = size
			}
			b.Reset()
			last := int64(-1)
			for _, r := range p.Records {
				if r.Offset >= end {
					break
				}
				if r.Value == nil {
					b.Delete(r.Key)
				} else {
					b.Put(r.Key, r.Value)
				}
				last = r.Offset
			}
			if werr = db.Write(b, nil); werr == nil && last+1 >= end {
				left--
			}
		})
		if werr != nil {
			return restoreTiming{}, werr
		}
	}
	done := time.Now()
	return restoreTiming{Start: start, Began: start, Done: done}, nil
}

func scanRaw(rj restoreJob, fn func(key, value []byte)) error {
	db, err := leveldb.OpenFile(filepath.Join(rj.Dir, "db"), levelDBOptions())
	if err != nil {
		return err
	}
	defer db.Close()
	it := db.NewIterator(nil, nil)
	defer it.Release()
	for it.Next() {
		fn(it.Key(), it.Value())
	}
	return it.Error()
}

// kappaRestore runs an app whose only store is the table w5Store, with an
// empty state directory, until every task is ready, then stops it. It
// polls TaskStatus every pollEvery: the restore begins at the first poll
// that sees a task assigned (group join and topic checks come before) and
// ends at the first that sees every task ready with all records restored.
func kappaRestore(ctx context.Context, rj restoreJob) (restoreTiming, error) {
	b := stream.NewBuilder()
	stream.TableFrom(b, w5In, codec.String(), codec.Bytes(), stream.Materialized(w5Store))
	topo, err := b.Build()
	if err != nil {
		return restoreTiming{}, err
	}
	app, err := kappa.New(topo, kappa.AppID(w5App), kappa.Brokers(rj.Brokers...), kappa.HandleSignals(false),
		kappa.StateDir(rj.Dir))
	if err != nil {
		return restoreTiming{}, err
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	tm := restoreTiming{Start: time.Now()}
	go func() { done <- app.Run(actx) }()
	// stop stops the app and waits for it: its stores must be closed
	// before they are read back.
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			return errors.New("app did not stop within 1m")
		}
	}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	lastLog := tm.Start
	for {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("app returned before its tasks were ready")
			}
			return restoreTiming{}, err
		case <-ctx.Done():
			stop()
			return restoreTiming{}, ctx.Err()
		case <-tick.C:
		}
		st := app.TaskStatus()
		now := time.Now()
		if len(st) > 0 && tm.Began.IsZero() {
			tm.Began = now
		}
		var restored int64
		ready := len(st) == int(rj.Partitions)
		for _, s := range st {
			restored += s.Restored
			ready = ready && s.Ready
		}
		if ready {
			tm.Done = now
			if restored != rj.Records {
				stop()
				return restoreTiming{}, fmt.Errorf("all tasks ready after restoring %d records, want %d", restored, rj.Records)
			}
			if err := stop(); err != nil {
				return restoreTiming{}, fmt.Errorf("stopping: %w", err)
			}
			return tm, nil
		}
		if now.Sub(lastLog) >= time.Second {
			logf("kappa: %d tasks, %d/%d records restored after %v", len(st), restored, rj.Records, now.Sub(tm.Start).Round(time.Millisecond))
			lastLog = now
		}
	}
}

// scanKappa reads every task's store of the stopped app.
func scanKappa(rj restoreJob, fn func(key, value []byte)) error {
	dirs, err := filepath.Glob(filepath.Join(rj.Dir, w5App, "*", w5Store))
	if err != nil {
		return err
	}
	if len(dirs) != int(rj.Partitions) {
		return fmt.Errorf("%d task stores under %s, want %d", len(dirs), rj.Dir, rj.Partitions)
	}
	slices.Sort(dirs)
	for _, d := range dirs {
		e, err := state.OpenLevelDB(d, state.LevelDBOptions{})
		if err != nil {
			return err
		}
		err = e.Range(nil, nil, func(k, v []byte) bool { fn(k, v); return true })
		if cerr := e.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
