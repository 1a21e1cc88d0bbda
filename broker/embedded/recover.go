package embedded

// Recovery of transactions a crash left open. When the embedded broker
// starts again over a data directory, transactions that were open when it
// stopped are aborted by the broker, but no ABORT marker is written to
// their partitions. A read_committed consumer skips the batches of an
// aborted transaction's producer from its first offset until that
// producer's marker, so without the marker it also skips the producer's
// later transactions, committed ones included: committed records become
// invisible. Apache Kafka's transaction coordinator always writes the
// markers. recoverTxns does it here before the broker serves clients: it
// reads every partition, finds the producers whose transactional batches
// are not followed by a marker, and writes an ABORT marker for each with
// WriteTxnMarkers, as kafka-transactions.sh abort does.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// gatedListener is the broker's listener. Until open is called it accepts
// only the connections of recovery, which dial it in memory; clients that
// connect meanwhile wait in the kernel's backlog and are served once it is
// open.
type gatedListener struct {
	net.Listener
	internal chan net.Conn
	opened   chan struct{}
	closed   chan struct{}
	once     sync.Once
	closeMu  sync.Once
}

func newGatedListener(l net.Listener) *gatedListener {
	return &gatedListener{Listener: l, internal: make(chan net.Conn), opened: make(chan struct{}), closed: make(chan struct{})}
}

// Accept returns recovery's connections until the listener is open, and
// the network's after.
func (l *gatedListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.internal:
		return c, nil
	case <-l.opened:
		return l.Listener.Accept()
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close closes the network listener and ends a waiting Accept.
func (l *gatedListener) Close() error {
	l.closeMu.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// open lets clients in.
func (l *gatedListener) open() { l.once.Do(func() { close(l.opened) }) }

// dial is a kgo dialer that connects to the broker in memory, through the
// gate.
func (l *gatedListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.internal <- server:
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// recovered says what recoverTxns did.
type recovered struct {
	partitions int // partitions read
	aborted    int // ABORT markers written
	took       time.Duration
}

// openTxn is a producer whose transactional batches in one partition are
// not followed by a marker.
type openTxn struct {
	topic     string
	partition int32
	pid       int64
	epoch     int16
}

// recoverTxns writes an ABORT marker for every transaction left open in
// the broker's partitions, connecting through gate.
func recoverTxns(ctx context.Context, gate *gatedListener, addr string) (recovered, error) {
	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.Dialer(gate.dial), kgo.RequestRetries(3))
	if err != nil {
		return recovered{}, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopicsWithInternal(ctx)
	if err != nil {
		return recovered{}, fmt.Errorf("list topics: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topics.Names()...)
	if err != nil {
		return recovered{}, fmt.Errorf("list start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics.Names()...)
	if err != nil {
		return recovered{}, fmt.Errorf("list end offsets: %w", err)
	}
	var rec recovered
	var open []openTxn
	var errs []error
	ends.Each(func(end kadm.ListedOffset) {
		if end.Err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: end offset: %w", end.Topic, end.Partition, end.Err))
			return
		}
		from := int64(0)
		if s, ok := starts.Lookup(end.Topic, end.Partition); ok && s.Err == nil {
			from = s.Offset
		}
		if from >= end.Offset {
			return
		}
		rec.partitions++
		found, err := openTxnsOf(ctx, cl, end.Topic, topics[end.Topic].ID, end.Partition, from, end.Offset)
		if err != nil {
			errs = append(errs, err)
			return
		}
		open = append(open, found...)
	})
	if err := errors.Join(errs...); err != nil {
		return rec, err
	}
	for _, o := range open {
		if err := writeAbort(ctx, cl, o); err != nil {
			return rec, err
		}
		rec.aborted++
	}
	rec.took = time.Since(start)
	return rec, nil
}

// Record batch attributes (Kafka's RecordBatch format).
const (
	attrTransactional = 0x10
	attrControl       = 0x20
)

// openTxnsOf reads topic's partition from offset from to end, and returns
// the producers whose last transactional data batch comes after their
// last control batch (marker).
func openTxnsOf(ctx context.Context, cl *kgo.Client, topic string, id kadm.TopicID, partition int32, from, end int64) ([]openTxn, error) {
	type state struct {
		lastData, lastMarker int64
		epoch                int16
	}
	pids := make(map[int64]*state)
	for off := from; off < end; {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxWaitMillis = 0
		req.MaxBytes = 16 << 20
		req.IsolationLevel = 0 // read uncommitted: every batch, markers too
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = partition, off, 8<<20
		rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: fetch at %d: %w", topic, partition, off, err)
		}
		var raw []byte
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerrFor(p.ErrorCode); err != nil {
					return nil, fmt.Errorf("%s[%d]: fetch at %d: %w", topic, partition, off, err)
				}
				raw = p.RecordBatches
			}
		}
		next := off
		for len(raw) >= 12 {
			n := 12 + int(int32(binary.BigEndian.Uint32(raw[8:12])))
			if n > len(raw) || n < 12 {
				break // a partial batch at the end of the response
			}
			var b kmsg.RecordBatch
			if err := b.ReadFrom(raw[:n]); err != nil {
				return nil, fmt.Errorf("%s[%d]: batch at %d: %w", topic, partition, next, err)
			}
			raw = raw[n:]
			last := b.FirstOffset + int64(b.LastOffsetDelta)
			next = last + 1
			if b.Attributes&attrTransactional == 0 {
				continue
			}
			st := pids[b.ProducerID]
			if st == nil {
				st = &state{lastData: -1, lastMarker: -1}
				pids[b.ProducerID] = st
			}
			if b.Attributes&attrControl != 0 {
				st.lastMarker = last
			} else {
				st.lastData, st.epoch = last, b.ProducerEpoch
			}
		}
		if next == off {
			return nil, fmt.Errorf("%s[%d]: fetch at %d returned no whole batch", topic, partition, off)
		}
		off = next
	}
	var open []openTxn
	for pid, st := range pids {
		if st.lastData > st.lastMarker {
			open = append(open, openTxn{topic: topic, partition: partition, pid: pid, epoch: st.epoch})
		}
	}
	return open, nil
}

// writeAbort writes an ABORT marker for o's producer to its partition.
func writeAbort(ctx context.Context, cl *kgo.Client, o openTxn) error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = o.pid, o.epoch, false
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = o.topic, []int32{o.partition}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("%s[%d]: abort marker for producer %d: %w", o.topic, o.partition, o.pid, err)
	}
	for _, rm := range resp.Markers {
		for _, t := range rm.Topics {
			for _, p := range t.Partitions {
				if err := kerrFor(p.ErrorCode); err != nil {
					return fmt.Errorf("%s[%d]: abort marker for producer %d: %w", o.topic, o.partition, o.pid, err)
				}
			}
		}
	}
	return nil
}

func kerrFor(code int16) error {
	if code == 0 {
		return nil
	}
	return kerr.ErrorForCode(code)
}
