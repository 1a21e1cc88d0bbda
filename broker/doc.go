// Package broker connects Kappa to Kafka: an embedded single-node broker for
// development and tests, connections to external clusters, and the topic
// administration a topology needs.
//
// # Embedded
//
// [NewEmbedded] starts a Kafka-protocol broker inside the process (franz-go's
// kfake). It needs nothing installed, listens on loopback (port 0 picks a free
// port), and with [DataDir] keeps its log across restarts. Any Kafka client,
// kcat included, can talk to it. The `kappa broker` command runs one
// standalone so several processes on one machine can join one group.
//
//	b, err := broker.NewEmbedded(broker.Listen("127.0.0.1:0"))
//	if err != nil { ... }
//	defer b.Close()
//	seeds := b.Addrs()
//
// # External clusters
//
// [Connect] dials a cluster with optional TLS and SASL (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512) and checks that it answers, so a wrong address or credential
// fails at startup rather than on the first record.
//
// # Topics
//
// [Admin] lists, describes and creates topics. [Admin.EnsureTopics] creates
// what is missing and reports a [*TopicMismatchError] for an existing topic
// whose partition count or cleanup policy is not what the topology needs.
package broker
