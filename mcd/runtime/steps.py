"""Child setup shared by every process the runtime forks: the monitor and PID 1 of a start
(mcd.runtime.launcher), the helper and process of an exec (mcd.runtime.exec), and the
fork server (mcd.runtime.forkserver). Each step is written once, here:

* the handshake: a forked child reports on a SOCK_SEQPACKET socket, one message per
  datagram, ``kind + JSON``: ``E`` a failure ``{"step", "path", "errno"}``, ``T`` a pty
  master (SCM_RIGHTS), ``P`` a pid, ``S`` started; EOF on a CLOEXEC socket means execve
  succeeded. ``child`` runs a child's body so that anything it raises reaches the
  parent as an ``E``; ``read_reply`` is the parent's side; ``error_from`` makes the
  user's error of an ``E``;
* stdio: ``lift_stdio`` puts three fds on 0, 1, 2 without clobbering one another;
* cgroups: ``join_cgroups`` writes 0 to each cgroup.procs (the caller joins itself);
* fds: ``close_fds`` closes everything but what a child keeps;
* the common tail of PID 1 and exec: signals, environment, privileges, execve.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import termios
from dataclasses import dataclass, field

from mcd import errors
from mcd.runtime import security
from mcd.runtime import syscalls as sc
from mcd.runtime.rootfs import StepFailed, step
from mcwire.spec import DEFAULT_ENV, Process

# Every fd a child could hold lies below this (close_range makes a large bound cheap).
MAX_FD = max(os.sysconf("SC_OPEN_MAX"), 1 << 16)


# ------------------------------------------------------------------ the handshake

def send_msg(sock: socket.socket, kind: bytes, payload: dict, fds: list[int] = ()) -> None:
    msg = kind + json.dumps(payload).encode()
    if fds:
        socket.send_fds(sock, [msg], list(fds))
    else:
        sock.send(msg)


def recv_msg(sock: socket.socket):
    """-> (kind, payload, fds); kind b"" on EOF."""
    msg, fds, _flags, _addr = socket.recv_fds(sock, 65536, 4)
    if not msg:
        return b"", {}, fds
    return msg[:1], json.loads(msg[1:] or b"{}"), fds


def report_failure(sock: socket.socket, err: BaseException) -> None:
    if isinstance(err, StepFailed):
        payload = {"step": err.step, "path": err.path, "errno": err.errno}
    elif isinstance(err, OSError):
        payload = {"step": "setup", "path": err.filename, "errno": err.errno or errno.EIO}
    else:
        payload = {"step": "setup", "path": None, "errno": errno.EIO, "detail": repr(err)}
    try:
        send_msg(sock, b"E", payload)
    except OSError:
        pass


def child(sock: socket.socket, body, exit_code: int = 127) -> None:
    """Run a forked child's body; whatever it raises reaches the parent on sock as an
    ``E`` message. Never returns (the body execs or exits itself on success)."""
    try:
        body()
    except BaseException as err:    # noqa: B036 - everything must reach the caller
        report_failure(sock, err)
    os._exit(exit_code)


@dataclass
class Reply:
    """The parent's reading of a child's messages: the last one (``kind``: ``S``, ``E``,
    or b"" for EOF) and what came before it (a pty master, a pid)."""
    kind: bytes
    payload: dict
    fds: list = field(default_factory=list)
    tty_master: int | None = None
    pid: int | None = None


def read_reply(sock: socket.socket) -> Reply:
    """Read until a message that is not a ``T`` (pty) or ``P`` (pid), or EOF."""
    master = pid = None
    while True:
        kind, payload, fds = recv_msg(sock)
        if kind == b"T" and fds:
            master = fds[0]
        elif kind == b"P":
            pid = payload["pid"]
        else:
            return Reply(kind, payload, fds, master, pid)


def error_from(payload: dict, container: str | None) -> errors.SetupError:
    err = errors.setup_error(payload.get("step", "setup"), int(payload.get("errno") or errno.EIO),
                             payload.get("path"), container=container)
    if payload.get("detail"):
        err.details = {"detail": payload["detail"]}
    return err


def fork_job(what: str, sock_fd: int, body) -> None:
    """In the fork server: fork the child of one job (a monitor, an exec helper), which
    reports on the job's socket (``sock_fd``, the first fd that came with the job) and
    never returns; a failed fork raises StepFailed("fork", what)."""
    sock = socket.socket(fileno=os.dup(sock_fd))
    try:
        with step("fork", what):
            pid = os.fork()
        if pid == 0:
            body(sock)
    finally:
        sock.close()


# ------------------------------------------------------------------ stdio, cgroup, fds

def lift_stdio(fds) -> None:
    """Make fds[0..2] the process's 0, 1, 2. They are lifted above 2 first, so that dup2
    into 0-2 cannot clobber one that is still to be placed."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]
    for target, fd in enumerate(high):
        os.dup2(fd, target, inheritable=True)
        os.close(fd)


