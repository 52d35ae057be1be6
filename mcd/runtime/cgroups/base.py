"""What both drivers share: file I/O with errors that name the container, the
step, the file and the errno; limit plans applied with rollback; kill and
destroy loops. The drivers (v1.py, v2.py) only know which file holds what.
"""

from __future__ import annotations

import errno as _errno
import os
import resource
import signal
import time

from mcd.errors import InvalidArgument, KernelError, Unsupported
from typing import TYPE_CHECKING

from . import convert

if TYPE_CHECKING:     # the spec's dataclasses load only where a limit is checked
    from mcwire.spec import Resources

RESOURCE_FIELDS = ("cpu_shares", "cpu_quota", "cpu_period", "cpuset_cpus",
                   "memory", "memory_swap", "pids_limit")

# Which controller a limit needs, and the flag users know it by.
FIELD_CONTROLLER = {"cpu_shares": "cpu", "cpu_quota": "cpu", "cpu_period": "cpu",
                    "cpuset_cpus": "cpuset", "memory": "memory", "memory_swap": "memory",
                    "pids_limit": "pids"}
FIELD_FLAG = {"cpu_shares": "--cpu-shares", "cpu_quota": "--cpu-quota / --cpus",
              "cpu_period": "--cpu-period", "cpuset_cpus": "--cpuset-cpus",
              "memory": "--memory", "memory_swap": "--memory-swap", "pids_limit": "--pids-limit"}

_READ_CHUNK = 65536
_MISSING = (_errno.ENOENT, _errno.ENODEV, _errno.ENOTDIR)


# ---------------------------------------------------------------- raw file I/O

def read_file(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _READ_CHUNK)
        if len(data) == _READ_CHUNK:
            parts = [data]
            while True:
                more = os.read(fd, _READ_CHUNK)
                if not more:
                    break
                parts.append(more)
            data = b"".join(parts)
    finally:
        os.close(fd)
    return data.decode("ascii", "replace")


def read_or_none(path: str) -> str | None:
    """For accounting: a file that is not there (controller absent, cgroup gone) is None."""
    try:
        return read_file(path)
    except OSError as err:
        if err.errno in _MISSING:
            return None
        raise


def write_file(path: str, value: str) -> None:
    # O_TRUNC is harmless on cgroupfs and makes the same code work on fake trees.
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode("ascii"))
    finally:
        os.close(fd)


def int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


