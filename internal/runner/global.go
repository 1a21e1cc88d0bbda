package runner

import (
	"context"
	"fmt"
	"sync"
	"time"

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
		sub, err := r.changelogs.read(o.Topic, o.Partition, 0, -1, func(recs []*processor.RawRecord) error {
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
