package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/examples/clickstream/clicks"
	"github.com/kappa-streams/kappa/internal/kafkatest"
	"github.com/kappa-streams/kappa/internal/statedir"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/window"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// opsApp is the application the operations tests run: it counts clicks
// per page (through a repartition topic and a store with a changelog) and
// sends clicks on page "bad" to its dead-letter topic.
const opsApp = "ops-app"

// opsTopology builds opsApp's topology.
func opsTopology(t *testing.T) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	in := stream.From(b, "clicks", codec.String(), codec.String())
	checked := stream.MapValuesErr(in, func(_, page string) (string, error) {
		if page == "bad" {
			return "", errors.New("no such page")
		}
		return page, nil
	}, stream.Named("check-page"))
	byPage := stream.SelectKey(checked, func(_, page string) string { return page }, stream.Named("by-page"))
	byPage.GroupByKey(stream.Named("pages")).Count(stream.Materialized("page-counts")).
		ToStream().To("page-counts-out", stream.With(codec.String(), codec.Int64()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// runningApp is an instance of opsApp running on its own goroutine.
type runningApp struct {
	cancel context.CancelFunc
	done   chan error
}

// startApp runs opsApp against seeds with its state under stateDir.
func startApp(t *testing.T, seeds []string, stateDir string) *runningApp {
	t.Helper()
	app, err := kappa.New(opsTopology(t), kappa.AppID(opsApp), kappa.Brokers(seeds...),
		kappa.StateDir(stateDir), kappa.CommitInterval(100*time.Millisecond), kappa.HandleSignals(false))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningApp{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- app.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop stops the app and waits, with a deadline, for Run to return.
func (r *runningApp) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("app: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("app still running 30s after it was stopped")
	}
}

// committedAll waits until group has committed, on every partition of
// topic that has records, the partition's end offset.
func committedAll(t *testing.T, seeds []string, group, topic string) {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, seeds))
	kafkatest.Eventually(t, 30*time.Second, group+" to commit the end of "+topic, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return false
		}
		commits, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		all := true
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := commits.Lookup(topic, o.Partition)
			all = all && (o.Offset == 0 || ok && c.Err == nil && c.At == o.Offset)
		})
		return all
	})
}

// lastCounts reads page-counts-out and returns the last count per page.
func lastCounts(t *testing.T, seeds []string) map[string]int64 {
	t.Helper()
	cl := kafkatest.Client(t, seeds, kgo.ConsumeTopics("page-counts-out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, "page-counts-out")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	out := map[string]int64{}
	for n := int64(0); n < total; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d count records", n, total)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			v, err := codec.Int64().Decode(r.Value)
			if err != nil {
				t.Fatalf("count %q: %v", r.Value, err)
			}
			out[string(r.Key)] = v
		})
	}
	return out
}

// topicsOf lists the broker's topics.
func topicsOf(t *testing.T, conn []string) []string {
	t.Helper()
	return strings.Fields(mustCall(t, runTopics, "", join([]string{"list"}, conn)...).stdout)
}

