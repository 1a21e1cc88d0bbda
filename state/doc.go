// Package state holds the stores behind stateful operators: the engines
// that keep the bytes, and the typed layers that cache, changelog and meter
// them. Stores belong to one task and are used from its goroutine; the
// processor runtime opens, restores, commits and closes them.
//
// Engines (Engine) are sorted byte maps written in atomic batches:
// LevelDB (OpenLevelDB, persistent, the default), Memory (NewMemory,
// rebuilt from the changelog when its task opens) and Segmented
// (OpenSegmented), which splits time-keyed data into one engine per
// interval of time so that data out of retention goes by dropping whole
// segments. A batch carries the changelog offset its data reaches, so the
// two never disagree.
//
// Typed stores layer over an engine:
//
//   - KV is a key-value store with a record cache that merges updates of a
//     key between commits, forwards flushed changes (aggregations emit
//     them downstream) and logs them to the changelog.
//   - Windows is a KV over a Segmented engine, keyed by record key and
//     window (WindowKey): the store of windowed and session aggregations
//     and of Processor API window stores.
//   - Records keeps single records by key, time and sequence number, for
//     the two sides of a stream-stream join: every write is logged at once,
//     and records stay in memory, indexed by key, so that matching rarely
//     reads the engine.
//
// The caches of all the stores of an instance share one byte budget
// (Cache), as Kafka Streams' statestore.cache.max.bytes. The runtime locks
// a task's state directory while a task or standby uses it.
//
// # Store directories
//
// A task's directory holds one directory per persistent store: a LevelDB
// store's is the LevelDB's; a Segmented store's holds meta/, the LevelDB
// of its metadata, and one LevelDB per segment, named after the segment's
// start time in ms. Each also holds KAPPA-STORE, a format marker (JSON:
// the kind, "leveldb" or "segmented", and the format version), which
// OpenLevelDB and OpenSegmented check. A directory of the other kind (a
// topology change gave a window store a key-value store's name), of a
// newer format version, or that goleveldb reports corrupt is deleted and
// the store opens empty: the runtime restores it from the start of its
// changelog, as the position it restores from is in the store's own
// metadata. The reason, wrapping ErrUnusableStore, is logged to
// LevelDBOptions.Logger. Directories written before markers existed are
// recognised by their files and marked, keeping their data.
package state
