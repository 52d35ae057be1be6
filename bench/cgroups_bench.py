"""Resource Manager cost: cgroup create+configure+destroy per container, and
stats for N running containers in one call.

    .venv/bin/python bench/cgroups_bench.py [--rounds 200] [--stats-n 100] [--json OUT]

Goals (issue #4): <= 2 ms per container for create+configure+destroy, <= 50 ms
for stats_all over 100 running containers. Needs root; works under a private
parent `mcbench-<random>` that is removed (and proven removed) at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mcd.runtime import cgroups  # noqa: E402
from mcwire.spec import Resources  # noqa: E402

MiB = 1024 * 1024


def summary(samples_s: list[float]) -> dict:
    ms = sorted(x * 1000 for x in samples_s)
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 3),
            "p95_ms": round(ms[int(len(ms) * 0.95) - 1 if len(ms) > 1 else 0], 3),
            "mean_ms": round(statistics.fmean(ms), 3), "min_ms": round(ms[0], 3)}


def typical_resources(mgr) -> Resources:
    """What `mcctl run -m 64m --cpus 0.5 --cpu-shares 512` asks for (plus the pids default)."""
    if not {"memory", "cpu", "pids"} <= mgr.features.controllers:
        return Resources(pids_limit=None)      # the controller-less unified mount of a hybrid host
    return Resources(memory=64 * MiB, memory_swap=64 * MiB if mgr.features.swap else None,
                     cpu_quota=50000, cpu_period=100000, cpu_shares=512)


def bench_lifecycle(mgr, rounds: int, warmup: int = 10) -> dict:
    res = typical_resources(mgr)
    total, create, destroy = [], [], []
    for i in range(warmup + rounds):
        cid = f"b{i}"
        t0 = time.perf_counter()
        cg = mgr.create(cid, res)
        t1 = time.perf_counter()
        cg.destroy()
        t2 = time.perf_counter()
        if i >= warmup:
            total.append(t2 - t0)
            create.append(t1 - t0)
            destroy.append(t2 - t1)
    return {"create_configure_destroy": summary(total), "create_configure": summary(create),
            "destroy": summary(destroy), "resources": res.to_dict(),
            "dirs_per_container": len(mgr._make("x").unique_dirs())}


def bench_stats(mgr, n: int, repeats: int = 30) -> dict:
    res = typical_resources(mgr)
    cgs, procs = [], []
    try:
        for i in range(n):
            cg = mgr.create(f"s{i}", res)
            cgs.append(cg)
            procs.append(subprocess.Popen(["sleep", "600"], preexec_fn=lambda cg=cg: cg.join(0)))
        ids = [cg.id for cg in cgs]
        got = mgr.stats_all(ids)
        assert len(got) == n and all(s["pids_current"] in (1, None) for s in got.values())
        samples, cold = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            mgr.stats_all(ids)
            samples.append(time.perf_counter() - t0)
        for _ in range(repeats):
            mgr.close()         # the first pass of a daemon: every file opened afresh
            t0 = time.perf_counter()
            mgr.stats_all(ids)
            cold.append(time.perf_counter() - t0)
        one = []
        for cg in cgs[:repeats]:
            t0 = time.perf_counter()
            cg.stats()
            one.append(time.perf_counter() - t0)
        return {"containers": n, "stats_all": summary(samples), "stats_all_cold": summary(cold),
                "one_container": summary(one)}
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        for cg in cgs:
            cg.destroy(kill=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--stats-n", type=int, default=100)
    ap.add_argument("--driver", choices=["auto", "v2"], default="auto",
                    help="v2 on a hybrid host: the unified mount (no controllers)")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("cgroups_bench: needs root", file=sys.stderr)
        return 2
    layout = cgroups.detect(driver=None if args.driver == "auto" else "v2")
    mgr = cgroups.CgroupManager(parent=f"mcbench-{secrets.token_hex(4)}", layout=layout)
    mgr.prepare()
    try:
        out = {"layout": {"mode": layout.mode, "driver": layout.driver, "delegated": layout.delegated},
               "kernel": os.uname().release,
               "lifecycle": bench_lifecycle(mgr, args.rounds),
               "stats": bench_stats(mgr, args.stats_n)}
    finally:
        for cid in mgr.list_ids():
            mgr.open(cid).destroy(kill=True)
        mgr.remove_parent()
        left = [b for b in mgr.unique_bases() if os.path.exists(b)]
        if left:
            print(f"cgroups_bench: left behind {left}", file=sys.stderr)
            return 1
    lc, st = out["lifecycle"], out["stats"]
    print(f"cgroups {layout.mode}/{layout.driver}, kernel {out['kernel']}, "
          f"{lc['dirs_per_container']} dir(s) per container")
    print(f"  create+configure+destroy: median {lc['create_configure_destroy']['median_ms']:.3f} ms, "
          f"p95 {lc['create_configure_destroy']['p95_ms']:.3f} ms  (goal <= 2 ms; "
          f"create {lc['create_configure']['median_ms']:.3f}, destroy {lc['destroy']['median_ms']:.3f})")
    print(f"  stats_all({st['containers']} running): median {st['stats_all']['median_ms']:.3f} ms, "
          f"p95 {st['stats_all']['p95_ms']:.3f} ms  (goal <= 50 ms; first pass with no open files "
          f"{st['stats_all_cold']['median_ms']:.3f} ms; one container "
          f"{st['one_container']['median_ms']:.3f} ms)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
