package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/query"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/window"
	"github.com/twmb/franz-go/pkg/kgo"
)

// queryTopology counts words per key into the store "counts" and per key
// and minute into the window store "per-minute", whose grace keeps every
// minute of the input.
func queryTopology(t testing.TB) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	words := stream.From(b, "words", codec.String(), codec.String())
	g := words.GroupByKey()
	g.Count(stream.Materialized("counts"))
	stream.WindowedBy(g, window.Tumbling(time.Minute).Grace(10*time.Minute)).Count(stream.Materialized("per-minute"))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// queryTruth is the input of the query tests and what it must count.
type queryTruth struct {
	counts    map[string]int64
	perMinute map[string]map[int64]int64 // key → window start (ms) → count
	recs      []*kgo.Record
}

func makeQueryInput(keys, n int, seed uint64) queryTruth {
	rng := rand.New(rand.NewPCG(seed, 1))
	base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tr := queryTruth{counts: map[string]int64{}, perMinute: map[string]map[int64]int64{}}
	for i := range n {
		k := fmt.Sprintf("key-%03d", rng.IntN(keys))
		ts := base.Add(time.Duration(rng.IntN(5*60)) * time.Second)
		tr.recs = append(tr.recs, &kgo.Record{Topic: "words", Key: []byte(k), Value: []byte(strconv.Itoa(i)), Timestamp: ts})
		tr.counts[k]++
		start := ts.Truncate(time.Minute).UnixMilli()
		if tr.perMinute[k] == nil {
			tr.perMinute[k] = map[int64]int64{}
		}
		tr.perMinute[k][start]++
	}
	return tr
}

