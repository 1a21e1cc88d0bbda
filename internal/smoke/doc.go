// Package smoke is Kappa's multi-process crash test harness, in the manner
// of Kafka Streams' StreamsSmokeTest and EosTestDriver: a topology that
// exercises every kind of operator, an input whose results are known in
// closed form, and a verifier that reads every output topic and checks the
// guarantee the app ran under. The driver that starts app instances as OS
// processes, kills and restarts them, is the smoke_test.go of internal/integration;
// one instance is the program cmd/smokeapp.
//
// # How the pieces fit
//
//   - [Topology] builds the app: an echo of the input, per-key count, sum,
//     min, max and distinct-value aggregations, a count per group of keys
//     behind a repartition topic, and a tumbling-window count per key.
//   - [Input] generates the records: Keys keys, each with the values
//     0..Values-1 in order, with increasing event times. Its Phase splits
//     them for producing while instances crash, and [Input.Truth] gives the
//     results of processing every record once.
//   - The smokeapp program runs one instance and prints a [Status] line on
//     stdout whenever its tasks or their readiness change, so a driver can
//     wait for a rebalance to settle on a condition rather than a sleep.
//   - [GroupLag] says how far the group's committed offsets are from the
//     ends of its input and repartition topics: the driver waits for zero.
//     Under exactly-once it looks past transaction markers, which take
//     offsets no consumer commits.
//   - [OpenTransactions] lists the partitions of the app's topics on which
//     a transaction is open: under exactly-once, none once the instances
//     have stopped and the transactions of killed ones have timed out.
//   - [Read] fetches the input, every output topic and the dead-letter
//     topic to their ends (committed records only under exactly-once),
//     and [Check] tests the records against the truth and the
//     [Guarantee]: the invariants are listed there.
//
// # Guarantees
//
// Both of Kappa's guarantees run here: [ParseGuarantee] names them for
// the smokeapp program's -guarantee flag. Under [AtLeastOnce], [Check]
// allows duplicates and results above the truth; under [ExactlyOnce] it
// allows neither, and checks in the manner of Kafka Streams'
// EosTestDriver that the echo equals the input in order and that every
// key's results step through its running aggregate.
//
// # Example
//
//	in := smoke.Input{}.WithDefaults()
//	for p := range 4 {
//		produce(in.Phase(p, 4)) // while instances run and crash
//	}
//	// ... wait until smoke.GroupLag reports zero, stop the instances ...
//	out, err := smoke.Read(ctx, seeds, appID, smoke.ExactlyOnce)
//	res := smoke.Check(in, smoke.ExactlyOnce, out)
//	if err := res.Err(); err != nil { ... }
package smoke
