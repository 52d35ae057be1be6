"""Where mini-container's start path spends its time: py-spy on the daemon, pyinstrument
and -X importtime on the CLI. Root only; uses the same private daemon as harness.py.

    profile_start.py [--out DIR] [--runs 40]

Writes DIR/daemon.pyspy.txt (collapsed stacks), DIR/daemon-top.txt (inclusive/self time per
function), DIR/mcctl-pyinstrument.txt, DIR/mcctl-importtime.txt, and prints a summary.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fixtures as fx
import mcapi
from timing import base_env

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv/bin"


def run_spec() -> dict:
    from mcctl.__main__ import build_spec
    from mcctl.parser import build_parser
    return build_spec(build_parser().parse_args(["run", "--rm", "minimal", "/bin/true"]), {})


def summarize_collapsed(path: Path, top: int = 40) -> str:
    """Inclusive and self sample counts per frame from py-spy's raw (collapsed) output."""
    incl: collections.Counter = collections.Counter()
    self_: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        for f in set(frames):
            incl[f] += n
        self_[frames[-1]] += n
    out = [f"{total} samples", "", "inclusive % | self % | frame"]
    for frame, n in incl.most_common(top):
        out.append(f"{100 * n / total:10.1f} | {100 * self_[frame] / total:6.1f} | {frame}")
    out += ["", "top self time:"]
    for frame, n in self_.most_common(20):
        out.append(f"{100 * n / total:6.1f} | {frame}")
    return "\n".join(out)


# Phase markers in an `strace -f -ttt` of the daemon, in the order a start goes through them.
MARKERS = [
    ("request read", lambda c: c.startswith("recvmsg(") and "POST /v1/containers" in c),
    ("state dir written", lambda c: c.startswith("rename(") and ".new\", " in c),
    ("cgroup made", lambda c: c.startswith("mkdir(\"/sys/fs/cgroup/")),
    ("fork (intermediate)", lambda c: c.startswith("clone(") or c.startswith("clone3(") and "CLONE_VM" not in c),
    ("monitor: unshare pid ns", lambda c: c.startswith("unshare(CLONE_NEWPID)")),
    ("pid 1: join cgroups", lambda c: "cgroup.procs" in c and c.startswith("openat(") and "O_WR" in c),
    ("pid 1: unshare namespaces", lambda c: c.startswith("unshare(") and "CLONE_NEWNS" in c),
    ("pid 1: overlay mounted", lambda c: c.startswith("mount(\"overlay\"")),
    ("pid 1: pivot_root", lambda c: c.startswith("pivot_root(")),
    ("pid 1: seccomp", lambda c: "PR_SET_SECCOMP" in c or c.startswith("seccomp(")),
    ("pid 1: execve", lambda c: c.startswith("execve(\"/bin/true\"")),
    ("monitor: exit.json renamed", lambda c: c.startswith("rename(") and "exit.json.tmp" in c),
    ("daemon: cgroup removed", lambda c: c.startswith("rmdir(\"/sys/fs/cgroup/")),
    ("daemon: dir renamed .del", lambda c: c.startswith("rename(") and ".del\"" in c),
    ("daemon: rmtree done", lambda c: c.startswith("rmdir(") and ".del\")" in c),
]


def strace_timeline(path: Path) -> list[list[tuple[str, float]]]:
    """Per request: [(marker, ms since accept4)], the first occurrence of each marker."""
    import re
    runs: list[list[tuple[str, float]]] = []
    cur: list[tuple[str, float]] | None = None
    seen: set[str] = set()
    t0 = 0.0
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"(\d+)\s+(\d+\.\d+)\s+(.*)", line)
        if not m:
            continue
        t, call = float(m.group(2)), m.group(3)
        if call.startswith("accept4("):
            if cur:
                runs.append(cur)
            cur, seen, t0 = [], set(), t
            continue
        if cur is None:
            continue
        if call.startswith("sendto(") or "sendto resumed" in call:
            if "daemon: rmtree done" in seen and "response sent" not in seen:
                cur.append(("response sent", (t - t0) * 1000))
                seen.add("response sent")
            continue
        for name, pred in MARKERS:
            if name not in seen and pred(call):
                cur.append((name, (t - t0) * 1000))
                seen.add(name)
                break
    if cur:
        runs.append(cur)
    return [r for r in runs if any(n == "pid 1: execve" for n, _ in r)]


