package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
)

// Limits of the HTTP API.
const (
	// DefaultLimit is the number of entries a range or a window fetch
	// returns when the request sets no limit.
	DefaultLimit = 1000
	// MaxLimit is the most entries one request returns.
	MaxLimit = 10000
	// maxForwardBytes bounds a forwarded answer.
	maxForwardBytes = 64 << 20
)

// forwardedHeader marks a request one instance sent another: the receiver
// answers from its own tasks and never forwards again.
const forwardedHeader = "X-Kappa-Forwarded"

// Handler returns the HTTP API, for the paths under /v1/stores:
//
//	GET /v1/stores                                 the queryable stores
//	GET /v1/stores/{store}/keys/{key}              a key's value
//	GET /v1/stores/{store}/keys?from=&to=&limit=   a range of keys, from all instances
//	GET /v1/stores/{store}/keys/{key}/windows?from=&to=&limit=
//	                                               a key's windows (or sessions)
//	GET /v1/stores/{store}/metadata/{key}          where a key lives
//
// Any instance answers: a key's query goes to the instance that runs its
// task (one hop: a forwarded request is never forwarded again), and a
// range gathers every instance's part. Keys are given in text (see
// state.ParseKey), times as Unix milliseconds or RFC 3339. Answers are
// JSON, values encoded by encoding/json. While a key's task is restoring
// or moving in a rebalance, the answer is 503 with Retry-After, never a
// wrong value.
func (s *Stores) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stores", s.serveList)
	mux.HandleFunc("GET /v1/stores/{store}/keys/{key}", s.serveGet)
	mux.HandleFunc("GET /v1/stores/{store}/keys", s.serveRange)
	mux.HandleFunc("GET /v1/stores/{store}/keys/{key}/windows", s.serveFetch)
	mux.HandleFunc("GET /v1/stores/{store}/metadata/{key}", s.serveMetadata)
	return mux
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
	// Owner is the endpoint of the instance holding the key, when known.
	Owner string `json:"owner,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

// fail answers err with its status.
func fail(w http.ResponseWriter, err error) {
	body := apiError{Error: err.Error()}
	code := http.StatusInternalServerError
	var na *NotAvailableError
	switch {
	case errors.As(err, &na):
		body.Owner = na.Owner
		code = http.StatusServiceUnavailable
		retry := max(na.RetryAfter, time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
	case errors.Is(err, ErrNotReady):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, ErrUnknownStore):
		code = http.StatusNotFound
	case errors.Is(err, ErrWrongType), errors.Is(err, errBadRequest):
		code = http.StatusBadRequest
	}
	writeJSON(w, code, body)
}

var errBadRequest = errors.New("query: bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

func (s *Stores) serveList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"stores": s.List()})
}

// keyOf parses the {key} of r for store.
func (s *Stores) keyOf(r *http.Request, store string) (any, error) {
	spec, err := s.spec(store)
	if err != nil {
		return nil, err
	}
	k, err := spec.Keys.Parse(r.PathValue("key"))
	if err != nil {
		return nil, badRequest("%v", err)
	}
	return k, nil
}

// route finds the partition of the request's key and answers here when
// the task is local; otherwise it forwards the request to the owner and
// returns ok false.
func (s *Stores) route(w http.ResponseWriter, r *http.Request) (b Backend, store string, key any, p int32, ok bool) {
	store = r.PathValue("store")
	b, err := s.live()
	if err == nil {
		key, err = s.keyOf(r, store)
	}
	if err == nil {
		p, err = s.partition(b, store, key)
	}
	if err != nil {
		fail(w, err)
		return nil, "", nil, 0, false
	}
	owner, local := b.Owner(store, p)
	if local || r.Header.Get(forwardedHeader) != "" || owner == "" || owner == b.Self() {
		// Answer here: the read reports a task that is not (or no
		// longer) local as unavailable, with the owner it knows.
		return b, store, key, p, true
	}
	s.forward(w, r, owner)
	return nil, "", nil, 0, false
}

// forward sends r to the instance at endpoint and copies its answer.
func (s *Stores) forward(w http.ResponseWriter, r *http.Request, endpoint string) {
	resp, err := s.get(r, endpoint, r.URL.EscapedPath(), r.URL.Query())
	if err != nil {
		fail(w, &NotAvailableError{Store: r.PathValue("store"), Owner: endpoint, Reason: ErrNotReady,
			RetryAfter: time.Second})
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Retry-After"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, maxForwardBytes))
}

// get sends a forwarded GET of path?q to endpoint; path is escaped.
func (s *Stores) get(r *http.Request, endpoint, path string, q url.Values) (*http.Response, error) {
	// path is the request's escaped path: a key may hold a '/' as %2F.
	u := "http://" + endpoint + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(forwardedHeader, "1")
	return s.client.Do(req)
}

type getAnswer struct {
	Store     string `json:"store"`
	Key       any    `json:"key"`
	Value     any    `json:"value"`
	Partition int32  `json:"partition"`
}

func (s *Stores) serveGet(w http.ResponseWriter, r *http.Request) {
	b, store, key, p, ok := s.route(w, r)
	if !ok {
		return
	}
	var v any
	var found bool
	err := b.Read(store, p, func(rd state.Reader) (err error) {
		v, found, err = rd.Get(key)
		return err
	})
	switch {
	case err != nil:
		fail(w, err)
	case !found:
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("store %q has no key %v", store, key)})
	default:
		writeJSON(w, http.StatusOK, getAnswer{Store: store, Key: key, Value: v, Partition: p})
	}
}

type window struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	Value any   `json:"value"`
}

type fetchAnswer struct {
	Store     string   `json:"store"`
	Key       any      `json:"key"`
	Partition int32    `json:"partition"`
	Windows   []window `json:"windows"`
	// Truncated is true when more windows matched than the limit.
	Truncated bool `json:"truncated,omitempty"`
}

func (s *Stores) serveFetch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, err1 := parseTime(q.Get("from"), minTime)
	to, err2 := parseTime(q.Get("to"), maxTime)
	limit, err3 := parseLimit(q.Get("limit"))
	if err := errors.Join(err1, err2, err3); err != nil {
		fail(w, err)
		return
	}
	b, store, key, p, ok := s.route(w, r)
	if !ok {
		return
	}
	ans := fetchAnswer{Store: store, Key: key, Partition: p, Windows: []window{}}
	err := b.Read(store, p, func(rd state.Reader) error {
		return rd.Fetch(key, from, to, func(start, end int64, v any) bool {
			if len(ans.Windows) == limit {
				ans.Truncated = true
				return false
			}
			ans.Windows = append(ans.Windows, window{start, end, v})
			return true
		})
	})
	if err != nil {
		if !errors.Is(err, ErrNotReady) && !errors.As(err, new(*NotAvailableError)) {
			err = badRequest("%v", err) // a key-value store's Fetch
		}
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

const (
	minTime = -1 << 62
	maxTime = 1<<62 - 1
)

// parseTime reads Unix milliseconds or RFC 3339; "" is def.
func parseTime(s string, def int64) (int64, error) {
	if s == "" {
		return def, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, badRequest("time %q: give Unix milliseconds or RFC 3339", s)
	}
	return t.UnixMilli(), nil
}

func parseLimit(s string) (int, error) {
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > MaxLimit {
		return 0, badRequest("limit %q: give a number from 1 to %d", s, MaxLimit)
	}
	return n, nil
}

type entry struct {
	Key   any `json:"key"`
	Value any `json:"value"`
}

type rangeAnswer struct {
	Store string `json:"store"`
	// Partitions lists the partitions read: all of the store's.
	Partitions []int32 `json:"partitions"`
	Entries    []entry `json:"entries"`
	// Truncated is true when more keys matched than the limit.
	Truncated bool `json:"truncated,omitempty"`
}

// serveRange answers a range from every partition: its own, and those of
// the other instances, which it asks for their local parts. A partition
// that no instance can answer for makes the whole answer a 503: a range
// is complete or not given.
func (s *Stores) serveRange(w http.ResponseWriter, r *http.Request) {
	store := r.PathValue("store")
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		fail(w, err)
		return
	}
	b, err := s.live()
	var spec *processor.StoreSpec
	if err == nil {
		spec, err = s.spec(store)
	}
	if err != nil {
		fail(w, err)
		return
	}
	if spec.Segments != nil {
		fail(w, badRequest("store %q is a window or session store: fetch a key's windows", store))
		return
	}
	var from, to any
	if v := q.Get("from"); v != "" {
		if from, err = spec.Keys.Parse(v); err != nil {
			fail(w, badRequest("from: %v", err))
			return
		}
	}
	if v := q.Get("to"); v != "" {
		if to, err = spec.Keys.Parse(v); err != nil {
			fail(w, badRequest("to: %v", err))
			return
		}
	}
	ans := rangeAnswer{Store: store, Entries: []entry{}}
	// The local part.
	err = eachLocal(b, store, func(p int32) (bool, error) {
		err := b.Read(store, p, func(rd state.Reader) error {
			return rd.Range(from, to, func(k, v any) bool {
				if len(ans.Entries) == limit {
					ans.Truncated = true
					return false
				}
				ans.Entries = append(ans.Entries, entry{k, v})
				return true
			})
		})
		ans.Partitions = append(ans.Partitions, p)
		return err == nil, err
	})
	if err != nil {
		fail(w, err)
		return
	}
	if r.Header.Get(forwardedHeader) == "" {
		// The other instances' parts, gathered in parallel.
		n, _ := b.Partitions(store)
		var mu sync.Mutex
		var wg sync.WaitGroup
		var errs []error
		for _, e := range b.Endpoints() {
			if e == b.Self() {
				continue
			}
			wg.Go(func() {
				part, err := s.remoteRange(r, e)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				ans.Partitions = append(ans.Partitions, part.Partitions...)
				ans.Entries = append(ans.Entries, part.Entries...)
				ans.Truncated = ans.Truncated || part.Truncated
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			fail(w, &NotAvailableError{Store: store, Partition: -1, Reason: ErrNotReady, RetryAfter: time.Second})
			return
		}
		slices.Sort(ans.Partitions)
		answered := len(ans.Partitions)
		ans.Partitions = slices.Compact(ans.Partitions)
		if len(ans.Partitions) != answered {
			// A task moved while the range was gathered, and two
			// instances answered for its partition: its keys would be
			// there twice.
			fail(w, &NotAvailableError{Store: store, Partition: -1, Reason: ErrNotReady, RetryAfter: time.Second})
			return
		}
		if int32(len(ans.Partitions)) != n {
			fail(w, fmt.Errorf("%w: store %q: %d of its %d partitions answered; the group is rebalancing",
				ErrNotReady, store, len(ans.Partitions), n))
			return
		}
		if len(ans.Entries) > limit {
			ans.Entries, ans.Truncated = ans.Entries[:limit], true
		}
	}
	slices.Sort(ans.Partitions)
	writeJSON(w, http.StatusOK, ans)
}

// remoteRange asks the instance at endpoint for its part of the range r
// asks for.
func (s *Stores) remoteRange(r *http.Request, endpoint string) (*rangeAnswer, error) {
	resp, err := s.get(r, endpoint, r.URL.EscapedPath(), r.URL.Query())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return nil, fmt.Errorf("%s: %s: %s", endpoint, resp.Status, strings.TrimSpace(string(body)))
	}
	var part rangeAnswer
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxForwardBytes))
	dec.UseNumber() // keys and values as they were written, big integers too
	if err := dec.Decode(&part); err != nil {
		return nil, fmt.Errorf("%s: %w", endpoint, err)
	}
	return &part, nil
}

func (s *Stores) serveMetadata(w http.ResponseWriter, r *http.Request) {
	store := r.PathValue("store")
	key, err := s.keyOf(r, store)
	if err != nil {
		fail(w, err)
		return
	}
	md, err := s.Metadata(store, key)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, md)
}
