package processor

import (
	"fmt"
	"slices"
	"sync"
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
