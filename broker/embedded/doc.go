// Package embedded runs a Kafka-protocol broker inside the process
// (franz-go's kfake), for development, tests and single-machine
// deployments. It needs nothing installed, listens on loopback (port 0
// picks a free port), and with [DataDir] keeps its log across restarts.
// Any Kafka client, kcat included, can talk to it. The `kappa broker`
// command runs one standalone so several processes on one machine can
// join one group.
//
//	b, err := embedded.New(embedded.Listen("127.0.0.1:0"))
//	if err != nil { ... }
//	defer b.Close()
//	seeds := b.Addrs()
//
// # Crashes
//
// [Broker.Close] leaves a mark in the data directory. A start without it
// (the last run crashed) writes, before it lets clients in, an ABORT marker
// for every transaction the crash left open, as Kafka's transaction
// coordinator does; read_committed consumers would otherwise skip the
// later, committed transactions of the same producers.
//
// It lives apart from package broker so that an app that dials a cluster
// links none of it.
package embedded