// getKey asks the instance at addr for key of store over HTTP.
func getKey(addr, store, key string) (code int, value int64, body string, err error) {
	resp, err := http.Get("http://" + addr + "/v1/stores/" + store + "/keys/" + url.PathEscape(key))
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, 0, string(b), nil
	}
	var ans struct {
		Value int64 `json:"value"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return resp.StatusCode, 0, string(b), err
	}
	return resp.StatusCode, ans.Value, string(b), nil
}

// TestQueriesAcrossInstances runs three instances with HTTP on: every key
// asked of every instance, over HTTP, equals the truth (the key's owner
// answers, one hop away); typed local reads agree, and name the owner for
// keys held elsewhere; ranges gather every instance's part; window
// fetches see every minute. Then one instance stops: while its tasks move
// and restore, every answer is the truth or a 503 with Retry-After, never
// a wrong value or a missing key; after, every key is served again.
func TestQueriesAcrossInstances(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "words", 6)
	tr := makeQueryInput(40, 3000, 7)
	kafkatest.Produce(t, kafkatest.Client(t, seeds), tr.recs...)

	topo := queryTopology(t)
	dir := t.TempDir()
	var apps []*kappa.App
	var stops []func() error
	for i := range 3 {
		app, stop := runApp(t, topo, kappa.AppID("query"), kappa.Brokers(seeds...), kappa.CommitInterval(100*time.Millisecond),
			kappa.StateDir(filepath.Join(dir, strconv.Itoa(i))), kappa.HTTP("127.0.0.1:0"))
		apps, stops = append(apps, app), append(stops, stop)
	}
	// Every key from every instance equals the truth: the condition the
	// test waits for, and then checks once more in full.
	allRight := func(apps []*kappa.App) error {
		for _, app := range apps {
			addr := app.HTTPAddr()
			if addr == "" {
				return errors.New("no HTTP address yet")
			}
			for k, want := range tr.counts {
				code, got, body, err := getKey(addr, "counts", k)
				if err != nil || code != http.StatusOK || got != want {
					return fmt.Errorf("%s: key %s: %d %s (want %d)", addr, k, code, body, want)
				}
			}
		}
		return nil
	}
	var last error
	kafkatest.Eventually(t, 60*time.Second, "every key right from every instance", func() bool {
		last = allRight(apps)
		return last == nil
	})

	// Typed local reads, and metadata that every instance agrees on.
	local := 0
	for k, want := range tr.counts {
		var owners []string
		for _, app := range apps {
			md, err := app.Metadata("counts", k)
			if err != nil {
				t.Fatal(err)
			}
			owners = append(owners, md.Endpoint)
			kv, err := query.KeyValue[string, int64](app.Stores(), "counts")
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := kv.Get(k)
			switch {
			case md.Local:
				local++
				if err != nil || !ok || got != want {
					t.Errorf("typed Get(%s) on its owner: %d %t %v, want %d", k, got, ok, err, want)
				}
				if md.Endpoint != app.HTTPAddr() {
					t.Errorf("metadata of a local key names %s, the instance is %s", md.Endpoint, app.HTTPAddr())
				}
			default:
				var na *query.NotAvailableError
				if !errors.As(err, &na) || !errors.Is(err, query.ErrNotLocal) || na.Owner != md.Endpoint {
					t.Errorf("typed Get(%s) away from its owner: %v, want ErrNotLocal naming %s", k, err, md.Endpoint)
				}
			}
		}
		if owners[0] != owners[1] || owners[1] != owners[2] || owners[0] == "" {
			t.Errorf("key %s: instances disagree on its owner: %v", k, owners)
		}
	}
	if local != len(tr.counts) {
		t.Errorf("%d keys were local to an instance, want each of the %d on exactly one", local, len(tr.counts))
	}
	if _, err := query.KeyValue[int64, int64](apps[0].Stores(), "counts"); !errors.Is(err, query.ErrWrongType) {
		t.Errorf("typed access with the wrong key type: %v, want ErrWrongType", err)
	}
	if _, err := query.KeyValue[string, int64](apps[0].Stores(), "nope"); !errors.Is(err, query.ErrUnknownStore) {
		t.Errorf("typed access to a missing store: %v, want ErrUnknownStore", err)
	}

	// A range, from any instance, holds every key once.
	for _, app := range apps {
		var ans struct {
			Partitions []int32 `json:"partitions"`
			Entries    []struct {
				Key   string `json:"key"`
				Value int64  `json:"value"`
			} `json:"entries"`
		}
		getJSON(t, "http://"+app.HTTPAddr()+"/v1/stores/counts/keys", http.StatusOK, &ans)
		got := map[string]int64{}
		for _, e := range ans.Entries {
			if _, dup := got[e.Key]; dup {
				t.Errorf("range from %s: key %s twice", app.HTTPAddr(), e.Key)
			}
			got[e.Key] = e.Value
		}
		if len(got) != len(tr.counts) || len(ans.Partitions) != 6 {
			t.Errorf("range from %s: %d keys from partitions %v, want %d from all 6", app.HTTPAddr(), len(got), ans.Partitions, len(tr.counts))
		}
		for k, want := range tr.counts {
			if got[k] != want {
				t.Errorf("range from %s: %s = %d, want %d", app.HTTPAddr(), k, got[k], want)
			}
		}
	}
	// Windows of a key, from any instance.
	for k, minutes := range tr.perMinute {
		var ans struct {
			Windows []struct {
				Start, End int64
				Value      int64
			} `json:"windows"`
		}
		getJSON(t, "http://"+apps[1].HTTPAddr()+"/v1/stores/per-minute/keys/"+k+"/windows", http.StatusOK, &ans)
		if len(ans.Windows) != len(minutes) {
			t.Errorf("windows of %s: %d, want %d", k, len(ans.Windows), len(minutes))
		}
		for _, w := range ans.Windows {
			if w.End-w.Start != time.Minute.Milliseconds() || minutes[w.Start] != w.Value {
				t.Errorf("windows of %s: [%d,%d) = %d, want %d", k, w.Start, w.End, w.Value, minutes[w.Start])
			}
		}
	}
	// Errors: a missing store, a missing key, a key of the wrong kind.
	getJSON(t, "http://"+apps[0].HTTPAddr()+"/v1/stores/nope/keys/a", http.StatusNotFound, nil)
	getJSON(t, "http://"+apps[0].HTTPAddr()+"/v1/stores/counts/keys/absent-key", http.StatusNotFound, nil)
	getJSON(t, "http://"+apps[0].HTTPAddr()+"/v1/stores/counts/keys?limit=0", http.StatusBadRequest, nil)

	// Stop one instance while the others are asked without pause.
	var wrong, unavailable, right atomic.Int64
	var mu sync.Mutex
	var wrongs []string
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, app := range apps[:2] {
		addr := app.HTTPAddr()
		wg.Go(func() {
			for ctx.Err() == nil {
				for k, want := range tr.counts {
					code, got, body, err := getKey(addr, "counts", k)
					switch {
					case err != nil:
						// The stopped instance's listener, asked by a
						// forward: answered as 503 by the forwarder.
					case code == http.StatusServiceUnavailable:
						unavailable.Add(1)
					case code == http.StatusOK && got == want:
						right.Add(1)
					default:
						wrong.Add(1)
						mu.Lock()
						wrongs = append(wrongs, fmt.Sprintf("%s %s: %d %s", addr, k, code, body))
						mu.Unlock()
					}
				}
			}
		})
	}
	if err := stops[2](); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 60*time.Second, "every key right from the two instances left", func() bool {
		last = allRight(apps[:2])
		return last == nil
	})
	cancel()
	wg.Wait()
	t.Logf("during the rebalance: %d right, %d unavailable (503), %d wrong", right.Load(), unavailable.Load(), wrong.Load())
	if wrong.Load() > 0 {
		t.Errorf("%d wrong answers during the rebalance, such as %v", wrong.Load(), wrongs[:min(5, len(wrongs))])
	}
}

// getJSON gets u, checks the status, and decodes the body into v.
func getJSON(t *testing.T, u string, want int, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s %s, want %d", u, resp.Status, body, want)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %s", u, err, body)
		}
	}
}

// TestHTTPProbes checks /healthz, /topology, and that /readyz turns ready
// only once the instance's stores are restored: an instance started on an
// empty state directory, after another one counted the input, answers
// every key right as soon as /readyz says ready.
func TestHTTPProbes(t *testing.T) {
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	kafkatest.CreateTopic(t, seeds, "words", 2)
	tr := makeQueryInput(200, 20000, 3)
	kafkatest.Produce(t, kafkatest.Client(t, seeds), tr.recs...)
	topo := queryTopology(t)
	opts := func(dir string) []kappa.Opt {
		return []kappa.Opt{kappa.AppID("probes"), kappa.Brokers(seeds...), kappa.CommitInterval(100 * time.Millisecond),
			kappa.StateDir(dir), kappa.HTTP("127.0.0.1:0")}
	}
	first, stop := runApp(t, topo, opts(t.TempDir())...)
	kafkatest.Eventually(t, 60*time.Second, "the input counted", func() bool {
		kv, err := query.KeyValue[string, int64](first.Stores(), "counts")
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range tr.counts {
			if got, _, err := kv.Get(k); err != nil || got != want {
				return false
			}
		}
		return true
	})
	addr := first.HTTPAddr()
	getText := func(u string) (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := getText("http://" + addr + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := getText("http://" + addr + "/topology"); code != http.StatusOK || !strings.Contains(body, "Sub-topology") {
		t.Errorf("/topology: %d %s", code, body)
	}
	if code, body := getText("http://" + addr + "/topology?format=dot"); code != http.StatusOK || !strings.HasPrefix(body, "digraph") {
		t.Errorf("/topology?format=dot: %d %s", code, body)
	}
	if code, body := getText("http://" + addr + "/topology?format=png"); code != http.StatusBadRequest {
		t.Errorf("/topology?format=png: %d %s, want 400", code, body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	second, _ := runApp(t, topo, opts(t.TempDir())...)
	var notReady int
	kafkatest.Eventually(t, 60*time.Second, "/readyz", func() bool {
		a := second.HTTPAddr()
		if a == "" {
			return false
		}
		code, _ := getText("http://" + a + "/readyz")
		if code != http.StatusOK {
			notReady++
			return false
		}
		return true
	})
	var restored int64
	for _, st := range second.TaskStatus() {
		restored += st.Restored
	}
	t.Logf("/readyz said not ready %d times, then ready with %d changelog records restored", notReady, restored)
	if restored == 0 {
		t.Errorf("the second instance restored nothing: the test did not test readiness after a restore")
	}
	for k, want := range tr.counts {
		code, got, body, err := getKey(second.HTTPAddr(), "counts", k)
		if err != nil || code != http.StatusOK || got != want {
			t.Fatalf("key %s right after /readyz: %d %s %v, want %d", k, code, body, err, want)
		}
	}
}