def timeline_table(runs: list[list[tuple[str, float]]]) -> str:
    import statistics
    names = [n for n, _ in MARKERS] + ["response sent"]
    at = {n: [dict(r)[n] for r in runs if n in dict(r)] for n in names}
    out = ["phase ends at (sorted by time)  | median ms since accept4, under strace | step from previous"]
    prev = 0.0
    for n in sorted((n for n in names if at[n]), key=lambda n: statistics.median(at[n])):
        med = statistics.median(at[n])
        out.append(f"{n:30s} | {med:7.1f} | +{med - prev:6.1f}")
        prev = med
    return "\n".join(out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "bench/results" / ("profile-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))))
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--strace-runs", type=int, default=5)
    ap.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("profile: must run as root", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    left = fx.teardown_all(fx.WORK, fx.MCD_ROOT)
    if left:
        print(f"profile: leftovers of an earlier run: {left}", file=sys.stderr)
        return 1
    fx.WORK.mkdir(parents=True)
    daemon = fx.Daemon(fx.WORK, fx.MCD_ROOT, str(VENV / "mcd"), out / "mcd.log")
    spy = None
    try:
        pid = daemon.start()
        sock = str(daemon.socket)
        body = {"spec": run_spec(), "attach": True, "rm": True, "stdin": False}
        null = os.open("/dev/null", os.O_RDWR)
        for _ in range(3):                       # warm: template, caches
            mcapi.timed_attach(sock, body, [null] * 3)
        raw = out / "daemon.pyspy.txt"
        spy = subprocess.Popen([str(VENV / "py-spy"), "record", "--pid", str(pid), "--subprocesses",
                                "--rate", str(a.rate), "--format", "raw", "--output", str(raw)],
                               stdout=subprocess.DEVNULL, stderr=open(out / "py-spy.log", "w"))
        time.sleep(1.0)                           # py-spy attaches
        stages = []
        for _ in range(a.runs):
            stages.append(mcapi.timed_attach(sock, body, [null] * 3))
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
        spy = None
        os.close(null)
        med = sorted(s["closed"] for s in stages)[len(stages) // 2]
        med_att = sorted(s["attached"] for s in stages)[len(stages) // 2]
        summary = summarize_collapsed(raw) if raw.exists() else "py-spy wrote nothing (see py-spy.log)"
        (out / "daemon-top.txt").write_text(summary)
        st_out = out / "daemon.strace"
        st = subprocess.Popen(["strace", "-f", "-ttt", "-s", "96", "-o", str(st_out), "-p", str(pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        null = os.open("/dev/null", os.O_RDWR)
        traced = [mcapi.timed_attach(sock, body, [null] * 3) for _ in range(a.strace_runs)]
        os.close(null)
        time.sleep(0.3)
        st.send_signal(signal.SIGINT)
        st.wait(timeout=30)
        timeline = timeline_table(strace_timeline(st_out))
        (out / "daemon-timeline.txt").write_text(timeline + "\n\nclient view under strace: " + repr(traced))
        env = base_env()
        prof = out / "mcctl-pyinstrument.txt"
        subprocess.run([str(VENV / "python"), "-m", "pyinstrument", "--show-all", "-o", str(prof), "-m", "mcctl",
                        "--socket", sock, "run", "--rm", "minimal", "/bin/true"],
                       env=env, check=False, stdin=subprocess.DEVNULL, capture_output=True)
        imp = subprocess.run([str(VENV / "python"), "-X", "importtime", "-c", "import mcctl.__main__"],
                             env=env, capture_output=True, text=True)
        rows = [ln for ln in imp.stderr.splitlines() if ln.startswith("import time:") and "|" in ln]
        rows = sorted(rows[1:], key=lambda ln: int(ln.split("|")[1]), reverse=True)
        (out / "mcctl-importtime.txt").write_text("\n".join(rows))
        print(f"daemon: {a.runs} attached runs, median {med_att:.1f} ms to exec, {med:.1f} ms to close")
        print(summary.split("top self time:")[0][:4000])
        print(timeline)
        print("mcctl imports (cumulative us):")
        print("\n".join(rows[:15]))
        print(f"profile: files in {out}")
        return 0
    finally:
        if spy is not None:
            spy.kill()
            spy.wait()
        fx.teardown_all(fx.WORK, fx.MCD_ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
