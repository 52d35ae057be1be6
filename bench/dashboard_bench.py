#!/usr/bin/env python3
"""The dashboard's live feed under load, side by side with `mcctl stats --no-stream`.

With N running containers (default 100) on a real mcd (temp socket and root, private
cgroup parent, loopback port), it measures:

* daemon CPU (utime+stime of the mcd process, all threads) over a window with
  0, 1 and 5 open feed clients: the feed samples once per interval whatever the
  number of pages, and not at all with none;
* the time of one feed sample (list + one stats pass + info, measured inside the
  daemon: ``sample_ms`` in every message) and how many samples each client got;
* `mcctl stats --no-stream` wall time for the same containers (the frozen
  dist/mcctl/mcctl if built, else the venv's), and one raw ``GET /v1/stats`` over
  the Unix socket.

    sudo .venv/bin/python bench/dashboard_bench.py [-n 100] [--window 20] [--out file.json]

Everything it made is removed at the end, and the run fails if anything is left.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "python"))
from mcdaemon import Daemon  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ      # utime, stime


class FeedClient(threading.Thread):
    """One open page's worth of traffic: reads /web/feed and keeps sample_ms."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.samples: list[float] = []
        self.bytes = 0
        self.stop_flag = threading.Event()
        self.first = threading.Event()

    def run(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as s:
            s.sendall(f"GET /web/feed HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
            buf = b""
            while not self.stop_flag.is_set():
                chunk = s.recv(1 << 20)
                if not chunk:
                    return
                self.bytes += len(chunk)
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.startswith(b'data: {"t"'):
                        try:
                            self.samples.append(json.loads(line[6:])["sample_ms"])
                            self.first.set()
                        except (ValueError, KeyError):
                            pass


def measure_window(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return 100.0 * (c1 - c0) / (t1 - t0)


def mcctl_commands() -> list[str]:
    """Every mcctl there is: the venv's, and the frozen builds if `make dist` ran."""
    out = []
    for path in (os.path.join(REPO, ".venv", "bin", "mcctl"), os.path.join(REPO, "dist", "mcctl"),
                 os.path.join(REPO, "dist", "mcctl-dir", "mcctl")):
        if os.path.isfile(path) and os.access(path, os.X_OK):
            out.append(path)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=100, help="running containers (default 100)")
    ap.add_argument("--clients", type=int, default=5, help="open feed clients (default 5)")
    ap.add_argument("--window", type=float, default=20.0, help="seconds per CPU window")
    ap.add_argument("--repeat", type=int, default=7, help="mcctl stats runs")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("dashboard_bench: needs root (real daemon, namespaces, cgroups)", file=sys.stderr)
        return 2

    tmp = tempfile.mkdtemp(prefix="mcdashbench-")
    os.chmod(tmp, 0o755)
    d = Daemon(tmp, web=True)
    results: dict = {"containers": args.n, "clients": args.clients, "window_s": args.window}
    try:
        d.start()
        pid = d.proc.pid
        t0 = time.monotonic()
        for i in range(args.n):
            d.api_run(f"b{i:03d}", ["sleep", "1000000"])
        results["create_start_s"] = round(time.monotonic() - t0, 2)
        running = [c for c in d.api("GET", "/v1/containers")[1] if c["status"] == "running"]
        assert len(running) == args.n, f"only {len(running)} of {args.n} running"
        time.sleep(2)

        results["daemon_cpu_pct_no_page"] = round(measure_window(pid, args.window), 3)
        for n in sorted({1, args.clients}):
            clients = [FeedClient(d.port) for _ in range(n)]
            for c in clients:
                c.start()
            for c in clients:
                if not c.first.wait(60):
                    raise AssertionError("a feed client got no sample in 60 s\n" + d.log())
            for c in clients:
                c.samples.clear()
            cpu = measure_window(pid, args.window)
            for c in clients:
                c.stop_flag.set()
            samples = [ms for c in clients for ms in c.samples]
            per_client = [len(c.samples) for c in clients]
            results[f"daemon_cpu_pct_{n}_pages"] = round(cpu, 3)
            results[f"samples_per_client_{n}_pages"] = per_client
            if samples:
                results[f"sample_ms_median_{n}_pages"] = round(statistics.median(samples), 2)
                results[f"sample_ms_max_{n}_pages"] = round(max(samples), 2)
            time.sleep(3)       # the clients' sockets close; sampling stops

        # The same containers through the CLI, and one raw stats pass over the socket.
        results["mcctl_stats_ms_median"] = {}
        for mcctl in mcctl_commands():
            cmd = [mcctl, "--socket", d.socket, "stats", "--no-stream"]
            walls = []
            for _ in range(args.repeat):
                t = time.monotonic()
                out = subprocess.run(cmd, capture_output=True, text=True)
                walls.append((time.monotonic() - t) * 1000)
                if out.returncode != 0:
                    raise AssertionError(f"{' '.join(cmd)}: {out.stderr.strip()}")
                assert len(out.stdout.splitlines()) >= args.n, out.stdout[:500]
            results["mcctl_stats_ms_median"][os.path.relpath(mcctl, REPO)] = \
                round(statistics.median(walls), 1)
        raw = []
        for _ in range(args.repeat):
            t = time.monotonic()
            status, body = d.api("GET", "/v1/stats")
            raw.append((time.monotonic() - t) * 1000)
            assert status == 200 and len(body) == args.n
        results["api_stats_ms_median"] = round(statistics.median(raw), 1)
        results["daemon_cpu_pct_after_pages_closed"] = round(measure_window(pid, args.window / 2), 3)
    finally:
        left = d.cleanup()      # removes the containers, stops mcd, says what was left
        if left:
            raise AssertionError(f"left behind: {json.dumps(left)}\n{d.log()}")
    print_table(results)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


def print_table(r: dict) -> None:
    n, k = r["containers"], r["clients"]
    rows = [
        ("daemon CPU, no page open", f"{r['daemon_cpu_pct_no_page']:.2f} %"),
        ("daemon CPU, 1 feed client", f"{r.get('daemon_cpu_pct_1_pages', 0):.2f} %"),
        (f"daemon CPU, {k} feed clients", f"{r.get(f'daemon_cpu_pct_{k}_pages', 0):.2f} %"),
        ("daemon CPU, after pages closed", f"{r['daemon_cpu_pct_after_pages_closed']:.2f} %"),
        (f"one feed sample ({k} clients), median / max",
         f"{r.get(f'sample_ms_median_{k}_pages', 0)} / {r.get(f'sample_ms_max_{k}_pages', 0)} ms"),
        (f"samples per client in {r['window_s']:.0f} s", str(r.get(f"samples_per_client_{k}_pages"))),
        ("GET /v1/stats over the socket, median", f"{r['api_stats_ms_median']} ms"),
    ]
    for path, ms in r["mcctl_stats_ms_median"].items():
        rows.append((f"mcctl stats --no-stream ({path}), median wall", f"{ms} ms"))
    print(f"\ndashboard feed, {n} running containers (interval 2 s)")
    w = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"  {a:<{w}}  {b}")


if __name__ == "__main__":
    sys.exit(main())