def join_cgroups(procs_files) -> None:
    """Move the calling process into the container's cgroup (one cgroup.procs per
    hierarchy)."""
    for path in procs_files:
        with step("join cgroup", path):
            with open(path, "w") as f:
                f.write("0")


def close_fds(keep, low: int = 3) -> None:
    """Close every fd from ``low`` up, except those in ``keep``: a forked child is a copy
    of its parent and must hold nothing of it (listening sockets, other containers'
    pipes...)."""
    start = low
    for fd in sorted(k for k in keep if k >= low):
        if fd > start:
            os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, MAX_FD)


def devnull_stdio(keep) -> None:
    """Point those of 0, 1, 2 that are not in keep at /dev/null."""
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        if fd not in keep and fd != devnull:
            os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)


# ------------------------------------------------------------------ the common tail

def container_env(process: Process, hostname: str) -> list[str]:
    """Exactly the spec's env (+HOSTNAME): nothing of the daemon's leaks in
    (NOTIFY_SOCKET, LISTEN_FDS... never reach a container)."""
    env = list(process.env)
    if not any(e.startswith("HOSTNAME=") for e in env):
        env.append(f"HOSTNAME={hostname}")
    return env


def reset_signals() -> None:
    """Python ignores SIGPIPE/SIGXFSZ; ignored signals survive execve, handlers do not."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM,
                signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def reset_oom_score_adj() -> None:
    """A daemon protected from the OOM killer (systemd OOMScoreAdjust < 0) must not pass
    that protection on to containers. Raising the value needs no privilege."""
    with step("oom_score_adj", "/proc/self/oom_score_adj"):
        with open("/proc/self/oom_score_adj", "r+") as f:
            if int(f.read()) < 0:
                f.seek(0)
                f.write("0")


def set_controlling_tty(slave: int) -> None:
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def take_pty(sock: socket.socket, master: int, slave: int) -> None:
    """A terminal process: the pty master goes to the parent (``T``), the slave becomes
    0, 1, 2 and the controlling terminal (the caller is a session leader)."""
    with step("send pty"):
        send_msg(sock, b"T", {}, [master])
    os.close(master)
    with step("set controlling tty"):
        set_controlling_tty(slave)


def drop_privileges_and_exec(process: Process, plan_bpf: bytes | None, cap_last: int,
                             env: list[str], sync_fd: int) -> None:
    """The common tail of PID 1 and exec: security, identity, cwd, fds, execve.

    Order matters: no_new_privs, then seccomp (allowed without CAP_SYS_ADMIN once nnp is
    set), then the bounding set (needs CAP_SETPCAP), then ids with keepcaps, then capset.
    Nothing after the filter is a call it denies."""
    keep = security.capability_mask(process.capabilities)
    with step("mkdir workdir", process.cwd):
        os.makedirs(process.cwd, 0o755, exist_ok=True)
    if process.no_new_privileges:
        with step("no_new_privs"):
            security.set_no_new_privs()
    if plan_bpf is not None:
        with step("seccomp"):
            security.load_seccomp(plan_bpf)
    with step("capabilities", "bounding set"):
        security.drop_bounding(keep, cap_last)
    user = process.user
    with step("setuid", f"{user.uid}:{user.gid}"):
        sc.prctl(sc.PR_SET_KEEPCAPS, 1)
        os.setgroups(list(user.additional_gids))
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
    # Before capset: a non-root user has no effective capabilities here, so the
    # workdir is checked with the user's own permissions.
    with step("chdir", process.cwd):
        os.chdir(process.cwd)
    with step("capabilities"):
        security.set_capabilities(keep)
    os.umask(0o022)
    reset_signals()
    close_fds({sync_fd})     # the sync socket is CLOEXEC: execve itself closes it
    execvpe(process.args, env)


def execvpe(args: list[str], env: list[str]) -> None:
    """PATH search inside the container, reporting the error the user expects:
    EACCES from any candidate wins over ENOENT (as execvp does)."""
    name = args[0]
    if "/" in name:
        candidates = [name]
    else:
        path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_ENV[0][5:])
        candidates = [os.path.join(d or ".", name) for d in path.split(":")]
    envmap = dict(e.split("=", 1) for e in env)
    first = None
    for cand in candidates:
        try:
            os.execve(cand, args, envmap)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.ENOEXEC, errno.EPERM, errno.EISDIR) and \
                    (first is None or first == errno.ENOENT):
                first = err.errno
            elif first is None and err.errno not in (errno.ENOENT, errno.ENOTDIR):
                first = err.errno
    raise StepFailed("exec", name, first or errno.ENOENT)
