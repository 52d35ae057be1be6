"""LinuxRuntime: the Runtime (mcd.runtime.interface) on the real kernel.

It owns the fork server (a field, handed to every start and exec) and the exit
watcher (one thread polling the pidfds of all monitors), and it is the only place
below the manager that opens pidfds, reads /proc/PID/stat, sends signals or asks
psutil. The heavy modules (launcher, exec, psutil) are imported on first use, so a
daemon that only answers ``ps`` never pays for them.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading

from mcd.errors import KernelError
from mcd.runtime import syscalls as sc
from mcd.runtime.interface import Launched, Proc, Stdio

log = logging.getLogger("mcd.runtime")


def proc_start_time(pid: int, proc: str = "/proc") -> int | None:
    """Start time of pid (field 22 of /proc/PID/stat), None if it is not there."""
    try:
        return sc.proc_start_time(pid, proc)
    except (OSError, ValueError, IndexError):
        return None


def _close(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


class ExitWatcher:
    """One thread, one poll() over the pidfds of all monitors and a wake pipe (no
    timeouts: an idle daemon never wakes up)."""

    def __init__(self):
        self._r, self._w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._lock = threading.Lock()
        self._callbacks: dict[int, callable] = {}
        self._pending: list[tuple[int, bool]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="exit-watcher", daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        try:
            os.write(self._w, b"x")
        except BlockingIOError:
            pass        # the pipe is full of wake-ups already: the loop will run

    def add(self, fd: int, callback) -> None:
        with self._lock:
            self._callbacks[fd] = callback
            self._pending.append((fd, True))
        self._wake()

    def remove(self, fd: int) -> None:
        with self._lock:
            if self._callbacks.pop(fd, None) is not None:
                self._pending.append((fd, False))
        self._wake()

    def stop(self) -> None:
        self._stop = True
        self._wake()

    def _loop(self) -> None:
        p = select.poll()
        p.register(self._r, select.POLLIN)
        while not self._stop:
            for fd, _ev in p.poll():
                if fd == self._r:
                    self._apply_pending(p)
                    continue
                with self._lock:
                    cb = self._callbacks.pop(fd, None)
                try:
                    p.unregister(fd)
                except KeyError:
                    pass
                if cb is not None:
                    threading.Thread(target=cb, name="on-exit", daemon=True).start()

    def _apply_pending(self, p) -> None:
        try:
            os.read(self._r, 4096)
        except BlockingIOError:
            pass
        with self._lock:
            pending, self._pending = self._pending, []
        for pfd, add in pending:
            if add:
                p.register(pfd, select.POLLIN)
            else:
                try:
                    p.unregister(pfd)
                except KeyError:
                    pass


class LinuxRuntime:
    """See mcd.runtime.interface.Runtime for what each method promises."""

    def __init__(self, forkserver=None, proc: str = "/proc", supervisor=None):
        self.forkserver = forkserver    # mcd.runtime.forkserver.ForkServer, or None
        self.proc = proc
        # mcd.supervisor.handle.SupervisorHandle when one supervisor holds every container
        # (its PID 1 is then what the manager watches as the "monitor"), else None.
        self.supervisor = supervisor
        self._watcher: ExitWatcher | None = None
        self._watcher_lock = threading.Lock()

    # -- start, exec, exit
    def start(self, spec, paths, cgroup_procs, stdio: Stdio, *, netns=None,
              etc=None) -> Launched:
        from mcd.runtime import launcher
        server = self.forkserver
        if self.supervisor is not None and self.supervisor.launcher is not None \
                and self.supervisor.launcher.alive:
            server = self.supervisor.launcher
            try:    # a record from the last run must not pass for this one's
                os.unlink(paths.exit)
            except FileNotFoundError:
                pass
        return launcher.start(spec, paths, cgroup_procs, stdio, forkserver=server,
                              netns=netns, etc=etc)

    def exec(self, pid, process, spec, cgroup_procs, stdio: Stdio):
        from mcd.runtime import exec as rexec
        return rexec.run(pid, process, spec, cgroup_procs, stdio, proc=self.proc,
                         forkserver=self.forkserver)

    def read_exit(self, paths) -> dict | None:
        from mcd.runtime import launcher
        if self.supervisor is not None:
            self.supervisor.wait_recorded(paths.exit)
        record = launcher.read_exit(paths)
        if record is not None and record.get("status_lost"):
            return None     # the manager's "exit status lost" (it ended while no supervisor ran)
        return record

    # -- finding processes again
    def start_time(self, pid: int) -> int | None:
        return proc_start_time(pid, self.proc)

    def adopt(self, pid, start_time) -> Proc | None:
        if not pid:
            return None
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return None
        # Checked after opening: if the start time still matches, the fd names that very
        # process.
        now = proc_start_time(pid, self.proc)
        if start_time is not None and now != start_time:
            os.close(fd)
            return None
        return Proc(pid, start_time if start_time is not None else now, fd)

    def has_exited(self, p: Proc) -> bool:
        """A pidfd polls readable once its process has exited, zombie or reaped."""
        if p.fd is None:
            return proc_start_time(p.pid, self.proc) != p.start_time
        poller = select.poll()
        poller.register(p.fd, select.POLLIN)
        return bool(poller.poll(0))

    def release(self, p: Proc | None) -> None:
        if p is not None:
            _close(p.fd)
            p.fd = None

    def _exit_watcher(self) -> ExitWatcher:
        with self._watcher_lock:
            if self._watcher is None:
                self._watcher = ExitWatcher()
            return self._watcher

    def watch(self, p: Proc, on_exit) -> None:
        self._exit_watcher().add(p.fd, on_exit)

    def unwatch(self, p: Proc) -> None:
        if self._watcher is not None and p.fd is not None:
            self._watcher.remove(p.fd)

    # -- signals, processes, logs
    def signal(self, p: Proc, sig: int) -> None:
        try:
            if p.fd is not None:
                signal.pidfd_send_signal(p.fd, sig)
            elif p.pid and proc_start_time(p.pid, self.proc) == p.start_time:
                os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        except OSError as err:
            raise KernelError.from_oserror("kill", err) from err

    def top(self, pids: list[int], root_pid: int | None) -> dict:
        import psutil
        if not pids and root_pid:
            try:
                root = psutil.Process(root_pid)
                pids = [root_pid] + [p.pid for p in root.children(recursive=True)]
            except psutil.NoSuchProcess:
                pids = []
        rows = []
        for pid in pids:
            try:
                p = psutil.Process(pid)
                with p.oneshot():
                    rows.append([p.pid, p.ppid(), p.uids().effective, p.status(),
                                 round(p.memory_info().rss / 1024),
                                 " ".join(p.cmdline()) or p.name()])
            except psutil.Error:
                continue
        return {"titles": ["PID", "PPID", "UID", "STAT", "RSS_KB", "COMMAND"], "processes": rows}

    def logs(self, path: str, tail, follow: bool, stop):
        from mcd.runtime import logs
        if follow:
            return logs.follow(path, tail, stop=stop)
        return logs.read(path, tail)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        if self.supervisor is not None:
            self.supervisor.close()     # the supervisor itself stays, with the containers
