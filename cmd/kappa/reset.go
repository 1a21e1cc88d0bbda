package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/kappa-streams/kappa/internal/runner"
	"github.com/kappa-streams/kappa/processor"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// resetAbout is the description "kappa reset -h" prints.
const resetAbout = `
Resets a Kappa application so that its next run reprocesses its input
from the start, as Kafka Streams' kafka-streams-application-reset does:

  1. It refuses while the application's consumer group (named by the
     application ID) has members, or while an instance holds the local
     state directory: stop every instance first.
  2. It commits, for every input partition the group has committed an
     offset for, the partition's earliest offset.
  3. It deletes the group's committed offsets of its internal topics (and
     of topics that no longer exist), and deletes those internal topics: the changelogs <app>-<store>-changelog and the
     repartition topics <app>-<name>-repartition. The application creates
     them again, empty, when it starts.
  4. It keeps the dead-letter topic <app>-dlq unless --delete-dlq is given.
  5. It deletes the local state <state-dir>/<app>.

It prints each step as it does it; with --dry-run it only prints what it
would do. Output topics are not touched: delete or truncate them yourself
if the next run should not append to them. Local state exists on every
machine that ran an instance: run the reset with --state-dir there too, or
delete <state-dir>/<app> on those machines, before restarting them (a
store left behind would be newer than its emptied changelog).

An internal-looking topic that may belong to another application (one
whose ID starts with "<app>-", for which a consumer group exists) is kept,
and said so, unless this application's group has committed offsets on it.

Example:

  kappa reset --app-id click-router --dry-run
  kappa reset --app-id click-router --state-dir /var/lib/kappa`

