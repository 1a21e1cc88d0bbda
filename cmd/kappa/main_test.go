package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/broker"
	"github.com/kappa-streams/kappa/broker/embedded"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/examples/clickstream/clicks"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
)

// runFunc is the signature every command shares.
type runFunc = func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error

// startBroker starts an in-memory embedded broker on a free port and
// returns the --brokers flag pointing at it.
func startBroker(t *testing.T) []string {
	t.Helper()
	b, err := embedded.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return []string{"--brokers", strings.Join(b.Addrs(), ",")}
}

// result is what one command call produced.
type result struct {
	stdout, stderr string
	err            error
}

// call runs a command in-process with stdin and a 15s deadline.
func call(t *testing.T, run runFunc, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return result{out.String(), errOut.String(), err}
}

// mustCall is call that fails the test on an error.
func mustCall(t *testing.T, run runFunc, stdin string, args ...string) result {
	t.Helper()
	r := call(t, run, stdin, args...)
	if r.err != nil {
		t.Fatalf("kappa %s: %v\nstderr: %s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

// join concatenates argument lists.
func join(parts ...[]string) []string { return slices.Concat(parts...) }

// TestTopics creates, lists, describes and deletes topics.
func TestTopics(t *testing.T) {
	t.Parallel()
	conn := startBroker(t)
	r := mustCall(t, runTopics, "", join([]string{"create", "clicks", "--partitions", "4", "--config", "cleanup.policy=compact"}, conn)...)
	if r.stdout != "created topic clicks (4 partitions)\n" {
		t.Errorf("create output %q", r.stdout)
	}
	// Flags first, then the topic; the default partition count.
	mustCall(t, runTopics, "", join([]string{"create"}, conn, []string{"views"})...)

	if r := mustCall(t, runTopics, "", join([]string{"list"}, conn)...); r.stdout != "clicks\nviews\n" {
		t.Errorf("list: %q", r.stdout)
	}

	r = mustCall(t, runTopics, "", join([]string{"describe", "clicks", "views"}, conn)...)
	for _, want := range []string{
		"Topic:       clicks\nPartitions:  4\nConfigs:     cleanup.policy=compact\n",
		"  PARTITION  END OFFSET\n  0          0\n  1          0\n  2          0\n  3          0\n  total      0\n",
		"Topic:       views\nPartitions:  3\nConfigs:     (none: broker defaults)\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("describe output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = call(t, runTopics, "", join([]string{"create", "clicks"}, conn)...)
	if r.err == nil || !strings.Contains(r.err.Error(), `topic "clicks" already exists`) {
		t.Errorf("creating an existing topic: %v", r.err)
	}
	r = call(t, runTopics, "", join([]string{"describe", "missing"}, conn)...)
	if !errors.Is(r.err, broker.ErrTopicNotFound) {
		t.Errorf("describing a missing topic: %v", r.err)
	}

	mustCall(t, runTopics, "", join([]string{"delete", "views"}, conn)...)
	if r := mustCall(t, runTopics, "", join([]string{"list"}, conn)...); r.stdout != "clicks\n" {
		t.Errorf("list after delete: %q", r.stdout)
	}
}

// TestProduceConsume writes keyed lines and reads them back, checking that
// keys are partitioned with murmur2 as Kappa applications partition them.
func TestProduceConsume(t *testing.T) {
	t.Parallel()
	conn := startBroker(t)
	mustCall(t, runTopics, "", join([]string{"create", "clicks", "--partitions", "3"}, conn)...)

	big := strings.Repeat("x", 200<<10) // over bufio.Scanner's default 64 KiB
	var in strings.Builder
	want := map[string][]string{} // key -> values in order
	keys := []string{"alice", "bob", "carol", "dave", "erin"}
	for i := range 20 {
		k := keys[i%len(keys)]
		v := fmt.Sprintf("v%d=x", i) // the value holds the separator's neighbour '='
		fmt.Fprintf(&in, "%s:%s\n", k, v)
		want[k] = append(want[k], v)
	}
	in.WriteString("no key here\n")
	in.WriteString("big:" + big + "\n")
	in.WriteString(":empty key\n")
	const n = 23

	r := mustCall(t, runProduce, in.String(), join([]string{"clicks", "--key-separator", ":"}, conn)...)
	if r.stderr != fmt.Sprintf("wrote %d records to clicks\n", n) {
		t.Errorf("produce stderr %q", r.stderr)
	}

	r = mustCall(t, runConsume, "", join([]string{"clicks", "--from-beginning", "--max", strconv.Itoa(n), "--print-partition"}, conn)...)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("consumed %d lines, want %d", len(lines), n)
	}
	got := map[string][]string{}
	partOf := map[string]string{}
	for _, l := range lines {
		f := strings.SplitN(l, "\t", 3)
		if len(f) != 3 {
			t.Fatalf("line %.80q: want partition, key and value", l)
		}
		p, k, v := f[0], f[1], f[2]
		got[k] = append(got[k], v)
		if k == "" {
			continue // nil and empty keys
		}
		if prev, ok := partOf[k]; ok && prev != p {
			t.Errorf("key %s on partitions %s and %s", k, prev, p)
		}
		partOf[k] = p
		// The partition Kappa's own partitioner picks for the key.
		if want := strconv.Itoa(int(processor.KeyPartition([]byte(k), 3))); p != want {
			t.Errorf("key %s on partition %s, want %s (murmur2)", k, p, want)
		}
	}
	for _, k := range keys {
		if !slices.Equal(got[k], want[k]) {
			t.Errorf("key %s: values %v, want %v", k, got[k], want[k])
		}
	}
	if len(got["big"]) != 1 || got["big"][0] != big {
		t.Errorf("the 200 KiB line did not come back whole")
	}
	if e := got[""]; len(e) != 2 || !slices.Contains(e, "no key here") || !slices.Contains(e, "empty key") {
		t.Errorf("records without keys: %q", e)
	}

	// Values only, with offsets, from one partition written by hand.
	mustCall(t, runProduce, "p1\np2\n", join([]string{"clicks", "--partition", "1"}, conn)...)
	r = call(t, runProduce, "x\n", join([]string{"clicks", "--partition", "3"}, conn)...)
	var ue *usageError
	if !errors.As(r.err, &ue) || !strings.Contains(r.err.Error(), "--partition 3: topic clicks has 3 partitions") {
		t.Errorf("--partition out of range: %v", r.err)
	}
	r = mustCall(t, runConsume, "", join([]string{"clicks", "--from-beginning", "--key-separator", "", "--print-partition", "--timeout", "1s"}, conn)...)
	if !strings.Contains(r.stdout, "1\tp1\n1\tp2\n") {
		t.Errorf("--partition 1 records not found at the end of partition 1 in:\n%.500s", r.stdout)
	}
}

// TestConsumeGroupCommits checks that consume --group commits what it
// printed, and that consume without a group starts at the end.
func TestConsumeGroupCommits(t *testing.T) {
	t.Parallel()
	conn := startBroker(t)
	mustCall(t, runTopics, "", join([]string{"create", "orders"}, conn)...)
	mustCall(t, runProduce, "a:1\nb:2\nc:3\nd:4\ne:5\n", join([]string{"orders", "--key-separator", ":"}, conn)...)

	group := join([]string{"orders", "--group", "billing"}, conn)
	r := mustCall(t, runConsume, "", join(group, []string{"--from-beginning", "--max", "5"})...)
	if got := sortedLines(r.stdout); !slices.Equal(got, []string{"a\t1", "b\t2", "c\t3", "d\t4", "e\t5"}) {
		t.Fatalf("first group consume: %q", got)
	}
	r = mustCall(t, runConsume, "", join(group, []string{"--from-beginning", "--timeout", "1s"})...)
	if r.stdout != "" {
		t.Fatalf("second group consume saw records already committed:\n%s", r.stdout)
	}
	// The committed offsets hold: the group gets only the new records,
	// though --from-beginning would start another group at the start.
	mustCall(t, runProduce, "f:6\ng:7\n", join([]string{"orders", "--key-separator", ":"}, conn)...)
	r = mustCall(t, runConsume, "", join(group, []string{"--from-beginning", "--max", "2"})...)
	if got := sortedLines(r.stdout); !slices.Equal(got, []string{"f\t6", "g\t7"}) {
		t.Fatalf("group consume after new records: %q", got)
	}

	// Without a group and --from-beginning, consume starts at the end.
	r = mustCall(t, runConsume, "", join([]string{"orders", "--timeout", "500ms"}, conn)...)
	if r.stdout != "" {
		t.Fatalf("consume from the end printed old records:\n%s", r.stdout)
	}
}

// sortedLines splits s into lines and sorts them.
func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return lines
}

// TestDescribe prints a registered topology and rejects unknown names.
func TestDescribe(t *testing.T) {
	r := call(t, runDescribe, "", "no-such-topology")
	if r.err == nil || !strings.Contains(r.err.Error(), `no topology named "no-such-topology"`) {
		t.Errorf("unknown name: %v", r.err)
	}
	if !strings.Contains(r.stderr, "topo.Describe()") {
		t.Errorf("unknown name does not explain Describe:\n%s", r.stderr)
	}
	if code := run(t.Context(), []string{"describe", "no-such-topology"}, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}); code != 1 {
		t.Errorf("unknown name exits %d, want 1", code)
	}

	build := func() (*processor.Topology, error) {
		b := stream.NewBuilder()
		stream.From(b, "in", codec.String(), codec.String()).To("out")
		return b.Build()
	}
	topologies["test-pipe"] = build
	t.Cleanup(func() { delete(topologies, "test-pipe") })
	r = mustCall(t, runDescribe, "")
	if !strings.Contains(r.stdout, "  test-pipe\n") {
		t.Errorf("list lacks test-pipe:\n%s", r.stdout)
	}
	topo, err := build()
	if err != nil {
		t.Fatal(err)
	}
	if r = mustCall(t, runDescribe, "", "test-pipe"); r.stdout != topo.Describe() {
		t.Errorf("describe test-pipe:\n%s\nwant:\n%s", r.stdout, topo.Describe())
	}

	// The examples are registered.
	ex, err := clicks.Topology()
	if err != nil {
		t.Fatal(err)
	}
	if r = mustCall(t, runDescribe, "", "clickstream"); r.stdout != ex.Describe() {
		t.Errorf("describe clickstream:\n%s\nwant:\n%s", r.stdout, ex.Describe())
	}
}

// TestUsage checks exit statuses and that errors name the flag and the fix.
func TestUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args       []string
		code       int
		wantStdout string
		wantStderr string
	}{
		{args: nil, code: 2, wantStderr: "kappa: missing command\n"},
		{args: []string{"help"}, code: 0, wantStdout: "  consume    print a topic's records"},
		{args: []string{"-h"}, code: 0, wantStdout: "Commands:\n  broker"},
		{args: []string{"frob"}, code: 2, wantStderr: `kappa: unknown command "frob"`},
		{args: []string{"help", "consume"}, code: 0, wantStdout: "Usage: kappa consume [flags] TOPIC"},
		{args: []string{"topics", "create", "-h"}, code: 0, wantStdout: "--partitions N"},
		{args: []string{"topics"}, code: 2, wantStderr: "missing action"},
		{args: []string{"topics", "create"}, code: 2, wantStderr: "kappa: topics create: missing TOPIC"},
		{args: []string{"topics", "create", "t", "--partitions", "0"}, code: 2,
			wantStderr: `invalid value "0" for flag -partitions: want a whole number of at least 1`},
		{args: []string{"topics", "create", "t", "--config", "compact"}, code: 2,
			wantStderr: "flag -config: want key=value, such as cleanup.policy=compact"},
		{args: []string{"consume", "t", "--timeout", "5"}, code: 2,
			wantStderr: `invalid value "5" for flag -timeout: want a duration such as 500ms, 5s`},
		{args: []string{"consume", "t", "--nope"}, code: 2, wantStderr: "flag provided but not defined: -nope (run 'kappa consume -h' for help)"},
		{args: []string{"produce", "t", "--partition", "-1"}, code: 2, wantStderr: "flag -partition: want a whole number of at least 0"},
		{args: []string{"produce"}, code: 2, wantStderr: "want exactly one TOPIC"},
		{args: []string{"consume", "t", "--brokers", "localhost"}, code: 2,
			wantStderr: `--brokers "localhost": "localhost" is not host:port`},
		{args: []string{"consume", "t", "--sasl-mechanism", "GSSAPI", "--sasl-user", "u"}, code: 2,
			wantStderr: "--sasl-mechanism: broker: SASL mechanism \"GSSAPI\" is not supported"},
		{args: []string{"broker", "--listen", "9092"}, code: 2, wantStderr: `--listen "9092": want host:port`},
		{args: []string{"--brokers", "h:1", "broker"}, code: 2, wantStderr: "--brokers is a connection flag"},
		{args: []string{"--partitions", "3", "topics"}, code: 2, wantStderr: "only connection flags go before the command"},
		{args: []string{"describe", "a", "b"}, code: 2, wantStderr: "want at most one NAME"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(t.Context(), tt.args, strings.NewReader(""), &out, &errOut)
			if code != tt.code {
				t.Errorf("exit status %d, want %d\nstderr: %s", code, tt.code, errOut.String())
			}
			if !strings.Contains(out.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, out.String())
			}
			if !strings.Contains(errOut.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, errOut.String())
			}
		})
	}
}

