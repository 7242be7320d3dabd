#!/usr/bin/env python3
"""One broker holding many partitions under a low open-file limit: what it
costs and whether it restarts.

Starts `rill broker` under `prlimit --nofile=N` on an empty data
directory; creates `--topics` topics of `--partitions-per-topic`
partitions each (`--per-request` topics a CreateTopics request, through
kafka-python's admin client); produces one record to every partition
(acks=all) and checks each was acknowledged; reports the broker's
resident memory, descriptors and memory maps once idle; then stops it
with SIGTERM and starts it again (a clean start), and kills it with
SIGKILL and starts it again (a start after a crash), timing each from
spawn to "listening on" and to the first acknowledged produce to the last
partition, and reads a sample of partitions back after each. Prints a
markdown summary.

Needs kafka-python (`pip install kafka-python`), best with confluent-kafka
beside it (the produce step uses it when installed), and util-linux's
prlimit.

    tools/scale-partitions.py --topics 1 --partitions-per-topic 50000
    tools/scale-partitions.py --topics 5000 --partitions-per-topic 10
"""

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic


def start(args, data, port):
    """Starts a broker; returns (process, seconds from spawn to listening)."""
    log_path = f"{data}.log"
    log = open(log_path, "a")
    started = time.monotonic()
    proc = subprocess.Popen(
        ["prlimit", f"--nofile={args.nofile}:{args.nofile}", args.binary, "broker",
         "--data", data, "--listen", f"127.0.0.1:{port}"],
        stdout=log,
        stderr=log,
    )
    seen = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    deadline = started + 600
    while True:
        with open(log_path) as f:
            f.seek(seen)
            if "listening on" in f.read():
                return proc, time.monotonic() - started
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the broker did not start: see {log_path}")
        time.sleep(0.01)


def usage(pid):
    """(resident MB, descriptors, memory maps) of the process."""
    with open(f"/proc/{pid}/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/maps") as f:
        maps = sum(1 for _ in f)
    return rss_kb / 1024, fds, maps


def topics_of(args):
    return [f"s-{n:05}" for n in range(args.topics)]


def create(args, port):
    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}",
                             request_timeout_ms=600_000)
    names = topics_of(args)
    started = time.monotonic()
    for i in range(0, len(names), args.per_request):
        batch = names[i:i + args.per_request]
        result = admin.create_topics(
            [NewTopic(n, args.partitions_per_topic, 1) for n in batch],
            timeout_ms=600_000)
        errors = [e for e in getattr(result, "topic_errors", []) if e[1] != 0]
        if errors:
            sys.exit(f"CreateTopics failed: {errors[:3]}")
    admin.close()
    return time.monotonic() - started


def produce_all(args, port, tag):
    """One record to every partition; returns seconds. Through
    confluent-kafka (librdkafka) when it is installed: kafka-python spends
    minutes of its own CPU on thousands of topics."""
    try:
        from confluent_kafka import Producer
    except ImportError:
        return produce_all_kafka_python(args, port, tag)
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "acks": "all",
                         "linger.ms": 50, "queue.buffering.max.messages": 1_000_000,
                         "message.timeout.ms": 600_000})
    failed = []
    started = time.monotonic()
    for topic in topics_of(args):
        for p in range(args.partitions_per_topic):
            producer.produce(topic, value=f"{tag}-{topic}-{p}".encode(), partition=p,
                             on_delivery=lambda err, _msg: err and failed.append(err))
        producer.poll(0)
    if producer.flush(600) != 0:
        sys.exit("records still unacknowledged after 600 s")
    if failed:
        sys.exit(f"{len(failed)} produces failed: {failed[:3]}")
    return time.monotonic() - started


def produce_all_kafka_python(args, port, tag):
    producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", acks="all",
                             linger_ms=50, batch_size=16384,
                             max_block_ms=600_000, request_timeout_ms=300_000, delivery_timeout_ms=600_000,
                             metadata_max_age_ms=600_000)
    started = time.monotonic()
    futures = []
    for topic in topics_of(args):
        for p in range(args.partitions_per_topic):
            futures.append(producer.send(topic, value=f"{tag}-{topic}-{p}".encode(),
                                         partition=p))
    producer.flush(timeout=600)
    failed = sum(1 for f in futures if f.failed())
    producer.close()
    if failed:
        sys.exit(f"{failed} of {len(futures)} produces failed")
    return time.monotonic() - started


