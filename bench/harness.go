package main

// The harness is shared by every workload: it starts the embedded broker
// (or dials the cluster of -brokers, or starts a real Apache Kafka cluster
// for -cluster), runs each contender against the same
// input, measures it from outside by watching its output topic's end
// offsets, checks its output, and prints the table. Contenders that run as
// child processes (child.go) are also measured for peak RSS and CPU time.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa/broker"
	"github.com/kappa-streams/kappa/broker/embedded"
	"github.com/kappa-streams/kappa/internal/kafkacluster"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// pollEvery is how often the harness reads the output's end offsets.
const pollEvery = 5 * time.Millisecond

// commonFlags are the flags every workload takes.
type commonFlags struct {
	records    int
	partitions int
	valueSize  int
	runs       int
	warmup     int
	seed       uint64
	timeout    time.Duration
	contenders string
	cpuprofile string
	memprofile string
	profile    string
	alternate  bool
	peers      peerFlags
	// lat holds the paced mode's flags, of the workloads that register
	// them (W1, W2); its zero value is the throughput mode.
	lat latencyFlags
}

func (f *commonFlags) register(fs *flag.FlagSet, defaultRecords int) {
	f.registerWith(fs, defaultRecords, "raw,kappa,goka", 0)
}

// registerWith is register for a workload whose default contenders or
// warm-up runs differ.
func (f *commonFlags) registerWith(fs *flag.FlagSet, defaultRecords int, contenders string, warmup int) {
	fs.IntVar(&f.records, "records", defaultRecords, "input records to pre-produce")
	fs.IntVar(&f.partitions, "partitions", 4, "partitions of the input and output topics")
	fs.IntVar(&f.valueSize, "value-size", 100, "bytes per input value")
	fs.IntVar(&f.runs, "runs", 1, "runs per contender; the table reports the median")
	fs.IntVar(&f.warmup, "warmup", warmup, "runs per contender before the measured ones, not reported: they take the process's first-touch costs (heap growth, page cache), which otherwise fall on whichever contender runs first")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the generated input")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "time a contender gets to produce all its output before it is reported as failed")
	fs.StringVar(&f.contenders, "contenders", contenders, "comma-separated contenders to run, in this order")
	fs.StringVar(&f.cpuprofile, "cpuprofile", "", "write a CPU profile of one contender's first run (from its start to its last output) to this file")
	fs.StringVar(&f.memprofile, "memprofile", "", "write a heap profile of the harness's process to this file when -profile's contender has processed half its input in its first run, for the workloads measured by draining (W2–W4, W8); with -isolate off, so that a Go contender runs in that process, and best with -brokers, so that no embedded broker's records are in it")
	fs.StringVar(&f.profile, "profile", "kappa", "the contender -cpuprofile and -memprofile profile")
	fs.BoolVar(&f.alternate, "alternate", false, "run the contenders in the reverse order on every other measured run (A B, B A, A B, ...), so that no contender always runs first")
	f.peers.register(fs)
}

func (f *commonFlags) validate() error {
	var errs []error
	if f.records < 1 {
		errs = append(errs, fmt.Errorf("-records %d: must be at least 1", f.records))
	}
	if f.partitions < 1 {
		errs = append(errs, fmt.Errorf("-partitions %d: must be at least 1", f.partitions))
	}
	if f.valueSize < 1 {
		errs = append(errs, fmt.Errorf("-value-size %d: must be at least 1", f.valueSize))
	}
	if f.runs < 1 {
		errs = append(errs, fmt.Errorf("-runs %d: must be at least 1", f.runs))
	}
	if f.warmup < 0 {
		errs = append(errs, fmt.Errorf("-warmup %d: must be 0 or more", f.warmup))
	}
	if f.timeout <= 0 {
		errs = append(errs, fmt.Errorf("-timeout %v: must be positive", f.timeout))
	}
	errs = append(errs, f.peers.validate(), f.lat.validate())
	return errors.Join(errs...)
}

// job is what a contender is given: where to read and write, and the
// consumer group (or application ID) it must use.
type job struct {
	Brokers    []string
	In, Out    string
	Group      string
	Partitions int32
	// Progress is where the contender reports how many input records it
	// has processed. Workloads measured by draining (expectation.Inputs)
	// need it; the others ignore it.
	Progress *progress
	// Proc is where a contender that runs as a child process (runChild)
	// leaves what was measured of it: peak RSS and CPU time.
	Proc *procStats
	// Peers holds the flags of the contenders in other languages.
	Peers *peerFlags
	// Kfake is true when the broker is franz-go's kfake: the embedded
	// broker, or -brokers with -kfake. The kstreams contenders then work
	// around its answers that Kafka's Java clients reject.
	Kfake bool
	// Replicas, when positive, is the replication factor of the topics a
	// Kappa contender creates (kappa.ReplicationFactor): -replication on
	// an external cluster; 0 keeps Kappa's default.
	Replicas int
}

// progress is a contender's count of processed input records, as the
// harness sees it.
type progress struct{ fn atomic.Pointer[func() int64] }

// Report registers fn as the contender's count of processed input
// records. fn is called from the harness's goroutine every pollEvery, so
// it must be cheap and safe for concurrent use.
func (p *progress) Report(fn func() int64) { p.fn.Store(&fn) }

func (p *progress) processed() int64 {
	if fn := p.fn.Load(); fn != nil {
		return (*fn)()
	}
	return 0
}

// contender is one implementation of a workload. run processes until ctx
// is done, then stops gracefully (committing what it processed) and
// returns nil, or returns the error that stopped it.
type contender struct {
	key   string // the name in -contenders: raw, kappa, goka
	name  string // the name in the table
	notes string // how it is configured, for the table
	run   func(ctx context.Context, j job) error
	// child marks a contender that runs as a child process of its own
	// (kstreams, quix): -isolate leaves it as it is.
	child bool
	// missing, when set, says why the contender cannot run on this
	// machine (no java, no jar, no quixstreams), or returns "". Such a
	// contender is skipped with that message.
	missing func(p *peerFlags) string
}

