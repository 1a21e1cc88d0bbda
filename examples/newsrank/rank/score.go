package rank

import (
	"cmp"
	"encoding/binary"
	"hash/fnv"
	"math"
	"slices"
	"time"
)

// Params are the scoring's constants. The zero value is not usable; take
// DefaultParams and change what you need.
type Params struct {
	// Alpha and Beta are the Beta prior of an article's CTR at the top
	// slot: its mean Alpha/(Alpha+Beta) is what an article with no
	// feedback is assumed to have.
	Alpha, Beta float64
	// HalfLife is how fast feedback fades: a click HalfLife old weighs
	// half as much as a new one.
	HalfLife time.Duration
	// Forget drops an article that had no impression for this long.
	Forget time.Duration
	// Keep is how many articles each ranking holds.
	Keep int
	// Seed seeds Thompson sampling's draws.
	Seed uint64
}

// DefaultParams are the example's constants.
var DefaultParams = Params{Alpha: 2, Beta: 48, HalfLife: time.Hour, Forget: 6 * time.Hour, Keep: 20, Seed: 1}

// Decayed is an article's feedback, exponentially decayed to the state's
// tick: impressions per slot and clicks.
type Decayed struct {
	Impressions [Slots]float64 `json:"i"`
	Clicks      float64        `json:"c"`
	// Last is the start of the last minute the article had impressions.
	Last int64 `json:"l"`
}

// State is one section's scoring state: the decayed feedback of its
// articles and slots, as of the start of the last minute scored, and the
// rankings that minute produced.
type State struct {
	// Start is the start of the last minute scored (Unix ms), 0 before
	// the first.
	Start      int64               `json:"start"`
	Articles   map[string]*Decayed `json:"articles"`
	SlotImps   [Slots]float64      `json:"slotImps"`
	SlotClicks [Slots]float64      `json:"slotClicks"`
	// Rankings are this minute's rankings, one per arm, in Arms order.
	Rankings []Ranking `json:"rankings"`
}

// Step scores one more minute of section: the minute starting at start,
// whose events bucket holds. Minutes must come in increasing order; a
// minute without events is simply absent. It returns the new state; the
// old one is not changed.
//
// Feedback decays by exp(-λΔt) per step, with λ = ln 2 / HalfLife, and the
// minute's counts are added (forward decay: a minute's events count as of
// its start). The examination of slot k is estimated from the section's
// own decayed slot CTRs, w_k = ctr_k/ctr_0, and an article's exposure is
// its impressions weighted by it: clicks over expected clicks, so that an
// article shown low is not penalized for the slot. The Bayes arm ranks by
// the posterior mean (C+α)/(E+α+β); the Thompson arm by a draw from
// Beta(C+α, E−C+β), deterministic in (seed, section, tick, article).
//
// A minute that does not start after the last one scored is a duplicate
// (a final window emitted again after a crash under at-least-once) and
// changes nothing: the fold is idempotent.
func Step(p Params, section string, old State, start int64, bucket Bucket) State {
	if old.Start != 0 && start <= old.Start {
		return old
	}
	s := State{Start: start, Articles: make(map[string]*Decayed, len(old.Articles)+len(bucket.Articles))}
	f := 1.0
	if old.Start != 0 {
		f = decay(p, start-old.Start)
	}
	for k := range Slots {
		s.SlotImps[k] = old.SlotImps[k] * f
		s.SlotClicks[k] = old.SlotClicks[k] * f
	}
	for id, d := range old.Articles {
		if start-d.Last > p.Forget.Milliseconds() {
			continue // forgotten: no impression for too long
		}
		n := &Decayed{Clicks: d.Clicks * f, Last: d.Last}
		for k := range Slots {
			n.Impressions[k] = d.Impressions[k] * f
		}
		s.Articles[id] = n
	}
	for _, id := range bucket.IDs() {
		c := bucket.Articles[id]
		d := s.Articles[id]
		if d == nil {
			d = &Decayed{}
			s.Articles[id] = d
		}
		var shown bool
		for k := range Slots {
			d.Impressions[k] += float64(c.Impressions[k])
			d.Clicks += float64(c.Clicks[k])
			s.SlotImps[k] += float64(c.Impressions[k])
			s.SlotClicks[k] += float64(c.Clicks[k])
			shown = shown || c.Impressions[k] > 0
		}
		if shown {
			d.Last = start
		}
	}
	tick := start + time.Minute.Milliseconds()
	w := Examination(p, s.SlotImps, s.SlotClicks)
	for _, arm := range Arms {
		s.Rankings = append(s.Rankings, Ranking{Section: section, Arm: arm, Tick: tick, Items: Rank(p, arm, section, tick, w, s.Articles)})
	}
	return s
}

