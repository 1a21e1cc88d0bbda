package ksdiff_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/internal/kafkacluster"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// defaultSeeds are the seeds of the generated inputs; KSDIFF_SEEDS=4,5,6
// runs others.
var defaultSeeds = []uint64{1, 2, 3}

// TestAgainstKafkaStreams runs every case through Kafka Streams and Kappa on
// one Apache Kafka broker and compares their outputs (see doc.go).
func TestAgainstKafkaStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("ksdiff: starts Apache Kafka and Kafka Streams JVMs and takes half a minute to a minute; run without -short")
	}
	java, jar := kstreamsJar(t)
	begin := time.Now()

	var cases []*diffCase
	for _, seed := range seeds(t) {
		cases = append(cases, randomCases(seed)...)
	}
	cases = append(cases, craftedCases()...)

	cluster := kafkacluster.Start(t, kafkacluster.Nodes(1))
	brokers := cluster.Brokers()
	cl := kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := createTopics(ctx, cl, cases); err != nil {
		t.Fatal(err)
	}
	if err := produce(ctx, cl, cases); err != nil {
		t.Fatal(err)
	}
	var inputs, outputs []string
	n := 0
	for _, c := range cases {
		inputs = append(inputs, c.inputTopics()...)
		outputs = append(outputs, c.outKappa(), c.outKStreams())
		n += len(c.recs)
	}
	inputEnds, err := adm.ListEndOffsets(ctx, inputs...)
	if err == nil {
		err = inputEnds.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d cases, %d input records, produced %v after the start", len(cases), n, time.Since(begin).Round(time.Millisecond))

	// Both apps read the same input at the same time, each in a group of
	// its own, at-least-once (see doc.go).
	ks := startKStreams(t, java, jar, brokers, "ksdiff-kstreams", cases)
	app := startKappa(t, kappaTopology(t, cases), "ksdiff-kappa", brokers)

	var wg sync.WaitGroup
	var kappaErr, ksErr error
	var kappaDone, ksDone time.Duration
	// Each wait ends early when its app stops.
	wait := func(group string, exited <-chan struct{}) error {
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		go func() {
			select {
			case <-exited:
				wcancel()
			case <-wctx.Done():
			}
		}()
		return waitCaughtUp(wctx, adm, group, inputEnds)
	}
	wg.Go(func() {
		kappaErr = wait("ksdiff-kappa", app.exited)
		if err := app.failed(); err != nil {
			kappaErr = err
		}
		kappaDone = time.Since(begin)
	})
	wg.Go(func() {
		ksErr = wait("ksdiff-kstreams", ks.exited)
		if err := ks.failed(); err != nil {
			ksErr = err
		}
		ksDone = time.Since(begin)
	})
	wg.Wait()
	if kappaErr != nil || ksErr != nil {
		t.Fatalf("the apps did not finish their input:\nKappa: %v\nKafka Streams: %v (states %v)\n%s",
			kappaErr, ksErr, ks.stateList(), ks.log())
	}
	var late, dropped int64
	for _, st := range app.TaskStatus() {
		late += st.Late
		dropped += st.Dropped
	}
	t.Logf("caught up: Kappa %v, Kafka Streams %v after the start (Kafka Streams running after %v); "+
		"Kappa dropped %d late records and %d tombstones",
		kappaDone.Round(time.Millisecond), ksDone.Round(time.Millisecond), ks.runningAt().Sub(begin).Round(time.Millisecond),
		late, dropped)

	out, err := readAll(ctx, adm, brokers, outputs)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.stop(60 * time.Second); err != nil {
		t.Error(err)
	}
	if err := ks.stop(60 * time.Second); err != nil {
		t.Error(err)
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { compare(t, c, out[c.outKappa()], out[c.outKStreams()]) })
	}
	t.Logf("done in %v", time.Since(begin).Round(time.Millisecond))
}

// seeds returns the seeds of the generated inputs: KSDIFF_SEEDS, a comma
// separated list, or defaultSeeds.
func seeds(t *testing.T) []uint64 {
	s := os.Getenv("KSDIFF_SEEDS")
	if s == "" {
		return defaultSeeds
	}
	var out []uint64
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			t.Fatalf("KSDIFF_SEEDS=%q: %v", s, err)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
