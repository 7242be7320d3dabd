"""Transactions through kafka-python: commits some records and aborts
others across every partition of TOPIC, each transaction also committing
GROUP's offset of TOPIC's partition 0 (sendOffsetsToTransaction), then
reads TOPIC back with a read_committed and a read_uncommitted consumer.
Prints one JSON object, or exits non-zero with kafka-python's error:

    {"read_committed": [...], "read_uncommitted": [...], "group_offset": N}

each list sorted; group_offset is GROUP's committed offset of partition 0
(null if none).

    python kafka_python_transactions.py BOOTSTRAP TOPIC TRANSACTIONAL_ID GROUP
"""

import json
import logging
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

WAIT_S = 30


def transaction(producer, topic, partitions, prefix, count, group, offset, commit):
    """One transaction of COUNT records round-robin over PARTITIONS, with
    GROUP's offset of partition 0 set to OFFSET; committed or aborted."""
    producer.begin_transaction()
    futures = [producer.send(topic, f"{prefix}-{i}".encode(), partition=partitions[i % len(partitions)])
               for i in range(count)]
    producer.flush(timeout=WAIT_S)
    for future in futures:
        future.get(timeout=WAIT_S)
    producer.send_offsets_to_transaction({TopicPartition(topic, 0): OffsetAndMetadata(offset, "", -1)}, group)
    if commit:
        producer.commit_transaction()
    else:
        producer.abort_transaction()


def read_all(bootstrap, topic, partitions, isolation_level):
    """Every value of TOPIC up to the end the isolation level lets the
    consumer see, sorted."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation_level,
                             enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    values = []
    deadline = time.monotonic() + WAIT_S
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        if time.monotonic() > deadline:
            positions = {tp.partition: consumer.position(tp) for tp in tps}
            raise SystemExit(f"{isolation_level}: stuck at {positions}, ends {ends}, read {values}")
        for records in consumer.poll(timeout_ms=500).values():
            values.extend(r.value.decode() for r in records)
    consumer.close()
    return sorted(values)


def main():
    bootstrap, topic, transactional_id, group = sys.argv[1:5]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id,
                             enable_idempotence=True, acks="all", max_block_ms=WAIT_S * 1000)
    producer.init_transactions()
    partitions = sorted(producer.partitions_for(topic))
    transaction(producer, topic, partitions, "committed-a", 6, group, 3, commit=True)
    transaction(producer, topic, partitions, "aborted", 6, group, 100, commit=False)
    transaction(producer, topic, partitions, "committed-b", 4, group, 5, commit=True)
    producer.close()

    # read_committed: OffsetFetch with require_stable (KIP-447), so the
    # answer waits for the last commit's marker in the offsets partition.
    offsets = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                            isolation_level="read_committed")
    committed = offsets.committed(TopicPartition(topic, 0))
    offsets.close()
    print(json.dumps({
        "read_committed": read_all(bootstrap, topic, partitions, "read_committed"),
        "read_uncommitted": read_all(bootstrap, topic, partitions, "read_uncommitted"),
        "group_offset": committed,
    }))


if __name__ == "__main__":
    main()
