package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/kappa-streams/kappa/broker"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Limits of produce.
const (
	// maxLine is the longest input line produce accepts.
	maxLine = 1 << 20
	// interruptGrace is how long produce keeps delivering the lines it has
	// read after SIGINT or SIGTERM before it gives up on them.
	interruptGrace = 5 * time.Second
)

// produceAbout is the description "kappa produce -h" prints.
const produceAbout = `
Reads lines from stdin and writes each as one record to TOPIC. At the end of
input (or on Ctrl-C) it waits for the broker to acknowledge them and prints
to stderr how many records were written. Lines may be up to 1 MiB long.

With --key-separator, the text before the first separator is the record's
key and the text after it is the value; a line without the separator is a
record with a nil key. Without --key-separator every line is a value with a
nil key.

A TOPIC that does not exist is an error, unless the cluster creates
topics on demand (auto.create.topics.enable, or "kappa broker
--auto-create-topics"): produce then asks it to, and says so on stderr.

Keyed records go to the partition Kafka's own clients pick (murmur2 of the
key), which is also the partition a Kappa application writes that key to,
so equal keys always land on the same partition. Records without a key are
spread over the partitions. --partition writes every record to one
partition instead.

Example:

  printf 'alice:1\nbob:2\n' | kappa produce clicks --key-separator :`

// runProduce implements "kappa produce": it writes stdin's lines to a topic.
func runProduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := newCmdFlags("produce", "TOPIC", produceAbout)
	cf := addConnFlags(c)
	var sep sepFlag
	c.Var(&sep, "key-separator", "`SEP` splits each line at its first occurrence into key and value (default none: no keys)")
	part := &intFlag{min: 0, max: math.MaxInt32}
	c.Var(part, "partition", "write every record to partition `N` instead of choosing by key")
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return c.usageErrorf("want exactly one TOPIC, got %d arguments", len(pos))
	}
	topic := pos[0]

	conn, err := cf.connect(ctx, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	counts, err := conn.Admin().PartitionCounts(ctx, topic)
	if errors.Is(err, broker.ErrTopicNotFound) {
		counts, err = autoCreate(ctx, conn, topic, stderr)
	}
	if err != nil {
		return topicError(err)
	}
	// Kafka's partitioner: murmur2 of the key; records without a key stick
	// to one partition per batch.
	partitioner := kgo.StickyKeyPartitioner(nil)
	if part.set {
		if n := counts[topic]; part.v >= int(n) {
			return c.usageErrorf("--partition %d: topic %s has %d partitions, numbered 0 to %d", part.v, topic, n, n-1)
		}
		partitioner = kgo.ManualPartitioner()
	}
	cl, err := kgo.NewClient(append(conn.ClientOpts(),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(partitioner),
	)...)
	if err != nil {
		return fmt.Errorf("produce client: %w", err)
	}

	// Records keep being delivered for interruptGrace after a signal, so
	// that Ctrl-C after typing lines still writes them; then they fail.
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(interruptGrace, cancel) })
	defer stopGrace()

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written int
		prodErr error
	)
	promise := func(_ *kgo.Record, err error) {
		defer wg.Done()
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			written++
		} else if prodErr == nil {
			prodErr = err
		}
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return prodErr != nil
	}

	// Stdin is read on its own goroutine so that a signal ends the loop
	// below even while a terminal read blocks.
	lines := make(chan []byte, 256)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go readLines(stdin, lines, readErr, done)

	var inErr error
	lineNo := 0
read:
	for !failed() {
		select {
		case <-ctx.Done():
			break read
		case line, ok := <-lines:
			if !ok {
				inErr = <-readErr
				break read
			}
			lineNo++
			r := &kgo.Record{Value: line}
			if sep.v != "" {
				if k, v, found := bytes.Cut(line, []byte(sep.v)); found {
					r.Key, r.Value = k, v
				}
			}
			if part.set {
				r.Partition = int32(part.v)
			}
			wg.Add(1)
			cl.Produce(pctx, r, promise)
		}
	}
	// Flush fails only when pctx ends, which is an interruption, reported
	// below through the count.
	_ = cl.Flush(pctx)
	cl.Close() // fails whatever the flush did not deliver
	wg.Wait()

	note := ""
	if ctx.Err() != nil {
		note = " (interrupted)"
	}
	fmt.Fprintf(stderr, "wrote %d %s to %s%s\n", written, plural(written, "record", "records"), topic, note)
	if ctx.Err() != nil {
		// Stopping is what the user asked for; the count says what was
		// written.
		return nil
	}
	var errs []error
	if inErr != nil {
		if errors.Is(inErr, bufio.ErrTooLong) {
			inErr = fmt.Errorf("line %d is longer than 1 MiB", lineNo+1)
		}
		errs = append(errs, fmt.Errorf("read stdin: %w", inErr))
	}
	if prodErr != nil {
		errs = append(errs, fmt.Errorf("produce to %s: %w", topic, prodErr))
	}
	return errors.Join(errs...)
}

// autoCreate asks the cluster for topic's metadata, allowing it to create
// the topic, as a broker with auto.create.topics.enable (or "kappa broker
// --auto-create-topics") does. It returns the partition count of the
// topic it created, or the original not-found error when the cluster does
// not create topics. ctx bounds the request.
func autoCreate(ctx context.Context, conn *broker.Conn, topic string, stderr io.Writer) (map[string]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = []kmsg.MetadataRequestTopic{rt}
	req.AllowAutoTopicCreation = true
	// A Kafka broker answers LEADER_NOT_AVAILABLE while the topic it has
	// just created elects its leaders: ask again for a few seconds.
	for range 20 {
		resp, err := req.RequestWith(ctx, conn.Client())
		if err != nil {
			return nil, fmt.Errorf("produce: topic %q: %w", topic, err)
		}
		var code int16 = kerr.UnknownTopicOrPartition.Code
		var n int
		for _, t := range resp.Topics {
			if t.Topic != nil && *t.Topic == topic {
				code, n = t.ErrorCode, len(t.Partitions)
			}
		}
		switch {
		case code == 0 && n > 0:
			fmt.Fprintf(stderr, "topic %s did not exist: the broker created it (%d partitions)\n", topic, n)
			return map[string]int32{topic: int32(n)}, nil
		case code != kerr.LeaderNotAvailable.Code:
			return nil, fmt.Errorf("broker: topic %q: %w", topic, broker.ErrTopicNotFound)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("produce: topic %q was created but has no leader yet; try again", topic)
}

// readLines sends each line of r to lines (as a copy) until EOF or done,
// then sends the scanner's error to errc and closes lines.
func readLines(r io.Reader, lines chan<- []byte, errc chan<- error, done <-chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		select {
		case lines <- append([]byte{}, sc.Bytes()...): // never nil: an empty line is an empty value, not a tombstone
		case <-done:
			return
		}
	}
	errc <- sc.Err()
	close(lines)
}

// plural returns one for n == 1 and many otherwise.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
