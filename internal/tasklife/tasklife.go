// Package tasklife holds the operations that drive a task through its
// life cycle: creating it, restoring its stores, feeding it records,
// committing and closing it. Only Kappa's runtime (internal/runner) and
// its test driver (streamtest) call them.
//
// Code that is handed a *processor.Task (the node factories of a
// topology) must not drive it, so processor's entry points to the life
// cycle, processor.NewTask and Task.Lifecycle, take a Key: a value that
// only this module's packages can obtain (K), and that is refused when it
// is not K.
package tasklife

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ChangelogReader reads changelog partitions for a restore.
type ChangelogReader interface {
	// EndOffset returns the offset after the last record of the
	// partition: where a restore that starts now ends.
	EndOffset(ctx context.Context, topic string, partition int32) (int64, error)
	// ReadChangelog calls apply with batches of the records of topic's
	// partition, from offset from up to end, which the caller had from
	// EndOffset. It returns the offset after the last record read.
	ReadChangelog(ctx context.Context, topic string, partition int32, from, end int64, apply func([]*kgo.Record) error) (next int64, err error)
}

// Ops are the life-cycle operations of one task. They must be called
// from one goroutine at a time, the one that processes the task, except
// Read, which any goroutine may call.
type Ops interface {
	// Restore brings every store of the task up to the end of its
	// changelog, from the offset stored with its local data.
	Restore(ctx context.Context, r ChangelogReader) error
	// CatchUp is Restore for a standby task: it brings the stores up to
	// the changelogs' current ends, and is called again and again.
	CatchUp(ctx context.Context, r ChangelogReader) error
	// Positions returns the changelog offsets the task's stores have
	// reached, summed over them, and the changelogs' end offsets at the
	// last Restore or CatchUp, summed.
	Positions() (applied, end int64, err error)
	// RestoreStreamTime sets the stream time the task had at its last
	// commit, before it processes anything.
	RestoreStreamTime(ms int64)
	// Process runs one input record through the task.
	Process(rec *kgo.Record) error
	// NextWallClock returns when the next wall-clock punctuation is due,
	// or zero when none is scheduled.
	NextWallClock() time.Time
	// PunctuateWallClock runs the wall-clock punctuations due at now.
	PunctuateWallClock(now time.Time) error
	// FlushStores writes the stores' caches to the stores' changelogs and
	// children: the first step of a commit.
	FlushStores() error
	// CommitStores writes the flushed changes and their changelog
	// positions to the local stores, once the commit has succeeded.
	CommitStores() error
	// MarkUnclean records in the task directory that its stores may be
	// ahead of what is committed; MarkClean removes the mark after a
	// clean close.
	MarkUnclean() error
	MarkClean() error
	// Close closes the task's nodes and stores.
	Close() error
	// Read runs fn with the task's store name (a processor.Store) while
	// no other operation runs on the task: interactive queries read
	// stores from other goroutines this way, between two records. It
	// returns state.ErrClosed once the task is closed.
	Read(store string, fn func(store any) error) error
}

// Key unlocks processor.NewTask and Task.Lifecycle. Its zero value is
// refused.
type Key struct{ ok bool }

// K is the key Kappa's runtime and test driver pass.
var K = Key{ok: true}

// Check panics unless k is K: a caller outside Kappa forged a zero Key.
func (k Key) Check() {
	if !k.ok {
		panic("processor: a task's life cycle is driven by Kappa's runtime only")
	}
}