// TestAppOperations runs a Kappa application and operates on it: groups
// list and describe while it runs and after it stops, its dead-letter
// records with --print-headers, a reset refused while it runs, a dry run,
// a reset, and a second run that reprocesses the input from the start.
func TestAppOperations(t *testing.T) {
	t.Parallel()
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	conn := []string{"--brokers", strings.Join(seeds, ",")}
	stateDir := t.TempDir()
	mustCall(t, runTopics, "", join([]string{"create", "clicks", "--partitions", "3"}, conn)...)
	var in strings.Builder
	want := map[string]int64{}
	for i := range 30 {
		page := []string{"home", "cart", "help"}[i%3]
		fmt.Fprintf(&in, "u%d:%s\n", i, page)
		want[page]++
	}
	in.WriteString("u99:bad\n")
	mustCall(t, runProduce, in.String(), join([]string{"clicks", "--key-separator", ":"}, conn)...)

	app := startApp(t, seeds, stateDir)
	repart := opsApp + "-pages-repartition"
	committedAll(t, seeds, opsApp, "clicks")
	committedAll(t, seeds, opsApp, repart)

	r := mustCall(t, runGroups, "", join([]string{"list"}, conn)...)
	if !regexpMatch(t, `(?m)^GROUP +STATE +PROTOCOL +MEMBERS\n`+opsApp+` +Stable +consumer/kappa-tasks +1$`, r.stdout) {
		t.Errorf("groups list:\n%s", r.stdout)
	}
	r = mustCall(t, runGroups, "", join([]string{"describe", opsApp}, conn)...)
	for _, want := range []string{
		"Group:     " + opsApp + "\nState:     Stable\nProtocol:  consumer/kappa-tasks (a Kappa application)\nMembers:   1\n",
		"clicks[0,1,2] " + repart + "[0,1,2]",
		"total lag: 0\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("groups describe lacks %q:\n%s", want, r.stdout)
		}
	}
	if !regexpMatch(t, `(?m)^  MEMBER ID +CLIENT ID +HOST +PARTITIONS\n  \S+ +`+opsApp+` +\S+ +clicks`, r.stdout) {
		t.Errorf("groups describe: no member row:\n%s", r.stdout)
	}
	if !regexpMatch(t, `(?m)^  clicks +0 +(\d+) +(\d+) +0 +\S+$`, r.stdout) {
		t.Errorf("groups describe: no offset row for clicks 0 with lag 0:\n%s", r.stdout)
	}

	r = mustCall(t, runConsume, "", join([]string{opsApp + "-dlq", "--from-beginning", "--max", "1", "--print-headers"}, conn)...)
	for _, want := range []string{"kappa.error=", "no such page", "kappa.error.kind=process", "kappa.topic=clicks", "\tu99\tbad\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dead-letter record lacks %q: %q", want, r.stdout)
		}
	}

	r = call(t, runReset, "", join([]string{"--app-id", opsApp, "--state-dir", stateDir}, conn)...)
	if r.err == nil || !strings.Contains(r.err.Error(), `application "ops-app" is running: its group is Stable with 1 member`) {
		t.Fatalf("reset of a running app: %v\n%s", r.err, r.stdout)
	}

	app.stop(t)
	first := lastCounts(t, seeds)
	if !maps.Equal(first, want) {
		t.Fatalf("first run counted %v, want %v", first, want)
	}
	r = mustCall(t, runGroups, "", join([]string{"describe", opsApp}, conn)...)
	if !strings.Contains(r.stdout, "State:     Empty\n") || !regexpMatch(t, `(?m)^  clicks +2 +\d+ +\d+ +0 +-$`, r.stdout) {
		t.Errorf("groups describe of the stopped app:\n%s", r.stdout)
	}

	internal := []string{opsApp + "-page-counts-changelog", repart}
	topics := topicsOf(t, conn)
	for _, it := range append(internal, opsApp+"-dlq") {
		if !slices.Contains(topics, it) {
			t.Fatalf("topic %s missing after the first run: %v", it, topics)
		}
	}
	local := filepath.Join(stateDir, opsApp)
	if _, err := os.Stat(local); err != nil {
		t.Fatalf("local state after the first run: %v", err)
	}

	r = mustCall(t, runReset, "", join([]string{"--app-id", opsApp, "--state-dir", stateDir, "--dry-run"}, conn)...)
	for _, want := range []string{
		`Dry run: nothing is changed. A reset of application "ops-app" would:`,
		"- would reset the committed offsets of group ops-app to the start of each partition:\n    TOPIC   PARTITION  COMMITTED  NEW\n    clicks  0 ",
		"- would delete committed offsets of " + repart + " (an internal topic)\n",
		"- would delete topic " + internal[0] + "\n",
		"- would delete topic " + repart + "\n",
		"- would keep dead-letter topic ops-app-dlq (--delete-dlq deletes it)\n",
		"- would delete local state " + local + "\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run lacks %q:\n%s", want, r.stdout)
		}
	}
	if got := topicsOf(t, conn); !slices.Equal(got, topics) {
		t.Errorf("dry run changed the topics: %v, before %v", got, topics)
	}
	if _, err := os.Stat(local); err != nil {
		t.Errorf("dry run deleted the local state: %v", err)
	}

	r = mustCall(t, runReset, "", join([]string{"--app-id", opsApp, "--state-dir", stateDir}, conn)...)
	for _, want := range []string{
		"- reset the committed offsets of group ops-app",
		"- deleted topic " + internal[0] + "\n",
		"- kept dead-letter topic ops-app-dlq",
		"- deleted local state " + local + "\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("reset output lacks %q:\n%s", want, r.stdout)
		}
	}
	topics = topicsOf(t, conn)
	for _, it := range internal {
		if slices.Contains(topics, it) {
			t.Errorf("internal topic %s kept: %v", it, topics)
		}
	}
	if !slices.Contains(topics, opsApp+"-dlq") {
		t.Errorf("dead-letter topic deleted without --delete-dlq: %v", topics)
	}
	if _, err := os.Stat(local); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("local state after reset: %v", err)
	}
	r = mustCall(t, runGroups, "", join([]string{"describe", opsApp}, conn)...)
	for p := range 3 {
		if !regexpMatch(t, fmt.Sprintf(`(?m)^  clicks +%d +0 +\d+ +\d+ +-$`, p), r.stdout) {
			t.Errorf("clicks partition %d not committed at 0 after reset:\n%s", p, r.stdout)
		}
	}
	if strings.Contains(r.stdout, repart) {
		t.Errorf("offsets of the repartition topic kept after reset:\n%s", r.stdout)
	}

	// The second run reprocesses everything from empty stores: the
	// counts come out the same, not doubled.
	app = startApp(t, seeds, stateDir)
	committedAll(t, seeds, opsApp, "clicks")
	committedAll(t, seeds, opsApp, repart)
	app.stop(t)
	if second := lastCounts(t, seeds); !maps.Equal(second, want) {
		t.Errorf("after reset the app counted %v, want %v", second, want)
	}

	r = mustCall(t, runReset, "", join([]string{"--app-id", opsApp, "--state-dir", stateDir, "--delete-dlq"}, conn)...)
	if !strings.Contains(r.stdout, "- deleted topic ops-app-dlq\n") || slices.Contains(topicsOf(t, conn), opsApp+"-dlq") {
		t.Errorf("--delete-dlq did not delete the dead-letter topic:\n%s", r.stdout)
	}
}

