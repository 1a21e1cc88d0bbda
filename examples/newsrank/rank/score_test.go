package rank_test

import (
	"math"
	"testing"
	"time"

	"github.com/kappa-streams/kappa/examples/newsrank/rank"
)

// TestDrawsAreDeterministic checks that draws depend on their key alone.
func TestDrawsAreDeterministic(t *testing.T) {
	a := rank.NewDraws(1, "tech", 60000, "a00001")
	b := rank.NewDraws(1, "tech", 60000, "a00001")
	c := rank.NewDraws(1, "tech", 120000, "a00001")
	for range 100 {
		x, y, z := a.Uint64(), b.Uint64(), c.Uint64()
		if x != y {
			t.Fatal("the same key drew differently")
		}
		if x == z {
			t.Fatal("another tick drew the same")
		}
	}
}

// TestSampleBetaMoments checks Beta draws against the distribution's mean
// and variance.
func TestSampleBetaMoments(t *testing.T) {
	for _, ab := range [][2]float64{{2, 48}, {12, 300}, {0.5, 0.5}, {30, 5}} {
		a, b := ab[0], ab[1]
		const n = 40000
		var sum, sq float64
		for i := range n {
			x := rank.SampleBeta(rank.NewDraws(uint64(i), "s", 0, "a"), a, b)
			if x <= 0 || x >= 1 {
				t.Fatalf("Beta(%v,%v) drew %v", a, b, x)
			}
			sum += x
			sq += x * x
		}
		mean, variance := sum/n, sq/n-(sum/n)*(sum/n)
		wantMean := a / (a + b)
		wantVar := a * b / ((a + b) * (a + b) * (a + b + 1))
		if math.Abs(mean-wantMean) > 4*math.Sqrt(wantVar/n) {
			t.Errorf("Beta(%v,%v): mean %v, want %v", a, b, mean, wantMean)
		}
		if math.Abs(variance-wantVar)/wantVar > 0.05 {
			t.Errorf("Beta(%v,%v): variance %v, want %v", a, b, variance, wantVar)
		}
	}
}

func bucket(events ...rank.Event) rank.Bucket {
	b := rank.NewBucket()
	for _, e := range events {
		b = rank.AddEvent("s", e, b)
	}
	return b
}

// TestStep checks the fold: decay between minutes, a duplicate minute
// ignored, position correction, and forgetting.
func TestStep(t *testing.T) {
	p := rank.DefaultParams
	minute := time.Minute.Milliseconds()
	start := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC).UnixMilli()
	events := []rank.Event{
		{Article: "top", Slot: 0}, {Article: "top", Slot: 0, Click: true},
		{Article: "low", Slot: 9}, {Article: "low", Slot: 9, Click: true},
	}
	// Slot 9 is rarely clicked, slot 0 often.
	for range 200 {
		events = append(events, rank.Event{Article: "filler", Slot: 9})
	}
	for range 20 {
		events = append(events, rank.Event{Article: "other", Slot: 0}, rank.Event{Article: "other", Slot: 0, Click: true})
	}
	s1 := rank.Step(p, "s", rank.State{}, start, bucket(events...))
	if len(s1.Rankings) != 2 || s1.Rankings[0].Tick != start+minute {
		t.Fatalf("rankings %+v", s1.Rankings)
	}
	// The same clicks and impressions, but "low" was shown at a slot that
	// gets fewer clicks: its exposure is smaller, its score higher.
	score := map[string]rank.Item{}
	for _, it := range s1.Rankings[0].Items {
		score[it.Article] = it
	}
	if low, top := score["low"], score["top"]; low.Exposure >= top.Exposure || low.Score <= top.Score {
		t.Errorf("position correction: low %+v, top %+v", low, top)
	}
	// An hour later (the half-life), with nothing new: counts halve.
	s2 := rank.Step(p, "s", s1, start+60*minute, rank.NewBucket())
	if got := s2.Articles["top"].Clicks; math.Abs(got-0.5) > 1e-12 {
		t.Errorf("clicks an hour later %v, want 0.5", got)
	}
	// A minute already scored changes nothing.
	if again := rank.Step(p, "s", s2, start+60*minute, bucket(rank.Event{Article: "x", Slot: 1})); again.Articles["x"] != nil {
		t.Errorf("a duplicate minute was folded in")
	}
	// Seven hours without impressions: forgotten.
	s3 := rank.Step(p, "s", s2, start+7*60*minute, bucket(rank.Event{Article: "new", Slot: 0}))
	if s3.Articles["top"] != nil || s3.Articles["new"] == nil {
		t.Errorf("after 7 hours: %v", s3.Articles)
	}
}
