package runner

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa/metrics"
	"github.com/kappa-streams/kappa/processor"
	"github.com/twmb/franz-go/pkg/kadm"
)

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
	stores := make(map[string]*processor.GlobalStore, len(r.globals))
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
	var nexts []*atomic.Int64
	var applies []func([]*processor.RawRecord) error
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
		next := new(atomic.Int64)
		apply := func(recs []*processor.RawRecord) error {
			store.Apply(dataRecords(recs)...)
			next.Store(recs[len(recs)-1].Offset + 1)
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
		}
		sub, err := r.changelogs.read(o.Topic, o.Partition, 0, -1, apply)
		if err != nil {
			firstErr = err
			return
		}
		subs, tps = append(subs, sub), append(tps, topicPartition{o.Topic, o.Partition})
		nexts, applies = append(nexts, next), append(applies, apply)
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
	// bootstrap, it is started again from where it stopped, with backoff,
	// until the runtime stops.
	failed := make(chan error, 1)
	readings := make(map[string]*globalReading, len(r.globals))
	var all []*globalReading
	for _, g := range r.globals {
		gr := &globalReading{name: g.Name}
		readings[g.Topic] = gr
		all = append(all, gr)
	}
	if r.cfg.Metrics != nil {
		r.cfg.Metrics.globals.Store(&all)
	}
	bootstrapped := make(chan struct{})
	for i, sub := range subs {
		tp := tps[i]
		go r.tailGlobal(tp, sub, nexts[i], applies[i], readings[tp.topic], bootstrapped, failed)
	}
	defer close(bootstrapped)
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

// globalReading is the state of one global table's reading, for the
// metrics.
type globalReading struct {
	name   string
	errors atomic.Int64
	// failingSince is when the reading of one of the table's partitions
	// last failed (Unix nanoseconds), 0 while every one reads.
	failingSince atomic.Int64
}

func (g *globalReading) snapshot() metrics.Global {
	out := metrics.Global{Name: g.name, ReadErrors: g.errors.Load()}
	if since := g.failingSince.Load(); since > 0 {
		out.Stale = time.Since(time.Unix(0, since))
	}
	return out
}

// tailGlobal watches the reading sub of a global table's partition. A
// read that fails during the bootstrap (bootstrapped not closed yet) ends
// it with the error, on failed; after it, the read is started again from
// the offset after the last record applied (next), with backoff from
// 100ms to 5s, until the runtime stops. Meanwhile the table keeps what it
// had, and the metrics say how long it has been failing.
func (r *Runtime) tailGlobal(tp topicPartition, sub *changelogSub, next *atomic.Int64, apply func([]*processor.RawRecord) error,
	g *globalReading, bootstrapped <-chan struct{}, failed chan<- error) {
	backoff := 100 * time.Millisecond
	failedAt := int64(-1) // next's value at the last failure
	for {
		var err error
		var ok bool
		select {
		case err, ok = <-sub.done:
		case <-r.stopGlobals:
			return
		}
		if !ok || err == nil {
			return
		}
		select {
		case <-r.stopGlobals:
			return // the reader closed under it
		default:
		}
		select {
		case <-bootstrapped:
		default:
			select {
			case failed <- err:
			default:
			}
			return
		}
		if next.Load() > failedAt {
			backoff = 100 * time.Millisecond // it read rows since the last failure
		}
		failedAt = next.Load()
		for {
			g.errors.Add(1)
			g.failingSince.CompareAndSwap(0, time.Now().UnixNano())
			r.log.Warn("reading global table failed; reading it again", "topic", tp.topic, "partition", tp.partition,
				"from", next.Load(), "in", backoff, "error", err)
			select {
			case <-r.stopGlobals:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			sub, err = r.changelogs.read(tp.topic, tp.partition, next.Load(), -1, apply)
			if err == nil {
				break
			}
		}
		g.failingSince.Store(0)
	}
}
