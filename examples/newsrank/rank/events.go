// Package rank is the news-ranking pipeline of the newsrank example: the
// records it reads and writes, the Kappa topology that turns impressions
// and clicks into rankings, and the scoring both the topology and its
// tests' oracle use.
package rank

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
)

// Topics of the pipeline.
const (
	TopicArticles    = "articles"    // compacted: article ID → Article
	TopicImpressions = "impressions" // section → Impression, one per slot shown
	TopicClicks      = "clicks"      // section → Click
	TopicTruth       = "truth"       // compacted: minute → Truth, written by the simulator
	TopicRankings    = "rankings"    // compacted: "section:arm" → Ranking
)

// Sections of the front page.
var Sections = []string{"politics", "economy", "society", "world", "tech", "sports", "culture", "science"}

// The two arms of the experiment.
const (
	ArmBayes    = "bayes"    // decayed, position-corrected Bayesian CTR
	ArmThompson = "thompson" // Thompson sampling over Beta posteriors
)

// Arms lists the arms in a fixed order.
var Arms = []string{ArmBayes, ArmThompson}

// ArmOf assigns a user to an arm by a stable hash of the user ID: the
// same user always sees the same ranker.
func ArmOf(user string) string {
	h := fnv.New32a()
	h.Write([]byte(user))
	return Arms[h.Sum32()%uint32(len(Arms))]
}

// Slots is the number of slots a section shows.
const Slots = 10

// Article is a news article, as the simulator publishes it.
type Article struct {
	ID        string `json:"id"`
	Section   string `json:"section"`
	Title     string `json:"title"`
	Published int64  `json:"published"` // Unix ms of simulated time
}

// Impression is one slot of one page view: the article shown in it.
type Impression struct {
	Request uint64 `json:"req"`
	User    string `json:"user"`
	Section string `json:"section"`
	Article string `json:"article"`
	Slot    int    `json:"slot"`
	Arm     string `json:"arm"`
}

// Click is a click on the article of a slot.
type Click struct {
	Request uint64 `json:"req"`
	User    string `json:"user"`
	Section string `json:"section"`
	Article string `json:"article"`
	Slot    int    `json:"slot"`
	Arm     string `json:"arm"`
}

// Event is an impression or a click, as the pipeline merges them.
type Event struct {
	Click   bool   `json:"click,omitempty"`
	Article string `json:"article"`
	Slot    int    `json:"slot"`
	Arm     string `json:"arm"`
}

// FromImpression and FromClick turn the inputs into events.
func FromImpression(_ string, im Impression) Event {
	return Event{Article: im.Article, Slot: im.Slot, Arm: im.Arm}
}

// FromClick is FromImpression for clicks.
func FromClick(_ string, c Click) Event {
	return Event{Click: true, Article: c.Article, Slot: c.Slot, Arm: c.Arm}
}

// Counts are an article's impressions and clicks per slot.
type Counts struct {
	Impressions [Slots]int64 `json:"i"`
	Clicks      [Slots]int64 `json:"c"`
}

// Bucket is one section's events of one minute: integer counts per
// article and slot. Adding is commutative, so a bucket does not depend on
// the order its events were processed in.
type Bucket struct {
	Articles map[string]*Counts `json:"a"`
}

// NewBucket returns an empty bucket.
func NewBucket() Bucket { return Bucket{Articles: map[string]*Counts{}} }

// AddEvent counts e in agg. It does not change agg's map or counts in
// place: the store may still hold them as the value it forwarded last.
func AddEvent(_ string, e Event, agg Bucket) Bucket {
	if e.Slot < 0 || e.Slot >= Slots {
		return agg
	}
	out := Bucket{Articles: make(map[string]*Counts, len(agg.Articles)+1)}
	for id, c := range agg.Articles {
		out.Articles[id] = c
	}
	c := &Counts{}
	if old := agg.Articles[e.Article]; old != nil {
		*c = *old
	}
	if e.Click {
		c.Clicks[e.Slot]++
	} else {
		c.Impressions[e.Slot]++
	}
	out.Articles[e.Article] = c
	return out
}

// IDs returns the bucket's article IDs in order.
func (b Bucket) IDs() []string {
	ids := make([]string, 0, len(b.Articles))
	for id := range b.Articles {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Item is one ranked article.
type Item struct {
	Article string  `json:"article"`
	Score   float64 `json:"score"`
	// Clicks and Exposure are the decayed clicks and the decayed,
	// position-corrected impressions the score comes from.
	Clicks   float64 `json:"clicks"`
	Exposure float64 `json:"exposure"`
}

// Ranking is a section's ranking by one arm at one tick.
type Ranking struct {
	Section string `json:"section"`
	Arm     string `json:"arm"`
	Tick    int64  `json:"tick"` // Unix ms of simulated time: the end of the minute scored
	Items   []Item `json:"items"`
}

// Key is the ranking's key in the rankings topic and store.
func (r Ranking) Key() string { return RankingKey(r.Section, r.Arm) }

// RankingKey is the key of section's ranking by arm.
func RankingKey(section, arm string) string { return section + ":" + arm }

// ArmCTR counts one arm's impressions and clicks.
type ArmCTR struct {
	Impressions int64 `json:"impressions"`
	Clicks      int64 `json:"clicks"`
}

// AddArm counts e.
func AddArm(_ string, e Event, agg ArmCTR) ArmCTR {
	if e.Click {
		agg.Clicks++
	} else {
		agg.Impressions++
	}
	return agg
}

// Truth is what the simulator knows and the pipeline must learn: for one
// minute of simulated time, the click-through rate the page would have had
// with the best ranking (by the articles' true CTRs) and with a random
// one, per impression, as expected values.
type Truth struct {
	Minute int64   `json:"minute"` // Unix ms
	Best   float64 `json:"best"`
	Random float64 `json:"random"`
}

// Reads is the set of articles a user clicked in a window.
type Reads struct {
	Articles []string `json:"articles"`
}

// AddRead adds the clicked article.
func AddRead(_ string, c Click, agg Reads) Reads {
	if !slices.Contains(agg.Articles, c.Article) {
		agg.Articles = append(agg.Articles, c.Article)
		slices.Sort(agg.Articles)
	}
	return agg
}

// ArticleID formats the ID of the n-th article.
func ArticleID(n int) string { return "a" + fmt.Sprintf("%05d", n) }

// UserID formats the ID of user n.
func UserID(n int) string { return "u" + strconv.Itoa(n) }
