#!/usr/bin/env python3
"""Rebalance time when an 11th member joins a group of 10, classic
protocol against KIP-848 (group.protocol=consumer), with confluent-kafka
(librdkafka) against a running broker, for docs/benchmarks.md.

    rebalance-bench.py BOOTSTRAP --protocol classic|consumer [--runs 5]
        [--members 10] [--partitions 22] [--classic-strategy range,roundrobin]
        [--stagger-ms 0]

Each run: a new topic of P partitions receiving a record on every
partition every 10 ms; 10 members of a new group, each in its own thread,
read it until every one holds partitions and reads; then an 11th member
subscribes. Measured, as a user would notice it:

- rebalance_ms: from the 11th member's subscribe() until every member
  holds its new assignment (P/11 partitions each, all partitions once)
  and the 11th has received its first record;
- pause_max_ms / pause_median_ms: over the 10 members already there, the
  longest time each went without receiving a record, from 1 s before the
  subscribe to 2 s after the rebalance ended (the worst member, and the
  median member). Without a rebalance this is ~10-30 ms (the production
  interval plus fetch.wait.max.ms).

--stagger-ms starts the first members that far apart, as members of a
deployment start: their heartbeats are then out of step, so a classic
group learns of the rebalance over a whole heartbeat interval instead of
all at once (members started together heartbeat together).

Client settings are librdkafka's defaults (heartbeat.interval.ms 3000 for
classic; the broker's group.consumer.heartbeat.interval.ms, 5000 by
default, for KIP-848) except fetch.wait.max.ms=10 (so that a pause is the
rebalance's, not the fetch's). A classic member learns of a rebalance
from its heartbeat or from a refused auto-commit, so
--auto-commit-interval-ms (librdkafka's 5000 by default) matters to it. Prints one
JSON line per run, then one with the medians.

Needs confluent-kafka (pip install confluent-kafka); not part of the test
suite.
"""

import argparse
import json
import statistics
import sys
import threading
import time
import uuid

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic

STEP_S = 120
PRODUCE_EVERY_S = 0.010
POLL_S = 0.005


class Member:
    """One consumer in its own thread: what it holds and when it read."""

    def __init__(self, config, topic, index):
        self.config = config
        self.topic = topic
        self.index = index
        self.assignment = frozenset()
        self.assignment_changed_at = 0.0
        self.changes = []  # (monotonic time, partitions held from then on)
        self.received = []  # monotonic times of the records read
        self.subscribed_at = None
        self.go = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        consumer = ck.Consumer(self.config)
        self.go.wait()
        self.subscribed_at = time.monotonic()
        consumer.subscribe([self.topic])
        while not self.stop.is_set():
            message = consumer.poll(POLL_S)
            now = time.monotonic()
            if message is not None and message.error() is None:
                self.received.append(now)
            assignment = frozenset(tp.partition for tp in consumer.assignment())
            if assignment != self.assignment:
                self.assignment = assignment
                self.assignment_changed_at = now
                self.changes.append((now, sorted(assignment)))
        consumer.close()


def produce_forever(bootstrap, topic, partitions, stop):
    producer = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "log_level": 3})
    while not stop.is_set():
        for partition in range(partitions):
            while True:
                try:
                    producer.produce(topic, value=b"x", partition=partition)
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.poll(0)
        time.sleep(PRODUCE_EVERY_S)
    producer.flush(10)


def wait_for(what, condition, members, limit_s=STEP_S):
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            held = [sorted(m.assignment) for m in members]
            sys.exit(f"timed out waiting for {what}; assignments: {held}")
        time.sleep(0.002)


def spread(members, partitions, each=None):
    """Every partition held once; each member holds some (or `each`)."""
    sets = [m.assignment for m in members]
    if any(not s for s in sets):
        return False
    if each is not None and any(len(s) != each for s in sets):
        return False
    union = frozenset().union(*sets)
    return len(union) == partitions and sum(len(s) for s in sets) == partitions


