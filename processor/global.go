package processor

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// GlobalSpec declares a global table: a topic that every instance reads
// whole, from every partition, into a store that every task can read. It
// needs no co-partitioning, so joins with it can look rows up by any key.
type GlobalSpec struct {
	// Name names the table's store.
	Name string
	// Topic is the topic read; a nil value deletes its key.
	Topic string
}

// AddGlobal declares a global table.
func (b *Builder) AddGlobal(spec GlobalSpec) {
	switch {
	case spec.Name == "" || spec.Topic == "":
		b.Errorf("global table: empty name or topic")
		return
	case slices.ContainsFunc(b.globals, func(g GlobalSpec) bool { return g.Name == spec.Name || g.Topic == spec.Topic }):
		b.Errorf("global table %q on %q: name or topic used twice; read a topic into one global table", spec.Name, spec.Topic)
		return
	}
	b.globals = append(b.globals, spec)
}

// Globals returns the topology's global tables.
func (t *Topology) Globals() []GlobalSpec { return slices.Clone(t.globals) }

// GlobalStore holds the rows of a global table as encoded keys and values.
// It is written by the instance's global reader and read by every task,
// so it is safe for concurrent use.
type GlobalStore struct {
	mu   sync.RWMutex
	rows map[string][]byte
}

// NewGlobalStore returns an empty store.
func NewGlobalStore() *GlobalStore { return &GlobalStore{rows: make(map[string][]byte)} }

// Get returns the encoded value of an encoded key.
func (g *GlobalStore) Get(key []byte) ([]byte, bool) {
	g.mu.RLock()
	v, ok := g.rows[string(key)]
	g.mu.RUnlock()
	return v, ok
}

// Apply writes records in order: a nil value deletes the key.
func (g *GlobalStore) Apply(recs ...*RawRecord) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range recs {
		if r.Value == nil {
			delete(g.rows, string(r.Key))
		} else {
			g.rows[string(r.Key)] = r.Value
		}
	}
}

// Len returns the number of rows.
func (g *GlobalStore) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.rows)
}

// GlobalStore returns the global table name of the task's instance.
func (t *Task) GlobalStore(name string) (*GlobalStore, error) {
	g, ok := t.env.Globals[name]
	if !ok {
		return nil, fmt.Errorf("global table %q is not open in this instance", name)
	}
	return g, nil
}

// startGlobals reads every global table's topic to its end offsets as of
// the call (the bootstrap), then keeps applying new records in the
// background, on the instance's changelog reader, until the runtime shuts
// down. Tasks process nothing before it returns.
func (r *Runtime) startGlobals(ctx context.Context) error {
	if len(r.globals) == 0 {
		return nil
	}
	start := time.Now()
	topics := make([]string, len(r.globals))
	stores := make(map[string]*GlobalStore, len(r.globals))
	for i, g := range r.globals {
		topics[i] = g.Topic
		stores[g.Topic] = r.env.Globals[g.Name]
	}
	listed, err := kadm.NewClient(r.cl).ListEndOffsets(ctx, topics...)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return fmt.Errorf("processor: end offsets of global tables %v: %w", topics, err)
	}
	// behind counts the partitions not read up to their listed end yet.
	var mu sync.Mutex
	behind := 0
	caughtUp := make(chan struct{})
	var subs []*changelogSub
	var tps []topicPartition
	var firstErr error
	listed.Each(func(o kadm.ListedOffset) {
		if firstErr != nil {
			return
		}
		end := o.Offset
		store := stores[o.Topic]
		reached := end <= 0
		if !reached {
			behind++
		}
		sub, err := r.changelogs.read(o.Topic, o.Partition, 0, -1, func(recs []*RawRecord) error {
			store.Apply(dataRecords(recs)...)
			// The last offset counts markers too: a topic written in
			// transactions may end with one.
			if !reached && recs[len(recs)-1].Offset+1 >= end {
				reached = true
				mu.Lock()
				if behind--; behind == 0 {
					close(caughtUp)
				}
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			firstErr = err
			return
		}
		subs, tps = append(subs, sub), append(tps, topicPartition{o.Topic, o.Partition})
	})
	mu.Lock()
	if behind == 0 {
		close(caughtUp)
	}
	mu.Unlock()
	if firstErr != nil {
		return fmt.Errorf("processor: bootstrapping global tables: %w", firstErr)
	}
	// A read that fails ends the bootstrap with its error; after the
	// bootstrap, such a failure is logged and the table stops updating.
	failed := make(chan error, 1)
	for i, sub := range subs {
		go func() {
			err, ok := <-sub.done
			if !ok || err == nil {
				return
			}
			select {
			case failed <- err:
			default:
			}
			r.log.Warn("reading global table", "topic", tps[i].topic, "partition", tps[i].partition, "error", err)
		}()
	}
	select {
	case <-caughtUp:
	case err := <-failed:
		return fmt.Errorf("processor: bootstrapping global tables: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, g := range r.globals {
		r.log.Info("global table bootstrapped", "table", g.Name, "topic", g.Topic, "rows", r.env.Globals[g.Name].Len(), "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}
