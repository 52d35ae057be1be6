"""The container's init (create) and an exec'd process, from fork to execve.

    mcrt create --fork--> A: enters (or unshares) the pid namespace, forks B, tells mcrt
                             B's host pid, exits
                          B: the init. Joins the cgroup, joins namespaces given by path,
                             unshares the new ones, says "N" (mcrt runs prestart and
                             createRuntime hooks), builds the rootfs from config.json's
                             mounts, pivots, says "R", then blocks opening exec.fifo for
                             writing until `mcrt start` opens it for reading. Then
                             startContainer hooks, rlimits, ids, capabilities, seccomp,
                             execve.

The kernel-facing steps are mcd's (mcd.runtime.syscalls, rootfs, security): every path
inside the rootfs is resolved with openat2(RESOLVE_IN_ROOT) from a rootfs fd, so a
symlink in an image cannot send a mount to the host. Failures travel to mcrt as
``E{"step","path","errno"}`` on the sync socket (CLOEXEC: EOF means execve happened).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import platform
import resource
import signal
import socket
import stat
import struct
import subprocess

from mcd.runtime import net, rootfs, security, steps
from mcd.runtime import syscalls as sc
from mcd.runtime.rootfs import StepFailed, resolve, step
from mcwire.units import CAPABILITIES
from mcrt import config as C

JOIN_ORDER = ("ipc", "uts", "network", "cgroup", "pid", "mount", "user")
PR_CAP_AMBIENT_RAISE = 2
KEYCTL_JOIN_SESSION_KEYRING = 1
_NR_KEYCTL = {"x86_64": 250, "aarch64": 219}
RLIM_INF = 2 ** 64 - 1
# runc's /dev links (mcd's list less /dev/core, which runc does not make).
DEV_LINKS = tuple(link for link in rootfs.DEV_LINKS if link[0] != "core")


# ------------------------------------------------------------------ the wire
# mcd's handshake (mcd.runtime.steps): one SOCK_SEQPACKET datagram per message, kind + JSON,
# fds by SCM_RIGHTS. mcrt's kinds: P (B's host pid, from A), N (namespaces made), G (go on,
# from mcrt), R (ready, blocked before the fifo), E (a failure {"step","path","errno"}).

def send(sock, kind: bytes, payload: dict | None = None, fds=()) -> None:
    steps.send_msg(sock, kind, payload or {}, list(fds))


def recv(sock):
    return steps.recv_msg(sock)


def report(sock, err: BaseException) -> None:
    """steps.report_failure's message; once nobody listens (after create returned), the
    container's stderr is the place."""
    if isinstance(err, StepFailed):
        payload = {"step": err.step, "path": err.path, "errno": err.errno}
    elif isinstance(err, OSError):
        payload = {"step": "setup", "path": err.filename, "errno": err.errno or errno.EIO}
    else:
        payload = {"step": "setup", "path": None, "errno": errno.EIO, "detail": str(err)}
    try:
        send(sock, b"E", payload)
    except OSError:
        # Nobody listens any more (after `start`): the container's stderr is the place.
        msg = payload.get("detail") or os.strerror(payload["errno"])
        where = f" {payload['path']}" if payload.get("path") else ""
        try:
            os.write(2, f"mcrt: {payload['step']}{where}: {msg}\n".encode())
        except OSError:
            pass


def describe(payload: dict) -> str:
    if payload.get("detail"):
        return f"{payload.get('step', 'setup')}: {payload['detail']}"
    where = f" {payload['path']}" if payload.get("path") else ""
    return f"{payload.get('step', 'setup')}{where}: {os.strerror(int(payload.get('errno') or errno.EIO))}"


# ------------------------------------------------------------------ hooks