// TestConnectionFlagsBeforeCommand passes --brokers before the command name.
func TestConnectionFlagsBeforeCommand(t *testing.T) {
	t.Parallel()
	conn := startBroker(t)
	var out, errOut bytes.Buffer
	args := join(conn, []string{"topics", "create", "early", "--partitions", "2"})
	if code := run(t.Context(), args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit status %d: %s", code, errOut.String())
	}
	out.Reset()
	if code := run(t.Context(), join(conn, []string{"topics", "list"}), strings.NewReader(""), &out, &errOut); code != 0 || out.String() != "early\n" {
		t.Fatalf("exit status %d, list %q: %s", code, out.String(), errOut.String())
	}
}

// TestParseInterspersed mixes flags and positional arguments, with "--".
func TestParseInterspersed(t *testing.T) {
	c := newCmdFlags("x", "", "")
	n := &intFlag{}
	c.Var(n, "max", "")
	b := c.Bool("v", false, "")
	pos, err := c.parse([]string{"a", "--max", "3", "b", "-v", "--", "--max", "c"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pos, []string{"a", "b", "--max", "c"}) || n.v != 3 || !*b {
		t.Fatalf("pos %q max %d v %v", pos, n.v, *b)
	}
	var out bytes.Buffer
	if _, err := c.parse([]string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "--max") {
		t.Fatalf("-h: %v, %q", err, out.String())
	}
}

// TestBrokerCommand runs the built binary as a broker, talks to it,
// stops it with SIGTERM and checks that a restart keeps the data.
func TestBrokerCommand(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGTERM")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH; install Go to run this test")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "kappa")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := t.TempDir()

	p, addr := startBrokerProcess(t, bin, dataDir)
	mustCall(t, runTopics, "", "create", "kept", "--partitions", "2", "--brokers", addr)
	mustCall(t, runProduce, "k:v\n", "kept", "--key-separator", ":", "--brokers", addr)
	stopBrokerProcess(t, p)

	p, addr = startBrokerProcess(t, bin, dataDir)
	r := mustCall(t, runConsume, "", "kept", "--from-beginning", "--max", "1", "--brokers", addr)
	if r.stdout != "k\tv\n" {
		t.Errorf("after restart consumed %q, want the record written before", r.stdout)
	}
	stopBrokerProcess(t, p)
}

