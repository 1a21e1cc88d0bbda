"""Reads a topic with confluent-kafka (librdkafka), isolation.level=read_committed.

Usage: read_committed.py BOOTSTRAP TOPIC

Prints one line per record, "partition offset key-hex value-hex", every
partition from its start to its last stable offset, sorted by partition
and offset. The Go test that runs it compares the lines with what
franz-go reads committed: a second client, written by other people,
must see exactly the same records.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition


def main() -> int:
    bootstrap, topic = sys.argv[1], sys.argv[2]
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "kappa-read-committed-check",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
    })
    md = c.list_topics(topic, timeout=30)
    if md.topics[topic].error is not None:
        raise KafkaException(md.topics[topic].error)
    parts = sorted(md.topics[topic].partitions)
    # The end of each partition as a read_committed reader sees it: with
    # no transaction open (the writers have stopped), the high watermark.
    ends = {}
    for p in parts:
        _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        ends[p] = high
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    lines = []
    done = {p for p in parts if ends[p] == 0}
    deadline = time.monotonic() + 120
    while len(done) < len(parts):
        if time.monotonic() > deadline:
            print("timed out; positions:", [(tp.partition, tp.offset) for tp in c.position(
                [TopicPartition(topic, p) for p in parts])], file=sys.stderr)
            return 1
        msg = c.poll(1.0)
        if msg is None:
            # A read_committed reader skips the markers and aborted
            # records at the end: its position reaches the end without a
            # record to show for it.
            for tp in c.position([TopicPartition(topic, p) for p in parts]):
                if tp.offset >= ends[tp.partition]:
                    done.add(tp.partition)
            continue
        if msg.error():
            raise KafkaException(msg.error())
        key = (msg.key() or b"").hex()
        value = (msg.value() or b"").hex()
        lines.append((msg.partition(), msg.offset(), key, value))
        if msg.offset() + 1 >= ends[msg.partition()]:
            done.add(msg.partition())
    c.close()
    for p, o, k, v in sorted(lines):
        print(p, o, k, v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