def run_hooks(hooks: list, state: dict, kind: str) -> None:
    """Run each hook with the state on stdin; a failure (exit != 0, timeout) raises."""
    data = json.dumps(state).encode()
    for i, h in enumerate(hooks or []):
        args = h.get("args") or [h["path"]]
        env = dict(e.split("=", 1) for e in h.get("env") or [])
        try:
            p = subprocess.run(args, executable=h["path"], input=data, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               timeout=h.get("timeout"), close_fds=True)
        except subprocess.TimeoutExpired:
            raise StepFailed(f"hook {kind}[{i}]", h["path"], errno.ETIMEDOUT) from None
        except OSError as err:
            raise StepFailed(f"hook {kind}[{i}]", h["path"], err.errno or errno.EIO) from None
        if p.returncode != 0:
            tail = p.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise Refused(f"hook {kind}[{i}] {h['path']} exited with {p.returncode}"
                              + (f": {tail[0]}" if tail[0] else ""))


class Refused(Exception):
    """A setup step that failed without an errno (a hook's exit status, a missing program)."""


# ------------------------------------------------------------------ mounts

def _ensure(rootfd: int, path: str, is_dir: bool) -> int:
    return rootfs.ensure_dir(rootfd, path) if is_dir else rootfs.ensure_file(rootfd, path)


def _set_propagation(rootfd: int, dest: str, prop: int) -> None:
    if prop:
        fd = resolve(rootfd, dest)
        try:
            sc.mount(None, sc.fd_path(fd), None, prop, display=dest)
        finally:
            os.close(fd)


def _bind(rootfd: int, src: str, dest: str, flags: int, prop: int) -> None:
    srcfd = os.open(src, rootfs.O_PATH)
    try:
        dfd = _ensure(rootfd, dest, stat.S_ISDIR(os.fstat(srcfd).st_mode))
        try:
            sc.mount(sc.fd_path(srcfd), sc.fd_path(dfd), None,
                     C.MS_BIND | (flags & C.MS_REC), display=dest)
        finally:
            os.close(dfd)
    finally:
        os.close(srcfd)
    extra = flags & ~(C.MS_BIND | C.MS_REC | C.MS_REMOUNT)
    if extra:
        fd = resolve(rootfd, dest)
        try:
            sc.mount(None, sc.fd_path(fd), None, C.MS_REMOUNT | C.MS_BIND | extra, display=dest)
        finally:
            os.close(fd)
    _set_propagation(rootfd, dest, prop)


def _mount_cgroup(rootfd: int, dest: str, flags: int, plan: dict) -> None:
    """A tmpfs with the container's own directory of each hierarchy bound in (v1), or the
    container's cgroup2 directory bound (v2), as runc does without a cgroup namespace."""
    ro = flags & C.MS_RDONLY
    base = flags & ~(C.MS_RDONLY | C.MS_BIND | C.MS_REC | C.MS_REMOUNT)
    dirs = plan["cgroup"]["dirs"]
    if plan["cgroup"]["driver"] == "v2":
        _bind(rootfd, dirs[""], dest, C.MS_BIND | base | ro, 0)
        return
    dfd = rootfs.ensure_dir(rootfd, dest)
    try:
        sc.mount("tmpfs", sc.fd_path(dfd), "tmpfs", base, "mode=755", display=dest)
    finally:
        os.close(dfd)
    host = "/sys/fs/cgroup"
    by_mount = {}
    for c, d in dirs.items():
        mnt = d
        while os.path.dirname(mnt) != host and mnt != "/":
            mnt = os.path.dirname(mnt)
        by_mount[os.path.basename(mnt)] = d
    for name in sorted(os.listdir(host)):
        p = os.path.join(host, name)
        target = f"{dest.rstrip('/')}/{name}"
        if os.path.islink(p):
            dfd = resolve(rootfd, dest, rootfs.O_PATH | os.O_DIRECTORY)
            try:
                os.symlink(os.readlink(p), name, dir_fd=dfd)
            finally:
                os.close(dfd)
        elif name in by_mount:
            _bind(rootfd, by_mount[name], target, C.MS_BIND | base | ro, 0)
    # The tmpfs itself stays writable, as runc leaves it; the hierarchies are read-only.


