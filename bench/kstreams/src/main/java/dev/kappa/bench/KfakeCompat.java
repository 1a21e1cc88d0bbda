package dev.kappa.bench;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.DescribeTopicsResult;
import org.apache.kafka.clients.admin.ForwardingAdmin;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.internals.KafkaFutureImpl;
import org.apache.kafka.common.metrics.KafkaMetric;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.streams.KafkaClientSupplier;

/**
 * Kafka Streams' clients, with an admin client that works around the embedded
 * broker of the Go harness (franz-go's kfake), which answers
 * DescribeTopicPartitions (API 75) with a null list of eligible leader replicas
 * where Kafka's admin client expects a list, so every describeTopics fails with
 * a NullPointerException. Its describeTopics by name reads the topics' partitions
 * from a consumer's metadata (the Metadata API) instead. The harness turns it on
 * (--kfake-compat true) on its embedded broker only; on a real cluster Kafka
 * Streams runs with its default clients.
 */
final class KfakeCompat implements KafkaClientSupplier {
    @Override
    public Admin getAdmin(Map<String, Object> config) {
        return new MetadataAdmin(config);
    }

    @Override
    public Producer<byte[], byte[]> getProducer(Map<String, Object> config) {
        return new KafkaProducer<>(config, new ByteArraySerializer(), new ByteArraySerializer());
    }

    @Override
    public Consumer<byte[], byte[]> getConsumer(Map<String, Object> config) {
        return new KafkaConsumer<>(config, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    @Override
    public Consumer<byte[], byte[]> getRestoreConsumer(Map<String, Object> config) {
        return getConsumer(config);
    }

    @Override
    public Consumer<byte[], byte[]> getGlobalConsumer(Map<String, Object> config) {
        return getConsumer(config);
    }

    /** An admin client whose describeTopics by name uses the Metadata API. */
    static final class MetadataAdmin extends ForwardingAdmin {
        private final Map<String, Object> config;
        private Consumer<byte[], byte[]> metadata; // guarded by this

        MetadataAdmin(Map<String, Object> config) {
            super(config);
            this.config = config;
        }

        @Override
        public DescribeTopicsResult describeTopics(TopicCollection topics, DescribeTopicsOptions options) {
            if (!(topics instanceof TopicCollection.TopicNameCollection names)) {
                return super.describeTopics(topics, options);
            }
            Map<String, KafkaFuture<TopicDescription>> out = new HashMap<>();
            for (String topic : names.topicNames()) {
                KafkaFutureImpl<TopicDescription> f = new KafkaFutureImpl<>();
                try {
                    List<PartitionInfo> parts = partitionsFor(topic, options);
                    if (parts == null || parts.isEmpty()) {
                        f.completeExceptionally(new UnknownTopicOrPartitionException("topic " + topic + " does not exist"));
                    } else {
                        List<TopicPartitionInfo> infos = new ArrayList<>();
                        for (PartitionInfo p : parts) {
                            infos.add(new TopicPartitionInfo(p.partition(), p.leader(),
                                    Arrays.asList(p.replicas()), Arrays.asList(p.inSyncReplicas())));
                        }
                        infos.sort((a, b) -> Integer.compare(a.partition(), b.partition()));
                        f.complete(new TopicDescription(topic, topic.startsWith("__"), infos));
                    }
                } catch (RuntimeException e) {
                    f.completeExceptionally(e);
                }
                out.put(topic, f);
            }
            return new Result(out);
        }

        private synchronized List<PartitionInfo> partitionsFor(String topic, DescribeTopicsOptions options) {
            if (metadata == null) {
                Properties p = new Properties();
                p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, config.get("bootstrap.servers"));
                p.put(ConsumerConfig.CLIENT_ID_CONFIG, config.getOrDefault("client.id", "kstreams-bench") + "-metadata");
                p.put(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, false);
                metadata = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
            }
            Integer timeout = options.timeoutMs();
            return metadata.partitionsFor(topic, Duration.ofMillis(timeout == null ? 30_000 : timeout));
        }

        // ForwardingAdmin throws on these (it cannot reach its delegate's);
        // Kafka Streams calls them for client telemetry, which kfake does not
        // take anyway.
        @Override
        public void registerMetricForSubscription(KafkaMetric metric) {}

        @Override
        public void unregisterMetricFromSubscription(KafkaMetric metric) {}

        @Override
        public void close(Duration timeout) {
            synchronized (this) {
                if (metadata != null) {
                    metadata.close(timeout);
                }
            }
            super.close(timeout);
        }
    }

    private static final class Result extends DescribeTopicsResult {
        Result(Map<String, KafkaFuture<TopicDescription>> byName) {
            super(null, byName);
        }
    }
}