// expectation is what a correct contender writes: Count records whose
// key/value pairs hash to Sum (an order-independent multiset checksum).
// Check, when set, looks at each output record and explains what is wrong.
//
// A workload whose contenders write different numbers of records (an
// aggregation that deduplicates updates, or not) sets Inputs and Complete
// instead, and is measured by draining: see harness.drain.
type expectation struct {
	Count int64
	Sum   uint64
	Check func(key, value []byte) error

	// Inputs is the number of input records. When positive, the harness
	// stops the contender as soon as it reports (job.Progress) having
	// processed them all, and times it to the moment its output became
	// complete.
	Inputs int64
	// Complete reads the output of a stopped contender, checks it, and
	// returns, per output partition, the end offset from which the output
	// is complete: every record needed is below it. Required with Inputs.
	Complete func(ctx context.Context, h *harness, j job) ([]int64, error)
	// Counted, when positive, is the number of input records the
	// throughput counts instead of Inputs: a stream-stream join reads two
	// topics, but is rated by one of them.
	Counted int64
	// MoreInputs are the contender's input topics besides job.In, with
	// job.Partitions partitions each (the other side of a join): drain
	// checks that their offsets are committed too.
	MoreInputs []string
	// ReadCommitted marks a contender that writes in transactions: drain
	// watches the output's last stable offsets instead of its high
	// watermarks, so the output counts as complete when a read_committed
	// consumer can see it, and Complete's end offsets are last stable
	// offsets.
	ReadCommitted bool
}

// trial is one measured run of one contender.
type trial struct {
	Throughput float64       // expected records / (t1 - t0)
	Wall       time.Duration // contender start → t1
	Startup    time.Duration // contender start → t0
	// Drained marks a trial measured by draining (harness.drain); Tail is
	// then the time from the harness seeing the last input processed to
	// the output being complete.
	Drained bool
	Tail    time.Duration
	// Results is, for a drained trial, the number of records the
	// contender wrote to its output topic: the sum of the output's end
	// offsets once it has returned. ResultRate is Results / (t1 - t0),
	// over the time its Throughput is measured by.
	Results    int64
	ResultRate float64
	// Counted is the number of records Throughput counts.
	Counted int64
	// PeakRSS (bytes) and CPU, the CPU time from t0 to t1, are measured
	// of a contender that ran as a child process; 0 otherwise.
	PeakRSS int64
	CPU     time.Duration
	// Load is the 1-minute load average of the machine as the trial
	// ended (0 where /proc/loadavg cannot be read).
	Load float64
	// Latency is measured by a paced run (latency.go); nil otherwise.
	Latency *latencyStats
	Err     error
}

// cpuPerMillion is the trial's CPU seconds per million counted records.
func (t trial) cpuPerMillion() float64 {
	if t.Counted <= 0 {
		return 0
	}
	return t.CPU.Seconds() * 1e6 / float64(t.Counted)
}

// harness holds the broker and the clients that measure and check.
type harness struct {
	workload string
	flags    *commonFlags
	broker   *embedded.Broker         // nil with -brokers or -cluster
	cluster  *kafkacluster.Standalone // started for -cluster; nil otherwise
	addrs    []string
	// nonce makes the names of output topics and groups unique to this
	// invocation on an external cluster, which keeps them; "" on the
	// embedded broker.
	nonce string
	// params are what a Go contender needs to be rebuilt in a child
	// process with -isolate; the workload sets them.
	params  childParams
	conn    *broker.Conn
	cl      *kgo.Client // for end offsets
	recSeed maphash.Seed
	// startLabel names t0 in the table's notes; "first output" unless the
	// workload sets it.
	startLabel string
}

func newHarness(ctx context.Context, workload string, flags *commonFlags) (*harness, error) {
	var (
		b     *embedded.Broker
		kc    *kafkacluster.Standalone
		addrs []string
		nonce string
	)
	switch {
	case flags.peers.brokers != "":
		addrs = strings.Split(flags.peers.brokers, ",")
		nonce = "-" + strconv.FormatInt(time.Now().Unix(), 36)
	case flags.peers.cluster > 0:
		logf("starting %d nodes of Apache Kafka %s (internal/kafkacluster)", flags.peers.cluster, kafkacluster.Version())
		var err error
		kc, err = kafkacluster.Launch(kafkacluster.Nodes(flags.peers.cluster), kafkacluster.Partitions(int32(flags.partitions)))
		if err != nil {
			return nil, err
		}
		logf("cluster: %s", kc)
		addrs = kc.Brokers()
		nonce = "-" + strconv.FormatInt(time.Now().Unix(), 36)
	default:
		var err error
		if b, err = embedded.New(embedded.DefaultPartitions(flags.partitions)); err != nil {
			return nil, err
		}
		addrs = b.Addrs()
	}
	closeBroker := func() {
		if b != nil {
			b.Close()
		}
		if kc != nil {
			if err := kc.Stop(); err != nil {
				logf("stopping the cluster: %v", err)
			}
		}
	}
	conn, err := broker.Connect(ctx, addrs, broker.ClientID("bench-harness"))
	if err != nil {
		closeBroker()
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ClientID("bench-watch"))
	if err != nil {
		conn.Close()
		closeBroker()
		return nil, err
	}
	if b != nil {
		logf("embedded broker at %s", strings.Join(addrs, ","))
	} else {
		logf("external cluster at %s; topics with replication factor %d; run names end in %s", strings.Join(addrs, ","), flags.peers.replicas, nonce)
	}
	return &harness{workload: workload, flags: flags, broker: b, cluster: kc, addrs: addrs, nonce: nonce, conn: conn, cl: cl,
		recSeed: maphash.MakeSeed(), startLabel: "first output", params: childParams{cacheBytes: -1, commitInterval: time.Second}}, nil
}

// kfake reports whether the broker is franz-go's kfake (see job.Kfake).
func (h *harness) kfake() bool { return h.broker != nil || h.flags.peers.kfake }

func (h *harness) Close() {
	h.cl.Close()
	h.conn.Close()
	if h.broker != nil {
		h.broker.Close()
	}
	if h.cluster != nil {
		if err := h.cluster.Stop(); err != nil {
			logf("stopping the cluster: %v", err)
		}
	}
}

