"""The Quix Streams peer of Kappa's benchmark workloads W1 and W2 (issue 19).

The Go harness (bench/) starts it as a child process:

    python3 quix_bench.py TOPOLOGY --bootstrap HOST:PORT --in TOPIC --out TOPIC \
        --group GROUP --state-dir DIR [--commit-interval SECONDS]

TOPOLOGY is stateless (W1: drop a value whose first byte is a multiple of 10,
upper-case the others) or count (W2: count each key's records, write each new
count as 8 bytes big-endian), the same as the Kappa contenders of bench/
stateless.go and bench/count.go.

It talks to the harness through its standard streams, as the Kafka Streams
peer does: on stdout "processed N" whenever the number of input records
processed changes (sampled every 5 ms), and it stops gracefully (committing
its checkpoint) when stdin ends or reads "stop", then prints "closed" and
exits 0. Logs go to stderr, warnings and worse only. Quix creates its
changelog topics itself, with the partitions and replication factor of the
input topic.
"""

import argparse
import logging
import sys
import threading
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("topology", choices=["stateless", "count"])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--commit-interval", type=float, default=5.0, help="seconds between commits (Quix's default 5)")
    args = p.parse_args()

    try:
        from quixstreams import Application
    except ImportError as e:  # the harness checks first; this is for people
        print(f"quix: {e}: pip install quixstreams", file=sys.stderr)
        return 3

    processed = 0

    def on_processed(topic, partition, offset):
        nonlocal processed
        processed += 1

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        loglevel="WARNING",
        on_message_processed=on_processed,
    )
    topic_in = app.topic(args.inp, key_deserializer="bytes", value_deserializer="bytes")
    topic_out = app.topic(args.out, key_serializer="bytes", value_serializer="bytes")
    sdf = app.dataframe(topic=topic_in)
    if args.topology == "stateless":
        # W1: bench/stateless.go keepW1 and mapW1 (the input is printable ASCII).
        sdf = sdf.filter(lambda v: len(v) == 0 or v[0] % 10 != 0)
        sdf = sdf.apply(lambda v: v.upper())
    else:
        # W2: each key's count in Quix's RocksDB state (with its changelog),
        # written as it changes, as Kafka's LongSerializer lays it out.
        def count(value, state):
            n = state.get("n", 0) + 1
            state.set("n", n)
            return n.to_bytes(8, "big", signed=True)

        sdf = sdf.apply(count, stateful=True)
    sdf.to_topic(topic_out)

    out = sys.stdout

    def report():
        last = -1
        while True:
            time.sleep(0.005)
            n = processed
            if n != last:
                out.write(f"processed {n}\n")
                out.flush()
                last = n

    def watch_stdin():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        app.stop()

    threading.Thread(target=report, daemon=True).start()
    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        app.run()
    except Exception as e:  # noqa: BLE001 (reported to the harness, then exit 1)
        logging.exception("quix: run failed")
        print(f"quix: run failed: {e}", file=sys.stderr)
        return 1
    out.write(f"processed {processed}\n")
    out.write("closed\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
