"""Start a container: monitor + PID 1, with every setup failure reported by step.

    daemon --fork--> intermediate --fork--> monitor (setsid; reparented away, survives
                        exits at once           the daemon; unshare(CLONE_NEWPID))
                                                    --fork--> PID 1: joins the cgroup,
                                                   unshares mnt/uts/ipc/net/cgroup, builds
                                                   the rootfs, drops privileges, execs.

Two SOCK_SEQPACKET socket pairs carry the results: PID 1 -> monitor (the "sync
socket", CLOEXEC in PID 1, so EOF means execve succeeded) and monitor -> daemon.
A failure travels as ``E{"step", "path", "errno"}`` and becomes
``mcd.errors.setup_error``; a tty master travels as SCM_RIGHTS.

User namespaces: the monitor creates the userns (a helper child unshares it, the
monitor writes uid_map/gid_map, keeps /proc/HELPER/ns/user open). PID 1 builds the
rootfs as host root, with the template attached through an idmapped mount
(mount_setattr MOUNT_ATTR_IDMAP) as the overlay's lowerdir, and the container's
upper dir owned by the mapped root; it enters the userns last, just before
dropping privileges. See docs/design.md "Runtime".
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
from mcd.runtime import monitor, net, rootfs, security
from mcd.runtime import syscalls as sc
from mcd.runtime.rootfs import StepFailed, step
from mcwire.spec import DEFAULT_ENV, ContainerSpec, Process

MAX_FD = 1 << 16


@dataclass
class ContainerPaths:
    """lower: a template's one tree; lowers: an image's layers, top first (overlay's
    order), and lower_base: the directory they are short names under (the mount is
    made from there with relative names, see rootfs.mount_overlay)."""
    dir: str
    lower: str = ""
    lowers: list = field(default_factory=list)
    lower_base: str = ""

    def __post_init__(self):
        if not self.lowers:
            self.lowers = [self.lower]
        if not self.lower:
            self.lower = self.lowers[0]
        d = self.dir
        self.upper = os.path.join(d, "upper")
        self.work = os.path.join(d, "work")
        self.rootfs = os.path.join(d, "rootfs")
        self.lower_idmapped = os.path.join(d, "lower")
        self.log = os.path.join(d, "container.log")
        self.exit = os.path.join(d, "exit.json")
        self.hostname = os.path.join(d, "hostname")
        self.hosts = os.path.join(d, "hosts")
        self.resolv_conf = os.path.join(d, "resolv.conf")


@dataclass
class Stdio:
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
class _Plan:
    """Everything the forked processes need, computed before any fork."""
    spec: ContainerSpec
    paths: ContainerPaths
    cgroup_procs: list
    stdio: Stdio
    bpf: bytes | None
    cap_last: int
    env: list = field(default_factory=list)
    netns: str | None = None    # a ready network namespace to join instead of a new one


# ------------------------------------------------------------------ the wire

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


def error_from(payload: dict, container: str | None) -> errors.SetupError:
    err = errors.setup_error(payload.get("step", "setup"), int(payload.get("errno") or errno.EIO),
                             payload.get("path"), container=container)
    if payload.get("detail"):
        err.details = {"detail": payload["detail"]}
    return err


# ------------------------------------------------------- shared with exec.py

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


def close_fds(keep: int) -> None:
    """Everything but 0-2 and the CLOEXEC sync socket (closed by execve itself)."""
    os.closerange(3, keep)
    os.closerange(keep + 1, MAX_FD)


def set_controlling_tty(slave: int) -> None:
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


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
    close_fds(sync_fd)
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


# ---------------------------------------------------------------- PID 1

def _container_init(plan: _Plan, sync: socket.socket, userns_fd: int | None,
                    stdio_fds: tuple[int, int, int] | None) -> None:
    """Runs in the forked PID 1; never returns."""
    spec, paths = plan.spec, plan.paths
    try:
        security.set_dumpable(False)
        os.setsid()
        os.umask(0)
        if stdio_fds is not None:
            # Lift them above 2 first so dup2 into 0-2 cannot clobber one another.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in stdio_fds]
            for target, fd in enumerate(high):
                os.dup2(fd, target, inheritable=True)
                os.close(fd)
        reset_oom_score_adj()
        for path in plan.cgroup_procs:
            with step("join cgroup", path):
                with open(path, "w") as f:
                    f.write("0")
        flags = 0
        for ns in spec.linux.namespaces:
            if ns not in ("pid", "user") and not (ns == "network" and plan.netns):
                flags |= sc.NAMESPACES[ns][0]
        with step("unshare"):
            sc.unshare(flags)
        if plan.netns and "network" in spec.linux.namespaces:
            with step("setns", plan.netns):
                fd = os.open(plan.netns, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    sc.setns(fd, sc.CLONE_NEWNET)
                finally:
                    os.close(fd)
        with step("make mounts private", "/"):
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        lowers, base = paths.lowers, paths.lower_base
        if userns_fd is not None:
            lowers, base = rootfs.idmapped_lowers(paths, userns_fd)
        rootfs.mount_overlay(paths, lowers, base)
        with step("open rootfs", paths.rootfs):
            rootfd = os.open(paths.rootfs, rootfs.O_PATH | os.O_DIRECTORY)
        new_netns = "network" in spec.linux.namespaces
        pty = rootfs.mount_system(rootfd, spec.process.terminal, spec.process.console_size)
        rootfs.user_mounts(rootfd, spec.mounts)
        rootfs.bind_files(rootfd, [(paths.hostname, "/etc/hostname"), (paths.hosts, "/etc/hosts"),
                                   (paths.resolv_conf, "/etc/resolv.conf")],
                          {m.destination for m in spec.mounts})
        if userns_fd is not None and new_netns:
            rootfs.userns_net_sysctls(rootfd)
        rootfs.mask_paths(rootfd, spec.linux.masked_paths)
        rootfs.readonly_paths(rootfd, spec.linux.readonly_paths)
        if "uts" in spec.linux.namespaces:
            with step("sethostname", spec.hostname):
                sc.sethostname(spec.hostname)
        if new_netns:
            with step("link up", "lo"):
                net.link_up("lo")
        rootfs.pivot(rootfd)
        os.close(rootfd)
        if spec.root.readonly:
            with step("remount read-only", "/"):
                fd = os.open("/", rootfs.O_PATH)
                sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH, sc.MOUNT_ATTR_RDONLY, display="/")
                os.close(fd)
        if pty is not None:
            master, slave = pty
            with step("send pty"):
                send_msg(sync, b"T", {}, [master])
            os.close(master)
            with step("set controlling tty"):
                set_controlling_tty(slave)
        if userns_fd is not None:
            with step("setns", "user"):
                sc.setns(userns_fd, sc.CLONE_NEWUSER)
                os.close(userns_fd)
                # The ids we had are unmapped in the new userns: become its root first.
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
        drop_privileges_and_exec(spec.process, plan.bpf, plan.cap_last, plan.env,
                                 sync.fileno())
    except BaseException as err:    # noqa: B036 - everything must reach the caller
        report_failure(sync, err)
    os._exit(127)


# ---------------------------------------------------------------- monitor

def _make_userns(spec: ContainerSpec) -> int:
    """A user namespace with the spec's maps, kept alive by an fd (no process stays in it)."""
    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.close(w2)
            try:
                sc.unshare(sc.CLONE_NEWUSER)
                os.write(w, b"\0")
            except errors.KernelError as err:
                os.write(w, bytes([err.errno or errno.EIO]))
            os.read(r2, 1)
        finally:
            os._exit(0)
    os.close(w)
    os.close(r2)
    try:
        got = os.read(r, 1)
        if got != b"\0":
            raise StepFailed("unshare", "user", got[0] if got else errno.EIO)
        for name, maps in (("uid_map", spec.linux.uid_mappings),
                           ("gid_map", spec.linux.gid_mappings)):
            with step("write " + name, f"/proc/{pid}/{name}"):
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write("".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps))
        with step("open", f"/proc/{pid}/ns/user"):
            return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(r)
        os.close(w2)
        os.waitpid(pid, 0)


