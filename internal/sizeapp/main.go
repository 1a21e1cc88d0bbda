// Command sizeapp is the smallest app that dials a cluster: its binary
// size shows what an app links (docs/benchmarks.md).
package main

import (
	"context"
	"log"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/stream"
)

func main() {
	b := stream.NewBuilder()
	stream.From(b, "in", codec.String(), codec.String()).To("out")
	topo, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}
	app, err := kappa.New(topo, kappa.AppID("size"), kappa.Brokers("127.0.0.1:9092"))
	if err != nil {
		log.Fatal(err)
	}
	if err := app.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}