// decay is the factor feedback fades by in ms milliseconds.
func decay(p Params, ms int64) float64 {
	return math.Exp(-math.Ln2 * float64(ms) / float64(p.HalfLife.Milliseconds()))
}

// Examination estimates the relative examination of each slot from
// decayed slot impressions and clicks: the smoothed CTR of the slot over
// that of the top slot.
func Examination(p Params, imps, clicks [Slots]float64) [Slots]float64 {
	var w [Slots]float64
	top := (clicks[0] + p.Alpha) / (imps[0] + p.Alpha + p.Beta)
	for k := range Slots {
		w[k] = (clicks[k] + p.Alpha) / (imps[k] + p.Alpha + p.Beta) / top
	}
	return w
}

// Exposure is an article's impressions weighted by the examination of
// their slots: its expected clicks over the top slot's CTR.
func Exposure(w [Slots]float64, d *Decayed) float64 {
	var e float64
	for k := range Slots {
		e += d.Impressions[k] * w[k]
	}
	return e
}

// Rank ranks the articles by arm at tick and keeps the best p.Keep, ties
// broken by article ID.
func Rank(p Params, arm, section string, tick int64, w [Slots]float64, articles map[string]*Decayed) []Item {
	items := make([]Item, 0, len(articles))
	for id, d := range articles {
		e := Exposure(w, d)
		it := Item{Article: id, Clicks: d.Clicks, Exposure: e}
		switch arm {
		case ArmBayes:
			it.Score = (d.Clicks + p.Alpha) / (e + p.Alpha + p.Beta)
		case ArmThompson:
			it.Score = SampleBeta(NewDraws(p.Seed, section, tick, id), d.Clicks+p.Alpha, max(e-d.Clicks, 0)+p.Beta)
		}
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b Item) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.Article, b.Article)
	})
	return items[:min(len(items), p.Keep)]
}

// Draws is a counter-based random generator: the n-th draw is a hash of
// its key and n, so the same key always gives the same draws, whatever
// was drawn before or elsewhere. A replay of the log draws exactly what
// the first run drew.
type Draws struct {
	key uint64
	n   uint64
}

// NewDraws returns the draws of one article at one tick.
func NewDraws(seed uint64, section string, tick int64, article string) *Draws {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	h.Write([]byte(section))
	h.Write([]byte{0})
	binary.LittleEndian.PutUint64(b[:], uint64(tick))
	h.Write(b[:])
	h.Write([]byte(article))
	return &Draws{key: h.Sum64()}
}

// Uint64 returns the next draw: SplitMix64 of key + n·γ.
func (d *Draws) Uint64() uint64 {
	d.n++
	z := d.key + d.n*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Float64 returns a draw uniform in (0, 1).
func (d *Draws) Float64() float64 { return (float64(d.Uint64()>>11) + 0.5) / (1 << 53) }

// Normal returns a standard normal draw (Box–Muller).
func (d *Draws) Normal() float64 {
	u1, u2 := d.Float64(), d.Float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// SampleGamma draws from Gamma(shape, 1), by Marsaglia and Tsang's method
// (shape < 1 through shape+1 and a power of a uniform).
func SampleGamma(d *Draws, shape float64) float64 {
	if shape < 1 {
		return SampleGamma(d, shape+1) * math.Pow(d.Float64(), 1/shape)
	}
	a := shape - 1.0/3
	c := 1 / math.Sqrt(9*a)
	for {
		x := d.Normal()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := d.Float64()
		if math.Log(u) < 0.5*x*x+a-a*v+a*math.Log(v) {
			return a * v
		}
	}
}

// SampleBeta draws from Beta(a, b) as X/(X+Y) of two Gamma draws.
func SampleBeta(d *Draws, a, b float64) float64 {
	x := SampleGamma(d, a)
	y := SampleGamma(d, b)
	return x / (x + y)
}
