#!/usr/bin/env python3
"""Measures the broker's produce and consume paths through librdkafka on
loopback (benches/kafka_load.rs), with this machine's disk and loopback
ceilings measured in the same run, and prints a markdown table of medians
for docs/benchmarks.md. An interim tool until `rill bench` exists.

    tools/frontend-bench.py --runs 3 --messages 1000000

Needs python3, cargo and dd. Builds release binaries, starts a broker per
flush policy on a fresh data directory under RILL_BENCH_DIR (default
/tmp), and deletes it afterwards.
"""

import argparse
import datetime
import os
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release"
TICKS = os.sysconf("SC_CLK_TCK")


def run(cmd, **kw):
    print("+", " ".join(map(str, cmd)), file=sys.stderr, flush=True)
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, **kw).stdout


def disk_ceiling(root):
    """MB/s of 2 GiB of 1 MiB writes then one fdatasync (dd conv=fdatasync)."""
    path = pathlib.Path(root) / "ceiling.bin"
    started = time.monotonic()
    run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", "count=2048", "conv=fdatasync"])
    seconds = time.monotonic() - started
    path.unlink()
    return 2048 * 1024 * 1024 / seconds / 1e6


def loopback_ceiling(total=4 << 30, chunk=1 << 20):
    """MB/s of one TCP stream over 127.0.0.1, 1 MiB sends into 1 MiB receives."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    received = [0]

    def sink():
        conn, _ = server.accept()
        buf = bytearray(chunk)
        while received[0] < total:
            n = conn.recv_into(buf)
            if n == 0:
                break
            received[0] += n
        conn.close()

    thread = threading.Thread(target=sink)
    thread.start()
    client = socket.create_connection(server.getsockname())
    data = b"\0" * chunk
    started = time.monotonic()
    for _ in range(total // chunk):
        client.sendall(data)
    thread.join()
    seconds = time.monotonic() - started
    client.close()
    server.close()
    return total / seconds / 1e6


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_broker(data, policy):
    port = 19000 + os.getpid() % 1000
    proc = subprocess.Popen(
        [BIN / "rill", "broker", "--data", data, "--listen", f"127.0.0.1:{port}",
         "--set", f"log.flush.policy={policy}"],
        stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "listening on" in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, f"127.0.0.1:{port}"
    raise RuntimeError("the broker did not start")


def load(bootstrap, topic, messages, size, acks):
    out = run([BIN / "kafka-load", bootstrap, topic, str(messages), str(size), acks])
    rates = {}
    for line in out.splitlines():
        m = re.match(r"(produce|consume): .* ([0-9.]+) msg/s, ([0-9.]+) MB/s", line)
        if m:
            rates[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    run(["cargo", "build", "--release", "-p", "rill", "-p", "rill-benches", "--bins"])
    commit = run(["git", "rev-parse", "--short", "HEAD"]).strip()
    root = tempfile.mkdtemp(dir=os.environ.get("RILL_BENCH_DIR"))
    cases = [
        ("fsync", 1024, "all"),
        ("none", 1024, "all"),
        ("fsync", 100, "1"),
        ("none", 100, "1"),
    ]
    rows = []
    disks, loops = [], []
    try:
        for policy in ("fsync", "none"):
            data = pathlib.Path(root) / policy
            proc, bootstrap = start_broker(data, policy)
            try:
                for p, size, acks in cases:
                    if p != policy:
                        continue
                    produce, consume, cpu_per_gb = [], [], []
                    for i in range(args.runs):
                        disks.append(disk_ceiling(root))
                        loops.append(loopback_ceiling())
                        before = cpu_seconds(proc.pid)
                        rates = load(bootstrap, f"{policy}-{size}-{acks}-{i}", args.messages, size, acks)
                        cpu = cpu_seconds(proc.pid) - before
                        produce.append(rates["produce"])
                        consume.append(rates["consume"])
                        cpu_per_gb.append(cpu / (2 * args.messages * size / 1e9))
                    rows.append((policy, size, acks, produce, consume, cpu_per_gb, rss_mib(proc.pid)))
            finally:
                proc.terminate()
                proc.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    med = statistics.median
    print(f"Commit `{commit}`, {datetime.date.today()}, {os.cpu_count()} cores; "
          f"`tools/frontend-bench.py --runs {args.runs} --messages {args.messages}`.\n")
    print(f"Ceilings in the same run (median of {len(disks)}): disk {med(disks):,.0f} MB/s "
          f"(dd 2 GiB, 1 MiB writes, fdatasync); loopback {med(loops):,.0f} MB/s (one TCP stream).\n")
    print("| policy | message | acks | produce msg/s | produce MB/s | consume msg/s | consume MB/s | broker CPU s per GB in+out | broker anon RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for policy, size, acks, produce, consume, cpu, rss in rows:
        print(f"| {policy} | {size} B | {acks} | {med(r[0] for r in produce):,.0f} | {med(r[1] for r in produce):,.0f} "
              f"| {med(r[0] for r in consume):,.0f} | {med(r[1] for r in consume):,.0f} | {med(cpu):.2f} | {rss:.0f} MiB |")


if __name__ == "__main__":
    main()
