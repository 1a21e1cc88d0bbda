// Package ksdiff checks Kappa against Kafka Streams: the same seeded,
// out-of-order input goes through Kafka Streams 4.4 and through Kappa, on
// one Apache Kafka broker, and their results must be equal. Kafka Streams
// serves as a second oracle, beside the brute-force recomputations of the
// unit tests. The package holds only its test.
//
// # What it compares
//
// Each topology runs on both sides over the same input topics:
//
//   - tumbling: a windowed count with grace and final results (Kappa's
//     EmitFinal against Kafka Streams' suppress(untilWindowCloses));
//   - session: a session-windowed count, every update, merged sessions
//     deleted;
//   - session-final: the same with EmitFinal, against suppress;
//   - stream-table: a stream joined with a table (JoinTable / KStream.join);
//   - table-table: two tables joined (JoinTables / KTable.join);
//   - rekey-count: a count after a re-key (SelectKey then GroupByKey, through
//     a repartition topic on both sides).
//
// Each input is generated from a seed (1, 2 and 3; KSDIFF_SEEDS=4,5 picks
// others) over three partitions: timestamps out of order within the grace
// period, some records beyond it that both must drop, times on a 250 ms
// grid so that records land exactly on window ends and grace limits,
// tombstones in the joins and the re-keyed count, and deletes in the tables.
// Windowed inputs end with one flush record per partition an hour after
// the last record, so that every window closes; both sides read the same
// flush records. The final value of every key and window must be equal,
// final results must be emitted once, and the stream-table join must emit
// the same records per key in the same order.
//
// # Differences
//
// The crafted cases (differences_test.go) are minimal inputs on which the
// two differ, each named with the reason, and pin both sides' results, so
// that a difference that goes away shows up too: null values counted in
// windows by Kafka Streams only; sessions at exactly end + gap + grace,
// which Kafka Streams' store no longer returns although its aggregation
// still takes records for them; sessions that Kafka Streams'
// emitStrategy(onWindowClose) never emits; records that extend an open
// session backwards from beyond gap + grace. The generated inputs stay
// clear of these (see genSessions). docs/design.md sums them up.
//
// # How the apps run
//
// One Kafka Streams instance (KsDiff, a child JVM, one stream thread) and
// one Kappa app (in process) hold every case as a sub-topology of their
// own, and read the input at the same time. Both run at-least-once with a
// commit every 100 ms, Kafka Streams without a record cache, so that every
// update is forwarded. At-least-once because nothing fails here, so each
// side produces every result once, and because without transactions the
// topics hold no commit markers: a group has read everything exactly when
// its committed offsets equal the end offsets of its input and repartition
// topics, and each side acknowledges its output before it commits the
// input behind it. The test waits for that, then reads the outputs to
// their ends. Under exactly-once the same wait would need read_committed
// and offsets past the markers, and transactions would only slow both
// sides on a shared machine.
//
// # Running it
//
// The test needs java (17 or newer), the jar of the Kafka Streams side, and
// the Apache Kafka broker's jars of internal/kafkacluster (one node):
//
//	internal/ksdiff/java/build.sh        # Maven: target/ksdiff.jar
//	internal/kafkacluster/fetch.sh       # Maven: the broker's jars
//	go test ./internal/ksdiff/ -v -count=1
//
// Without them it skips, saying which is missing and how to get it, unless
// CI is set, when it fails. Under -short it skips: it starts two JVMs and
// takes half a minute to a minute.
package ksdiff
