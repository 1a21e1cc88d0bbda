package query

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/kappa-streams/kappa/state"
)

// sortedStore is a key-value store of string keys, in key order.
type sortedStore struct{ keys []string }

func (*sortedStore) Kind() state.Kind { return state.KindKeyValue }
func (s *sortedStore) Get(key any) (any, bool, error) {
	return int64(1), slices.Contains(s.keys, key.(string)), nil
}
func (*sortedStore) Fetch(any, int64, int64, func(int64, int64, any) bool) error {
	return errors.New("not a window store")
}
func (*sortedStore) EncodeKey(key any) ([]byte, error) { return []byte(key.(string)), nil }
func (s *sortedStore) Range(from, to any, fn func(key, value any) bool) error {
	for _, k := range s.keys {
		if (from == nil || k >= from.(string)) && (to == nil || k < to.(string)) && !fn(k, int64(1)) {
			break
		}
	}
	return nil
}

// chunkBackend owns partition 0 of one store; each Read may change the
// store first.
type chunkBackend struct {
	store  *sortedStore
	reads  int
	onRead func(reads int, s *sortedStore)
}

func (b *chunkBackend) Partitions(string) (int32, error) { return 1, nil }
func (b *chunkBackend) Read(_ string, _ int32, fn func(state.Reader) error) error {
	b.reads++
	if b.onRead != nil {
		b.onRead(b.reads, b.store)
	}
	return fn(b.store)
}
func (b *chunkBackend) Owner(string, int32) (string, bool)   { return "", true }
func (b *chunkBackend) StandbyOwners(string, int32) []string { return nil }
func (b *chunkBackend) Endpoints() []string                  { return nil }
func (b *chunkBackend) Self() string                         { return "" }

// TestAllReadsInChunks checks that a typed All reads a large partition in
// chunks (one Read, and so one hold of the task, per scanChunk keys),
// returns every key once and in order, and goes on right when the last
// key of a chunk is deleted before the next.
func TestAllReadsInChunks(t *testing.T) {
	topo := countsTopology(t)
	var keys []string
	for i := range 2*scanChunk + 10 {
		keys = append(keys, fmt.Sprintf("k%05d", i))
	}
	for _, deleteLast := range []bool{false, true} {
		t.Run(fmt.Sprint("delete-last=", deleteLast), func(t *testing.T) {
			s := NewStores(topo)
			be := &chunkBackend{store: &sortedStore{keys: slices.Clone(keys)}}
			want := slices.Clone(keys)
			if deleteLast {
				gone := keys[scanChunk-1] // the last key of the first chunk
				be.onRead = func(reads int, st *sortedStore) {
					if reads == 2 {
						st.keys = slices.DeleteFunc(st.keys, func(k string) bool { return k == gone })
					}
				}
			}
			s.SetBackend(be)
			kv, err := KeyValue[string, int64](s, "counts")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			if err := kv.All(func(k string, _ int64) bool { got = append(got, k); return true }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("All returned %d keys, want the %d in order (first difference near %v)", len(got), len(want), firstDiff(got, want))
			}
			if be.reads != 3 {
				t.Errorf("%d reads of the partition for %d keys, want 3 (chunks of %d)", be.reads, len(keys), scanChunk)
			}
		})
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
