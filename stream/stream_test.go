package stream_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/streamtest"
)

type Click struct {
	User    string `json:"user"`
	Article string `json:"article"`
	Bot     bool   `json:"bot"`
}

func equal[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// run builds the topology made by build, pipes the key/value pairs into
// "in" (string keys and values), and returns "out" as key=value strings.
func run(t *testing.T, build func(in stream.Stream[string, string]), pairs ...string) []string {
	t.Helper()
	b := stream.NewBuilder()
	build(stream.From(b, "in", codec.String(), codec.String()))
	topo := must[*processor.Topology](t)(b.Build())
	d := must[*streamtest.Driver](t)(streamtest.New(topo))
	in := streamtest.NewInput(d, "in", codec.String(), codec.String())
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := in.Pipe(pairs[i], pairs[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	return streamtest.NewOutput(d, "out", codec.String(), codec.String()).ReadKeyValues()
}

func TestStatelessOperators(t *testing.T) {
	input := []string{"a", "1", "b", "22", "c", "333"}
	tests := []struct {
		name  string
		build func(s stream.Stream[string, string])
		want  []string
	}{
		{"Filter", func(s stream.Stream[string, string]) {
			s.Filter(func(_, v string) bool { return len(v) > 1 }).To("out")
		}, []string{"b=22", "c=333"}},
		{"FilterNot", func(s stream.Stream[string, string]) {
			s.FilterNot(func(_, v string) bool { return len(v) > 1 }).To("out")
		}, []string{"a=1"}},
		{"MapValues", func(s stream.Stream[string, string]) {
			stream.MapValues(s, func(k, v string) string { return k + v }).To("out")
		}, []string{"a=a1", "b=b22", "c=c333"}},
		{"Map", func(s stream.Stream[string, string]) {
			stream.Map(s, func(k, v string) (string, string) { return v, k }).To("out")
		}, []string{"1=a", "22=b", "333=c"}},
		{"SelectKey", func(s stream.Stream[string, string]) {
			stream.SelectKey(s, func(k, v string) string { return strings.ToUpper(k) }).To("out")
		}, []string{"A=1", "B=22", "C=333"}},
		{"FlatMap", func(s stream.Stream[string, string]) {
			stream.FlatMap(s, func(k, v string) []stream.KeyValue[string, string] {
				var out []stream.KeyValue[string, string]
				for i := range len(v) {
					out = append(out, stream.KV(fmt.Sprint(k, i), v[i:i+1]))
				}
				return out
			}).To("out")
		}, []string{"a0=1", "b0=2", "b1=2", "c0=3", "c1=3", "c2=3"}},
		{"FlatMapValues", func(s stream.Stream[string, string]) {
			stream.FlatMapValues(s, func(_, v string) []string { return strings.Split(v, "")[:min(2, len(v))] }).To("out")
		}, []string{"a=1", "b=2", "b=2", "c=3", "c=3"}},
		{"Peek", func(s stream.Stream[string, string]) {
			n := 0
			s.Peek(func(string, string) { n++ }).
				Filter(func(string, string) bool { return n == 2 }).To("out")
		}, []string{"b=22"}},
		{"Merge", func(s stream.Stream[string, string]) {
			short := s.Filter(func(_, v string) bool { return len(v) == 1 })
			long := stream.MapValues(s.Filter(func(_, v string) bool { return len(v) == 3 }), func(_, v string) string { return "L" + v })
			short.Merge(long).To("out")
		}, []string{"a=1", "c=L333"}},
		{"Split", func(s stream.Stream[string, string]) {
			sp := s.Split(stream.Named("route"))
			one := sp.Branch("one", func(_, v string) bool { return len(v) == 1 })
			two := sp.Branch("two", func(_, v string) bool { return len(v) <= 2 }) // "1" matched already
			rest := sp.Default()
			stream.MapValues(one, func(_, v string) string { return "one:" + v }).To("out")
			stream.MapValues(two, func(_, v string) string { return "two:" + v }).To("out")
			stream.MapValues(rest, func(_, v string) string { return "rest:" + v }).To("out")
		}, []string{"a=one:1", "b=two:22", "c=rest:333"}},
		{"SplitNoDefault", func(s stream.Stream[string, string]) {
			sp := s.Split()
			sp.Branch("short", func(_, v string) bool { return len(v) < 3 }).To("out")
		}, []string{"a=1", "b=22"}},
		{"Repartition", func(s stream.Stream[string, string]) {
			stream.SelectKey(s, func(_, v string) string { return v }).Repartition(stream.Named("byval")).To("out")
		}, []string{"1=1", "22=22", "333=333"}},
		{"ProcessForwardsMany", func(s stream.Stream[string, string]) {
			lens := stream.Process(s, processor.Func[string, string, string, int64](
				func(ctx processor.Context[string, int64], rec processor.Record[string, string]) error {
					for range len(rec.Value) {
						ctx.Forward(processor.Record[string, int64]{Key: rec.Key, Value: int64(len(rec.Value)), Timestamp: rec.Timestamp})
					}
					return nil
				}).Supply(), stream.WithValue(codec.Int64()))
			stream.MapValues(lens, func(_ string, n int64) string { return fmt.Sprint(n) }).To("out")
		}, []string{"a=1", "b=2", "b=2", "c=3", "c=3", "c=3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			equal(t, "output", run(t, tt.build, input...), tt.want)
		})
	}
}

func TestForeach(t *testing.T) {
	var seen []string
	b := stream.NewBuilder()
	stream.From(b, "in", codec.String(), codec.Int64()).Foreach(func(k string, v int64) { seen = append(seen, fmt.Sprint(k, v)) })
	d := must[*streamtest.Driver](t)(streamtest.New(must[*processor.Topology](t)(b.Build())))
	in := streamtest.NewInput(d, "in", codec.String(), codec.Int64())
	in.Pipe("x", 1)
	in.Pipe("y", 2)
	equal(t, "foreach", seen, []string{"x1", "y2"})
}

func TestTimestampsAndHeadersPassThrough(t *testing.T) {
	b := stream.NewBuilder()
	s := stream.From(b, "in", codec.String(), codec.String())
	s = stream.MapValues(s, func(_, v string) string { return v + "!" })
	s = stream.SelectKey(s, func(_, v string) string { return v })
	s.Filter(func(string, string) bool { return true }).Repartition().To("out")
	d := must[*streamtest.Driver](t)(streamtest.New(must[*processor.Topology](t)(b.Build())))
	ts := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	hdr := processor.Header{Key: "trace", Value: []byte("abc")}
	in := streamtest.NewInput(d, "in", codec.String(), codec.String())
	if err := in.PipeRecord(processor.Record[string, string]{Key: "k", Value: "v", Timestamp: ts, Headers: []processor.Header{hdr}}); err != nil {
		t.Fatal(err)
	}
	out := streamtest.NewOutput(d, "out", codec.String(), codec.String()).ReadAll()
	if len(out) != 1 {
		t.Fatalf("got %d records", len(out))
	}
	if !out[0].Timestamp.Equal(ts) || len(out[0].Headers) != 1 || out[0].Headers[0].Key != "trace" || string(out[0].Headers[0].Value) != "abc" {
		t.Fatalf("timestamp/headers lost: %+v", out[0])
	}
}

func TestProcessorAPI(t *testing.T) {
	b := stream.NewBuilder()
	s := stream.From(b, "in", codec.String(), codec.String())
	meta := stream.Process(s, processor.Func[string, string, string, string](
		func(ctx processor.Context[string, string], rec processor.Record[string, string]) error {
			m := ctx.RecordMetadata()
			rec.Value = fmt.Sprintf("%s@%s/%d/%d task=%s", rec.Value, m.Topic, m.Partition, m.Offset, ctx.TaskID())
			rec.Headers = append(rec.Headers, processor.Header{Key: "seen", Value: []byte("1")})
			ctx.Forward(rec)
			ctx.Forward(rec)
			return nil
		}).Supply(), stream.Named("stamp"))
	meta.To("out")
	d := must[*streamtest.Driver](t)(streamtest.New(must[*processor.Topology](t)(b.Build())))
	in := streamtest.NewInput(d, "in", codec.String(), codec.String())
	in.Pipe("a", "x")
	in.Pipe("a", "y")
	out := streamtest.NewOutput(d, "out", codec.String(), codec.String()).ReadAll()
	var got []string
	for _, r := range out {
		got = append(got, r.Value+" h="+string(r.Headers[0].Value))
	}
	equal(t, "process", got, []string{
		"x@in/0/0 task=0_0 h=1", "x@in/0/0 task=0_0 h=1",
		"y@in/0/1 task=0_0 h=1", "y@in/0/1 task=0_0 h=1",
	})
}

type lifecycle struct {
	ctx    processor.Context[string, string]
	inits  *int
	closes *int
}

func (p *lifecycle) Init(ctx processor.Context[string, string]) error {
	p.ctx = ctx
	*p.inits++
	return nil
}

func (p *lifecycle) Process(rec processor.Record[string, string]) error {
	if rec.Value == "bad" {
		return errors.New("refused")
	}
	p.ctx.ForwardTo("only", rec)
	return nil
}

func (p *lifecycle) Close() error { *p.closes++; return nil }

func TestProcessorLifecycleAndForwardTo(t *testing.T) {
	inits, closes := 0, 0
	b := stream.NewBuilder()
	s := stream.From(b, "in", codec.String(), codec.String())
	p := stream.Process(s, func() processor.Processor[string, string, string, string] {
		return &lifecycle{inits: &inits, closes: &closes}
	}, stream.Named("life"))
	p.Filter(func(string, string) bool { return true }, stream.Named("only")).To("out")
	p.Filter(func(string, string) bool { return true }, stream.Named("other")).To("other")
	d := must[*streamtest.Driver](t)(streamtest.New(must[*processor.Topology](t)(b.Build()), streamtest.Partitions("in", 2)))
	in := streamtest.NewInput(d, "in", codec.String(), codec.String())
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		in.Pipe(k, "v")
	}
	in.Pipe("a", "bad")
	if got := streamtest.NewOutput(d, "out", codec.String(), codec.String()).Len(); got != 5 {
		t.Fatalf("ForwardTo(only): %d records, want 5", got)
	}
	if got := streamtest.NewOutput(d, "other", codec.String(), codec.String()).Len(); got != 0 {
		t.Fatalf("ForwardTo sent %d records to another child", got)
	}
	dl := d.DeadLetters()
	if len(dl) != 1 || dl[0].Node != "life" || !strings.Contains(dl[0].Error, "refused") || dl[0].Kind != "process" {
		t.Fatalf("dead letters: %+v", dl)
	}
	d.Close()
	if inits != 2 || closes != 2 {
		t.Fatalf("inits=%d closes=%d, want one per task (2)", inits, closes)
	}
}

func TestDeadLetters(t *testing.T) {
	b := stream.NewBuilder()
	clicks := stream.From(b, "clicks", codec.String(), codec.JSON[Click]())
	clicks = clicks.Filter(func(_ string, c Click) bool {
		if c.User == "panic" {
			panic("user function blew up")
		}
		return true
	}, stream.Named("check"))
	out := stream.MapValuesErr(clicks, func(_ string, c Click) (string, error) {
		if c.Article == "" {
			return "", errors.New("no article")
		}
		return c.Article, nil
	}, stream.Named("article"))
	out.To("out", stream.WithValue(codec.String()))
	d := must[*streamtest.Driver](t)(streamtest.New(must[*processor.Topology](t)(b.Build())))
	in := streamtest.NewInput(d, "clicks", codec.String(), codec.JSON[Click]())
	in.Pipe("u1", Click{User: "u1", Article: "a1"})
	in.PipeRaw([]byte("u2"), []byte("{not json"), time.Time{})
	in.Pipe("u3", Click{User: "panic", Article: "a3"})
	in.Pipe("u4", Click{User: "u4"})
	in.Pipe("u5", Click{User: "u5", Article: "a5"})
	equal(t, "valid output", streamtest.NewOutput(d, "out", codec.String(), codec.String()).ReadKeyValues(), []string{"u1=a1", "u5=a5"})
	dl := d.DeadLetters()
	if len(dl) != 3 {
		t.Fatalf("got %d dead letters, want 3: %+v", len(dl), dl)
	}
	wants := []struct {
		kind, node, err string
		offset          int64
	}{
		{"decode", "KSTREAM-SOURCE-0000000000", "json[stream_test.Click] decode", 1},
		{"panic", "check", "user function blew up", 2},
		{"process", "article", "no article", 3},
	}
	for i, w := range wants {
		if dl[i].Kind != w.kind || dl[i].Node != w.node || !strings.Contains(dl[i].Error, w.err) ||
			dl[i].Topic != "clicks" || dl[i].Offset != w.offset {
			t.Errorf("dead letter %d: %+v, want kind=%s node=%s error~%q offset=%d", i, dl[i], w.kind, w.node, w.err, w.offset)
		}
	}
	if string(dl[0].Value) != "{not json" {
		t.Errorf("dead letter lost the original bytes: %q", dl[0].Value)
	}
}

func TestFailFast(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", codec.String(), codec.Int64()).To("out")
	d := must[*streamtest.Driver](t)(streamtest.New(must[*processor.Topology](t)(b.Build()), streamtest.FailFast()))
	in := streamtest.NewInput(d, "in", codec.String(), codec.Int64())
	err := in.PipeRaw([]byte("k"), []byte("short"), time.Time{})
	var re *processor.RecordError
	if !errors.As(err, &re) || re.Topic != "in" || re.Offset != 0 {
		t.Fatalf("got %v, want a RecordError naming in@0", err)
	}
	if err := in.Pipe("k", 1); err == nil {
		t.Fatal("driver kept going after a fail-fast error")
	}
}

func TestBuildErrors(t *testing.T) {
	b := stream.NewBuilder()
	s := stream.From(b, "in", codec.String(), codec.String())
	n := stream.MapValues(s, func(_, v string) int { return len(v) }, stream.Named("len"))
	n.To("out")                                                              // no codec for int
	s.Filter(func(string, string) bool { return true }, stream.Named("len")) // duplicate name
	s.To("x", stream.With(codec.Int64(), codec.String()))                    // wrong codec types
	stream.From(b, "in", codec.String(), codec.String())                     // topic read twice
	_, err := b.Build()
	if err == nil {
		t.Fatal("Build accepted a broken topology")
	}
	for _, want := range []string{
		`no value codec for int`,
		`node "len": name used twice`,
		`To("x"): option stream.withCodecs[int64,string] does not fit`,
		`topic "in" is already read by another source`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Build error does not say %q:\n%v", want, err)
		}
	}
}

func TestCodecsFollowTypes(t *testing.T) {
	b := stream.NewBuilder()
	s := stream.From(b, "in", codec.String(), codec.String())
	// Same types: codecs carry over, no With needed.
	stream.SelectKey(stream.MapValues(s, func(_, v string) string { return v }), func(_, v string) string { return v }).To("out")
	if _, err := b.Build(); err != nil {
		t.Fatal(err)
	}
}

func TestPartitionerAndToFunc(t *testing.T) {
	b := stream.NewBuilder()
	s := stream.From(b, "in", codec.String(), codec.String())
	s.To("out", stream.Partitioner(func(k, _ string, n int) int { return len(k) % n }))
	s.ToFunc(func(k, _ string, _ processor.RecordMetadata) string { return "out" }, stream.Named("again"))
	d := must[*streamtest.Driver](t)(streamtest.New(must[*processor.Topology](t)(b.Build()), streamtest.Partitions("in", 3)))
	if d.Partitions("out") != 3 {
		t.Fatalf("out has %d partitions, want the writer's 3", d.Partitions("out"))
	}
	in := streamtest.NewInput(d, "in", codec.String(), codec.String())
	in.Pipe("ab", "x")
	recs := streamtest.NewOutput(d, "out", codec.String(), codec.String()).ReadAll()
	if len(recs) != 2 || recs[0].Partition != 2 || recs[1].Partition != processor.KeyPartition([]byte("ab"), 3) {
		t.Fatalf("partitions: %+v", recs)
	}
}

func TestDescribe(t *testing.T) {
	b := stream.NewBuilder()
	s := stream.From(b, "clicks", codec.String(), codec.JSON[Click](), stream.Named("clicks-source"))
	human := s.Filter(func(_ string, c Click) bool { return !c.Bot }, stream.Named("humans"))
	byArticle := stream.SelectKey(human, func(_ string, c Click) string { return c.Article }, stream.Named("by-article"))
	byArticle.Repartition(stream.Named("articles")).To("clicks-by-article", stream.Named("out"))
	topo := must[*processor.Topology](t)(b.Build())
	want := `Topologies:
   Sub-topology: 0
    Source: clicks-source (topics: [clicks]) (codecs: string / json[stream_test.Click])
      --> humans
    Processor: humans
      --> by-article
      <-- clicks-source
    Processor: by-article
      --> articles-repartition-sink
      <-- humans
    Sink: articles-repartition-sink (topic: <app>-articles-repartition) (codecs: string / json[stream_test.Click])
      <-- by-article
   Sub-topology: 1
    Source: articles-repartition-source (topics: [<app>-articles-repartition]) (codecs: string / json[stream_test.Click])
      --> out
    Sink: out (topic: clicks-by-article) (codecs: string / json[stream_test.Click])
      <-- articles-repartition-source
`
	if got := topo.Describe(); got != want {
		t.Fatalf("Describe:\n%s\nwant:\n%s", got, want)
	}
}

// TestToTableAfterRekeyRepartitions checks that ToTable of a re-keyed
// stream repartitions it, as Kafka Streams does: each key of the table
// lives in the task of its own partition, where queries and joins look.
func TestToTableAfterRekeyRepartitions(t *testing.T) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.String())
	stream.SelectKey(in, func(_ string, v string) string { return v }).ToTable(stream.Materialized("by-value"))
	topo := must[*processor.Topology](t)(b.Build())
	if !strings.Contains(topo.Describe(), "-repartition") {
		t.Fatalf("no repartition before the table of a re-keyed stream:\n%s", topo.Describe())
	}
	d := must[*streamtest.Driver](t)(streamtest.New(topo, streamtest.Partitions("in", 4)))
	defer d.Close()
	input := streamtest.NewInput(d, "in", codec.String(), codec.String())
	for i := range 40 {
		input.Pipe(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
	}
	for i := range 40 {
		v := fmt.Sprintf("v%d", i)
		p := int(processor.KeyPartition([]byte(v), 4))
		kv, err := streamtest.KeyValueStore[string, string](d, "by-value", p)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok, err := kv.Get(v); err != nil || !ok || got != v {
			t.Errorf("key %s not in the store of its partition %d: %q %t %v", v, p, got, ok, err)
		}
	}
}
