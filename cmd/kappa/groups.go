package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kappaProtocol is the group protocol Kappa applications balance tasks
// with (internal/runner.BalancerProtocol). Members encode their metadata
// and assignments as the standard consumer protocol does.
const kappaProtocol = "kappa-tasks"

// groupsHelp is what "kappa groups -h" prints.
const groupsHelp = `Usage: kappa groups <action> [flags] [arguments]

Actions:
  list               print every consumer group: state, protocol, members
  describe GROUP...  print a group's members, their partitions, and the
                     committed offset, end offset and lag of each partition

A Kappa application is the consumer group named by its application ID; its
protocol is kappa-tasks.

Run 'kappa groups <action> -h' for an action's flags.
`

// runGroups implements "kappa groups": args[0] is the action.
func runGroups(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &usageError{path: "groups", msg: "missing action: list or describe"}
	}
	action, rest := args[0], args[1:]
	switch action {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, groupsHelp)
		return flag.ErrHelp
	case "list":
		return groupsList(ctx, rest, stdout, stderr)
	case "describe":
		return groupsDescribe(ctx, rest, stdout)
	}
	if strings.HasPrefix(action, "-") {
		return &usageError{path: "groups", msg: fmt.Sprintf("missing action before %s: list or describe", action)}
	}
	return &usageError{path: "groups", msg: fmt.Sprintf("unknown action %q: want list or describe", action)}
}

// groupsList implements "kappa groups list".
func groupsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCmdFlags("groups list", "", `
Prints every consumer group, sorted by name, as a table:

  GROUP   STATE   PROTOCOL              MEMBERS
  orders  Stable  consumer/kappa-tasks  2

STATE is the broker's: Stable, PreparingRebalance, CompletingRebalance,
Empty (no members; committed offsets kept) or Dead. PROTOCOL is the
protocol type and, while the group has members, the balancing protocol
they agreed on: consumer/kappa-tasks is a Kappa application.`)
	cf := addConnFlags(c)
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return c.usageErrorf("unexpected argument %q: list takes no group names (use describe)", pos[0])
	}
	conn, err := cf.connect(ctx, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	adm := kadm.NewClient(conn.Client())
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	names := listed.Groups()
	if len(names) == 0 {
		fmt.Fprintln(stderr, "no consumer groups")
		return nil
	}
	described, err := describeGroups(ctx, adm, names...)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tPROTOCOL\tMEMBERS")
	for _, name := range slices.Sorted(slices.Values(names)) {
		g, ok := described[name]
		if !ok || g.Err != nil {
			// Listed but gone by the time it was described.
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, dash(listed[name].State), dash(listed[name].ProtocolType), "-")
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", name, dash(g.State), protocol(g), len(g.Members))
	}
	return tw.Flush()
}

// describeGroups describes groups, failing on a request error but not on
// a group's own error, which is left in its DescribedGroup.
func describeGroups(ctx context.Context, adm *kadm.Client, groups ...string) (kadm.DescribedGroups, error) {
	described, err := adm.DescribeGroups(ctx, groups...)
	if err != nil && len(described) == 0 {
		return nil, fmt.Errorf("describe groups: %w", err)
	}
	return described, nil
}

// protocol returns "type/protocol" of g, such as consumer/kappa-tasks, or
// the type alone while the group has no members.
func protocol(g kadm.DescribedGroup) string {
	switch {
	case g.ProtocolType == "":
		return "-"
	case g.Protocol == "":
		return g.ProtocolType
	}
	return g.ProtocolType + "/" + g.Protocol
}

// dash returns s, or "-" for an empty s, so that tables have no holes.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// groupsDescribe implements "kappa groups describe".
func groupsDescribe(ctx context.Context, args []string, stdout io.Writer) error {
	c := newCmdFlags("groups describe", "GROUP...", `
Prints each GROUP's state, protocol and members, then one line per
partition that a member is assigned or that the group has committed an
offset for:

  Group:     orders
  State:     Stable
  Protocol:  consumer/kappa-tasks (a Kappa application)
  Members:   1

    MEMBER ID    CLIENT ID  HOST        PARTITIONS
    orders-6f0…  orders     /127.0.0.1  clicks[0,1,2]

    TOPIC   PARTITION  COMMITTED  END  LAG  MEMBER ID
    clicks  0          40         42   2    orders-6f0…
    ...
    total lag: 2

PARTITIONS lists each member's assigned partitions by topic. COMMITTED is
the group's committed offset (the next record to process), END the log end
offset (the offset the next record will get) and LAG their difference; "-"
marks a partition without a committed offset, or one not assigned to a
member (the group has no members, or it is rebalancing). A Kappa
application's group also commits the offsets of its repartition topics,
which appear here too.`)
	cf := addConnFlags(c)
	groups, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return c.usageErrorf("missing GROUP ('kappa groups list' shows the groups)")
	}
	conn, err := cf.connect(ctx, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	adm := kadm.NewClient(conn.Client())
	described, err := describeGroups(ctx, adm, groups...)
	if err != nil {
		return err
	}
	var errs []error
	printed := 0
	for _, name := range groups {
		g, ok := described[name]
		if !ok {
			errs = append(errs, fmt.Errorf("group %q: not in the broker's answer", name))
			continue
		}
		if errors.Is(g.Err, kerr.GroupIDNotFound) {
			errs = append(errs, fmt.Errorf("group %q does not exist ('kappa groups list' shows the groups)", name))
			continue
		}
		if g.Err != nil {
			errs = append(errs, fmt.Errorf("group %q: %w", name, g.Err))
			continue
		}
		commits, err := adm.FetchOffsets(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("committed offsets of group %q: %w", name, err))
			continue
		}
		if !groupExists(g, commits) {
			errs = append(errs, fmt.Errorf("group %q does not exist ('kappa groups list' shows the groups)", name))
			continue
		}
		rows := groupPartitions(g, commits)
		var ends kadm.ListedOffsets
		if len(rows) > 0 { // no topics would list every topic's
			ends, err = adm.ListEndOffsets(ctx, rowTopics(rows)...)
			if err != nil && len(ends) == 0 {
				errs = append(errs, fmt.Errorf("end offsets of group %q's topics: %w", name, err))
				continue
			}
		}
		if printed > 0 {
			fmt.Fprintln(stdout)
		}
		printed++
		printGroup(stdout, g, rows, ends)
	}
	return errors.Join(errs...)
}

