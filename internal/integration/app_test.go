package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/internal/crash"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type click struct {
	User    string `json:"user"`
	Seq     int    `json:"seq"`
	Article string `json:"article"`
	Bot     bool   `json:"bot"`
}

// routerTopology drops bots and emits "<user>:<seq>:<article>" keyed by
// user: every surviving input appears once, and per-key order can be
// checked from the sequence numbers.
func routerTopology(t testing.TB) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	clicks := stream.From(b, "clicks", codec.String(), codec.JSON[click]())
	human := clicks.Filter(func(_ string, c click) bool { return !c.Bot }, stream.Named("humans"))
	stream.MapValues(human, func(_ string, c click) string {
		return fmt.Sprintf("%s:%d:%s", c.User, c.Seq, c.Article)
	}, stream.Named("format")).To("routed")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// makeClicks returns n clicks over users users with per-user sequence
// numbers; every tenth is a bot.
func makeClicks(n, users int) ([]*kgo.Record, int) {
	recs := make([]*kgo.Record, n)
	seq := make([]int, users)
	humans := 0
	for i := range n {
		u := i % users
		c := click{User: "u" + strconv.Itoa(u), Seq: seq[u], Article: "a" + strconv.Itoa(i%97), Bot: i%10 == 9}
		seq[u]++
		if !c.Bot {
			humans++
		}
		v, _ := json.Marshal(c)
		recs[i] = &kgo.Record{Topic: "clicks", Key: []byte(c.User), Value: v}
	}
	return recs, humans
}