def do_mounts(rootfd: int, mounts: list, plan: dict) -> bool:
    """config.json's mounts, in order. -> True when /dev is a fresh tmpfs (then mcrt
    makes the default device nodes in it, as runc does)."""
    dev_tmpfs = False
    for i, m in enumerate(mounts):
        dest = m["destination"]
        flags, prop, data, _seen = C.parse_mount_options(m.get("options"), f"mounts[{i}]")
        typ = m.get("type") or ""
        with step("mount", dest):
            if typ == "bind" or flags & C.MS_BIND:
                _bind(rootfd, m["source"], dest, flags | C.MS_BIND, prop)
            elif typ == "cgroup":
                _mount_cgroup(rootfd, dest, flags, plan)
            else:
                dfd = rootfs.ensure_dir(rootfd, dest)
                try:
                    sc.mount(m.get("source") or typ, sc.fd_path(dfd), typ,
                             flags & ~C.MS_REMOUNT, ",".join(data) or None, display=dest)
                finally:
                    os.close(dfd)
                _set_propagation(rootfd, dest, prop)
                if dest.rstrip("/") == "/dev" and typ == "tmpfs":
                    dev_tmpfs = True
    return dev_tmpfs


def default_devices(rootfd: int) -> None:
    with step("mount", "/dev"):
        dev = resolve(rootfd, "/dev", rootfs.O_PATH | os.O_DIRECTORY)
    try:
        for name, major, minor in rootfs.DEVICES:
            with step("mknod", "/dev/" + name):
                try:
                    os.mknod(name, 0o666 | stat.S_IFCHR, os.makedev(major, minor), dir_fd=dev)
                except FileExistsError:
                    pass
        for name, target in DEV_LINKS:
            with step("symlink", "/dev/" + name):
                try:
                    os.symlink(target, name, dir_fd=dev)
                except FileExistsError:
                    pass
    finally:
        os.close(dev)


def make_devices(rootfd: int, devices: list) -> None:
    kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
    for d in devices:
        path = d["path"]
        parent, name = os.path.split(path)
        with step("mknod", path):
            pfd = rootfs.ensure_dir(rootfd, parent)
            try:
                try:
                    os.unlink(name, dir_fd=pfd)
                except FileNotFoundError:
                    pass
                mode = (d.get("fileMode") if d.get("fileMode") is not None else 0o666) & 0o7777
                dev = os.makedev(d.get("major", 0), d.get("minor", 0)) if d["type"] != "p" else 0
                os.mknod(name, mode | kinds[d["type"]], dev, dir_fd=pfd)
                os.chown(name, d.get("uid", 0) or 0, d.get("gid", 0) or 0, dir_fd=pfd,
                         follow_symlinks=False)
                os.chmod(name, mode, dir_fd=pfd)
            finally:
                os.close(pfd)


def mask_paths(rootfd: int, masked: list[str]) -> None:
    """As mcd's rootfs.mask_paths, but a file is covered by the container's own /dev/null
    (runc's choice), so no host devtmpfs mount shows up in the container's mount table."""
    files = []
    for path in masked:
        with step("mask", path):
            try:
                fd = resolve(rootfd, path)
            except Exception:   # noqa: BLE001 - absent: nothing to hide (mcd's rule too)
                continue
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    rootfs.mask_paths(rootfd, [path])
                else:
                    files.append(path)
            finally:
                os.close(fd)
    if not files:
        return
    try:
        null = resolve(rootfd, "/dev/null")
    except Exception:   # noqa: BLE001 - no /dev/null of its own: mcd's way (the host's)
        rootfs.mask_paths(rootfd, files)
        return
    try:
        for path in files:
            with step("mask", path):
                fd = resolve(rootfd, path)
                try:
                    sc.mount(sc.fd_path(null), sc.fd_path(fd), None, sc.MS_BIND, display=path)
                finally:
                    os.close(fd)
    finally:
        os.close(null)


