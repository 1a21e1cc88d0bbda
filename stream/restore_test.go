package stream_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/internal/tasklife"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
	"github.com/kappa-streams/kappa/stream"
)

// changelog is a ChangelogReader over one in-memory partition.
type changelog []*processor.RawRecord

func (c changelog) EndOffset(context.Context, string, int32) (int64, error) {
	return int64(len(c)), nil
}

func (c changelog) ReadChangelog(_ context.Context, _ string, _ int32, from, _ int64, apply func([]*processor.RawRecord) error) (int64, error) {
	if from >= int64(len(c)) {
		return from, nil
	}
	return int64(len(c)), apply(c[from:])
}

func counts(n int) changelog {
	var c changelog
	for i := range n {
		c = append(c, &processor.RawRecord{Key: fmt.Appendf(nil, "k%d", i), Value: binary.BigEndian.AppendUint64(nil, uint64(i)), Offset: int64(i)})
	}
	return c
}

func openTable(t *testing.T, dir string, log changelog) (*processor.Task, state.KeyValue[string, int64]) {
	t.Helper()
	b := stream.NewBuilder()
	stream.TableFrom(b, "t", codec.String(), codec.Int64(), stream.Materialized("s"))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	task, err := processor.NewTask(tasklife.K, topo, 0, 0, &processor.TaskEnv{AppID: "app", StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { task.Lifecycle(tasklife.K).Close() })
	if err := task.Lifecycle(tasklife.K).Restore(context.Background(), log); err != nil {
		t.Fatal(err)
	}
	s, ok := task.Store("s")
	if !ok {
		t.Fatal("no store s")
	}
	return task, s.(state.KeyValue[string, int64])
}

func storeSize(t *testing.T, kv state.KeyValue[string, int64]) int {
	n := 0
	if err := kv.All(func(string, int64) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRestoreResumesAndWipes restores a LevelDB store, reopens it to
// restore only the tail, then finds its changelog recreated shorter (an
// app reset) and rebuilds the store from it instead of keeping stale keys.
func TestRestoreResumesAndWipes(t *testing.T) {
	dir := t.TempDir()
	task, kv := openTable(t, dir, counts(5))
	if n := storeSize(t, kv); n != 5 || task.Stats().Restored.Load() != 5 {
		t.Fatalf("first restore: %d keys, %d restored", n, task.Stats().Restored.Load())
	}
	task.Lifecycle(tasklife.K).Close()

	task, kv = openTable(t, dir, counts(8))
	if got := task.Stats().Restored.Load(); got != 3 {
		t.Fatalf("reopen restored %d records, want the 3 new ones", got)
	}
	if n := storeSize(t, kv); n != 8 {
		t.Fatalf("after the tail: %d keys, want 8", n)
	}
	task.Lifecycle(tasklife.K).Close()

	task, kv = openTable(t, dir, counts(2))
	if n := storeSize(t, kv); n != 2 || task.Stats().Restored.Load() != 2 {
		t.Fatalf("after the changelog was recreated: %d keys, %d restored; want 2 and 2", n, task.Stats().Restored.Load())
	}
}