// validAppID is what kappa.AppID accepts, without "." and "..", which
// would name the state root itself or its parent.
var validAppID = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// runReset implements "kappa reset".
func runReset(ctx context.Context, args []string, _ io.Reader, stdout, _ io.Writer) error {
	c := newCmdFlags("reset", "", resetAbout)
	cf := addConnFlags(c)
	appID := c.String("app-id", "", "`ID` application ID to reset: its consumer group and the prefix of its internal topics (required)")
	stateDir := c.String("state-dir", runner.DefaultStateDir(), "`DIR` state directory the application ran with (kappa.StateDir)")
	deleteDLQ := c.Bool("delete-dlq", false, "also delete the dead-letter topic <app>-dlq")
	dryRun := c.Bool("dry-run", false, "print what would be done, and change nothing")
	pos, err := c.parse(args, stdout)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return c.usageErrorf("unexpected argument %q: give the application with --app-id", pos[0])
	case *appID == "":
		return c.usageErrorf("missing --app-id")
	case !validAppID.MatchString(*appID) || *appID == "." || *appID == ".." || len(*appID) > 200:
		return c.usageErrorf("--app-id %q: an application ID is at most 200 ASCII letters, digits, '.', '_' and '-'", *appID)
	case *stateDir == "":
		return c.usageErrorf("--state-dir is empty; give the directory the application ran with")
	}
	app := *appID
	localDir := filepath.Join(*stateDir, app)

	conn, err := cf.connect(ctx, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	adm := kadm.NewClient(conn.Client())

	// 1. Nothing may run.
	described, err := describeGroups(ctx, adm, app)
	if err != nil {
		return err
	}
	g := described[app]
	if g.Err != nil && !errors.Is(g.Err, kerr.GroupIDNotFound) {
		return fmt.Errorf("reset: group %q: %w", app, g.Err)
	}
	if n := len(g.Members); n > 0 || (g.State != "" && g.State != "Empty" && g.State != "Dead") {
		var who []string
		for _, m := range g.Members {
			who = append(who, m.ClientID+" on "+m.ClientHost)
		}
		return fmt.Errorf("reset: application %q is running: its group is %s with %d %s (%s); stop every instance first ('kappa groups describe %s' lists them)",
			app, g.State, n, plural(n, "member", "members"), strings.Join(who, ", "), app)
	}
	if lock, err := heldInstanceLock(localDir); err != nil {
		return fmt.Errorf("reset: %w", err)
	} else if lock != "" {
		return fmt.Errorf("reset: an instance of application %q on this machine holds %s: stop it first", app, lock)
	}

	// What there is to reset.
	commits, err := adm.FetchOffsets(ctx, app)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return fmt.Errorf("reset: committed offsets of group %q: %w", app, err)
	}
	committed := make(map[string][]kadm.Offset) // by topic
	commits.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At >= 0 {
			committed[o.Topic] = append(committed[o.Topic], o.Offset)
		}
	})
	topics, err := conn.Admin().List(ctx)
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("reset: list groups: %w", err)
	}
	internal, kept := internalTopics(app, topics, listed.Groups(), committed)
	dlq := processor.DLQTopic(app)
	hasDLQ := slices.Contains(topics, dlq)
	_, statErr := os.Stat(localDir)
	hasLocal := statErr == nil
	if statErr != nil && !errors.Is(statErr, fs.ErrNotExist) {
		return fmt.Errorf("reset: local state: %w", statErr)
	}
	if len(committed) == 0 && len(internal) == 0 && !hasDLQ && !hasLocal {
		return fmt.Errorf("reset: nothing to reset for application %q: no committed offsets, no internal topics and no local state in %s; check --app-id ('kappa groups list' shows the groups) and --state-dir", app, localDir)
	}

	// act returns what a step does: "would delete" in a dry run, else
	// "deleted".
	act := func(present, past string) string {
		if *dryRun {
			return "would " + present
		}
		return past
	}
	if *dryRun {
		fmt.Fprintf(stdout, "Dry run: nothing is changed. A reset of application %q would:\n", app)
	} else {
		fmt.Fprintf(stdout, "Resetting application %q (group %s is %s):\n", app, app, dash(g.State))
	}

	// 2 and 3. Offsets: inputs to their start, internal and vanished
	// topics' offsets deleted.
	var inputs, forget []string
	for _, t := range slices.Sorted(maps.Keys(committed)) {
		switch {
		case slices.Contains(internal, t):
			forget = append(forget, t)
		case !slices.Contains(topics, t):
			forget = append(forget, t)
		default:
			inputs = append(inputs, t)
		}
	}
	if len(inputs) > 0 {
		if err := resetInputs(ctx, adm, app, inputs, committed, *dryRun, stdout); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "- no committed input offsets to reset\n")
	}
	if len(forget) > 0 {
		set := make(kadm.TopicsSet)
		for _, t := range forget {
			for _, o := range committed[t] {
				set.Add(t, o.Partition)
			}
		}
		if !*dryRun {
			resp, err := adm.DeleteOffsets(ctx, app, set)
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				return fmt.Errorf("reset: delete committed offsets of group %q on %s: %w", app, strings.Join(forget, ", "), err)
			}
		}
		for _, t := range forget {
			why := "an internal topic"
			if !slices.Contains(topics, t) {
				why = "the topic no longer exists"
			}
			fmt.Fprintf(stdout, "- %s committed offsets of %s (%s)\n", act("delete", "deleted"), t, why)
		}
	}

	// 3 and 4. Topics.
	doomed := slices.Clone(internal)
	if hasDLQ && *deleteDLQ {
		doomed = append(doomed, dlq)
	}
	for _, t := range doomed {
		if !*dryRun {
			if err := conn.Admin().Delete(ctx, t); err != nil {
				return fmt.Errorf("reset: %w", err)
			}
		}
		fmt.Fprintf(stdout, "- %s topic %s\n", act("delete", "deleted"), t)
	}
	if len(internal) == 0 {
		fmt.Fprintf(stdout, "- no internal topics to delete\n")
	}
	for _, t := range kept {
		fmt.Fprintf(stdout, "- %s topic %s: it may belong to application %s\n", act("keep", "kept"), t.topic, t.owner)
	}
	if hasDLQ && !*deleteDLQ {
		fmt.Fprintf(stdout, "- %s dead-letter topic %s (--delete-dlq deletes it)\n", act("keep", "kept"), dlq)
	}

	// 5. Local state.
	if hasLocal {
		if !*dryRun {
			if err := os.RemoveAll(localDir); err != nil {
				return fmt.Errorf("reset: delete local state: %w", err)
			}
		}
		fmt.Fprintf(stdout, "- %s local state %s\n", act("delete", "deleted"), localDir)
	} else {
		fmt.Fprintf(stdout, "- no local state in %s\n", localDir)
	}
	if !*dryRun {
		fmt.Fprintf(stdout, "Done. Delete %s on every other machine that ran the application, then start it to reprocess its input.\n", filepath.Join("<state-dir>", app))
	}
	return nil
}

