// Command newsrank is a real-time news-ranking pipeline in the manner of
// Kakao's RUBICS: page views and clicks of a simulated news site become
// per-minute counts, decayed and corrected for the slot they were shown
// in, and two rankers (a Bayesian CTR and Thompson sampling) rank each
// section's articles every minute of event time. The simulator asks the
// app which articles to show, so the feedback loop is real.
//
//	go run ./examples/newsrank
//
// starts an embedded broker, the simulator, the app and its web page
// (http://127.0.0.1:8080), and prints the rankings every few seconds
// until Ctrl-C. With -role sim or -role app and -brokers, the parts run
// as separate processes against any Kafka; start -role app twice (with
// different -http addresses) and the two instances share the work as one
// consumer group, either answering any query. See docs/newsrank.md.
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/broker"
	"github.com/kappa-streams/kappa/broker/embedded"
	"github.com/kappa-streams/kappa/examples/newsrank/rank"
	"github.com/kappa-streams/kappa/examples/newsrank/world"
	"github.com/twmb/franz-go/pkg/kgo"
)

//go:embed web
var webFS embed.FS

type options struct {
	role       string
	brokers    string
	httpAddr   string
	appURL     string
	appID      string
	stateDir   string
	speed      float64
	rate       int
	seed       uint64
	partitions int
	print      time.Duration
	duration   time.Duration
	simTime    time.Duration
	verbose    bool
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "all", "what this process runs: all (broker if no -brokers, simulator, app), sim, or app")
	flag.StringVar(&o.brokers, "brokers", "", "Kafka brokers (host:port,...); empty starts an embedded broker (role all only)")
	flag.StringVar(&o.httpAddr, "http", "127.0.0.1:8080", "the app's HTTP listener: the page, /v1/rank and the query API")
	flag.StringVar(&o.appURL, "app-url", "", "the app the simulator asks for rankings (role sim; default http://<-http>)")
	flag.StringVar(&o.appID, "app-id", "newsrank", "the app's ID: its consumer group and the prefix of its topics")
	flag.StringVar(&o.stateDir, "state-dir", "", "where the app keeps its stores (default: a new temporary directory)")
	flag.Float64Var(&o.speed, "speed", 60, "simulated seconds per wall second")
	flag.IntVar(&o.rate, "rate", 100, "page views per wall second")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the simulated world")
	flag.IntVar(&o.partitions, "partitions", 4, "partitions of the input topics")
	flag.DurationVar(&o.print, "print", 5*time.Second, "how often to print the rankings (0: never)")
	flag.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	flag.DurationVar(&o.simTime, "sim-time", 0, "stop the simulator after this much simulated time (0: never)")
	flag.BoolVar(&o.verbose, "v", false, "log the app's own events")
	flag.Parse()
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "newsrank:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "newsrank:", err)
		os.Exit(1)
	}
}

func (o *options) check() error {
	var errs []error
	switch o.role {
	case "all", "sim", "app":
	default:
		errs = append(errs, fmt.Errorf("-role %q: want all, sim or app", o.role))
	}
	if o.role != "all" && o.brokers == "" {
		errs = append(errs, fmt.Errorf("-role %s needs -brokers: the processes share a Kafka (start one with `go run ./cmd/kappa broker`)", o.role))
	}
	if o.speed <= 0 {
		errs = append(errs, fmt.Errorf("-speed %v: must be positive", o.speed))
	}
	if o.rate < 1 {
		errs = append(errs, fmt.Errorf("-rate %d: must be at least 1", o.rate))
	}
	if o.partitions < 1 {
		errs = append(errs, fmt.Errorf("-partitions %d: must be at least 1", o.partitions))
	}
	if o.appURL == "" {
		o.appURL = "http://" + o.httpAddr
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, o options, out io.Writer) error {
	seeds := strings.Split(o.brokers, ",")
	if o.brokers == "" {
		b, err := embedded.New(embedded.DefaultPartitions(o.partitions))
		if err != nil {
			return err
		}
		defer b.Close()
		seeds = b.Addrs()
		fmt.Fprintf(out, "embedded broker at %s\n", strings.Join(seeds, ","))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := createTopics(ctx, cl, o.partitions); err != nil {
		return err
	}

	errc := make(chan error, 2)
	running := 0
	var app *kappa.App
	var web *site
	if o.role != "sim" {
		app, web, err = newApp(o, seeds, rank.Topics{})
		if err != nil {
			return err
		}
		running++
		go func() { errc <- app.Run(ctx) }()
		fmt.Fprintf(out, "page at http://%s\n", o.httpAddr)
	}
	st := &simStats{}
	if web != nil && o.role == "all" {
		web.sim, web.speed = st, o.speed
	}
	if o.role != "app" {
		cfg := simConfig{world: world.Config{Seed: o.seed}, speed: o.speed, rate: o.rate, simTime: o.simTime, rankURL: o.appURL}
		running++
		go func() {
			err := runSim(ctx, cfg, cl, st)
			if err == nil && ctx.Err() == nil {
				fmt.Fprintln(out, "simulator: simulated time over")
				<-ctx.Done()
			}
			errc <- err
		}()
	}
	var tick <-chan time.Time
	if o.print > 0 {
		t := time.NewTicker(o.print)
		defer t.Stop()
		tick = t.C
	}
	var firstErr error
	for running > 0 {
		select {
		case err := <-errc:
			running--
			if err != nil && firstErr == nil {
				firstErr = err
				if ctx.Err() == nil {
					return err
				}
			}
		case <-tick:
			if ctx.Err() == nil {
				printRankings(ctx, out, web, st)
			}
		}
	}
	if firstErr == nil {
		fmt.Fprintf(out, "stopped cleanly: %d page views, %d impressions, %d clicks simulated\n",
			st.requests.Load(), st.impressions.Load(), st.clicks.Load())
	}
	return firstErr
}

// newApp builds the ranking app: the pipeline, its HTTP API and the page.
func newApp(o options, seeds []string, topics rank.Topics, extra ...kappa.Opt) (*kappa.App, *site, error) {
	topo, err := rank.Topology(rank.DefaultParams, topics)
	if err != nil {
		return nil, nil, err
	}
	dir := o.stateDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "newsrank-"); err != nil {
			return nil, nil, err
		}
	}
	logger := slog.New(slog.DiscardHandler)
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	web, _ := fs.Sub(webFS, "web")
	var s *site
	opts := []kappa.Opt{kappa.AppID(o.appID), kappa.Brokers(seeds...), kappa.Logger(logger),
		kappa.StateDir(filepath.Clean(dir)), kappa.HTTP(o.httpAddr), kappa.HandleSignals(false),
		// Exactly once: every minute is folded into the scores once, and
		// readers of the rankings topic see each ranking once.
		kappa.Guarantee(kappa.ExactlyOnce),
		// A task reading impressions and clicks takes them in timestamp
		// order, waiting for the one that lags, so that a replay of the
		// log closes every minute with the same events.
		kappa.MaxTaskIdle(10 * time.Second),
		// A killed instance's tasks move after 10s rather than Kafka's
		// default 45s: the page and /v1/rank come back sooner.
		kappa.SessionTimeout(10 * time.Second),
		kappa.Handle("GET /v1/rank", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveRank(w, r) })),
		kappa.Handle("GET /api/state", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveState(w, r) })),
		kappa.Handle("GET /", http.FileServerFS(web)),
	}
	app, err := kappa.New(topo, append(opts, extra...)...)
	if err != nil {
		return nil, nil, err
	}
	s = newSite(app)
	return app, s, nil
}

