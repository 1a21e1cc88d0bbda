package state

import (
	"fmt"
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
	// WriteBuffer is the memtable size. Default 16 MiB.
	WriteBuffer int
	// BlockCache is the block cache size. Default 32 MiB.
	BlockCache int
	// Sync fsyncs every write. Default false: the changelog, not the local
	// disk, is the source of truth, so a lost local write is restored.
	Sync bool
}

// EnsureDefaults fills zero fields with defaults.
func (o *LevelDBOptions) EnsureDefaults() {
	if o.WriteBuffer <= 0 {
		o.WriteBuffer = 16 << 20
	}
	if o.BlockCache <= 0 {
		o.BlockCache = 32 << 20
	}
}

type levelEngine struct {
	db     *leveldb.DB
	wo     *opt.WriteOptions
	count  atomic.Int64 // maintained estimate; see ApproximateCount
	closed atomic.Bool
}

// OpenLevelDB opens (creating if needed) a LevelDB engine in dir.
func OpenLevelDB(dir string, o LevelDBOptions) (Engine, error) {
	o.EnsureDefaults()
	db, err := leveldb.OpenFile(dir, &opt.Options{
		WriteBuffer:        o.WriteBuffer,
		BlockCacheCapacity: o.BlockCache,
		Compression:        opt.NoCompression,
		// The key count is kept exact by a lookup per write; the filter
		// makes the lookup of a new key cheap.
		Filter: filter.NewBloomFilter(10),
		NoSync: !o.Sync,
	})
	if err != nil {
		return nil, fmt.Errorf("state: open leveldb %s: %w", dir, err)
	}
	e := &levelEngine{db: db, wo: &opt.WriteOptions{Sync: o.Sync}}
	if v, ok, err := e.Meta("count"); err == nil && ok && len(v) == 8 {
		e.count.Store(int64(be64(v)))
	}
	return e, nil
}

func be64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

func put64(v uint64) []byte {
	return []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func prefixed(p byte, key []byte) []byte {
	k := make([]byte, 1+len(key))
	k[0] = p
	copy(k[1:], key)
	return k
}

func (e *levelEngine) Get(key []byte) ([]byte, bool, error) {
	if e.closed.Load() {
		return nil, false, ErrClosed
	}
	v, err := e.db.Get(prefixed(dataPrefix, key), nil)
	if err == leveldb.ErrNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

func (e *levelEngine) Range(start, end []byte, fn func(k, v []byte) bool) error {
	if e.closed.Load() {
		return ErrClosed
	}
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

// Write applies the batch. The key count estimate is kept by counting
// puts of new keys and deletes of existing ones, which costs a lookup per
// operation only for keys not in the block cache; it is stored with the
// batch so it survives restarts.
func (e *levelEngine) Write(b *Batch) error {
	if e.closed.Load() {
		return ErrClosed
	}
	var lb leveldb.Batch
	delta := int64(0)
	// Existence of keys touched earlier in this batch.
	seen := make(map[string]bool, b.Len())
	b.each(func(k, v []byte, del bool) {
		pk := prefixed(dataPrefix, k)
		has, inBatch := seen[string(k)]
		if !inBatch {
			has, _ = e.db.Has(pk, nil)
		}
		seen[string(k)] = !del
		if del {
			lb.Delete(pk)
			if has {
				delta--
			}
			return
		}
		lb.Put(pk, v)
		if !has {
			delta++
		}
	})
	for _, m := range b.meta {
		lb.Put(append([]byte{metaPrefix}, m.name...), m.value)
	}
	n := e.count.Load() + delta
	lb.Put(append([]byte{metaPrefix}, "count"...), put64(uint64(n)))
	if err := e.db.Write(&lb, e.wo); err != nil {
		return fmt.Errorf("state: leveldb write: %w", err)
	}
	e.count.Store(n)
	return nil
}

func (e *levelEngine) Meta(name string) ([]byte, bool, error) {
	if e.closed.Load() {
		return nil, false, ErrClosed
	}
	v, err := e.db.Get(append([]byte{metaPrefix}, name...), nil)
	if err == leveldb.ErrNotFound {
		return nil, false, nil
	}
	return v, err == nil, err
}

func (e *levelEngine) ApproximateCount() (int64, error) {
	if e.closed.Load() {
		return 0, ErrClosed
	}
	return e.count.Load(), nil
}

func (e *levelEngine) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	return e.db.Close()
}
