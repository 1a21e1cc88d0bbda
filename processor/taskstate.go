package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/kappa-streams/kappa/internal/statedir"
	"github.com/kappa-streams/kappa/internal/tasklife"
	"github.com/kappa-streams/kappa/state"
)

// taskStore is one store of a task.
type taskStore struct {
	spec   *StoreSpec
	engine state.Engine
	store  Store  // registered by the node that uses it
	topic  string // resolved changelog topic, "" without logging
	// last is the last changelog record sent since the previous commit;
	// after the producer flush it carries its offset.
	last *RawRecord
}

// ErrTaskLocked wraps state.ErrLocked: another instance still holds the
// task's state directory. The runtime retries until it is released.
var ErrTaskLocked = state.ErrLocked

func (t *Task) openStores(specs []*StoreSpec) error {
	if len(specs) == 0 {
		return nil
	}
	t.stores = make(map[string]*taskStore, len(specs))
	for _, sp := range specs {
		ts := &taskStore{spec: sp}
		if sp.Logging {
			ts.topic = ChangelogRef(sp.Name).Resolve(t.env.AppID)
		}
		if sp.Segments != nil {
			o := state.SegmentedOptions{Interval: sp.Segments.Interval, Retention: sp.Segments.Retention}
			if !sp.InMemory && t.env.StateDir != "" {
				if err := t.openDir(); err != nil {
					return err
				}
				o.Dir = t.dir.StorePath(sp.Name)
				o.LevelDB.Logger = t.log.With("store", sp.Name)
			}
			e, err := state.OpenSegmented(o)
			if err != nil {
				return err
			}
			ts.engine = e
		} else if sp.InMemory || t.env.StateDir == "" {
			ts.engine = state.NewMemory()
		} else {
			if err := t.openDir(); err != nil {
				return err
			}
			e, err := state.OpenLevelDB(t.dir.StorePath(sp.Name), state.LevelDBOptions{Logger: t.log.With("store", sp.Name)})
			if err != nil {
				return err
			}
			ts.engine = e
		}
		t.stores[sp.Name] = ts
		t.order = append(t.order, sp.Name)
	}
	if t.env.ExactlyOnce && t.dir != nil && t.dir.Unclean() {
		// The last owner on this machine did not close the task cleanly:
		// its stores may hold writes of a transaction that aborted.
		t.log.Warn("state directory not closed cleanly under exactly-once: wiping its stores, to restore them from the committed changelogs")
		for _, name := range t.order {
			if err := wipe(t.stores[name].engine); err != nil {
				return fmt.Errorf("wipe store %q: %w", name, err)
			}
		}
	}
	return nil
}

// markUnclean records, under exactly-once, that the task's stores may from
// now on hold writes their committed changelogs do not. The runtime calls
// it when the task starts running.
func (t *Task) markUnclean() error {
	if !t.env.ExactlyOnce || t.dir == nil {
		return nil
	}
	return t.dir.MarkUnclean()
}

// markClean records that the task's stores hold what their committed
// changelogs do. The runtime calls it after the task's last commit, before
// closing it.
func (t *Task) markClean() error {
	if !t.env.ExactlyOnce || t.dir == nil {
		return nil
	}
	return t.dir.MarkClean()
}

// StoreEngine returns the engine opened for a store of this task. Node
// factories layer their typed store over it.
func (t *Task) StoreEngine(name string) (state.Engine, *StoreSpec, error) {
	ts, ok := t.stores[name]
	if !ok {
		return nil, nil, fmt.Errorf("state store %q is not connected to this sub-topology", name)
	}
	sp := *ts.spec
	if sp.Options.Cache == nil {
		sp.Options.Cache = t.env.Cache
	}
	if sp.Options.OnForwardError == nil {
		sp.Options.OnForwardError = t.forwardFailed(name)
	}
	return ts.engine, &sp, nil
}

// Changelog returns the function that logs a store's changes to its
// changelog partition, or nil for a store without logging.
func (t *Task) Changelog(name string) state.Logger {
	ts, ok := t.stores[name]
	if !ok || ts.topic == "" {
		return nil
	}
	return func(key, value []byte) {
		ts.last = &RawRecord{Topic: ts.topic, Partition: t.ID.Partition, Key: key, Value: value, Timestamp: t.changelogTime()}
		t.env.Collector.Send(ts.last)
	}
}

