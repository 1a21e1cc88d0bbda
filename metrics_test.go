package kappa

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// countTopology counts the records of each key of "words" (8-byte
// big-endian values; other values fail to decode) into the store "counts"
// and writes the counts to "word-counts".
func countTopology(t testing.TB) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	stream.From(b, "words", codec.String(), codec.Int64()).
		GroupByKey().
		Count(stream.Materialized("counts")).
		ToStream().
		To("word-counts", stream.With(codec.String(), codec.Int64()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// startApp runs an app until the test ends or stop is called.
func startApp(t *testing.T, topo *processor.Topology, opts ...Opt) (*App, func()) {
	t.Helper()
	a, err := New(topo, append([]Opt{HandleSignals(false)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return a, kafkatest.Run(t, "Run", a.Run)
}

// words returns n records of "words" over 50 keys, and bad records that
// fail to decode every tenth.
func words(n, from int) (recs []*kgo.Record, bad int) {
	for i := range n {
		v := binary.BigEndian.AppendUint64(nil, uint64(from+i))
		recs = append(recs, &kgo.Record{Topic: "words", Key: []byte("w" + strconv.Itoa((from+i)%50)), Value: v})
		if i%10 == 0 {
			recs = append(recs, &kgo.Record{Topic: "words", Key: []byte("bad"), Value: []byte("not 8 bytes")})
			bad++
		}
	}
	return recs, bad
}

// scrape gets /metrics from a's handler and checks that it parses and
// passes promlint.
func scrape(t *testing.T, a *App) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	a.metricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: status %d: %s", rec.Code, rec.Body)
	}
	body := rec.Body.Bytes()
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return mfs
}

// series flattens the kappa_ counters and histograms of mfs to one value
// per series (a histogram gives its count, sum and buckets).
func series(mfs map[string]*dto.MetricFamily) map[string]float64 {
	out := make(map[string]float64)
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "kappa_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out[key+"_count"] = float64(h.GetSampleCount())
				out[key+"_sum"] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[fmt.Sprintf("%s_bucket{le=%g}", key, b.GetUpperBound())] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out
}

// sum adds the values of family name whose labels include every label of
// match (name=value pairs).
func sum(mfs map[string]*dto.MetricFamily, name string, match ...string) float64 {
	total := 0.0
	for _, m := range mfs[name].GetMetric() {
		ok := true
		for i := 0; i+1 < len(match); i += 2 {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetName() == match[i] && l.GetValue() == match[i+1]
			}) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// checkMonotonic fails for every counter series of before that is lower
// in after.
func checkMonotonic(t *testing.T, what string, before, after map[string]float64) {
	t.Helper()
	common := 0
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if v, ok := after[k]; ok {
			common++
			if v < before[k] {
				t.Errorf("%s: %s went from %g to %g", what, k, before[k], v)
			}
		}
	}
	if common == 0 {
		t.Errorf("%s: no series in common", what)
	}
}

// processedTotal is the input records the app's metrics count as
// processed.
func processedTotal(t *testing.T, a *App) float64 {
	return sum(scrape(t, a), "kappa_records_processed_total")
}

// TestMetricsAcrossRebalances runs a count over two instances: the
// metrics parse and pass promlint, report what happened (records, dead
// letters, restores, commits, rebalances), and no counter goes backwards
// when tasks move to the second instance and back.
func TestMetricsAcrossRebalances(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "words", 4)
	topo := countTopology(t)
	// Tasks move cold (no warm-up), so that the second instance restores
	// what it takes over and counts it.
	opts := []Opt{AppID("wc"), Brokers(seeds...), CommitInterval(100 * time.Millisecond), SessionTimeout(10 * time.Second),
		MaxWarmupReplicas(0)}
	a1, _ := startApp(t, topo, append(opts, StateDir(t.TempDir()))...)
	cl := kafkatest.Client(t, seeds)

	recs, bad := words(2000, 0)
	kafkatest.Produce(t, cl, recs...)
	want := float64(len(recs))
	kafkatest.Eventually(t, 30*time.Second, "instance 1 to process the first records and commit", func() bool {
		m := scrape(t, a1)
		return sum(m, "kappa_records_processed_total") == want && sum(m, "kappa_records_produced_total") > 0 &&
			sum(m, "kappa_commits_total") > 0
	})
	first := scrape(t, a1)
	for _, c := range []struct {
		name  string
		match []string
		want  float64
	}{
		{"kappa_records_consumed_total", []string{"topic", "words"}, want},
		{"kappa_records_dead_lettered_total", []string{"reason", "decode"}, float64(bad)},
		{"kappa_tasks", []string{"state", "running"}, 4},
	} {
		if got := sum(first, c.name, c.match...); got != c.want {
			t.Errorf("%s%v = %g, want %g", c.name, c.match, got, c.want)
		}
	}
	for _, name := range []string{"kappa_commits_total", "kappa_rebalances_total", "kappa_commit_duration_seconds",
		"kappa_process_batch_duration_seconds", "kappa_end_to_end_latency_seconds", "kappa_store_cache_hits_total"} {
		if sum(first, name) == 0 {
			t.Errorf("%s: nothing counted", name)
		}
	}
	if n := len(first["kappa_consumer_lag_records"].GetMetric()); n != 4 {
		t.Errorf("kappa_consumer_lag_records: %d series, want one per input partition (4)", n)
	}
	before := series(first)

	// A second instance takes two tasks, and restores their stores.
	a2, stop2 := startApp(t, topo, append(opts, StateDir(t.TempDir()))...)
	kafkatest.Eventually(t, 60*time.Second, "the tasks to spread over both instances", func() bool {
		return len(a1.Tasks()) == 2 && len(a2.Tasks()) == 2 && allRunning(a1) && allRunning(a2)
	})
	recs, _ = words(2000, 2000)
	kafkatest.Produce(t, cl, recs...)
	want += float64(len(recs))
	kafkatest.Eventually(t, 30*time.Second, "both instances to process the new records", func() bool {
		return processedTotal(t, a1)+processedTotal(t, a2) >= want
	})
	second := scrape(t, a1)
	checkMonotonic(t, "instance 1, after the second instance joined", before, series(second))
	m2 := scrape(t, a2)
	if sum(m2, "kappa_restored_records_total") == 0 {
		t.Error("instance 2 took tasks over, but kappa_restored_records_total counts no restored record")
	}
	if got := sum(m2, "kappa_restore_records_remaining"); got != 0 {
		t.Errorf("instance 2 restored its tasks, but %g records remain", got)
	}

	// The second instance leaves: its tasks come back to the first, which
	// continues their counters.
	stop2()
	kafkatest.Eventually(t, 60*time.Second, "instance 1 to run every task again", func() bool {
		return len(a1.Tasks()) == 4 && allRunning(a1)
	})
	recs, _ = words(1000, 4000)
	kafkatest.Produce(t, cl, recs...)
	base := sum(second, "kappa_records_processed_total")
	kafkatest.Eventually(t, 30*time.Second, "instance 1 to process the last records", func() bool {
		return processedTotal(t, a1) >= base+float64(len(recs))
	})
	third := scrape(t, a1)
	checkMonotonic(t, "instance 1, after the second instance left", series(second), series(third))
	checkMonotonic(t, "instance 1, from the first scrape to the last", before, series(third))
	if got := sum(third, "kappa_rebalances_total"); got < 3 {
		t.Errorf("kappa_rebalances_total = %g after three assignments", got)
	}
}

func allRunning(a *App) bool {
	sts := a.TaskStatus()
	for _, st := range sts {
		if st.State != processor.TaskRunning {
			return false
		}
	}
	return len(sts) > 0
}

// TestMetricsRegistry registers the metrics in the user's registry, serves
// it, refuses a second app of the same ID in it, and turns metrics off.
func TestMetricsRegistry(t *testing.T) {
	topo := countTopology(t)
	reg := prometheus.NewRegistry()
	a, err := New(topo, AppID("reg"), Brokers("127.0.0.1:9092"), MetricsRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	if a.metrics.gatherer != prometheus.Gatherer(reg) {
		t.Error("/metrics does not serve the registry given")
	}
	m := scrape(t, a)
	if sum(m, "kappa_commits_total") != 0 || m["kappa_commits_total"] == nil {
		t.Errorf("kappa_commits_total missing or not 0 before Run")
	}
	if _, err := New(topo, AppID("reg"), Brokers("127.0.0.1:9092"), MetricsRegistry(reg)); err == nil ||
		!strings.Contains(err.Error(), "already registered") {
		t.Errorf("second app of one ID in one registry: %v", err)
	}
	if _, err := New(topo, AppID("other"), Brokers("127.0.0.1:9092"), MetricsRegistry(reg)); err != nil {
		t.Errorf("second app of another ID in one registry: %v", err)
	}

	// A Registerer that cannot be gathered: /metrics serves the app's own.
	wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"instance": "a"}, prometheus.NewRegistry())
	a, err = New(topo, AppID("wrapped"), Brokers("127.0.0.1:9092"), MetricsRegistry(wrapped))
	if err != nil {
		t.Fatal(err)
	}
	if m := scrape(t, a); m["kappa_commits_total"] == nil || m["go_goroutines"] == nil {
		t.Error("the app's own registry misses the kappa or Go metrics")
	}

	off, err := New(topo, AppID("off"), Brokers("127.0.0.1:9092"), MetricsRegistry(nil))
	if err != nil {
		t.Fatal(err)
	}
	if off.metrics.runner != nil || len(scrape(t, off)) != 0 {
		t.Error("MetricsRegistry(nil) did not turn metrics off")
	}
}

// lockedBuffer is a bytes.Buffer for a logger written from many
// goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDeadLetterLogIsRateLimited checks that dead-lettered records are
// logged, but at most about one line per task per interval, while every
// one is counted.
func TestDeadLetterLogIsRateLimited(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "words", 1)
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, _ := startApp(t, countTopology(t), AppID("dl"), Brokers(seeds...), CommitInterval(100*time.Millisecond),
		StateDir(t.TempDir()), Logger(log))
	recs, bad := words(1000, 0)
	kafkatest.Produce(t, kafkatest.Client(t, seeds), recs...)
	kafkatest.Eventually(t, 30*time.Second, "the records to be processed", func() bool {
		return processedTotal(t, a) == float64(len(recs))
	})
	if got := sum(scrape(t, a), "kappa_records_dead_lettered_total", "reason", "decode"); got != float64(bad) {
		t.Errorf("kappa_records_dead_lettered_total = %g, want %d", got, bad)
	}
	lines := strings.Count(logs.String(), "record sent to dead-letter topic")
	// One task: a line for the first, then at most one per 5s (the test
	// takes a few seconds at most).
	if lines == 0 || lines > 3 {
		t.Errorf("%d log lines for %d dead letters, want 1 to 3:\n%s", lines, bad, logs.String())
	}
	if !strings.Contains(logs.String(), "suppressed=0") {
		t.Errorf("the first line does not count suppressed dead letters:\n%s", logs.String())
	}
}

