package rank

import (
	"time"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/stream"
	"github.com/kappa-streams/kappa/window"
)

// Stores the pipeline materializes, for queries.
const (
	StoreRankings = "rankings"   // "section:arm" → Ranking
	StoreScores   = "scores"     // section → State
	StoreArmCTR   = "arm-ctr"    // arm, per minute → ArmCTR
	StoreReads    = "user-reads" // user, per hour → Reads
	StoreTruth    = "truth"      // minute (RFC 3339) → Truth
	StoreBuckets  = "minute-buckets"
	StoreArticles = "articles" // article ID → Article
)

// Grace is how late an event may arrive, in simulated time, and still
// count in its minute. A minute is scored once the section's stream time
// passes its end by Grace.
const Grace = 30 * time.Second

// Topology builds the pipeline:
//
//	impressions, clicks (keyed by section)
//	  → merged into events
//	  → per section, 1-minute tumbling buckets of integer counts per article
//	    and slot (final results only, when the minute closes)
//	  → per section, a fold of the buckets into decayed, position-corrected
//	    feedback, scoring both arms at each minute's end (the tick)
//	  → rankings: the rankings topic (compacted) and the rankings store
//
//	events → per arm, 1-minute CTR counts (arm-ctr)
//	clicks → per user, the articles read in the last hour (user-reads)
//	truth  → the simulator's best and random CTR per minute (truth)
//
// Everything that decides a ranking is keyed by section and reads only
// the section's own input partition, in order: a replay of the log
// computes the same rankings, bit for bit.
func Topology(p Params, t Topics) (*processor.Topology, error) {
	t = t.withDefaults()
	b := stream.NewBuilder()
	imps := stream.From(b, t.Impressions, codec.String(), codec.JSON[Impression]())
	clicks := stream.From(b, t.Clicks, codec.String(), codec.JSON[Click]())
	ev := codec.JSON[Event]()
	events := stream.MapValues(imps, FromImpression, stream.WithValue(ev), stream.Named("impression-events")).
		Merge(stream.MapValues(clicks, FromClick, stream.WithValue(ev), stream.Named("click-events")))

	minutes := stream.AggregateWindowed(
		stream.WindowedBy(events.GroupByKey(), window.Tumbling(time.Minute).Grace(Grace)),
		NewBucket, AddEvent,
		stream.WithValue(codec.JSON[Bucket]()), stream.EmitFinal(), stream.Materialized(StoreBuckets), stream.Named("minute-buckets"))
	// Each closed minute, with its start, to its section's fold.
	closed := stream.MapValues(minutes.ToStream(), func(k window.Windowed[string], bk Bucket) Minute {
		return Minute{Start: k.Window.Start, Bucket: bk}
	}, stream.WithValue(codec.JSON[Minute]()), stream.Named("closed-minutes"))
	bySection := stream.GroupBy(closed, func(k window.Windowed[string], _ Minute) string { return k.Key },
		stream.WithKey(codec.String()), stream.Named("by-section"))
	// No cache: every minute's state is forwarded, so that every tick
	// emits its rankings whatever the commit and eviction timing.
	scores := stream.Aggregate(bySection, func() State { return State{} },
		func(section string, m Minute, st State) State { return Step(p, section, st, m.Start, m.Bucket) },
		stream.WithValue(codec.JSON[State]()), stream.Materialized(StoreScores), stream.CacheSize(0), stream.Named("score"))
	rankings := stream.FlatMap(scores.ToStream(), func(_ string, st State) []stream.KeyValue[string, Ranking] {
		out := make([]stream.KeyValue[string, Ranking], 0, len(st.Rankings))
		for _, r := range st.Rankings {
			out = append(out, stream.KeyValue[string, Ranking]{Key: r.Key(), Value: r})
		}
		return out
	}, stream.With(codec.String(), codec.JSON[Ranking]()), stream.Named("rankings"))
	rankings.To(t.Rankings)
	rankings.ToTable(stream.Materialized(StoreRankings), stream.Named("rankings-table"))

	// What the page shows besides the rankings.
	byArm := stream.GroupBy(events, func(_ string, e Event) string { return e.Arm }, stream.Named("by-arm"))
	// The grace keeps an hour of minutes in the store, for the page's chart.
	stream.AggregateWindowed(stream.WindowedBy(byArm, window.Tumbling(time.Minute).Grace(time.Hour)),
		func() ArmCTR { return ArmCTR{} }, AddArm,
		stream.WithValue(codec.JSON[ArmCTR]()), stream.Materialized(StoreArmCTR), stream.Named("arm-ctr"))
	byUser := stream.GroupBy(clicks, func(_ string, c Click) string { return c.User }, stream.Named("by-user"))
	stream.AggregateWindowed(stream.WindowedBy(byUser, window.Tumbling(time.Hour).Grace(time.Minute)),
		func() Reads { return Reads{} }, AddRead,
		stream.WithValue(codec.JSON[Reads]()), stream.Materialized(StoreReads), stream.Named("user-reads"))
	stream.TableFrom(b, t.Truth, codec.String(), codec.JSON[Truth](), stream.Materialized(StoreTruth))
	stream.TableFrom(b, t.Articles, codec.String(), codec.JSON[Article](), stream.Materialized(StoreArticles))
	return b.Build()
}

// Topics names the pipeline's topics; empty fields take the Topic*
// constants. Tests run the same pipeline on copies of the input.
type Topics struct {
	Impressions, Clicks, Articles, Truth, Rankings string
}

func (t Topics) withDefaults() Topics {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&t.Impressions, TopicImpressions)
	def(&t.Clicks, TopicClicks)
	def(&t.Articles, TopicArticles)
	def(&t.Truth, TopicTruth)
	def(&t.Rankings, TopicRankings)
	return t
}

// Minute is a closed minute of one section.
type Minute struct {
	Start  int64  `json:"start"`
	Bucket Bucket `json:"bucket"`
}
