// Package kafkatest holds helpers for tests and benchmarks that run against
// an embedded broker: start one on port 0, create topics, produce, consume
// until a condition holds. Every wait has a deadline; nothing sleeps to
// synchronise.
package kafkatest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/broker"
	"github.com/kappa-streams/kappa/broker/embedded"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Broker starts an embedded broker on a free loopback port, closed when the
// test ends.
func Broker(t testing.TB, opts ...embedded.Opt) *embedded.Broker {
	t.Helper()
	b, err := embedded.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// CreateTopic creates topic with n partitions, and waits until every
// broker lists it.
func CreateTopic(t testing.TB, seeds []string, topic string, n int32, configs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	conn, err := broker.Connect(ctx, seeds)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	spec := broker.TopicSpec{Name: topic, Partitions: n, Configs: map[string]string{}}
	for i := 0; i+1 < len(configs); i += 2 {
		spec.Configs[configs[i]] = configs[i+1]
	}
	if err := conn.Admin().CreateAndWait(ctx, spec); err != nil {
		t.Fatal(err)
	}
}

// Client returns a franz-go client for seeds, closed when the test ends.
func Client(t testing.TB, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Produce writes recs (Topic set on each) and waits for all to be
// acknowledged.
func Produce(t testing.TB, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var first error
	errc := make(chan error, 1)
	for _, r := range recs {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errc <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case first = <-errc:
		t.Fatal(first)
	default:
	}
}

// Consume reads topic from the start until at least n records arrived, or
// fails the test at the deadline.
func Consume(t testing.TB, seeds []string, topic string, n int, within time.Duration) []*kgo.Record {
	t.Helper()
	recs, err := ConsumeErr(seeds, topic, n, within)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// ConsumeErr is Consume returning an error, for use outside tests.
func ConsumeErr(seeds []string, topic string, n int, within time.Duration) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return recs, fmt.Errorf("kafkatest: %d of %d records from %q within %v", len(recs), n, topic, within)
		}
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	return recs, nil
}

// Eventually polls cond until it returns true, failing the test with what
// after the deadline.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		<-tick.C
	}
}

// Run runs fn in the background with a context that stop, or the end of
// the test, cancels; stop then waits up to a minute for fn to return and
// reports its error as a test error naming what.
func Run(t testing.TB, what string, fn func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("%s: %v", what, err)
				}
			case <-time.After(60 * time.Second):
				t.Errorf("%s did not stop within 60s", what)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
