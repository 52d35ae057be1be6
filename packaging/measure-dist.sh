#!/usr/bin/env bash
# The numbers behind "what do the packages install" (docs/packaging.md): `mcctl --version`
# for each frozen form, median wall time and median CPU time (user+sys, less sensitive to
# other load on the machine) over N runs, interleaved so load changes hit every form alike;
# and the size on disk. Usage: packaging/measure-dist.sh [runs]   (after make dist)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
runs="${1:-20}"
# The .deb's form: mcctl's modules on Debian's python3 -I -S, with bytecode as postinst makes it.
py_tree="$repo/build/measure/python"
rm -rf "$py_tree" && mkdir -p "$py_tree"
/usr/bin/python3 packaging/mcctl_python_tree.py "$py_tree/lib" >/dev/null
/usr/bin/python3 -m compileall -q "$py_tree/lib" >/dev/null
printf '#!/usr/bin/python3 -IBS\nimport sys\nsys.path.insert(0, "%s")\nfrom mcctl.__main__ import entry\nentry()\n' "$py_tree/lib" > "$py_tree/mcctl"
chmod +x "$py_tree/mcctl"
/usr/bin/python3 - "$runs" <<'PY'
import os, resource, statistics, subprocess, sys, time

runs = int(sys.argv[1])

def size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)

forms = [
    ("one-file dist/mcctl", ["dist/mcctl", "--version"], "dist/mcctl"),
    ("one-dir dist/mcctl-dir/mcctl", ["dist/mcctl-dir/mcctl", "--version"], "dist/mcctl-dir"),
    ("python3 -IS (the .deb's mcctl)", ["build/measure/python/mcctl", "--version"], "build/measure/python/lib"),
    ("venv python -m mcctl", [".venv/bin/python", "-m", "mcctl", "--version"], None),
]
forms = [f for f in forms if os.path.exists(f[1][0])]
wall = {f[0]: [] for f in forms}
cpu = {f[0]: [] for f in forms}
for label, argv, _ in forms:
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)  # warm the page cache
for _ in range(runs):
    for label, argv, _ in forms:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        wall[label].append((time.perf_counter() - t0) * 1000)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[label].append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000)
print(f"load average before: {os.getloadavg()[0]:.2f}  runs: {runs}")
print(f"{'form':32} {'wall median ms':>14} {'wall min ms':>11} {'cpu median ms':>13} {'size MB':>8}")
for label, _, path in forms:
    mb = f"{size(path) / 1e6:8.1f}" if path else f"{'-':>8}"
    print(f"{label:32} {statistics.median(wall[label]):14.1f} {min(wall[label]):11.1f} "
          f"{statistics.median(cpu[label]):13.1f} {mb}")
PY
