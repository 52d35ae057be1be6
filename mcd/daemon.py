"""The mcd process: lock the root, restore state, serve the socket, tell systemd.

Order matters for live restore and readiness: take ROOT/mcd.lock (never two daemons on
one root), reconcile containers from disk and /proc, bind the socket (a live socket is
refused, a stale one replaced), serve, and only then READY=1. SIGTERM/SIGINT stop the
daemon and leave every container running.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import logging
import os
import select
import signal
import subprocess

from mcd.api import Api
from mcd.config import Config
from mcd.errors import KernelError, MCError
from mcd.httpserver import HTTPServer, Peer, bind_unix
from mcd.engine import open_manager
from mcd.manager import Manager
from mcd.notify import Notifier
from mcd.runtime.linux import LinuxRuntime

log = logging.getLogger("mcd")

SOCKET_GROUP = "mcd"


def socket_group() -> int | None:
    try:
        return grp.getgrnam(SOCKET_GROUP).gr_gid
    except KeyError:
        return None


def peer_groups(pid: int, proc: str = "/proc") -> set[int]:
    """Supplementary groups of the peer (SO_PEERCRED gives only the primary one)."""
    try:
        with open(f"{proc}/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except OSError:
        pass
    return set()


def make_authorize(gid: int | None, proc: str = "/proc"):
    def authorize(peer: Peer | None) -> bool:
        if peer is None:
            return False
        if peer.uid == 0:
            return True
        if gid is None:
            return False
        return peer.gid == gid or gid in peer_groups(peer.pid, proc)
    return authorize


def api_answers(path: str, timeout: float = 5.0) -> bool:
    """One real request on our own socket: the accept loop, a handler thread and the
    manager's lock all had to work for it to succeed."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(b"GET /v1/containers HTTP/1.1\r\nHost: mcd\r\nConnection: close\r\n\r\n")
        return s.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
    finally:
        s.close()


