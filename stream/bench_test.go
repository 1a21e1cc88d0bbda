package stream_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/codec"
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
			task, err := processor.NewTask(topo, 0, 0, env)
			if err != nil {
				b.Fatal(err)
			}
			rec := &processor.RawRecord{Topic: "in", Key: []byte("key-000000000001"), Value: bytes.Repeat([]byte("a"), 100), Timestamp: time.Now()}
			b.ReportAllocs()
			for b.Loop() {
				if err := task.Process(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
