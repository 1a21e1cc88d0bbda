// Package kafkacluster runs a real Apache Kafka cluster for tests: three
// KRaft nodes on loopback, each a broker and a controller in a JVM of its
// own, that a test can kill, stop, restart and pause. The embedded broker
// (kafkatest.Broker) is quicker and enough for most tests; this package is
// for the ones that must hold against the real thing: replication, leader
// elections, transactions and group coordination as Kafka does them.
//
// # Getting Kafka
//
// The broker comes from Maven Central, as jars: pom.xml names
// org.apache.kafka:kafka_2.13 (the version is [Version]) and the log4j2
// binding it needs at run time. From the repository root,
//
//	internal/kafkacluster/fetch.sh
//
// runs
//
//	mvn -q -f internal/kafkacluster/pom.xml dependency:copy-dependencies -DoutputDirectory=<cache>/kafka-<version>/libs
//
// once (it does nothing when the jars are there) and prints the directory.
// It needs mvn; the tests need java 17 or newer.
//
// The environment:
//
//   - KAPPA_KAFKA_CACHE: where the jars are kept, by default
//     ~/.cache/kappa/kafka ($XDG_CACHE_HOME/kappa/kafka where that is set).
//   - KAPPA_KAFKA_FETCH=1: a test that finds no jars runs fetch.sh itself.
//   - KAPPA_JAVA: the java binary to run, by default java from PATH.
//   - CI: when set, a test that cannot start the cluster, for want of java
//     or the jars, fails; when not, it skips saying how to get them.
//
// # Use
//
// [Start] starts a cluster for one test and stops it when the test ends:
//
//	func TestFailover(t *testing.T) {
//		c := kafkacluster.Start(t)
//		cl, _ := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
//		// ... create a topic, produce ...
//		leader, err := c.Leader("orders", 0)
//		// ...
//		c.Kill(leader)
//		// ... acks=all writes go on with two of three replicas ...
//		c.Restart(leader)
//	}
//
// Three JVMs take seconds to start, so the tests of a package that only
// read and write can share one cluster, started when the first of them
// asks for it and stopped when they are done:
//
//	func TestMain(m *testing.M) { os.Exit(kafkacluster.RunShared(m)) }
//
//	func TestJoin(t *testing.T) {
//		c := kafkacluster.Shared(t)
//		// ...
//	}
//
// # Faults
//
// Nodes are numbered from 0, and node i has broker ID i. [Cluster.Kill]
// sends SIGKILL, as a crash would; [Cluster.StopNode] sends SIGTERM, and
// the broker hands its leaderships over before it exits;
// [Cluster.Restart] starts a node again over its data and on its ports and
// waits until it is back in sync; [Cluster.Pause] and [Cluster.Resume]
// send SIGSTOP and SIGCONT, for a node that is alive but answers nothing.
// A killed or paused node is fenced, and its leaderships moved, after the
// broker session timeout of 3s. [Cluster.Leader] says which node leads a
// partition.
//
// # The brokers
//
// The cluster is set up as a production cluster of three is for
// durability: replication factor 3 for new and internal topics,
// min.insync.replicas 2, no unclean leader election, and no automatic
// topic creation ([AutoCreateTopics] turns it on). Where production
// settings would only make tests wait, they are short: no initial
// rebalance delay, group session timeouts from 1s, a 3s broker session.
// The group and transaction topics (10 partitions each) exist before
// Start returns. [BrokerConfig] overrides any setting.
//
// Each JVM is kept small for machines of few cores, with a 512 MiB heap,
// the serial collector and the C1 compiler only ([JVMFlags] replaces these),
// and shares a class data archive that the first run writes beside the
// jars. The nodes' configuration, data and logs (node-<i>/logs/server.log)
// are in a temporary directory ([Cluster.Dir]), removed when the test
// passes and kept when it fails. Every node is killed when the test binary
// dies, even without stopping the cluster (on Linux).
package kafkacluster
