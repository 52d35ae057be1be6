"""Memory of one supervisor for N running processes, beside N per-container monitors.

    sudo .venv/bin/python bench/supervisor_bench.py [--counts 0,100,500] [--mcd-socket S --mcd-root R]

Supervisor: a private ``python -m mcd.supervisor`` spawns N ``sleep`` processes (each
with its two pipes, its log and exit record, as a container's PID 1 would have) and
its PSS and RSS are read from /proc after each step; what the container side costs
us is the supervisor alone (no per-container helper exists), divided by N.
Monitors (optional, --mcd-socket): N detached `minimal sleep` containers on a running
mcd, the PSS of their monitors (state.json's monitor_pid) summed, divided by N.
Fairness: the log lag of a line-a-100-ms container next to two `yes` floods.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.procstat import memory, monitor_pids, pss_sum  # noqa: E402
from mcd.runtime import logs  # noqa: E402
from mcd.supervisor.client import SupervisorClient  # noqa: E402


def _wait_socket(path: str) -> None:
    for _ in range(200):
        try:
            with SupervisorClient(path, timeout=1) as c:
                c.call("ping")
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("supervisor did not come up")


def supervisor_memory(counts: list[int], d: str) -> dict:
    sock = os.path.join(d, "s.sock")
    sup = subprocess.Popen([sys.executable, "-m", "mcd.supervisor", "--socket", sock])
    pids = []
    out = {}
    try:
        _wait_socket(sock)
        with SupervisorClient(sock) as c:
            for n in counts:
                while len(pids) < n:
                    i = len(pids)
                    ans, _ = c.call("spawn", id=f"c{i}", argv=["sleep", "100000"],
                                    log=os.path.join(d, f"c{i}.log"),
                                    exit=os.path.join(d, f"c{i}.exit"))
                    pids.append(ans["pid"])
                time.sleep(1.0)
                out[n] = memory(sup.pid)
        return out
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        sup.terminate()
        sup.wait()


def monitor_memory(n: int, mcctl: list[str], root: Path) -> dict:
    ids = []
    try:
        for _ in range(n):
            r = subprocess.run(mcctl + ["run", "-d", "--network", "none", "minimal", "sleep", "100000"],
                               capture_output=True, text=True, check=True)
            ids.append(r.stdout.strip())
        time.sleep(1.0)
        mons = monitor_pids(root)
        return pss_sum(mons)
    finally:
        for i in range(0, len(ids), 50):
            subprocess.run(mcctl + ["rm", "-f", *ids[i:i + 50]], capture_output=True)


def fairness(d: str) -> dict:
    sock = os.path.join(d, "f.sock")
    sup = subprocess.Popen([sys.executable, "-m", "mcd.supervisor", "--socket", sock])
    pids = []
    try:
        _wait_socket(sock)
        with SupervisorClient(sock) as c:
            for k in range(2):
                pids.append(c.call("spawn", id=f"f{k}", argv=["yes", "flood"],
                                   log=os.path.join(d, f"f{k}.log"))[0]["pid"])
            script = "i=0; while [ $i -lt 30 ]; do date +%s%N; sleep 0.1; i=$((i+1)); done"
            c.call("spawn", id="t", argv=["sh", "-c", script], log=os.path.join(d, "t.log"),
                   exit=os.path.join(d, "t.exit"))
            while not os.path.exists(os.path.join(d, "t.exit")):
                time.sleep(0.1)
        lags = []
        for e in logs.read(os.path.join(d, "t.log")):
            secs, _, frac = e["time"].rstrip("Z").partition(".")
            read = (int(time.mktime(time.strptime(secs, "%Y-%m-%dT%H:%M:%S"))) - time.timezone) \
                * 10 ** 9 + int(frac)
            lags.append((read - int(e["log"])) / 1e6)
        lags.sort()
        flood_bytes = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
                          if f.startswith("f") and ".log" in f)
        return {"lines": len(lags), "lag_ms_median": lags[len(lags) // 2],
                "lag_ms_max": lags[-1], "flood_log_bytes": flood_bytes}
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        sup.terminate()
        sup.wait()


def _daemon(base: str, supervised: bool) -> tuple[subprocess.Popen, str, str]:
    import secrets
    tag = "mcbench-" + secrets.token_hex(4)
    root, sock = os.path.join(base, "root-" + tag), os.path.join(base, tag + ".sock")
    argv = [sys.executable, "-m", "mcd", "--socket", sock, "--root", root, "--cgroup-parent", tag,
            "--web-listen", "off", "--docker-socket", "off", "--default-network", "none"]
    p = subprocess.Popen(argv + (["--supervisor"] if supervised else ["--no-supervisor"]),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    mcctl = [sys.executable, "-m", "mcctl", "--socket", sock]
    for _ in range(300):
        if subprocess.run(mcctl + ["ps"], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    return p, root, tag


def daemon_memory(counts: list[int], base: str) -> dict:
    """Real containers (`minimal sleep`) on two private daemons: per-container monitors
    vs --supervisor. The host-side cost per container: the monitors' PSS summed, or the
    supervisor's PSS (it is the only container-side helper), divided by the count."""
    from mcctl.client import Client
    out = {}
    for supervised in (False, True):
        p, root, tag = _daemon(base, supervised)
        sock = os.path.join(base, tag + ".sock")
        client = Client(sock)
        ids = []
        sup_pid = None
        res = out["supervisor" if supervised else "monitors"] = {}
        try:
            if supervised:
                with SupervisorClient(os.path.join(root, "run", "supervisor.sock")) as c:
                    sup_pid = c.call("ping")[0]["pid"]
                res["idle"] = memory(sup_pid)
            for n in counts:
                while len(ids) < n:
                    spec = {"process": {"args": ["sleep", "100000"]},
                            "root": {"image": "minimal"}, "linux": {"namespaces": [
                                "pid", "mount", "ipc", "uts", "network", "cgroup"]}}
                    ids.append(client.post("/v1/containers", {"spec": spec, "start": True})["id"])
                time.sleep(2.0)
                if supervised:
                    m = memory(sup_pid)
                    helpers = [pid for pid in monitor_pids(Path(root))
                               if Path(f"/proc/{pid}/comm").read_text().strip() == "mcd-monitor"]
                    m["monitors_left"] = len(helpers)
                    m["pss_per_container_kib"] = m["pss_kib"] / n
                    m["rss_growth_per_100_kib"] = (m["rss_kib"] - res["idle"]["rss_kib"]) * 100 / n
                else:
                    m = pss_sum(monitor_pids(Path(root)))
                    m["pss_per_container_kib"] = m["pss_kib"] / n
                m["mcd"] = memory(p.pid)
                res[n] = m
        finally:
            for cid in ids:
                try:
                    client.delete(f"/v1/containers/{cid}", force=True)
                except Exception:       # noqa: BLE001 - best effort; the daemon is stopped next
                    pass
            p.terminate()
            p.wait()
            if sup_pid is not None:
                os.kill(sup_pid, signal.SIGTERM)
            for d in Path("/sys/fs/cgroup").glob(f"*/{tag}"):
                try:
                    d.rmdir()
                except OSError:
                    pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="0,100,500")
    ap.add_argument("--mcd-socket")
    ap.add_argument("--mcd-root")
    ap.add_argument("--monitors", type=int, default=100)
    ap.add_argument("--daemons", action="store_true",
                    help="real containers on two private daemons (monitors vs --supervisor)")
    args = ap.parse_args()
    counts = [int(x) for x in args.counts.split(",")]
    d = tempfile.mkdtemp(prefix="mcbench-sup-")
    os.chmod(d, 0o755)
    try:
        if args.daemons:
            print(json.dumps(daemon_memory([c for c in counts if c], d), indent=2))
            return
        result = {"supervisor": supervisor_memory(counts, d)}
        base = result["supervisor"][counts[0]]
        for n in counts[1:]:
            m = result["supervisor"][n]
            m["pss_per_container_kib"] = m["pss_kib"] / n
            m["rss_growth_per_100_kib"] = (m["rss_kib"] - base["rss_kib"]) * 100 / n
        result["fairness"] = fairness(d)
        if args.mcd_socket:
            mcctl = [sys.executable, "-m", "mcctl", "--socket", args.mcd_socket]
            result["monitors"] = monitor_memory(args.monitors, mcctl, Path(args.mcd_root))
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
