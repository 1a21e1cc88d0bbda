package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/kappa-streams/kappa/processor"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// changelogReader reads the partitions that restore an instance's state,
// outside the consumer group, with one long-lived client, as Kafka
// Streams' StoreChangelogReader does: the changelog partitions of the
// stores that restore (read up to an end offset), and the partitions of
// global tables (read from the start, then tailed for as long as the
// instance runs). A reader adds a partition when it needs it and removes
// it when it is done, and one goroutine polls and hands each partition's
// records to its reader, one batch at a time, so heartbeats, the poll loop
// and other tasks never wait on it and no client is created per restore.
type changelogReader struct {
	opts []kgo.Opt // the connection, for the client made at first use
	log  *slog.Logger
	// readCommitted reads committed records only, up to the last stable
	// offset (exactly-once).
	readCommitted bool

	mu      sync.Mutex
	cl      *kgo.Client
	subs    map[topicPartition]*changelogSub
	stop    context.CancelFunc
	stopped chan struct{} // closed when the poll goroutine ends
}

type topicPartition struct {
	topic     string
	partition int32
}

// changelogSub is one partition being read.
type changelogSub struct {
	// mu is held while apply runs; a reader that gives up takes it to make
	// sure no batch is being applied, or will be, once it returns.
	mu    sync.Mutex
	gone  bool
	end   int64 // read up to this offset; -1 reads forever
	next  int64 // the offset after the last record applied
	apply func([]*processor.RawRecord) error
	done  chan error // receives once, when next reaches end or apply fails
}

// newChangelogReader returns a reader over the connection opts. With
// readCommitted (exactly-once) it reads only committed records and a
// partition's end is its last stable offset.
func newChangelogReader(opts []kgo.Opt, log *slog.Logger, readCommitted bool) *changelogReader {
	c := &changelogReader{opts: opts, log: log, subs: make(map[topicPartition]*changelogSub), readCommitted: readCommitted}
	if readCommitted {
		c.opts = append(slices.Clone(opts), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	return c
}

// client returns the reader's client, creating it and starting the poll
// goroutine at first use. c.mu is held.
func (c *changelogReader) client() (*kgo.Client, error) {
	if c.cl != nil {
		return c.cl, nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(c.opts),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.KeepControlRecords(),
		// Fetches of a few MiB keep a restore's memory small: what
		// is fetched waits in the client and in the hand-over queue
		// (restoreQueue) until a store has written it, and a store
		// writes no faster for bigger ones.
		kgo.FetchMaxBytes(16<<20), kgo.FetchMaxPartitionBytes(4<<20),
	)...)
	if err != nil {
		return nil, fmt.Errorf("processor: changelog reader: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	c.cl, c.stop, c.stopped = cl, stop, make(chan struct{})
	go c.poll(ctx, cl)
	return cl, nil
}

// poll hands fetched records to their readers until the reader is closed.
func (c *changelogReader) poll(ctx context.Context, cl *kgo.Client) {
	defer close(c.stopped)
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			if sub := c.sub(topic, p); sub != nil {
				c.finish(topicPartition{topic, p}, sub, fmt.Errorf("reading %s/%d: %w", topic, p, err))
			}
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			tp := topicPartition{p.Topic, p.Partition}
			sub := c.sub(p.Topic, p.Partition)
			if sub == nil {
				return // removed since: a batch fetched before
			}
			recs := p.Records
			sub.mu.Lock()
			next := sub.next
			sub.mu.Unlock()
			if i := slices.IndexFunc(recs, func(rec *kgo.Record) bool { return rec.Offset >= next }); i > 0 {
				recs = recs[i:] // already applied: a batch fetched before a re-read
			} else if i < 0 {
				return
			}
			if sub.end >= 0 {
				if i := slices.IndexFunc(recs, func(rec *kgo.Record) bool { return rec.Offset >= sub.end }); i >= 0 {
					recs = recs[:i]
				}
			}
			sub.mu.Lock()
			var err error
			if !sub.gone && len(recs) > 0 {
				// Transaction markers are fetched (KeepControlRecords) and
				// handed over too, so that a reader knows how far it got
				// even when the last records below its end are markers;
				// readers skip them (dataRecords).
				err = sub.apply(recs)
				sub.next = recs[len(recs)-1].Offset + 1
			}
			reached := sub.end >= 0 && (len(recs) == 0 || recs[len(recs)-1] != p.Records[len(p.Records)-1] || sub.next >= sub.end)
			sub.mu.Unlock()
			if err != nil || reached {
				c.finish(tp, sub, err)
			}
		})
	}
}

func (c *changelogReader) sub(topic string, p int32) *changelogSub {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[topicPartition{topic, p}]
}

// finish ends sub's reading with err and stops fetching its partition.
func (c *changelogReader) finish(tp topicPartition, sub *changelogSub, err error) {
	c.mu.Lock()
	if c.subs[tp] == sub {
		delete(c.subs, tp)
		c.cl.RemoveConsumePartitions(map[string][]int32{tp.topic: {tp.partition}})
	}
	c.mu.Unlock()
	select {
	case sub.done <- err:
	default:
	}
}

