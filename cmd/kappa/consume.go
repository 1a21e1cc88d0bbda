package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// commitTimeout bounds the final offset commit of consume --group.
const commitTimeout = 10 * time.Second

// consumeAbout is the description "kappa consume -h" prints.
const consumeAbout = `
Prints TOPIC's records to stdout, one per line:

  [partition SEP] [offset SEP] [timestamp SEP] [headers SEP] key SEP value

The fields in brackets appear with --print-partition, --print-offset,
--print-timestamp (UTC, millisecond precision, RFC 3339) and
--print-headers. SEP is --key-separator, a tab by default. A record with a
nil key prints an empty key, so every line has the same fields;
--key-separator "" leaves the key out and prints values only (any other
fields are then separated by tabs). Keys and values are printed as they
are, so a value holding a newline spans lines.

Headers print as key=value pairs separated by commas, such as the ones
Kappa adds to dead-letter records:

  kappa.error=decode: codec: int64 decode: ...,kappa.error.kind=decode

A header key or value holding a comma, a double quote, SEP, a control
character or invalid UTF-8 (or a key holding '=') is printed as a
double-quoted Go string; a record without headers has an empty field.

--key-format and --value-format decode keys and values with Kappa's own
codecs (package codec) before printing them:

  string         the bytes as they are (the default)
  int64          8 bytes big-endian, as codec.Int64 writes: 42
  float64        8 bytes big-endian IEEE 754, as codec.Float64: 3.5
  hex            the bytes in hexadecimal: 6b6579
  windowed:F     a windowed key as codec.Windowed writes it (the key, then
                 the window's start and end in Unix milliseconds), with the
                 key in format F (string, int64, float64 or hex; windowed
                 alone means windowed:string), printed as Kappa prints a
                 window.Windowed: [alice@2024-05-01T10:00:00Z/2024-05-01T10:01:00Z]

A nil key or value (a tombstone) prints as an empty field in every
format. Bytes a format cannot decode print as <not FORMAT: HEX>, with a
warning on stderr; consume then goes on, and exits with status 1 at the
end.

Without --from-beginning it prints only records written after it starts.
It runs until Ctrl-C, until --max records were printed, or until --timeout
passes without a new record (counted from the start), whichever comes first.

With --group it consumes as a member of that consumer group: the group's
members share the partitions, consumption resumes at the group's committed
offsets (--from-beginning then applies only to partitions without one), and
the offsets of the printed records are committed, periodically and on exit.

Examples:

  kappa consume clicks --from-beginning --max 10 --print-partition
  kappa consume click-router-dlq --from-beginning --print-headers
  kappa consume clicks-per-minute --from-beginning --key-format windowed:string --value-format int64`

