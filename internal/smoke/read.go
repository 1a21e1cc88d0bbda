package smoke

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Record is one record of an output or dead-letter topic.
type Record struct {
	Partition int32
	Offset    int64
	Key       []byte
	// Value is nil for a tombstone.
	Value []byte
	// Headers holds the record's headers by key; dead letters carry the
	// error in "kappa.error".
	Headers map[string]string
}

// Outputs holds the records of an app's topics, each partition's in offset
// order, the partitions in increasing order.
type Outputs struct {
	// Topics holds the records of each output topic by name.
	Topics map[string][]Record
	// DeadLetters holds the records of the dead-letter topic.
	DeadLetters []Record
}

// Read fetches every output topic and the dead-letter topic of appID, from
// their starts to the end offsets they have when Read is called: stop the
// app instances first. An output topic that does not exist is an error; a
// missing dead-letter topic reads as empty. ctx bounds the whole read.
//
// Under ExactlyOnce it reads committed records only, up to the last stable
// offsets, as a read_committed consumer of the app's outputs would;
// transaction markers count towards the ends but are not returned.
func Read(ctx context.Context, seeds []string, appID string, g Guarantee) (Outputs, error) {
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return Outputs{}, err
	}
	defer admCl.Close()
	dlq := DeadLetterTopic(appID)
	topics := append(slices.Clone(OutputTopics), dlq)
	list, isolation := kadm.NewClient(admCl).ListEndOffsets, kgo.ReadUncommitted()
	if g.exact() {
		list, isolation = kadm.NewClient(admCl).ListCommittedOffsets, kgo.ReadCommitted()
	}
	ends, err := list(ctx, topics...)
	if err != nil {
		return Outputs{}, fmt.Errorf("smoke: end offsets: %w", err)
	}
	start := make(map[string]map[int32]kgo.Offset)
	left := make(map[string]map[int32]int64) // partitions not read to their end yet
	var errs []error
	for _, topic := range topics {
		ps, ok := ends[topic]
		if !ok {
			if topic != dlq {
				errs = append(errs, fmt.Errorf("smoke: output topic %q: no end offsets", topic))
			}
			continue
		}
		for p, o := range ps {
			switch {
			case errors.Is(o.Err, kerr.UnknownTopicOrPartition) && topic == dlq:
			case o.Err != nil:
				errs = append(errs, fmt.Errorf("smoke: end offset of %s/%d: %w", topic, p, o.Err))
			case o.Offset > 0:
				if start[topic] == nil {
					start[topic], left[topic] = make(map[int32]kgo.Offset), make(map[int32]int64)
				}
				start[topic][p] = kgo.NewOffset().AtStart()
				left[topic][p] = o.Offset
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Outputs{}, err
	}
	out := Outputs{Topics: make(map[string][]Record)}
	if len(start) == 0 {
		return out, nil
	}
	// Control records (transaction markers) are kept so that every offset
	// below the end arrives as a record, and the read knows where to stop.
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(start),
		kgo.FetchIsolationLevel(isolation), kgo.KeepControlRecords())
	if err != nil {
		return Outputs{}, err
	}
	defer cl.Close()
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return Outputs{}, fmt.Errorf("smoke: reading outputs: %w; not read to their ends: %s", ctx.Err(), describeLeft(left))
		}
		if fs.IsClientClosed() {
			return Outputs{}, errors.New("smoke: reading outputs: client closed")
		}
		// Fetch errors are retried by the client until ctx ends.
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Topic][r.Partition]; ok && r.Offset+1 >= end {
				delete(left[r.Topic], r.Partition)
				if len(left[r.Topic]) == 0 {
					delete(left, r.Topic)
				}
			}
			if r.Attrs.IsControl() {
				return
			}
			rec := Record{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value}
			if len(r.Headers) > 0 {
				rec.Headers = make(map[string]string, len(r.Headers))
				for _, h := range r.Headers {
					rec.Headers[h.Key] = string(h.Value)
				}
			}
			if r.Topic == dlq {
				out.DeadLetters = append(out.DeadLetters, rec)
			} else {
				out.Topics[r.Topic] = append(out.Topics[r.Topic], rec)
			}
		})
	}
	// Records arrive in offset order per partition; sort by partition too
	// so that Outputs is the same however fetches interleave.
	byPartition := func(recs []Record) {
		sort.SliceStable(recs, func(i, j int) bool { return recs[i].Partition < recs[j].Partition })
	}
	for _, recs := range out.Topics {
		byPartition(recs)
	}
	byPartition(out.DeadLetters)
	return out, nil
}

// describeLeft lists the partitions not read to their ends, briefly.
func describeLeft(left map[string]map[int32]int64) string {
	var s []string
	for topic, ps := range left {
		for p, end := range ps {
			s = append(s, fmt.Sprintf("%s/%d (end %d)", topic, p, end))
		}
	}
	slices.Sort(s)
	return fmt.Sprint(s)
}

// Lag is how far an app's consumer group is behind the end of one of the
// topics it reads.
type Lag struct {
	Topic string
	// Committed and End are the group's committed offsets and the topic's
	// end offsets, each summed over the partitions. A partition without a
	// commit counts as committed at 0.
	Committed, End int64
	// Behind sums, over the partitions, the records between the committed
	// offset and the end: zero when the group has processed and committed
	// everything. Ahead counts the partitions whose committed offset is past
	// the end, which never happens unless offsets are wrong.
	Behind int64
	Ahead  int
}

// String formats l as "topic committed/end".
func (l Lag) String() string {
	s := fmt.Sprintf("%s %d/%d", l.Topic, l.Committed, l.End)
	if l.Ahead > 0 {
		s += fmt.Sprintf(" (%d partitions committed past the end)", l.Ahead)
	}
	return s
}

// GroupLag returns the lag of appID's consumer group on InputTopic and on
// the repartition topic, in that order; a group that does not exist yet
// has committed nothing. The repartition topic is read
// after the input, so once the input has no lag, a zero lag on the
// repartition topic means every record went through both sub-topologies
// and was committed. ctx bounds the requests.
func GroupLag(ctx context.Context, adm *kadm.Client, appID string) ([]Lag, error) {
	topics := []string{InputTopic, RepartitionTopic(appID)}
	lags := make([]Lag, 0, len(topics))
	for _, topic := range topics {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("smoke: end offsets of %q: %w", topic, err)
		}
		if err := ends.Error(); err != nil {
			return nil, fmt.Errorf("smoke: end offsets of %q: %w", topic, err)
		}
		committed, err := adm.FetchOffsets(ctx, appID)
		if errors.Is(err, kerr.GroupIDNotFound) {
			committed, err = nil, nil // no member has joined or committed yet
		}
		if err != nil {
			return nil, fmt.Errorf("smoke: committed offsets of group %q: %w", appID, err)
		}
		l := Lag{Topic: topic}
		ends.Each(func(o kadm.ListedOffset) {
			c := int64(0)
			if r, ok := committed.Lookup(topic, o.Partition); ok && r.Err == nil && r.At >= 0 {
				c = r.At
			}
			l.Committed += c
			l.End += o.Offset
			if c > o.Offset {
				l.Ahead++
			} else {
				l.Behind += o.Offset - c
			}
		})
		lags = append(lags, l)
	}
	return lags, nil
}

// CaughtUp reports whether no lag is behind or ahead.
func CaughtUp(lags []Lag) bool {
	for _, l := range lags {
		if l.Behind != 0 || l.Ahead != 0 {
			return false
		}
	}
	return len(lags) > 0
}
