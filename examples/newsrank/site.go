package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/kappa-streams/kappa/examples/newsrank/rank"
)

// site answers the example's own HTTP API and page, through the app's
// interactive queries: any instance answers, asking the instance that
// holds a key when it does not.
type site struct {
	app *kappa.App
	// sim and speed are the simulator's clock, when it runs in this
	// process, for the freshness of the rankings.
	sim   *simStats
	speed float64

	mu      sync.Mutex
	changed map[string]time.Time // ranking key → wall time its tick last changed
	ticks   map[string]int64
	// rate is the input records processed per second, measured between
	// two state requests at least a second apart.
	rate     float64
	rateAt   time.Time
	rateFrom int64
}

func newSite(app *kappa.App) *site {
	return &site{app: app, changed: map[string]time.Time{}, ticks: map[string]int64{}, rateAt: time.Now()}
}

// storeGet asks the app's query API for path (under /v1/stores) in
// process; the API forwards to the owner of the key when needed.
func (s *site) storeGet(r *http.Request, path string, v any) (int, error) {
	req := httptest.NewRequestWithContext(r.Context(), http.MethodGet, "/v1/stores/"+path, nil)
	rec := httptest.NewRecorder()
	s.app.Stores().Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return rec.Code, fmt.Errorf("%s: %d %s", path, rec.Code, rec.Body.String())
	}
	return rec.Code, json.Unmarshal(rec.Body.Bytes(), v)
}

// RankItem is one article of an answer.
type RankItem struct {
	Article string  `json:"article"`
	Title   string  `json:"title,omitempty"`
	Score   float64 `json:"score"`
}

// RankAnswer is the answer of GET /v1/rank.
type RankAnswer struct {
	Section string     `json:"section"`
	User    string     `json:"user,omitempty"`
	Arm     string     `json:"arm"`
	Tick    int64      `json:"tick"`
	Items   []RankItem `json:"items"`
}

// serveRank answers GET /v1/rank?section=&user=&k=: the top k of the
// section by the user's arm, without the articles the user read in the
// last hour.
func (s *site) serveRank(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	section, user := q.Get("section"), q.Get("user")
	if !slices.Contains(rank.Sections, section) {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("section %q: want one of %v", section, rank.Sections))
		return
	}
	k := rank.Slots
	if v := q.Get("k"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > rank.DefaultParams.Keep {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("k %q: want 1 to %d", v, rank.DefaultParams.Keep))
			return
		}
		k = n
	}
	arm := rank.ArmBayes
	if user != "" {
		arm = rank.ArmOf(user)
	}
	var got struct {
		Value rank.Ranking `json:"value"`
	}
	code, err := s.storeGet(r, "rankings/keys/"+url.PathEscape(rank.RankingKey(section, arm)), &got)
	if err != nil {
		if code == http.StatusNotFound {
			// No minute of this section scored yet.
			writeJSON(w, RankAnswer{Section: section, User: user, Arm: arm, Items: []RankItem{}})
			return
		}
		httpError(w, code, err.Error())
		return
	}
	read := map[string]bool{}
	if user != "" {
		var reads struct {
			Windows []struct {
				Value rank.Reads `json:"value"`
			} `json:"windows"`
		}
		from := got.Value.Tick - 2*time.Hour.Milliseconds()
		if _, err := s.storeGet(r, fmt.Sprintf("user-reads/keys/%s/windows?from=%d", url.PathEscape(user), from), &reads); err == nil {
			for _, win := range reads.Windows {
				for _, a := range win.Value.Articles {
					read[a] = true
				}
			}
		}
	}
	ans := RankAnswer{Section: section, User: user, Arm: arm, Tick: got.Value.Tick, Items: []RankItem{}}
	for _, it := range got.Value.Items {
		if len(ans.Items) == k {
			break
		}
		if !read[it.Article] {
			ans.Items = append(ans.Items, RankItem{Article: it.Article, Score: it.Score})
		}
	}
	writeJSON(w, ans)
}

// State is what the page shows, from GET /api/state.
type State struct {
	// Rankings holds, per section, the rankings of both arms.
	Rankings map[string]map[string]RankAnswer `json:"rankings"`
	// CTR holds per arm the observed CTR of each minute, and Truth the
	// simulator's best and random CTR of each minute.
	CTR   map[string][]Point `json:"ctr"`
	Truth []rank.Truth       `json:"truth"`
	// EventsPerSecond is the input this instance processes.
	EventsPerSecond float64 `json:"eventsPerSecond"`
	Processed       int64   `json:"processed"`
	// LatestTick is the newest ranking's tick (simulated Unix ms), and
	// SinceChange how long ago, in wall time, a ranking last changed.
	LatestTick  int64   `json:"latestTick"`
	SinceChange float64 `json:"sinceChange"`
	// Freshness is how far the newest ranking is behind the simulator's
	// clock, in simulated seconds, and FreshnessWall the same in wall
	// seconds: the most a click waits to count in a ranking. Zero when the
	// simulator runs in another process.
	Freshness     float64 `json:"freshness"`
	FreshnessWall float64 `json:"freshnessWall"`
	Instance      string  `json:"instance"`
}

