"""What the manager asks of a runtime: the one seam between the state machine and the kernel.

The manager holds a ``Runtime`` and never touches /proc, signals, pidfds or psutil
itself; ``mcd.runtime.linux.LinuxRuntime`` is the implementation, and the unit tests
of the manager drive it with a fake one (tests/python/unit/fakes.py). The plain data
the two sides exchange is defined here too: ``Stdio`` (the caller's fds for a start or
an exec), ``Launched`` (what a start made) and ``Proc`` (one process, named by pid and
start time so that a reused pid is never mistaken for it).
"""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass, field
from typing import Callable, Protocol

from mcd.errors import InvalidArgument

SIGINT, SIGKILL, SIGTERM = int(_signal.SIGINT), int(_signal.SIGKILL), int(_signal.SIGTERM)


def signal_number(sig) -> int:
    """A signal given by name ("TERM", "SIGTERM") or number, checked: 1..64."""
    if isinstance(sig, int) and not isinstance(sig, bool):
        num = sig
    elif isinstance(sig, str):
        s = sig.upper()
        if s.isdigit():
            num = int(s)
        else:
            if not s.startswith("SIG"):
                s = "SIG" + s
            found = getattr(_signal.Signals, s, None)
            if found is None:
                raise InvalidArgument(f"unknown signal {sig!r}")
            num = int(found)
    else:
        raise InvalidArgument(f"signal: expected a name or number, got {sig!r}")
    if not 1 <= num <= 64:
        raise InvalidArgument(f"signal {sig!r} is out of range")
    return num


@dataclass
class Stdio:
    """The caller's fds for a container's PID 1 or an exec'd process (None: /dev/null,
    or the log for a container). ``tty_to_caller``: hand the pty master back."""
    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None
    tty_to_caller: bool = False

    def fds(self) -> list[int]:
        """The fds present, in order: what travels to the fork server beside a plan."""
        return [fd for fd in (self.stdin, self.stdout, self.stderr) if fd is not None]

    def received(self, fds: list[int]) -> Stdio:
        """The same Stdio on the fds that arrived for it (in the order of fds())."""
        it = iter(fds)
        return Stdio(stdin=next(it) if self.stdin is not None else None,
                     stdout=next(it) if self.stdout is not None else None,
                     stderr=next(it) if self.stderr is not None else None,
                     tty_to_caller=self.tty_to_caller)


@dataclass
class Launched:
    monitor_pid: int
    pid: int
    pid_start_time: int
    tty_master: int | None = None
    timing: dict = field(default_factory=dict)  # phase -> ns, filled by the manager


@dataclass
class Proc:
    """One process: pid + start time (clock ticks since boot) name it across pid reuse;
    ``fd`` is its pidfd while the runtime holds one."""
    pid: int
    start_time: int | None
    fd: int | None = None


class ExecHandle(Protocol):
    pid: int
    tty_master: int | None

    def wait(self) -> int: ...
    def poll(self) -> int | None: ...


class Runtime(Protocol):
    """Starts and execs container processes, finds them again, signals and lists them."""

    def start(self, spec, paths, cgroup_procs: list[str], stdio: Stdio, *,
              netns: str | None = None, etc: dict | None = None) -> Launched:
        """Monitor + PID 1; a failure raises mcd.errors.SetupError naming the step.
        netns: a configured network namespace PID 1 joins; etc: hosts and resolv.conf."""

    def exec(self, pid: int, process, spec, cgroup_procs: list[str],
             stdio: Stdio) -> ExecHandle:
        """A new process in the namespaces of the running container whose PID 1 is pid."""

    def read_exit(self, paths) -> dict | None:
        """What the monitor recorded when PID 1 ended (exit.json), None if nothing."""

    def adopt(self, pid: int | None, start_time: int | None) -> Proc | None:
        """The process, if it still runs as the one that started at start_time (None:
        any process with that pid), with a pidfd held on it; else None."""

    def start_time(self, pid: int) -> int | None:
        """The start time of pid, None if there is no such process."""

    def has_exited(self, proc: Proc) -> bool:
        """True once the process has ended (zombie or reaped)."""

    def release(self, proc: Proc | None) -> None:
        """Drop the runtime's hold on the process (its pidfd); it keeps running."""

    def watch(self, proc: Proc, on_exit: Callable[[], None]) -> None:
        """Call on_exit (in a thread of its own) once the process ends."""

    def unwatch(self, proc: Proc) -> None:
        """Forget a watch; on_exit is not called for it."""

    def signal(self, proc: Proc, sig: int) -> None:
        """Send sig to the process if it is still the same one; no error if it is gone."""

    def top(self, pids: list[int], root_pid: int | None) -> dict:
        """{"titles": [...], "processes": [[...], ...]} for pids (or root_pid's tree)."""

    def logs(self, path: str, tail: int | None, follow: bool, stop: Callable[[], bool]):
        """Log entries ({"stream", "time", "line"}) of a container's log file."""

    def close(self) -> None:
        """Stop watching; running containers are left alone (live restore)."""
