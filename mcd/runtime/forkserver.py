"""The fork server: a small, idle process that forks every container's monitor.

mcd forks it once at start-up, before the daemon imports its API, manager and HTTP
server or starts a thread. Forking monitors from it instead of from the daemon pays
twice:

* memory: a monitor is a copy-on-write copy of whoever forked it. Forked from the
  daemon, every page the daemon dirties later stays behind as the monitor's own
  (3-4 MiB PSS per container). The fork server never runs anything but this loop,
  so its pages stay shared by it and every monitor; a monitor owns only what it
  writes itself.
* time: a fork copies the page tables of a small single-threaded process instead
  of a large multi-threaded one, and the intermediate the daemon needs (so that
  monitors are nobody's children) is not needed here: two forks per start, not three.

Protocol: one SOCK_SEQPACKET pair. The daemon sends one message per job, a pickled
("start", launcher plan) or ("exec", exec plan), with the fds it refers to as SCM_RIGHTS
(for a start: the monitor's result socket, then stdin/stdout/stderr when present; for
an exec: see mcd.runtime.exec.fork_helper). For a start the server forks the monitor
(its SIGCHLD is ignored, so the kernel reaps monitors for it), closes its copies of
the fds and waits for the next message. It answers nothing: the monitor
reports on the result socket exactly as when the daemon forks it itself. EOF on the
pair (the daemon is gone) ends the server; so does PR_SET_PDEATHSIG.

The server is a field of the daemon's runtime (mcd.runtime.linux.LinuxRuntime), which
hands it to ``launcher.start`` and ``exec.run``. If the server is not there (never
started, or dead), the daemon forks the monitor itself; those two decide.
"""

from __future__ import annotations

import errno
import gc
import importlib
import logging
import os
import pickle
import signal
import socket
import threading
import time

from mcd.runtime import steps
from mcd.runtime import syscalls as sc

log = logging.getLogger("mcd.forkserver")

PR_SET_PDEATHSIG = 1
# A plan is about the size of the spec, which the API caps at its 1 MiB body limit; a
# SOCK_SEQPACKET message must fit the sender's buffer whole (about 208 KiB by default).
MAX_MSG = 4 << 20
SO_SNDBUFFORCE = 32
MAX_FDS = 32     # an exec: 2 + up to 7 namespaces + 3 stdio


class ForkServer:
    """The daemon's handle on its fork server."""

    def __init__(self, sock: socket.socket, pid: int):
        self.sock = sock
        self.pid = pid
        self._lock = threading.Lock()
        self.alive = True

    @classmethod
    def spawn(cls) -> ForkServer:
        """Fork the server. Call while the process is small and has one thread."""
        # Imported before the fork, so every monitor shares these pages with the server.
        importlib.import_module("mcd.runtime.launcher")
        importlib.import_module("mcd.runtime.exec")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        daemon = os.getpid()
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                ours.close()
                serve(theirs, daemon)
            except BaseException:   # noqa: B036 - a server must never unwind into the daemon's code
                status = 1
            finally:
                os._exit(status)
        theirs.close()
        ours.set_inheritable(False)
        try:    # root may exceed net.core.wmem_max; if not, larger plans fall back (below)
            ours.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, MAX_MSG)
        except OSError:
            pass
        return cls(ours, pid)

    def launch(self, job: tuple, fds: list[int]) -> bool:
        """Hand one job to the server: ("start", launcher plan) or ("exec", exec plan),
        with the fds it names. False if it is gone (the caller forks itself)."""
        if not self.alive:
            return False
        msg = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            with self._lock:
                socket.send_fds(self.sock, [msg], fds)
            return True
        except OSError as err:
            if err.errno in (errno.EMSGSIZE, errno.ENOBUFS):
                return False    # this plan is too large for one message: fork it here
            self.alive = False
            log.warning("fork server (pid %d) is gone (%s): the daemon forks monitors itself "
                        "from now on", self.pid, err.strerror or err)
            return False

    def close(self, timeout: float = 5.0) -> None:
        """EOF ends the server; one that does not end in time is killed (it is our child)."""
        self.alive = False
        try:
            self.sock.close()
        finally:
            deadline = time.monotonic() + timeout
            try:
                while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                    if time.monotonic() > deadline:
                        os.kill(self.pid, signal.SIGKILL)
                        os.waitpid(self.pid, 0)
                        break
                    time.sleep(0.01)
            except ChildProcessError:
                pass


def serve(sock: socket.socket, daemon: int) -> None:
    from mcd.runtime import exec as rexec
    from mcd.runtime import launcher
    jobs = {"start": launcher.fork_monitor, "exec": rexec.fork_helper}
    sc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    sc.set_name("mcd-forkserver")
    if os.getppid() != daemon:
        return  # the daemon died before the prctl: nobody will ever write to us
    # Ctrl-C on a foreground daemon reaches the whole process group: the daemon decides.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Monitors are our children: the kernel reaps them (see launcher.fork_monitor).
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # Keep stdio (errors reach the daemon's log) and our socket, nothing of the daemon's.
    steps.close_fds({sock.fileno()})
    # Nothing here allocates cycles worth collecting; a collection would write to every
    # tracked object and unshare the pages the monitors share with us.
    gc.disable()
    gc.freeze()
    while True:
        try:
            msg, fds, flags, _addr = socket.recv_fds(sock, MAX_MSG, MAX_FDS)
        except InterruptedError:
            continue
        if not msg:
            for fd in fds:
                os.close(fd)
            return
        try:
            if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
                raise OSError(errno.EMSGSIZE, "job or its fds truncated")
            kind, plan = pickle.loads(msg)
            jobs[kind](plan, fds)
        except Exception as err:   # noqa: BLE001 - a bad message loses one start, not the server
            _report(fds, err)
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass


def _report(fds: list[int], err: BaseException) -> None:
    """Tell the daemon why this start failed, on the start's own result socket (its first
    fd), as the monitor would have: a step and the errno, not a bare EOF."""
    if not fds:
        return
    try:
        result = socket.socket(fileno=os.dup(fds[0]))
    except OSError:
        return
    try:
        steps.report_failure(result, err)
    finally:
        result.close()
