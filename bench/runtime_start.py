"""Kernel work of one container start, daemon side, and the monitor's memory.

    .venv/bin/python bench/runtime_start.py [--runs 40] [--pss 10]

Rows (median / p90 over --runs, after warm-up):
  start->exec    launcher.start() until it returns (PID 1 has execve'd /bin/true)
  start->exit    until exit.json exists (monitor reaped PID 1 and wrote it)
  variants       the same without one piece, to see where the time goes
  python-forks   the three forks alone (intermediate, monitor, PID 1) + execve, no namespaces
  crun           `crun run` of a bundle on the same rootfs (whole CLI run), if installed
--trace prints where the time of one start goes instead (stage marks and setup steps).
Then the PSS of N idle monitors (psutil memory_full_info().pss), started from this
process after importing what the daemon imports.

Needs root. Everything lives under a temp dir that is removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psutil  # noqa: E402

from mcd.runtime import launcher, security  # noqa: E402
from mcd.store import ContainerPaths  # noqa: E402
from mcd.runtime import syscalls as sc  # noqa: E402
from mcwire.spec import DEFAULT_NAMESPACES, ContainerSpec, Linux, Process  # noqa: E402
from mcd.templates import TemplateStore  # noqa: E402


def quantiles(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, int(len(xs) * 0.9))]


def wait_exit(paths, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(paths.exit):
            return
        time.sleep(0.0002)
    raise RuntimeError("no exit.json")


def one(root, lower, i, args, **kw):
    spec = ContainerSpec(name=f"b{i}", process=Process(args=args), **kw)
    paths = ContainerPaths(dir=os.path.join(root, "containers", spec.name), lower=lower)
    launcher.prepare_dirs(spec, paths)      # directory creation is the daemon's, not the kernel's
    t0 = time.perf_counter()
    launched = launcher.start(spec, paths, [])
    t1 = time.perf_counter()
    wait_exit(paths)
    t2 = time.perf_counter()
    shutil.rmtree(paths.dir, ignore_errors=True)
    return (t1 - t0) * 1000, (t2 - t0) * 1000, launched


def python_forks(n):
    """Baseline: the same process tree without namespaces or mounts."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            if os.fork() == 0:
                c, d = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                p1 = os.fork()
                if p1 == 0:
                    os.execv("/bin/true", ["true"])
                d.close()
                c.recv(10)
                b.send(b"S")
                os.waitpid(p1, 0)
            os._exit(0)
        b.close()
        os.waitpid(pid, 0)
        a.recv(10)
        out.append((time.perf_counter() - t0) * 1000)
        a.close()
    time.sleep(0.2)
    return out


