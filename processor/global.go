package processor

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
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
// background until ctx is done. Tasks process nothing before it returns.
func (r *Runtime) startGlobals(ctx context.Context) error {
	if len(r.globals) == 0 {
		return nil
	}
	start := time.Now()
	parts := make(map[string]map[int32]kgo.Offset)
	ends := make(map[string]map[int32]int64)
	topics := make([]string, len(r.globals))
	for i, g := range r.globals {
		topics[i] = g.Topic
		parts[g.Topic], ends[g.Topic] = make(map[int32]kgo.Offset), make(map[int32]int64)
	}
	listed, err := kadm.NewClient(r.cl).ListEndOffsets(ctx, topics...)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return fmt.Errorf("processor: end offsets of global tables %v: %w", topics, err)
	}
	listed.Each(func(o kadm.ListedOffset) {
		parts[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		if o.Offset > 0 {
			ends[o.Topic][o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(append(slices.Clone(r.cfg.ClientOpts), kgo.ConsumePartitions(parts),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))...)
	if err != nil {
		return err
	}
	stores := make(map[string]*GlobalStore, len(r.globals))
	for _, g := range r.globals {
		stores[g.Topic] = r.env.Globals[g.Name]
	}
	apply := func(fs kgo.Fetches) error {
		var ferr error
		fs.EachError(func(topic string, p int32, err error) {
			ferr = fmt.Errorf("global table topic %s/%d: %w", topic, p, err)
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			stores[p.Topic].Apply(p.Records...)
			last := p.Records[len(p.Records)-1].Offset
			if end, ok := ends[p.Topic][p.Partition]; ok && last+1 >= end {
				delete(ends[p.Topic], p.Partition)
			}
		})
		return ferr
	}
	remaining := func() bool {
		for _, m := range ends {
			if len(m) > 0 {
				return true
			}
		}
		return false
	}
	for remaining() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			cl.Close()
			return ctx.Err()
		}
		if err := apply(fs); err != nil {
			cl.Close()
			return fmt.Errorf("processor: bootstrapping global tables: %w", err)
		}
	}
	for _, g := range r.globals {
		r.log.Info("global table bootstrapped", "table", g.Name, "topic", g.Topic, "rows", r.env.Globals[g.Name].Len(), "took", time.Since(start).Round(time.Millisecond))
	}
	r.globalsDone.Add(1)
	go func() {
		defer r.globalsDone.Done()
		defer cl.Close()
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			if err := apply(fs); err != nil {
				r.log.Warn("reading global tables", "error", err)
			}
		}
	}()
	return nil
}
