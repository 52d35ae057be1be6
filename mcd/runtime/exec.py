"""Run a new process inside a running container (the spec's namespace_join).

    daemon --fork--> helper: closes the daemon's fds, joins the cgroup, opens nothing
                     new (the /proc/PID/ns/* fds were opened by the daemon first, so a
                     container that exits meanwhile fails cleanly), setns into every
                     namespace (user last: see below), forks
                         --fork--> the process: in the container's PID namespace (setns
                                   on pid only affects children), own session, same
                                   security as PID 1, execve.
    The helper waits for it and exits with its status (128+sig when killed), so
    ExecHandle.wait() is a plain waitpid on the daemon's own child.

With --userns, the container's mount/net/uts/ipc/pid namespaces belong to the host's
user namespace (PID 1 builds them as host root and enters the userns last), so exec
joins them as host root first and the userns last, exactly mirroring PID 1.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from dataclasses import dataclass

from mcd import errors
from mcd.runtime import launcher, rootfs, security
from mcd.runtime import syscalls as sc
from mcd.runtime.rootfs import step
from mcd.spec import ContainerSpec, Process

# setns order: the mount namespace late (it changes our root and cwd), the user
# namespace last (after it we no longer hold the host's privileges over the others).
JOIN_ORDER = ("ipc", "uts", "network", "cgroup", "pid", "mount", "user")


@dataclass
class ExecHandle:
    pid: int
    helper_pid: int
    tty_master: int | None = None
    _status: int | None = None

    def wait(self) -> int:
        """Exit code of the process (128+signal when killed)."""
        if self._status is None:
            while True:
                try:
                    _, status = os.waitpid(self.helper_pid, 0)
                    break
                except InterruptedError:
                    continue
            self._status = os.waitstatus_to_exitcode(status)
        return self._status

    def poll(self) -> int | None:
        if self._status is None:
            pid, status = os.waitpid(self.helper_pid, os.WNOHANG)
            if pid:
                self._status = os.waitstatus_to_exitcode(status)
        return self._status


def _open_namespaces(pid: int, spec: ContainerSpec, proc: str) -> list[tuple[str, int, int]]:
    out = []
    try:
        for ns in JOIN_ORDER:
            if ns not in spec.linux.namespaces:
                continue
            flag, entry = sc.NAMESPACES[ns]
            path = f"{proc}/{pid}/ns/{entry}"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise errors.NotRunning(f"container {spec.name} is not running (no {path})",
                                        container=spec.name) from None
            except OSError as err:
                raise errors.KernelError.from_oserror("open", err, path,
                                                      container=spec.name) from err
            out.append((ns, flag, fd))
    except BaseException:
        for _, _, fd in out:
            os.close(fd)
        raise
    return out


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _process(process: Process, plan_bpf, cap_last, env, sock: socket.socket,
             stdio: launcher.Stdio, in_userns: bool) -> None:
    """The exec'd process; never returns."""
    try:
        security.set_dumpable(False)
        os.setsid()
        if process.terminal:
            with step("open pty", "/dev/pts/ptmx"):
                master, slave = rootfs.open_pty(-100, "/dev/pts/ptmx", process.console_size)
            with step("send pty"):
                launcher.send_msg(sock, b"T", {}, [master])
            os.close(master)
            with step("set controlling tty"):
                launcher.set_controlling_tty(slave)
        if in_userns:
            with step("setuid", "0 in the user namespace"):
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
        launcher.drop_privileges_and_exec(process, plan_bpf, cap_last, env, sock.fileno())
    except BaseException as err:    # noqa: B036 - everything must reach the caller
        launcher.report_failure(sock, err)
    os._exit(127)


def _helper(pid: int, nsfds, process: Process, spec: ContainerSpec, cgroup_procs,
            stdio: launcher.Stdio, bpf, cap_last, env, sock: socket.socket) -> None:
    """Runs in the daemon's child; never returns. It always reaps the process it forked:
    an orphan would be re-parented outside the container's pid namespace (to init or a
    subreaper) and, left unreaped, would keep the namespace's PID 1 from finishing exit."""
    code = 127
    try:
        keep = {sock.fileno(), *(fd for _, _, fd in nsfds)}
        std = [stdio.stdin, stdio.stdout, stdio.stderr]
        keep.update(fd for fd in std if fd is not None)
        launcher.keep_only_fds(keep)
        with step("open", "/dev/null"):
            devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        high = [fcntl.fcntl(fd if fd is not None else devnull, fcntl.F_DUPFD_CLOEXEC, 10)
                for fd in std]
        for target, fd in enumerate(high):
            os.dup2(fd, target, inheritable=True)
            os.close(fd)
        for path in cgroup_procs:
            with step("join cgroup", path):
                with open(path, "w") as f:
                    f.write("0")
        for ns, flag, fd in nsfds:
            with step("setns", f"/proc/{pid}/ns/{sc.NAMESPACES[ns][1]}"):
                sc.setns(fd, flag)
            os.close(fd)
        child = os.fork()
        if child == 0:
            _process(process, bpf, cap_last, env, sock, stdio, "user" in spec.linux.namespaces)
        try:
            launcher.send_msg(sock, b"P", {"pid": child})
        except OSError:
            pass    # the caller already has the child's error; we must still reap it
        sock.close()
        for fd in (0, 1, 2):
            os.close(fd)
        while True:
            try:
                _, status = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        code = _exit_code(status)
    except BaseException as err:    # noqa: B036
        launcher.report_failure(sock, err)
    os._exit(code)


def run(pid: int, process: Process, spec: ContainerSpec, cgroup_procs=(),
        stdio: launcher.Stdio | None = None, *, proc: str = "/proc") -> ExecHandle:
    stdio = stdio or launcher.Stdio()
    bpf = security.default_filter_bpf() if spec.linux.seccomp == "default" else None
    cap_last = security.last_cap(proc)
    env = launcher.container_env(process, spec.hostname)
    nsfds = _open_namespaces(pid, spec, proc)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        helper = os.fork()
        if helper == 0:
            ours.close()
            _helper(pid, nsfds, process, spec, list(cgroup_procs), stdio, bpf, cap_last, env,
                    theirs)
        theirs.close()
        for _, _, fd in nsfds:
            os.close(fd)
        child = None
        master = None
        while True:
            kind, payload, fds = launcher.recv_msg(ours)
            if kind == b"P":
                child = payload["pid"]
            elif kind == b"T" and fds:
                master = fds[0]
            else:
                break
    finally:
        ours.close()
    if kind == b"E":
        for fd in fds:
            os.close(fd)
        if master is not None:
            os.close(master)
        os.waitpid(helper, 0)
        raise launcher.error_from(payload, spec.name)
    if child is None:
        _, status = os.waitpid(helper, 0)
        raise errors.SetupError(f"container {spec.name}: exec helper exited early "
                                f"(status {_exit_code(status)})", container=spec.name,
                                step="exec", errno=errno.ECHILD)
    return ExecHandle(pid=child, helper_pid=helper, tty_master=master)