// createTopics creates the inputs and the rankings topic if missing.
func createTopics(ctx context.Context, cl *kgo.Client, partitions int) error {
	compact := map[string]string{"cleanup.policy": "compact"}
	// The event log is the system of record (a Kappa architecture): a
	// replay recomputes the rankings from it, so it is kept forever. The
	// simulation's event times also start on a fixed past date, which a
	// broker's default retention (7 days by record time) would delete.
	forever := map[string]string{"retention.ms": "-1"}
	adm := broker.NewAdmin(cl)
	return adm.EnsureTopics(ctx,
		broker.TopicSpec{Name: rank.TopicImpressions, Partitions: int32(partitions), Configs: forever},
		broker.TopicSpec{Name: rank.TopicClicks, Partitions: int32(partitions), Configs: forever},
		broker.TopicSpec{Name: rank.TopicArticles, Partitions: int32(partitions), Configs: compact},
		broker.TopicSpec{Name: rank.TopicTruth, Partitions: 1, Configs: compact},
		broker.TopicSpec{Name: rank.TopicRankings, Partitions: int32(partitions), Configs: compact},
	)
}

// printRankings prints the top 5 of each section by both arms.
func printRankings(ctx context.Context, out io.Writer, s *site, st *simStats) {
	if st.requests.Load() > 0 {
		fmt.Fprintf(out, "\nsimulated %s: %d page views, %d impressions, %d clicks, %d articles\n",
			time.UnixMilli(st.simNow.Load()).UTC().Format("15:04"), st.requests.Load(), st.impressions.Load(), st.clicks.Load(), st.articles.Load())
	}
	if s == nil {
		return
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/api/state", nil)
	var state State
	rec := &captureWriter{header: http.Header{}}
	s.serveState(rec, req)
	if rec.code != 0 && rec.code != http.StatusOK {
		fmt.Fprintf(out, "rankings not ready yet (%s)\n", strings.TrimSpace(rec.body.String()))
		return
	}
	if err := decodeJSON(rec.body.Bytes(), &state); err != nil || len(state.Rankings) == 0 {
		fmt.Fprintln(out, "no ranking yet: the first minute closes a minute and 30 s into the simulation")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "section\t%s top 5\t%s top 5\n", rank.ArmBayes, rank.ArmThompson)
	for _, sec := range rank.Sections {
		var cols []string
		for _, arm := range rank.Arms {
			var ids []string
			for _, it := range state.Rankings[sec][arm].Items[:min(5, len(state.Rankings[sec][arm].Items))] {
				ids = append(ids, it.Article)
			}
			cols = append(cols, strings.Join(ids, " "))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", sec, cols[0], cols[1])
	}
	tw.Flush()
	for _, arm := range rank.Arms {
		var clicks, imps float64
		for _, p := range state.CTR[arm] {
			clicks += p.CTR * float64(p.Impressions)
			imps += float64(p.Impressions)
		}
		if imps > 0 {
			fmt.Fprintf(out, "%s CTR over the last hour: %.2f%% of %.0f impressions\n", arm, 100*clicks/imps, imps)
		}
	}
	if n := len(state.Truth); n > 0 {
		t := state.Truth[n-1]
		fmt.Fprintf(out, "ground truth this minute: best ranking %.2f%%, random %.2f%%\n", 100*t.Best, 100*t.Random)
	}
}
