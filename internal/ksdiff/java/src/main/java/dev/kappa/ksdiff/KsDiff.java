package dev.kappa.ksdiff;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Joined;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindowedKStream;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.SessionStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Kafka Streams side of Kappa's differential test (internal/ksdiff): it runs
 * the topologies the Go test runs on Kappa, over the same input topics, and
 * writes their results in the format the Go test writes Kappa's in.
 *
 * <pre>
 * java -jar ksdiff.jar --bootstrap HOST:PORT --app-id ID --state-dir DIR SPEC...
 * </pre>
 *
 * Each SPEC is one topology, as comma-separated key=value pairs:
 * {@code name=N,topo=T,in=TOPIC[;TOPIC],out=TOPIC[,size=MS][,grace=MS][,gap=MS]}.
 * All of them run in one KafkaStreams instance (one application, one stream
 * thread); name keeps their stores and internal topics apart. The topologies
 * (T), with String keys and values everywhere:
 *
 * <ul>
 *   <li>{@code tumbling}: groupByKey, TimeWindows(size, grace), count,
 *       suppress(untilWindowCloses): one final count per key and window;</li>
 *   <li>{@code session}: groupByKey, SessionWindows(gap, grace), count: every
 *       update, a tombstone for each session merged away;</li>
 *   <li>{@code session-final}: the same with emitStrategy(onWindowClose);</li>
 *   <li>{@code session-suppress}: the same as session, then
 *       suppress(untilWindowCloses);</li>
 *   <li>{@code stream-table}: stream(in[0]) join table(in[1]), value
 *       "v|row";</li>
 *   <li>{@code table-table}: table(in[0]) join table(in[1]), value
 *       "left|right";</li>
 *   <li>{@code rekey-count}: selectKey(value up to its first '|'),
 *       groupByKey, count.</li>
 * </ul>
 *
 * Windowed keys are written as "key@start@end" (Kappa's window bounds: end
 * exclusive for time windows, inclusive for sessions), counts as decimal
 * strings, deletes as null values.
 *
 * <p>Configuration: at-least-once, a commit every 100 ms, no record cache (every
 * update is forwarded), one stream thread; everything else is Kafka Streams'
 * default (RocksDB stores, max.task.idle.ms 0). The one internal setting is
 * the wall-clock throttle of emitStrategy(onWindowClose), 1 s by default, set
 * to 0: with it, windows closed by the last input records are emitted only
 * when a record arrives a second later, which at the end of the input never
 * happens.
 *
 * <p>Protocol: stdout carries one event a line, {@code state S} on each state
 * change and {@code closed true|false} at the end. It stops when stdin ends or
 * reads {@code stop}: close with LEAVE_GROUP, which commits. It exits 1 when
 * Kafka Streams fails, 2 on bad arguments. Logs (warnings and worse) go to
 * stderr.
 */
public final class KsDiff {
    private KsDiff() {}

    private static final PrintStream OUT = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    private static final Serde<String> STRING = Serdes.String();
    private static final Serde<Long> LONG = Serdes.Long();

    public static void main(String[] argv) {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel",
                System.getProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn"));
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        System.setProperty("org.slf4j.simpleLogger.showDateTime", "true");

        Map<String, String> flags = new HashMap<>();
        List<Map<String, String>> specs = new ArrayList<>();
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (a.startsWith("--")) {
                if (i + 1 >= argv.length) {
                    usage("flag " + a + " has no value");
                }
                flags.put(a.substring(2), argv[++i]);
            } else {
                specs.add(parseSpec(a));
            }
        }
        if (specs.isEmpty()) {
            usage("no topology given");
        }