def write_sysctls(rootfd: int, sysctl: dict) -> None:
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        with step("sysctl", key):
            fd = resolve(rootfd, path, os.O_WRONLY)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)


def open_console(rootfd: int, size: dict | None):
    with step("open pty", "/dev/pts/ptmx"):
        pts = resolve(rootfd, "/dev/pts", rootfs.O_PATH | os.O_DIRECTORY)
        try:
            rows_cols = (size.get("height", 0), size.get("width", 0)) if size else ()
            return rootfs.open_pty(pts, "ptmx", rows_cols if any(rows_cols) else ())
        finally:
            os.close(pts)


def send_console(sock_fd: int, master: int) -> None:
    n = struct.unpack("I", fcntl.ioctl(master, rootfs.TIOCGPTN, b"\0\0\0\0"))[0]
    with step("send pty", "console socket"):
        s = socket.socket(fileno=os.dup(sock_fd))
        try:
            socket.send_fds(s, [f"/dev/pts/{n}".encode()], [master])
        finally:
            s.close()


def pivot(rootfd: int, no_pivot: bool) -> None:
    if not no_pivot:
        rootfs.pivot(rootfd)
        return
    with step("move root", "/"):
        os.fchdir(rootfd)
        sc.mount(".", "/", None, sc.MS_MOVE)
        os.chroot(".")
        os.chdir("/")


# ------------------------------------------------------------------ the process

def cap_mask(names, cap_last: int) -> int:

    m = 0
    for n in names or []:
        bit = CAPABILITIES[n]
        if bit <= cap_last:
            m |= 1 << bit
    return m


def lookup(args: list[str], env: list[str], cwd: str) -> str:
    """The executable, as execvp will find it (runc checks this before `start`)."""
    name = args[0]
    if "/" in name:
        cands = [name if name.startswith("/") else os.path.join(cwd, name)]
    else:
        # No PATH in the process's env: nothing is searched (as runc: no default PATH).
        path = next((e[5:] for e in env if e.startswith("PATH=")), "")
        cands = [os.path.join(d or ".", name) for d in path.split(":")] if path else []
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    # runc's words: podman and containerd map them to exit codes 127 and 126.
    if "/" in name:
        c = cands[0]
        if not os.path.exists(c):
            raise Refused(f'exec: "{name}": stat {c}: no such file or directory')
        raise Refused(f'exec: "{name}": permission denied')
    raise Refused(f'exec: "{name}": executable file not found in $PATH')


def join_keyring(cid: str) -> None:
    nr = _NR_KEYCTL.get(platform.machine())
    if nr is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    # EPERM/ENOSYS (a seccomp'd caller, a kernel without keys): runc goes on too.
    libc.syscall(ctypes.c_long(nr), ctypes.c_long(KEYCTL_JOIN_SESSION_KEYRING),
                 ctypes.c_char_p(f"_ses.mcrt.{cid}"[:64].encode()))


def with_home(env: list[str], uid: int) -> list[str]:
    """HOME from the container's /etc/passwd when the config sets none ("/" failing
    that), as runc does."""
    if any(e.startswith("HOME=") for e in env):
        return env
    home = "/"
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    home = parts[5] or "/"
                    break
    except OSError:
        pass
    return env + [f"HOME={home}"]


def set_limits(proc: dict) -> None:
    """rlimits and the OOM score: before `start` for an init (so a limit the host refuses
    fails create, as with runc), just before execve for exec."""
    for rl in proc.get("rlimits") or []:
        with step("setrlimit", rl["type"]):
            soft = resource.RLIM_INFINITY if rl["soft"] >= 2 ** 63 else rl["soft"]
            hard = resource.RLIM_INFINITY if rl["hard"] >= 2 ** 63 else rl["hard"]
            try:
                resource.setrlimit(C.RLIMITS[rl["type"]], (soft, hard))
            except ValueError:      # Python's word for EPERM/EINVAL from setrlimit
                raise StepFailed("setrlimit", f"{rl['type']} {soft}:{hard}", errno.EPERM) from None
    if proc.get("oomScoreAdj") is not None:
        with step("oom_score_adj", "/proc/self/oom_score_adj"):
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(proc["oomScoreAdj"]))


