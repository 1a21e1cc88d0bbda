package state

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/kappa-streams/kappa/codec"
)

// WindowKeyCodec encodes WindowKey values with the record key's codec.
func WindowKeyCodec[K any](kc codec.Codec[K]) codec.Codec[WindowKey[K]] {
	name := "windowkey[" + kc.Name() + "]"
	return codec.Func(name,
		func(wk WindowKey[K]) ([]byte, error) {
			kb, err := kc.Encode(wk.Key)
			if err != nil {
				return nil, err
			}
			return AppendWindowKey(make([]byte, 0, len(kb)+20), kb, wk.T1, wk.T2), nil
		},
		func(b []byte) (WindowKey[K], error) {
			kb, t1, t2, ok := ParseWindowKey(b)
			if !ok {
				return WindowKey[K]{}, &codec.DecodeError{Codec: name, Err: errors.New("not a window key")}
			}
			k, err := kc.Decode(kb)
			return WindowKey[K]{Key: k, T1: t1, T2: t2}, err
		})
}

// WindowStore is a typed store of values per key and window, for windowed
// aggregations and for Processor API nodes. Times are Unix milliseconds.
// Entries older than the store's retention, measured back from the
// largest window start written (its observed stream time), are gone.
type WindowStore[K, V any] interface {
	Name() string
	// Get returns the value of key in the window [start, end].
	Get(key K, start, end int64) (V, bool, error)
	// Put sets the value of key in a window.
	Put(key K, start, end int64, value V) error
	// Delete removes key's value in a window.
	Delete(key K, start, end int64) error
	// Fetch calls fn for key's windows with start in [from, to], in start
	// order, until fn returns false: one range scan.
	Fetch(key K, from, to int64, fn func(start, end int64, value V) bool) error
	// All calls fn for every live entry, in key order.
	All(fn func(key K, start, end int64, value V) bool) error
}

// Windows is the window store of package state: a KV over a Segmented
// engine, so it has the same record cache, changelogging and metering.
type Windows[K, V any] struct {
	kv      *KV[WindowKey[K], V]
	seg     *Segmented
	session bool
}

// NewWindows layers a typed window store over a segmented engine. With
// session set, entries are segmented and ordered by window end (session
// stores); otherwise by start.
func NewWindows[K, V any](name string, seg *Segmented, kc codec.Codec[K], vc codec.Codec[V], o Options,
	log Logger, forward func(key K, start, end int64, c Change[V]) error, session bool,
) *Windows[K, V] {
	w := &Windows[K, V]{seg: seg, session: session}
	var fwd func(WindowKey[K], Change[V]) error
	if forward != nil {
		fwd = func(wk WindowKey[K], c Change[V]) error {
			s, e := w.times(wk)
			return forward(wk.Key, s, e, c)
		}
	}
	w.kv = NewKV(name, seg, WindowKeyCodec(kc), vc, o, log, fwd)
	return w
}

func (w *Windows[K, V]) key(key K, start, end int64) WindowKey[K] {
	if w.session {
		return WindowKey[K]{Key: key, T1: end, T2: start}
	}
	return WindowKey[K]{Key: key, T1: start, T2: end}
}

func (w *Windows[K, V]) times(wk WindowKey[K]) (start, end int64) {
	if w.session {
		return wk.T2, wk.T1
	}
	return wk.T1, wk.T2
}

// Name implements WindowStore.
func (w *Windows[K, V]) Name() string { return w.kv.Name() }

// Get implements WindowStore.
func (w *Windows[K, V]) Get(key K, start, end int64) (V, bool, error) {
	return w.kv.Get(w.key(key, start, end))
}

// Put implements WindowStore.
func (w *Windows[K, V]) Put(key K, start, end int64, value V) error {
	return w.kv.Put(w.key(key, start, end), value)
}

// PutAt is Put with the record time forwarded with the change.
func (w *Windows[K, V]) PutAt(key K, start, end int64, value V, ts time.Time) error {
	return w.kv.PutAt(w.key(key, start, end), value, ts)
}

// Delete implements WindowStore.
func (w *Windows[K, V]) Delete(key K, start, end int64) error {
	return w.kv.Delete(w.key(key, start, end))
}

// DeleteAt is Delete with the record time forwarded with the change.
func (w *Windows[K, V]) DeleteAt(key K, start, end int64, ts time.Time) error {
	return w.kv.DeleteAt(w.key(key, start, end), ts)
}

// Fetch implements WindowStore. For a session store, from and to bound
// the session ends.
func (w *Windows[K, V]) Fetch(key K, from, to int64, fn func(start, end int64, value V) bool) error {
	lo := WindowKey[K]{Key: key, T1: from, T2: math.MinInt64}
	if to == math.MaxInt64 {
		to--
	}
	hi := WindowKey[K]{Key: key, T1: to + 1, T2: math.MinInt64}
	return w.kv.Range(lo, hi, func(wk WindowKey[K], v V) bool {
		s, e := w.times(wk)
		return fn(s, e, v)
	})
}

// All implements WindowStore.
func (w *Windows[K, V]) All(fn func(key K, start, end int64, value V) bool) error {
	return w.kv.All(func(wk WindowKey[K], v V) bool {
		s, e := w.times(wk)
		return fn(wk.Key, s, e, v)
	})
}

// Advance tells the store the stream time, so that it drops what falls
// out of retention.
func (w *Windows[K, V]) Advance(streamTime int64) error { return w.seg.Advance(streamTime) }

// Segments returns the start times of the live segments.
func (w *Windows[K, V]) Segments() []int64 { return w.seg.Segments() }

// Flush forwards and logs the cached changes.
func (w *Windows[K, V]) Flush() error { return w.kv.Flush() }

// Commit writes flushed changes to the engine, with meta.
func (w *Windows[K, V]) Commit(meta map[string][]byte) error { return w.kv.Commit(meta) }

// Close closes the store and its engine.
func (w *Windows[K, V]) Close() error { return w.kv.Close() }

// Metrics returns the store's counters.
func (w *Windows[K, V]) Metrics() *Metrics { return w.kv.Metrics() }

// ApproximateCount estimates the number of entries.
func (w *Windows[K, V]) ApproximateCount() (int64, error) { return w.kv.ApproximateCount() }

// String describes the store for errors.
func (w *Windows[K, V]) String() string { return fmt.Sprintf("window store %q", w.Name()) }
