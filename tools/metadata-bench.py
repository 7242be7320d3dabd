#!/usr/bin/env python3
"""A single broker's metadata path, timed: start to serving and
CreateTopics latency, for one or more `rill` binaries, interleaved.

Each round, for each binary in turn: start a broker on an empty data
directory and time spawn to its "listening on" line (first start); time
CreateTopics of a 1-partition topic and of a 1,000-partition topic (one
request each, kafka-python's admin client, from sending to the answer);
stop it with SIGTERM, start it again on the same data and time spawn to
"listening on" (a restart with 1,003 partitions to open), stop it. Prints
the medians per binary as a markdown table, with the commit of each
binary's tree if given as NAME=BINARY.

Needs kafka-python (`pip install kafka-python`).

    tools/metadata-bench.py --rounds 5 --binary before=/tmp/rill-before \\
        --binary after=target/release/rill
"""

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from kafka.admin import KafkaAdminClient, NewTopic


def start(binary, data, port):
    """Starts a broker; returns (process, seconds from spawn to listening)."""
    log = open(f"{data}.log", "w")
    started = time.monotonic()
    proc = subprocess.Popen(
        [binary, "broker", "--data", data, "--listen", f"127.0.0.1:{port}"],
        stdout=log,
        stderr=log,
    )
    deadline = started + 120
    while True:
        with open(f"{data}.log") as f:
            if "listening on" in f.read():
                return proc, time.monotonic() - started
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the broker did not start: see {data}.log")
        time.sleep(0.002)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)


def create(admin, name, partitions):
    started = time.monotonic()
    result = admin.create_topics(
        [NewTopic(name, partitions, 1)], timeout_ms=120_000
    )
    elapsed = time.monotonic() - started
    errors = [e for e in getattr(result, "topic_errors", []) if e[1] != 0]
    if errors:
        sys.exit(f"CreateTopics {name}: {errors}")
    return elapsed


def round_for(binary, port):
    root = tempfile.mkdtemp(prefix="rill-metadata-bench-")
    data = f"{root}/data"
    try:
        proc, first_start = start(binary, data, port)
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=120_000)
        one = create(admin, "one", 1)
        thousand = create(admin, "thousand", 1000)
        admin.close()
        stop(proc)
        proc, restart = start(binary, data, port)
        stop(proc)
        return first_start, one, thousand, restart
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--binary", action="append", required=True, metavar="NAME=BINARY")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--port", type=int, default=19600)
    args = parser.parse_args()
    binaries = [b.partition("=")[::2] for b in args.binary]
    results = {name: [] for name, _ in binaries}
    for round_ in range(args.rounds):
        for name, binary in binaries:
            row = round_for(binary, args.port)
            results[name].append(row)
            print(
                f"round {round_} {name}: start {row[0] * 1000:.0f} ms, create 1 {row[1] * 1000:.1f} ms, "
                f"create 1000 {row[2] * 1000:.0f} ms, restart {row[3] * 1000:.0f} ms",
                file=sys.stderr,
                flush=True,
            )
    print(f"`tools/metadata-bench.py {' '.join(sys.argv[1:])}`, medians of {args.rounds} rounds\n")
    print("| binary | start to serving (empty) | CreateTopics, 1 partition | CreateTopics, 1,000 partitions | restart to serving (1,003 partitions) |")
    print("|---|---|---|---|---|")
    for name, _ in binaries:
        m = [statistics.median(column) for column in zip(*results[name])]
        print(
            f"| {name} | {m[0] * 1000:.0f} ms | {m[1] * 1000:.1f} ms | {m[2] * 1000:.0f} ms | {m[3] * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
