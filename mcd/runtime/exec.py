"""Run a new process inside a running container (the spec's namespace_join).

    daemon --fork--> helper: closes the daemon's fds, joins the cgroup, opens nothing
                     new (the /proc/PID/ns/* fds were opened by the daemon first, so a
                     container that exits meanwhile fails cleanly), setns into every
                     namespace (user last: see below), forks
                         --fork--> the process: in the container's PID namespace (setns
                                   on pid only affects children), own session, same
                                   security as PID 1, execve.
    The helper waits for it and writes its exit code (128+sig when killed) on a pipe the
    daemon holds: ExecHandle.wait() reads it. The fork server (mcd.runtime.forkserver)
    forks the helper when there is one, so the daemon, large and multi-threaded, is not
    forked on this path either; otherwise the daemon forks it and also reaps it.

With --userns, the container's mount/net/uts/ipc/pid namespaces belong to the host's
user namespace (PID 1 builds them as host root and enters the userns last), so exec
joins them as host root first and the userns last, exactly mirroring PID 1.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
from dataclasses import dataclass

from mcd import errors
from mcd.runtime import rootfs, security, steps
from mcd.runtime import syscalls as sc
from mcd.runtime.interface import Stdio
from mcd.runtime.rootfs import step
from mcwire.spec import ContainerSpec, Process

# setns order: the mount namespace late (it changes our root and cwd), the user
# namespace last (after it we no longer hold the host's privileges over the others).
JOIN_ORDER = ("ipc", "uts", "network", "cgroup", "pid", "mount", "user")


@dataclass
class ExecHandle:
    pid: int
    helper_pid: int | None      # None when the fork server forked the helper (it reaps it)
    tty_master: int | None = None
    status_fd: int | None = None
    _status: int | None = None

    def _finish(self, data: bytes) -> int:
        os.close(self.status_fd)
        self.status_fd = None
        code = int(data) if data.strip().isdigit() else None
        if self.helper_pid is not None:
            while True:
                try:
                    _, status = os.waitpid(self.helper_pid, 0)
                    break
                except InterruptedError:
                    continue
                except ChildProcessError:
                    status = None
                    break
            if code is None and status is not None:
                code = os.waitstatus_to_exitcode(status)
        # No code at all: the helper was killed before it could tell (it always writes one).
        self._status = code if code is not None else 255
        return self._status

    def wait(self) -> int:
        """Exit code of the process (128+signal when killed)."""
        if self._status is None:
            data = b""
            while True:
                try:
                    chunk = os.read(self.status_fd, 16)
                except InterruptedError:
                    continue
                if not chunk:
                    break
                data += chunk
            self._finish(data)
        return self._status

    def poll(self) -> int | None:
        if self._status is None:
            ready, _, _ = select.select([self.status_fd], [], [], 0)
            if ready:
                return self.wait()     # readable: the code (or EOF) is there, no blocking
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
             in_userns: bool) -> None:
    """The exec'd process; never returns."""
    steps.child(sock, lambda: _process_body(process, plan_bpf, cap_last, env, sock, in_userns))


def _process_body(process: Process, plan_bpf, cap_last, env, sock: socket.socket,
                  in_userns: bool) -> None:
    security.set_dumpable(False)
    os.setsid()
    if process.terminal:
        with step("open pty", "/dev/pts/ptmx"):
            master, slave = rootfs.open_pty(-100, "/dev/pts/ptmx", process.console_size)
        steps.take_pty(sock, master, slave)
    if in_userns:
        with step("setuid", "0 in the user namespace"):
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
    steps.drop_privileges_and_exec(process, plan_bpf, cap_last, env, sock.fileno())


