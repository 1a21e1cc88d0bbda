package broker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/broker"
	"github.com/kappa-streams/kappa/broker/embedded"
	"github.com/twmb/franz-go/pkg/kgo"
)

func start(t *testing.T, opts ...embedded.Opt) (*embedded.Broker, *broker.Conn) {
	t.Helper()
	b, err := embedded.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := broker.Connect(ctx, b.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return b, conn
}

func TestEnsureTopics(t *testing.T) {
	_, conn := start(t)
	ctx := context.Background()
	adm := conn.Admin()
	specs := []broker.TopicSpec{
		{Name: "in", Partitions: 4},
		{Name: "app-store-changelog", Partitions: 4, Configs: map[string]string{"cleanup.policy": "compact"}},
	}
	if err := adm.EnsureTopics(ctx, specs...); err != nil {
		t.Fatal(err)
	}
	// Idempotent.
	if err := adm.EnsureTopics(ctx, specs...); err != nil {
		t.Fatalf("second EnsureTopics: %v", err)
	}
	infos, err := adm.Describe(ctx, "in", "app-store-changelog")
	if err != nil {
		t.Fatal(err)
	}
	if infos[0].Partitions != 4 || infos[1].Configs["cleanup.policy"] != "compact" {
		t.Fatalf("describe: %+v", infos)
	}

	err = adm.EnsureTopics(ctx,
		broker.TopicSpec{Name: "in", Partitions: 6},
		broker.TopicSpec{Name: "in", Configs: map[string]string{"cleanup.policy": "compact"}},
	)
	var mm *broker.TopicMismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("got %v, want TopicMismatchError", err)
	}
	for _, want := range []string{`"in" has partitions=4 but needs partitions=6`, `cleanup.policy=delete but needs cleanup.policy=compact`} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	_, err = adm.PartitionCounts(ctx, "missing")
	if !errors.Is(err, broker.ErrTopicNotFound) || !contains(err.Error(), `"missing"`) {
		t.Fatalf("missing topic: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b, conn := start(t, embedded.DataDir(dir))
	if err := conn.Admin().Create(ctx, broker.TopicSpec{Name: "t", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Client().ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	b.Close()

	b2, err := embedded.New(embedded.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b2.Addrs()...), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fs := cl.PollFetches(pctx)
	if errs := fs.Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	recs := fs.Records()
	if len(recs) != 1 || string(recs[0].Value) != "kept" {
		t.Fatalf("after restart got %d records", len(recs))
	}
}

func TestConnectErrors(t *testing.T) {
	if _, err := broker.Connect(context.Background(), nil); !errors.Is(err, broker.ErrNoSeeds) {
		t.Fatalf("no seeds: %v", err)
	}
	if _, err := embedded.New(embedded.Listen("nonsense")); err == nil {
		t.Fatal("bad listen address accepted")
	}
	if _, err := broker.SASL("GSSAPI", "u", "p"); err == nil {
		t.Fatal("unsupported SASL mechanism accepted")
	}
}