// runConsume implements "kappa consume": it prints a topic's records.
func runConsume(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	c := newCmdFlags("consume", "TOPIC", consumeAbout)
	cf := addConnFlags(c)
	fromBeginning := c.Bool("from-beginning", false, "start at the oldest record rather than at the end")
	maxRecs := &intFlag{min: 0}
	c.Var(maxRecs, "max", "exit after `N` records (default no limit)")
	group := c.String("group", "", "consume as consumer group `G` and commit offsets (default no group)")
	var p printer
	c.BoolVar(&p.partition, "print-partition", false, "print each record's partition")
	c.BoolVar(&p.offset, "print-offset", false, "print each record's offset")
	c.BoolVar(&p.timestamp, "print-timestamp", false, "print each record's timestamp")
	c.BoolVar(&p.headers, "print-headers", false, "print each record's headers as key=value pairs, comma-separated")
	keyFormat := c.String("key-format", "string", "`FORMAT` decode keys as string, int64, float64, hex or windowed:F (see above)")
	valueFormat := c.String("value-format", "string", "`FORMAT` decode values as string, int64, float64, hex or windowed:F (see above)")
	sep := &sepFlag{v: "\t"}
	c.Var(sep, "key-separator", "`SEP` separates the printed fields; \"\" prints values only")
	idle := &durationFlag{}
	c.Var(idle, "timeout", "exit once `D`, such as 5s, passes without a new record (default never)")
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return c.usageErrorf("want exactly one TOPIC, got %d arguments", len(pos))
	}
	topic := pos[0]
	p.sep = sep.v
	if p.key, err = parseFormat("key-format", *keyFormat); err != nil {
		return c.usageErrorf("%v", err)
	}
	if p.value, err = parseFormat("value-format", *valueFormat); err != nil {
		return c.usageErrorf("%v", err)
	}
	p.warn = stderr

	conn, err := cf.connect(ctx, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Consuming a missing topic would wait forever without a word.
	if _, err := conn.Admin().PartitionCounts(ctx, topic); err != nil {
		return topicError(err)
	}
	start := kgo.NewOffset().AtEnd()
	if *fromBeginning {
		start = kgo.NewOffset().AtStart()
	}
	opts := append(conn.ClientOpts(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(start))
	if *group != "" {
		// Commit only what was printed, not what was fetched beyond --max.
		opts = append(opts, kgo.ConsumerGroup(*group), kgo.AutoCommitMarks())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("consume client: %w", err)
	}

	w := bufio.NewWriter(stdout)
	consumeErr := consume(ctx, cl, w, &p, maxRecs.v, idle.v, *group != "")
	var commitErr error
	if *group != "" {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
		if err := cl.CommitMarkedOffsets(cctx); err != nil {
			commitErr = fmt.Errorf("commit offsets of group %s: %w", *group, err)
		}
		cancel()
	}
	cl.Close() // leaves the group
	var decodeErr error
	if p.bad > 0 {
		decodeErr = fmt.Errorf("%d %s could not be decoded with --key-format %s --value-format %s (printed as <not FORMAT: HEX>)",
			p.bad, plural(p.bad, "record", "records"), p.key.name, p.value.name)
	}
	return errors.Join(consumeErr, commitErr, decodeErr)
}

// consume polls cl and prints records to w until ctx ends, maxN records (if
// maxN > 0) were printed, or idle (if > 0) passes without a record. With mark
// it marks printed records for commit.
func consume(ctx context.Context, cl *kgo.Client, w *bufio.Writer, p *printer, maxN int, idle time.Duration, mark bool) error {
	n := 0
	deadline := time.Now().Add(idle)
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if idle > 0 {
			pctx, cancel = context.WithDeadline(ctx, deadline)
		}
		limit := 0
		if maxN > 0 {
			limit = maxN - n
		}
		fs := cl.PollRecords(pctx, limit)
		cancel()
		var fetchErr error
		fs.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return // our own ctx or idle deadline, handled below
			}
			if fetchErr == nil {
				fetchErr = fmt.Errorf("consume %s partition %d: %w", topic, partition, err)
			}
		})
		recs := fs.Records()
		for _, r := range recs {
			p.print(w, r)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
		if mark {
			cl.MarkCommitRecords(recs...)
		}
		n += len(recs)
		switch {
		case fetchErr != nil:
			return fetchErr
		case maxN > 0 && n >= maxN, ctx.Err() != nil:
			return nil
		case len(recs) > 0:
			deadline = time.Now().Add(idle)
		case idle > 0 && !time.Now().Before(deadline):
			return nil
		}
	}
}

// maxDecodeWarnings bounds the decode warnings consume prints to stderr.
const maxDecodeWarnings = 10

// printer formats records as lines.
type printer struct {
	partition, offset, timestamp, headers bool
	sep                                   string // between fields; "" leaves the key out
	key, value                            fieldFormat
	warn                                  io.Writer // decode warnings
	bad                                   int       // records whose key or value did not decode
}

// print writes r as one line.
func (p *printer) print(w *bufio.Writer, r *kgo.Record) {
	fieldSep := p.sep
	if fieldSep == "" {
		fieldSep = "\t"
	}
	if p.partition {
		w.WriteString(strconv.Itoa(int(r.Partition)))
		w.WriteString(fieldSep)
	}
	if p.offset {
		w.WriteString(strconv.FormatInt(r.Offset, 10))
		w.WriteString(fieldSep)
	}
	if p.timestamp {
		w.WriteString(r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		w.WriteString(fieldSep)
	}
	if p.headers {
		w.WriteString(headersText(r.Headers, fieldSep))
		w.WriteString(fieldSep)
	}
	var errs []string
	if p.sep != "" {
		k, err := p.key.text(r.Key)
		if err != nil {
			errs = append(errs, "key: "+err.Error())
		}
		w.WriteString(k)
		w.WriteString(p.sep)
	}
	v, err := p.value.text(r.Value)
	if err != nil {
		errs = append(errs, "value: "+err.Error())
	}
	w.WriteString(v)
	w.WriteByte('\n')
	if len(errs) > 0 {
		p.bad++
		if p.bad <= maxDecodeWarnings {
			fmt.Fprintf(p.warn, "kappa consume: %s partition %d offset %d: %v\n", r.Topic, r.Partition, r.Offset, strings.Join(errs, "; "))
		}
		if p.bad == maxDecodeWarnings {
			fmt.Fprintf(p.warn, "kappa consume: further decode errors are counted, not shown\n")
		}
	}
}
