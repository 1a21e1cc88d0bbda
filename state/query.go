package state

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"

	"github.com/kappa-streams/kappa/codec"
)

// Kind is the kind of a store, as interactive queries see it.
type Kind string

// The kinds of stores.
const (
	KindKeyValue Kind = "key-value"
	KindWindow   Kind = "window"
	KindSession  Kind = "session"
)

// Reader is untyped, read-only access to a store, for interactive queries
// that do not know the store's types (the HTTP API). Every store of
// package state has one (KV.Reader, Windows.Reader). Its methods must be
// called while nothing else uses the store: the runtime calls them under
// the task's lock, between two records. They never change what the store
// holds or caches, and never evict.
type Reader interface {
	// Kind is the store's kind: Get and Range are for key-value stores,
	// Fetch for window and session stores.
	Kind() Kind
	// Get returns the current value of key, including changes still in
	// the record cache.
	Get(key any) (value any, ok bool, err error)
	// Range calls fn for the keys in [from, to) in the byte order of their
	// encoding, until fn returns false; a nil from or to leaves that end
	// open.
	Range(from, to any, fn func(key, value any) bool) error
	// Fetch calls fn for key's windows that start (sessions: end) in
	// [from, to], in time order, until fn returns false.
	Fetch(key any, from, to int64, fn func(start, end int64, value any) bool) error
}

// Peek returns the value of key like Get, but leaves the store as it was:
// it does not load the key into the record cache, evict, count a cache hit
// or mark the entry recently used. A read from an interactive query.
func (s *KV[K, V]) Peek(key K) (V, bool, error) {
	var zero V
	kb, err := s.encodeKey(key)
	if err != nil {
		return zero, false, err
	}
	if e := s.cache[string(kb)]; e != nil { // no hit counted, no reference bit set
		if e.deleted {
			return zero, false, nil
		}
		return e.value, true, nil
	}
	raw, ok, err := s.engine.Get(kb)
	if err != nil || !ok {
		if err != nil {
			err = fmt.Errorf("state: store %q: %w", s.name, err)
		}
		return zero, false, err
	}
	v, err := s.vc.Decode(raw)
	if err != nil {
		return zero, false, fmt.Errorf("state: store %q: %w", s.name, err)
	}
	return v, true, nil
}

// Reader returns untyped, read-only access to the store.
func (s *KV[K, V]) Reader() Reader { return kvReader[K, V]{s} }

type kvReader[K, V any] struct{ s *KV[K, V] }

func (kvReader[K, V]) Kind() Kind                          { return KindKeyValue }
func (r kvReader[K, V]) ParseKey(text string) (any, error) { return ParseKey[K](text) }

func (r kvReader[K, V]) EncodeKey(key any) ([]byte, error) {
	k, err := keyOf[K](key)
	if err != nil {
		return nil, err
	}
	return r.s.encodeKey(k)
}

func (r kvReader[K, V]) Get(key any) (any, bool, error) {
	k, err := keyOf[K](key)
	if err != nil {
		return nil, false, err
	}
	return untyped(r.s.Peek(k))
}

func (r kvReader[K, V]) Range(from, to any, fn func(key, value any) bool) error {
	var lo, hi []byte
	var err error
	enc := func(key any) ([]byte, error) {
		k, err := keyOf[K](key)
		if err != nil {
			return nil, err
		}
		return r.s.encodeKey(k)
	}
	if from != nil {
		if lo, err = enc(from); err != nil {
			return err
		}
	}
	if to != nil {
		if hi, err = enc(to); err != nil {
			return err
		}
	}
	return r.s.peekScan(lo, hi, func(k K, v V) bool { return fn(k, v) })
}

func (r kvReader[K, V]) Fetch(any, int64, int64, func(int64, int64, any) bool) error {
	return fmt.Errorf("state: store %q is a key-value store: get its keys, it has no windows", r.s.name)
}

// Reader returns untyped, read-only access to the store.
func (w *Windows[K, V]) Reader() Reader { return windowReader[K, V]{w} }

