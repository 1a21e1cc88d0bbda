package stream_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/streamtest"
)

// Route clicks: drop bots, key by article.
func Example() {
	type Click struct {
		User    string
		Article string
		Bot     bool
	}
	b := stream.NewBuilder()
	clicks := stream.From(b, "clicks", codec.String(), codec.JSON[Click]())
	human := clicks.Filter(func(_ string, c Click) bool { return !c.Bot })
	byArticle := stream.SelectKey(human, func(_ string, c Click) string { return c.Article })
	stream.MapValues(byArticle, func(_ string, c Click) string { return c.User }).To("readers")
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	d, _ := streamtest.New(topo)
	in := streamtest.NewInput(d, "clicks", codec.String(), codec.JSON[Click]())
	in.Pipe("ann", Click{User: "ann", Article: "a1"})
	in.Pipe("bot", Click{User: "bot", Article: "a1", Bot: true})
	in.Pipe("bob", Click{User: "bob", Article: "a2"})
	out := streamtest.NewOutput(d, "readers", codec.String(), codec.String())
	fmt.Println(out.ReadKeyValues())
	// Output: [a1=ann a2=bob]
}

// Split a stream into named branches; the default takes the rest.
func ExampleStream_Split() {
	b := stream.NewBuilder()
	nums := stream.From(b, "nums", codec.String(), codec.Int64())
	sp := nums.Split(stream.Named("sign"))
	sp.Branch("negative", func(_ string, v int64) bool { return v < 0 }).To("negative")
	sp.Default().To("other")
	topo, _ := b.Build()

	d, _ := streamtest.New(topo)
	in := streamtest.NewInput(d, "nums", codec.String(), codec.Int64())
	for _, v := range []int64{3, -1, 0, -7} {
		in.Pipe("k", v)
	}
	fmt.Println(streamtest.NewOutput(d, "negative", codec.String(), codec.Int64()).ReadValues())
	fmt.Println(streamtest.NewOutput(d, "other", codec.String(), codec.Int64()).ReadValues())
	// Output:
	// [-1 -7]
	// [3 0]
}

// A Processor API node sees metadata and can forward many records.
func ExampleProcess() {
	b := stream.NewBuilder()
	lines := stream.From(b, "lines", codec.String(), codec.String())
	words := stream.Process(lines, processor.Func[string, string, string, int64](
		func(ctx processor.Context[string, int64], rec processor.Record[string, string]) error {
			m := ctx.RecordMetadata()
			ctx.Forward(processor.Record[string, int64]{Key: rec.Value, Value: m.Offset, Timestamp: rec.Timestamp})
			return nil
		}).Supply(), stream.Named("offsets"), stream.WithValue(codec.Int64()))
	words.To("offsets")
	topo, _ := b.Build()

	d, _ := streamtest.New(topo)
	in := streamtest.NewInput(d, "lines", codec.String(), codec.String())
	in.Pipe("", "first")
	in.Pipe("", "second")
	fmt.Println(streamtest.NewOutput(d, "offsets", codec.String(), codec.Int64()).ReadKeyValues())
	// Output: [first=0 second=1]
}

// Records that fail go to the dead-letter topic with their error.
func ExampleMapValuesErr() {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.String())
	stream.MapValuesErr(in, func(_ string, v string) (int64, error) {
		if v == "" {
			return 0, errors.New("empty value")
		}
		return int64(len(v)), nil
	}, stream.Named("length"), stream.WithValue(codec.Int64())).To("lengths")
	topo, _ := b.Build()

	d, _ := streamtest.New(topo)
	pipe := streamtest.NewInput(d, "in", codec.String(), codec.String())
	pipe.PipeAt("a", "hello", time.Unix(0, 0))
	pipe.PipeAt("b", "", time.Unix(0, 0))
	fmt.Println(streamtest.NewOutput(d, "lengths", codec.String(), codec.Int64()).ReadKeyValues())
	for _, dl := range d.DeadLetters() {
		fmt.Printf("%s@%d node=%s: %s\n", dl.Topic, dl.Offset, dl.Node, dl.Error)
	}
	// Output:
	// [a=5]
	// in@1 node=length: node "length": empty value
}