// checkRouted verifies each human click appears, in per-user order, at
// least once (exactlyOnce: exactly once).
func checkRouted(t *testing.T, out []*kgo.Record, inputs []*kgo.Record, exactlyOnce bool) {
	t.Helper()
	want := make(map[string]bool)
	for _, r := range inputs {
		var c click
		json.Unmarshal(r.Value, &c)
		if !c.Bot {
			want[fmt.Sprintf("%s:%d:%s", c.User, c.Seq, c.Article)] = true
		}
	}
	seen := make(map[string]int)
	last := make(map[string]int)
	for _, r := range out {
		v := string(r.Value)
		seen[v]++
		parts := strings.Split(v, ":")
		if parts[0] != string(r.Key) {
			t.Fatalf("output %q has key %q", v, r.Key)
		}
		seq, _ := strconv.Atoi(parts[1])
		if prev, ok := last[parts[0]]; ok && seq <= prev && exactlyOnce {
			t.Fatalf("user %s: seq %d after %d: per-key order broken", parts[0], seq, prev)
		}
		last[parts[0]] = seq
		if !want[v] {
			t.Fatalf("unexpected output %q", v)
		}
	}
	missing := 0
	for v := range want {
		if seen[v] == 0 {
			missing++
		}
		if exactlyOnce && seen[v] > 1 {
			t.Fatalf("%q appears %d times", v, seen[v])
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d records missing from the output", missing, len(want))
	}
}

// switches holds the crash switch of each app started with crashable.
var switches sync.Map // *kappa.App → *crash.Switch

// crashable returns ctx with a crash switch for app, to pass to its Run:
// kill then stops it as a crash would.
func crashable(ctx context.Context, app *kappa.App) context.Context {
	sw := new(crash.Switch)
	switches.Store(app, sw)
	return crash.With(ctx, sw)
}

// kill stops app as a crash would: no final flush, no commit, no leave.
// The app must have been run with a context from crashable.
func kill(app *kappa.App) {
	sw, ok := switches.Load(app)
	if !ok {
		panic("kill: the app was not run with a context from crashable")
	}
	sw.(*crash.Switch).Pull()
}

// runApp runs an app in the background; the returned stop cancels it and
// returns Run's error.
func runApp(t *testing.T, topo *processor.Topology, opts ...kappa.Opt) (*kappa.App, func() error) {
	t.Helper()
	app, err := kappa.New(topo, append([]kappa.Opt{kappa.HandleSignals(false)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(crashable(context.Background(), app))
	errc := make(chan error, 1)
	go func() { errc <- app.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(60 * time.Second):
				runErr = errors.New("app did not stop within 60s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return app, stop
}

func TestTwoInstances200k(t *testing.T) {
	if testing.Short() {
		t.Skip("200k records through the broker; run without -short")
	}
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 4)
	topo := routerTopology(t)
	opts := []kappa.Opt{kappa.AppID("router"), kappa.Brokers(seeds...), kappa.CommitInterval(200 * time.Millisecond), kappa.SessionTimeout(10 * time.Second)}
	a1, stop1 := runApp(t, topo, opts...)
	a2, stop2 := runApp(t, topo, opts...)
	kafkatest.Eventually(t, 30*time.Second, "both instances to own tasks", func() bool {
		return len(a1.Tasks()) == 2 && len(a2.Tasks()) == 2
	})
	inputs, humans := makeClicks(200_000, 1000)
	kafkatest.Produce(t, kafkatest.Client(t, seeds), inputs...)
	out := kafkatest.Consume(t, seeds, "routed", humans, 90*time.Second)
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	// Nothing extra arrives after both stopped and committed.
	out = kafkatest.Consume(t, seeds, "routed", len(out), 10*time.Second)
	checkRouted(t, out, inputs, true)
	if a1.Processed() == 0 || a2.Processed() == 0 {
		t.Fatalf("work not shared: %d and %d processed", a1.Processed(), a2.Processed())
	}
}

func TestStopAndRestartLosesNothing(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 4)
	topo := routerTopology(t)
	opts := []kappa.Opt{kappa.AppID("router"), kappa.Brokers(seeds...), kappa.CommitInterval(100 * time.Millisecond), kappa.SessionTimeout(10 * time.Second)}
	a1, stop1 := runApp(t, topo, opts...)
	a2, stop2 := runApp(t, topo, opts...)
	kafkatest.Eventually(t, 30*time.Second, "both instances to own tasks", func() bool {
		return len(a1.Tasks()) == 2 && len(a2.Tasks()) == 2
	})
	inputs, humans := makeClicks(60_000, 500)
	cl := kafkatest.Client(t, seeds)
	kafkatest.Produce(t, cl, inputs[:20_000]...)
	kafkatest.Eventually(t, 30*time.Second, "instance 2 to process some records", func() bool { return a2.Processed() > 0 })
	// Stop instance 2 mid-stream; instance 1 takes all tasks over.
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 30*time.Second, "instance 1 to own every task", func() bool { return len(a1.Tasks()) == 4 })
	kafkatest.Produce(t, cl, inputs[20_000:40_000]...)
	// Restart it: tasks spread again.
	a3, stop3 := runApp(t, topo, opts...)
	kafkatest.Eventually(t, 30*time.Second, "the restarted instance to own tasks", func() bool { return len(a3.Tasks()) == 2 })
	kafkatest.Produce(t, cl, inputs[40_000:]...)
	out := kafkatest.Consume(t, seeds, "routed", humans, 60*time.Second)
	for _, stop := range []func() error{stop1, stop3} {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	out = kafkatest.Consume(t, seeds, "routed", len(out), 10*time.Second)
	// Graceful handovers commit before revoking, so even here nothing is
	// duplicated; at-least-once only promises no loss.
	checkRouted(t, out, inputs, false)
}

func TestMalformedRecordsGoToDLQ(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 2)
	inputs, humans := makeClicks(2000, 50)
	var mixed []*kgo.Record
	bad := 0
	for i, r := range inputs {
		mixed = append(mixed, r)
		if i%20 == 0 {
			mixed = append(mixed, &kgo.Record{Topic: "clicks", Key: []byte("bad" + strconv.Itoa(i)), Value: []byte(`{"user": "x", "seq": "not a number"`)})
			bad++
		}
	}
	kafkatest.Produce(t, kafkatest.Client(t, seeds), mixed...)
	_, stop := runApp(t, routerTopology(t), kappa.AppID("router"), kappa.Brokers(seeds...), kappa.CommitInterval(100*time.Millisecond))
	out := kafkatest.Consume(t, seeds, "routed", humans, 30*time.Second)
	dlq := kafkatest.Consume(t, seeds, "router-dlq", bad, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkRouted(t, out, inputs, true)
	for _, r := range dlq {
		h := headers(r)
		if !strings.HasPrefix(string(r.Key), "bad") {
			t.Fatalf("dead letter %q: unexpected", r.Key)
		}
		if !strings.Contains(h["kappa.error"], "decode value") || h["kappa.error.kind"] != "decode" ||
			h["kappa.topic"] != "clicks" || h["kappa.partition"] != strconv.Itoa(int(r.Partition)) || h["kappa.offset"] == "" {
			t.Fatalf("dead letter headers: %v", h)
		}
	}
}

func headers(r *kgo.Record) map[string]string {
	m := make(map[string]string)
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestFailFastStopsTheApp(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "clicks", 1)
	cl := kafkatest.Client(t, seeds)
	kafkatest.Produce(t, cl, &kgo.Record{Topic: "clicks", Key: []byte("u"), Value: []byte(`{"user":"u","seq":0}`)},
		&kgo.Record{Topic: "clicks", Key: []byte("u"), Value: []byte(`garbage`)})
	app, err := kappa.New(routerTopology(t), kappa.AppID("ff"), kappa.Brokers(seeds...), kappa.OnError(kappa.FailFast), kappa.HandleSignals(false))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = app.Run(ctx)
	var re *processor.RecordError
	if !errors.As(err, &re) || re.Topic != "clicks" || re.Offset != 1 {
		t.Fatalf("Run returned %v, want a RecordError for clicks@1", err)
	}
	// Nothing is committed after the failure, not even the good record
	// before it: the failing record may have half-applied its effects, so
	// a restart processes both again (as Kafka Streams' dirty close does).
	adm := kafkatest.Client(t, seeds)
	if off := committed(t, adm, "ff", "clicks", 0); off > 1 {
		t.Fatalf("committed offset %d: past the failed record at 1", off)
	}
}

func committed(t *testing.T, cl *kgo.Client, group, topic string, p int32) int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	rt.Partitions = []int32{p}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range resp.Topics {
		for _, pp := range tt.Partitions {
			return pp.Offset
		}
	}
	return -1
}

func TestConfigErrors(t *testing.T) {
	topo := routerTopology(t)
	_, err := kappa.New(topo, kappa.AppID("has space"), kappa.Brokers("nohostport"), kappa.CommitInterval(-time.Second))
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{`AppID("has space")`, `Brokers("nohostport"): want host:port`, `CommitInterval(-1s): must be positive`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q:\n%v", want, err)
		}
	}
	_, err = kappa.New(topo)
	for _, want := range []string{"AppID is required", "Brokers is required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}

// TestReplicationConfig checks the replication options: values out of
// range fail at New, a factor above the cluster's brokers fails at Run
// naming the option, and the defaults fit a one-broker cluster.
func TestReplicationConfig(t *testing.T) {
	topo := routerTopology(t)
	_, err := kappa.New(topo, kappa.AppID("r"), kappa.Brokers("127.0.0.1:1"), kappa.ReplicationFactor(0), kappa.MinInsyncReplicas(0))
	for _, want := range []string{"ReplicationFactor(0): must be at least 1", "MinInsyncReplicas(0): must be at least 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	_, err = kappa.New(topo, kappa.AppID("r"), kappa.Brokers("127.0.0.1:1"), kappa.ReplicationFactor(2), kappa.MinInsyncReplicas(3))
	if err == nil || !strings.Contains(err.Error(), "MinInsyncReplicas(3): must be at most ReplicationFactor (2)") {
		t.Errorf("error %v does not name MinInsyncReplicas above the factor", err)
	}

	b := kafkatest.Broker(t)
	kafkatest.CreateTopic(t, b.Addrs(), "clicks", 2)
	app, err := kappa.New(topo, kappa.AppID("r3"), kappa.Brokers(b.Addrs()...), kappa.HandleSignals(false), kappa.ReplicationFactor(3))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := app.Run(ctx); err == nil || !strings.Contains(err.Error(), "ReplicationFactor(3): the cluster has 1 broker(s); set it to at most 1") {
		t.Fatalf("Run with 3 replicas on one broker: %v, want an error naming ReplicationFactor", err)
	}

	// The defaults on one broker: the topics are created, with one replica.
	app, stop := runApp(t, topo, kappa.AppID("r1"), kappa.Brokers(b.Addrs()...))
	kafkatest.Eventually(t, 20*time.Second, "the app's tasks", func() bool { return len(app.Tasks()) > 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(kafkatest.Client(t, b.Addrs()))
	td, err := adm.ListTopics(context.Background(), "r1-dlq")
	if err != nil || td["r1-dlq"].Err != nil {
		t.Fatalf("describe r1-dlq: %v %v", err, td["r1-dlq"].Err)
	}
	for _, p := range td["r1-dlq"].Partitions {
		if len(p.Replicas) != 1 {
			t.Fatalf("r1-dlq partition %d has replicas %v, want one", p.Partition, p.Replicas)
		}
	}
}

func TestMissingSourceTopic(t *testing.T) {
	b := kafkatest.Broker(t)
	app, err := kappa.New(routerTopology(t), kappa.AppID("r"), kappa.Brokers(b.Addrs()...), kappa.HandleSignals(false))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = app.Run(ctx)
	if !errors.Is(err, processor.ErrMissingSource) || !strings.Contains(err.Error(), `"clicks"`) {
		t.Fatalf("Run: %v, want ErrMissingSource naming clicks", err)
	}
}

// seenBy records which instance processed each topic/partition.
type seenBy struct {
	mu   sync.Mutex
	seen map[string]map[string]bool // "topic/p" → instances
}

func (s *seenBy) topology(t *testing.T, instance string) *processor.Topology {
	b := stream.NewBuilder()
	in := stream.FromTopics(b, []string{"left", "right"}, codec.String(), codec.String())
	stream.Process(in, processor.Func[string, string, string, string](
		func(ctx processor.Context[string, string], rec processor.Record[string, string]) error {
			m := ctx.RecordMetadata()
			s.mu.Lock()
			key := fmt.Sprintf("%s/%d", m.Topic, m.Partition)
			if s.seen[key] == nil {
				s.seen[key] = map[string]bool{}
			}
			s.seen[key][instance] = true
			s.mu.Unlock()
			ctx.Forward(rec)
			return nil
		}).Supply()).To("joined-out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestThreeInstancesCoPartitioned(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "left", 6)
	kafkatest.CreateTopic(t, seeds, "right", 6)
	s := &seenBy{seen: map[string]map[string]bool{}}
	opts := []kappa.Opt{kappa.AppID("copart"), kappa.Brokers(seeds...), kappa.CommitInterval(100 * time.Millisecond), kappa.SessionTimeout(10 * time.Second)}
	apps := map[string]*kappa.App{}
	stops := map[string]func() error{}
	start := func(name string) {
		apps[name], stops[name] = runApp(t, s.topology(t, name), opts...)
	}
	// stable waits until the running instances split the 6 tasks evenly
	// and disjointly.
	stable := func(what string) {
		t.Helper()
		kafkatest.Eventually(t, 30*time.Second, what, func() bool {
			owned := map[processor.TaskID]int{}
			for _, a := range apps {
				ts := a.Tasks()
				if len(ts) != 6/len(apps) {
					return false
				}
				for _, id := range ts {
					owned[id]++
				}
			}
			for _, n := range owned {
				if n != 1 {
					return false
				}
			}
			return len(owned) == 6
		})
	}
	cl := kafkatest.Client(t, seeds)
	total := 0
	produce := func(n int) {
		var recs []*kgo.Record
		for i := range n {
			for _, topic := range []string{"left", "right"} {
				recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("k" + strconv.Itoa(i)), Value: []byte(topic)})
			}
		}
		kafkatest.Produce(t, cl, recs...)
		total += len(recs)
		kafkatest.Consume(t, seeds, "joined-out", total, 30*time.Second)
	}
	checkCoPartitioned := func() {
		t.Helper()
		s.mu.Lock()
		defer s.mu.Unlock()
		for p := range 6 {
			l, r := s.seen[fmt.Sprintf("left/%d", p)], s.seen[fmt.Sprintf("right/%d", p)]
			if len(l) != 1 || fmt.Sprint(l) != fmt.Sprint(r) {
				t.Fatalf("partition %d: left processed by %v, right by %v", p, l, r)
			}
		}
		s.seen = map[string]map[string]bool{}
	}

	for _, name := range []string{"a", "b", "c"} {
		start(name)
	}
	stable("three instances to own two tasks each")
	produce(600)
	checkCoPartitioned()

	// c leaves: a and b take its tasks.
	if err := stops["c"](); err != nil {
		t.Fatal(err)
	}
	delete(apps, "c")
	stable("two instances to own three tasks each")
	produce(600)
	checkCoPartitioned()

	// d joins, then a leaves.
	start("d")
	stable("three instances again")
	if err := stops["a"](); err != nil {
		t.Fatal(err)
	}
	delete(apps, "a")
	stable("b and d to own three tasks each")
	produce(600)
	checkCoPartitioned()
}
