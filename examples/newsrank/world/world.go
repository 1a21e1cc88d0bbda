// Package world is the newsrank example's simulated news site: sections
// and their articles, each with a true click-through rate that fades with
// age; users, most of whom never click; and page views whose clicks fall
// off with the slot. It is seeded and runs in simulated time, so that the
// same seed and the same rankings give the same traffic.
package world

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/kappa-streams/kappa/examples/newsrank/rank"
)

// Config shapes the world. Zero fields take the defaults of Default.
type Config struct {
	Seed uint64
	// Start is the simulated time the world begins at.
	Start time.Time
	// Users is how many users there are; their activity is Zipf
	// distributed with exponent Zipf.
	Users int
	Zipf  float64
	// NeverClick is the share of users who never click.
	NeverClick float64
	// InitialArticles is how many articles each section has at Start,
	// published over the hours before; NewEvery is the mean time between
	// two new articles of a section.
	InitialArticles int
	NewEvery        time.Duration
	// HalfLife is how fast an article's true CTR fades with its age.
	HalfLife time.Duration
	// PriorA and PriorB are the Beta distribution of articles' true CTRs
	// when new: mean PriorA/(PriorA+PriorB).
	PriorA, PriorB float64
	// ExamDecay is the examination exponent: slot k is looked at with
	// probability 1/(1+k)^ExamDecay.
	ExamDecay float64
}

// Default is the example's world.
var Default = Config{
	Seed: 1, Start: time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC),
	Users: 100000, Zipf: 0.85, NeverClick: 0.6,
	InitialArticles: 24, NewEvery: 10 * time.Minute,
	HalfLife: 2 * time.Hour, PriorA: 2, PriorB: 48, ExamDecay: 0.8,
}

func (c Config) withDefaults() Config {
	d := Default
	if c.Seed != 0 {
		d.Seed = c.Seed
	}
	if !c.Start.IsZero() {
		d.Start = c.Start
	}
	if c.Users > 0 {
		d.Users = c.Users
	}
	if c.Zipf > 0 {
		d.Zipf = c.Zipf
	}
	if c.NeverClick > 0 {
		d.NeverClick = c.NeverClick
	}
	if c.InitialArticles > 0 {
		d.InitialArticles = c.InitialArticles
	}
	if c.NewEvery > 0 {
		d.NewEvery = c.NewEvery
	}
	if c.HalfLife > 0 {
		d.HalfLife = c.HalfLife
	}
	if c.PriorA > 0 {
		d.PriorA, d.PriorB = c.PriorA, c.PriorB
	}
	if c.ExamDecay > 0 {
		d.ExamDecay = c.ExamDecay
	}
	return d
}

// Article is an article with its hidden truth.
type Article struct {
	rank.Article
	// CTR0 is its true CTR at the top slot when published.
	CTR0 float64
}

// World is the simulated site. Its methods are not safe for concurrent
// use.
type World struct {
	cfg      Config
	rng      *rand.Rand
	articles map[string][]*Article // by section, in publishing order
	byID     map[string]*Article
	next     map[string]time.Time // next publication per section
	count    int
	cdf      []float64 // user activity, cumulative
	clicker  []bool
	reads    map[string]map[string]bool // user → articles read
	requests uint64
}

// New returns the world at cfg.Start, with the initial articles published.
func New(cfg Config) *World {
	cfg = cfg.withDefaults()
	w := &World{
		cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6e657773)),
		articles: map[string][]*Article{}, byID: map[string]*Article{}, next: map[string]time.Time{},
		reads: map[string]map[string]bool{},
	}
	// Zipf activity by inverse CDF: rand.Zipf needs an exponent above 1.
	w.cdf = make([]float64, cfg.Users)
	w.clicker = make([]bool, cfg.Users)
	var sum float64
	for i := range cfg.Users {
		sum += 1 / math.Pow(float64(i+1), cfg.Zipf)
		w.cdf[i] = sum
		w.clicker[i] = w.rng.Float64() >= cfg.NeverClick
	}
	for i := range w.cdf {
		w.cdf[i] /= sum
	}
	for _, s := range rank.Sections {
		for i := range cfg.InitialArticles {
			age := time.Duration(cfg.InitialArticles-i) * 6 * time.Hour / time.Duration(cfg.InitialArticles)
			w.publish(s, cfg.Start.Add(-age))
		}
		w.next[s] = cfg.Start.Add(w.gap())
	}
	return w
}

// gap draws the time to a section's next article.
func (w *World) gap() time.Duration {
	return time.Duration(w.rng.ExpFloat64() * float64(w.cfg.NewEvery))
}

func (w *World) publish(section string, at time.Time) *Article {
	w.count++
	a := &Article{
		Article: rank.Article{ID: rank.ArticleID(w.count), Section: section, Published: at.UnixMilli(),
			Title: fmt.Sprintf("%s story #%d", section, w.count)},
		CTR0: w.beta(w.cfg.PriorA, w.cfg.PriorB),
	}
	w.articles[section] = append(w.articles[section], a)
	w.byID[a.ID] = a
	return a
}

