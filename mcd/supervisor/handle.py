"""mcd's side of the supervisor: find it (or start it) under the run dir, hand it starts,
ask it for exit records, keep copies of the pipes, replace it if it dies or is old.

Used by mcd.runtime.linux.LinuxRuntime when ``supervisor = true`` (mcd.toml) or
``mcd --supervisor``; without it, every container has its own monitor (the default).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from mcd.supervisor import PROTOCOL_VERSION, SOCKET_NAME
from mcd.supervisor.client import SupervisorClient, SupervisorError
from mcwire import __version__

log = logging.getLogger("mcd.supervisor")

WAIT_RETRY_SECONDS = 15.0   # a supervisor re-executing itself answers again within this


def supervisor_command(sock: str) -> list[str]:
    """The supervisor is mcd's own program (frozen or not) with the hidden `supervisor`
    command, so a package upgrade upgrades both, and its re-exec runs the new one."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "supervisor", "--socket", sock]
    return [sys.executable, "-m", "mcd", "supervisor", "--socket", sock]


def _ping(path: str) -> dict | None:
    try:
        with SupervisorClient(path, timeout=5) as c:
            return c.call("ping")[0]
    except (OSError, SupervisorError, ValueError):
        return None


class SupervisorHandle:
    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, SOCKET_NAME)
        self.pid: int | None = None
        self.launcher = None        # a ForkServer on a connection to the supervisor
        self._lock = threading.Lock()
        # Copies of every supervised container's pipe read ends: id -> (record, fds).
        self.kept: dict[str, tuple[dict, list[int]]] = {}
        self._keeper_thread: threading.Thread | None = None
        self._closing = False

    # ------------------------------------------------------------ finding it

    def ensure(self) -> None:
        """Connect to the running supervisor (upgrading it if it runs other code), or
        start one; then open the connection starts go through."""
        with self._lock:
            info = _ping(self.path)
            if info is not None and info.get("build") != _build():
                log.info("supervisor (pid %s) runs %s: re-executing it as %s", info.get("pid"),
                         info.get("build"), _build())
                self._upgrade()
                info = _ping(self.path)
            if info is None:
                self._start()
                info = _ping(self.path)
            if info is None:
                raise OSError(f"supervisor at {self.path} does not answer")
            self.pid = info["pid"]
            self._connect_launcher()
            log.info("supervisor pid %s on %s, %s containers", self.pid, self.path,
                     info.get("count"))
        if self._keeper_thread is None:
            _raise_nofile()     # two fds per container are held here
            self._keeper_thread = threading.Thread(target=self._keep, name="supervisor-keeper",
                                                   daemon=True)
            self._keeper_thread.start()

    # ------------------------------------------------------------ holding the pipes

    def _keep(self) -> None:
        """Hold copies of the pipes; when the supervisor dies, start another and give it
        every container with those copies (it is not their parent: an exit it sees is
        recorded as "exit status lost"). A supervisor that re-executed itself is just
        reconnected to."""
        while not self._closing:
            try:
                conn = SupervisorClient(self.path, timeout=None)
                conn.call("keep")
            except (OSError, SupervisorError) as err:
                log.warning("supervisor: cannot hold the pipes (%s)", err)
                conn = None
            if conn is not None:
                self._receive(conn)
                conn.close()
            else:
                time.sleep(1)
            if self._closing:
                return
            info = None
            deadline = time.monotonic() + 10
            while info is None and time.monotonic() < deadline and _listening(self.path):
                info = _ping(self.path)     # None while it re-executes (it keeps listening)
                if info is None:
                    time.sleep(0.05)
            if info is not None and info.get("pid") == self.pid:
                continue        # re-executed: same process, same containers
            log.error("supervisor (pid %s) is gone: starting another and giving it %d "
                      "containers", self.pid, len(self.kept))
            try:
                self.ensure_started_only()
                self._handover()
            except (OSError, SupervisorError, subprocess.SubprocessError) as err:
                log.error("supervisor takeover failed: %s; retrying", err)
                time.sleep(1)

    def _receive(self, conn: SupervisorClient) -> None:
        while True:
            try:
                data, fds, _flags, _ = socket.recv_fds(conn.sock, 65536, 8)
            except OSError:
                return
            if not data:
                for fd in fds:
                    os.close(fd)
                return
            msg = json.loads(data)
            old = self.kept.pop(msg.get("id"), None)
            if old is not None:
                for fd in old[1]:
                    os.close(fd)
            if msg.get("op") == "kept":
                self.kept[msg["id"]] = (msg, fds)
            else:
                for fd in fds:
                    os.close(fd)

    def ensure_started_only(self) -> None:
        with self._lock:
            if _ping(self.path) is None:
                self._start()
            self.pid = _ping(self.path)["pid"]
            if self.launcher is not None:       # not when only holding a previous one's
                self._connect_launcher()

    def _handover(self) -> None:
        with SupervisorClient(self.path) as c:
            for cid, (rec, fds) in list(self.kept.items()):
                try:
                    c.call("adopt", fds=fds, id=cid, pid=rec["pid"], start_time=rec["start_time"],
                           log=rec["log"], exit=rec["exit"], streams=rec["streams"])
                except SupervisorError as err:
                    log.error("supervisor takeover: container %s: %s", cid, err)

    def attach_existing(self) -> bool:
        """With the switch off: if a supervisor still holds containers (the switch was on
        before), keep its pipes and ask it for their exit records, but start nothing
        through it. False when there is none."""
        info = _ping(self.path)
        if info is None:
            return False
        if not info.get("count"):
            log.info("supervisor pid %s holds no container and is switched off: stopping it",
                     info["pid"])
            try:
                os.kill(info["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
            return False
        self.pid = info["pid"]
        log.info("supervisor pid %s still holds %s containers: keeping them, new containers "
                 "get a monitor each", self.pid, info.get("count"))
        if self._keeper_thread is None:
            _raise_nofile()
            self._keeper_thread = threading.Thread(target=self._keep, name="supervisor-keeper",
                                                   daemon=True)
            self._keeper_thread.start()
        return True

    def _start(self) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o711, exist_ok=True)
        # A new session, and nobody's child once sh has exited: it outlives this daemon.
        cmd = supervisor_command(self.path)
        subprocess.run(["/bin/sh", "-c", '"$@" </dev/null &', "sh", *cmd], check=True,
                       start_new_session=True)
        deadline = time.monotonic() + 30
        while _ping(self.path) is None:
            if time.monotonic() > deadline:
                raise OSError(f"supervisor did not answer on {self.path}")
            time.sleep(0.02)

    def _upgrade(self) -> None:
        try:
            with SupervisorClient(self.path) as c:
                c.call("upgrade")
        except (OSError, SupervisorError) as err:
            log.warning("supervisor upgrade: %s", err)
            return
        deadline = time.monotonic() + 30
        while (_ping(self.path) or {}).get("build") != _build():
            if time.monotonic() > deadline:
                log.error("supervisor did not come back after its upgrade")
                return
            time.sleep(0.02)

    def _connect_launcher(self) -> None:
        from mcd.runtime.forkserver import MAX_MSG, SO_SNDBUFFORCE, ForkServer
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        s.connect(self.path)
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, MAX_MSG)
        except OSError:
            pass
        if self.launcher is not None:
            self.launcher.sock.close()
        self.launcher = ForkServer(s, self.pid)

    # ------------------------------------------------------------ asking it

    def wait_recorded(self, exit_path: str) -> None:
        """Return once the supervisor has written exit_path for a container it holds (at
        once for one it does not know: a monitor's, or one recorded already). A supervisor
        re-executing itself is waited for; one that is gone is not."""
        deadline = time.monotonic() + WAIT_RETRY_SECONDS
        while True:
            try:
                with SupervisorClient(self.path, timeout=None) as c:
                    c.call("wait", exit=exit_path)
                return
            except (OSError, SupervisorError, ValueError):
                if time.monotonic() > deadline or not os.path.exists(self.path):
                    return
                time.sleep(0.05)

    def close(self) -> None:
        self._closing = True
        if self.launcher is not None:
            self.launcher.alive = False
            self.launcher.sock.close()


def _listening(path: str) -> bool:
    """False once nobody listens on the socket (refused, or no file): the supervisor is
    dead. One that re-executes itself keeps its listening socket across execve."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True
    finally:
        s.close()


def _raise_nofile() -> None:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _build() -> str:
    return f"{__version__}/{PROTOCOL_VERSION}"
