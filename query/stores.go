package query

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
)

// Stores is the interactive-query view of one running app instance: typed
// reads of the stores of the tasks it runs, where every key lives, and
// the HTTP API (Handler). kappa.App.Stores returns it; it answers
// ErrNotReady until the app has joined its group.
type Stores struct {
	topo    *processor.Topology
	backend atomic.Pointer[Backend]
	client  *http.Client
}

// NewStores returns the view of an instance running topo. Package kappa
// calls it; SetBackend connects it once the instance runs.
func NewStores(topo *processor.Topology) *Stores {
	// Forwarded queries go to a few peers at a high rate: keep enough
	// idle connections per peer that they are reused, not reopened (a
	// new connection per request would also run out of ports).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 256
	return &Stores{topo: topo, client: &http.Client{Timeout: 10 * time.Second, Transport: tr}}
}

// SetBackend connects s to the running instance, or disconnects it (nil)
// when the instance stops.
func (s *Stores) SetBackend(b Backend) {
	if b == nil {
		s.backend.Store(nil)
		return
	}
	s.backend.Store(&b)
}

func (s *Stores) live() (Backend, error) {
	if b := s.backend.Load(); b != nil {
		return *b, nil
	}
	return nil, fmt.Errorf("%w: the app is not running", ErrNotReady)
}

// StoreInfo describes a queryable store.
type StoreInfo struct {
	Name string `json:"name"`
	// Windowed is true for window and session stores.
	Windowed bool `json:"windowed"`
	// KeyType is the Go type of the keys.
	KeyType string `json:"keyType"`
	// Partitions is how many tasks hold parts of the store; 0 while the
	// app is not running.
	Partitions int32 `json:"partitions"`
}

// List returns the stores that can be queried, in topology order.
func (s *Stores) List() []StoreInfo {
	b, _ := s.live()
	var out []StoreInfo
	for _, sub := range s.topo.SubTopologies() {
		for _, spec := range sub.Stores {
			if spec.Keys == nil {
				continue
			}
			name := spec.Name
			info := StoreInfo{Name: name, Windowed: spec.Segments != nil, KeyType: spec.Keys.Type().String()}
			if b != nil {
				info.Partitions, _ = b.Partitions(name)
			}
			out = append(out, info)
		}
	}
	return out
}

// spec returns the queryable store name.
func (s *Stores) spec(name string) (*processor.StoreSpec, error) {
	spec, _, ok := s.topo.Store(name)
	if !ok {
		return nil, fmt.Errorf("%w: the topology has no store %q", ErrUnknownStore, name)
	}
	if spec.Keys == nil {
		return nil, fmt.Errorf("%w: store %q is internal (a join's buffer) and cannot be queried", ErrUnknownStore, name)
	}
	return spec, nil
}

// KeyMetadata says where a key of a store lives.
type KeyMetadata struct {
	Store string `json:"store"`
	// Partition is the partition of the key, and so of its task.
	Partition int32 `json:"partition"`
	// Endpoint is the query endpoint (kappa.ApplicationServer) of the
	// instance that runs the task; "" while no owner is known (during a
	// rebalance) or when it advertises none.
	Endpoint string `json:"endpoint"`
	// Local is true when this instance runs the task.
	Local bool `json:"local"`
	// Standbys are the query endpoints of the instances that keep a
	// standby copy of the task (kappa.StandbyReplicas): they can take it
	// over with little to restore. Queries are answered by the owner only.
	Standbys []string `json:"standbys,omitempty"`
}

// Metadata returns where key of store lives, as Kafka Streams'
// queryMetadataForKey does. key is of the store's key type, or its text
// form (see state.ParseKey).
func (s *Stores) Metadata(store string, key any) (KeyMetadata, error) {
	b, err := s.live()
	if err != nil {
		return KeyMetadata{}, err
	}
	p, err := s.partition(b, store, key)
	if err != nil {
		return KeyMetadata{}, err
	}
	endpoint, local := b.Owner(store, p)
	return KeyMetadata{Store: store, Partition: p, Endpoint: endpoint, Local: local, Standbys: b.StandbyOwners(store, p)}, nil
}