// beta draws from Beta(a, b).
func (w *World) beta(a, b float64) float64 {
	x, y := w.gamma(a), w.gamma(b)
	return x / (x + y)
}

func (w *World) gamma(shape float64) float64 {
	if shape < 1 {
		return w.gamma(shape+1) * math.Pow(w.rng.Float64(), 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := w.rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		if u := w.rng.Float64(); math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

// Advance publishes the articles due by now and returns them.
func (w *World) Advance(now time.Time) []*Article {
	var out []*Article
	for _, s := range rank.Sections {
		for !w.next[s].After(now) {
			out = append(out, w.publish(s, w.next[s]))
			w.next[s] = w.next[s].Add(w.gap())
		}
	}
	return out
}

// Articles returns every article published so far, by ID order.
func (w *World) Articles() []*Article {
	out := make([]*Article, 0, len(w.byID))
	for _, a := range w.byID {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *Article) int { return compareIDs(a.ID, b.ID) })
	return out
}

func compareIDs(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// CTR returns an article's true CTR at the top slot at now.
func (w *World) CTR(a *Article, now time.Time) float64 {
	age := now.Sub(time.UnixMilli(a.Published))
	if age < 0 {
		return 0
	}
	return a.CTR0 * math.Exp2(-float64(age)/float64(w.cfg.HalfLife))
}

// Examination is the probability that slot k is looked at.
func (w *World) Examination(k int) float64 { return 1 / math.Pow(float64(1+k), w.cfg.ExamDecay) }

// Request is one page view: who asked for which section.
type Request struct {
	ID      uint64
	User    string
	Section string
	// Clicker says whether the user ever clicks.
	Clicker bool
	user    int
}

// NextRequest draws a page view.
func (w *World) NextRequest() Request {
	w.requests++
	u := sort.SearchFloat64s(w.cdf, w.rng.Float64())
	u = min(u, len(w.cdf)-1)
	return Request{ID: w.requests, User: rank.UserID(u), Section: rank.Sections[w.rng.IntN(len(rank.Sections))],
		Clicker: w.clicker[u], user: u}
}

// Page fills the Slots slots of a request's section: the ranking first
// (what the app served, articles the user read and unknown IDs skipped),
// the last slot for the section's newest article not shown yet (an
// editor's "latest" box, which is how new articles get their first
// impressions), and the newest articles where the ranking runs short.
func (w *World) Page(r Request, ranking []string, now time.Time) []*Article {
	shown := map[string]bool{}
	var page []*Article
	for _, id := range ranking {
		a := w.byID[id]
		if a == nil || a.Section != r.Section || shown[id] || a.Published > now.UnixMilli() {
			continue
		}
		if len(page) == rank.Slots-1 {
			break
		}
		page = append(page, a)
		shown[id] = true
	}
	arts := w.articles[r.Section]
	for i := len(arts) - 1; i >= 0 && len(page) < rank.Slots; i-- {
		a := arts[i]
		if !shown[a.ID] && a.Published <= now.UnixMilli() {
			page = append(page, a)
			shown[a.ID] = true
		}
	}
	return page
}

// Clicks draws which slots of a page the user clicks: slot k with
// probability Examination(k) × the article's CTR now, for users who click,
// never twice the same article.
func (w *World) Clicks(r Request, page []*Article, now time.Time) []int {
	var out []int
	for k, a := range page {
		p := w.Examination(k) * w.CTR(a, now) / (1 - w.cfg.NeverClick)
		if !r.Clicker || w.reads[r.User][a.ID] {
			w.rng.Float64() // the same draws whatever the user, for stable runs
			continue
		}
		if w.rng.Float64() < p {
			if w.reads[r.User] == nil {
				w.reads[r.User] = map[string]bool{}
			}
			w.reads[r.User][a.ID] = true
			out = append(out, k)
		}
	}
	return out
}

// Expected returns the CTR per impression a page of section would have at
// now, in expectation over users, with the best ranking (the section's
// articles by true CTR) and with a random one.
func (w *World) Expected(section string, now time.Time) (best, random float64) {
	var ctrs []float64
	for _, a := range w.articles[section] {
		if a.Published <= now.UnixMilli() {
			ctrs = append(ctrs, w.CTR(a, now))
		}
	}
	if len(ctrs) == 0 {
		return 0, 0
	}
	slices.Sort(ctrs)
	slices.Reverse(ctrs)
	var mean, exam float64
	for _, c := range ctrs {
		mean += c
	}
	mean /= float64(len(ctrs))
	n := min(rank.Slots, len(ctrs))
	for k := range n {
		best += w.Examination(k) * ctrs[k]
		exam += w.Examination(k)
	}
	return best / float64(n), mean * exam / float64(n)
}
