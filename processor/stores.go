package processor

import (
	"github.com/kappa-streams/kappa/state"
)

// StoreSpec declares a state store of a topology.
type StoreSpec struct {
	Name string
	// InMemory selects the memory engine instead of LevelDB. Its data is
	// rebuilt from the changelog whenever its task opens.
	InMemory bool
	// Logging backs the store with the compacted changelog topic
	// "<app>-<name>-changelog", from which it is restored.
	Logging bool
	// ChangelogConfigs are extra configs of the changelog topic.
	ChangelogConfigs map[string]string
	// Options tune the store's cache.
	Options state.Options
	// Segments, when set, makes the engine a *state.Segmented: a window
	// or session store whose data expires by time.
	Segments *SegmentSpec
	// Keys parses and encodes the store's keys, for interactive queries:
	// a key's encoding gives its partition. nil makes the store
	// unqueryable by key.
	Keys state.Keys
}

// SegmentSpec sizes the segments of a window or session store, in ms.
type SegmentSpec struct {
	Interval, Retention int64
}

// Store is the runtime's view of an open store: the typed stores of package
// state implement it.
type Store interface {
	Name() string
	// Flush forwards and logs the cached changes.
	Flush() error
	// Commit writes flushed changes to the engine, with meta.
	Commit(meta map[string][]byte) error
	Close() error
}

// metaChangelogNext is the engine metadata key holding the changelog offset
// the next restore starts at.
const metaChangelogNext = "changelog.next"
