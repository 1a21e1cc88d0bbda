package dev.kappa.bench;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyDescription;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.Joined;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;
import org.apache.kafka.streams.state.SessionStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Kafka Streams peer of Kappa's benchmark workloads (bench/*.go). The Go
 * harness starts it as a child process:
 *
 * <pre>
 * java -cp kstreams-bench.jar dev.kappa.bench.KStreamsBench TOPOLOGY --bootstrap HOST:PORT \
 *     --in TOPIC --out TOPIC --app-id ID [--threads N] [--guarantee at_least_once|exactly_once_v2] \
 *     [--commit-interval-ms MS] [--cache-bytes N] [--state-dir DIR] [--replication N] ...
 * </pre>
 *
 * TOPOLOGY is one of stateless (W1), count (W2, W4), tumbling, hopping, sliding,
 * session (W3), streamtable, streamstream (W8) and restore (W5); each builds the
 * same topology as the Kappa contender of that name, with the same serdes and
 * byte layouts, so the harness checks both outputs alike.
 *
 * <p>It talks to the harness through its standard streams. On stdout, one event per
 * line: "processed N" whenever the number of input records processed changes
 * (the sum of the stream threads' process-total, sampled every 5 ms), "state S" on
 * each state change, and for restore "restore-start", "running RESTORED" and
 * "store KEYS SUM". It stops gracefully (closing the streams, which commits) when
 * stdin ends or reads "stop", prints "closed" and exits 0; it exits 1 when Kafka
 * Streams fails. Logs go to stderr, warnings and worse only.
 */
public final class KStreamsBench {
    private KStreamsBench() {}

    /** The stdout of the protocol; every line is flushed at once. */
    private static final PrintStream OUT = new PrintStream(System.out, true, StandardCharsets.UTF_8);

    public static void main(String[] argv) throws Exception {
        // Before the first logger is made.
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel",
                System.getProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn"));
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        System.setProperty("org.slf4j.simpleLogger.showDateTime", "true");

        if (argv.length < 1) {
            System.err.println("usage: KStreamsBench TOPOLOGY --bootstrap HOST:PORT --in TOPIC --out TOPIC --app-id ID [flags]");
            System.exit(2);
        }
        String topology = argv[0];
        Map<String, String> flags = parseFlags(argv);

        Properties props = config(flags);
        StreamsBuilder builder = new StreamsBuilder();
        build(topology, builder, flags);

        Topology topo = builder.build(props);
        if (Boolean.parseBoolean(flags.getOrDefault("list-stores", "false"))) {
            listStores(topo);
            System.exit(0);
        }
        KafkaStreams streams = Boolean.parseBoolean(flags.getOrDefault("kfake-compat", "false"))
                ? new KafkaStreams(topo, props, new KfakeCompat())
                : new KafkaStreams(topo, props);
        AtomicBoolean failed = new AtomicBoolean();
        AtomicLong restored = new AtomicLong();
        AtomicBoolean restoreStarted = new AtomicBoolean();
        AtomicBoolean running = new AtomicBoolean();
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("kstreams: stream thread failed: " + e);
            e.printStackTrace();
            failed.set(true);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setStateListener((now, before) -> {
            OUT.println("state " + now);
            if (now == KafkaStreams.State.RUNNING && !running.getAndSet(true) && topology.equals("restore")) {
                OUT.println("running " + restored.get());
            }
            if (now == KafkaStreams.State.ERROR || (now == KafkaStreams.State.PENDING_ERROR)) {
                failed.set(true);
                // Not from the listener's thread: exit runs no hooks that wait for it.
                new Thread(() -> System.exit(1), "exit").start();
            }
        });
        if (topology.equals("restore")) {
            streams.setGlobalStateRestoreListener(new StateRestoreListener() {
                @Override
                public void onRestoreStart(TopicPartition tp, String store, long start, long end) {
                    if (!restoreStarted.getAndSet(true)) {
                        OUT.println("restore-start " + tp);
                    }
                }

                @Override
                public void onBatchRestored(TopicPartition tp, String store, long batchEnd, long n) {
                    restored.addAndGet(n);
                }

                @Override
                public void onRestoreEnd(TopicPartition tp, String store, long total) {}
            });
        }

        streams.start();
        int threads = (int) num(flags, "threads", 1);
        Thread progress = new Thread(() -> reportProgress(streams, threads), "progress");
        progress.setDaemon(true);
        progress.start();

        if (topology.equals("restore")) {
            Thread scan = new Thread(() -> scanWhenRunning(streams, running), "scan");
            scan.setDaemon(true);
            scan.start();
        }

        // Run until stdin ends or says stop.
        try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                if (line.trim().equals("stop")) {
                    break;
                }
            }
        } catch (IOException e) {
            System.err.println("kstreams: reading stdin: " + e);
        }
        boolean closed = streams.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                .withTimeout(Duration.ofSeconds(60)));
        OUT.println("closed " + closed);
        System.exit(failed.get() || !closed ? 1 : 0);
    }

    /**
     * Prints "store NAME POLICY" for each store of the topology, POLICY being the
     * cleanup.policy Kafka Streams gives its changelog: compact for the key-value
     * stores (counts, articles, store), compact,delete for the window, session and
     * join stores. The harness asks for it (--list-stores true) on its embedded
     * broker (franz-go's kfake), whose CreateTopics responses from v5 on carry
     * configs that Kafka's admin client rejects (a config source of -1, "id should
     * be positive", or a null list when there are none), so Kafka Streams cannot
     * create its changelog topics there: the harness creates them
     * ("APP-NAME-changelog") before it starts the app, which then only checks
     * their partition counts.
     */
    private static void listStores(Topology topo) {
        Set<String> stores = new TreeSet<>();
        for (TopologyDescription.Subtopology st : topo.describe().subtopologies()) {
            for (TopologyDescription.Node n : st.nodes()) {
                if (n instanceof TopologyDescription.Processor p) {
                    stores.addAll(p.stores());
                }
            }
        }
        for (String store : stores) {
            boolean kv = store.equals("counts") || store.equals("articles") || store.equals("store");
            OUT.println("store " + store + " " + (kv ? "compact" : "compact,delete"));
        }
    }

    /** Parses "--name value" pairs after the topology. */
    private static Map<String, String> parseFlags(String[] argv) {
        Map<String, String> flags = new HashMap<>();
        for (int i = 1; i < argv.length; i++) {
            String a = argv[i];
            if (!a.startsWith("--") || i + 1 >= argv.length) {
                System.err.println("kstreams: bad argument " + a + ": want --name value");
                System.exit(2);
            }
            flags.put(a.substring(2), argv[++i]);
        }
        return flags;
    }

    private static String need(Map<String, String> flags, String name) {
        String v = flags.get(name);
        if (v == null) {
            System.err.println("kstreams: --" + name + " is required");
            System.exit(2);
        }
        return v;
    }

    private static long num(Map<String, String> flags, String name, long def) {
        String v = flags.get(name);
        return v == null ? def : Long.parseLong(v);
    }

    /**
     * The configuration: Kafka Streams' defaults but what the harness gives to make
     * it comparable with Kappa (threads, guarantee, commit interval, cache budget,
     * task idle time), and byte-array default serdes (every operator names its own).
     */
    private static Properties config(Map<String, String> flags) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, need(flags, "app-id"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, need(flags, "bootstrap"));
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, (int) num(flags, "threads", 1));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, flags.getOrDefault("guarantee", StreamsConfig.AT_LEAST_ONCE));
        if (flags.containsKey("commit-interval-ms")) {
            p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, num(flags, "commit-interval-ms", 0));
        }
        if (flags.containsKey("cache-bytes")) {
            p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, num(flags, "cache-bytes", 0));
        }
        if (flags.containsKey("max-task-idle-ms")) {
            p.put(StreamsConfig.MAX_TASK_IDLE_MS_CONFIG, num(flags, "max-task-idle-ms", 0));
        }
        if (flags.containsKey("state-dir")) {
            p.put(StreamsConfig.STATE_DIR_CONFIG, flags.get("state-dir"));
        }
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, (int) num(flags, "replication", -1));
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
        p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        return p;
    }

    private static final Serde<String> STRING = Serdes.String();
    private static final Serde<byte[]> BYTES = Serdes.ByteArray();
    private static final Serde<Long> LONG = Serdes.Long();

    /** Builds the topology named topology, as the Kappa contender of that name. */
    private static void build(String topology, StreamsBuilder b, Map<String, String> flags) {
        String in = need(flags, "in");
        switch (topology) {
            case "stateless" -> // W1: From(String, Bytes) → Filter → MapValues → To
                b.stream(in, Consumed.with(STRING, BYTES))
                        .filter((k, v) -> keepW1(v))
                        .mapValues(KStreamsBench::upper)
                        .to(need(flags, "out"), Produced.with(STRING, BYTES));
            case "count" -> // W2, W4: GroupByKey → Count(Materialized("counts")) → ToStream → To(String, Int64)
                grouped(b, in)
                        .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                                .withKeySerde(STRING).withValueSerde(LONG))
                        .toStream()
                        .to(need(flags, "out"), Produced.with(STRING, LONG));
            case "tumbling", "hopping" -> { // W3
                TimeWindows w = TimeWindows.ofSizeAndGrace(ms(flags, "size-ms"), ms(flags, "grace-ms"))
                        .advanceBy(ms(flags, "advance-ms"));
                grouped(b, in).windowedBy(w)
                        .count(windowMaterialized())
                        .toStream()
                        .to(need(flags, "out"), Produced.with(WINDOWED, LONG));
            }
            case "sliding" -> grouped(b, in) // W3
                    .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(ms(flags, "size-ms"), ms(flags, "grace-ms")))
                    .count(windowMaterialized())
                    .toStream()
                    .to(need(flags, "out"), Produced.with(WINDOWED, LONG));
            case "session" -> grouped(b, in) // W3
                    .windowedBy(SessionWindows.ofInactivityGapAndGrace(ms(flags, "gap-ms"), ms(flags, "grace-ms")))
                    .count(Materialized.<String, Long, SessionStore<Bytes, byte[]>>as("wcounts")
                            .withKeySerde(STRING).withValueSerde(LONG))
                    .toStream()
                    .to(need(flags, "out"), Produced.with(WINDOWED, LONG));
            case "streamtable" -> { // W8: clicks JoinTable articles
                KTable<String, byte[]> articles = b.table(need(flags, "articles"), Consumed.with(STRING, BYTES),
                        Materialized.<String, byte[], KeyValueStore<Bytes, byte[]>>as("articles")
                                .withKeySerde(STRING).withValueSerde(BYTES));
                b.stream(in, Consumed.with(STRING, BYTES))
                        .join(articles, (click, article) -> joined(click, firstField(article)),
                                Joined.with(STRING, BYTES, BYTES))
                        .to(need(flags, "out"), Produced.with(STRING, BYTES));
            }
            case "streamstream" -> { // W8: impressions JoinStreams clicks
                KStream<String, byte[]> impressions = b.stream(need(flags, "impressions"), Consumed.with(STRING, BYTES));
                KStream<String, byte[]> clicks = b.stream(in, Consumed.with(STRING, BYTES));
                JoinWindows w = JoinWindows.ofTimeDifferenceAndGrace(ms(flags, "after-ms"), ms(flags, "grace-ms"))
                        .before(ms(flags, "before-ms"));
                impressions.join(clicks, (imp, click) -> joined(click, firstField(imp)), w,
                                StreamJoined.with(STRING, BYTES, BYTES))
                        .to(need(flags, "out"), Produced.with(STRING, BYTES));
            }
            case "restore" -> // W5: TableFrom(String, Bytes, Materialized("store"))
                b.table(in, Consumed.with(STRING, BYTES),
                        Materialized.<String, byte[], KeyValueStore<Bytes, byte[]>>as("store")
                                .withKeySerde(STRING).withValueSerde(BYTES));
            default -> {
                System.err.println("kstreams: unknown topology " + topology);
                System.exit(2);
            }
        }
    }

    private static KGroupedStream<String, byte[]> grouped(StreamsBuilder b, String in) {
        return b.stream(in, Consumed.with(STRING, BYTES)).groupByKey(Grouped.with(STRING, BYTES));
    }

    private static Materialized<String, Long, WindowStore<Bytes, byte[]>> windowMaterialized() {
        return Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("wcounts").withKeySerde(STRING).withValueSerde(LONG);
    }

    private static Duration ms(Map<String, String> flags, String name) {
        return Duration.ofMillis(Long.parseLong(need(flags, name)));
    }

    /** W1's filter: drops a value whose first byte is a multiple of 10 (bench/stateless.go keepW1). */
    static boolean keepW1(byte[] v) {
        return v.length == 0 || (v[0] & 0xff) % 10 != 0;
    }

    /** W1's map: the value with a-z upper-cased, in a new array (the input is printable ASCII). */
    static byte[] upper(byte[] v) {
        byte[] u = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            byte c = v[i];
            u[i] = c >= 'a' && c <= 'z' ? (byte) (c - ('a' - 'A')) : c;
        }
        return u;
    }

    /** W8's joined value: the click's value, a tab and what the join adds (bench/joins.go w8Joined). */
    static byte[] joined(byte[] click, byte[] added) {
        byte[] v = new byte[click.length + 1 + added.length];
        System.arraycopy(click, 0, v, 0, click.length);
        v[click.length] = '\t';
        System.arraycopy(added, 0, v, click.length + 1, added.length);
        return v;
    }

    /** v up to its first tab, or all of v. */
    static byte[] firstField(byte[] v) {
        for (int i = 0; i < v.length; i++) {
            if (v[i] == '\t') {
                byte[] f = new byte[i];
                System.arraycopy(v, 0, f, 0, i);
                return f;
            }
        }
        return v;
    }

    /**
     * Kappa's codec.Windowed(codec.String()) layout: the key's bytes, then the
     * window's start and end in milliseconds, 8 bytes big-endian each. (Kafka
     * Streams' own windowed serdes write the start only, or end then start.)
     */
    static final Serde<Windowed<String>> WINDOWED = Serdes.serdeFrom(
            (Serializer<Windowed<String>>) (topic, w) -> {
                if (w == null) {
                    return null;
                }
                byte[] k = w.key().getBytes(StandardCharsets.UTF_8);
                return ByteBuffer.allocate(k.length + 16).put(k)
                        .putLong(w.window().start()).putLong(w.window().end()).array();
            },
            (Deserializer<Windowed<String>>) (topic, b) -> {
                throw new UnsupportedOperationException("the windowed key serde only writes");
            });

    /**
     * Prints "processed N" whenever the sum of the stream threads' process-total
     * (records processed, counted by Kafka Streams itself) changes, every 5 ms.
     * It looks the metrics up until it has one per thread, then reads only those.
     */
    private static void reportProgress(KafkaStreams streams, int threads) {
        List<Metric> totals = new ArrayList<>();
        long last = -1;
        while (true) {
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                return;
            }
            if (totals.size() < threads) {
                totals.clear();
                for (Map.Entry<MetricName, ? extends Metric> e : streams.metrics().entrySet()) {
                    MetricName n = e.getKey();
                    if (n.name().equals("process-total") && n.group().equals("stream-thread-metrics")) {
                        totals.add(e.getValue());
                    }
                }
            }
            long sum = 0;
            for (Metric m : totals) {
                Object v = m.metricValue();
                if (v instanceof Number num) {
                    sum += num.longValue();
                }
            }
            if (sum != last) {
                OUT.println("processed " + sum);
                last = sum;
            }
        }
    }

    /**
     * W5's check: once the app runs (every store restored), reads the whole store
     * through interactive queries and prints "store KEYS SUM", SUM being the
     * unsigned 64-bit sum over the records of FNV-1a of the key's length (8 bytes
     * little-endian), the key and the value (bench/restore.go portableHash).
     */
    private static void scanWhenRunning(KafkaStreams streams, AtomicBoolean running) {
        while (!running.get()) {
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                return;
            }
        }
        try {
            ReadOnlyKeyValueStore<String, byte[]> store = streams.store(
                    StoreQueryParameters.fromNameAndType("store", QueryableStoreTypes.<String, byte[]>keyValueStore()));
            long n = 0;
            long sum = 0;
            try (KeyValueIterator<String, byte[]> it = store.all()) {
                while (it.hasNext()) {
                    KeyValue<String, byte[]> kv = it.next();
                    n++;
                    sum += portableHash(kv.key.getBytes(StandardCharsets.UTF_8), kv.value);
                }
            }
            OUT.println("store " + n + " " + Long.toUnsignedString(sum));
        } catch (RuntimeException e) {
            System.err.println("kstreams: reading the store: " + e);
            OUT.println("store-error " + e.toString().replace('\n', ' '));
        }
    }

    private static final long FNV_OFFSET = 0xcbf29ce484222325L;
    private static final long FNV_PRIME = 0x100000001b3L;

    static long portableHash(byte[] key, byte[] value) {
        long h = FNV_OFFSET;
        long len = key.length;
        for (int i = 0; i < 8; i++) {
            h ^= (len >>> (8 * i)) & 0xff;
            h *= FNV_PRIME;
        }
        for (byte b : key) {
            h ^= b & 0xff;
            h *= FNV_PRIME;
        }
        for (byte b : value) {
            h ^= b & 0xff;
            h *= FNV_PRIME;
        }
        return h;
    }
}