// Point is one minute's CTR.
type Point struct {
	Minute      int64   `json:"minute"`
	CTR         float64 `json:"ctr"`
	Impressions int64   `json:"impressions"`
}

func (s *site) serveState(w http.ResponseWriter, r *http.Request) {
	st := State{Rankings: map[string]map[string]RankAnswer{}, CTR: map[string][]Point{}, Instance: s.app.HTTPAddr()}
	titles := map[string]string{}
	var arts struct {
		Entries []struct {
			Key   string       `json:"key"`
			Value rank.Article `json:"value"`
		} `json:"entries"`
	}
	if _, err := s.storeGet(r, "articles/keys?limit=10000", &arts); err == nil {
		for _, e := range arts.Entries {
			titles[e.Key] = e.Value.Title
		}
	}
	var rks struct {
		Entries []struct {
			Value rank.Ranking `json:"value"`
		} `json:"entries"`
	}
	if code, err := s.storeGet(r, "rankings/keys", &rks); err != nil {
		httpError(w, code, err.Error())
		return
	}
	now := time.Now()
	s.mu.Lock()
	for _, e := range rks.Entries {
		rk := e.Value
		if st.Rankings[rk.Section] == nil {
			st.Rankings[rk.Section] = map[string]RankAnswer{}
		}
		ans := RankAnswer{Section: rk.Section, Arm: rk.Arm, Tick: rk.Tick, Items: []RankItem{}}
		for _, it := range rk.Items[:min(len(rk.Items), rank.Slots)] {
			ans.Items = append(ans.Items, RankItem{Article: it.Article, Title: titles[it.Article], Score: it.Score})
		}
		st.Rankings[rk.Section][rk.Arm] = ans
		st.LatestTick = max(st.LatestTick, rk.Tick)
		if s.ticks[rk.Key()] != rk.Tick {
			s.ticks[rk.Key()] = rk.Tick
			s.changed[rk.Key()] = now
		}
	}
	var last time.Time
	for _, t := range s.changed {
		if t.After(last) {
			last = t
		}
	}
	s.mu.Unlock()
	if !last.IsZero() {
		st.SinceChange = now.Sub(last).Seconds()
	}
	if s.sim != nil && st.LatestTick > 0 {
		if now := s.sim.simNow.Load(); now > 0 {
			// The newest ranking covers events up to its tick.
			st.Freshness = max(0, float64(now-st.LatestTick)/1000)
			st.FreshnessWall = st.Freshness / s.speed
		}
	}
	from := st.LatestTick - time.Hour.Milliseconds()
	for _, arm := range rank.Arms {
		var ws struct {
			Windows []struct {
				Start int64       `json:"start"`
				Value rank.ArmCTR `json:"value"`
			} `json:"windows"`
		}
		st.CTR[arm] = []Point{}
		if _, err := s.storeGet(r, fmt.Sprintf("arm-ctr/keys/%s/windows?from=%d", arm, from), &ws); err == nil {
			for _, win := range ws.Windows {
				p := Point{Minute: win.Start, Impressions: win.Value.Impressions}
				if win.Value.Impressions > 0 {
					p.CTR = float64(win.Value.Clicks) / float64(win.Value.Impressions)
				}
				st.CTR[arm] = append(st.CTR[arm], p)
			}
		}
	}
	var tr struct {
		Entries []struct {
			Value rank.Truth `json:"value"`
		} `json:"entries"`
	}
	st.Truth = []rank.Truth{}
	if _, err := s.storeGet(r, "truth/keys?limit=10000", &tr); err == nil {
		for _, e := range tr.Entries {
			if e.Value.Minute >= from {
				st.Truth = append(st.Truth, e.Value)
			}
		}
		slices.SortFunc(st.Truth, func(a, b rank.Truth) int { return int(a.Minute - b.Minute) })
	}
	st.Processed = s.app.Processed()
	s.mu.Lock()
	if d := now.Sub(s.rateAt); d >= time.Second {
		s.rate = float64(st.Processed-s.rateFrom) / d.Seconds()
		s.rateAt, s.rateFrom = now, st.Processed
	}
	st.EventsPerSecond = s.rate
	s.mu.Unlock()
	writeJSON(w, st)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	if code == 0 {
		code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// captureWriter records a handler's answer, for the terminal table.
type captureWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header         { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) { return c.body.Write(b) }
func (c *captureWriter) WriteHeader(code int)        { c.code = code }

func decodeJSON(b []byte, v any) error { return json.Unmarshal(b, v) }