def longest_pause(times, start, end):
    inside = [t for t in times if start <= t <= end]
    points = [start] + inside + [end]
    return max(b - a for a, b in zip(points, points[1:]))


def one_run(args):
    topic = f"rebalance-{uuid.uuid4().hex[:8]}"
    group = f"rebalancers-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for future in admin.create_topics([NewTopic(topic, args.partitions, 1)]).values():
        future.result(timeout=STEP_S)
    stop_producing = threading.Event()
    producer = threading.Thread(
        target=produce_forever,
        args=(args.bootstrap, topic, args.partitions, stop_producing),
        daemon=True,
    )
    producer.start()
    config = {
        "bootstrap.servers": args.bootstrap,
        "group.id": group,
        "group.protocol": args.protocol,
        "auto.offset.reset": "latest",
        "auto.commit.interval.ms": args.auto_commit_interval_ms,
        "fetch.wait.max.ms": 10,
        "log_level": 3,
    }
    if args.protocol == "classic":
        config["partition.assignment.strategy"] = args.classic_strategy
    members = [Member(config, topic, i) for i in range(args.members)]
    for m in members:
        m.thread.start()
        m.go.set()
        time.sleep(args.stagger_ms / 1000)
    wait_for(
        "the first members to share the partitions",
        lambda: spread(members, args.partitions),
        members,
    )
    wait_for(
        "every first member reading",
        lambda: all(m.received and time.monotonic() - m.received[-1] < 0.5 for m in members),
        members,
    )
    time.sleep(1.0)

    newcomer = Member(config, topic, args.members)
    newcomer.thread.start()
    time.sleep(0.5)  # its Consumer is made; only subscribe() is timed
    newcomer.go.set()
    everyone = members + [newcomer]
    each = args.partitions // len(everyone) if args.partitions % len(everyone) == 0 else None
    wait_for(
        "the rebalance",
        lambda: spread(everyone, args.partitions, each) and newcomer.received,
        everyone,
    )
    start = newcomer.subscribed_at
    settled = max(m.assignment_changed_at for m in everyone)
    done = max(settled, newcomer.received[0])
    time.sleep(2.0)
    pauses = [longest_pause(m.received, start - 1.0, done + 2.0) for m in members]
    if args.verbose:
        for m in everyone:
            changes = [(round((t - start) * 1000), held) for t, held in m.changes if t >= start - 1]
            pause = round(longest_pause(m.received, start - 1.0, done + 2.0) * 1000)
            print(json.dumps({"member": m.index, "pause_ms": pause, "changes": changes}), file=sys.stderr)
    for m in everyone:
        m.stop.set()
    for m in everyone:
        m.thread.join(timeout=STEP_S)
    stop_producing.set()
    producer.join(timeout=STEP_S)
    return {
        "protocol": args.protocol,
        "stagger_ms": args.stagger_ms,
        "rebalance_ms": round((done - start) * 1000),
        "newcomer_first_record_ms": round((newcomer.received[0] - start) * 1000),
        "pause_max_ms": round(max(pauses) * 1000),
        "pause_median_ms": round(statistics.median(pauses) * 1000),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bootstrap")
    parser.add_argument("--protocol", choices=["classic", "consumer"], required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=22)
    parser.add_argument("--classic-strategy", default="range,roundrobin")
    parser.add_argument("--stagger-ms", type=int, default=0)
    parser.add_argument(
        "--auto-commit-interval-ms",
        type=int,
        default=5000,
        help="librdkafka's default; a classic member also learns of a rebalance from a refused commit",
    )
    parser.add_argument("--verbose", action="store_true", help="each member's assignments, on stderr")
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        run = one_run(args)
        print(json.dumps(run), flush=True)
        runs.append(run)
    summary = {
        "protocol": args.protocol,
        "stagger_ms": args.stagger_ms,
        "runs": len(runs),
        "median": True,
    }
    for key in ["rebalance_ms", "newcomer_first_record_ms", "pause_max_ms", "pause_median_ms"]:
        summary[key] = statistics.median(r[key] for r in runs)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
