"""The supervisor process: see mcd/supervisor/__init__.py for the design and protocol.

    python -m mcd.supervisor --socket RUN_DIR/supervisor.sock

One thread, one epoll: the listening socket, the clients' connections, a wake-up pipe
for SIGCHLD, every container's output pipes and (for containers it did not fork) their
pidfds. Nothing here blocks but the appends to the log files and exit.json's write.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import select
import signal
import socket
import sys
import time

from mcd.runtime.logs import MAX_LINE, LogWriter
from mcd.runtime.monitor import exit_record, write_json_atomic
from mcd.supervisor import PROTOCOL_VERSION
from mcwire import __version__

BUILD = f"{__version__}/{PROTOCOL_VERSION}"     # what mcd compares to decide on an upgrade

READ_CHUNK = 16384          # per ready pipe per round: the fairness unit
MAX_MSG = 1 << 20
MAX_FDS = 8
OOM_SCORE_ADJ = -999        # protective: the OOM killer takes a container before us
PR_SET_CHILD_SUBREAPER = 36
STATE_ENV = "MCD_SUPERVISOR_STATE_FD"
UNCLAIMED_MAX = 4096
ATTACH_MAX = 256 * 1024     # bytes a caller may be behind before the container is slowed


def _timestamp_ns(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + \
        ".%09dZ" % (ns % 1_000_000_000)


class BatchLogWriter(LogWriter):
    """LogWriter's format and rotation, with a chunk's lines written in one write(2)
    (a flood of short lines would otherwise cost one syscall and one clock read per
    line, and hold the loop). The lines of one chunk share the time it was read."""

    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial.pop(stream, b"") + data
        now = _timestamp_ns(time.time_ns())
        pieces = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            while nl + 1 - start > MAX_LINE:
                pieces.append(buf[start:start + MAX_LINE])
                start += MAX_LINE
            pieces.append(buf[start:nl + 1])
            start = nl + 1
        rest = buf[start:]
        while len(rest) >= MAX_LINE:
            pieces.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        if rest:
            self.partial[stream] = rest
        self._write_lines(stream, pieces, now)

    def flush(self) -> None:
        now = _timestamp_ns(time.time_ns())
        for stream, rest in list(self.partial.items()):
            self._write_lines(stream, [rest], now)
        self.partial.clear()

    def _write_lines(self, stream: str, pieces: list[bytes], now: str) -> None:
        batch = []
        size = 0
        for p in pieces:
            line = ('{"log":%s,"stream":"%s","time":"%s"}\n' % (
                json.dumps(p.decode("utf-8", "replace")), stream, now)).encode()
            if self.size + size + len(line) > self.max_size and (self.size + size):
                self._append(b"".join(batch), size)
                batch, size = [], 0
                self._rotate()
            batch.append(line)
            size += len(line)
        if batch:
            self._append(b"".join(batch), size)

    def _append(self, data: bytes, size: int) -> None:
        if not data:
            return
        if self.fd < 0:
            self._open()
        try:
            if os.write(self.fd, data) != size:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
        except OSError:
            try:        # whole lines or none (see LogWriter._emit)
                os.ftruncate(self.fd, self.size)
            except OSError:
                pass
            raise
        self.size += size


class Container:
    """One supervised PID 1: its pipes (fd -> stream), log, exit path, and how to learn
    its end (a child: waitpid; not ours: a pidfd, status lost)."""

    __slots__ = ("id", "pid", "start_time", "log_path", "exit_path", "pipes", "log",
                 "child", "pidfd", "status", "lost", "attach", "out", "waiters", "paused")

    def __init__(self, cid, pid, start_time, log_path, exit_path, pipes, child):
        self.id, self.pid, self.start_time = cid, pid, start_time
        self.log_path, self.exit_path = log_path, exit_path
        self.pipes = pipes          # fd -> "stdout" | "stderr"
        self.log = None
        self.child = child
        self.pidfd = None
        self.status = None          # wait status once reaped
        self.lost = False           # ended while nobody could read its status
        self.attach = {}            # stream -> a caller's fd (run without -d) that gets a copy
        self.out = {}               # attach fd -> bytearray not written yet
        self.waiters = []           # connections waiting for the exit record
        self.paused = False         # pipes not read while an attach fd is full

    @property
    def exited(self) -> bool:
        return self.status is not None or self.lost


class Supervisor:
    def __init__(self, sock_path: str, *, state: dict | None = None):
        self.sock_path = sock_path
        self.ep = select.epoll()
        self.containers: dict[str, Container] = {}
        self.by_pid: dict[int, Container] = {}
        self.by_fd: dict[int, tuple[Container, str | None]] = {}   # pipe or pidfd
        self.conns: dict[int, socket.socket] = {}
        # Statuses of children reaped before anyone named them (a PID 1 whose launcher
        # left it to us and that ended before its ``adopt`` arrived): pid -> status.
        self.unclaimed: dict[int, int] = {}
        self.keeper: socket.socket | None = None    # mcd's connection that holds pipe copies
        self.running = True
        self._upgrade = False
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.ep.register(self._wake_r, select.EPOLLIN)
        if state is None:
            self.listener = self._listen(sock_path)
        else:
            self.listener = socket.socket(fileno=state["listener"])
            self._restore(state)
        self.listener.set_inheritable(False)
        self.ep.register(self.listener.fileno(), select.EPOLLIN)

    # ------------------------------------------------------------ set-up

    @staticmethod
    def _listen(path: str) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        s.bind(path)
        os.chmod(path, 0o600)
        s.listen(64)
        return s

    def _on_term(self, *_):
        # Stopping the supervisor is not stopping the containers: they are left to a
        # successor (whoever holds the pipes keeps them from SIGPIPE).
        self.running = False

    # ------------------------------------------------------------ containers

    def _add(self, c: Container) -> None:
        if c.id in self.containers:
            raise ValueError(f"container {c.id} is supervised already")
        self.containers[c.id] = c
        if c.child and c.status is None:
            self.by_pid[c.pid] = c
        else:
            try:
                c.pidfd = os.pidfd_open(c.pid)
            except ProcessLookupError:
                c.lost = True
            else:
                self.by_fd[c.pidfd] = (c, None)
                self.ep.register(c.pidfd, select.EPOLLIN)
        if c.log_path:
            try:
                c.log = BatchLogWriter(c.log_path)
            except OSError:
                c.log = None        # no log (dir gone, disk full): still drain and reap
        for fd, stream in c.pipes.items():
            os.set_blocking(fd, False)
            self.by_fd[fd] = (c, stream)
            self.ep.register(fd, select.EPOLLIN)
        self._tell_keeper(c)
        self._maybe_finish(c)

    def _tell_keeper(self, c: Container) -> None:
        """Copies of a container's pipes to the keeper (mcd): while anyone holds a read end,
        a writer never dies of SIGPIPE, and a successor can be given them if we die."""
        if self.keeper is None or not c.pipes:
            return
        msg = {"op": "kept", "id": c.id, "pid": c.pid, "start_time": c.start_time,
               "log": c.log_path, "exit": c.exit_path, "streams": list(c.pipes.values())}
        dups = [os.dup(fd) for fd in c.pipes]
        self._send_keeper(msg, dups)

    def _send_keeper(self, msg: dict, fds: list[int] = ()) -> None:
        try:
            self.keeper.setblocking(True)
            self.keeper.settimeout(5)
            socket.send_fds(self.keeper, [json.dumps(msg).encode()], list(fds)) if fds else \
                self.keeper.send(json.dumps(msg).encode())
        except OSError:
            self._drop_conn(self.keeper.fileno())
        finally:
            for fd in fds:
                os.close(fd)

    def _drop_conn(self, fd: int) -> None:
        conn = self.conns.pop(fd, None)
        if conn is None:
            return
        if conn is self.keeper:
            self.keeper = None
        try:
            self.ep.unregister(fd)
        except (OSError, ValueError):
            pass
        conn.close()

    def spawn(self, req: dict) -> tuple[dict, list[int]]:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        argv, env = list(req["argv"]), req.get("env")
        cwd = req.get("cwd") or "/"
        pid = os.fork()
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)
                for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                          signal.SIGPIPE):
                    signal.signal(s, signal.SIG_DFL)
                os.setsid()
                try:    # raising a score needs no privilege
                    with open("/proc/self/oom_score_adj", "w") as f:
                        f.write("0")
                except OSError:
                    pass
                null = os.open("/dev/null", os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                os.chdir(cwd)
                if env is None:
                    os.execvp(argv[0], argv)
                os.execvpe(argv[0], argv, dict(e.split("=", 1) for e in env))
            except BaseException as err:    # noqa: B036 - never unwind into the loop's code
                try:
                    os.write(2, f"supervisor: exec {argv[0]}: {err}\n".encode())
                finally:
                    os._exit(127)
        os.close(out_w)
        os.close(err_w)
        c = Container(req["id"], pid, _start_time(pid), req.get("log"), req.get("exit"),
                      {out_r: "stdout", err_r: "stderr"}, child=True)
        self._add(c)
        give = [os.dup(out_r), os.dup(err_r)] if req.get("keep") else []
        return {"pid": pid, "start_time": c.start_time}, give

    def adopt(self, req: dict, fds: list[int]) -> dict:
        """A PID 1 someone else started (a launcher that exits, leaving it to us as the
        subreaper), or one left by a supervisor that died: its pipes arrive as fds."""
        streams = req.get("streams")
        attach = req.get("attach") or []
        if streams is None:
            streams = ["stdout", "stderr"][:len(fds)]
        if len(streams) + len(attach) != len(fds):
            raise ValueError(f"adopt: {len(fds)} fds for streams {streams} and attach {attach}")
        pid, start_time = int(req["pid"]), req.get("start_time")
        if start_time is not None and _start_time(pid) not in (start_time, None):
            raise ValueError(f"adopt: pid {pid} is not the process that started at {start_time}")
        status = self.unclaimed.pop(pid, None)
        # A handoff comes from PID 1's parent, a launcher about to exit: PID 1 is ours
        # (reparented to the subreaper) by the time it can be reaped.
        child = bool(req.get("handoff")) or status is not None or _is_child(pid)
        c = Container(req["id"], pid, start_time, req.get("log"), req.get("exit"),
                      dict(zip(fds, streams)), child=child)
        c.status = status
        for stream, fd in zip(attach, fds[len(streams):]):
            os.set_blocking(fd, False)
            c.attach[stream] = fd
        self._add(c)
        return {"child": c.child, "exited": c.exited}

    def _read(self, fd: int) -> None:
        c, stream = self.by_fd[fd]
        if stream is None:          # a pidfd: the process we are not the parent of ended
            self._pidfd_done(c, fd)
            return
        if stream == "attach":      # writable again
            self._flush_attach(c, fd)
            return
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:             # EIO: a pty's last slave closed
            data = b""
        if not data:
            self._close_pipe(c, fd)
            self._maybe_finish(c)
            return
        if c.log is not None:
            try:
                c.log.write(stream, data)
            except OSError:
                pass    # a full disk must not stop the draining (the container would block)
        out = c.attach.get(stream)
        if out is not None:
            c.out.setdefault(out, bytearray()).extend(data)
            self._flush_attach(c, out)

    def _flush_attach(self, c: Container, fd: int) -> None:
        """Write what the caller has not taken yet; past ATTACH_MAX pending, stop reading
        the container's pipes (it slows down, as with the monitor's blocking write)
        until the caller reads again. Never blocks."""
        buf = c.out.get(fd)
        while buf:
            try:
                n = os.write(fd, buf)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError:         # the caller went away: stop copying, keep logging
                self._drop_attach(c, fd)
                return
            del buf[:n]
        registered = self.by_fd.get(fd, (None, None))[1] == "attach"
        if buf:
            if not registered:
                self.by_fd[fd] = (c, "attach")
                self.ep.register(fd, select.EPOLLOUT)
            if len(buf) > ATTACH_MAX and not c.paused:
                c.paused = True
                for p in c.pipes:
                    self.ep.modify(p, 0)
        else:
            c.out.pop(fd, None)
            if registered:
                self.ep.unregister(fd)
                del self.by_fd[fd]
            if c.paused and not any(c.out.values()):
                c.paused = False
                for p in c.pipes:
                    self.ep.modify(p, select.EPOLLIN)
            self._maybe_finish(c)

    def _drop_attach(self, c: Container, fd: int) -> None:
        c.out.pop(fd, None)
        if self.by_fd.get(fd, (None, None))[0] is c:
            self.ep.unregister(fd)
            del self.by_fd[fd]
        for stream in [s for s, f in c.attach.items() if f == fd]:
            del c.attach[stream]
        os.close(fd)
        if c.paused and not any(c.out.values()):
            c.paused = False
            for p in c.pipes:
                self.ep.modify(p, select.EPOLLIN)
        self._maybe_finish(c)

    def _close_pipe(self, c: Container, fd: int) -> None:
        self.ep.unregister(fd)
        del self.by_fd[fd]
        del c.pipes[fd]
        os.close(fd)

    def _pidfd_done(self, c: Container, fd: int) -> None:
        self.ep.unregister(fd)
        del self.by_fd[fd]
        os.close(fd)
        c.pidfd = None
        c.lost = True
        self._maybe_finish(c)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            c = self.by_pid.pop(pid, None)
            if c is not None:
                c.status = status
                self._maybe_finish(c)
            else:
                self.unclaimed[pid] = status
                while len(self.unclaimed) > UNCLAIMED_MAX:
                    del self.unclaimed[next(iter(self.unclaimed))]

    def _maybe_finish(self, c: Container) -> None:
        """Record the end once the process is gone and its pipes are drained (PID 1's end
        kills its namespace, so the pipes close right after)."""
        if not c.exited or c.pipes or any(c.out.values()) or c.id not in self.containers:
            return
        for fd in set(c.attach.values()):
            os.close(fd)
        c.attach.clear()
        if c.log is not None:
            c.log.close()
            c.log = None
        if c.status is not None:
            record = exit_record(c.status)
        else:
            record = {"exit_code": None, "signal": None, "status_lost": True,
                      "finished_at": exit_record(0)["finished_at"],
                      "error": "exit status lost: the container ended while no supervisor "
                               "was its parent"}
        if c.exit_path:
            try:
                write_json_atomic(c.exit_path, record)
            except OSError:
                pass    # the container dir is gone (force-removed)
        del self.containers[c.id]
        if self.keeper is not None:
            self._send_keeper({"op": "gone", "id": c.id})
        for conn in c.waiters:
            self._reply(conn, {"ok": True, "known": True})
        c.waiters.clear()

    # ------------------------------------------------------------ requests

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        self.conns[conn.fileno()] = conn
        self.ep.register(conn.fileno(), select.EPOLLIN)

    def _request(self, fd: int) -> None:
        conn = self.conns[fd]
        try:
            msg, fds, flags, _ = socket.recv_fds(conn, MAX_MSG, MAX_FDS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            msg, fds, flags = b"", [], 0
        if not msg:
            self._drop_conn(fd)
            for f in fds:
                os.close(f)
            return
        give: list[int] = []
        try:
            if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
                raise ValueError("request or its fds truncated")
            if msg[:1] != b"{":
                self._fork_job(msg, fds)
                fds = []
                return
            req = json.loads(msg)
            op = req.get("op")
            if op == "ping":
                answer = {"pid": os.getpid(), "version": PROTOCOL_VERSION, "build": BUILD,
                          "count": len(self.containers)}
            elif op == "spawn":
                answer, give = self.spawn(req)
            elif op == "adopt":
                answer = self.adopt(req, fds)
                fds = []
            elif op == "keep":
                if self.keeper is not None and self.keeper is not conn:
                    self._drop_conn(self.keeper.fileno())
                self.keeper = conn
                self._reply(conn, {"ok": True, "count": len(self.containers)})
                for c in list(self.containers.values()):
                    self._tell_keeper(c)
                return
            elif op == "wait":
                c = self._by_exit_path(req.get("exit"))
                if c is not None:
                    c.waiters.append(conn)      # answered when its record is written
                    return
                answer = {"known": False}
            elif op == "list":
                answer = {"containers": [
                    {"id": c.id, "pid": c.pid, "start_time": c.start_time, "child": c.child,
                     "exited": c.exited} for c in self.containers.values()]}
            elif op == "upgrade":
                self._upgrade = True
                self.running = False
                answer = {"pid": os.getpid()}
            else:
                raise ValueError(f"unknown op {op!r}")
            reply = {"ok": True, **answer}
        except (ValueError, KeyError, TypeError, OSError) as err:
            reply = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        finally:
            for f in fds:
                os.close(f)
        self._reply(conn, reply, give)

    @staticmethod
    def _reply(conn: socket.socket, reply: dict, give: list[int] = ()) -> None:
        try:
            conn.setblocking(True)
            if give:
                socket.send_fds(conn, [json.dumps(reply).encode()], list(give))
            else:
                conn.send(json.dumps(reply).encode())
            conn.setblocking(False)
        except OSError:
            pass
        finally:
            for f in give:
                os.close(f)

    def _by_exit_path(self, path) -> Container | None:
        if not path:
            return None
        for c in self.containers.values():
            if c.exit_path == path:
                return c
        return None

    def _fork_job(self, msg: bytes, fds: list[int]) -> None:
        """A start, in the fork server's own message format (mcd.runtime.forkserver): fork
        the launcher (the monitor's code up to PID 1's exec), which hands PID 1's pipes
        over on a socket pair of its own (an ``adopt`` with ``handoff``) and exits; PID 1
        is then reparented to us, the subreaper."""
        import pickle

        from mcd.runtime import launcher
        ours = theirs = None
        try:
            kind, plan = pickle.loads(msg)
            if kind != "start":
                raise ValueError(f"job {kind!r}: the supervisor forks starts only")
            ours, theirs = socket.socketpair(socket.AF_UNIX,
                                             socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
            plan.handoff = theirs.fileno()
            launcher.fork_monitor(plan, fds)
            ours.setblocking(False)
            self.conns[ours.fileno()] = ours
            self.ep.register(ours.fileno(), select.EPOLLIN)
        except Exception as err:   # noqa: BLE001 - a bad job loses one start, not the supervisor
            from mcd.runtime.forkserver import _report
            _report(fds, err)
            if ours is not None and ours.fileno() not in self.conns:
                ours.close()
        finally:
            if theirs is not None:
                theirs.close()
            for f in fds:
                try:
                    os.close(f)
                except OSError:
                    pass

    # ------------------------------------------------------------ the loop

    def run(self) -> None:
        self._reap()        # children that ended while we were re-executing
        while self.running:
            try:
                events = self.ep.poll()
            except InterruptedError:
                continue
            for fd, _ev in events:
                if fd == self._wake_r:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    self._reap()
                elif fd == self.listener.fileno():
                    self._accept()
                elif fd in self.conns:
                    self._request(fd)
                elif fd in self.by_fd:
                    self._read(fd)
        if self._upgrade:
            self._reexec()

    # ------------------------------------------------------------ upgrade by execve

    def state(self) -> dict:
        cs = []
        for c in self.containers.values():
            cs.append({"id": c.id, "pid": c.pid, "start_time": c.start_time,
                       "log": c.log_path, "exit": c.exit_path,
                       "pipes": {str(fd): s for fd, s in c.pipes.items()},
                       "child": c.child, "pidfd": c.pidfd, "status": c.status, "lost": c.lost,
                       "attach": c.attach,
                       "out": {str(fd): b.decode("latin-1") for fd, b in c.out.items()},
                       "partial": {s: b.decode("latin-1") for s, b in
                                   (c.log.partial.items() if c.log else ())}})
        return {"listener": self.listener.fileno(), "containers": cs}

    def _restore(self, state: dict) -> None:
        for d in state["containers"]:
            c = Container(d["id"], d["pid"], d["start_time"], d["log"], d["exit"],
                          {int(fd): s for fd, s in d["pipes"].items()}, d["child"])
            c.status, c.lost = d["status"], d["lost"]
            c.attach = dict(d.get("attach") or {})
            for fd in set(c.attach.values()):
                os.set_inheritable(fd, False)
            c.out = {int(fd): bytearray(t.encode("latin-1")) for fd, t in (d.get("out") or {}).items()}
            self.containers[c.id] = c
            if c.child and c.status is None:
                self.by_pid[c.pid] = c
            if d["pidfd"] is not None:
                c.pidfd = d["pidfd"]
                os.set_inheritable(c.pidfd, False)
                self.by_fd[c.pidfd] = (c, None)
                self.ep.register(c.pidfd, select.EPOLLIN)
            if c.log_path:
                try:
                    c.log = BatchLogWriter(c.log_path)
                    c.log.partial = {s: t.encode("latin-1") for s, t in d["partial"].items()}
                except OSError:
                    c.log = None
            for fd, stream in c.pipes.items():
                os.set_inheritable(fd, False)
                self.by_fd[fd] = (c, stream)
                self.ep.register(fd, select.EPOLLIN)
        for c in list(self.containers.values()):
            for fd in list(c.out):
                self._flush_attach(c, fd)
            self._maybe_finish(c)

    def _reexec(self) -> None:
        """Hand the state to a fresh copy of ourselves (the code installed now): the pid,
        the children and the subreaper role stay; the pipes keep what was not read."""
        keep = [self.listener.fileno()]
        for c in self.containers.values():
            if c.log is not None and c.log.fd >= 0:
                os.close(c.log.fd)
                c.log.fd = -1
            keep += list(c.pipes) + list(set(c.attach.values()))
            if c.pidfd is not None:
                keep.append(c.pidfd)
        for conn in self.conns.values():
            conn.close()
        mfd = os.memfd_create("mcd-supervisor-state", 0)
        os.write(mfd, json.dumps(self.state()).encode())
        os.lseek(mfd, 0, os.SEEK_SET)
        for fd in keep:
            os.set_inheritable(fd, True)
        env = dict(os.environ, **{STATE_ENV: str(mfd)})
        signal.set_wakeup_fd(-1)
        # The command we were started with: the program now installed at that path.
        argv = [sys.executable, *sys.argv[1:]] if getattr(sys, "frozen", False) else sys.orig_argv
        os.execve(sys.executable, argv, env)


# ---------------------------------------------------------------- helpers

def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _is_child(pid: int) -> bool:
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return True
    except ChildProcessError:
        return False


def _prepare_process() -> None:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    libc.prctl(15, b"mcd-supervisor", 0, 0, 0)      # PR_SET_NAME
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(OOM_SCORE_ADJ))
    except OSError:
        pass    # lowering needs CAP_SYS_RESOURCE: without it, keep the inherited score
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:     # ~4 fds per container (2 pipes, log, pidfd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="mcd supervisor",
                                description="One supervisor for all of mcd's containers.")
    p.add_argument("--socket", required=True, help="control socket path")
    args = p.parse_args(argv)
    state = None
    sfd = os.environ.pop(STATE_ENV, None)
    if sfd is not None:
        with os.fdopen(int(sfd), "rb") as f:
            state = json.loads(f.read())
    _prepare_process()
    # Imported now, not at the first start: every launcher forked shares these pages, and
    # no start pays for the import.
    import mcd.runtime.launcher  # noqa: F401
    sup = Supervisor(args.socket, state=state)
    sup.run()
    return 0