def finalize_and_exec(proc: dict, bpf: bytes | None, cap_last: int, preserve: int,
                      sync_fd: int, exe: str, limits_done: bool = False) -> None:
    """rlimits, oom score, ids, capabilities, no_new_privs, seccomp, execve."""
    caps = proc.get("capabilities") or {}
    user = proc.get("user") or {}
    uid, gid = user.get("uid", 0) or 0, user.get("gid", 0) or 0
    env = with_home(list(proc.get("env") or []), uid)
    cwd = proc.get("cwd") or "/"
    if not limits_done:
        set_limits(proc)
    with step("mkdir cwd", cwd):
        os.makedirs(cwd, 0o755, exist_ok=True)
    nnp = bool(proc.get("noNewPrivileges"))
    if bpf is not None and not nnp:
        # Without no_new_privs the filter needs CAP_SYS_ADMIN: load it while we have it.
        with step("seccomp"):
            security.load_seccomp(bpf)
    with step("capabilities", "bounding set"):
        security.drop_bounding(cap_mask(caps.get("bounding"), cap_last), cap_last)
    with step("setuid", f"{uid}:{gid}"):
        sc.prctl(sc.PR_SET_KEEPCAPS, 1)
        os.setgroups(list(user.get("additionalGids") or []))
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    with step("chdir", cwd):
        os.chdir(cwd)
    with step("capabilities"):
        sc.capset(cap_mask(caps.get("effective"), cap_last),
                  cap_mask(caps.get("permitted"), cap_last),
                  cap_mask(caps.get("inheritable"), cap_last))
        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL, what="cap_ambient")
        amb = cap_mask(caps.get("ambient"), cap_last)
        inh = cap_mask(caps.get("inheritable"), cap_last)
        for bit in range(cap_last + 1):
            # The kernel raises an ambient capability only when it is also inheritable
            # (and permitted); runc skips the others with a warning, so does mcrt.
            if amb & inh & (1 << bit):
                sc.prctl(sc.PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, bit, what="cap_ambient")
    umask = user.get("umask")
    os.umask(0o022 if umask is None else umask)
    steps.reset_signals()
    for sig in (signal.SIGTTOU, signal.SIGTTIN, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_DFL)
    first_closed = 3 + max(preserve, 0)
    for fd in range(3, first_closed):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    if sync_fd < 0:
        os.closerange(first_closed, 1 << 16)
    else:
        os.closerange(first_closed, sync_fd)
        os.closerange(max(sync_fd + 1, first_closed), 1 << 16)
    if nnp:
        with step("no_new_privs"):
            security.set_no_new_privs()
        if bpf is not None:
            with step("seccomp"):
                security.load_seccomp(bpf)
    envmap = dict(e.split("=", 1) for e in env)
    args = proc["args"]
    try:
        os.execve(exe, args, envmap)
    except OSError as err:
        raise StepFailed("exec", args[0], err.errno or errno.EIO) from None


# ------------------------------------------------------------------ create's init

def _setns(fd: int, kind: str, path: str) -> None:
    with step("join namespace", path):
        sc.setns(fd, sc.NAMESPACES[kind][0], path)


