#!/usr/bin/env python3
"""Time from a partition leader's SIGKILL to the first acknowledged produce.

Starts three `rill broker` processes on loopback as one cluster (each a
controller too), creates a topic with one partition and three replicas,
and warms up a kafka-python producer (acks=all, retries on). Then, each
round, it SIGKILLs the partition's leader, times how long one produce
takes to be acknowledged by the new leader, restarts the killed broker
and waits for it to rejoin. Prints the times, their median, the broker
settings and the commit.

Needs kafka-python (`pip install kafka-python`) and a release build
(`cargo build --release -p rill`).

    tools/cluster-failover.py --rounds 5                      # Rill's defaults
    tools/cluster-failover.py --rounds 5 --set broker.session.timeout.ms=1000 \\
        --set broker.heartbeat.interval.ms=100 --request-timeout-ms 3000
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from kafka import KafkaProducer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/rill"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base-port", type=int, default=19092)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--request-timeout-ms",
        type=int,
        default=30000,
        help="the producer's request.timeout.ms",
    )
    parser.add_argument(
        "--rejoin-timeout-s", type=float, default=60, help="bound on waiting for a full ISR"
    )
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="rill-failover-")
    ports = [args.base_port + 100 * i for i in range(3)]
    quorum = ",".join(f"{i + 1}@127.0.0.1:{p + 1}" for i, p in enumerate(ports))
    bootstrap = ",".join(f"127.0.0.1:{p}" for p in ports)
    procs = {}

    def start(node):
        command = [
            args.binary, "broker", "--node-id", str(node), "--controller-quorum", quorum,
            "--listen", f"127.0.0.1:{ports[node - 1]}", "--data", f"{data}/node-{node}",
        ]
        for setting in args.set:
            command += ["--set", setting]
        log = open(f"{data}/node-{node}.log", "a")
        procs[node] = subprocess.Popen(command, stderr=log, env=dict(os.environ, RUST_LOG="warn"))

    def rill(*command):
        return subprocess.run(
            [args.binary, *command, "--bootstrap", bootstrap],
            capture_output=True, text=True, check=False,
        )

    def partition():
        out = rill("topic", "describe", "failover", "--json")
        if out.returncode != 0:
            return None
        return json.loads(out.stdout)["partitions"][0]

    def wait_for(what, condition, limit):
        deadline = time.time() + limit
        while not condition():
            if time.time() > deadline:
                sys.exit(f"timed out waiting for {what}")
            time.sleep(0.1)

    try:
        for node in (1, 2, 3):
            start(node)
        wait_for("the cluster", lambda: rill("topic", "create", "failover",
                 "--partitions", "1", "--replication-factor", "3").returncode == 0, 60)
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=0, retries=1_000_000,
            request_timeout_ms=args.request_timeout_ms, metadata_max_age_ms=500,
            reconnect_backoff_ms=50, max_block_ms=120_000,
        )
        for _ in range(50):
            producer.send("failover", b"warm-up").get(timeout=60)
        times = []
        for _ in range(args.rounds):
            wait_for("a full ISR", lambda: (p := partition()) is not None
                     and sorted(p["isr"]) == [1, 2, 3], args.rejoin_timeout_s)
            leader = partition()["leader"]
            procs[leader].send_signal(signal.SIGKILL)
            procs[leader].wait()
            killed = time.time()
            producer.send("failover", b"after the kill").get(timeout=120)
            times.append(time.time() - killed)
            start(leader)
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        print(f"commit {commit}; settings: {' '.join(args.set) or 'defaults'}; "
              f"producer request.timeout.ms {args.request_timeout_ms}")
        print("SIGKILL of the leader to the first acknowledged acks=all produce (s): "
              + " ".join(f"{t:.2f}" for t in times)
              + f"; median {statistics.median(times):.2f}")
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    main()
