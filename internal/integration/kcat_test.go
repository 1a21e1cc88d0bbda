package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/internal/kafkatest"
)

// TestKcatInterop: kcat (librdkafka) produces to the embedded broker, the
// app processes, and kcat reads the output back.
func TestKcatInterop(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed: apt-get install kcat (.ci/run installs it)")
	}
	b := kafkatest.Broker(t)
	addr := b.Addrs()[0]
	kafkatest.CreateTopic(t, b.Addrs(), "clicks", 3)

	var in bytes.Buffer
	want := map[string]bool{}
	for i := range 300 {
		c := click{User: fmt.Sprintf("u%d", i%7), Seq: i, Article: fmt.Sprintf("a%d", i%5), Bot: i%4 == 0}
		v, _ := json.Marshal(c)
		fmt.Fprintf(&in, "%s|%s\n", c.User, v)
		if !c.Bot {
			want[fmt.Sprintf("%s\t%s:%d:%s", c.User, c.User, c.Seq, c.Article)] = true
		}
	}
	in.WriteString("u0|{broken json\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produce := exec.CommandContext(ctx, kcat, "-P", "-b", addr, "-t", "clicks", "-K", "|")
	produce.Stdin = &in
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}

	_, stop := runApp(t, routerTopology(t), kappa.AppID("kcat-router"), kappa.Brokers(b.Addrs()...), kappa.CommitInterval(100*time.Millisecond))
	consume := exec.CommandContext(ctx, kcat, "-C", "-b", addr, "-t", "routed", "-o", "beginning",
		"-c", fmt.Sprint(len(want)), "-f", "%k\t%s\n", "-q")
	out, err := consume.Output()
	if err != nil {
		t.Fatalf("kcat -C: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(got) != len(want) {
		t.Fatalf("kcat read %d records, want %d", len(got), len(want))
	}
	for _, line := range got {
		if !want[line] {
			t.Fatalf("unexpected output line %q", line)
		}
	}
	dlq := exec.CommandContext(ctx, kcat, "-C", "-b", addr, "-t", "kcat-router-dlq", "-o", "beginning", "-c", "1", "-f", "%s|%h\n", "-q")
	dout, err := dlq.Output()
	if err != nil {
		t.Fatalf("kcat -C dlq: %v\n%s", err, dout)
	}
	if !strings.HasPrefix(string(dout), "{broken json|") || !strings.Contains(string(dout), "kappa.error=") {
		t.Fatalf("dead letter seen by kcat: %q", dout)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
