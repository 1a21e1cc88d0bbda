// Package streamtest runs a topology in memory, deterministically, with no
// broker: pipe typed records into inputs, read typed records from outputs,
// and inspect dead letters.
//
// The driver runs the same task code as a kappa.App: the same decoding,
// operators, partitioning (murmur2 of the encoded key) and dead-letter
// routing. Inputs may have several partitions ([Partitions]); records
// written to repartition topics are processed before Pipe returns.
//
//	d, err := streamtest.New(topo, streamtest.Partitions("clicks", 4))
//	in := streamtest.NewInput(d, "clicks", codec.String(), codec.JSON[Click]())
//	out := streamtest.NewOutput(d, "clicks-by-article", codec.String(), codec.JSON[Click]())
//	in.Pipe("user-1", Click{ArticleID: "a1"})
//	recs := out.ReadAll()
//	bad := d.DeadLetters()
//
// # Testing under pressure
//
// By default the driver commits after every record and its stores share a
// 32 MiB cache, so every update shows at once and nothing is evicted: the
// easiest results to read, and the least like a running app. Stateful
// tests should also run the way an app runs when it is busy, where
// results hide between commits and caches evict:
//
//   - [ManualCommit] with [Driver.Commit] at chosen (or random) points;
//   - [CacheBytes] of a few bytes, so that stores evict at almost every
//     write, or [NoCache] to forward every update at once;
//   - [Driver.CloseTasks] between records, a clean restart: the next
//     records reopen the tasks and restore their stores from the
//     changelogs;
//   - [Input.PipeTo] to write a record into a partition its key does not
//     hash to, and [Input.Tombstone] or a [processor.Record] with
//     Tombstone set for deletes.
//
// Kappa's own oracle tests run every stateful operator this way, with
// user functions that fail on some keys, and compare the results with a
// brute-force recomputation.
package streamtest