// partition returns the partition of key in store.
func (s *Stores) partition(b Backend, store string, key any) (int32, error) {
	spec, err := s.spec(store)
	if err != nil {
		return 0, err
	}
	kb, err := spec.Keys.Encode(key)
	if err != nil {
		return 0, fmt.Errorf("query: store %q: %w", store, err)
	}
	n, err := b.Partitions(store)
	if err != nil {
		return 0, err
	}
	return processor.KeyPartition(kb, n), nil
}

// typed checks that store exists, is windowed or not as wanted, and has
// keys of type K.
func typed[K any](s *Stores, store string, windowed bool) error {
	spec, err := s.spec(store)
	if err != nil {
		return err
	}
	if got := spec.Segments != nil; got != windowed {
		kind := map[bool]string{false: "key-value", true: "window or session"}
		return fmt.Errorf("%w: store %q is a %s store, not a %s store", ErrWrongType, store, kind[got], kind[windowed])
	}
	if t := reflect.TypeFor[K](); spec.Keys.Type() != t {
		return fmt.Errorf("%w: store %q has keys of type %s, not %s", ErrWrongType, store, spec.Keys.Type(), t)
	}
	return nil
}

// value converts a value read from a store to V.
func value[V any](store string, v any) (V, error) {
	out, ok := v.(V)
	if !ok {
		return out, fmt.Errorf("%w: store %q has values of type %T, not %s", ErrWrongType, store, v, reflect.TypeFor[V]())
	}
	return out, nil
}

// KeyValueStore is typed, read-only access to the local part of a
// key-value store: the tasks this instance runs.
type KeyValueStore[K, V any] struct {
	s    *Stores
	name string
}

// KeyValue returns typed access to key-value store name, whose keys and
// values are of types K and V.
func KeyValue[K, V any](s *Stores, name string) (*KeyValueStore[K, V], error) {
	if err := typed[K](s, name, false); err != nil {
		return nil, err
	}
	return &KeyValueStore[K, V]{s: s, name: name}, nil
}

// Get returns key's current value, including what the record cache holds
// and has not written yet. It reads between two records of the key's
// task, so the value is never torn. A key whose task runs elsewhere gets
// a *NotAvailableError wrapping ErrNotLocal and naming the owner's
// endpoint (see Stores.Metadata); one whose task is restoring, or moving
// in a rebalance, wraps ErrNotReady.
func (kv *KeyValueStore[K, V]) Get(key K) (V, bool, error) {
	var out V
	b, err := kv.s.live()
	if err != nil {
		return out, false, err
	}
	p, err := kv.s.partition(b, kv.name, key)
	if err != nil {
		return out, false, err
	}
	var found bool
	err = b.Read(kv.name, p, func(r state.Reader) error {
		v, ok, err := r.Get(key)
		if err != nil || !ok {
			return err
		}
		found = true
		out, err = value[V](kv.name, v)
		return err
	})
	return out, found && err == nil, err
}

// Range calls fn for the local keys in [from, to), partition by
// partition, each in the byte order of the keys' encoding, until fn
// returns false. A partition is read in chunks of 1,024 keys, each between
// two of its task's records, so a large range neither holds the task up
// nor copies the partition into memory; a key written between two chunks
// may be seen or not. fn runs after each chunk's read, not under the
// task's lock. It fails with ErrNotReady if any local partition of the
// store is restoring.
func (kv *KeyValueStore[K, V]) Range(from, to K, fn func(key K, value V) bool) error {
	return kv.scan(from, to, fn)
}

// All calls fn for every local key, as Range does.
func (kv *KeyValueStore[K, V]) All(fn func(key K, value V) bool) error {
	return kv.scan(nil, nil, fn)
}

