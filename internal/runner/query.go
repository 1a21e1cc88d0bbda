// Interactive queries: reads of the stores of this instance's running
// tasks from other goroutines, and the owners of the others.

package runner

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/kappa-streams/kappa/internal/tasklife"
	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/query"
	"github.com/kappa-streams/kappa/state"
)

// queryRetry is the retry hint for a store that is not ready.
const queryRetry = time.Second

// storeTask returns the sub-topology holding store and its task count.
func (r *Runtime) storeTask(store string) (sub int, n int32, err error) {
	spec, sub, ok := r.cfg.Topology.Store(store)
	if !ok || spec == nil || sub < 0 || sub >= len(r.cfg.Plan.Tasks) {
		return 0, 0, fmt.Errorf("%w: %q", query.ErrUnknownStore, store)
	}
	return sub, r.cfg.Plan.Tasks[sub], nil
}

// Partitions implements query.Backend.
func (r *Runtime) Partitions(store string) (int32, error) {
	_, n, err := r.storeTask(store)
	return n, err
}

// Read implements query.Backend. It takes no lock of the runtime: the
// task set is the published view, and the task's own lock keeps the read
// between two records.
func (r *Runtime) Read(store string, partition int32, fn func(state.Reader) error) error {
	sub, n, err := r.storeTask(store)
	if err != nil {
		return err
	}
	if partition < 0 || partition >= n {
		return fmt.Errorf("query: store %q has partitions 0 to %d, not %d", store, n-1, partition)
	}
	id := processor.TaskID{SubTopology: sub, Partition: partition}
	unavailable := func(reason error) error {
		owner, _ := r.Owner(store, partition)
		e := &query.NotAvailableError{Store: store, Partition: partition, Owner: owner, Reason: reason}
		if reason == query.ErrNotReady {
			e.RetryAfter = queryRetry
		}
		return e
	}
	var rt *runTask
	for _, t := range r.tasksView() {
		if t.id == id {
			rt = t
			break
		}
	}
	if rt == nil {
		if owner, _ := r.Owner(store, partition); owner == "" || owner == r.cfg.Endpoint {
			return unavailable(query.ErrNotReady) // assigned to nobody yet, or to us and not started
		}
		return unavailable(query.ErrNotLocal)
	}
	task := rt.published.Load()
	if task == nil || rt.stateOf() != processor.TaskRunning {
		return unavailable(query.ErrNotReady)
	}
	err = task.Lifecycle(tasklife.K).Read(store, func(s any) error {
		rd, ok := s.(interface{ Reader() state.Reader })
		if !ok {
			return fmt.Errorf("%w: %q is a %T, which queries cannot read", query.ErrUnknownStore, store, s)
		}
		return fn(rd.Reader())
	})
	if err == state.ErrClosed {
		return unavailable(query.ErrNotReady) // closed since: moving or reopening
	}
	return err
}

// Owner implements query.Backend.
func (r *Runtime) Owner(store string, partition int32) (string, bool) {
	sub, _, err := r.storeTask(store)
	if err != nil {
		return "", false
	}
	id := processor.TaskID{SubTopology: sub, Partition: partition}
	for _, t := range r.tasksView() {
		if t.id == id {
			return r.cfg.Endpoint, true
		}
	}
	if h := r.hosts.Load(); h != nil {
		e := (*h)[id]
		return e, e != "" && e == r.cfg.Endpoint
	}
	return "", false
}

// Endpoints implements query.Backend.
func (r *Runtime) Endpoints() []string {
	set := map[string]bool{}
	if r.cfg.Endpoint != "" {
		set[r.cfg.Endpoint] = true
	}
	if h := r.hosts.Load(); h != nil {
		for _, e := range *h {
			if e != "" {
				set[e] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Self implements query.Backend.
func (r *Runtime) Self() string { return r.cfg.Endpoint }

// setHosts keeps the endpoints of the task owners and of their standby
// copies from the latest assignment.
func (r *Runtime) setHosts(h map[processor.TaskID]string, standby map[processor.TaskID][]string) {
	r.standbyHosts.Store(&standby)
	r.hosts.Store(&h)
}

// StandbyOwners implements query.Backend.
func (r *Runtime) StandbyOwners(store string, partition int32) []string {
	sub, _, err := r.storeTask(store)
	if err != nil {
		return nil
	}
	if h := r.standbyHosts.Load(); h != nil {
		return slices.Clone((*h)[processor.TaskID{SubTopology: sub, Partition: partition}])
	}
	return nil
}

// Joined reports whether the instance has received an assignment from
// its group.
func (r *Runtime) Joined() bool { return r.hosts.Load() != nil }