class RootLock:
    """flock on ROOT/mcd.lock: held for the daemon's life, released by the kernel on death."""

    def __init__(self, root: str):
        self.path = os.path.join(root, "mcd.lock")
        self.fd = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                other = os.pread(fd, 32, 0).decode().strip()
            except OSError:
                other = "?"
            os.close(fd)
            raise MCError(f"another mcd (pid {other or '?'}) already uses {os.path.dirname(self.path)}",
                          step="lock", path=self.path) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Daemon:
    def __init__(self, cfg: Config, environ=os.environ):
        self.cfg = cfg
        # First thing: take NOTIFY_SOCKET/LISTEN_* out of the environment for good.
        self.notifier = Notifier(environ)
        self.server: HTTPServer | None = None
        self.docker_server: HTTPServer | None = None
        self.manager: Manager | None = None
        self.stop_web = None
        self.lock = RootLock(cfg.root)
        self.forkserver = None

    def _status(self) -> None:
        if self.manager is not None:
            self.notifier.status(self.manager.status_line())

    def run(self) -> int:
        self._spawn_forkserver()
        try:
            return self._run()
        finally:
            if self.forkserver is not None:
                self.forkserver.close()

    def _run(self) -> int:
        cfg = self.cfg
        wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)
        try:
            os.makedirs(cfg.root, mode=0o711, exist_ok=True)
        except OSError as err:
            raise KernelError.from_oserror("mkdir", err, path=cfg.root, step="root") from err
        self.lock.acquire()
        try:
            return self._serve(wake_r)
        finally:
            self.lock.release()

    def _spawn_forkserver(self) -> None:
        """Before any thread starts and before the manager exists: see mcd.runtime.forkserver.
        Without it the daemon forks each monitor itself, slower and heavier, but it works."""
        from mcd.runtime.forkserver import ForkServer
        try:
            self.forkserver = ForkServer.spawn()
        except OSError as err:
            log.warning("fork server not started (%s): monitors are forked by the daemon",
                        err.strerror or err)
            return

    def _supervisor(self):
        """With ``supervisor = true``: the one supervisor under the run dir, found or
        started (mcd.supervisor); None (a monitor per container) if it cannot be had."""
        from mcd.supervisor.handle import SupervisorHandle
        handle = SupervisorHandle(self.cfg.effective_run_dir)
        if not self.cfg.supervisor:
            # Off, but one may still hold containers from when it was on: their exit
            # records come from it, and their pipes are kept as when it is on.
            if os.path.exists(handle.path) and handle.attach_existing():
                return handle
            return None
        try:
            handle.ensure()
        except (OSError, subprocess.SubprocessError) as err:
            log.error("supervisor not available (%s): a monitor per container instead", err)
            return None
        return handle

    def _serve_docker(self, gid: int | None) -> None:
        """The Docker Engine API (mcd.docker) on its own socket: same group, mode and
        SO_PEERCRED rule as the main socket, same server code, same manager."""
        cfg = self.cfg
        from mcd.docker.api import DockerApi, server_error_body, stream_body
        try:
            sock = bind_unix(cfg.docker_socket, mode=0o660 if gid is not None else 0o600, gid=gid)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise MCError(f"docker socket {cfg.docker_socket}: another daemon is listening on it",
                              step="docker-socket", path=cfg.docker_socket) from err
            raise KernelError.from_oserror("bind", err, path=cfg.docker_socket,
                                           step="docker-socket") from err
        self.docker_server = HTTPServer(sock, DockerApi(self.manager), authorize=make_authorize(gid),
                                        max_body=cfg.max_body, name="docker",
                                        error_body=server_error_body, stream_body=stream_body)
        self.docker_server.start()
        log.info("Docker Engine API on %s", cfg.docker_socket)

    def _serve(self, wake_r: int) -> int:
        cfg = self.cfg
        # Bind first (a live socket means another daemon: refuse before touching anything),
        # serve only after the state is reconciled; early clients wait in the backlog.
        gid = socket_group()
        try:
            sock = bind_unix(cfg.socket, mode=0o660 if gid is not None else 0o600, gid=gid)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise MCError(f"socket {cfg.socket}: another daemon is listening on it",
                              step="socket", path=cfg.socket) from err
            raise KernelError.from_oserror("bind", err, path=cfg.socket, step="socket") from err
        from mcd.network.service import NetworkService
        networks = NetworkService(
            cfg.root, cfg.effective_run_dir, config_dir=cfg.network_config_dir,
            default_network=cfg.default_network, default_bridge=cfg.default_network_bridge,
            default_subnet=cfg.default_network_subnet, publish_ip=cfg.publish_ip,
            cni_path=cfg.cni_path.split(":"))
        self.manager = open_manager(cfg.root, cfg.cgroup_parent, on_change=self._status,
                                    runtime=LinuxRuntime(forkserver=self.forkserver,
                                                         supervisor=self._supervisor()),
                                    networks=networks)
        self.manager.insecure_registries = list(cfg.insecure_registries)   # for image pulls
        report = self.manager.restore()
        log.info("restored: %s", ", ".join(f"{len(v)} {k}" for k, v in report.items()))
        try:
            self.manager.images     # opened now: staging a killed load left is removed at once
        except MCError as err:      # image commands will say it again; containers still run
            log.error("image store: %s", err)
        for line in self.manager.migrate_templates():
            log.info("%s", line)
        api = Api(self.manager, info_extra=lambda: {"socket": cfg.socket,
                                                    "web_listen": cfg.web_listen})
        self.server = HTTPServer(sock, api, authorize=make_authorize(gid), max_body=cfg.max_body,
                                 name="api")
        if cfg.docker_socket != "off":
            self._serve_docker(gid)     # before the main socket answers: up once mcctl is
        self.server.start()
        log.info("listening on %s (mode %s%s)", cfg.socket, "0660" if gid is not None else "0600",
                 ", group mcd" if gid is not None else "")
        if cfg.web_listen != "off":
            try:
                from mcd import web
                token = web.load_or_create_token(cfg.root)
                self.stop_web = web.start_web(api, cfg.web_listen, token,
                                              allow_remote=cfg.web_allow_remote)
            except (MCError, ImportError, OSError) as err:
                log.error("dashboard not started: %s", err)
        self.notifier.ready(self.manager.status_line(), health=lambda: api_answers(cfg.socket))
        log.info("ready: %s", self.manager.status_line())
        p = select.poll()
        p.register(wake_r, select.POLLIN)
        while True:
            p.poll()
            data = os.read(wake_r, 64)
            if any(b in (signal.SIGTERM, signal.SIGINT) for b in data):
                break
        log.info("stopping (containers keep running)")
        self.notifier.stopping()
        if self.stop_web is not None:
            self.stop_web()
        self.server.shutdown()
        if self.docker_server is not None:
            self.docker_server.shutdown()
        for path in (cfg.socket, cfg.docker_socket if self.docker_server is not None else None):
            try:
                if path:
                    os.unlink(path)
            except OSError:
                pass
        self.manager.close()
        return 0