// resetInputs commits the earliest offset of every committed partition of
// inputs, and prints the table of old and new offsets.
func resetInputs(ctx context.Context, adm *kadm.Client, app string, inputs []string, committed map[string][]kadm.Offset, dryRun bool, stdout io.Writer) error {
	starts, err := adm.ListStartOffsets(ctx, inputs...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("reset: earliest offsets of %s: %w", strings.Join(inputs, ", "), err)
	}
	to := make(kadm.Offsets)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	verb := "reset"
	if dryRun {
		verb = "would reset"
	}
	fmt.Fprintf(stdout, "- %s the committed offsets of group %s to the start of each partition:\n", verb, app)
	fmt.Fprintln(tw, "    TOPIC\tPARTITION\tCOMMITTED\tNEW")
	for _, t := range inputs {
		ps := slices.Clone(committed[t])
		slices.SortFunc(ps, func(a, b kadm.Offset) int { return cmp.Compare(a.Partition, b.Partition) })
		for _, o := range ps {
			start, ok := starts.Lookup(t, o.Partition)
			if !ok {
				return fmt.Errorf("reset: no earliest offset for %s partition %d", t, o.Partition)
			}
			to.Add(kadm.Offset{Topic: t, Partition: o.Partition, At: start.Offset, LeaderEpoch: -1})
			fmt.Fprintf(tw, "    %s\t%d\t%d\t%d\n", t, o.Partition, o.At, start.Offset)
		}
	}
	if !dryRun {
		resp, err := adm.CommitOffsets(ctx, app, to)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("reset: commit offsets of group %q: %w", app, err)
		}
	}
	return tw.Flush()
}

// keptTopic is an internal-looking topic left alone because it may belong
// to another application.
type keptTopic struct{ topic, owner string }

// internalTopics returns app's internal topics among topics: the changelog
// and repartition topics named "<app>-...". A topic that would also be an
// internal topic of another group whose ID starts with "<app>-" is kept
// (and returned in kept), unless app's group has committed offsets on it,
// which makes it app's input.
func internalTopics(app string, topics, groups []string, committed map[string][]kadm.Offset) (internal []string, kept []keptTopic) {
	for _, t := range topics {
		if !strings.HasPrefix(t, app+"-") || !(strings.HasSuffix(t, "-changelog") || strings.HasSuffix(t, "-repartition")) {
			continue
		}
		owner := ""
		for _, g := range groups {
			if g != app && strings.HasPrefix(g, app+"-") && strings.HasPrefix(t, g+"-") && len(g) > len(owner) {
				owner = g
			}
		}
		if _, ours := committed[t]; owner != "" && !ours {
			kept = append(kept, keptTopic{topic: t, owner: owner})
			continue
		}
		internal = append(internal, t)
	}
	return internal, kept
}

// heldInstanceLock returns the first instance file in an application's
// state directory that a running instance holds locked (see
// statedir.LockInstance), or "" when none is, or when dir does not exist.
func heldInstanceLock(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("local state: %w", err)
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), ".instance-")
		if _, err := strconv.Atoi(rest); !ok || err != nil {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("local state: %w", err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return path, nil
		}
		if err != nil {
			return "", fmt.Errorf("local state: lock %s: %w", path, err)
		}
	}
	return "", nil
}