def keep_only_fds(keep: set[int]) -> None:
    """The monitor is a copy of the daemon: drop every fd it does not need
    (listening socket, other containers' pipes...)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _monitor(plan: _Plan, result: socket.socket) -> None:
    """Runs in the monitor; never returns."""
    monitor.make_light()
    sc.set_name("mcd-monitor")
    spec, stdio = plan.spec, plan.stdio
    try:
        # The fork server ignores SIGCHLD (to have its monitors reaped for it); the monitor
        # waits for PID 1, so it needs the default back before it forks anything.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        # Whoever forked us (daemon or fork server) had its own handlers and wakeup fd:
        # a monitor ignores the signals a terminal or an operator's kill would send.
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        attach = {}
        if stdio.stdout is not None:
            attach["stdout"] = stdio.stdout
        if stdio.stderr is not None:
            attach["stderr"] = stdio.stderr
        keep = {result.fileno(), *attach.values()}
        if stdio.stdin is not None:
            keep.add(stdio.stdin)
        keep_only_fds(keep)
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            if fd not in keep and fd != devnull:
                os.dup2(devnull, fd)
        if devnull > 2:
            os.close(devnull)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        userns_fd = _make_userns(spec) if "user" in spec.linux.namespaces else None
        with step("unshare", "pid"):
            sc.unshare(sc.CLONE_NEWPID)
        sync, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sources = {}
        stdio_fds = None
        if not spec.process.terminal:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            stdin = stdio.stdin if stdio.stdin is not None else \
                os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            stdio_fds = (stdin, out_w, err_w)
            sources = {out_r: "stdout", err_r: "stderr"}
        pid = os.fork()
        if pid == 0:
            sync.close()
            for fd in sources:
                os.close(fd)
            _container_init(plan, child_end, userns_fd, stdio_fds)
        child_end.close()
        if userns_fd is not None:
            os.close(userns_fd)
        if stdio_fds is not None:
            for fd in stdio_fds:
                os.close(fd)
        elif stdio.stdin is not None:
            os.close(stdio.stdin)   # a terminal container reads its pty, not the caller's fd
        master = None
        while True:
            kind, payload, fds = recv_msg(sync)
            if kind == b"T" and fds:
                master = fds[0]
                continue
            break
        sync.close()
        if kind == b"E":
            for fd in fds:
                os.close(fd)
            send_msg(result, b"E", payload)
            os.waitpid(pid, 0)
            os._exit(0)
        start_time = sc.proc_start_time(pid)
        give = [master] if master is not None and stdio.tty_to_caller else []
        try:
            send_msg(result, b"S", {"pid": pid, "start_time": start_time,
                                "monitor_pid": os.getpid()}, give)
        except OSError:
            pass    # the daemon died: keep supervising, it re-adopts us from state.json
        result.close()
        if master is not None:
            if stdio.tty_to_caller:
                os.close(master)
            else:
                sources = {master: "stdout"}
        monitor.supervise(pid, sources, plan.paths.log, attach, plan.paths.exit)
    except BaseException as err:    # noqa: B036
        report_failure(result, err)
    os._exit(0)


# ---------------------------------------------------------------- daemon side

def _write_host_files(spec: ContainerSpec, paths: ContainerPaths, owner,
                      etc: dict | None = None) -> None:
    """/etc/hostname, /etc/hosts, /etc/resolv.conf as bound into the container; ``etc``
    (from the network service) gives hosts and resolv.conf for a container on a network.
    Written in place (open "w"), never renamed: the daemon rewrites hosts later through
    the same inode the bind mount holds."""
    name = spec.hostname
    files = {
        paths.hostname: f"{name}\n",
        paths.hosts: (f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                      f"127.0.1.1\t{name}\n"),
    }
    try:
        with open("/etc/resolv.conf") as f:
            files[paths.resolv_conf] = f.read()
    except OSError:
        files[paths.resolv_conf] = ""
    if etc:
        files[paths.hosts] = etc.get("hosts", files[paths.hosts])
        files[paths.resolv_conf] = etc.get("resolv.conf", files[paths.resolv_conf])
    for path, text in files.items():
        with open(path, "w") as f:
            f.write(text)
        if owner:
            os.chown(path, *owner)


def _mapped_root(spec: ContainerSpec):
    def host(maps):
        for m in maps:
            if m.container_id <= 0 < m.container_id + m.size:
                return m.host_id - m.container_id
        return None
    if "user" not in spec.linux.namespaces:
        return None
    uid, gid = host(spec.linux.uid_mappings), host(spec.linux.gid_mappings)
    if uid is None or gid is None:
        raise errors.InvalidArgument("user namespace: container root (id 0) must be mapped")
    return uid, gid


def prepare_dirs(spec: ContainerSpec, paths: ContainerPaths, etc: dict | None = None) -> None:
    """Create upper/work/rootfs (idempotent: a restart reuses the same upper dir)."""
    owner = _mapped_root(spec)
    try:
        os.makedirs(paths.dir, 0o711, exist_ok=True)
        os.makedirs(paths.upper, 0o755, exist_ok=True)
        os.makedirs(paths.work, 0o700, exist_ok=True)
        os.makedirs(paths.rootfs, 0o755, exist_ok=True)
        if owner:
            os.makedirs(paths.lower_idmapped, 0o755, exist_ok=True)
            # Only the upper dir's top: everything below is created by the container itself
            # and so lands on disk as the mapped ids. The template is never copied.
            os.chown(paths.upper, *owner)
        _write_host_files(spec, paths, owner, etc)
    except OSError as err:
        raise errors.KernelError.from_oserror("prepare container dir", err,
                                              container=spec.name) from err


# The fork server (mcd.runtime.forkserver) the daemon set up, if any.
_forkserver = None


def use_forkserver(server) -> None:
    global _forkserver
    _forkserver = server


def _plan_fds(result: socket.socket, stdio: Stdio) -> list[int]:
    """The fds a plan refers to, in the order fork_monitor takes them back."""
    return [result.fileno(), *stdio.fds()]


def fork_monitor(plan: _Plan, fds: list[int]) -> None:
    """In the fork server: the plan's fds arrived as ``fds`` (see _plan_fds); fork the
    monitor. No intermediate here: the server ignores SIGCHLD, so the kernel reaps its
    monitors, and when the server goes (with the daemon) they are reparented like any
    orphan, the same place the daemon's double fork puts them. One fork less per start."""
    plan.stdio = plan.stdio.received(fds[1:])
    result = socket.socket(fileno=os.dup(fds[0]))
    try:
        with step("fork", "monitor"):
            pid = os.fork()
        if pid == 0:
            _monitor(plan, result)
    finally:
        result.close()