// partitionRow is one line of a group's offset table.
type partitionRow struct {
	topic     string
	partition int32
	member    string // "" when no member is assigned the partition
	committed int64  // -1 without a committed offset
}

// groupPartitions returns a row for every partition assigned to a member
// of g or committed by it, sorted by topic and partition.
func groupPartitions(g kadm.DescribedGroup, commits kadm.OffsetResponses) []partitionRow {
	type tp struct {
		topic     string
		partition int32
	}
	rows := make(map[tp]*partitionRow)
	row := func(topic string, p int32) *partitionRow {
		k := tp{topic, p}
		if rows[k] == nil {
			rows[k] = &partitionRow{topic: topic, partition: p, committed: -1}
		}
		return rows[k]
	}
	for _, m := range g.Members {
		for topic, ps := range assigned(m) {
			for _, p := range ps {
				row(topic, p).member = m.MemberID
			}
		}
	}
	commits.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At >= 0 {
			row(o.Topic, o.Partition).committed = o.At
		}
	})
	out := make([]partitionRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b partitionRow) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	return out
}

// rowTopics returns the distinct topics of rows, in order.
func rowTopics(rows []partitionRow) []string {
	var topics []string
	for _, r := range rows {
		if len(topics) == 0 || topics[len(topics)-1] != r.topic {
			topics = append(topics, r.topic)
		}
	}
	return topics
}

// assigned returns a member's assigned partitions by topic. kadm decodes
// the assignment of groups whose protocol type is "consumer", which Kappa
// applications' is (only their balancing protocol, kappa-tasks, is their
// own); for another type the raw bytes are decoded as a consumer
// assignment, which is what Kappa's balancer writes.
func assigned(m kadm.DescribedGroupMember) map[string][]int32 {
	a, ok := m.Assigned.AsConsumer()
	if !ok {
		raw, isRaw := m.Assigned.Raw()
		if !isRaw || len(raw) == 0 {
			return nil
		}
		a = new(kmsg.ConsumerMemberAssignment)
		if err := a.ReadFrom(raw); err != nil {
			return nil
		}
	}
	out := make(map[string][]int32, len(a.Topics))
	for _, t := range a.Topics {
		ps := slices.Clone(t.Partitions)
		slices.Sort(ps)
		out[t.Topic] = append(out[t.Topic], ps...)
	}
	return out
}

// formatAssigned writes partitions by topic as "clicks[0,1] views[2]".
func formatAssigned(byTopic map[string][]int32) string {
	if len(byTopic) == 0 {
		return "-"
	}
	var parts []string
	for _, topic := range slices.Sorted(maps.Keys(byTopic)) {
		ps := make([]string, len(byTopic[topic]))
		for i, p := range byTopic[topic] {
			ps[i] = strconv.Itoa(int(p))
		}
		parts = append(parts, topic+"["+strings.Join(ps, ",")+"]")
	}
	return strings.Join(parts, " ")
}

// printGroup writes one group's description.
func printGroup(w io.Writer, g kadm.DescribedGroup, rows []partitionRow, ends kadm.ListedOffsets) {
	proto := protocol(g)
	if g.Protocol == kappaProtocol {
		proto += " (a Kappa application)"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Group:\t%s\n", g.Group)
	fmt.Fprintf(tw, "State:\t%s\n", dash(g.State))
	fmt.Fprintf(tw, "Protocol:\t%s\n", proto)
	fmt.Fprintf(tw, "Members:\t%d\n", len(g.Members))
	tw.Flush()

	if len(g.Members) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "  MEMBER ID\tCLIENT ID\tHOST\tPARTITIONS")
		for _, m := range g.Members {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", m.MemberID, dash(m.ClientID), dash(m.ClientHost), formatAssigned(assigned(m)))
		}
		tw.Flush()
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "\n  (no assigned partitions and no committed offsets)")
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "  TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER ID")
	var total int64
	for _, r := range rows {
		committed, end, lag := "-", "-", "-"
		if r.committed >= 0 {
			committed = strconv.FormatInt(r.committed, 10)
		}
		if o, ok := ends.Lookup(r.topic, r.partition); ok && o.Err == nil {
			end = strconv.FormatInt(o.Offset, 10)
			if r.committed >= 0 {
				l := max(o.Offset-r.committed, 0)
				total += l
				lag = strconv.FormatInt(l, 10)
			}
		} else if ok && errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
			end = "(topic deleted)"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\n", r.topic, r.partition, committed, end, lag, dash(r.member))
	}
	tw.Flush()
	fmt.Fprintf(w, "  total lag: %d\n", total)
}

// groupExists reports whether the broker knows group: it has members or
// committed offsets, or a state other than Dead.
func groupExists(g kadm.DescribedGroup, commits kadm.OffsetResponses) bool {
	return len(g.Members) > 0 || len(groupPartitions(g, commits)) > 0 || (g.State != "Dead" && g.State != "")
}
