// W6: interactive-query latency under load. Two Kappa instances run W2's
// count topology with HTTP on loopback while the input keeps arriving; an
// open-loop generator asks one of them for keys at a fixed rate, each
// request sent at its scheduled time whatever the earlier ones are doing,
// and its latency counted from that time (no coordinated omission).

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/broker"
	"github.com/kappa-streams/kappa/broker/embedded"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/query"
	"github.com/kappa-streams/kappa/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(command{name: "queries", summary: "W6: latency of interactive queries over HTTP, open loop, while the app counts", run: runQueries})
}

type queryFlags struct {
	keys       int
	rates      string
	duration   time.Duration
	produce    int
	partitions int
	typedGets  int
}

func runQueries(args []string) error {
	fs := flag.NewFlagSet("queries", flag.ContinueOnError)
	var f queryFlags
	fs.IntVar(&f.keys, "keys", 10000, "distinct keys counted and queried")
	fs.StringVar(&f.rates, "rates", "5000,10000,20000", "comma-separated request rates (requests/s) to measure")
	fs.DurationVar(&f.duration, "duration", 5*time.Second, "how long each rate runs")
	fs.IntVar(&f.produce, "produce", 20000, "input records/s produced while the queries run (W2's input)")
	fs.IntVar(&f.partitions, "partitions", 4, "partitions of the input")
	fs.IntVar(&f.typedGets, "typed-gets", 200000, "in-process typed gets timed one by one")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rates []int
	for _, s := range strings.Split(f.rates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || r <= 0 {
			return fmt.Errorf("-rates %q: want positive integers separated by commas", f.rates)
		}
		rates = append(rates, r)
	}
	return queries(f, rates)
}

func queries(f queryFlags, rates []int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := embedded.New(embedded.DefaultPartitions(f.partitions))
	if err != nil {
		return err
	}
	defer b.Close()
	seeds := b.Addrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("count-in"), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := broker.NewAdmin(cl)
	if err := adm.EnsureTopics(ctx, broker.TopicSpec{Name: "count-in", Partitions: int32(f.partitions)}); err != nil {
		return err
	}
	key := func(i int) string { return fmt.Sprintf("key-%08d", i) }
	// Every key once, so that every query finds its key.
	for i := range f.keys {
		cl.Produce(ctx, &kgo.Record{Key: []byte(key(i)), Value: []byte("v")}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}

	sb := stream.NewBuilder()
	stream.From(sb, "count-in", codec.String(), codec.Bytes()).GroupByKey().Count(stream.Materialized("counts")).ToStream().To("count-out")
	topo, err := sb.Build()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kappa-bench-queries")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var apps []*kappa.App
	var wg sync.WaitGroup
	for i := range 2 {
		app, err := kappa.New(topo, kappa.AppID("bench-queries"), kappa.Brokers(seeds...), kappa.HandleSignals(false),
			kappa.StateDir(filepath.Join(dir, strconv.Itoa(i))), kappa.HTTP("127.0.0.1:0"), kappa.CommitInterval(time.Second))
		if err != nil {
			return err
		}
		apps = append(apps, app)
		wg.Go(func() {
			if err := app.Run(ctx); err != nil {
				logf("instance %d: %v", i, err)
			}
		})
	}
	defer wg.Wait()
	defer cancel()

	// Wait until every key is served, and split them by owner.
	var local, remote []string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		local, remote = local[:0], remote[:0]
		ready := apps[0].HTTPAddr() != "" && apps[1].HTTPAddr() != ""
		for i := 0; ready && i < f.keys; i++ {
			md, err := apps[0].Metadata("counts", key(i))
			if err != nil || md.Endpoint == "" {
				ready = false
				break
			}
			if md.Local {
				local = append(local, key(i))
			} else {
				remote = append(remote, key(i))
			}
		}
		if ready && len(local) > 0 && len(remote) > 0 {
			if code, err := httpGet(http.DefaultClient, "http://"+apps[0].HTTPAddr()+"/v1/stores/counts/keys/"+remote[0]); err == nil && code == 200 {
				if code, err := httpGet(http.DefaultClient, "http://"+apps[0].HTTPAddr()+"/v1/stores/counts/keys/"+local[0]); err == nil && code == 200 {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			return errors.New("the instances did not serve every key within 2 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	logf("instance 0 holds %d keys, instance 1 %d", len(local), len(remote))

	// The input keeps arriving while the queries run.
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		per := max(1, f.produce/100)
		i := 0
		for ctx.Err() == nil {
			<-tick.C
			for range per {
				cl.Produce(ctx, &kgo.Record{Key: []byte(key(i % f.keys)), Value: []byte("v")}, nil)
				i++
			}
		}
	}()

	// The reference: a bare handler on the same loopback, same generator.
	ref, err := bareServer()
	if err != nil {
		return err
	}
	defer ref.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, MaxConnsPerHost: 0}}
	addr := apps[0].HTTPAddr()
	var rows []string
	for _, rate := range rates {
		for _, tc := range []struct {
			name string
			url  func(i int) string
		}{
			{"bare net/http handler (reference)", func(int) string { return "http://" + ref.Addr().String() + "/" }},
			{"local key", func(i int) string { return "http://" + addr + "/v1/stores/counts/keys/" + local[i%len(local)] }},
			{"forwarded key", func(i int) string { return "http://" + addr + "/v1/stores/counts/keys/" + remote[i%len(remote)] }},
		} {
			res := openLoop(client, rate, f.duration, tc.url)
			logf("%d/s %s: %s", rate, tc.name, res)
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %d | %d |", groupDigits(float64(rate)), tc.name,
				us(res.p(0.50)), us(res.p(0.99)), us(res.p(0.999)), us(res.max()), res.errors, res.late))
		}
	}

	// In-process typed gets of local keys, each timed.
	kv, err := query.KeyValue[string, int64](apps[0].Stores(), "counts")
	if err != nil {
		return err
	}
	lat := make([]time.Duration, 0, f.typedGets)
	for i := range f.typedGets {
		start := time.Now()
		_, ok, err := kv.Get(local[i%len(local)])
		lat = append(lat, time.Since(start))
		if err != nil || !ok {
			return fmt.Errorf("typed get of %s: %v %t", local[i%len(local)], err, ok)
		}
	}
	typed := latencies{d: lat}

	fmt.Printf("W6 queries: %d keys on 2 instances (%d local to the one asked, %d forwarded), %d input records/s counted meanwhile, %v per rate, loopback\n\n",
		f.keys, len(local), len(remote), f.produce, f.duration)
	fmt.Printf("%s\n\n", machineInfo())
	fmt.Println("| rate (req/s) | request | p50 | p99 | p99.9 | max | errors | sent late |")
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Println(r)
	}
	fmt.Printf("\nIn-process typed get (query.KeyValue.Get) of local keys, %d timed one by one: p50 %s, p99 %s, p99.9 %s\n",
		f.typedGets, us(typed.p(0.50)), us(typed.p(0.99)), us(typed.p(0.999)))
	fmt.Printf("\nRESULT queries typed-get-p99=%s\n", us(typed.p(0.99)))
	return nil
}