def _fork_intermediate(plan: _Plan, theirs: socket.socket) -> None:
    """Fork an intermediate that forks the monitor and leaves, so the monitor is nobody's
    child; reap the intermediate. Closes ``theirs`` in the caller."""
    try:
        pid = os.fork()
        if pid == 0:
            try:
                if os.fork() == 0:
                    _monitor(plan, theirs)
            finally:
                os._exit(0)
    finally:
        theirs.close()
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass    # a waitpid(-1) elsewhere in the caller reaped the intermediate first


def start(spec: ContainerSpec, paths: ContainerPaths, cgroup_procs: list[str] = (),
          stdio: Stdio | None = None, netns: str | None = None,
          etc: dict | None = None) -> Launched:
    """``netns``: a network namespace made and configured by the caller, which PID 1 joins
    (the runtime never configures networks); ``etc``: hosts and resolv.conf to bind."""
    stdio = stdio or Stdio()
    for lower in paths.lowers:
        if not os.path.isdir(lower):
            raise errors.NotFound(f"lower layer {lower} does not exist", container=spec.name)
    prepare_dirs(spec, paths, etc)
    bpf = security.default_filter_bpf() if spec.linux.seccomp == "default" else None
    plan = _Plan(spec, paths, list(cgroup_procs), stdio, bpf, security.last_cap(),
                 container_env(spec.process, spec.hostname), netns)
    result, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        server = _forkserver
        if server is not None and server.launch(("start", plan), _plan_fds(theirs, stdio)):
            theirs.close()
        else:
            try:
                _fork_intermediate(plan, theirs)
            except OSError as err:    # EAGAIN: the daemon's pids or process limit
                raise errors.setup_error("fork", err.errno or errno.EIO, "monitor",
                                         container=spec.name) from err
        kind, payload, fds = recv_msg(result)
    finally:
        result.close()
        if theirs.fileno() >= 0:
            theirs.close()
    if kind == b"E":
        raise error_from(payload, spec.name)
    if kind != b"S":
        raise errors.SetupError(f"container {spec.name}: the monitor exited before the "
                                f"container started", container=spec.name, step="monitor")
    monitor_pid = payload.get("monitor_pid", 0)
    return Launched(monitor_pid=monitor_pid, pid=payload["pid"],
                    pid_start_time=payload["start_time"],
                    tty_master=fds[0] if fds else None)


def read_exit(paths: ContainerPaths) -> dict | None:
    try:
        with open(paths.exit) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError:
        return None
