#!/usr/bin/env python3
"""Runs the storage benchmarks several times and prints a markdown table of
the median throughput of each, with the disk ceiling measured in the same
runs, the commit, the date and the machine, for docs/benchmarks.md.

    tools/storage-bench.py --runs 3            # criterion suite, 3 times
    tools/storage-bench.py --runs 3 --clean-open-gib 10

Needs only python3 and cargo. Run it on a quiet machine: it writes tens of
GiB to the temp directory (RILL_BENCH_DIR overrides it; use a real disk).
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRITERION = ROOT / "target" / "criterion"
CEILING = "ceiling/dd_1MiB_writes_then_fdatasync"


def run(cmd):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout


def collect():
    """MB/s of every benchmark in target/criterion, from its last run."""
    results = {}
    for bench in CRITERION.rglob("new/benchmark.json"):
        meta = json.loads(bench.read_text())
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        throughput = meta.get("throughput") or {}
        bytes_per_iter = throughput.get("Bytes") or throughput.get("BytesDecimal")
        if not bytes_per_iter:
            continue
        seconds = estimates["median"]["point_estimate"] / 1e9
        results[meta["full_id"]] = bytes_per_iter / seconds / 1e6
    return results


def machine():
    cpu = next(
        (l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
        platform.processor(),
    )
    mem_kb = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")))
    fs = run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", os.environ.get("RILL_BENCH_DIR", "/tmp")]).strip()
    return f"{os.cpu_count()} x {cpu}, {mem_kb // (1024 * 1024)} GiB RAM, {platform.release()}, {fs}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--filter", default="", help="criterion filter, e.g. append")
    parser.add_argument("--clean-open-gib", type=int, default=0, help="also run clean-open with this many GiB")
    args = parser.parse_args()

    commit = run(["git", "rev-parse", "--short", "HEAD"]).strip()
    dirty = run(["git", "status", "--porcelain", "--untracked-files=no"]).strip()
    runs = []
    for i in range(args.runs):
        cmd = ["cargo", "bench", "-q", "-p", "rill-benches", "--bench", "storage"]
        if args.filter:
            cmd += ["--", args.filter]
        run(cmd)
        runs.append(collect())
        print(f"run {i + 1}/{args.runs} done", file=sys.stderr, flush=True)

    names = sorted(set().union(*runs), key=lambda n: (n != CEILING, n))
    ceiling = statistics.median(r[CEILING] for r in runs if CEILING in r) if any(CEILING in r for r in runs) else None
    print(f"Commit {commit}{' (with uncommitted changes)' if dirty else ''}, {datetime.date.today()}, "
          f"{machine()}.\n")
    print("| benchmark | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | median MB/s | vs disk ceiling |")
    print("|---|" + "---:|" * (len(runs) + 2))
    for name in names:
        values = [r[name] for r in runs if name in r]
        median = statistics.median(values)
        share = f"{median / ceiling:.0%}" if ceiling and name.startswith("append/fsync") else ""
        cells = " | ".join(f"{v:,.0f}" for v in values)
        print(f"| {name} | {cells} | **{median:,.0f}** | {share} |")

    if args.clean_open_gib:
        out = run(["cargo", "run", "-q", "--release", "-p", "rill-benches", "--bin", "clean-open", "--",
                   str(args.clean_open_gib)])
        print("\n```\n$ cargo run --release -p rill-benches --bin clean-open -- "
              f"{args.clean_open_gib}\n{out.rstrip()}\n```")


if __name__ == "__main__":
    main()
