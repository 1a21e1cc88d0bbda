// Package query reads a running app's state stores from outside its
// topology: interactive queries, as in Kafka Streams.
//
// Typed reads of the stores of the tasks this instance runs:
//
//	counts, err := query.KeyValue[string, int64](app.Stores(), "counts")
//	n, ok, err := counts.Get("article-7")
//
//	perMinute, err := query.Window[string, int64](app.Stores(), "per-minute")
//	err = perMinute.Fetch("article-7", from, to, func(start, end time.Time, n int64) bool { ... })
//
// A read sees the latest processed value, including what the record cache
// holds and has not written to LevelDB yet; it runs between two records of
// the key's task, so it never sees half of one. A key whose task runs on
// another instance gets a *NotAvailableError wrapping ErrNotLocal that
// names that instance's endpoint; a key whose task is restoring or moving
// in a rebalance gets one wrapping ErrNotReady. A store name the topology
// does not have gets ErrUnknownStore; wrong types get ErrWrongType.
//
// Each instance advertises its endpoint (kappa.HTTP, kappa.ApplicationServer)
// to the group, and every instance learns with each assignment which
// instance runs each task: Stores.Metadata (kappa.App.Metadata) says where a
// key lives. Stores.Handler is the HTTP API that kappa.HTTP serves, under
// /v1/stores: any instance answers any key, forwarding it to the owner in
// one hop, and gathers a range from every instance. See docs/queries.md.
package query