def _timed(argv, n, warm=3):
    out = []
    for i in range(n + warm):
        t0 = time.perf_counter()
        r = subprocess.run(argv(i), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode:
            raise RuntimeError(r.stderr.strip())
        if i >= warm:
            out.append((time.perf_counter() - t0) * 1000)
    return out


def crun_runs(lower, tmp, n):
    """crun 1.8 refuses hybrid cgroups, so it runs inside a mount namespace held by a
    sleeping process where /sys/fs/cgroup/unified is unmounted (as bench/harness.py
    does); the nsenter that joins it is measured as its own row."""
    if not shutil.which("crun") or not shutil.which("nsenter"):
        return None
    bundle = os.path.join(tmp, "bundle")
    os.makedirs(bundle)
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    cfg["root"] = {"path": lower, "readonly": True}
    cfg["process"]["args"] = ["/bin/true"]
    cfg["process"]["terminal"] = False
    # its cgroups go under a parent of its own at the hierarchy roots, removed below
    cfg["linux"]["cgroupsPath"] = f"/mcbench-rt-{os.getpid()}/c"
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
         "umount /sys/fs/cgroup/unified && exec sleep infinity"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        for _ in range(500):
            with open(f"/proc/{holder.pid}/comm") as f:
                if f.read().strip() == "sleep":
                    break
            time.sleep(0.01)
        enter = ["nsenter", f"--mount=/proc/{holder.pid}/ns/mnt", "--"]
        state = os.path.join(tmp, "crun-state")
        nsenter_only = _timed(lambda i: [*enter, "/bin/true"], n)
        crun = _timed(lambda i: [*enter, "crun", "--root", state, "run", "--bundle", bundle,
                                 f"mcbench-rt-{os.getpid()}-{i}"], n)
        return nsenter_only, crun
    except RuntimeError as err:
        print(f"crun skipped: {err}")
        return None
    finally:
        holder.kill()
        holder.wait()
        for ctrl in os.listdir("/sys/fs/cgroup"):
            d = f"/sys/fs/cgroup/{ctrl}/mcbench-rt-{os.getpid()}"
            for sub in (os.path.join(d, "c"), d):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass


def pss_of_monitors(root, lower, n):
    started = []
    for i in range(n):
        spec = ContainerSpec(name=f"idle{i}", process=Process(args=["sleep", "1000"]))
        paths = ContainerPaths(dir=os.path.join(root, "containers", spec.name),
                                        lower=lower)
        started.append((paths, launcher.start(spec, paths, [])))
    time.sleep(0.5)
    pss = [psutil.Process(l.monitor_pid).memory_full_info().pss for _, l in started]
    uss = [psutil.Process(l.monitor_pid).memory_full_info().uss for _, l in started]
    rss = [psutil.Process(l.monitor_pid).memory_info().rss for _, l in started]
    for paths, l in started:
        os.kill(l.pid, signal.SIGKILL)
    for paths, _ in started:
        wait_exit(paths)
    return pss, uss, rss


def trace_breakdown(root, lower, n=10):
    """Where one start's time goes: timestamps from inside the forked processes.

    Wraps the setup steps (rootfs.step, as launcher and steps imported it) and the stage
    entry points, and has PID 1 send its trace over an inherited pipe just before the
    security stage."""
    import contextlib
    from mcd.runtime import rootfs, steps
    trace = []
    r, w = os.pipe()
    saved = {name: getattr(launcher, name) for name in ("step", "_container_init", "_monitor")}
    saved_steps = {name: getattr(steps, name) for name in
                   ("step", "drop_privileges_and_exec", "close_fds")}
    saved_rootfs_step = rootfs.step

    @contextlib.contextmanager
    def step(name, path=None):
        t = time.perf_counter()
        try:
            yield
        finally:
            trace.append((f"{name} {path or ''}".strip(), t, time.perf_counter()))

    def mark(what):
        trace.append((what, time.perf_counter(), None))

    def dpe(*a):
        mark("PID 1: setup done, security+exec next")
        os.write(w, (json.dumps(trace) + "\n").encode())
        saved_steps["drop_privileges_and_exec"](*a)

    def init(*a):
        mark("PID 1: forked")
        saved["_container_init"](*a)

    def mon(*a):
        mark("monitor: forked")
        saved["_monitor"](*a)

    launcher.step = rootfs.step = steps.step = step
    steps.drop_privileges_and_exec = dpe
    launcher._container_init = init
    launcher._monitor = mon
    steps.close_fds = lambda keep, low=3: saved_steps["close_fds"](set(keep) | {w}, low)
    rows = {}
    totals = []
    try:
        for i in range(n + 3):
            spec = ContainerSpec(name=f"tr{i}", process=Process(args=["/bin/true"]))
            paths = ContainerPaths(dir=os.path.join(root, "containers", spec.name),
                                            lower=lower)
            t0 = time.perf_counter()
            launcher.start(spec, paths, [])
            t1 = time.perf_counter()
            got = json.loads(os.read(r, 1 << 20).decode())
            wait_exit(paths)
            if i < 3:
                continue
            last = t0
            for name, start, end in got:
                name = name.replace(paths.rootfs, "<rootfs>").replace(spec.hostname, "<name>")
                if end is None:
                    rows.setdefault(name, []).append((start - last) * 1000)
                    last = start
                else:
                    rows.setdefault("  " + name, []).append((end - start) * 1000)
                    last = end
            rows.setdefault("security + execve + relay to the caller", []).append(
                (t1 - last) * 1000)
            totals.append((t1 - t0) * 1000)
    finally:
        for name, fn in saved.items():
            setattr(launcher, name, fn)
        for name, fn in saved_steps.items():
            setattr(steps, name, fn)
        rootfs.step = saved_rootfs_step
        os.close(r)
        os.close(w)
    print(f"\nbreakdown (median of {n}; indented rows are steps inside the stage above, "
          "others are time since the previous mark)")
    for name, xs in rows.items():
        med = statistics.median(xs)
        if med >= 0.05 or not name.startswith("  "):
            print(f"  {name:50} {med:7.2f} ms")
    print(f"  {'TOTAL start->exec':50} {statistics.median(totals):7.2f} ms")
    print(f"  (host mount table: {len(open('/proc/self/mountinfo').readlines())} entries; "
          f"unshare(CLONE_NEWNS) copies it and pivot_root detaches the copy)")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--pss", type=int, default=10)
    ap.add_argument("--trace", action="store_true", help="only the per-step breakdown")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("runtime_start: needs root", file=sys.stderr)
        return 2
    # Orphaned monitors come back to us, so nothing outlives the benchmark.
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    tmp = tempfile.mkdtemp(prefix="mcbench-rt-")
    try:
        root = os.path.join(tmp, "root")
        lower = TemplateStore(os.path.join(root, "templates")).rootfs_path("minimal")
        security.default_filter_bpf()       # compiled once per daemon, not per start
        gc.collect()
        if args.trace:
            trace_breakdown(root, lower)
            return 0
        no_net = [n for n in DEFAULT_NAMESPACES if n != "network"]
        variants = [
            ("default (all namespaces, seccomp)", {}),
            ("seccomp unconfined", {"linux": Linux(seccomp="unconfined")}),
            ("--network host (no netns)", {"linux": Linux(namespaces=no_net)}),
            ("no masked/readonly paths", {"linux": Linux(masked_paths=[], readonly_paths=[])}),
            ("bare: no netns/masks/seccomp", {"linux": Linux(namespaces=no_net, masked_paths=[],
                                                            readonly_paths=[],
                                                            seccomp="unconfined")}),
        ]
        print(f"{'what':40} {'start->exec ms':>18} {'start->exit ms':>18}")
        i = 0
        for label, kw in variants:
            for _ in range(5):
                one(root, lower, i, ["/bin/true"], **kw)
                i += 1
            to_exec, to_exit = [], []
            for _ in range(args.runs):
                a, b, _l = one(root, lower, i, ["/bin/true"], **kw)
                i += 1
                to_exec.append(a)
                to_exit.append(b)
            (m1, p1), (m2, p2) = quantiles(to_exec), quantiles(to_exit)
            print(f"{label:40} {m1:8.2f} (p90 {p1:5.2f}) {m2:8.2f} (p90 {p2:5.2f})")
            # Reap the monitors (we are their subreaper).
            while True:
                try:
                    if os.waitpid(-1, os.WNOHANG)[0] == 0:
                        break
                except ChildProcessError:
                    break
        m, p = quantiles(python_forks(args.runs))
        print(f"{'python forks + execve only':40} {m:8.2f} (p90 {p:5.2f})")
        cr = crun_runs(lower, tmp, min(args.runs, 20))
        if cr:
            m, p = quantiles(cr[0])
            print(f"{'nsenter /bin/true (reference)':40} {'':18} {m:8.2f} (p90 {p:5.2f})")
            m, p = quantiles(cr[1])
            print(f"{'nsenter crun run /bin/true (whole CLI)':40} {'':18} {m:8.2f} (p90 {p:5.2f})")
        if args.pss:
            for n in (1, args.pss):
                pss, uss, rss = pss_of_monitors(root, lower, n)
                print(f"monitor memory, {n:3} idle containers: PSS mean "
                      f"{statistics.mean(pss) / 2**20:.3f} MiB, USS mean "
                      f"{statistics.mean(uss) / 2**20:.3f} MiB, RSS "
                      f"{statistics.mean(rss) / 2**20:.1f} MiB")
                while True:
                    try:
                        if os.waitpid(-1, os.WNOHANG)[0] == 0:
                            break
                    except ChildProcessError:
                        break
    finally:
        time.sleep(0.2)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
