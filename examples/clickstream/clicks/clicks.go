// Package clicks is the topology of the clickstream example: it routes raw
// article clicks, dropping bots and re-keying human clicks by article, with
// a side branch per section. It lives in its own package so tests and
// `kappa describe clickstream` can build it too.
package clicks

import (
	"strings"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
)

// Click is one click on an article, as the web tier logs it.
type Click struct {
	User    string `json:"user"`
	Article string `json:"article"`
	Section string `json:"section"`
	Bot     bool   `json:"bot"`
}

// Topics of the example.
const (
	Input     = "clicks"            // keyed by user
	ByArticle = "clicks-by-article" // human clicks keyed by article
	Sports    = "clicks-sports"     // human clicks on sports articles, keyed by user
)

// Topology builds the example:
//
//	clicks ─► drop bots ─► split by section ─► sports ─────────────► clicks-sports
//	                              └──────────► default ─┐
//	                     sports and default ─► key by article ─► clicks-by-article
func Topology() (*processor.Topology, error) {
	b := stream.NewBuilder()
	clicks := stream.From(b, Input, codec.String(), codec.JSON[Click](), stream.Named("clicks"))
	human := clicks.FilterNot(func(_ string, c Click) bool { return c.Bot }, stream.Named("drop-bots"))
	sections := human.Split(stream.Named("section"))
	sports := sections.Branch("sports", func(_ string, c Click) bool { return strings.EqualFold(c.Section, "sports") })
	rest := sections.Default()
	sports.To(Sports, stream.Named("to-sports"))
	all := sports.Merge(rest)
	byArticle := stream.SelectKey(all, func(_ string, c Click) string { return c.Article }, stream.Named("by-article"))
	byArticle.To(ByArticle, stream.Named("to-by-article"))
	return b.Build()
}
