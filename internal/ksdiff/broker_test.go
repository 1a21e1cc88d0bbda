package ksdiff_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kappa-streams/kappa/broker"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// createTopics creates each case's input topics with its partition count
// and both output topics with one partition (every key of an output is in
// one partition whatever the count, and one makes reading them simple).
// They keep their records forever: the input's timestamps are in 2023, and
// the broker's default retention of 7 days, which counts from the records'
// timestamps, would delete whole segments of them while the test runs.
//
// EnsureTopics waits until the broker lists them all with leaders: a
// produce right after a creation may otherwise find a partition the broker
// does not host yet.
func createTopics(ctx context.Context, cl *kgo.Client, cases []*diffCase) error {
	forever := map[string]string{"retention.ms": "-1"}
	var specs []broker.TopicSpec
	for _, c := range cases {
		for _, t := range c.inputTopics() {
			specs = append(specs, broker.TopicSpec{Name: t, Partitions: c.partitions, Configs: forever})
		}
		for _, t := range []string{c.outKappa(), c.outKStreams()} {
			specs = append(specs, broker.TopicSpec{Name: t, Partitions: 1, Configs: forever})
		}
	}
	return broker.NewAdmin(cl).EnsureTopics(ctx, specs...)
}

// produce writes every case's input, in order per partition, and waits
// for all of it to be acknowledged.
func produce(ctx context.Context, cl *kgo.Client, cases []*diffCase) error {
	var recs []*kgo.Record
	for _, c := range cases {
		recs = append(recs, c.records()...)
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// waitCaughtUp waits until the consumer group has committed the end of
// every partition it reads: first the input topics, whose ends are given,
// then the group's repartition topics ("<group>-...-repartition"), whose
// ends are read once the inputs are done. Both apps run at-least-once:
// an output record is acknowledged before the offset of the input that
// made it is committed, so from then on every output is complete. The
// error says which partitions are still behind when ctx ends.
func waitCaughtUp(ctx context.Context, adm *kadm.Client, group string, inputEnds kadm.ListedOffsets) error {
	behind := func(ends kadm.ListedOffsets) (string, error) {
		committed, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return "", err
		}
		var lag []string
		ends.Each(func(e kadm.ListedOffset) {
			if e.Offset == 0 {
				return
			}
			at := int64(0)
			if o, ok := committed.Lookup(e.Topic, e.Partition); ok && o.Err == nil {
				at = o.At
			}
			if at < e.Offset {
				lag = append(lag, fmt.Sprintf("%s/%d at %d of %d", e.Topic, e.Partition, at, e.Offset))
			}
		})
		slices.Sort(lag)
		if len(lag) > 4 {
			lag = append(lag[:4], fmt.Sprintf("and %d more", len(lag)-4))
		}
		return strings.Join(lag, ", "), nil
	}
	wait := func(what string, ends kadm.ListedOffsets) error {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		last := "nothing read yet"
		for {
			lag, err := behind(ends)
			if err == nil && lag == "" {
				return nil
			}
			if err != nil {
				lag = err.Error()
			}
			last = lag
			select {
			case <-ctx.Done():
				return fmt.Errorf("group %s has not committed the end of its %s: %s", group, what, last)
			case <-tick.C:
			}
		}
	}
	if err := wait("inputs", inputEnds); err != nil {
		return err
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return err
	}
	var repartition []string
	for _, topic := range topics.Names() {
		if strings.HasPrefix(topic, group+"-") && strings.HasSuffix(topic, "-repartition") {
			repartition = append(repartition, topic)
		}
	}
	if len(repartition) == 0 {
		return nil
	}
	ends, err := adm.ListEndOffsets(ctx, repartition...)
	if err != nil {
		return err
	}
	if err := ends.Error(); err != nil {
		return err
	}
	return wait("repartition topics", ends)
}

// readAll reads the topics from their start to their current end.
func readAll(ctx context.Context, adm *kadm.Client, brokers []string, topics []string) (map[string][]*kgo.Record, error) {
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	if err := ends.Error(); err != nil {
		return nil, err
	}
	want := map[string]map[int32]kgo.Offset{}
	left := 0
	ends.Each(func(e kadm.ListedOffset) {
		if e.Offset > 0 {
			if want[e.Topic] == nil {
				want[e.Topic] = map[int32]kgo.Offset{}
			}
			want[e.Topic][e.Partition] = kgo.NewOffset().AtStart()
			left++
		}
	})
	out := map[string][]*kgo.Record{}
	if left == 0 {
		return out, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(want))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			var got []string
			for topic, recs := range out {
				got = append(got, fmt.Sprintf("%s:%d", topic, len(recs)))
			}
			return nil, fmt.Errorf("reading the outputs: %d partitions not read to their end (read %v): %w", left, got, err)
		}
		if err := fs.Err(); err != nil {
			return nil, fmt.Errorf("reading the outputs: %w", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, _ := ends.Lookup(r.Topic, r.Partition)
			if r.Offset >= end.Offset {
				return
			}
			out[r.Topic] = append(out[r.Topic], r)
			if r.Offset == end.Offset-1 {
				left--
			}
		})
	}
	return out, nil
}
