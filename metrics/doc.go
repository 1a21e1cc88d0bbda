// Package metrics holds Kappa's Prometheus collectors and the names of
// their metrics. docs/metrics.md lists every metric with its type, labels
// and meaning.
//
// An app exports its metrics by itself: kappa.New registers them in a
// registry of the app's own, or in the one given with
// kappa.MetricsRegistry, and the app's HTTP listener serves them on
// /metrics. This package is for what sits underneath, and for code that
// wants the names.
//
// # How metrics are kept
//
// Nothing is written to a Prometheus metric per record. Tasks count into
// plain atomic counters ([Counts]) and lock-free histograms ([Histogram])
// that they keep anyway, and a scrape reads them all into an [Instance]
// snapshot that [NewCollector] turns into Prometheus metrics. A record
// costs a few uncontended atomic additions; a scrape costs a walk over
// the instance's tasks.
//
// Counters are per instance and cumulative: a task that moves to another
// instance and comes back, or closes and reopens, continues from its
// earlier counts, so no series goes backwards while the process runs.
//
// # Histograms
//
// Every histogram has the same exponential buckets, [BucketBounds]:
// 100µs·2^i up to 105s. Observing a duration picks its bucket from its bit
// length, with no search. The clock is what costs: processing is timed per
// batch, and the end-to-end latency on one record sent in 16.
//
// # Example
//
//	reg := prometheus.NewRegistry()
//	app, err := kappa.New(topo, kappa.AppID("clicks"), kappa.Brokers(addr),
//		kappa.MetricsRegistry(reg))
//	// ... serve promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), or let
//	// the app's HTTP listener serve /metrics.
package metrics