def container_init(plan: dict, cfg: dict, sync, fds: dict) -> None:
    """B, the container's init; never returns. fds: ns type -> fd (joined by path),
    'userns' (made by mcrt), 'console', 'statedir'."""
    lin = cfg.get("linux") or {}
    proc = cfg["process"]
    try:
        security.set_dumpable(False)
        os.setsid()
        os.umask(0)     # device nodes and mount points get exactly the modes asked
        steps.join_cgroups(plan["cgroup_join"])
        new = 0
        for ns in lin.get("namespaces") or []:
            t = ns["type"]
            if t in ("pid", "user"):
                continue
            if ns.get("path"):
                _setns(fds[t], t, ns["path"])
            else:
                new |= sc.NAMESPACES[t][0]
        if new:
            with step("unshare"):
                sc.unshare(new)
        send(sync, b"N")
        kind, payload, _ = recv(sync)
        if kind != b"G":
            os._exit(1)     # mcrt gave up (a hook failed): it cleans up
        plan["pid"] = payload["pid"]
        if plan["new_keyring"]:
            join_keyring(plan["id"])
        prop = C.PROPAGATION.get(lin.get("rootfsPropagation") or "", C.MS_SLAVE | C.MS_REC)
        with step("root propagation", "/"):
            sc.mount(None, "/", None, prop)
        root = cfg["root"]["path"]
        with step("bind rootfs", root):
            sc.mount(root, root, None, C.MS_BIND | C.MS_REC)
            rootfd = os.open(root, rootfs.O_PATH | os.O_DIRECTORY)
        dev_tmpfs = do_mounts(rootfd, cfg.get("mounts") or [], plan)
        if dev_tmpfs:
            default_devices(rootfd)
        make_devices(rootfd, lin.get("devices") or [])
        pty = None
        if proc.get("terminal"):
            pty = open_console(rootfd, proc.get("consoleSize"))
            send_console(fds["console"], pty[0])
            os.close(pty[0])
            with step("mount", "/dev/console"):
                cfd = rootfs.ensure_file(rootfd, "/dev/console")
                try:
                    sc.mount(sc.fd_path(pty[1]), sc.fd_path(cfd), None, sc.MS_BIND,
                             display="/dev/console")
                finally:
                    os.close(cfd)
        write_sysctls(rootfd, lin.get("sysctl") or {})
        new_ns = {n["type"] for n in lin.get("namespaces") or [] if not n.get("path")}
        if "uts" in {n["type"] for n in lin.get("namespaces") or []}:
            if cfg.get("hostname"):
                with step("sethostname", cfg["hostname"]):
                    sc.sethostname(cfg["hostname"])
            if cfg.get("domainname"):
                with step("setdomainname", cfg["domainname"]):
                    with open("/proc/sys/kernel/domainname", "w") as f:
                        f.write(cfg["domainname"])
        if "network" in new_ns:
            with step("link up", "lo"):
                net.link_up("lo")
        hooks = cfg.get("hooks") or {}
        if hooks.get("createContainer"):
            run_hooks(hooks["createContainer"], hook_state(plan, cfg, "created"), "createContainer")
        mask_paths(rootfd, lin.get("maskedPaths") or [])
        rootfs.readonly_paths(rootfd, lin.get("readonlyPaths") or [])
        pivot(rootfd, plan["no_pivot"])
        os.close(rootfd)
        if cfg["root"].get("readonly"):
            with step("remount read-only", "/"):
                fd = os.open("/", rootfs.O_PATH)
                sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH, sc.MOUNT_ATTR_RDONLY, display="/")
                os.close(fd)
        if pty is not None:
            with step("set controlling tty"):
                steps.set_controlling_tty(pty[1])
        if "console" in fds:
            os.close(fds["console"])
        with step("open exec fifo", "exec.fifo"):
            # O_PATH now (it does not block, and the state dir is still searchable by us);
            # reopened for writing through /proc/self/fd below, after the user namespace.
            fifo_path = os.open(C_FIFO, os.O_PATH | os.O_CLOEXEC, dir_fd=fds["statedir"])
            os.close(fds.pop("statedir"))
        userns = fds.get("userns")
        if userns is not None:
            with step("setns", "user"):
                sc.setns(userns, sc.CLONE_NEWUSER)
                os.close(userns)
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
        exe = lookup(proc["args"], proc.get("env") or [], proc.get("cwd") or "/")
        set_limits(proc)
        send(sync, b"R")
        sync.close()
        sync = None     # from here on, failures go to the container's stderr
        with step("open exec fifo", "exec.fifo"):
            fifo = os.open(f"/proc/self/fd/{fifo_path}", os.O_WRONLY | os.O_CLOEXEC)
            os.write(fifo, b"0")
            os.close(fifo)
            os.close(fifo_path)
        if hooks.get("startContainer"):
            run_hooks(hooks["startContainer"], hook_state(plan, cfg, "running"), "startContainer")
        finalize_and_exec(proc, plan["bpf"], plan["cap_last"], plan["preserve_fds"], -1, exe,
                          limits_done=True)
    except BaseException as err:    # noqa: B036 - every failure must reach the caller
        if sync is None:
            report(_Closed(), err)
        else:
            report(sync, err)
    os._exit(127)


