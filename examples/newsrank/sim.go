package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa/examples/newsrank/rank"
	"github.com/kappa-streams/kappa/examples/newsrank/world"
	"github.com/twmb/franz-go/pkg/kgo"
)

// simConfig drives the simulator.
type simConfig struct {
	world world.Config
	// speed is simulated seconds per wall second, rate the page views per
	// wall second.
	speed float64
	rate  int
	// simTime, when positive, stops the simulator after this much
	// simulated time.
	simTime time.Duration
	// rankURL is the base URL of an app instance's HTTP listener, asked
	// for rankings: the loop is closed.
	rankURL string
}

// simStats are counted by the simulator.
type simStats struct {
	requests, impressions, clicks, articles, rankErrors atomic.Int64
	simNow                                              atomic.Int64 // Unix ms
}

// runSim publishes articles and page views into the topics until ctx is
// done or the simulated time is over. Each view asks the app for the
// ranking of its section and user, shows it, and draws the clicks.
func runSim(ctx context.Context, cfg simConfig, cl *kgo.Client, st *simStats) error {
	w := world.New(cfg.world)
	start := cfg.world.Start
	if start.IsZero() {
		start = world.Default.Start
	}
	// The initial articles, published before the start.
	for _, a := range w.Articles() {
		produceArticle(ctx, cl, a)
		st.articles.Add(1)
	}
	httpc := &http.Client{Timeout: 2 * time.Second}
	wallStart := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var sent int64
	lastMinute := start.Truncate(time.Minute)
	for {
		select {
		case <-ctx.Done():
			return cl.Flush(context.Background())
		case <-tick.C:
		}
		elapsed := time.Since(wallStart)
		now := start.Add(time.Duration(float64(elapsed) * cfg.speed))
		if cfg.simTime > 0 && now.Sub(start) >= cfg.simTime {
			return cl.Flush(context.Background())
		}
		st.simNow.Store(now.UnixMilli())
		for _, a := range w.Advance(now) {
			produceArticle(ctx, cl, a)
			st.articles.Add(1)
		}
		// The truth of each minute that ended.
		for m := now.Truncate(time.Minute); lastMinute.Before(m); lastMinute = lastMinute.Add(time.Minute) {
			produceTruth(ctx, cl, w, lastMinute)
		}
		due := int64(elapsed.Seconds() * float64(cfg.rate))
		for ; sent < due && ctx.Err() == nil; sent++ {
			req := w.NextRequest()
			arm, ranking, err := askRanking(ctx, httpc, cfg.rankURL, req)
			if err != nil {
				st.rankErrors.Add(1)
				arm = rank.ArmOf(req.User)
			}
			page := w.Page(req, ranking, now)
			clicked := w.Clicks(req, page, now)
			for k, a := range page {
				im := rank.Impression{Request: req.ID, User: req.User, Section: req.Section, Article: a.ID, Slot: k, Arm: arm}
				produce(ctx, cl, rank.TopicImpressions, req.Section, im, now)
			}
			for _, k := range clicked {
				c := rank.Click{Request: req.ID, User: req.User, Section: req.Section, Article: page[k].ID, Slot: k, Arm: arm}
				produce(ctx, cl, rank.TopicClicks, req.Section, c, now)
			}
			st.requests.Add(1)
			st.impressions.Add(int64(len(page)))
			st.clicks.Add(int64(len(clicked)))
		}
	}
}

// askRanking asks the app which articles to show req's user.
func askRanking(ctx context.Context, c *http.Client, base string, req world.Request) (string, []string, error) {
	if base == "" {
		return "", nil, fmt.Errorf("no app to ask")
	}
	u := base + "/v1/rank?section=" + url.QueryEscape(req.Section) + "&user=" + url.QueryEscape(req.User) +
		"&k=" + strconv.Itoa(rank.Slots-1)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := c.Do(hreq)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	var ans RankAnswer
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return "", nil, err
	}
	ids := make([]string, len(ans.Items))
	for i, it := range ans.Items {
		ids[i] = it.Article
	}
	return ans.Arm, ids, nil
}

func produce(ctx context.Context, cl *kgo.Client, topic, key string, v any, at time.Time) {
	b, _ := json.Marshal(v)
	cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: b, Timestamp: at}, nil)
}

func produceArticle(ctx context.Context, cl *kgo.Client, a *world.Article) {
	produce(ctx, cl, rank.TopicArticles, a.ID, a.Article, time.UnixMilli(a.Published))
}

// produceTruth writes the expected CTRs of minute, averaged over the
// sections.
func produceTruth(ctx context.Context, cl *kgo.Client, w *world.World, minute time.Time) {
	t := rank.Truth{Minute: minute.UnixMilli()}
	mid := minute.Add(30 * time.Second)
	for _, s := range rank.Sections {
		best, random := w.Expected(s, mid)
		t.Best += best / float64(len(rank.Sections))
		t.Random += random / float64(len(rank.Sections))
	}
	produce(ctx, cl, rank.TopicTruth, minute.UTC().Format(time.RFC3339), t, mid)
}
