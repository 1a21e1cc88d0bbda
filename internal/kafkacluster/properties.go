package kafkacluster

import (
	"fmt"
	"strconv"
	"strings"
)

// reservedKeys are the server.properties settings that place a node in the
// cluster; BrokerConfig refuses them.
var reservedKeys = []string{
	"process.roles", "node.id", "controller.quorum.voters", "controller.quorum.bootstrap.servers",
	"listeners", "advertised.listeners", "controller.listener.names", "inter.broker.listener.name",
	"listener.security.protocol.map", "log.dirs", "log.dir", "metadata.log.dir",
}

// serverProperties renders node n's server.properties: a combined broker
// and controller in a static quorum of all nodes, with settings for tests.
func serverProperties(cfg config, nodes []*server, n *server) string {
	rf := min(cfg.nodes, 3)
	minISR := 1
	if rf >= 3 {
		minISR = 2
	}
	voters := make([]string, len(nodes))
	for i, o := range nodes {
		voters[i] = fmt.Sprintf("%d@%s", o.id, o.controllerAddr)
	}
	itoa := strconv.Itoa
	kvs := [][2]string{
		{"process.roles", "broker,controller"},
		{"node.id", itoa(n.id)},
		{"controller.quorum.voters", strings.Join(voters, ",")},
		{"listeners", "PLAINTEXT://" + n.brokerAddr + ",CONTROLLER://" + n.controllerAddr},
		{"advertised.listeners", "PLAINTEXT://" + n.brokerAddr},
		{"controller.listener.names", "CONTROLLER"},
		{"inter.broker.listener.name", "PLAINTEXT"},
		{"listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"},
		{"log.dirs", n.dataDir()},

		// Durability as a production cluster of three has it.
		{"num.partitions", itoa(int(cfg.partitions))},
		{"default.replication.factor", itoa(rf)},
		{"min.insync.replicas", itoa(minISR)},
		{"offsets.topic.replication.factor", itoa(rf)},
		{"transaction.state.log.replication.factor", itoa(rf)},
		{"transaction.state.log.min.isr", itoa(minISR)},
		{"share.coordinator.state.topic.replication.factor", itoa(rf)},
		{"share.coordinator.state.topic.min.isr", itoa(minISR)},
		{"unclean.leader.election.enable", "false"},
		{"auto.create.topics.enable", strconv.FormatBool(cfg.autoCreate)},

		// Fewer internal partitions than the default 50: they are created
		// while the cluster starts.
		{"offsets.topic.num.partitions", "10"},
		{"transaction.state.log.num.partitions", "10"},

		// Quick group and transaction behaviour, so tests need not wait.
		{"group.initial.rebalance.delay.ms", "0"},
		{"group.min.session.timeout.ms", "1000"},
		{"group.consumer.min.session.timeout.ms", "1000"},
		{"group.consumer.min.heartbeat.interval.ms", "500"},
		{"transaction.abort.timed.out.transaction.cleanup.interval.ms", "1000"},

		// A killed or paused node is fenced, and its partitions led by
		// others, within 3s rather than 9s.
		{"broker.heartbeat.interval.ms", "500"},
		{"broker.session.timeout.ms", "3000"},

		// Fewer threads and buffers than a production broker.
		{"num.network.threads", "2"},
		{"num.io.threads", "2"},
		{"background.threads", "2"},
		{"num.replica.fetchers", "1"},
		{"num.recovery.threads.per.data.dir", "1"},
		{"log.cleaner.threads", "1"},
		{"log.cleaner.dedupe.buffer.size", strconv.Itoa(8 << 20)},
	}
	for _, o := range cfg.broker {
		i := 0
		for i < len(kvs) && kvs[i][0] != o[0] {
			i++
		}
		if i == len(kvs) {
			kvs = append(kvs, o)
		}
		kvs[i][1] = o[1]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Node %d of a kafkacluster test cluster.\n", n.id)
	for _, kv := range kvs {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], escape(kv[1]))
	}
	return b.String()
}

// escape escapes a value for a Java properties file.
func escape(v string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(v)
}

// log4j2Properties sends a node's log to server.log in the directory the
// system property kafka.logs.dir names, as Kafka's own scripts do.
const log4j2Properties = `# Log configuration of the kafkacluster nodes.
status = warn
# Kafka flushes and closes its logs itself; log4j2's own hook only warns
# when a class first logs during shutdown.
shutdownHook = disable
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
`
