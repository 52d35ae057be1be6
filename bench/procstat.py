"""Memory and CPU of host-side processes, read from /proc (proc root is a parameter)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

PROC = Path("/proc")


def _kib_field(text: str, name: str) -> int:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def pss_kib(pid: int, proc: Path = PROC) -> int:
    return _kib_field((proc / str(pid) / "smaps_rollup").read_text(), "Pss")


def memory(pid: int | None, proc: Path = PROC) -> dict:
    """RSS and PSS of one process (the daemon), in KiB."""
    if pid is None:
        return {"rss_kib": None, "pss_kib": None}
    status = (proc / str(pid) / "status").read_text()
    return {"rss_kib": _kib_field(status, "VmRSS"), "pss_kib": pss_kib(pid, proc),
            "threads": _kib_field(status, "Threads")}


def children(pid: int | None, proc: Path = PROC) -> list[int]:
    """Direct children of a process (all its threads'), e.g. mcd's fork server."""
    if pid is None:
        return []
    out = []
    for task in (proc / str(pid) / "task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def pss_sum(pids: list[int], proc: Path = PROC) -> dict:
    total, alive = 0, 0
    for pid in pids:
        try:
            total += pss_kib(pid, proc)
            alive += 1
        except (FileNotFoundError, ProcessLookupError):
            continue
    return {"processes": alive, "pss_kib": total,
            "pss_per_process_kib": total / alive if alive else None}


def supervisor_pid(mcd_root: Path) -> int | None:
    """The pid of mcd's one supervisor for this root (ROOT/run/supervisor.sock, its
    SOCK_SEQPACKET protocol's ``ping``), or None when none answers."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.settimeout(5)
        s.connect(str(mcd_root / "run" / "supervisor.sock"))
        s.send(b'{"op": "ping"}')
        pid = json.loads(s.recv(65536)).get("pid")
        return pid if isinstance(pid, int) and pid > 1 else None
    except (OSError, ValueError):
        return None
    finally:
        s.close()


def stop_supervisor(mcd_root: Path, wait: float = 20.0) -> None:
    """SIGTERM the one supervisor of the daemon on this root (it outlives the daemon by
    design) BY its pid, only if its command line names this root's socket; wait for it."""
    sock = str(Path(mcd_root) / "run" / "supervisor.sock")
    pid = supervisor_pid(Path(mcd_root))
    try:
        if pid is None or sock not in (PROC / str(pid) / "cmdline").read_bytes().decode(
                errors="replace").split("\0"):
            return
        os.kill(pid, 15)
    except (OSError, ProcessLookupError):
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            stat = (PROC / str(pid) / "stat").read_bytes()
        except FileNotFoundError:
            return
        if stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X"):
            return
        time.sleep(0.05)


def monitor_pids(mcd_root: Path) -> list[int]:
    """The per-container host-side processes of mcd: each container's monitor (state.json),
    or, for containers the one supervisor holds (their monitor_pid is PID 1 itself), the
    supervisor once."""
    pids = []
    supervised = False
    for state in sorted(mcd_root.glob("containers/*/state.json")):
        try:
            data = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        pid = data.get("monitor_pid")
        if isinstance(pid, int) and pid == data.get("pid"):
            supervised = True
            continue
        if isinstance(pid, int) and pid > 1 and (PROC / str(pid)).exists():
            pids.append(pid)
    if supervised:
        sup = supervisor_pid(mcd_root)
        if sup is not None:
            pids.append(sup)
    return pids


def count_runtime_leftovers(name: str, proc: Path = PROC) -> int:
    """Processes whose comm is the runtime itself: detached runc/crun should leave none."""
    n = 0
    for d in proc.iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() == name:
                    n += 1
            except OSError:
                pass
    return n


def process_cpu_ms(pid: int, proc: Path = PROC) -> float:
    """utime+stime+cutime+cstime of a whole process, in ms (10 ms ticks).

    Unlike per-thread schedstat this keeps the time of threads that have exited (mcd
    serves each connection on a short-lived thread) and of children it reaped.
    """
    fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])     # fields 14-17 of stat(5)
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def cpu_and_switches(pid: int, proc: Path = PROC) -> tuple[int, int]:
    """(CPU time in ns, voluntary+involuntary context switches), summed over all threads.

    schedstat's first field is nanoseconds on CPU: /proc/PID/stat's ticks (10 ms) are
    too coarse to tell an idle process from one that wakes a few times a second.
    """
    ns = switches = 0
    for task in (proc / str(pid) / "task").iterdir():
        try:
            ns += int((task / "schedstat").read_text().split()[0])
            st = (task / "status").read_text()
        except (OSError, ValueError, IndexError):
            continue
        switches += _kib_field(st, "voluntary_ctxt_switches")
        switches += _kib_field(st, "nonvoluntary_ctxt_switches")
    return ns, switches


def idle_cost(groups: dict[str, list[int]], seconds: float, proc: Path = PROC) -> dict:
    """CPU time and wake-ups (context switches) of each group of processes over `seconds`."""
    def snap() -> dict[str, tuple[int, int, int]]:
        out = {}
        for name, pids in groups.items():
            ticks = sw = alive = 0      # ticks: CPU ns
            for pid in pids:
                try:
                    t, s = cpu_and_switches(pid, proc)
                except (FileNotFoundError, ProcessLookupError):
                    continue
                ticks += t
                sw += s
                alive += 1
            out[name] = (ticks, sw, alive)
        return out
    before = snap()
    time.sleep(seconds)
    after = snap()
    res = {"seconds": seconds, "groups": {}}
    for name in groups:
        t0, s0, _ = before[name]
        t1, s1, alive = after[name]
        res["groups"][name] = {"processes": alive, "cpu_ms": (t1 - t0) / 1e6,
                               "wakeups": s1 - s0, "wakeups_per_s": (s1 - s0) / seconds}
    return res