        StreamsBuilder builder = new StreamsBuilder();
        for (Map<String, String> spec : specs) {
            build(builder, spec);
        }
        Properties props = config(flags);
        Topology topo = builder.build(props);
        KafkaStreams streams = new KafkaStreams(topo, props);
        AtomicBoolean failed = new AtomicBoolean();
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("ksdiff: stream thread failed: " + e);
            e.printStackTrace();
            failed.set(true);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setStateListener((now, before) -> {
            OUT.println("state " + now);
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.PENDING_ERROR) {
                failed.set(true);
                new Thread(() -> System.exit(1), "exit").start();
            }
        });
        streams.start();

        try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                if (line.trim().equals("stop")) {
                    break;
                }
            }
        } catch (IOException e) {
            System.err.println("ksdiff: reading stdin: " + e);
        }
        boolean closed = streams.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                .withTimeout(Duration.ofSeconds(60)));
        OUT.println("closed " + closed);
        System.exit(failed.get() || !closed ? 1 : 0);
    }

    private static void usage(String problem) {
        System.err.println("ksdiff: " + problem);
        System.err.println("usage: java -jar ksdiff.jar --bootstrap HOST:PORT --app-id ID --state-dir DIR "
                + "name=N,topo=T,in=TOPIC[;TOPIC],out=TOPIC[,size=MS][,grace=MS][,gap=MS] ...");
        System.exit(2);
    }

    private static Map<String, String> parseSpec(String s) {
        Map<String, String> spec = new HashMap<>();
        for (String kv : s.split(",")) {
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                usage("bad topology spec " + s + ": want key=value pairs separated by commas");
            }
            spec.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        for (String k : new String[] {"name", "topo", "in", "out"}) {
            if (!spec.containsKey(k)) {
                usage("topology spec " + s + " has no " + k);
            }
        }
        return spec;
    }

    private static String need(Map<String, String> m, String key) {
        String v = m.get(key);
        if (v == null) {
            usage("missing " + key + " in " + m);
        }
        return v;
    }

    private static Duration ms(Map<String, String> spec, String key) {
        return Duration.ofMillis(Long.parseLong(need(spec, key)));
    }

    private static Properties config(Map<String, String> flags) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, need(flags, "app-id"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, need(flags, "bootstrap"));
        p.put(StreamsConfig.STATE_DIR_CONFIG, need(flags, "state-dir"));
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0L);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        p.put(StreamsConfig.InternalConfig.EMIT_INTERVAL_MS_KSTREAMS_WINDOWED_AGGREGATION, 0L);
        return p;
    }

    private static void build(StreamsBuilder b, Map<String, String> spec) {
        String name = spec.get("name");
        String[] in = spec.get("in").split(";");
        String out = spec.get("out");
        Consumed<String, String> consumed = Consumed.with(STRING, STRING);
        Produced<String, String> produced = Produced.with(STRING, STRING);
        switch (spec.get("topo")) {
            case "tumbling" -> b.stream(in[0], consumed)
                    .groupByKey(Grouped.with(STRING, STRING))
                    .windowedBy(TimeWindows.ofSizeAndGrace(ms(spec, "size"), ms(spec, "grace")))
                    .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as(name + "-counts")
                            .withKeySerde(STRING).withValueSerde(LONG))
                    .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                    .toStream()
                    .map(KsDiff::windowed)
                    .to(out, produced);
            case "session" -> sessions(b, in[0], spec)
                    .count(sessionStore(name))
                    .toStream()
                    .map(KsDiff::windowed)
                    .to(out, produced);
            case "session-final" -> sessions(b, in[0], spec)
                    .emitStrategy(EmitStrategy.onWindowClose())
                    .count(sessionStore(name))
                    .toStream()
                    .map(KsDiff::windowed)
                    .to(out, produced);
            case "session-suppress" -> sessions(b, in[0], spec)
                    .count(sessionStore(name))
                    .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                    .toStream()
                    .map(KsDiff::windowed)
                    .to(out, produced);
            case "stream-table" -> {
                KTable<String, String> rows = b.table(in[1], consumed,
                        Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as(name + "-rows")
                                .withKeySerde(STRING).withValueSerde(STRING));
                b.stream(in[0], consumed)
                        .join(rows, (v, row) -> v + "|" + row, Joined.with(STRING, STRING, STRING))
                        .to(out, produced);
            }
            case "table-table" -> {
                KTable<String, String> left = b.table(in[0], consumed,
                        Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as(name + "-left")
                                .withKeySerde(STRING).withValueSerde(STRING));
                KTable<String, String> right = b.table(in[1], consumed,
                        Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as(name + "-right")
                                .withKeySerde(STRING).withValueSerde(STRING));
                left.join(right, (l, r) -> l + "|" + r)
                        .toStream()
                        .to(out, produced);
            }
            case "rekey-count" -> {
                KStream<String, String> s = b.stream(in[0], consumed);
                // A null value keeps its key: count() skips it anyway, as
                // Kappa's SelectKey drops it.
                s.selectKey((k, v) -> v == null ? k : category(v))
                        .groupByKey(Grouped.<String, String>as(name + "-rekey").withKeySerde(STRING).withValueSerde(STRING))
                        .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as(name + "-counts")
                                .withKeySerde(STRING).withValueSerde(LONG))
                        .toStream()
                        .mapValues(n -> n == null ? null : Long.toString(n))
                        .to(out, produced);
            }
            default -> usage("unknown topology " + spec.get("topo"));
        }
    }

    private static SessionWindowedKStream<String, String> sessions(StreamsBuilder b, String in, Map<String, String> spec) {
        KGroupedStream<String, String> g = b.stream(in, Consumed.with(STRING, STRING)).groupByKey(Grouped.with(STRING, STRING));
        return g.windowedBy(SessionWindows.ofInactivityGapAndGrace(ms(spec, "gap"), ms(spec, "grace")));
    }

    private static Materialized<String, Long, SessionStore<Bytes, byte[]>> sessionStore(String name) {
        return Materialized.<String, Long, SessionStore<Bytes, byte[]>>as(name + "-sessions")
                .withKeySerde(STRING).withValueSerde(LONG);
    }

    /** The record's category: its value up to the first '|', as the Go test's rekey. */
    static String category(String v) {
        int bar = v.indexOf('|');
        return bar < 0 ? v : v.substring(0, bar);
    }

    private static KeyValue<String, String> windowed(Windowed<String> k, Long n) {
        String key = k.key() + "@" + k.window().start() + "@" + k.window().end();
        return KeyValue.pair(key, n == null ? null : Long.toString(n));
    }
}