class StatReader:
    """Keeps accounting files open between stats_all passes.

    Re-reading an open cgroup file with pread at offset 0 costs one syscall; a fresh
    open+read+close costs three plus a path walk, and on this host that is 4-20x slower
    for 900 files. A removed cgroup's open file reads ENODEV: it is closed and reopened
    once (the id may have a new cgroup). The cache is bounded (it must not eat the
    daemon's file descriptors) and `forget`/`retain` close what is no longer needed,
    because an open file keeps a removed cgroup's memory pinned in the kernel.
    """

    def __init__(self, max_fds: int | None = None):
        if max_fds is None:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            if soft == resource.RLIM_INFINITY:
                soft = 1 << 20
            max_fds = max(0, min(soft // 2 - 64, 65536))
        self.max_fds = max_fds
        self._fds: dict[str, int] = {}
        self._owner: dict[str, str] = {}           # path -> container id

    def __len__(self) -> int:
        return len(self._fds)

    def reader(self, cid: str):
        def read(path: str) -> str | None:
            return self.read(cid, path)
        return read

    def read(self, cid: str, path: str) -> str | None:
        fd = self._fds.get(path)
        if fd is not None:
            try:
                return os.pread(fd, _READ_CHUNK, 0).decode("ascii", "replace")
            except OSError as err:
                self._close(path)
                if err.errno not in _MISSING:
                    raise
        if len(self._fds) >= self.max_fds:
            return read_or_none(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            if err.errno in _MISSING:
                return None
            if err.errno in (_errno.EMFILE, _errno.ENFILE):
                return read_or_none(path)
            raise
        try:
            data = os.pread(fd, _READ_CHUNK, 0)
        except OSError as err:
            os.close(fd)
            if err.errno in _MISSING:
                return None
            raise
        self._fds[path] = fd
        self._owner[path] = cid
        return data.decode("ascii", "replace")

    def _close(self, path: str) -> None:
        fd = self._fds.pop(path, None)
        self._owner.pop(path, None)
        if fd is not None:
            os.close(fd)

    def forget(self, cid: str) -> None:
        for path in [p for p, c in self._owner.items() if c == cid]:
            self._close(path)

    def retain(self, cids) -> None:
        """Close the files of every container not in `cids`."""
        keep = set(cids)
        for path in [p for p, c in self._owner.items() if c not in keep]:
            self._close(path)

    def close(self) -> None:
        for path in list(self._fds):
            self._close(path)


def cpuset_inherit(level: str) -> None:
    """A new v1 cpuset starts with no CPUs and no memory nodes: copy the parent's, then
    let the kernel copy ours into every child (clone_children). Here, not in the manager,
    so mcrt's create (which makes its own levels) needs no manager or detection."""
    up = os.path.dirname(level)
    try:
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not read_file(os.path.join(level, name)).strip():
                write_file(os.path.join(level, name), read_file(os.path.join(up, name)).strip())
        if read_file(os.path.join(level, "cgroup.clone_children")).strip() != "1":
            write_file(os.path.join(level, "cgroup.clone_children"), "1")
    except OSError as err:
        text = os.strerror(err.errno) if err.errno else str(err)
        raise KernelError(f"cgroup set up cpuset parent: configure {level}: {text}",
                          step="set up cpuset parent", path=level, errno=err.errno) from err


# ---------------------------------------------------------------- features

class Features:
    """What the container cgroups under our parent can do, as the manager found it.
    (A plain class, not a dataclass: every mcrt call that opens a cgroup builds one, and
    the dataclass machinery, inspect included, cost more than the rest of the driver.)"""
    FIELDS = ("controllers", "swap", "freeze", "kill", "why_missing")   # no __slots__: the
    # manager refreshes one in place through __dict__

    def __init__(self, controllers: set | None = None, swap: bool = False, freeze: bool = False,
                 kill: bool = False, why_missing: dict | None = None):
        self.controllers = set() if controllers is None else controllers
        self.swap, self.freeze, self.kill = swap, freeze, kill
        self.why_missing = {} if why_missing is None else why_missing    # controller -> reason

    def __eq__(self, other):
        return type(other) is Features and all(
            getattr(self, k) == getattr(other, k) for k in self.FIELDS)

    def __repr__(self) -> str:
        return "Features(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.FIELDS) + ")"

    def require(self, controller: str, flag: str) -> None:
        if controller not in self.controllers:
            why = self.why_missing.get(controller, "it is not available on this host")
            raise Unsupported(
                f"{flag} cannot be enforced: the {controller} cgroup controller is missing ({why})",
                step="cgroup limits", details={"controller": controller})


class Write:
    """One file write of a limit plan."""
    __slots__ = ("controller", "file", "value", "what")

    def __init__(self, controller: str, file: str, value: str, what: str):
        self.controller, self.file, self.value = controller, file, value
        self.what = what          # the step, for messages: "set memory limit"

    def __eq__(self, other):
        return type(other) is Write and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return "Write(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


# ---------------------------------------------------------------- the interface

class Cgroup:
    """One container's cgroup, in every hierarchy the driver uses."""

    driver = "?"
    FREEZE_TIMEOUT = 5.0      # seconds a freeze or thaw may take before it is an error

    def __init__(self, container_id: str, dirs: dict[str, str], features: Features):
        self.id = container_id
        self.dirs = dirs                  # controller -> directory
        self.features = features
        self.on_destroy = None            # the manager's hook: forget cached stat fds

    # -- paths
    @property
    def path(self) -> str:
        """The directory users are shown (the memory one on v1)."""
        return self.dirs.get("memory") or next(iter(self.dirs.values()))

    def unique_dirs(self) -> list[str]:
        seen, out = set(), []
        for d in self.dirs.values():
            if d not in seen:
                seen.add(d)
                out.append(d)
        return out

    def procs_files(self) -> list[str]:
        """The files PID 1 (or exec) writes "0" to, to join."""
        return [os.path.join(d, "cgroup.procs") for d in self.unique_dirs()]

    def self_join_files(self) -> list[str]:
        """The files a process writes "0" to, to move itself in (PID 1, exec's helper)."""
        return self.procs_files()

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.unique_dirs())

    def file(self, controller: str, name: str) -> str:
        return os.path.join(self.dirs[controller], name)

    # -- errors
    def _error(self, call: str, err: OSError, path: str, what: str) -> KernelError:
        text = os.strerror(err.errno) if err.errno else str(err)
        return KernelError(f"container {self.id[:12]}: {what}: {call} {path}: {text}",
                           container=self.id, step=what, path=path, errno=err.errno)

    def _read(self, path: str, what: str) -> str:
        try:
            return read_file(path)
        except OSError as err:
            raise self._error("read", err, path, what) from err

    def _write(self, path: str, value: str, what: str) -> None:
        try:
            write_file(path, value)
        except OSError as err:
            raise self._error(f"write {value!r} to", err, path, what) from err

    # -- processes
    def join(self, pid: int) -> None:
        for f in self.procs_files():
            self._write(f, str(pid), "join cgroup")

    def pids(self) -> list[int]:
        out: set[int] = set()
        for f in self.procs_files():
            text = read_or_none(f)
            if text:
                out.update(convert.parse_pids(text))
        return sorted(out)

    # -- limits
    def check_supported(self, resources: Resources, fields) -> None:
        """Refuse, before touching anything, a limit this host cannot enforce."""
        for name in fields:
            value = getattr(resources, name)
            if value is None or (value == -1 and name != "cpu_shares"):
                continue
            self.features.require(FIELD_CONTROLLER[name], FIELD_FLAG[name])
            if name == "memory_swap":
                if not self.features.swap:
                    raise Unsupported(
                        "--memory-swap cannot be enforced: the memory cgroup controller has no "
                        f"swap accounting here ({self._swap_file()} is missing; boot with "
                        "swapaccount=1 / without cgroup.memory=noswap)",
                        step="cgroup limits", details={"controller": "memory.swap"})

    def _swap_file(self) -> str:
        raise NotImplementedError

    def plan(self, resources: Resources, fields: set, creating: bool) -> list[Write]:
        raise NotImplementedError

    def _wanted(self, r: Resources, fields: set, creating: bool):
        """The rule both drivers' plans use: is limit `name` to be written?

        check_supported ran first, so a limit whose controller is missing is None or -1
        here: nothing to write. Creating writes only what was asked; updating sends a
        None field back to the kernel default."""
        feats = self.features.controllers
        return lambda name: (name in fields and FIELD_CONTROLLER[name] in feats
                             and (not creating or getattr(r, name) is not None))

    def apply(self, resources: Resources, fields, creating: bool = False) -> None:
        """Write the limits named in `fields`; on failure put back what was written."""
        fields = set(fields)
        if fields & {"cpu_quota", "cpu_period"}:
            # quota and period travel together (v2 writes them as one file).
            fields |= {"cpu_quota", "cpu_period"}
        self.check_supported(resources, fields)
        writes = self.plan(resources, fields, creating)
        done: list[tuple[str, str]] = []
        try:
            for w in writes:
                path = self.file(w.controller, w.file)
                try:
                    old = None if creating else read_or_none(path)
                except OSError as err:
                    raise self._error("read", err, path, w.what) from err
                self._write(path, w.value, w.what)
                if old is not None:
                    done.append((path, old.strip()))
        except BaseException:
            for path, old in reversed(done):
                try:
                    write_file(path, old)
                except OSError:
                    pass
            raise

    def update(self, resources: Resources, only=None) -> None:
        """Make the live cgroup match `resources`.

        Without `only`, every limit is set: a None field goes back to the kernel
        default (so pass the container's full, merged Resources). With `only`
        (field names), just those are written.
        """
        from mcwire.spec import validate_resources
        validate_resources(resources)
        fields = set(RESOURCE_FIELDS if only is None else only)
        unknown = fields - set(RESOURCE_FIELDS)
        if unknown:
            raise InvalidArgument(f"update: unknown resource fields {sorted(unknown)}")
        self.apply(resources, fields, creating=False)

    def _check_cpuset(self, cpus: str, available_file: str) -> None:
        try:
            wanted = convert.parse_cpu_list(cpus)
        except ValueError as err:
            raise InvalidArgument(f"--cpuset-cpus: {cpus!r}: {err}") from None
        avail_text = (read_or_none(available_file) or "").strip()
        if avail_text:
            avail = convert.parse_cpu_list(avail_text)
            if not wanted or not wanted <= avail:
                raise InvalidArgument(
                    f"--cpuset-cpus: {cpus!r} is outside the CPUs available here ({avail_text})")

    def effective(self) -> dict:
        raise NotImplementedError

    def stats(self, read=read_or_none) -> dict:
        """Accounting in one pass. `read(path) -> str | None` is how files are read
        (the manager's stats_all passes a reader that keeps them open)."""
        raise NotImplementedError

    def oom_killed(self) -> int:
        raise NotImplementedError

    # -- freeze, kill, destroy
    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def frozen(self) -> bool:
        raise NotImplementedError

    def _wait(self, done, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while not done():
            if time.monotonic() > deadline:
                raise KernelError(f"container {self.id[:12]}: {what}: did not complete in {timeout:g} s",
                                  container=self.id, step=what, errno=_errno.ETIMEDOUT)
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def _kill_file(self) -> str | None:
        return None

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the cgroup and wait until it is empty.

        cgroup.kill where the kernel has it; else freeze (so nothing forks
        between reading the pid list and killing it), kill each pid, thaw.
        Whatever is still listed afterwards is killed again until none is left.
        """
        kill_file = self._kill_file()
        if kill_file:
            self._write(kill_file, "1", "kill processes")
        elif self.features.freeze:
            if not self.pids():
                # Already empty, as after every exit: with no member left to fork, nothing
                # can join it, so the freezer round trip would only cost time.
                return
            try:
                self.freeze()
            except KernelError:
                pass        # stuck FREEZING (a task in D state): kill anyway, the loop below mops up
            try:
                self._kill_listed()
            finally:
                self._thaw_quietly()
        self._wait(lambda: self._kill_listed() == 0, "kill processes", timeout)

    def _thaw_quietly(self) -> None:
        try:
            self.thaw()
        except KernelError:
            pass

    def _kill_listed(self) -> int:
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except OSError as err:
                raise self._error("kill", err, f"pid {pid}", "kill processes") from err
        return len(pids)

    def destroy(self, timeout: float = 2.0, kill: bool = False) -> None:
        """rmdir in every hierarchy; tasks that are still exiting get `timeout` to drain."""
        if kill and self.exists():
            self.kill_all()
        if self.on_destroy is not None:
            # Open files pin a removed cgroup in the kernel (a "dying" memcg): close ours first.
            self.on_destroy(self.id)
        for d in reversed(self.unique_dirs()):
            deadline = time.monotonic() + timeout
            delay = 0.0005
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as err:
                    if err.errno == _errno.EBUSY and time.monotonic() < deadline:
                        time.sleep(delay)
                        delay = min(delay * 2, 0.05)
                        continue
                    e = self._error("rmdir", err, d, "remove cgroup")
                    if err.errno == _errno.EBUSY:
                        e.message += f" (processes still in it: {self.pids()[:10]})"
                        e.args = (e.message,)
                    raise e from err