// recordHash is the hash of one key/value pair; the checksum of a topic is
// the sum of its records' hashes, so it ignores order and partitioning.
func (h *harness) recordHash(key, value []byte) uint64 {
	var m maphash.Hash
	m.SetSeed(h.recSeed)
	var n [8]byte
	for i, l := 0, uint64(len(key)); i < 8; i++ {
		n[i] = byte(l >> (8 * i))
	}
	m.Write(n[:])
	m.Write(key)
	m.Write(value)
	return m.Sum64()
}

func (h *harness) createTopic(ctx context.Context, name string, partitions int32) error {
	return h.createTopicWith(ctx, name, partitions, nil)
}

// createTopicWith creates a topic with configs and the replication factor
// of -replication. On an external cluster, a topic of that name left by
// an earlier run is deleted first.
func (h *harness) createTopicWith(ctx context.Context, name string, partitions int32, configs map[string]string) error {
	if h.broker == nil {
		// Kafka deletes a segment once its newest record is older than
		// retention.ms (7 days by default) by its timestamp: at once, for
		// inputs stamped with a fixed event time (W3, W8's stream–stream
		// join: January 2026), and for the outputs that carry it on. The
		// embedded broker enforces no retention.
		configs = maps.Clone(configs)
		if configs == nil {
			configs = make(map[string]string)
		}
		if _, ok := configs["retention.ms"]; !ok {
			configs["retention.ms"] = "-1"
		}
	}
	spec := broker.TopicSpec{Name: name, Partitions: partitions, Replicas: int16(h.flags.peers.replicas), Configs: configs}
	deadline := time.Now().Add(time.Minute)
	for deleted := false; ; {
		// On a cluster, each broker learns of a new topic on its own: one
		// that has not yet answers requests for it with
		// UNKNOWN_TOPIC_OR_PARTITION, so wait until every one lists it.
		err := h.conn.Admin().CreateAndWait(ctx, spec)
		switch {
		case err == nil:
			return nil
		case h.broker != nil || time.Now().After(deadline):
			return fmt.Errorf("creating topic %s: %w", name, err)
		case errors.Is(err, kerr.TopicAlreadyExists) && !deleted:
			logf("topic %s exists: deleting it, to fill it anew", name)
			if err := h.conn.Admin().Delete(ctx, name); err != nil {
				return err
			}
			deleted = true
		case errors.Is(err, kerr.TopicAlreadyExists):
			// Still being deleted.
		default:
			return fmt.Errorf("creating topic %s: %w", name, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// endOffsets returns the sum of the high watermarks of topic's partitions.
func (h *harness) endOffsets(ctx context.Context, topic string, partitions int32) (int64, error) {
	ends, err := h.partitionEnds(ctx, topic, partitions)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, e := range ends {
		sum += e
	}
	return sum, nil
}

// partitionEnds returns the high watermark of each of topic's partitions.
func (h *harness) partitionEnds(ctx context.Context, topic string, partitions int32) ([]int64, error) {
	return listEnds(ctx, h.cl, topic, partitions)
}

// listEnds asks through cl for the high watermark of each of topic's
// partitions.
func listEnds(ctx context.Context, cl *kgo.Client, topic string, partitions int32) ([]int64, error) {
	return listOffsets(ctx, cl, topic, partitions, false)
}

// listOffsets asks through cl for the end of each of topic's partitions:
// the high watermark, or with committed the last stable offset (the end
// a read_committed consumer sees: below the first open transaction).
func listOffsets(ctx context.Context, cl *kgo.Client, topic string, partitions int32, committed bool) ([]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	if committed {
		req.IsolationLevel = 1 // read_committed
	}
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = -1 // latest: the high watermark
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	ends := make([]int64, partitions)
	seen := 0
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", topic, p.Partition, err)
			}
			if p.Partition < 0 || p.Partition >= partitions {
				return nil, fmt.Errorf("end offsets of %s: answer for unknown partition %d", topic, p.Partition)
			}
			ends[p.Partition] = p.Offset
			seen++
		}
	}
	if seen != int(partitions) {
		return nil, fmt.Errorf("end offsets of %s: %d of %d partitions answered", topic, seen, partitions)
	}
	return ends, nil
}

// committed returns group's committed offset of each of topic's
// partitions, -1 where it has none.
func (h *harness) committed(ctx context.Context, group, topic string, partitions int32) ([]int64, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	for p := range partitions {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, h.cl)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("committed offsets of group %s: %w", group, err)
	}
	offs := make([]int64, partitions)
	for i := range offs {
		offs[i] = -1
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("committed offset of group %s on %s/%d: %w", group, topic, p.Partition, err)
			}
			if p.Partition >= 0 && p.Partition < partitions {
				offs[p.Partition] = p.Offset
			}
		}
	}
	return offs, nil
}

// measure runs one contender once on a fresh output topic and consumer
// group, measures it, stops it, checks its output and deletes the output.
func (h *harness) measure(ctx context.Context, c contender, run int, in string, exp expectation) trial {
	parts := int32(h.flags.partitions)
	j := job{
		Brokers:    h.addrs,
		In:         in,
		Out:        fmt.Sprintf("%s-out-%s-%d%s", h.workload, c.key, run, h.nonce),
		Group:      fmt.Sprintf("bench-%s-%s-%d%s", h.workload, c.key, run, h.nonce),
		Partitions: parts,
		Proc:       new(procStats),
		Peers:      &h.flags.peers,
		Kfake:      h.kfake(),
	}
	if h.broker == nil {
		j.Replicas = h.flags.peers.replicas
	}
	if err := h.createTopic(ctx, j.Out, parts); err != nil {
		return trial{Err: err}
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.conn.Admin().Delete(dctx, j.Out); err != nil {
			logf("%s: deleting %s: %v", c.key, j.Out, err)
		}
		// Start every contender from a similar heap: the broker keeps
		// every topic in memory.
		runtime.GC()
	}()

	stopProfile, err := h.startProfile(c.key, run)
	if err != nil {
		return trial{Err: err}
	}
	defer stopProfile()

	j.Progress = new(progress)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.run(cctx, j) }()

	if exp.Inputs > 0 {
		tr, err := h.drain(ctx, c, j, exp, start, done, cancel, h.heapProfiler(c.key, run, exp.Inputs))
		stopProfile()
		if err != nil {
			tr.Err = err
			return tr
		}
		addProc(&tr, j.Proc, start)
		tr.Load = loadAverage()
		logf("%s: run %d: %.0f input records/s, wall %v (%s after %v, output complete %v after the last input)%s; output verified; load %.2f",
			c.key, run+1, tr.Throughput, tr.Wall.Round(time.Millisecond), h.startLabel,
			tr.Startup.Round(time.Millisecond), tr.Tail.Round(time.Millisecond), procNote(tr), tr.Load)
		return tr
	}

	tr, runErr := h.watch(ctx, c, j, exp, start, done)
	stopProfile()
	cancel()
	if runErr == nil {
		select {
		case runErr = <-done:
			if runErr != nil {
				runErr = fmt.Errorf("stopping: %w", runErr)
			}
		case <-time.After(time.Minute):
			runErr = errors.New("did not stop within 1m of its context being canceled")
		}
	}
	if runErr != nil {
		tr.Err = runErr
		return tr
	}
	if err := h.verify(ctx, j, exp); err != nil {
		tr.Err = fmt.Errorf("wrong output: %w", err)
		return tr
	}
	addProc(&tr, j.Proc, start)
	tr.Load = loadAverage()
	logf("%s: run %d: %.0f records/s, wall %v (first output after %v)%s; output verified; load %.2f",
		c.key, run+1, tr.Throughput, tr.Wall.Round(time.Millisecond), tr.Startup.Round(time.Millisecond), procNote(tr), tr.Load)
	return tr
}

