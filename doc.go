// Package kappa runs stream-processing topologies on Kafka, in the manner of
// Kafka Streams, for Go.
//
// A program builds a typed topology with package stream, then runs it with
// an App. The App joins a consumer group named by its AppID; every instance
// started with the same AppID shares the work, one task per input partition,
// and takes over the tasks of instances that stop.
//
//	b := stream.NewBuilder()
//	clicks := stream.From(b, "clicks", codec.String(), codec.JSON[Click]())
//	human := clicks.Filter(func(_ string, c Click) bool { return !c.Bot })
//	stream.SelectKey(human, func(_ string, c Click) string { return c.ArticleID }).
//		To("clicks-by-article")
//	topo, err := b.Build() // every DSL mistake, each naming its operator
//	if err != nil { ... }
//	app, err := kappa.New(topo, kappa.AppID("click-router"), kappa.Brokers(addrs...))
//	if err != nil { ... } // every bad option, each naming the fix
//	err = app.Run(ctx) // until ctx is done or SIGINT/SIGTERM; nil after a clean commit
//
// # Brokers
//
// Kappa talks to any Kafka-protocol cluster through franz-go. For
// development and tests, package broker starts an embedded single-node
// broker in the process, and the kappa command runs one standalone.
//
// # Guarantees
//
// Processing is at-least-once by default: on every commit (CommitInterval,
// default 30s; on rebalance; on shutdown) all output and dead-letter
// records are acknowledged by the brokers before the input offsets that
// produced them are committed. A crash reprocesses the input since the
// last commit; a graceful stop or rebalance reprocesses nothing.
//
// Guarantee(ExactlyOnce) makes each commit interval (100ms by default) one
// Kafka transaction over the outputs, changelog and repartition records
// and the input offsets: consumers that read committed data see every
// record's effects exactly once, whatever crashes.
//
// # Moving tasks
//
// StandbyReplicas(n) keeps warm copies of each stateful task on n other
// instances, so that a task taken over after a crash, or moved to an
// instance that joins, opens with little or nothing to restore. Without
// them too, a task the balance moves to an instance that joins stays with
// its owner until the new instance has warmed up a copy of its stores
// (MaxWarmupReplicas bounds how many at once, default 2).
// InstanceID makes an instance a static member: restarted within the
// session timeout, it gets its tasks back without a rebalance.
//
// # Bad records
//
// A record that fails to decode, or whose processing returns an error or
// panics, goes to the dead-letter topic "<app>-dlq" with its original key,
// value and headers plus headers naming the error (kappa.error,
// kappa.error.kind, kappa.node, kappa.topic, kappa.partition,
// kappa.offset, kappa.task). Processing continues. OnError(FailFast)
// stops the app instead with a *processor.RecordError.
//
// # Queries, metrics and probes
//
// HTTP("127.0.0.1:8080") opens one listener per instance with /metrics
// (Prometheus, kappa_* metrics; see MetricsRegistry), /healthz, /readyz
// (ready once joined and every task restored), /topology (text, DOT or
// Mermaid) and the interactive-query API under /v1/stores (package query):
// any instance answers a key of any store, asking the instance that holds
// it. App.Stores gives typed reads of the local stores, and App.Metadata
// says where a key lives. Handle adds the app's own endpoints to the same
// listener. Dead-lettered records are counted and logged, at most one line
// per task every few seconds.
//
// # Topics
//
// Input topics must exist. The App creates its internal topics (repartition
// topics and the dead-letter topic, all prefixed "<app>-") and any missing
// output topic, with the partition count of the sub-topology writing it. An
// existing internal topic with the wrong partition count or cleanup policy
// is a startup error naming the topic.
package kappa