// TestGroupsOfConsumers lists and describes the group of "kappa consume
// --group", and an unknown group.
func TestGroupsOfConsumers(t *testing.T) {
	t.Parallel()
	conn := startBroker(t)
	mustCall(t, runTopics, "", join([]string{"create", "orders", "--partitions", "2"}, conn)...)
	mustCall(t, runProduce, "a\nb\nc\n", join([]string{"orders", "--partition", "1"}, conn)...)
	mustCall(t, runConsume, "", join([]string{"orders", "--group", "billing", "--from-beginning", "--max", "2"}, conn)...)
	mustCall(t, runProduce, "d\n", join([]string{"orders", "--partition", "1"}, conn)...)

	r := mustCall(t, runGroups, "", join([]string{"list"}, conn)...)
	if r.stdout != "GROUP    STATE  PROTOCOL  MEMBERS\nbilling  Empty  consumer  0\n" {
		t.Errorf("groups list:\n%s", r.stdout)
	}
	r = mustCall(t, runGroups, "", join([]string{"describe", "billing"}, conn)...)
	want := `Group:     billing
State:     Empty
Protocol:  consumer
Members:   0

  TOPIC   PARTITION  COMMITTED  END  LAG  MEMBER ID
  orders  1          2          4    2    -
  total lag: 2
`
	if r.stdout != want {
		t.Errorf("groups describe:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = call(t, runGroups, "", join([]string{"describe", "billing", "nope"}, conn)...)
	if r.err == nil || !strings.Contains(r.err.Error(), `group "nope" does not exist`) || !strings.Contains(r.stdout, "Group:     billing") {
		t.Errorf("describe of a known and an unknown group: %v\n%s", r.err, r.stdout)
	}
}

// TestResetChecks covers a reset with nothing to reset, a topic that may
// belong to another application, and a local instance holding the state.
func TestResetChecks(t *testing.T) {
	t.Parallel()
	conn := startBroker(t)
	r := call(t, runReset, "", join([]string{"--app-id", "nobody", "--state-dir", t.TempDir()}, conn)...)
	if r.err == nil || !strings.Contains(r.err.Error(), `nothing to reset for application "nobody"`) {
		t.Errorf("reset of an unknown app: %v", r.err)
	}

	// "shop-eu" is another application whose topics look like "shop"'s.
	mustCall(t, runTopics, "", join([]string{"create", "orders", "shop-orders-changelog", "shop-eu-orders-changelog"}, conn)...)
	mustCall(t, runProduce, "a\nb\n", join([]string{"orders"}, conn)...)
	mustCall(t, runConsume, "", join([]string{"orders", "--group", "shop-eu", "--from-beginning", "--max", "2"}, conn)...)
	r = mustCall(t, runReset, "", join([]string{"--app-id", "shop", "--state-dir", t.TempDir(), "--dry-run"}, conn)...)
	for _, want := range []string{
		"- would delete topic shop-orders-changelog\n",
		"- would keep topic shop-eu-orders-changelog: it may belong to application shop-eu\n",
		"- no committed input offsets to reset\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("reset of shop lacks %q:\n%s", want, r.stdout)
		}
	}

	// A local instance that holds its slot is running, whatever the group
	// says.
	stateDir := t.TempDir()
	mustCall(t, runTopics, "", join([]string{"create", "local-app-x-changelog"}, conn)...)
	f := lockInstanceSlot(t, filepath.Join(stateDir, "local-app"))
	r = call(t, runReset, "", join([]string{"--app-id", "local-app", "--state-dir", stateDir}, conn)...)
	if r.err == nil || !strings.Contains(r.err.Error(), "on this machine holds "+f) {
		t.Errorf("reset while a local instance runs: %v", r.err)
	}
}

// TestConsumeFormats decodes keys and values with each format, prints
// headers, and reports bytes a format cannot decode.
func TestConsumeFormats(t *testing.T) {
	t.Parallel()
	b := kafkatest.Broker(t)
	seeds := b.Addrs()
	conn := []string{"--brokers", strings.Join(seeds, ",")}
	mustCall(t, runTopics, "", join([]string{"create", "typed", "--partitions", "1"}, conn)...)
	enc := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	win := window.Windowed[string]{Key: "alice", Window: window.Window{Start: 1714557600000, End: 1714557660000}}
	winInt := window.Windowed[int64]{Key: -7, Window: window.Window{Start: 1714557600500, End: 1714557600500}}
	cl := kafkatest.Client(t, seeds)
	kafkatest.Produce(t, cl,
		&kgo.Record{Topic: "typed", Key: enc(codec.Int64().Encode(-42)), Value: enc(codec.Float64().Encode(3.25)),
			Headers: []kgo.RecordHeader{{Key: "kappa.error", Value: []byte("bad, very bad")}, {Key: "plain", Value: []byte("x=y")}}},
		&kgo.Record{Topic: "typed", Key: enc(codec.Windowed(codec.String()).Encode(win)), Value: enc(codec.Int64().Encode(1 << 40))},
		&kgo.Record{Topic: "typed", Key: enc(codec.Windowed(codec.Int64()).Encode(winInt)), Value: nil},
		&kgo.Record{Topic: "typed", Key: []byte{0xff, 0x00}, Value: []byte("abc")},
	)
	read := func(args ...string) result {
		return call(t, runConsume, "", join([]string{"typed", "--from-beginning", "--max", "1"}, conn, args)...)
	}
	// lineAt returns the line of the record at offset; the records
	// before it may not decode in the formats asked for.
	lineAt := func(offset int, args ...string) string {
		t.Helper()
		r := call(t, runConsume, "", join([]string{"typed", "--from-beginning", "--max", strconv.Itoa(offset + 1)}, conn, args)...)
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != offset+1 {
			t.Fatalf("%d lines, want %d:\n%s", len(lines), offset+1, r.stdout)
		}
		return lines[offset]
	}

	if r := read("--key-format", "int64", "--value-format", "float64", "--print-headers"); r.err != nil ||
		r.stdout != "kappa.error=\"bad, very bad\",plain=x=y\t-42\t3.25\n" {
		t.Errorf("int64/float64 with headers: %q, %v", r.stdout, r.err)
	}
	if r := read("--key-format", "hex", "--value-format", "hex", "--key-separator", " "); r.err != nil ||
		r.stdout != "ffffffffffffffd6 400a000000000000\n" {
		t.Errorf("hex: %q, %v", r.stdout, r.err)
	}
	if l := lineAt(1, "--key-format", "windowed:string", "--value-format", "int64", "--print-headers"); l != "\t[alice@2024-05-01T10:00:00Z/2024-05-01T10:01:00Z]\t1099511627776" {
		t.Errorf("windowed:string: %q", l)
	}
	if l := lineAt(1, "--key-format", "windowed", "--value-format", "hex"); !strings.HasPrefix(l, "[alice@2024-05-01T10:00:00Z/") {
		t.Errorf("windowed alone: %q", l)
	}
	// A tombstone prints an empty value in any format.
	if l := lineAt(2, "--key-format", "windowed:int64", "--value-format", "float64"); l != "[-7@2024-05-01T10:00:00.5Z/2024-05-01T10:00:00.5Z]\t" {
		t.Errorf("windowed:int64 with a tombstone: %q", l)
	}

	// Bytes a format cannot decode: printed as hex, warned about, and the
	// exit status says so.
	r := call(t, runConsume, "", join([]string{"typed", "--from-beginning", "--max", "4", "--key-format", "int64"}, conn)...)
	if !strings.Contains(r.stdout, "<not int64: ff00>\tabc\n") {
		t.Errorf("undecodable key not shown as hex:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "typed partition 0 offset 1: key: codec: int64 decode: wrong number of bytes") ||
		!strings.Contains(r.stderr, "offset 3: key:") {
		t.Errorf("decode warnings:\n%s", r.stderr)
	}
	if r.err == nil || !strings.Contains(r.err.Error(), "3 records could not be decoded with --key-format int64 --value-format string") {
		t.Errorf("error after undecodable records: %v", r.err)
	}
}

// TestBrokerAutoCreate runs "kappa broker --auto-create-topics" in-process
// and writes to a topic that does not exist with "kappa produce".
func TestBrokerAutoCreate(t *testing.T) {
	t.Parallel()
	for _, auto := range []bool{true, false} {
		t.Run(fmt.Sprintf("auto=%v", auto), func(t *testing.T) {
			t.Parallel()
			args := []string{"--listen", "127.0.0.1:0", "--data-dir", "", "--partitions", "2"}
			if auto {
				args = append(args, "--auto-create-topics")
			}
			addr, line := runBrokerInProcess(t, args...)
			if got := strings.HasSuffix(line, "(in memory: nothing is kept after exit; topics auto-created)"); got != auto {
				t.Errorf("listening line %q", line)
			}
			r := call(t, runProduce, "k:v\n", "fresh", "--key-separator", ":", "--brokers", addr)
			if !auto {
				if r.err == nil || !strings.Contains(r.err.Error(), `topic "fresh": topic does not exist`) {
					t.Fatalf("produce to a missing topic without auto-creation: %v", r.err)
				}
				return
			}
			if r.err != nil {
				t.Fatalf("produce: %v\n%s", r.err, r.stderr)
			}
			if !strings.Contains(r.stderr, "topic fresh did not exist: the broker created it (2 partitions)\n") {
				t.Errorf("produce stderr: %q", r.stderr)
			}
			if r := mustCall(t, runConsume, "", "fresh", "--from-beginning", "--max", "1", "--brokers", addr); r.stdout != "k\tv\n" {
				t.Errorf("consumed %q", r.stdout)
			}
		})
	}
}

// runBrokerInProcess runs the broker command until the test ends and
// returns its address and its listening line, waited for with a deadline.
func runBrokerInProcess(t *testing.T, args ...string) (addr, line string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runBroker(ctx, args, strings.NewReader(""), pw, io.Discard)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("broker: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("broker still running 10s after cancel")
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		if sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case line = <-lines:
	case err := <-done:
		t.Fatalf("broker exited before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no listening line within 10s")
	}
	rest, ok := strings.CutPrefix(line, "kappa broker listening on ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	return strings.Fields(rest)[0], line
}

// TestDescribeFormats prints a built-in topology in each format, and a
// running application's through its HTTP listener.
func TestDescribeFormats(t *testing.T) {
	t.Parallel()
	topo, err := clicks.Topology()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range processor.DiagramFormats() {
		want, err := topo.Diagram(f)
		if err != nil {
			t.Fatal(err)
		}
		if r := mustCall(t, runDescribe, "", "clickstream", "--format", f); r.stdout != want {
			t.Errorf("--format %s:\n%s\nwant:\n%s", f, r.stdout, want)
		}
	}

	// A stand-in for an application's listener, with the endpoint's
	// contract: GET /topology?format=text|dot|mermaid, default text.
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		paths = append(paths, req.URL.RequestURI())
		if req.URL.Path != "/base/topology" {
			http.NotFound(w, req)
			return
		}
		f := req.URL.Query().Get("format")
		if f == "" {
			f = "text"
		}
		text, err := topo.Diagram(f)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, text)
	}))
	defer srv.Close()
	for _, f := range processor.DiagramFormats() {
		want, _ := topo.Diagram(f)
		if r := mustCall(t, runDescribe, "", "--url", srv.URL+"/base/", "--format", f); r.stdout != want {
			t.Errorf("--url --format %s:\n%s\nwant:\n%s", f, r.stdout, want)
		}
	}
	if r := mustCall(t, runDescribe, "", "--url", srv.URL+"/base"); r.stdout != topo.Describe() {
		t.Errorf("--url without --format:\n%s", r.stdout)
	}
	if !slices.Equal(paths, []string{"/base/topology?format=text", "/base/topology?format=dot", "/base/topology?format=mermaid", "/base/topology?format=text"}) {
		t.Errorf("requests: %q", paths)
	}
	r := call(t, runDescribe, "", "--url", srv.URL)
	if r.err == nil || !strings.Contains(r.err.Error(), "404 Not Found: 404 page not found") {
		t.Errorf("--url at a server without the endpoint: %v", r.err)
	}
	srv.Close()
	r = call(t, runDescribe, "", "--url", srv.URL+"/base")
	if r.err == nil || !strings.Contains(r.err.Error(), "is the application running") {
		t.Errorf("--url at a closed server: %v", r.err)
	}
}