// addProc adds to tr what was measured of a contender that ran as a child
// process, started at start: its peak RSS, and its CPU time from t0 to t1
// (start+Startup to start+Wall).
func addProc(tr *trial, p *procStats, start time.Time) {
	if !p.measured() {
		return
	}
	tr.PeakRSS = p.peak()
	tr.CPU = p.cpuBetween(start.Add(tr.Startup), start.Add(tr.Wall))
}

// procNote describes tr's peak RSS and CPU time for the log, or is "".
func procNote(tr trial) string {
	if tr.PeakRSS == 0 {
		return ""
	}
	return fmt.Sprintf(", peak RSS %s, CPU %v (%.2f s per million records)", mib(tr.PeakRSS), tr.CPU.Round(time.Millisecond), tr.cpuPerMillion())
}

// mib formats bytes in MiB.
func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// startProfile starts the CPU profile if -cpuprofile asks for this
// contender's run. The returned stop writes it; it may be called more
// than once.
func (h *harness) startProfile(key string, run int) (stop func(), err error) {
	if h.flags.cpuprofile == "" || h.flags.profile != key || run != 0 {
		return func() {}, nil
	}
	f, err := os.Create(h.flags.cpuprofile)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
			logf("%s: CPU profile written to %s", key, h.flags.cpuprofile)
		})
	}, nil
}

// heapProfiler returns what drain calls with the contender's processed
// count: when -memprofile asks for this contender's run, it writes the
// heap profile once the count reaches half of inputs.
func (h *harness) heapProfiler(key string, run int, inputs int64) func(n int64) {
	if h.flags.memprofile == "" || h.flags.profile != key || run != 0 {
		return func(int64) {}
	}
	written := false
	return func(n int64) {
		if written || 2*n < inputs {
			return
		}
		written = true
		f, err := os.Create(h.flags.memprofile)
		if err == nil {
			err = pprof.Lookup("heap").WriteTo(f, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			logf("%s: heap profile: %v", key, err)
			return
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		logf("%s: heap profile at %d of %d input records written to %s; Go heap in use %s, heap from the OS %s, runtime total %s",
			key, n, inputs, h.flags.memprofile, mib(int64(ms.HeapInuse)), mib(int64(ms.HeapSys-ms.HeapReleased)), mib(int64(ms.Sys)))
	}
}

// endPoll is one observation of the output's end offsets.
type endPoll struct {
	at   time.Time
	ends []int64
}

// drain measures a contender whose output does not tell how far it is: an
// aggregation that writes one update per input record or fewer, as its
// cache decides. It polls the contender's processed count and the
// output's end offsets every pollEvery. t0 is the first poll that sees a
// processed record. Once the count reaches exp.Inputs, drain stops the
// contender (stop cancels its context), which makes it commit: a
// contender that holds results until a commit writes them now, without
// waiting for its commit timer. After it has returned, exp.Complete reads
// and checks the output and says which end offsets make it complete; t1
// is the first poll that saw those offsets. The throughput is
// exp.Inputs/(t1-t0). drain also checks that the contender committed
// every input offset. With exp.ReadCommitted the end offsets polled are
// the last stable offsets.
func (h *harness) drain(ctx context.Context, c contender, j job, exp expectation, start time.Time, done <-chan error, stop func(), onProgress func(n int64)) (trial, error) {
	deadline := time.NewTimer(h.flags.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var (
		polls       []endPoll
		t0, drained time.Time
		n           int64
		lastLog     = start
	)
	poll := func() {
		ends, err := listOffsets(ctx, h.cl, j.Out, j.Partitions, exp.ReadCommitted)
		now := time.Now()
		if err != nil {
			if now.Sub(lastLog) >= time.Second {
				logf("%s: reading end offsets: %v", c.key, err)
				lastLog = now
			}
			return
		}
		polls = append(polls, endPoll{at: now, ends: ends})
	}
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				return trial{}, fmt.Errorf("stopped after processing %d of %d input records: %w", n, exp.Inputs, err)
			}
			if drained.IsZero() {
				return trial{}, fmt.Errorf("returned after processing %d of %d input records", n, exp.Inputs)
			}
			running = false
			continue
		case <-deadline.C:
			stop()
			return trial{}, fmt.Errorf("timed out after %v with %d of %d input records processed", h.flags.timeout, n, exp.Inputs)
		case <-ctx.Done():
			return trial{}, ctx.Err()
		case <-tick.C:
		}
		n = j.Progress.processed()
		onProgress(n)
		now := time.Now()
		poll()
		if n > 0 && t0.IsZero() {
			t0 = now
		}
		if n >= exp.Inputs && drained.IsZero() {
			drained = now
			logf("%s: all %d input records processed after %v; stopping it", c.key, n, now.Sub(start).Round(time.Millisecond))
			stop()
		}
		if drained.IsZero() && now.Sub(lastLog) >= time.Second {
			logf("%s: %d/%d input records processed after %v", c.key, n, exp.Inputs, now.Sub(start).Round(time.Millisecond))
			lastLog = now
		}
	}
	// The contender has returned: it writes nothing more.
	poll()
	written, err := h.endOffsets(ctx, j.Out, j.Partitions)
	if err != nil {
		return trial{}, fmt.Errorf("counting the output records: %w", err)
	}
	if n = j.Progress.processed(); n > exp.Inputs {
		return trial{}, fmt.Errorf("processed %d input records, more than the %d there are", n, exp.Inputs)
	}
	for _, in := range append([]string{j.In}, exp.MoreInputs...) {
		ins, err := h.partitionEnds(ctx, in, j.Partitions)
		if err != nil {
			return trial{}, err
		}
		offs, err := h.committed(ctx, j.Group, in, j.Partitions)
		if err != nil {
			return trial{}, err
		}
		if !slices.Equal(ins, offs) {
			return trial{}, fmt.Errorf("committed offsets %v of %s, want its end offsets %v", offs, in, ins)
		}
	}
	need, err := exp.Complete(ctx, h, j)
	if err != nil {
		return trial{}, fmt.Errorf("wrong output: %w", err)
	}
	i := slices.IndexFunc(polls, func(p endPoll) bool {
		for k, e := range p.ends {
			if e < need[k] {
				return false
			}
		}
		return true
	})
	if i < 0 {
		return trial{}, fmt.Errorf("output complete at end offsets %v, never observed", need)
	}
	t1 := polls[i].at
	if !t1.After(t0) {
		return trial{}, fmt.Errorf("first input processed and output complete in the same observation, %v apart: too few records to measure, use more -records", pollEvery)
	}
	counted := exp.Inputs
	if exp.Counted > 0 {
		counted = exp.Counted
	}
	return trial{
		Throughput: float64(counted) / t1.Sub(t0).Seconds(),
		Wall:       t1.Sub(start),
		Startup:    t0.Sub(start),
		Drained:    true,
		Tail:       max(0, t1.Sub(drained)),
		Results:    written,
		ResultRate: float64(written) / t1.Sub(t0).Seconds(),
		Counted:    counted,
	}, nil
}