C_FIFO = "exec.fifo"


class _Closed:
    def send(self, _msg):
        raise OSError(errno.EPIPE, "closed")


def hook_state(plan: dict, cfg: dict, status: str) -> dict:
    st = {"ociVersion": cfg.get("ociVersion", "1.0.2"), "id": plan["id"], "status": status,
          "pid": plan.get("pid", 0), "bundle": plan["bundle"]}
    if cfg.get("annotations"):
        st["annotations"] = cfg["annotations"]
    return st


def fork_init(plan: dict, cfg: dict, fds: dict) -> tuple[socket.socket, int]:
    """Fork A (which forks B, the init, in the right pid namespace). -> (sync socket, A)."""
    lin = cfg.get("linux") or {}
    pidns = next((n for n in lin.get("namespaces") or [] if n["type"] == "pid"), None)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a = os.fork()
    if a == 0:
        try:
            ours.close()
            if pidns is not None:
                if pidns.get("path"):
                    _setns(fds["pid"], "pid", pidns["path"])
                else:
                    with step("unshare", "pid"):
                        sc.unshare(sc.CLONE_NEWPID)
            b = os.fork()
            if b == 0:
                container_init(plan, cfg, theirs, fds)
            send(theirs, b"P", {"pid": b})
        except BaseException as err:    # noqa: B036
            report(theirs, err)
        os._exit(0)
    theirs.close()
    return ours, a


# ------------------------------------------------------------------ exec

def exec_process(plan: dict, proc: dict, ns_fds: list, fds: dict):
    """Fork A (joins the cgroup and every namespace of the container, user last), which
    forks B in the container's pid namespace. -> (sync socket, A)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a = os.fork()
    if a == 0:
        try:
            ours.close()
            steps.join_cgroups(plan["cgroup_join"])
            for kind, path, fd in ns_fds:
                _setns(fd, kind, path)
                os.close(fd)
            if plan.get("userns"):
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            b = os.fork()
            if b == 0:
                _exec_child(plan, proc, theirs, fds)
            send(theirs, b"P", {"pid": b})
        except BaseException as err:    # noqa: B036
            report(theirs, err)
        os._exit(0)
    theirs.close()
    for _k, _p, fd in ns_fds:
        os.close(fd)
    return ours, a


def _exec_child(plan: dict, proc: dict, sync, fds: dict) -> None:
    try:
        os.setsid()
        if proc.get("terminal"):
            with step("open pty", "/dev/pts/ptmx"):
                root = os.open("/", rootfs.O_PATH | os.O_DIRECTORY)
                try:
                    master, slave = open_console(root, proc.get("consoleSize"))
                finally:
                    os.close(root)
            send_console(fds["console"], master)
            os.close(master)
            os.close(fds["console"])
            with step("set controlling tty"):
                steps.set_controlling_tty(slave)
        exe = lookup(proc["args"], proc.get("env") or [], proc.get("cwd") or "/")
        finalize_and_exec(proc, plan["bpf"], plan["cap_last"], plan["preserve_fds"],
                          sync.fileno(), exe)
    except BaseException as err:    # noqa: B036
        report(sync, err)
    os._exit(127)