def _helper(pid: int, nsfds, process: Process, spec: ContainerSpec, cgroup_procs,
            stdio: Stdio, bpf, cap_last, env, sock: socket.socket,
            status_w: int) -> None:
    """Runs in the daemon's child; never returns. It always reaps the process it forked:
    an orphan would be re-parented outside the container's pid namespace (to init or a
    subreaper) and, left unreaped, would keep the namespace's PID 1 from finishing exit."""
    code = 127
    try:
        # Forked by the fork server, we inherit its ignored SIGCHLD: we wait for our child.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        sc.set_name("mcd-exec")
        keep = {sock.fileno(), status_w, *(fd for _, _, fd in nsfds), *stdio.fds()}
        steps.close_fds(keep, low=0)
        with step("open", "/dev/null"):
            devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        steps.lift_stdio([fd if fd is not None else devnull
                          for fd in (stdio.stdin, stdio.stdout, stdio.stderr)])
        steps.join_cgroups(cgroup_procs)
        for ns, flag, fd in nsfds:
            with step("setns", f"/proc/{pid}/ns/{sc.NAMESPACES[ns][1]}"):
                sc.setns(fd, flag)
            os.close(fd)
        child = os.fork()
        if child == 0:
            _process(process, bpf, cap_last, env, sock, "user" in spec.linux.namespaces)
        try:
            steps.send_msg(sock, b"P", {"pid": child})
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
        try:
            os.write(status_w, str(code).encode())
        except OSError:
            pass    # the daemon is gone: nobody is waiting for the code
    except BaseException as err:    # noqa: B036
        steps.report_failure(sock, err)
    os._exit(code)


@dataclass
class _ExecPlan:
    """What the helper needs, sent to the fork server (the fds travel beside it)."""
    pid: int
    namespaces: list        # [(name, flag)], in the order of the ns fds
    process: Process
    spec: ContainerSpec
    cgroup_procs: list
    stdio: Stdio
    bpf: bytes | None
    cap_last: int
    env: list


def fork_helper(plan: _ExecPlan, fds: list[int]) -> None:
    """In the fork server: fds are [sync socket, status pipe, ns fds..., stdin/out/err
    present in plan.stdio]; fork the helper (the server's SIGCHLD is ignored: the kernel
    reaps it, and the exit code travels on the status pipe)."""
    n = len(plan.namespaces)
    nsfds = [(name, flag, fd) for (name, flag), fd in zip(plan.namespaces, fds[2:2 + n])]
    stdio = plan.stdio.received(fds[2 + n:])
    steps.fork_job("exec helper", fds[0], lambda sock: _helper(
        plan.pid, nsfds, plan.process, plan.spec, plan.cgroup_procs, stdio, plan.bpf,
        plan.cap_last, plan.env, sock, fds[1]))


def run(pid: int, process: Process, spec: ContainerSpec, cgroup_procs=(),
        stdio: Stdio | None = None, *, proc: str = "/proc", forkserver=None) -> ExecHandle:
    """Start process in the container whose PID 1 is pid (the helper is forked by
    ``forkserver`` when given and alive); returns once it has exec'd or failed."""
    stdio = stdio or Stdio()
    bpf = security.default_filter_bpf() if spec.linux.seccomp == "default" else None
    cap_last = security.last_cap(proc)
    env = steps.container_env(process, spec.hostname)
    nsfds = _open_namespaces(pid, spec, proc)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    helper = None
    try:
        server = forkserver
        plan = _ExecPlan(pid, [(ns, flag) for ns, flag, _ in nsfds], process, spec,
                         list(cgroup_procs), stdio, bpf, cap_last, env)
        fds = [theirs.fileno(), status_w, *(fd for _, _, fd in nsfds), *stdio.fds()]
        if server is None or not server.launch(("exec", plan), fds):
            try:
                helper = os.fork()
            except OSError as err:
                raise errors.setup_error("fork", err.errno or errno.EIO, "exec helper",
                                         container=spec.name) from err
            if helper == 0:
                ours.close()
                os.close(status_r)
                _helper(pid, nsfds, process, spec, list(cgroup_procs), stdio, bpf, cap_last,
                        env, theirs, status_w)
        theirs.close()
        os.close(status_w)
        status_w = None
        for _, _, fd in nsfds:
            os.close(fd)
        nsfds = []
        reply = steps.read_reply(ours)
    except BaseException:
        os.close(status_r)
        raise
    finally:
        ours.close()
        if theirs.fileno() >= 0:
            theirs.close()
        if status_w is not None:
            os.close(status_w)
        for _, _, fd in nsfds:
            os.close(fd)
    handle = ExecHandle(pid=reply.pid or 0, helper_pid=helper, tty_master=reply.tty_master,
                        status_fd=status_r)
    if reply.kind == b"E":
        for fd in reply.fds:
            os.close(fd)
        if reply.tty_master is not None:
            os.close(reply.tty_master)
        handle.wait()
        raise steps.error_from(reply.payload, spec.name)
    if reply.pid is None:
        code = handle.wait()
        raise errors.SetupError(f"container {spec.name}: exec helper exited early "
                                f"(status {code})", container=spec.name,
                                step="exec", errno=errno.ECHILD)
    return handle