// latencies are measured request latencies.
type latencies struct {
	d      []time.Duration
	errors int
	// late counts requests the generator sent more than 1ms after their
	// scheduled time (their latency still counts from it).
	late int
}

func (l latencies) p(q float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func (l latencies) max() time.Duration { return l.p(1) }

func (l latencies) String() string {
	return fmt.Sprintf("%d requests, p50 %v p99 %v p99.9 %v max %v, %d errors, %d sent late",
		len(l.d), l.p(0.5), l.p(0.99), l.p(0.999), l.max(), l.errors, l.late)
}

func us(d time.Duration) string {
	v := float64(d) / float64(time.Microsecond)
	if v < 10 {
		return fmt.Sprintf("%.1f µs", v)
	}
	return fmt.Sprintf("%.0f µs", v)
}

// openLoop sends rate requests per second for d, request i at start +
// i/rate, each on its own goroutine, and measures each from its scheduled
// time to the end of its answer.
func openLoop(client *http.Client, rate int, d time.Duration, url func(i int) string) latencies {
	n := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	var mu sync.Mutex
	res := latencies{d: make([]time.Duration, 0, n)}
	var late atomic.Int64
	var wg sync.WaitGroup
	start := time.Now().Add(10 * time.Millisecond)
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		} else if wait < -time.Millisecond {
			late.Add(1)
		}
		wg.Go(func() {
			code, err := httpGet(client, url(i))
			took := time.Since(at)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || code != http.StatusOK {
				res.errors++
				return
			}
			res.d = append(res.d, took)
		})
	}
	wg.Wait()
	res.late = int(late.Load())
	return res
}

func httpGet(client *http.Client, u string) (int, error) {
	resp, err := client.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// bareServer serves a fixed small JSON answer: the floor of what an HTTP
// request on loopback costs with this generator.
func bareServer() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	body := []byte(`{"store":"counts","key":"key-00000001","value":1,"partition":0}` + "\n")
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	return ln, nil
}
