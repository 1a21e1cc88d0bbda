package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/kappa-streams/kappa/broker"
	"github.com/twmb/franz-go/pkg/kerr"
)

// topicsHelp is what "kappa topics -h" prints.
const topicsHelp = `Usage: kappa topics <action> [flags] [arguments]

Actions:
  list                print the topic names, one per line
  create TOPIC...     create topics (--partitions N, --config key=value)
  describe TOPIC...   print partitions, configs and end offsets
  delete TOPIC...     delete topics and all their records

Run 'kappa topics <action> -h' for an action's flags.
`

// runTopics implements "kappa topics": args[0] is the action.
func runTopics(ctx context.Context, args []string, _ io.Reader, stdout, _ io.Writer) error {
	if len(args) == 0 {
		return &usageError{path: "topics", msg: "missing action: list, create, describe or delete"}
	}
	action, rest := args[0], args[1:]
	switch action {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, topicsHelp)
		return flag.ErrHelp
	case "list":
		return topicsList(ctx, rest, stdout)
	case "create":
		return topicsCreate(ctx, rest, stdout)
	case "describe":
		return topicsDescribe(ctx, rest, stdout)
	case "delete":
		return topicsDelete(ctx, rest, stdout)
	}
	if strings.HasPrefix(action, "-") {
		return &usageError{path: "topics", msg: fmt.Sprintf("missing action before %s: list, create, describe or delete", action)}
	}
	return &usageError{path: "topics", msg: fmt.Sprintf("unknown action %q: want list, create, describe or delete", action)}
}

// topicsList implements "kappa topics list".
func topicsList(ctx context.Context, args []string, stdout io.Writer) error {
	c := newCmdFlags("topics list", "", "Prints the names of all topics except internal ones, sorted, one per line.")
	cf := addConnFlags(c)
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return c.usageErrorf("unexpected argument %q: list takes no topic names (use describe)", pos[0])
	}
	conn, err := cf.connect(ctx, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	names, err := conn.Admin().List(ctx)
	if err != nil {
		return err
	}
	for _, n := range names {
		fmt.Fprintln(stdout, n)
	}
	return nil
}

// topicsCreate implements "kappa topics create".
func topicsCreate(ctx context.Context, args []string, stdout io.Writer) error {
	c := newCmdFlags("topics create", "TOPIC...", `
Creates each TOPIC with the same partition count and configs. Kappa
co-partitions topics joined with each other, so give them the same count.`)
	cf := addConnFlags(c)
	parts := &intFlag{v: 3, min: 1, max: math.MaxInt32}
	c.Var(parts, "partitions", "create `N` partitions")
	var cfg configFlag
	c.Var(&cfg, "config", "`KEY=VALUE` topic config, such as cleanup.policy=compact; repeatable")
	topics, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(topics) == 0 {
		return c.usageErrorf("missing TOPIC")
	}
	conn, err := cf.connect(ctx, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	var errs []error
	for _, t := range topics {
		err := conn.Admin().CreateAndWait(ctx, broker.TopicSpec{Name: t, Partitions: int32(parts.v), Configs: cfg.m})
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			errs = append(errs, fmt.Errorf("topic %q already exists: 'kappa topics describe %s' shows it, 'kappa topics delete %s' removes it", t, t, t))
		case err != nil:
			errs = append(errs, err)
		default:
			fmt.Fprintf(stdout, "created topic %s (%d partitions)\n", t, parts.v)
		}
	}
	return errors.Join(errs...)
}

// topicsDescribe implements "kappa topics describe".
func topicsDescribe(ctx context.Context, args []string, stdout io.Writer) error {
	c := newCmdFlags("topics describe", "TOPIC...", `
Prints each TOPIC's partition count, the configs set on the topic (not
broker defaults) and each partition's end offset (the offset the next
record will get).`)
	cf := addConnFlags(c)
	topics, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(topics) == 0 {
		return c.usageErrorf("missing TOPIC")
	}
	conn, err := cf.connect(ctx, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	infos, err := conn.Admin().Describe(ctx, topics...)
	if err != nil {
		return topicError(err)
	}
	for i, info := range infos {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printTopic(stdout, info)
	}
	return nil
}

// printTopic writes one topic's description:
//
//	Topic:       clicks
//	Partitions:  3
//	Configs:     cleanup.policy=compact
//	  PARTITION  END OFFSET
//	  0          12
//	  ...
func printTopic(w io.Writer, info broker.TopicInfo) {
	cfgs := "(none: broker defaults)"
	if len(info.Configs) > 0 {
		kvs := make([]string, 0, len(info.Configs))
		for _, k := range slices.Sorted(maps.Keys(info.Configs)) {
			kvs = append(kvs, k+"="+info.Configs[k])
		}
		cfgs = strings.Join(kvs, " ")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Topic:\t%s\n", info.Name)
	fmt.Fprintf(tw, "Partitions:\t%d\n", info.Partitions)
	fmt.Fprintf(tw, "Configs:\t%s\n", cfgs)
	tw.Flush()
	var total int64
	fmt.Fprintln(tw, "  PARTITION\tEND OFFSET")
	for p, end := range info.EndOffsets {
		fmt.Fprintf(tw, "  %d\t%d\n", p, end)
		total += end
	}
	fmt.Fprintf(tw, "  total\t%d\n", total)
	tw.Flush()
}

// topicsDelete implements "kappa topics delete".
func topicsDelete(ctx context.Context, args []string, stdout io.Writer) error {
	c := newCmdFlags("topics delete", "TOPIC...", "Deletes each TOPIC and all its records. There is no undo.")
	cf := addConnFlags(c)
	topics, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(topics) == 0 {
		return c.usageErrorf("missing TOPIC")
	}
	conn, err := cf.connect(ctx, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	var errs []error
	for _, t := range topics {
		if err := conn.Admin().Delete(ctx, t); err != nil {
			errs = append(errs, topicError(err))
			continue
		}
		fmt.Fprintf(stdout, "deleted topic %s\n", t)
	}
	return errors.Join(errs...)
}

// topicError adds a hint to errors about topics that do not exist.
func topicError(err error) error {
	if errors.Is(err, broker.ErrTopicNotFound) || errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("%w ('kappa topics list' shows the topics, 'kappa topics create' makes one)", err)
	}
	return err
}
