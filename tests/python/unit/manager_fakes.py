"""Stand-ins for the layers below the manager, so that its state machine runs in the unit
tier without root. What is faked, and why: the runtime (FakeRuntime) and the cgroup
driver (FakeCgroups), because starting processes in namespaces and creating cgroups
need root and the real kernel (tests/python/linux and integration test those); the
restart timer (FakeTimers), so that back-off delays are read, not waited for. The store
and the template store are the real ones, on a temp directory.

A fake process is a pid in FakeRuntime.running; ``exit(pid, code)`` ends a container's
PID 1 the way the real monitor does: exit.json recorded, the monitor gone, and the
manager's exit watch called (synchronously, in the caller's thread).
"""

from __future__ import annotations

import itertools
import json
import os

from mcd.manager import Manager
from mcd.runtime.interface import SIGINT, SIGKILL, SIGTERM, Launched, Proc
from mcd.store import Store
from mcd.templates import TemplateStore


class FakeExec:
    def __init__(self, pid: int, code: int = 0):
        self.pid = pid
        self.tty_master = None
        self.code = code

    def wait(self) -> int:
        return self.code

    def poll(self):
        return self.code


class FakeRuntime:
    def __init__(self):
        self._pids = itertools.count(1000)
        self.running: dict[int, int] = {}   # pid -> start time
        self.zombies: set[int] = set()      # ended, not yet reaped (adopt works, has_exited)
        self.dir_of: dict[int, str] = {}    # PID 1 -> container dir
        self.monitor_of: dict[int, int] = {}
        self.exits: dict[str, dict] = {}    # container dir -> what exit.json would hold
        self.watches: dict[int, object] = {}
        self.signals: list[tuple[int, int]] = []
        self.starts: list = []              # (spec, paths, cgroup_procs, stdio)
        self.execs: list = []
        self.fail_next_start = None         # an MCError the next start raises
        self.ignore_signals: set[int] = set()   # signals PID 1 survives (a stubborn process)
        self.closed = False

    def spawn(self) -> int:
        pid = next(self._pids)
        self.running[pid] = pid * 7     # any start time, stable per pid
        return pid

    # -- Runtime
    def start(self, spec, paths, cgroup_procs, stdio, *, netns=None, etc=None) -> Launched:
        self.starts.append((spec, paths, list(cgroup_procs), stdio))
        if self.fail_next_start is not None:
            err, self.fail_next_start = self.fail_next_start, None
            raise err
        monitor, pid = self.spawn(), self.spawn()
        self.dir_of[pid] = paths.dir
        self.monitor_of[pid] = monitor
        self.exits.pop(paths.dir, None)
        return Launched(monitor_pid=monitor, pid=pid, pid_start_time=self.running[pid])

    def exec(self, pid, process, spec, cgroup_procs, stdio):
        self.execs.append((pid, process, list(cgroup_procs), stdio))
        return FakeExec(self.spawn())

    def read_exit(self, paths):
        return self.exits.get(paths.dir)

    def adopt(self, pid, start_time):
        if pid in self.running and start_time in (None, self.running[pid]):
            return Proc(pid, self.running[pid], fd=pid)
        return None

    def start_time(self, pid):
        return self.running.get(pid)

    def has_exited(self, p):
        return p.pid not in self.running or p.pid in self.zombies

    def release(self, p):
        if p is not None:
            p.fd = None

    def watch(self, p, on_exit):
        self.watches[p.pid] = on_exit

    def unwatch(self, p):
        self.watches.pop(p.pid, None)

    def signal(self, p, sig):
        self.signals.append((p.pid, sig))
        if p.pid in self.running and sig in (SIGTERM, SIGKILL, SIGINT) \
                and sig not in self.ignore_signals:
            self.exit(p.pid, 128 + sig, signal=sig)

    def top(self, pids, root_pid):
        return {"titles": ["PID"], "processes": [[p] for p in (pids or [root_pid])]}

    def logs(self, path, tail, follow, stop):
        return iter([])

    def close(self):
        self.closed = True

    # -- driving it
    def exit(self, pid: int, code: int, signal: int | None = None) -> None:
        """PID 1 ends: the monitor records it and ends too; the manager hears of it."""
        self.running.pop(pid, None)
        self.exits[self.dir_of[pid]] = {"exit_code": code, "signal": signal,
                                        "finished_at": "2026-01-01T00:00:00Z"}
        monitor = self.monitor_of[pid]
        self.running.pop(monitor, None)
        callback = self.watches.pop(monitor, None)
        if callback is not None:
            callback()


class FakeCgroup:
    def __init__(self, driver: "FakeCgroups", cid: str):
        self.driver = driver
        self.cid = cid
        self.frozen = False
        self.killed = 0
        self.oom = 0
        self.resources = None

    def self_join_files(self):
        return [f"/fake/cgroup/{self.cid}/cgroup.procs"]

    def kill_all(self):
        self.killed += 1

    def destroy(self):
        self.driver.groups.pop(self.cid, None)

    def stats(self):
        return {"memory_peak": 4096, "memory_limit": None}

    def oom_killed(self):
        return self.oom

    def freeze(self):
        self.frozen = True

    def thaw(self):
        self.frozen = False

    def pids(self):
        return []

    def update(self, resources):
        self.resources = resources

    def effective(self):
        return {}


class FakeCgroups:
    def __init__(self):
        self.groups: dict[str, FakeCgroup] = {}

    def create(self, cid, resources):
        cg = self.groups[cid] = FakeCgroup(self, cid)
        cg.resources = resources
        return cg

    def open(self, cid):
        return self.groups.get(cid)

    def stats_all(self, ids):
        return {i: {"memory": 1} for i in ids if i in self.groups}


class FakeTimer:
    def __init__(self, timers: "FakeTimers", delay: float, fn):
        self.timers, self.delay, self.fn = timers, delay, fn
        self.daemon = False
        self.started = self.cancelled = False

    def start(self):
        self.started = True

    def cancel(self):
        self.cancelled = True

    def fire(self):
        assert self.started and not self.cancelled
        self.fn()


class FakeTimers:
    """Stands for threading.Timer: the test fires a timer when it wants to."""

    def __init__(self):
        self.made: list[FakeTimer] = []

    def __call__(self, delay, fn):
        t = FakeTimer(self, delay, fn)
        self.made.append(t)
        return t

    @property
    def delays(self):
        return [t.delay for t in self.made]


def make_manager(root: str, runtime: FakeRuntime | None = None,
                 cgroups: FakeCgroups | None = None, timers: FakeTimers | None = None):
    """A Manager on a real Store and TemplateStore under root (template "minimal"), with
    the fakes for the rest."""
    tdir = os.path.join(root, "templates", "minimal")
    os.makedirs(os.path.join(tdir, "rootfs"), exist_ok=True)
    with open(os.path.join(tdir, "template.json"), "w") as f:
        json.dump({"name": "minimal"}, f)
    m = Manager(Store(root), runtime or FakeRuntime(), cgroups or FakeCgroups(),
                TemplateStore(os.path.join(root, "templates")), timer=timers or FakeTimers())
    return m


def spec(name: str | None = None, **kw) -> dict:
    s = {"process": {"args": ["sleep", "100"]}, "root": {"template": "minimal"}, **kw}
    if name:
        s["name"] = name
    return s


def on_disk(m: Manager, cid: str) -> dict:
    with open(m.store.state_path(cid)) as f:
        return json.load(f)