// read starts reading topic's partition from offset from, up to end (-1:
// forever), handing batches to apply on the reader's goroutine.
func (c *changelogReader) read(topic string, partition int32, from, end int64, apply func([]*processor.RawRecord) error) (*changelogSub, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	tp := topicPartition{topic, partition}
	if _, busy := c.subs[tp]; busy {
		return nil, fmt.Errorf("processor: changelog %s/%d is already being read", topic, partition)
	}
	sub := &changelogSub{end: end, next: from, apply: apply, done: make(chan error, 1)}
	c.subs[tp] = sub
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}})
	return sub, nil
}

// cancel stops reading sub's partition; once it returns, apply is not
// running and will not run again.
func (c *changelogReader) cancel(tp topicPartition, sub *changelogSub) {
	c.mu.Lock()
	if c.subs[tp] == sub {
		delete(c.subs, tp)
		c.cl.RemoveConsumePartitions(map[string][]int32{tp.topic: {tp.partition}})
	}
	c.mu.Unlock()
	sub.mu.Lock()
	sub.gone = true
	sub.mu.Unlock()
}

// restoreQueue is how many fetched batches of a partition wait for the
// restore that applies them.
const restoreQueue = 2

// ReadChangelog implements ChangelogReader: it reads the partition from
// from up to end (which the caller listed with EndOffset), and returns the
// offset after the last record applied.
func (c *changelogReader) ReadChangelog(ctx context.Context, topic string, partition int32, from, end int64, apply func([]*processor.RawRecord) error) (int64, error) {
	if from >= end {
		return from, nil
	}
	// The poll goroutine hands the batches over and this goroutine applies
	// them, so that the restores of several tasks write their stores in
	// parallel, as they did with a client each.
	batches := make(chan []*processor.RawRecord, restoreQueue)
	quit := make(chan struct{})
	handOver := func(recs []*processor.RawRecord) error {
		select {
		case batches <- recs:
			return nil
		case <-quit:
			return errReadCanceled
		}
	}
	sub, err := c.read(topic, partition, from, end, handOver)
	if err != nil {
		return from, err
	}
	tp := topicPartition{topic, partition}
	next := from
	applyErr := func(recs []*processor.RawRecord) error {
		if data := dataRecords(recs); len(data) > 0 {
			if err := apply(data); err != nil {
				return err
			}
		}
		next = recs[len(recs)-1].Offset + 1
		return nil
	}
	for err == nil {
		select {
		case recs := <-batches:
			err = applyErr(recs)
		case err = <-sub.done:
			// Every batch handed over before the end was sent before it.
			for drained := false; !drained && err == nil; {
				select {
				case recs := <-batches:
					err = applyErr(recs)
				default:
					drained = true
				}
			}
			if err == nil {
				close(quit)
				c.cancel(tp, sub)
				return max(next, sub.end), nil
			}
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	close(quit)
	c.cancel(tp, sub)
	return next, err
}

// errReadCanceled ends a batch's hand-over to a read that gave up.
var errReadCanceled = errors.New("processor: changelog read canceled")

// EndOffset implements ChangelogReader: it lists the partition's latest
// offset, or under exactly-once its last stable offset, so a restore is
// caught up when it has read every committed record.
func (c *changelogReader) EndOffset(ctx context.Context, topic string, partition int32) (int64, error) {
	c.mu.Lock()
	cl, err := c.client()
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	req := kmsg.NewPtrListOffsetsRequest()
	if c.readCommitted {
		req.IsolationLevel = 1 // the last stable offset
	}
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = partition
	rp.Timestamp = -1 // latest
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("end offset of %s/%d: %w", topic, partition, err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerrFor(p.ErrorCode); err != nil {
				return 0, fmt.Errorf("end offset of %s/%d: %w", topic, partition, err)
			}
			return p.Offset, nil
		}
	}
	return 0, fmt.Errorf("end offset of %s/%d: no answer", topic, partition)
}

// endOffsets lists the end offsets of every partition of topics, with one
// request per broker: the last stable offsets when the reader reads
// committed. It runs on the reader's own client, so the group's balancer
// may call it without waiting on the group's client.
func (c *changelogReader) endOffsets(ctx context.Context, topics ...string) (kadm.ListedOffsets, error) {
	c.mu.Lock()
	cl, err := c.client()
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if c.readCommitted {
		return kadm.NewClient(cl).ListCommittedOffsets(ctx, topics...)
	}
	return kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
}

// close stops the poll goroutine and closes the client. Reads in progress
// end with an error.
func (c *changelogReader) close() {
	c.mu.Lock()
	cl, stop, stopped := c.cl, c.stop, c.stopped
	subs := c.subs
	c.subs = make(map[topicPartition]*changelogSub)
	c.mu.Unlock()
	if cl == nil {
		return
	}
	stop()
	cl.Close()
	<-stopped
	for _, sub := range subs {
		if sub.end < 0 {
			close(sub.done) // a tail: it ends with the instance
			continue
		}
		select {
		case sub.done <- errors.New("processor: changelog reader closed"):
		default:
		}
	}
}

// dataRecords returns recs without transaction markers (control records),
// which the changelog reader fetches but nothing applies.
func dataRecords(recs []*processor.RawRecord) []*processor.RawRecord {
	if !slices.ContainsFunc(recs, func(rec *processor.RawRecord) bool { return rec.Attrs.IsControl() }) {
		return recs
	}
	return slices.DeleteFunc(slices.Clone(recs), func(rec *processor.RawRecord) bool { return rec.Attrs.IsControl() })
}
