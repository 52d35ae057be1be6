#!/usr/bin/env bash
# The numbers behind "what do the packages install" (docs/packaging.md): median wall time of
# `mcctl --version` over N runs for each frozen form, and its size on disk.
# Usage: packaging/measure-dist.sh [runs]   (after make dist)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
runs="${1:-20}"
/usr/bin/python3 - "$runs" <<'PY'
import os, statistics, subprocess, sys, time

runs = int(sys.argv[1])

def size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)

forms = [
    ("one-file dist/mcctl", ["dist/mcctl", "--version"], "dist/mcctl"),
    ("one-dir dist/mcctl-dir/mcctl", ["dist/mcctl-dir/mcctl", "--version"], "dist/mcctl-dir"),
    ("venv python -m mcctl", [".venv/bin/python", "-m", "mcctl", "--version"], None),
]
print(f"{'form':34} {'median ms':>9} {'min ms':>7} {'size MB':>8}")
for label, argv, path in forms:
    if not os.path.exists(argv[0]):
        continue
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    mb = f"{size(path) / 1e6:8.1f}" if path else f"{'-':>8}"
    print(f"{label:34} {statistics.median(times):9.1f} {min(times):7.1f} {mb}")
PY
