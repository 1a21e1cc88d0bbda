// Command clickstream runs a stateless Kappa topology end to end on an
// embedded broker: it starts the broker, generates a stream of clicks (with
// a few malformed records mixed in), routes them, and prints what happens
// every second until Ctrl-C (or -duration) stops it cleanly.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/broker"
	"github.com/kappa-streams/kappa/broker/embedded"
	"github.com/kappa-streams/kappa/examples/clickstream/clicks"
	"github.com/twmb/franz-go/pkg/kgo"
)

type options struct {
	rate     int           // clicks per second
	duration time.Duration // 0: until Ctrl-C
	brokers  string        // empty: start an embedded broker
	verbose  bool
}

func main() {
	var o options
	flag.IntVar(&o.rate, "rate", 500, "clicks generated per second")
	flag.DurationVar(&o.duration, "duration", 0, "stop after this long (0 runs until Ctrl-C)")
	flag.StringVar(&o.brokers, "brokers", "", "use this Kafka cluster (host:port) instead of an embedded broker")
	flag.BoolVar(&o.verbose, "v", false, "log the app's own events")
	flag.Parse()
	if o.rate < 1 {
		fmt.Fprintln(os.Stderr, "clickstream: -rate must be at least 1")
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
		fmt.Fprintln(os.Stderr, "clickstream:", err)
		os.Exit(1)
	}
}

// stats are counted by the generator and by a consumer of the outputs.
type stats struct {
	produced, malformed, bots       atomic.Int64
	byArticle, sports, deadLettered atomic.Int64
}

func run(ctx context.Context, o options, out io.Writer) error {
	seeds := []string{o.brokers}
	if o.brokers == "" {
		b, err := embedded.New()
		if err != nil {
			return err
		}
		defer b.Close()
		seeds = b.Addrs()
		fmt.Fprintf(out, "embedded broker listening on %s\n", seeds[0])
	}
	conn, err := broker.Connect(ctx, seeds)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Admin().EnsureTopics(ctx, broker.TopicSpec{Name: clicks.Input, Partitions: 4}); err != nil {
		return err
	}
	topo, err := clicks.Topology()
	if err != nil {
		return err
	}
	fmt.Fprint(out, topo.Describe())

	logger := slog.New(slog.DiscardHandler)
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	app, err := kappa.New(topo,
		kappa.AppID("clickstream"),
		kappa.Brokers(seeds...),
		kappa.CommitInterval(time.Second),
		kappa.HandleSignals(false), // main cancels ctx on SIGINT/SIGTERM
		kappa.Logger(logger),
	)
	if err != nil {
		return err
	}
	var st stats
	appErr := make(chan error, 1)
	go func() { appErr <- app.Run(ctx) }()
	go generate(ctx, conn.Client(), o.rate, &st)
	go watch(ctx, seeds, &st)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			fmt.Fprintf(out, "generated %d clicks (%d bots, %d malformed) | by-article %d, sports %d, dead-lettered %d | tasks %v\n",
				st.produced.Load(), st.bots.Load(), st.malformed.Load(),
				st.byArticle.Load(), st.sports.Load(), st.deadLettered.Load(), app.Tasks())
		case err := <-appErr:
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "stopped cleanly after %d records and %d commits\n", app.Processed(), app.Commits())
			return nil
		}
	}
}

var (
	sections = []string{"news", "sports", "economy", "culture"}
	articles = 50
	users    = 200
)

// generate produces clicks at rate per second until ctx is done. About one
// in ten is a bot; one in a hundred is malformed JSON, which the app sends
// to its dead-letter topic.
func generate(ctx context.Context, cl *kgo.Client, rate int, st *stats) {
	rng := rand.New(rand.NewPCG(42, 7))
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := max(1, rate/100)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for range perTick {
			c := clicks.Click{
				User:    fmt.Sprintf("user-%d", rng.IntN(users)),
				Article: fmt.Sprintf("article-%d", rng.IntN(articles)),
				Section: sections[rng.IntN(len(sections))],
				Bot:     rng.IntN(10) == 0,
			}
			v, _ := json.Marshal(c)
			if rng.IntN(100) == 0 {
				v = v[:len(v)/2] // truncated: malformed JSON
				st.malformed.Add(1)
			} else if c.Bot {
				st.bots.Add(1)
			}
			st.produced.Add(1)
			cl.Produce(ctx, &kgo.Record{Topic: clicks.Input, Key: []byte(c.User), Value: v}, nil)
		}
	}
}

// watch counts what the app writes, as a downstream consumer would.
func watch(ctx context.Context, seeds []string, st *stats) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.ConsumeTopics(clicks.ByArticle, clicks.Sports, "clickstream-dlq"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AllowAutoTopicCreation())
	if err != nil {
		return
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || errors.Is(fs.Err0(), kgo.ErrClientClosed) {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			switch r.Topic {
			case clicks.ByArticle:
				st.byArticle.Add(1)
			case clicks.Sports:
				st.sports.Add(1)
			default:
				st.deadLettered.Add(1)
			}
		})
	}
}
