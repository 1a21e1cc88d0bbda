package streamtest

import (
	"fmt"

	"github.com/kappa-streams/kappa/codec"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/state"
)

// Entry is one key and value of a store.
type Entry[K, V any] struct {
	Key   K
	Value V
}

// KeyValueStore returns the typed store name of the task owning partition
// p, opening the task if it is not yet. Use it to inspect or pre-load one
// partition's state.
func KeyValueStore[K, V any](d *Driver, name string, p int) (state.KeyValue[K, V], error) {
	return typedStore[state.KeyValue[K, V]](d, name, p, "a key-value store")
}

// WindowStore returns the typed window store name (of a windowed
// aggregation, or declared for a Processor API node) of the task owning
// partition p, opening the task if it is not yet.
func WindowStore[K, V any](d *Driver, name string, p int) (state.WindowStore[K, V], error) {
	return typedStore[state.WindowStore[K, V]](d, name, p, "a window store")
}

// WindowEntry is one entry of a window store.
type WindowEntry[K, V any] struct {
	Key        K
	Start, End int64 // Unix ms
	Value      V
}

// ReadWindowStore returns every live entry of window store name across all
// partitions, in partition order and, within one, in key byte order then
// start time.
func ReadWindowStore[K, V any](d *Driver, name string) ([]WindowEntry[K, V], error) {
	_, sub, ok := d.topo.Store(name)
	if !ok {
		return nil, fmt.Errorf("streamtest: no state store %q in the topology", name)
	}
	var out []WindowEntry[K, V]
	for p := range int(d.plan.Tasks[sub]) {
		ws, err := WindowStore[K, V](d, name, p)
		if err != nil {
			return nil, err
		}
		err = ws.All(func(k K, s, e int64, v V) bool {
			out = append(out, WindowEntry[K, V]{k, s, e, v})
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func typedStore[S any](d *Driver, name string, p int, what string) (S, error) {
	var zero S
	_, sub, ok := d.topo.Store(name)
	if !ok {
		return zero, fmt.Errorf("streamtest: no state store %q in the topology", name)
	}
	if p < 0 || int32(p) >= d.plan.Tasks[sub] {
		return zero, fmt.Errorf("streamtest: store %q has partitions 0..%d, not %d", name, d.plan.Tasks[sub]-1, p)
	}
	t, err := d.task(sub, int32(p))
	if err != nil {
		return zero, err
	}
	s, ok := t.Store(name)
	if !ok {
		return zero, fmt.Errorf("streamtest: store %q is not open in task %s", name, t.ID)
	}
	typed, ok := s.(S)
	if !ok {
		return zero, fmt.Errorf("streamtest: store %q is %T, not %s of these types (%T)", name, s, what, zero)
	}
	return typed, nil
}

// ReadStore returns every entry of store name across all partitions, in
// partition order and, within one, in key byte order. It sees what the
// store holds, including updates not yet committed.
func ReadStore[K, V any](d *Driver, name string) ([]Entry[K, V], error) {
	_, sub, ok := d.topo.Store(name)
	if !ok {
		return nil, fmt.Errorf("streamtest: no state store %q in the topology", name)
	}
	var out []Entry[K, V]
	for p := range int(d.plan.Tasks[sub]) {
		kv, err := KeyValueStore[K, V](d, name, p)
		if err != nil {
			return nil, err
		}
		if err := kv.All(func(k K, v V) bool { out = append(out, Entry[K, V]{k, v}); return true }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PutStore pre-loads key with value into store name, in the partition the
// key's encoding (with kc) hashes to, as the store's own input would place
// it.
func PutStore[K, V any](d *Driver, name string, kc codec.Codec[K], key K, value V) error {
	_, sub, ok := d.topo.Store(name)
	if !ok {
		return fmt.Errorf("streamtest: no state store %q in the topology", name)
	}
	kb, err := kc.Encode(key)
	if err != nil {
		return err
	}
	kv, err := KeyValueStore[K, V](d, name, int(processor.KeyPartition(kb, d.plan.Tasks[sub])))
	if err != nil {
		return err
	}
	return kv.Put(key, value)
}