func (t *Task) changelogTime() time.Time {
	if t.streamTime < 0 {
		return time.Now()
	}
	return time.UnixMilli(t.streamTime)
}

// RegisterStore records the typed store a node opened, so commits flush it
// and Processor API code can look it up.
func (t *Task) RegisterStore(name string, s Store) error {
	ts, ok := t.stores[name]
	if !ok {
		return fmt.Errorf("state store %q is not connected to this sub-topology", name)
	}
	if ts.store != nil {
		return fmt.Errorf("state store %q opened twice in task %s", name, t.ID)
	}
	ts.store = s
	return nil
}

// openDir opens and locks the task's state directory, once.
func (t *Task) openDir() error {
	if t.dir != nil {
		return nil
	}
	d, err := statedir.OpenTaskDir(t.env.StateDir, t.env.AppID, t.ID.String())
	if err != nil {
		return err
	}
	t.dir = d
	return nil
}

// Store returns a registered store by name.
func (t *Task) Store(name string) (Store, bool) {
	ts, ok := t.stores[name]
	if !ok || ts.store == nil {
		return nil, false
	}
	return ts.store, true
}

// HasStores reports whether the task has state to restore.
func (t *Task) HasStores() bool { return len(t.stores) > 0 }

// restore brings every logged store up to the end of its changelog,
// starting after the offset the store's engine last committed, or from the
// beginning when it has none. It must finish before the task processes.
func (t *Task) restore(ctx context.Context, r tasklife.ChangelogReader) error {
	var ends int64
	defer func() { t.ends = ends }()
	for _, name := range t.order {
		ts := t.stores[name]
		if ts.topic == "" {
			continue
		}
		from := int64(0)
		if v, ok, err := ts.engine.Meta(metaChangelogNext); err != nil {
			return err
		} else if ok {
			if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				from = n
			}
		}
		end, err := r.EndOffset(ctx, ts.topic, t.ID.Partition)
		if err != nil {
			return fmt.Errorf("restore store %q from %s: %w", name, ts.topic, err)
		}
		ends += end
		if from > end {
			// The changelog is shorter than the local state says: it was
			// deleted and recreated (an app reset). The local data belongs
			// to a log that is gone, so it is wiped and rebuilt.
			t.log.Warn("local store is ahead of its changelog; wiping it", "store", name, "topic", ts.topic,
				"local", from, "end", end)
			if err := wipe(ts.engine); err != nil {
				return fmt.Errorf("restore store %q: wipe: %w", name, err)
			}
			from = 0
		}
		if end <= from {
			continue
		}
		t.stats.RestoreTotal.Add(end - from)
		start := time.Now()
		lastLog := start
		before := t.stats.Restored.Load()
		logf := t.log.Info
		if t.standby {
			logf = t.log.Debug // a standby catches up every second
		}
		logf("restoring store", "store", name, "topic", ts.topic, "from", from, "to", end)
		var b state.Batch
		next, err := r.ReadChangelog(ctx, ts.topic, t.ID.Partition, from, end, func(recs []*RawRecord) error {
			// Written in chunks of at most restoreChunk bytes, each
			// with the changelog position it reaches: the batch and the
			// engine's copy of it stay small whatever the fetch size.
			for i := 0; i < len(recs); {
				b.Reset()
				for ; i < len(recs) && (b.Len() == 0 || b.Size() < restoreChunk); i++ {
					if rec := recs[i]; rec.Value == nil {
						b.Delete(rec.Key)
					} else {
						b.Put(rec.Key, rec.Value)
					}
				}
				b.SetMeta(metaChangelogNext, strconv.AppendInt(nil, recs[i-1].Offset+1, 10))
				if err := ts.engine.Write(&b); err != nil {
					return err
				}
			}
			t.stats.Restored.Add(int64(len(recs)))
			if now := time.Now(); now.Sub(lastLog) >= restoreLogEvery && len(recs) > 0 {
				lastLog = now
				logf("restoring store", "store", name, "offset", recs[len(recs)-1].Offset+1, "end", end,
					"records", t.stats.Restored.Load()-before)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("restore store %q from %s: %w", name, ts.topic, err)
		}
		logf("store restored", "store", name, "topic", ts.topic, "from", from, "to", next,
			"records", t.stats.Restored.Load()-before, "took", time.Since(start).Round(time.Millisecond))
	}
	return t.advanceSegmented()
}

// restoreChunk bounds the bytes of keys and values a restore writes to a
// store in one batch.
const restoreChunk = 1 << 20

// advanceSegmented moves the window and session stores to the task's
// stream time. A restore leaves a segmented store's observed time at the
// latest window it wrote, which lags the stream time the task committed
// with: until the next record advanced it, the store would show windows
// that had already fallen out of retention before the restart.
func (t *Task) advanceSegmented() error {
	if t.streamTime < 0 {
		return nil
	}
	for _, name := range t.order {
		if seg, ok := t.stores[name].engine.(*state.Segmented); ok {
			if err := seg.Advance(t.streamTime); err != nil {
				return fmt.Errorf("restore store %q: %w", name, err)
			}
		}
	}
	return nil
}

// wipe deletes every key of an engine and its changelog position, in
// batches.
func wipe(e state.Engine) error {
	var b state.Batch
	for {
		b.Reset()
		err := e.Range(nil, nil, func(k, _ []byte) bool {
			b.Delete(k)
			return b.Len() < 10000
		})
		if err != nil {
			return err
		}
		done := b.Len() < 10000
		if done {
			b.SetMeta(metaChangelogNext, []byte("0"))
		}
		if err := e.Write(&b); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// restoreLogEvery is how often a long restore logs its progress.
const restoreLogEvery = 5 * time.Second

// flushStores flushes every store's cache: changes are forwarded downstream
// and logged. It is the first step of a commit. A change whose forwarding
// fails (a downstream user function errs or panics) is handled by the
// error policy like a failed record (see forwardFailed), and the flush
// goes on with the rest; under FailFast the error stops it, and the
// changes not flushed yet stay cached for the next flush.
func (t *Task) flushStores() error {
	for _, name := range t.order {
		if s := t.stores[name].store; s != nil {
			if err := s.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// forwardFailed returns the OnForwardError handler of store name: a change
// the store flushed whose forwarding failed goes to the dead-letter topic
// with the store's encoded key and value, located by the store and the
// task, or stops the task under FailFast. The store holds the change and
// its changelog has it either way; only downstream missed it.
func (t *Task) forwardFailed(name string) func(key, value []byte, err error) error {
	return func(key, value []byte, err error) error {
		if pe, ok := errors.AsType[*state.PanicError](err); ok {
			err = &NodeError{Node: t.node, Err: &PanicError{Value: pe.Value, Stack: pe.Stack}}
		}
		return t.ForwardFailed(name, key, value, err)
	}
}

// commitStores writes each store's flushed changes to its engine together
// with the changelog position they reach. Call it after the producer flush
// acknowledged the changelog records.
func (t *Task) commitStores() error {
	var errs []error
	for _, name := range t.order {
		ts := t.stores[name]
		var meta map[string][]byte
		if ts.last != nil && ts.last.Offset >= 0 {
			meta = map[string][]byte{metaChangelogNext: strconv.AppendInt(nil, ts.last.Offset+1, 10)}
			ts.last = nil
		}
		if ts.store != nil {
			errs = append(errs, ts.store.Commit(meta))
		}
	}
	return errors.Join(errs...)
}

// positions returns the changelog offsets the task's logged stores have
// reached, summed, and the changelogs' end offsets at its last restore,
// summed.
func (t *Task) positions() (applied, end int64, err error) {
	for _, name := range t.order {
		ts := t.stores[name]
		if ts.topic == "" {
			continue
		}
		v, ok, err := ts.engine.Meta(metaChangelogNext)
		if err != nil {
			return 0, 0, err
		}
		if ok {
			n, _ := strconv.ParseInt(string(v), 10, 64)
			applied += n
		}
	}
	return applied, t.ends, nil
}
