package smoke

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

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
	// Input holds the records of InputTopic, against which Check compares
	// the order of the echo; nil skips that comparison.
	Input []Record
	// DeadLetters holds the records of the dead-letter topic.
	DeadLetters []Record
}

// Read fetches InputTopic, every output topic and the dead-letter topic of
// appID, from their starts to the end offsets they have when Read is
// called: stop the app instances first. An input or output topic that does
// not exist is an error; a missing dead-letter topic reads as empty. ctx
// bounds the whole read.
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
	topics := append([]string{InputTopic}, OutputTopics...)
	topics = append(topics, dlq)
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
				errs = append(errs, fmt.Errorf("smoke: topic %q: no end offsets", topic))
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
			switch r.Topic {
			case dlq:
				out.DeadLetters = append(out.DeadLetters, rec)
			case InputTopic:
				out.Input = append(out.Input, rec)
			default:
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
	byPartition(out.Input)
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
	//
	// Under ExactlyOnce, a partition on which a transaction is open ends
	// at its end offset (the open transaction's records may commit); one
	// whose offsets from the committed one to the end hold only
	// transaction markers and records of aborted transactions ends at the
	// committed offset, as nothing there is left to process. A commit
	// marker takes an offset, so under exactly-once the group's commits
	// stop one short of the end offset of a topic written in
	// transactions, such as the repartition topic.
	Committed, End int64
	// Behind sums, over the partitions, the records between the committed
	// offset and the end: zero when the group has processed and committed
	// everything. Ahead counts the partitions whose committed offset is past
	// the end, which never happens unless offsets are wrong.
	Behind int64
	Ahead  int
	// Open counts, under ExactlyOnce, the partitions on which a
	// transaction is open: their last stable offset is below their end.
	Open int
}

// String formats l as "topic committed/end".
func (l Lag) String() string {
	s := fmt.Sprintf("%s %d/%d", l.Topic, l.Committed, l.End)
	if l.Ahead > 0 {
		s += fmt.Sprintf(" (%d partitions committed past the end)", l.Ahead)
	}
	if l.Open > 0 {
		s += fmt.Sprintf(" (%d partitions in open transactions)", l.Open)
	}
	return s
}

// GroupLag returns the lag of appID's consumer group on InputTopic and on
// the repartition topic, in that order, as the group's records stand for
// g; a group that does not exist yet has committed nothing. The
// repartition topic is read after the input, so once the input has no
// lag, a zero lag on the repartition topic means every record went
// through both sub-topologies and was committed. cl asks the brokers;
// under ExactlyOnce, GroupLag also reads the partitions whose committed
// offsets are below their ends with a client of its own on cl's seed
// brokers, to tell transaction markers from records. ctx bounds the
// requests and reads.
func GroupLag(ctx context.Context, cl *kgo.Client, appID string, g Guarantee) ([]Lag, error) {
	adm := kadm.NewClient(cl)
	topics := []string{InputTopic, RepartitionTopic(appID)}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("smoke: end offsets of %v: %w", topics, err)
	}
	var stable kadm.ListedOffsets
	if g.exact() {
		if stable, err = adm.ListCommittedOffsets(ctx, topics...); err == nil {
			err = stable.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("smoke: last stable offsets of %v: %w", topics, err)
		}
	}
	committed, err := adm.FetchOffsets(ctx, appID)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // no member has joined or committed yet
	}
	if err != nil {
		return nil, fmt.Errorf("smoke: committed offsets of group %q: %w", appID, err)
	}
	at := func(topic string, p int32) int64 {
		if r, ok := committed.Lookup(topic, p); ok && r.Err == nil && r.At >= 0 {
			return r.At
		}
		return 0
	}
	// Under exactly-once, the partitions to read: committed below the end
	// with no transaction open.
	tails := make(map[string]map[int32]offsetRange)
	if g.exact() {
		ends.Each(func(o kadm.ListedOffset) {
			c := at(o.Topic, o.Partition)
			if s, ok := stable.Lookup(o.Topic, o.Partition); ok && s.Offset == o.Offset && c < o.Offset {
				if tails[o.Topic] == nil {
					tails[o.Topic] = make(map[int32]offsetRange)
				}
				tails[o.Topic][o.Partition] = offsetRange{c, o.Offset}
			}
		})
	}
	markers, err := onlyMarkers(ctx, cl, tails)
	if err != nil {
		return nil, err
	}
	lags := make([]Lag, 0, len(topics))
	for _, topic := range topics {
		l := Lag{Topic: topic}
		for _, o := range ends[topic] {
			c, end := at(topic, o.Partition), o.Offset
			if s, ok := stable.Lookup(topic, o.Partition); ok && s.Offset < o.Offset {
				l.Open++
			}
			if markers[topic][o.Partition] {
				end = c
			}
			l.Committed += c
			l.End += end
			if c > end {
				l.Ahead++
			} else {
				l.Behind += end - c
			}
		}
		lags = append(lags, l)
	}
	return lags, nil
}

