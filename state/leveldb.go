package state

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// LevelDB keeps data under a one-byte prefix and metadata under another,
// so metadata never collides with a user key.
const (
	dataPrefix = 'd'
	metaPrefix = 'm'
)

// LevelDBOptions tunes a LevelDB engine. Zero fields take the defaults
// filled in by EnsureDefaults.
type LevelDBOptions struct {
	// WriteBuffer is the memtable size. Default 4 MiB: goleveldb allocates
	// it in full when a store opens, once per store and task.
	WriteBuffer int
	// BlockCache is the block cache size. Default 32 MiB.
	BlockCache int
	// Sync fsyncs every write. Default false: the changelog, not the local
	// disk, is the source of truth, so a lost local write is restored.
	Sync bool
	// Logger receives a warning when OpenLevelDB or OpenSegmented finds a
	// store directory it cannot use and starts the store afresh. Default
	// nil: silent.
	Logger *slog.Logger

	// unmarked opens the directory as is, without a format marker: it is
	// a part (a segment, the metadata) of a Segmented store, whose own
	// directory carries the marker.
	unmarked bool
}

// EnsureDefaults fills zero fields with defaults.
func (o *LevelDBOptions) EnsureDefaults() {
	if o.WriteBuffer <= 0 {
		o.WriteBuffer = 4 << 20
	}
	if o.BlockCache <= 0 {
		o.BlockCache = 32 << 20
	}
}

// levelEngine is the Engine OpenLevelDB returns: one goleveldb database,
// data and metadata under their prefixes.
type levelEngine struct {
	db *leveldb.DB
	wo *opt.WriteOptions

	// mu is held for reading by every operation, for as long as it uses
	// db (a Range's iterator included), and for writing by Close: Close
	// waits for the operations in flight, and no operation reaches a
	// closed db. See acquire.
	mu     sync.RWMutex
	closed bool // set by Close under mu

	count      atomic.Int64 // the last key count; see ApproximateCount
	countValid atomic.Bool  // no write since count was taken

	wmu   sync.Mutex     // serializes writes, which share lb
	lb    *leveldb.Batch // reused between writes
	lbCap int            // bytes lb has room for
}

// OpenLevelDB opens (creating if needed) a LevelDB engine in dir.
//
// The directory carries a format marker (see the package documentation,
// "Store directories"). A directory that holds something else (another
// kind of store, a newer format, files goleveldb reports corrupt) is
// deleted and the store starts empty, to be restored from its changelog;
// the reason, wrapping ErrUnusableStore, is logged to o.Logger. An
// unmarked LevelDB written before markers existed is kept and marked. A
// non-empty directory that holds none of the files Kappa writes is left
// alone, and the open fails with ErrUnusableStore.
func OpenLevelDB(dir string, o LevelDBOptions) (Engine, error) {
	var e *levelEngine
	var err error
	if o.unmarked {
		e, err = openLevelDB(dir, o)
	} else {
		e, err = openMarked(dir, kindLevelDB, o.Logger, func() (*levelEngine, error) { return openLevelDB(dir, o) })
	}
	if err != nil {
		return nil, err // not a nil *levelEngine in an Engine
	}
	return e, nil
}

// openLevelDB opens (creating if needed) the LevelDB in dir, paying no
// attention to format markers.
func openLevelDB(dir string, o LevelDBOptions) (*levelEngine, error) {
	o.EnsureDefaults()
	db, err := leveldb.OpenFile(dir, &opt.Options{
		WriteBuffer:        o.WriteBuffer,
		BlockCacheCapacity: o.BlockCache,
		Compression:        opt.NoCompression,
		// Bloom filters make lookups of missing keys (new keys in an
		// aggregation) cheap.
		Filter: filter.NewBloomFilter(10),
		NoSync: !o.Sync,
	})
	if err != nil {
		return nil, fmt.Errorf("state: open leveldb %s: %w", dir, err)
	}
	return &levelEngine{db: db, wo: &opt.WriteOptions{Sync: o.Sync}}, nil
}