// TestGlobalTableReadRetried fails the global table's reads after its
// bootstrap: the broker answers its fetches with
// TOPIC_AUTHORIZATION_FAILED, which the client gives up on. The reading
// must start again, with backoff, and take in what was written meanwhile;
// the metrics count the failures and say how long the table is stale
// while they last.
func TestGlobalTableReadRetried(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "articles", 1)
	kafkatest.CreateTopic(t, seeds, "views", 1)
	cl := kafkatest.Client(t, seeds)
	kafkatest.Produce(t, cl, &kgo.Record{Topic: "articles", Key: []byte("a1"), Value: []byte("first")})
	bld := stream.NewBuilder()
	articles := stream.GlobalTable(bld, "articles", codec.String(), codec.String())
	views := stream.From(bld, "views", codec.String(), codec.String())
	stream.JoinGlobal(views, articles, func(_ string, a string) string { return a },
		func(_ string, _ string, title string) string { return title }).To("titled")
	topo, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := startApp(t, topo, AppID("globals"), Brokers(seeds...), CommitInterval(100*time.Millisecond))
	kafkatest.Produce(t, cl, &kgo.Record{Topic: "views", Key: []byte("u"), Value: []byte("a1")})
	if out := kafkatest.Consume(t, seeds, "titled", 1, 30*time.Second); string(out[0].Value) != "first" {
		t.Fatalf("joined %q, want first", out[0].Value)
	}

	// Refuse the next fetches of "articles", whoever sends them (only the
	// global table's reader reads it; a fetch session's later requests may
	// leave the topic out, so one refusal can be all).
	var mu sync.Mutex
	refused := 0
	b.Cluster().ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		b.Cluster().KeepControl()
		fr := req.(*kmsg.FetchRequest)
		mu.Lock()
		defer mu.Unlock()
		if refused >= 3 {
			return nil, nil, false
		}
		hit := false
		for _, rt := range fr.Topics {
			hit = hit || rt.Topic == "articles"
		}
		if !hit {
			return nil, nil, false
		}
		refused++
		return kafkatest.FetchErrorResponse(fr, kerr.TopicAuthorizationFailed.Code), nil, true
	})
	kafkatest.Produce(t, cl, &kgo.Record{Topic: "articles", Key: []byte("a1"), Value: []byte("second")})
	kafkatest.Eventually(t, 30*time.Second, "the global table's reading to fail and be counted", func() bool {
		return sum(scrape(t, a), "kappa_global_table_read_errors_total", "table", "articles-global") > 0
	})
	viewed := 1
	kafkatest.Eventually(t, 30*time.Second, "a view joined with the row written while the reading failed", func() bool {
		kafkatest.Produce(t, cl, &kgo.Record{Topic: "views", Key: []byte("u"), Value: []byte("a1")})
		viewed++
		out := kafkatest.Consume(t, seeds, "titled", viewed, 10*time.Second)
		return string(out[len(out)-1].Value) == "second"
	})
	if stale := sum(scrape(t, a), "kappa_global_table_stale_seconds", "table", "articles-global"); stale != 0 {
		t.Errorf("kappa_global_table_stale_seconds %v once the table reads again, want 0", stale)
	}
}