func (kv *KeyValueStore[K, V]) scan(from, to any, fn func(K, V) bool) error {
	b, err := kv.s.live()
	if err != nil {
		return err
	}
	type pair struct {
		k K
		v V
	}
	return eachLocal(b, kv.name, func(p int32) (bool, error) {
		// The partition is read in chunks of scanChunk keys, each between
		// two of the task's records: memory stays bounded, and a large
		// scan does not hold the task up for its whole length. Each chunk
		// starts at the last key of the one before, and skips it if it is
		// still there.
		start := from
		var last []byte // the encoding of the last key read, nil at first
		for {
			var batch []pair
			err := b.Read(kv.name, p, func(r state.Reader) error {
				var verr error
				first := last != nil
				err := r.Range(start, to, func(k, v any) bool {
					kk, ok := k.(K)
					if !ok {
						verr = fmt.Errorf("%w: store %q has keys of type %T", ErrWrongType, kv.name, k)
						return false
					}
					if first {
						first = false
						if enc, err := encodeKey(r, k); err == nil && bytes.Equal(enc, last) {
							return true
						}
					}
					vv, err := value[V](kv.name, v)
					if err != nil {
						verr = err
						return false
					}
					batch = append(batch, pair{kk, vv})
					return len(batch) < scanChunk
				})
				if err == nil && verr == nil && len(batch) == scanChunk {
					last, verr = encodeKey(r, batch[len(batch)-1].k)
				}
				return errors.Join(err, verr)
			})
			if err != nil {
				return false, err
			}
			for _, e := range batch {
				if !fn(e.k, e.v) {
					return false, nil
				}
			}
			if len(batch) < scanChunk {
				return true, nil
			}
			start = any(batch[len(batch)-1].k)
		}
	})
}

// encodeKey returns key's encoding in the store r reads.
func encodeKey(r state.Reader, key any) ([]byte, error) {
	enc, ok := r.(interface{ EncodeKey(any) ([]byte, error) })
	if !ok {
		return nil, fmt.Errorf("query: store reader %T cannot encode keys", r)
	}
	return enc.EncodeKey(key)
}

// scanChunk is how many keys a typed range reads under its task's lock at
// once.
const scanChunk = 1024

// eachLocal calls fn for each partition of store that this instance owns,
// in order, until fn returns false or an error.
func eachLocal(b Backend, store string, fn func(p int32) (bool, error)) error {
	n, err := b.Partitions(store)
	if err != nil {
		return err
	}
	for p := range n {
		if _, local := b.Owner(store, p); !local {
			continue
		}
		more, err := fn(p)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// WindowStore is typed, read-only access to the local part of a window
// or session store.
type WindowStore[K, V any] struct {
	s    *Stores
	name string
}

// Window returns typed access to window or session store name, whose keys
// (without their windows) and values are of types K and V.
func Window[K, V any](s *Stores, name string) (*WindowStore[K, V], error) {
	if err := typed[K](s, name, true); err != nil {
		return nil, err
	}
	return &WindowStore[K, V]{s: s, name: name}, nil
}

// Fetch calls fn for key's windows that start in [from, to] (for a
// session store: the sessions that end in it), in time order, until fn
// returns false. Errors are those of KeyValueStore.Get. fn runs after the
// read, not under the task's lock.
func (w *WindowStore[K, V]) Fetch(key K, from, to time.Time, fn func(start, end time.Time, value V) bool) error {
	b, err := w.s.live()
	if err != nil {
		return err
	}
	p, err := w.s.partition(b, w.name, key)
	if err != nil {
		return err
	}
	type win struct {
		s, e int64
		v    V
	}
	var wins []win
	err = b.Read(w.name, p, func(r state.Reader) error {
		var verr error
		err := r.Fetch(key, from.UnixMilli(), to.UnixMilli(), func(s, e int64, v any) bool {
			vv, err := value[V](w.name, v)
			if err != nil {
				verr = err
				return false
			}
			wins = append(wins, win{s, e, vv})
			return true
		})
		return errors.Join(err, verr)
	})
	if err != nil {
		return err
	}
	for _, x := range wins {
		if !fn(time.UnixMilli(x.s), time.UnixMilli(x.e), x.v) {
			break
		}
	}
	return nil
}