// completeLatest is the Complete of a count measured by draining, which
// writes each key's count as it changes. It reads a stopped contender's
// whole output, turning each record into a key and count with decode, and
// checks that every key is one of want, that the latest count of every key
// of want is its true count want[k], that no count is above it, and that
// each key stays in one partition (so "latest" means something). show
// formats a key for the errors. It returns, per partition, the end offset
// that completes the output: one past the record from which each of its
// keys shows its true count.
func completeLatest[K comparable](ctx context.Context, h *harness, j job, want map[K]int64,
	decode func(r *kgo.Record) (K, int64, error), show func(K) string,
) ([]int64, error) {
	type keyState struct {
		n         int64
		partition int32
		since     int64 // offset of the record from which n has been the true count, or -1
	}
	seen := make(map[K]*keyState, len(want))
	var bad []string
	nbad := 0
	complain := func(format string, args ...any) {
		nbad++
		if len(bad) < 3 {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	var n int64
	_, err := h.readOutput(ctx, j, func(r *kgo.Record) {
		n++
		k, c, err := decode(r)
		if err != nil {
			complain("%s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			return
		}
		w, ok := want[k]
		if !ok {
			complain("%s/%d@%d: key %s is not in the input", r.Topic, r.Partition, r.Offset, show(k))
			return
		}
		st := seen[k]
		if st == nil {
			st = &keyState{partition: r.Partition, since: -1}
			seen[k] = st
		}
		switch {
		case st.partition != r.Partition:
			complain("key %s in partitions %d and %d", show(k), st.partition, r.Partition)
		case c > w:
			complain("%s/%d@%d: key %s counted %d, but it occurs %d times", r.Topic, r.Partition, r.Offset, show(k), c, w)
		case c == w && st.n != w:
			st.since = r.Offset
		}
		st.n = c
	})
	if err != nil {
		return nil, err
	}
	need := make([]int64, j.Partitions)
	for k, w := range want {
		st := seen[k]
		switch {
		case st == nil:
			complain("key %s (count %d) never written", show(k), w)
		case st.n != w:
			complain("key %s: latest count %d, want %d", show(k), st.n, w)
		default:
			need[st.partition] = max(need[st.partition], st.since+1)
		}
	}
	if nbad > 0 {
		return nil, fmt.Errorf("%d problems, such as: %s", nbad, strings.Join(bad, "; "))
	}
	logf("output: %d records, the latest count of each of %d keys is right", n, len(want))
	return need, nil
}

// completeExact is the Complete of a workload measured by draining whose
// output is known record for record, in any order and partitioning: a
// join writes one record per match. It reads a stopped contender's whole
// output and checks that it holds want[k] records of each key k of want
// and none of another key, and that the records' key/value pairs hash to
// sum (the sum of harness.recordHash over the expected records). Every
// record is needed, so the output is complete at its end offsets.
func completeExact(ctx context.Context, h *harness, j job, want map[string]int64, sum uint64) ([]int64, error) {
	got := make(map[string]int64, len(want))
	var (
		n, total int64
		s        uint64
	)
	ends, err := h.readOutput(ctx, j, func(r *kgo.Record) {
		n++
		s += h.recordHash(r.Key, r.Value)
		got[string(r.Key)]++
	})
	if err != nil {
		return nil, err
	}
	var bad []string
	nbad := 0
	complain := func(format string, args ...any) {
		nbad++
		if len(bad) < 3 {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	for k, w := range want {
		total += w
		if g := got[k]; g != w {
			complain("key %q: %d records, want %d", k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			complain("key %q: %d records, want none", k, g)
		}
	}
	if nbad > 0 {
		return nil, fmt.Errorf("%d records, want %d; %d keys wrong, such as: %s", n, total, nbad, strings.Join(bad, "; "))
	}
	if s != sum {
		return nil, fmt.Errorf("%d records, but their keys and values are not the expected ones (checksum %x, want %x)", n, s, sum)
	}
	logf("output: %d records, exactly the expected ones", n)
	return ends, nil
}

// readOutput reads a stopped contender's whole output, calling fn with
// each record, and returns the end offset of each of its partitions.
func (h *harness) readOutput(ctx context.Context, j job, fn func(r *kgo.Record)) ([]int64, error) {
	ends, err := h.partitionEnds(ctx, j.Out, j.Partitions)
	if err != nil {
		return nil, err
	}
	starts := make(map[int32]kgo.Offset, j.Partitions)
	var total int64
	for p, e := range ends {
		starts[int32(p)] = kgo.NewOffset().AtStart()
		total += e
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.addrs...), kgo.ClientID("bench-verify"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{j.Out: starts}))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var n int64
	for n < total {
		fs := cl.PollFetches(vctx)
		if vctx.Err() != nil {
			return nil, fmt.Errorf("read %d of %d records of %s: %w", n, total, j.Out, vctx.Err())
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			fn(r)
		})
	}
	return ends, nil
}

// watch polls the output's end offsets until they reach exp.Count, the
// contender fails, or the timeout passes. A non-nil error means the trial
// failed; the contender's own error is then already consumed from done.
func (h *harness) watch(ctx context.Context, c contender, j job, exp expectation, start time.Time, done <-chan error) (trial, error) {
	deadline := time.NewTimer(h.flags.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var t0 time.Time
	var last int64
	lastLog := start
	for {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("returned before writing all its output")
			}
			return trial{}, fmt.Errorf("stopped after %d of %d records: %w", last, exp.Count, err)
		case <-deadline.C:
			return trial{}, fmt.Errorf("timed out after %v with %d of %d records written", h.flags.timeout, last, exp.Count)
		case <-ctx.Done():
			return trial{}, ctx.Err()
		case <-tick.C:
		}
		n, err := h.endOffsets(ctx, j.Out, j.Partitions)
		now := time.Now()
		if err != nil {
			if now.Sub(lastLog) >= time.Second {
				logf("%s: reading end offsets: %v", c.key, err)
				lastLog = now
			}
			continue
		}
		last = n
		if n > 0 && t0.IsZero() {
			t0 = now
		}
		if n >= exp.Count {
			if !now.After(t0) {
				return trial{}, fmt.Errorf("all %d records appeared between two observations %v apart: too few to measure, use more -records", n, pollEvery)
			}
			return trial{
				Throughput: float64(exp.Count) / now.Sub(t0).Seconds(),
				Wall:       now.Sub(start),
				Startup:    t0.Sub(start),
				Counted:    exp.Count,
			}, nil
		}
		if now.Sub(lastLog) >= time.Second {
			logf("%s: %d/%d output records after %v", c.key, n, exp.Count, now.Sub(start).Round(time.Millisecond))
			lastLog = now
		}
	}
}

// verify reads the whole output topic and checks it against exp.
func (h *harness) verify(ctx context.Context, j job, exp expectation) error {
	total, err := h.endOffsets(ctx, j.Out, j.Partitions)
	if err != nil {
		return err
	}
	if total != exp.Count {
		return fmt.Errorf("%d records in %s, want %d", total, j.Out, exp.Count)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.addrs...), kgo.ClientID("bench-verify"),
		kgo.ConsumeTopics(j.Out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var n int64
	var sum uint64
	var bad []string
	for n < total {
		fs := cl.PollFetches(vctx)
		if vctx.Err() != nil {
			return fmt.Errorf("read %d of %d records of %s: %w", n, total, j.Out, vctx.Err())
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			sum += h.recordHash(r.Key, r.Value)
			if exp.Check != nil && len(bad) < 3 {
				if err := exp.Check(r.Key, r.Value); err != nil {
					bad = append(bad, fmt.Sprintf("%s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err))
				}
			}
		})
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	if sum != exp.Sum {
		return fmt.Errorf("%d records, but their keys and values are not the expected ones (checksum %x, want %x)", n, sum, exp.Sum)
	}
	return nil
}

// runAll runs every selected contender h.flags.runs times, one after
// another, and summarises each.
func (h *harness) runAll(ctx context.Context, all []contender, in string, exp expectation) ([]summary, error) {
	return h.runEach(ctx, all, func(c contender, run int) trial { return h.measure(ctx, c, run, in, exp) })
}

// runEach runs every selected contender h.flags.runs times with measure,
// one after another, and summarises each. Workloads that do not fit
// measure's mould (a restore has no output topic) bring their own.
func (h *harness) runEach(ctx context.Context, all []contender, measure func(c contender, run int) trial) ([]summary, error) {
	var chosen []contender
	for _, k := range strings.Split(h.flags.contenders, ",") {
		k = strings.TrimSpace(k)
		i := slices.IndexFunc(all, func(c contender) bool { return c.key == k })
		if i < 0 {
			return nil, fmt.Errorf("-contenders: unknown contender %q", k)
		}
		if slices.ContainsFunc(chosen, func(c contender) bool { return c.key == k }) {
			return nil, fmt.Errorf("-contenders: %q given twice", k)
		}
		chosen = append(chosen, all[i])
	}
	skipped := make(map[string]string)
	for _, c := range chosen {
		if c.missing != nil {
			if why := c.missing(&h.flags.peers); why != "" {
				logf("%s: skipped: %s", c.key, why)
				skipped[c.key] = why
			}
		}
	}
	chosen = slices.DeleteFunc(chosen, func(c contender) bool { return skipped[c.key] != "" })
	if h.isolating(chosen) {
		for i, c := range chosen {
			if !c.child && c.run != nil {
				chosen[i] = h.isolate(c)
			}
		}
	}
	// Warm-up runs take the run numbers after the measured ones, so
	// topic and group names stay unique and -cpuprofile still profiles
	// measured run 0.
	for w := range h.flags.warmup {
		for _, c := range chosen {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			logf("%s: warm-up run %d of %d, not reported", c.key, w+1, h.flags.warmup)
			if tr := measure(c, h.flags.runs+w); tr.Err != nil {
				logf("%s: warm-up run %d failed: %v", c.key, w+1, tr.Err)
			}
		}
	}
	trials := make([][]trial, len(chosen))
	for run := range h.flags.runs {
		order := make([]int, len(chosen))
		for i := range order {
			order[i] = i
		}
		if h.flags.alternate && run%2 == 1 {
			slices.Reverse(order)
		}
		for _, i := range order {
			c := chosen[i]
			logf("%s: run %d of %d", c.key, run+1, h.flags.runs)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			tr := measure(c, run)
			if tr.Err != nil {
				logf("%s: run %d failed: %v", c.key, run+1, tr.Err)
			}
			trials[i] = append(trials[i], tr)
		}
	}
	out := make([]summary, len(chosen))
	for i, c := range chosen {
		out[i] = summarise(c, trials[i], h.startLabel)
	}
	// Skipped contenders keep their place in the table.
	for _, k := range strings.Split(h.flags.contenders, ",") {
		k = strings.TrimSpace(k)
		if why := skipped[k]; why != "" {
			i := slices.IndexFunc(all, func(c contender) bool { return c.key == k })
			out = append(out, summary{c: all[i], notes: "skipped: " + why})
		}
	}
	return out, nil
}

// isolating reports whether the Go contenders among chosen run in child
// processes: -isolate on, or auto with a contender that runs as a child
// process anyway (kstreams, quix) among them.
func (h *harness) isolating(chosen []contender) bool {
	switch h.flags.peers.isolate {
	case "on":
		return true
	case "off":
		return false
	}
	return slices.ContainsFunc(chosen, func(c contender) bool { return c.child })
}

// summary is a contender's line in the table.
type summary struct {
	c          contender
	ok         bool
	throughput float64 // median of the successful runs
	wall       time.Duration
	// rss (bytes) and cpuPerM (CPU seconds per million records) are the
	// medians of a contender that ran as a child process; 0 otherwise.
	rss     float64
	cpuPerM float64
	notes   string
	good    []trial // the successful runs, in order
}

// summarise makes a contender's line from its trials; startLabel names
// the moment Startup ends.
func summarise(c contender, trials []trial, startLabel string) summary {
	var good []trial
	var errs []string
	for _, t := range trials {
		if t.Err != nil {
			errs = append(errs, t.Err.Error())
		} else {
			good = append(good, t)
		}
	}
	s := summary{c: c}
	var notes []string
	if c.notes != "" {
		notes = append(notes, c.notes)
	}
	if len(good) == 0 {
		s.notes = "failed: " + errs[0]
		if c.notes != "" {
			s.notes += "; " + c.notes
		}
		return s
	}
	s.ok = true
	s.good = good
	s.throughput = median(good, func(t trial) float64 { return t.Throughput })
	s.wall = time.Duration(median(good, func(t trial) float64 { return float64(t.Wall) }))
	if !slices.ContainsFunc(good, func(t trial) bool { return t.PeakRSS == 0 }) {
		s.rss = median(good, func(t trial) float64 { return float64(t.PeakRSS) })
		s.cpuPerM = median(good, func(t trial) float64 { return t.cpuPerMillion() })
	}
	startup := time.Duration(median(good, func(t trial) float64 { return float64(t.Startup) }))
	notes = append(notes, fmt.Sprintf("%s after %v", startLabel, startup.Round(time.Millisecond)))
	if good[0].Drained {
		tail := time.Duration(median(good, func(t trial) float64 { return float64(t.Tail) }))
		notes = append(notes, fmt.Sprintf("output complete %v after the last input was processed", tail.Round(time.Millisecond)))
	}
	if len(trials) > 1 {
		var each []string
		for _, t := range good {
			each = append(each, groupDigits(t.Throughput))
		}
		notes = append(notes, fmt.Sprintf("median of %d runs (%s)", len(good), strings.Join(each, ", ")))
		if s.rss > 0 {
			var rss, cpu []string
			for _, t := range good {
				rss = append(rss, mib(t.PeakRSS))
				cpu = append(cpu, fmt.Sprintf("%.2f", t.cpuPerMillion()))
			}
			notes = append(notes, fmt.Sprintf("peak RSS of the runs (%s), CPU s per million records (%s)", strings.Join(rss, ", "), strings.Join(cpu, ", ")))
		}
	}
	if !slices.ContainsFunc(good, func(t trial) bool { return t.Load == 0 }) {
		var load []string
		for _, t := range good {
			load = append(load, fmt.Sprintf("%.1f", t.Load))
		}
		notes = append(notes, fmt.Sprintf("1-min load average at the end of each run %s", strings.Join(load, ", ")))
	}
	if len(errs) > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d runs failed: %s", len(errs), len(trials), errs[0]))
	}
	s.notes = strings.Join(notes, "; ")
	return s
}

func median(ts []trial, f func(trial) float64) float64 {
	vs := make([]float64, len(ts))
	for i, t := range ts {
		vs[i] = f(t)
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// printTable writes the title, the machine, the table and the line
// "RESULT <workload> a/b=<ratio> ..." to w.
// ratios lists the RESULT entries as "a/b" pairs of contender keys; an
// entry whose denominator failed is left out, one whose numerator failed
// is 0.00. Ratios are given to two decimals, or two significant digits
// below 0.01.
//
// When a contender ran as a child process, the table has two more
// columns, its peak RSS and CPU seconds per million records, and the
// RESULT line gives each ratio whose two contenders both have a peak RSS
// again as a ratio of peak RSS, named a/b.rss, and of CPU per record,
// named a/b.cpu.
func printTable(w io.Writer, title, workload string, sums []summary, ratios [][2]string) {
	fmt.Fprintf(w, "%s\n\n", title)
	fmt.Fprintf(w, "machine: %s\n\n", machineInfo())
	procs := slices.ContainsFunc(sums, func(s summary) bool { return s.rss > 0 })
	if procs {
		fmt.Fprintln(w, "| contender | records/s | peak RSS | CPU s / M records | wall time | notes |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|")
	} else {
		fmt.Fprintln(w, "| contender | records/s | wall time | notes |")
		fmt.Fprintln(w, "|---|---:|---:|---|")
	}
	for _, s := range sums {
		if !s.ok {
			if procs {
				fmt.Fprintf(w, "| %s | – | – | – | – | %s |\n", s.c.name, escapeCell(s.notes))
			} else {
				fmt.Fprintf(w, "| %s | – | – | %s |\n", s.c.name, escapeCell(s.notes))
			}
			continue
		}
		if procs {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", s.c.name, groupDigits(s.throughput), rssCell(s), cpuCell(s),
				s.wall.Round(time.Millisecond), escapeCell(s.notes))
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", s.c.name, groupDigits(s.throughput),
			s.wall.Round(time.Millisecond), escapeCell(s.notes))
	}
	line := appendRatios("RESULT "+workload, sums, ratios, "", func(s summary) float64 { return s.throughput })
	line = appendProcRatios(line, sums, ratios)
	fmt.Fprintf(w, "\n%s\n", line)
}

// rssCell and cpuCell are a summary's peak RSS and CPU per million
// records for the table, or "–" for a contender that ran in the
// harness's process.
func rssCell(s summary) string {
	if s.rss <= 0 {
		return "–"
	}
	return mib(int64(s.rss))
}

func cpuCell(s summary) string {
	if s.rss <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", s.cpuPerM)
}

// appendProcRatios appends to line, for each pair of ratios whose two
// contenders both ran as child processes and succeeded, " a/b.rss=<ratio>"
// of their peak RSS and " a/b.cpu=<ratio>" of their CPU per record.
func appendProcRatios(line string, sums []summary, ratios [][2]string) string {
	var both [][2]string
	for _, r := range ratios {
		num := slices.IndexFunc(sums, func(s summary) bool { return s.c.key == r[0] })
		den := slices.IndexFunc(sums, func(s summary) bool { return s.c.key == r[1] })
		if num >= 0 && den >= 0 && sums[num].ok && sums[den].ok && sums[num].rss > 0 && sums[den].rss > 0 {
			both = append(both, r)
		}
	}
	line = appendRatios(line, sums, both, ".rss", func(s summary) float64 { return s.rss })
	return appendRatios(line, sums, both, ".cpu", func(s summary) float64 { return s.cpuPerM })
}

// appendRatios appends to line an entry " a/b<suffix>=<ratio>" for each
// pair of contender keys in ratios, the ratio of their rates by rate, as
// printTable describes.
func appendRatios(line string, sums []summary, ratios [][2]string, suffix string, rate func(summary) float64) string {
	byKey := func(k string) (summary, bool) {
		i := slices.IndexFunc(sums, func(s summary) bool { return s.c.key == k })
		if i < 0 {
			return summary{}, false
		}
		return sums[i], true
	}
	for _, r := range ratios {
		num, ok1 := byKey(r[0])
		den, ok2 := byKey(r[1])
		if !ok1 || !ok2 || !den.ok || rate(den) <= 0 {
			continue
		}
		v := 0.0
		if num.ok {
			v = rate(num) / rate(den)
		}
		format := " %s/%s%s=%.2f"
		if v > 0 && v < 0.01 {
			format = " %s/%s%s=%.2g" // two digits, so that it does not read as a failure (0.00)
		}
		line += fmt.Sprintf(format, r[0], r[1], suffix, v)
	}
	return line
}

func escapeCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// groupDigits formats v rounded to an integer with thousands separators.
func groupDigits(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// machineInfo describes where the benchmark ran.
func machineInfo() string {
	info := fmt.Sprintf("%s/%s, NumCPU %d, GOMAXPROCS %d, %s", runtime.GOOS, runtime.GOARCH,
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	if m := cpuModel(); m != "" {
		info += ", " + m
	}
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(l)); len(f) >= 3 {
			info += fmt.Sprintf("; load average %s %s %s (1, 5, 15 min) as the table is printed", f[0], f[1], f[2])
		}
	}
	return info
}

// loadAverage returns the machine's 1-minute load average, or 0 when it
// cannot be read. The machine is shared: it says how much else ran.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

// inputProducer writes a workload's input before the contenders run,
// uncompressed, and keeps the first error.
type inputProducer struct {
	cl      *kgo.Client
	err     atomic.Pointer[error]
	promise func(*kgo.Record, error)
}

// newInputProducer returns a producer to h's broker that writes records
// without a topic to topic.
func (h *harness) newInputProducer(topic string) (*inputProducer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.addrs...), kgo.ClientID("bench-input"),
		kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return nil, err
	}
	p := &inputProducer{cl: cl}
	p.promise = func(_ *kgo.Record, err error) {
		if err != nil {
			p.err.CompareAndSwap(nil, &err)
		}
	}
	return p, nil
}

// produce writes r asynchronously.
func (p *inputProducer) produce(ctx context.Context, r *kgo.Record) { p.cl.Produce(ctx, r, p.promise) }

// flush waits until every record is acknowledged and returns the first
// error of any.
func (p *inputProducer) flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return err
	}
	if e := p.err.Load(); e != nil {
		return fmt.Errorf("producing the input: %w", *e)
	}
	return nil
}

func (p *inputProducer) close() { p.cl.Close() }

// rawGroupClient returns the client of a hand-written contender: a member
// of j's group reading j.In from the start with manual commits, producing
// to j.Out uncompressed, and calling commit when partitions are revoked
// (a failure lands in revokeErr).
func rawGroupClient(j job, commit func(context.Context, *kgo.Client) error, revokeErr *atomic.Pointer[error]) (*kgo.Client, error) {
	return kgo.NewClient(
		kgo.SeedBrokers(j.Brokers...),
		kgo.ClientID(j.Group),
		kgo.ConsumerGroup(j.Group),
		kgo.ConsumeTopics(j.In),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			if err := commit(ctx, cl); err != nil {
				revokeErr.CompareAndSwap(nil, &err)
			}
		}),
		kgo.DefaultProduceTopic(j.Out),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
}

// startStateful parses the flags of a stateful workload (W2, W3, W4, W8),
// checks them and its commit interval (read once parsed), and starts its harness, whose start
// label is the first input processed. The caller closes the harness.
func startStateful(ctx context.Context, fs *flag.FlagSet, args []string, f *commonFlags, every *time.Duration, workload string) (*harness, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	err := f.validate()
	if *every <= 0 {
		err = errors.Join(err, fmt.Errorf("-commit-interval %v: must be positive", *every))
	}
	if err != nil {
		return nil, err
	}
	h, err := newHarness(ctx, workload, f)
	if err != nil {
		return nil, err
	}
	h.startLabel = "first input processed"
	return h, nil
}