type windowReader[K, V any] struct{ w *Windows[K, V] }

func (r windowReader[K, V]) Kind() Kind {
	if r.w.session {
		return KindSession
	}
	return KindWindow
}

func (r windowReader[K, V]) Get(any) (any, bool, error) {
	return nil, false, fmt.Errorf("state: store %q is a %s store: fetch a key's windows", r.w.Name(), r.Kind())
}

func (r windowReader[K, V]) Range(any, any, func(any, any) bool) error {
	return fmt.Errorf("state: store %q is a %s store: fetch a key's windows", r.w.Name(), r.Kind())
}

func (r windowReader[K, V]) Fetch(key any, from, to int64, fn func(start, end int64, value any) bool) error {
	k, err := keyOf[K](key)
	if err != nil {
		return err
	}
	return r.w.Fetch(k, from, to, func(s, e int64, v V) bool { return fn(s, e, v) })
}

// Keys parses and encodes the keys of a store without the store: package
// stream attaches one to each store's spec, so that any instance can find
// the partition of a key, also of a store it runs no task of.
type Keys interface {
	// Type is the key type.
	Type() reflect.Type
	// Parse turns the text form of a key (from a URL) into a key: the
	// text itself for strings and byte slices, a number for integer and
	// float types, JSON for other types.
	Parse(text string) (any, error)
	// Encode encodes key, of the key type (or its text form), with the
	// store's key codec: the bytes the partitioner hashes to find the
	// key's task. For window and session stores, the key without its
	// window.
	Encode(key any) ([]byte, error)
}

// KeysOf returns the Keys of a store whose keys kc encodes; nil if kc is.
func KeysOf[K any](kc codec.Codec[K]) Keys {
	if kc == nil {
		return nil
	}
	return keys[K]{kc}
}

type keys[K any] struct{ kc codec.Codec[K] }

func (keys[K]) Type() reflect.Type             { return reflect.TypeFor[K]() }
func (keys[K]) Parse(text string) (any, error) { return ParseKey[K](text) }
func (k keys[K]) Encode(key any) ([]byte, error) {
	kk, err := keyOf[K](key)
	if err != nil {
		return nil, err
	}
	return k.kc.Encode(kk)
}

func untyped[V any](v V, ok bool, err error) (any, bool, error) {
	if !ok || err != nil {
		return nil, ok, err
	}
	return v, true, nil
}

// keyOf returns key as a K, parsing it if it is the text form of one.
func keyOf[K any](key any) (K, error) {
	if k, ok := key.(K); ok {
		return k, nil
	}
	if s, ok := key.(string); ok {
		return ParseKey[K](s)
	}
	var zero K
	return zero, fmt.Errorf("state: key %v is a %T, the store's keys are %s", key, key, reflect.TypeFor[K]())
}

// ParseKey turns the text form of a key into a K: the text itself for
// string and []byte keys, a number for integer and float kinds, JSON for
// other types.
func ParseKey[K any](text string) (K, error) {
	var k K
	switch p := any(&k).(type) {
	case *string:
		*p = text
		return k, nil
	case *[]byte:
		*p = []byte(text)
		return k, nil
	}
	v := reflect.ValueOf(&k).Elem()
	var err error
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var n int64
		if n, err = strconv.ParseInt(text, 10, v.Type().Bits()); err == nil {
			v.SetInt(n)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var n uint64
		if n, err = strconv.ParseUint(text, 10, v.Type().Bits()); err == nil {
			v.SetUint(n)
		}
	case reflect.Float32, reflect.Float64:
		var f float64
		if f, err = strconv.ParseFloat(text, v.Type().Bits()); err == nil {
			v.SetFloat(f)
		}
	case reflect.String:
		v.SetString(text)
	default:
		err = json.Unmarshal([]byte(text), &k)
	}
	if err != nil {
		return k, fmt.Errorf("state: key %q is not a %s: %w", text, reflect.TypeFor[K](), err)
	}
	return k, nil
}