// brokerProc is the running "kappa broker" of TestBrokerCommand.
type brokerProc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	eof    chan struct{} // closed when stdout is drained
}

// startBrokerProcess runs "kappa broker" and waits, with a deadline, for
// its "listening on" line, returning the address it names.
func startBrokerProcess(t *testing.T, bin, dataDir string) (*brokerProc, string) {
	t.Helper()
	cmd := exec.Command(bin, "broker", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &brokerProc{cmd: cmd, stderr: &bytes.Buffer{}, eof: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := make(chan string, 16)
	go func() {
		defer close(p.eof)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody listens after the first line
			}
		}
	}()
	select {
	case line := <-lines:
		const prefix = "kappa broker listening on "
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok || !strings.HasSuffix(rest, "(data in "+dataDir+")") {
			t.Fatalf("first line %q, want %q...", line, prefix)
		}
		return p, strings.Fields(rest)[0]
	case <-p.eof:
		t.Fatalf("kappa broker exited before listening; stderr:\n%s", p.stderr)
	case <-time.After(10 * time.Second):
		t.Fatalf("no listening line within 10s; stderr:\n%s", p.stderr)
	}
	return nil, ""
}

// stopBrokerProcess sends SIGTERM and waits, with a deadline, for a clean
// exit.
func stopBrokerProcess(t *testing.T, p *brokerProc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.eof:
	case <-time.After(10 * time.Second):
		t.Fatalf("kappa broker still running 10s after SIGTERM; stderr:\n%s", p.stderr)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("kappa broker after SIGTERM: %v; stderr:\n%s", err, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "kappa broker: stopped") {
		t.Errorf("stderr lacks the stop message:\n%s", p.stderr)
	}
}
