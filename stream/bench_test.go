package stream_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/internal/tasklife"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
)

type discard struct{ n int }

func (d *discard) Send(*processor.RawRecord) { d.n++ }

// BenchmarkTaskPath measures one record through decode → Filter →
// MapValues → encode → collector, the per-record cost Kappa adds to a
// consume/produce loop.
func BenchmarkTaskPath(b *testing.B) {
	for _, tc := range []struct {
		name string
		vc   codec.Codec[[]byte]
	}{{"bytes", codec.Bytes()}} {
		b.Run(tc.name, func(b *testing.B) {
			sb := stream.NewBuilder()
			in := stream.From(sb, "in", codec.String(), tc.vc)
			kept := in.Filter(func(_ string, v []byte) bool { return v[0]%10 != 0 })
			stream.MapValues(kept, func(_ string, v []byte) []byte { return bytes.ToUpper(v) }).To("out")
			topo, err := sb.Build()
			if err != nil {
				b.Fatal(err)
			}
			col := &discard{}
			env := &processor.TaskEnv{AppID: "bench", Collector: col, Partitions: func(string) (int32, error) { return 4, nil }}
			task, err := processor.NewTask(tasklife.K, topo, 0, 0, env)
			if err != nil {
				b.Fatal(err)
			}
			ops := task.Lifecycle(tasklife.K)
			rec := &processor.RawRecord{Topic: "in", Key: []byte("key-000000000001"), Value: bytes.Repeat([]byte("a"), 100), Timestamp: time.Now()}
			b.ReportAllocs()
			for b.Loop() {
				if err := ops.Process(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCountPath is W2's count through one task, without a broker:
// records of 10,000 keys into a cached in-memory store, flushed
// downstream and committed every 10,000 records, as an app's commit does.
func BenchmarkCountPath(b *testing.B) {
	sb := stream.NewBuilder()
	stream.From(sb, "in", codec.String(), codec.Bytes()).GroupByKey().Count().ToStream().To("out")
	topo, err := sb.Build()
	if err != nil {
		b.Fatal(err)
	}
	col := &discard{}
	env := &processor.TaskEnv{AppID: "bench", Collector: col, Partitions: func(string) (int32, error) { return 4, nil }}
	task, err := processor.NewTask(tasklife.K, topo, 0, 0, env)
	if err != nil {
		b.Fatal(err)
	}
	ops := task.Lifecycle(tasklife.K)
	defer ops.Close()
	recs := make([]*processor.RawRecord, 10_000)
	for i := range recs {
		recs[i] = &processor.RawRecord{Topic: "in", Key: fmt.Appendf(nil, "key-%012d", i), Value: bytes.Repeat([]byte("a"), 100), Timestamp: time.Now()}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := ops.Process(recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
		if i++; i%len(recs) == 0 {
			if err := ops.FlushStores(); err != nil {
				b.Fatal(err)
			}
			if err := ops.CommitStores(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
