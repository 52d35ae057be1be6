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
import json
import os
import signal
import socket
from dataclasses import dataclass, field

from mcd import errors
from mcd.runtime import monitor, net, rootfs, security, steps
from mcd.runtime import syscalls as sc
from mcd.runtime.interface import Launched, Stdio
from mcd.runtime.rootfs import StepFailed, step
from mcwire.spec import ContainerSpec
from mcd.store import ContainerPaths


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
    handoff: int | None = None  # set by mcd.supervisor: hand PID 1 over to it, then leave


# ---------------------------------------------------------------- PID 1

def _container_init(plan: _Plan, sync: socket.socket, userns_fd: int | None,
                    stdio_fds: tuple[int, int, int] | None) -> None:
    """Runs in the forked PID 1; never returns."""
    steps.child(sync, lambda: _init_body(plan, sync, userns_fd, stdio_fds))


def _init_body(plan: _Plan, sync: socket.socket, userns_fd: int | None,
               stdio_fds: tuple[int, int, int] | None) -> None:
    spec, paths = plan.spec, plan.paths
    security.set_dumpable(False)
    os.setsid()
    os.umask(0)
    if stdio_fds is not None:
        steps.lift_stdio(stdio_fds)
    steps.reset_oom_score_adj()
    steps.join_cgroups(plan.cgroup_procs)
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
        steps.take_pty(sync, *pty)
    if userns_fd is not None:
        with step("setns", "user"):
            sc.setns(userns_fd, sc.CLONE_NEWUSER)
            os.close(userns_fd)
            # The ids we had are unmapped in the new userns: become its root first.
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
    steps.drop_privileges_and_exec(spec.process, plan.bpf, plan.cap_last, plan.env,
                                   sync.fileno())


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
        if plan.handoff is not None:
            keep.add(plan.handoff)
        steps.close_fds(keep, low=0)
        steps.devnull_stdio(keep)
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
        reply = steps.read_reply(sync)
        master = reply.tty_master
        sync.close()
        if reply.kind == b"E":
            for fd in reply.fds:
                os.close(fd)
            steps.send_msg(result, b"E", reply.payload)
            os.waitpid(pid, 0)
            os._exit(0)
        start_time = sc.proc_start_time(pid)
        give = [master] if master is not None and stdio.tty_to_caller else []
        if master is not None and not stdio.tty_to_caller:
            sources = {master: "stdout"}
        # Under the supervisor, PID 1 is its container from here (it is the pid the
        # daemon watches); if the hand-over fails, this process stays its monitor.
        handed = plan.handoff is not None and _hand_off(plan, pid, start_time, sources, attach)
        try:
            steps.send_msg(result, b"S", {"pid": pid, "start_time": start_time,
                                          "monitor_pid": pid if handed else os.getpid()}, give)
        except OSError:
            pass    # the daemon died: keep supervising, it re-adopts us from state.json
        result.close()
        if master is not None and stdio.tty_to_caller:
            os.close(master)
        if handed:
            os._exit(0)
        monitor.supervise(pid, sources, plan.paths.log, attach, plan.paths.exit)
    except BaseException as err:    # noqa: B036
        steps.report_failure(result, err)
    os._exit(0)


def _hand_off(plan: _Plan, pid: int, start_time, sources: dict, attach: dict) -> bool:
    """Give PID 1's pipes (and the caller's attach fds) to the supervisor and wait for its
    answer, so that it knows the container before the daemon hears of it."""
    sock = socket.socket(fileno=plan.handoff)
    try:
        streams = list(sources.values())
        req = {"op": "adopt", "handoff": True, "id": os.path.basename(plan.paths.dir), "pid": pid,
               "start_time": start_time, "log": plan.paths.log, "exit": plan.paths.exit,
               "streams": streams, "attach": list(attach)}
        socket.send_fds(sock, [json.dumps(req).encode()], [*sources, *attach.values()])
        answer = json.loads(sock.recv(65536) or b"{}")
        return bool(answer.get("ok"))
    except (OSError, ValueError):
        return False
    finally:
        sock.close()


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


def _plan_fds(result: socket.socket, stdio: Stdio) -> list[int]:
    """The fds a plan refers to, in the order fork_monitor takes them back."""
    return [result.fileno(), *stdio.fds()]


def fork_monitor(plan: _Plan, fds: list[int]) -> None:
    """In the fork server: the plan's fds arrived as ``fds`` (see _plan_fds); fork the
    monitor. No intermediate here: the server ignores SIGCHLD, so the kernel reaps its
    monitors, and when the server goes (with the daemon) they are reparented like any
    orphan, the same place the daemon's double fork puts them. One fork less per start."""
    plan.stdio = plan.stdio.received(fds[1:])
    steps.fork_job("monitor", fds[0], lambda result: _monitor(plan, result))


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
          stdio: Stdio | None = None, *, forkserver=None, netns: str | None = None,
          etc: dict | None = None) -> Launched:
    """Fork the monitor (through ``forkserver`` when given and alive, see
    mcd.runtime.forkserver) and wait until PID 1 has exec'd or failed. ``netns``: a
    network namespace made and configured by the caller, which PID 1 joins (the runtime
    never configures networks); ``etc``: hosts and resolv.conf to bind."""
    stdio = stdio or Stdio()
    for lower in paths.lowers:
        if not os.path.isdir(lower):
            raise errors.NotFound(f"lower layer {lower} does not exist", container=spec.name)
    prepare_dirs(spec, paths, etc)
    bpf = security.default_filter_bpf() if spec.linux.seccomp == "default" else None
    plan = _Plan(spec, paths, list(cgroup_procs), stdio, bpf, security.last_cap(),
                 steps.container_env(spec.process, spec.hostname), netns)
    result, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        server = forkserver
        if server is not None and server.launch(("start", plan), _plan_fds(theirs, stdio)):
            theirs.close()
        else:
            try:
                _fork_intermediate(plan, theirs)
            except OSError as err:    # EAGAIN: the daemon's pids or process limit
                raise errors.setup_error("fork", err.errno or errno.EIO, "monitor",
                                         container=spec.name) from err
        reply = steps.read_reply(result)
    finally:
        result.close()
        if theirs.fileno() >= 0:
            theirs.close()
    if reply.kind == b"E":
        raise steps.error_from(reply.payload, spec.name)
    if reply.kind != b"S":
        raise errors.SetupError(f"container {spec.name}: the monitor exited before the "
                                f"container started", container=spec.name, step="monitor")
    return Launched(monitor_pid=reply.payload.get("monitor_pid", 0), pid=reply.payload["pid"],
                    pid_start_time=reply.payload["start_time"],
                    tty_master=reply.fds[0] if reply.fds else None)


def read_exit(paths: ContainerPaths) -> dict | None:
    try:
        with open(paths.exit) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError:
        return None