// acquire holds e.mu for reading for one operation, which calls release
// when it no longer uses the db, or returns ErrClosed when the engine is
// closed or closing.
//
// It takes the lock with TryRLock, which fails only while Close holds or
// awaits the write lock: ErrClosed is the right answer then, and it
// comes at once rather than after the operations Close waits for. It also
// keeps a Range callback that calls back into the engine from deadlocking
// against a waiting Close, as a second, blocking RLock would.
func (e *levelEngine) acquire() error {
	if !e.mu.TryRLock() {
		return ErrClosed
	}
	if e.closed {
		e.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// release ends an operation begun with acquire.
func (e *levelEngine) release() { e.mu.RUnlock() }

// prefixed returns a new key: p, then key.
func prefixed(p byte, key []byte) []byte {
	k := make([]byte, 1+len(key))
	k[0] = p
	copy(k[1:], key)
	return k
}

// Get implements Engine.
func (e *levelEngine) Get(key []byte) ([]byte, bool, error) {
	if err := e.acquire(); err != nil {
		return nil, false, err
	}
	defer e.release()
	v, err := e.db.Get(prefixed(dataPrefix, key), nil)
	if err == leveldb.ErrNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// Range implements Engine. The engine stays open until Range returns: a
// Close waits, and other operations, fn's included, return ErrClosed
// meanwhile. fn must not close the engine.
func (e *levelEngine) Range(start, end []byte, fn func(k, v []byte) bool) error {
	if err := e.acquire(); err != nil {
		return err
	}
	defer e.release()
	r := &util.Range{Start: prefixed(dataPrefix, start)}
	if end != nil {
		r.Limit = prefixed(dataPrefix, end)
	} else {
		r.Limit = []byte{dataPrefix + 1}
	}
	it := e.db.NewIterator(r, nil)
	defer it.Release()
	for it.Next() {
		if !fn(it.Key()[1:], it.Value()) {
			break
		}
	}
	return it.Error()
}

// Write applies the batch in one LevelDB write. The LevelDB batch is
// reused and sized before it is filled: goleveldb grows a large batch in
// small steps, copying it each time, which made big restore batches
// quadratic.
func (e *levelEngine) Write(b *Batch) error {
	if err := e.acquire(); err != nil {
		return err
	}
	defer e.release()
	e.wmu.Lock()
	defer e.wmu.Unlock()
	need := b.Size() + b.Len()*(2*binary.MaxVarintLen32+2) + 64
	for _, m := range b.meta {
		need += len(m.name) + len(m.value) + 2*binary.MaxVarintLen32 + 2
	}
	if e.lb == nil || need > e.lbCap {
		// An empty batch grows by exactly what one record needs: one
		// record of the whole size reserves it.
		e.lb = new(leveldb.Batch)
		e.lb.Put(nil, make([]byte, need))
		e.lbCap = need
	}
	lb := e.lb
	lb.Reset()
	var pk []byte // lb copies the key: one buffer serves every key
	b.each(func(k, v []byte, del bool) {
		pk = append(append(pk[:0], dataPrefix), k...)
		if del {
			lb.Delete(pk)
		} else {
			lb.Put(pk, v)
		}
	})
	for _, m := range b.meta {
		lb.Put(append([]byte{metaPrefix}, m.name...), m.value)
	}
	err := e.db.Write(lb, e.wo)
	if e.lbCap > maxKeptBatch {
		e.lb, e.lbCap = nil, 0 // do not hold a restore-sized buffer
	}
	if err != nil {
		return fmt.Errorf("state: leveldb write: %w", err)
	}
	if b.Len() > 0 {
		e.countValid.Store(false)
	}
	return nil
}

// maxKeptBatch bounds the LevelDB batch buffer an engine keeps between
// writes.
const maxKeptBatch = 4 << 20

// Meta implements Engine.
func (e *levelEngine) Meta(name string) ([]byte, bool, error) {
	if err := e.acquire(); err != nil {
		return nil, false, err
	}
	defer e.release()
	v, err := e.db.Get(append([]byte{metaPrefix}, name...), nil)
	if err == leveldb.ErrNotFound {
		return nil, false, nil
	}
	return v, err == nil, err
}

// ApproximateCount counts the keys. The count is kept until the next
// write; after writes, it is recounted by a scan of the keys, so call it
// seldom (a metrics scrape, not per record).
func (e *levelEngine) ApproximateCount() (int64, error) {
	if err := e.acquire(); err != nil {
		return 0, err
	}
	defer e.release()
	if e.countValid.Load() {
		return e.count.Load(), nil
	}
	e.countValid.Store(true) // a write from now on invalidates the scan
	var n int64
	it := e.db.NewIterator(&util.Range{Start: []byte{dataPrefix}, Limit: []byte{dataPrefix + 1}}, nil)
	for it.Next() {
		n++
	}
	it.Release()
	if err := it.Error(); err != nil {
		e.countValid.Store(false)
		return 0, err
	}
	e.count.Store(n)
	return n, nil
}

// Close implements Engine. It waits for the operations in flight,
// iterations included, to finish; later calls return nil.
// tryClose closes the engine if no operation is using it, and reports
// whether it did. A segmented store uses it to drop an expired segment that
// a Range may be iterating on the same goroutine (a callback that writes,
// and so expires the segment), where Close would wait forever.
func (e *levelEngine) tryClose() (bool, error) {
	if !e.mu.TryLock() {
		return false, nil
	}
	defer e.mu.Unlock()
	if e.closed {
		return true, nil
	}
	e.closed = true
	e.lb, e.lbCap = nil, 0
	return true, e.db.Close()
}

func (e *levelEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.lb, e.lbCap = nil, 0
	return e.db.Close()
}