// TestUsageOfOperations checks the usage errors of the operator commands.
func TestUsageOfOperations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args       []string
		wantStderr string
	}{
		{[]string{"groups"}, "kappa: groups: missing action: list or describe"},
		{[]string{"groups", "drop"}, `unknown action "drop": want list or describe`},
		{[]string{"groups", "describe"}, "groups describe: missing GROUP"},
		{[]string{"groups", "list", "x"}, `unexpected argument "x"`},
		{[]string{"reset"}, "reset: missing --app-id"},
		{[]string{"reset", "--app-id", ".."}, `--app-id "..": an application ID is`},
		{[]string{"reset", "--app-id", "a/b"}, `--app-id "a/b"`},
		{[]string{"reset", "--app-id", "a", "--state-dir", ""}, "--state-dir is empty"},
		{[]string{"consume", "t", "--key-format", "json"}, `--key-format "json": unknown format: want string, int64, float64, hex or windowed:FORMAT`},
		{[]string{"consume", "t", "--value-format", "windowed:json"}, `--value-format "windowed:json": unknown inner format "json"`},
		{[]string{"describe", "clickstream", "--format", "svg"}, `--format "svg": want text, dot, mermaid`},
		{[]string{"describe", "--url", "127.0.0.1:8080"}, `--url "127.0.0.1:8080": want the application's HTTP address, such as http://`},
		{[]string{"describe", "clickstream", "--url", "http://h:1"}, `unexpected argument "clickstream": give either NAME or --url`},
		{[]string{"--brokers", "h:1", "describe"}, "only topics, produce, consume, groups and reset take them"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut strings.Builder
			if code := run(t.Context(), tt.args, strings.NewReader(""), &out, &errOut); code != 2 {
				t.Errorf("exit status %d, want 2\nstderr: %s", code, errOut.String())
			}
			if !strings.Contains(errOut.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, errOut.String())
			}
		})
	}
	// Every command and flag is in the help.
	var out strings.Builder
	run(t.Context(), []string{"help"}, strings.NewReader(""), &out, io.Discard)
	for _, c := range commands {
		if !strings.Contains(out.String(), "  "+c.name+" ") {
			t.Errorf("help lacks command %s", c.name)
		}
	}
	for _, args := range [][]string{{"groups", "-h"}, {"groups", "describe", "-h"}, {"reset", "-h"}, {"consume", "-h"}, {"describe", "-h"}, {"broker", "-h"}} {
		out.Reset()
		if code := run(t.Context(), args, strings.NewReader(""), &out, io.Discard); code != 0 {
			t.Errorf("%v: exit status %d", args, code)
		}
		for _, want := range map[string][]string{
			"groups":   {"list", "describe GROUP..."},
			"reset":    {"--app-id ID", "--state-dir DIR", "--delete-dlq", "--dry-run", "--brokers"},
			"consume":  {"--print-headers", "--key-format FORMAT", "--value-format FORMAT", "windowed:F"},
			"describe": {"--format FORMAT", "--url URL", "mermaid"},
			"broker":   {"--auto-create-topics"},
		}[args[0]] {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%v lacks %q:\n%s", args, want, out.String())
			}
		}
	}
}

// regexpMatch reports whether pattern matches s.
func regexpMatch(t *testing.T, pattern, s string) bool {
	t.Helper()
	ok, err := regexp.MatchString(pattern, s)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// lockInstanceSlot locks slot 0 of an application's state directory, as
// a running instance does (statedir.LockInstance), until the test ends, and
// returns the slot's file.
func lockInstanceSlot(t *testing.T, appDir string) string {
	t.Helper()
	in, err := statedir.LockInstance(filepath.Dir(appDir), filepath.Base(appDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return filepath.Join(appDir, fmt.Sprintf(".instance-%d", in.Slot))
}
