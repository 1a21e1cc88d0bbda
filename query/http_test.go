package query

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
	"github.com/kappa-streams/kappa/stream"
)

// fakeBackend is an instance that owns some partitions of one store, each
// holding one key named after it.
type fakeBackend struct {
	self, other string
	partitions  int32
	local       map[int32]bool
}

func (f *fakeBackend) Partitions(string) (int32, error) { return f.partitions, nil }
func (f *fakeBackend) Read(store string, p int32, fn func(state.Reader) error) error {
	if !f.local[p] {
		return &NotAvailableError{Store: store, Partition: p, Reason: ErrNotLocal}
	}
	return fn(oneKey{key: "k" + string(rune('0'+p))})
}
func (f *fakeBackend) Owner(_ string, p int32) (string, bool) {
	if f.local[p] {
		return f.self, true
	}
	return f.other, false
}
func (f *fakeBackend) StandbyOwners(string, int32) []string { return nil }
func (f *fakeBackend) Endpoints() []string                  { return []string{f.self, f.other} }
func (f *fakeBackend) Self() string                         { return f.self }

// oneKey is a key-value store holding one key with the value 1.
type oneKey struct{ key string }

func (oneKey) Kind() state.Kind                 { return state.KindKeyValue }
func (o oneKey) Get(key any) (any, bool, error) { return int64(1), key == o.key, nil }
func (oneKey) Fetch(any, int64, int64, func(int64, int64, any) bool) error {
	return errors.New("not a window store")
}
func (o oneKey) Range(_, _ any, fn func(key, value any) bool) error {
	fn(o.key, int64(1))
	return nil
}

// countsTopology counts words per key into the key-value store "counts".
func countsTopology(t *testing.T) *processor.Topology {
	t.Helper()
	b := stream.NewBuilder()
	stream.From(b, "words", codec.String(), codec.String()).GroupByKey().Count(stream.Materialized("counts"))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// TestRangeDuringTaskMove answers a range while a task moves: both
// instances claim partition 1, and the answer would hold its key twice. It
// must be a 503 to retry, as for a partition nobody answers.
func TestRangeDuringTaskMove(t *testing.T) {
	topo := countsTopology(t)
	serve := func(local map[int32]bool, other string) (*Stores, *httptest.Server) {
		s := NewStores(topo)
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		s.SetBackend(&fakeBackend{self: strings.TrimPrefix(srv.URL, "http://"), other: other, partitions: 3, local: local})
		return s, srv
	}
	// The remote instance has taken partition 1 already; the local one
	// still runs it.
	_, remote := serve(map[int32]bool{1: true, 2: true}, "")
	_, local := serve(map[int32]bool{0: true, 1: true}, strings.TrimPrefix(remote.URL, "http://"))
	resp, err := http.Get(local.URL + "/v1/stores/counts/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Entries []json.RawMessage `json:"entries"`
		Error   string            `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d with %d entries (%q), want 503 with Retry-After: partition 1 was answered twice",
			resp.StatusCode, len(body.Entries), body.Error)
	}
}
