#!/usr/bin/env python3
"""Share-group consume throughput against a running broker, with
confluent-kafka (librdkafka's share consumer), for docs/benchmarks.md.

    share-bench.py BOOTSTRAP --partitions P --records N --consumers K [--classic]

Makes a topic of P partitions, writes N records of 1 KiB, and reads them
with K share consumers in one share group (explicit acknowledgements,
accepted in batches: one commit_sync per poll), each in its own process;
or, with --classic, with K members of a classic consumer group. Prints one
JSON line: records per second from the first record read to the last, and
for share groups the commit_sync (acknowledgement) latency p50/p99 in ms.

Needs confluent-kafka (pip install confluent-kafka); not part of the test
suite.
"""

import argparse
import json
import multiprocessing as mp
import sys
import time
import uuid

import confluent_kafka as ck
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

RECORD = b"x" * 1024
STEP_S = 120


def setup(bootstrap, topic, partitions, records):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=STEP_S)
    producer = ck.Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1 << 20,
            "compression.type": "none",
        }
    )
    for i in range(records):
        while True:
            try:
                producer.produce(topic, value=RECORD, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(STEP_S):
        sys.exit("records not delivered")


def configure(bootstrap, group):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry(
        "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=STEP_S)


def share_member(bootstrap, group, topic, total, done, first, latencies, target):
    consumer = ck.ShareConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "share.acknowledgement.mode": "explicit",
            "max.poll.records": 500,
            "log_level": 3,
        }
    )
    consumer.subscribe([topic])
    mine = []
    deadline = time.time() + STEP_S
    while done.value < target and time.time() < deadline:
        messages = [m for m in consumer.poll(0.2) if not m.error()]
        if not messages:
            continue
        with first.get_lock():
            if first.value == 0:
                first.value = time.time()
        for message in messages:
            consumer.acknowledge(message)
        started = time.perf_counter()
        consumer.commit_sync(STEP_S)
        mine.append((time.perf_counter() - started) * 1000)
        with done.get_lock():
            done.value += len(messages)
            if done.value >= target:
                total.value = time.time()
    latencies.put(mine)
    consumer.close()


def classic_member(bootstrap, group, topic, total, done, first, latencies, target):
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "log_level": 3,
        }
    )
    consumer.subscribe([topic])
    deadline = time.time() + STEP_S
    while done.value < target and time.time() < deadline:
        messages = [m for m in consumer.consume(500, 0.2) if not m.error()]
        if not messages:
            continue
        with first.get_lock():
            if first.value == 0:
                first.value = time.time()
        with done.get_lock():
            done.value += len(messages)
            if done.value >= target:
                total.value = time.time()
    latencies.put([])
    consumer.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--consumers", type=int, default=1)
    parser.add_argument("--classic", action="store_true")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    topic, group = f"bench-{run}", f"bench-{run}"
    setup(args.bootstrap, topic, args.partitions, args.records)
    if not args.classic:
        configure(args.bootstrap, group)
    done = mp.Value("q", 0)
    first = mp.Value("d", 0.0)
    total = mp.Value("d", 0.0)
    latencies = mp.Queue()
    member = classic_member if args.classic else share_member
    processes = [
        mp.Process(
            target=member,
            args=(args.bootstrap, group, topic, total, done, first, latencies, args.records),
        )
        for _ in range(args.consumers)
    ]
    for p in processes:
        p.start()
    all_latencies = []
    for _ in processes:
        all_latencies.extend(latencies.get(timeout=STEP_S * 2))
    for p in processes:
        p.join(STEP_S)
    if done.value < args.records:
        sys.exit(f"only {done.value} of {args.records} records read")
    seconds = total.value - first.value
    all_latencies.sort()

    def pct(q):
        if not all_latencies:
            return None
        return round(all_latencies[min(len(all_latencies) - 1, int(q * len(all_latencies)))], 2)

    print(
        json.dumps(
            {
                "kind": "classic" if args.classic else "share",
                "partitions": args.partitions,
                "consumers": args.consumers,
                "records": args.records,
                "read": done.value,
                "records_per_s": round(args.records / seconds) if seconds > 0 else None,
                "ack_ms_p50": pct(0.5),
                "ack_ms_p99": pct(0.99),
            }
        )
    )


if __name__ == "__main__":
    main()