def first_produce(args, port, started):
    """Seconds from `started` to an acknowledged produce to the last
    partition, retrying while the broker opens its logs."""
    topic = topics_of(args)[-1]
    partition = args.partitions_per_topic - 1
    while True:
        try:
            producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", acks="all",
                                     max_block_ms=60_000, request_timeout_ms=30_000)
            producer.send(topic, value=b"after-restart", partition=partition).get(timeout=60)
            producer.close()
            return time.monotonic() - started
        except Exception as e:  # the broker may still be starting
            if time.monotonic() - started > 600:
                sys.exit(f"no produce acknowledged after restart: {e}")
            time.sleep(0.1)


def check_sample(args, port, tag):
    """Reads offset 0 of 100 random partitions and checks its record."""
    consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}",
                             enable_auto_commit=False, consumer_timeout_ms=30_000)
    rng = random.Random(7)
    names = topics_of(args)
    sample = [TopicPartition(rng.choice(names), rng.randrange(args.partitions_per_topic))
              for _ in range(100)]
    sample = list(dict.fromkeys(sample))
    consumer.assign(sample)
    for tp in sample:
        consumer.seek(tp, 0)
    want = {tp: f"{tag}-{tp.topic}-{tp.partition}".encode() for tp in sample}
    got = {}
    deadline = time.monotonic() + 120
    while len(got) < len(want) and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=1000).items():
            for r in records:
                if r.offset == 0:
                    got[tp] = r.value
    consumer.close()
    wrong = [tp for tp in want if got.get(tp) != want[tp]]
    if wrong:
        sys.exit(f"{len(wrong)} of {len(want)} sampled partitions lost their record: {wrong[:3]}")
    return len(want)


def stop(proc):
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=600)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/release/rill")
    parser.add_argument("--topics", type=int, default=1)
    parser.add_argument("--partitions-per-topic", type=int, default=50_000)
    parser.add_argument("--per-request", type=int, default=100)
    parser.add_argument("--nofile", type=int, default=4096)
    parser.add_argument("--port", type=int, default=29092)
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="rill-scale-")
    data = os.path.join(root, "data")
    total = args.topics * args.partitions_per_topic
    rows = []
    try:
        proc, first_start = start(args, data, args.port)
        rows.append(("first start (empty)", f"{first_start:.2f} s"))
        seconds = create(args, args.port)
        rows.append((f"create {args.topics} topics x {args.partitions_per_topic} partitions",
                     f"{seconds:.1f} s"))
        seconds = produce_all(args, args.port, "first")
        rows.append((f"produce 1 record to each of {total} partitions (acks=all)",
                     f"{seconds:.1f} s"))
        time.sleep(5)
        # prlimit execs the broker: the same pid.
        rss, fds, maps = usage(proc.pid)
        rows.append(("idle: resident memory, descriptors, memory maps",
                     f"{rss:.0f} MB, {fds}, {maps}"))
        rows.append(("clean stop (SIGTERM)", f"{stop(proc):.2f} s"))

        def restart(which):
            """Starts the broker again and times it; checks a sample."""
            proc, listening = start(args, data, args.port)
            produced = first_produce(args, args.port, time.monotonic() - listening)
            rows.append((f"{which}: to listening, to a produce acknowledged",
                         f"{listening:.2f} s, {produced:.2f} s"))
            rows.append((f"records read back after the {which}",
                         f"{check_sample(args, args.port, 'first')} sampled, all there"))
            return proc

        proc = restart("clean start")
        rss, fds, maps = usage(proc.pid)
        rows.append(("after the clean start: resident memory, descriptors, maps",
                     f"{rss:.0f} MB, {fds}, {maps}"))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = restart("start after SIGKILL")
        stop(proc)
    finally:
        if 'proc' in locals() and proc.poll() is None:
            proc.kill()
        print(f"\n`tools/scale-partitions.py --topics {args.topics} "
              f"--partitions-per-topic {args.partitions_per_topic} --nofile {args.nofile}`; "
              f"vm.max_map_count {open('/proc/sys/vm/max_map_count').read().strip()}\n")
        print("| step | result |\n|---|---|")
        for step, result in rows:
            print(f"| {step} | {result} |")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"data kept in {root}")


if __name__ == "__main__":
    main()
