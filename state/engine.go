package state

import (
	"errors"
)

// Engine is a sorted byte key-value store: the storage under every typed
// store. LevelDB (persistent, the default) and Memory implement it. An
// Engine is used by one task goroutine for writes; Get and Range may also
// be called concurrently from query goroutines.
type Engine interface {
	// Get returns the value of key. The returned slice is the caller's.
	Get(key []byte) (value []byte, ok bool, err error)
	// Range calls fn for each key in [start, end), in byte order, until fn
	// returns false. A nil start or end is unbounded. The slices passed to
	// fn are valid only during the call.
	Range(start, end []byte, fn func(key, value []byte) bool) error
	// Write applies b atomically: all of its puts, deletes and metadata, or
	// none.
	Write(b *Batch) error
	// Meta returns a metadata value written with Batch.SetMeta, kept apart
	// from the data so it never shows in Get or Range.
	Meta(name string) ([]byte, bool, error)
	// ApproximateCount estimates the number of keys.
	ApproximateCount() (int64, error)
	// Close releases the engine. The data stays on disk for persistent
	// engines. It may be called while other goroutines use the engine:
	// the LevelDB engine waits for the operations in flight (a Range until
	// it returns), and every call from then on returns ErrClosed. Closing
	// again returns nil. A Range callback must not close its engine.
	Close() error
}

// ErrClosed is returned, unwrapped, by the methods of a closed LevelDB or
// Memory engine (for LevelDB, from the moment Close begins), and by a
// closed Segmented engine's Meta.
var ErrClosed = errors.New("state: store is closed")

// Batch collects writes applied together by Engine.Write. The zero value
// is ready to use. Keys and values are copied in, so callers may reuse
// their buffers.
type Batch struct {
	ops  []batchOp
	meta []metaOp
	buf  []byte
	size int
}

type batchOp struct {
	ks, ke, vs, ve int // key and value as offsets into buf
	delete         bool
}

type metaOp struct {
	name  string
	value []byte
}

func (b *Batch) keep(p []byte) (start, end int) {
	start = len(b.buf)
	b.buf = append(b.buf, p...)
	return start, len(b.buf)
}

// Put sets key to value.
func (b *Batch) Put(key, value []byte) {
	var op batchOp
	op.ks, op.ke = b.keep(key)
	op.vs, op.ve = b.keep(value)
	b.ops = append(b.ops, op)
	b.size += len(key) + len(value)
}

// Delete removes key.
func (b *Batch) Delete(key []byte) {
	op := batchOp{delete: true}
	op.ks, op.ke = b.keep(key)
	b.ops = append(b.ops, op)
	b.size += len(key)
}

// SetMeta records a metadata value (a changelog offset, for example) to be
// written atomically with the data.
func (b *Batch) SetMeta(name string, value []byte) {
	b.meta = append(b.meta, metaOp{name: name, value: append([]byte(nil), value...)})
}

// Len returns the number of data operations.
func (b *Batch) Len() int { return len(b.ops) }

// Size returns the bytes of keys and values in the batch.
func (b *Batch) Size() int { return b.size }

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() {
	b.ops, b.meta, b.buf, b.size = b.ops[:0], b.meta[:0], b.buf[:0], 0
}

// each calls fn for every operation in order; value is nil for deletes.
func (b *Batch) each(fn func(key, value []byte, delete bool)) {
	for _, op := range b.ops {
		k := b.buf[op.ks:op.ke]
		if op.delete {
			fn(k, nil, true)
			continue
		}
		fn(k, b.buf[op.vs:op.ve], false)
	}
}