// offsetRange is the offsets [from, to) of a partition.
type offsetRange struct{ from, to int64 }

// onlyMarkers reads each partition of ranges over its range, committed
// records only, and reports the partitions whose ranges hold transaction
// markers and aborted records only. The last offset of each range must
// not be in an open transaction. It reads with a client of its own on
// cl's seed brokers; ctx bounds the read.
func onlyMarkers(ctx context.Context, cl *kgo.Client, ranges map[string]map[int32]offsetRange) (map[string]map[int32]bool, error) {
	if len(ranges) == 0 {
		return nil, nil
	}
	start := make(map[string]map[int32]kgo.Offset, len(ranges))
	left := make(map[string]map[int32]int64) // partitions not decided yet
	for topic, ps := range ranges {
		start[topic], left[topic] = make(map[int32]kgo.Offset, len(ps)), make(map[int32]int64, len(ps))
		for p, r := range ps {
			start[topic][p] = kgo.NewOffset().At(r.from)
			left[topic][p] = r.to
		}
	}
	seeds, _ := cl.OptValue(kgo.SeedBrokers).([]string)
	rd, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	out := make(map[string]map[int32]bool)
	decide := func(topic string, p int32, markersOnly bool) {
		delete(left[topic], p)
		if len(left[topic]) == 0 {
			delete(left, topic)
		}
		if out[topic] == nil {
			out[topic] = make(map[int32]bool)
		}
		out[topic][p] = markersOnly
	}
	for len(left) > 0 {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("smoke: reading what follows the committed offsets: %w; not read to their ends: %s", ctx.Err(), describeLeft(left))
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Topic][r.Partition]
			switch {
			case !ok:
			case !r.Attrs.IsControl():
				decide(r.Topic, r.Partition, false)
			case r.Offset+1 >= end:
				decide(r.Topic, r.Partition, true)
			}
		})
	}
	return out, nil
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

// OpenTransactions returns the partitions of the topics appID reads and
// writes (InputTopic, OutputTopics, and its internal topics: every topic
// named "<appID>-...") on which a transaction is open: their last stable
// offset is below their end offset, and readers of committed data see
// nothing from there on until the transaction ends. Each is described as
// "topic/partition: last stable offset < end offset", sorted. An app that
// stopped gracefully leaves none; one killed leaves its transaction open
// until the broker aborts it after the transaction timeout. ctx bounds the
// requests.
func OpenTransactions(ctx context.Context, adm *kadm.Client, appID string) ([]string, error) {
	all, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("smoke: listing topics: %w", err)
	}
	var topics []string
	for _, t := range all.Sorted() {
		if t.Topic == InputTopic || slices.Contains(OutputTopics, t.Topic) || strings.HasPrefix(t.Topic, appID+"-") {
			topics = append(topics, t.Topic)
		}
	}
	if len(topics) == 0 {
		return nil, nil
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("smoke: end offsets: %w", err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, topics...)
	if err == nil {
		err = stable.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("smoke: last stable offsets: %w", err)
	}
	var open []string
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := stable.Lookup(o.Topic, o.Partition); !ok || s.Offset < o.Offset {
			open = append(open, fmt.Sprintf("%s/%d: %d < %d", o.Topic, o.Partition, s.Offset, o.Offset))
		}
	})
	slices.Sort(open)
	return open, nil
}
