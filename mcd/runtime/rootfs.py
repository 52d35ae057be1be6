"""The container's filesystem, built inside its own mount namespace by PID 1.

Everything here runs in the forked container process before exec, as host root.
A stopped container's upper dir is attacker-controlled the next time it starts, so
no path inside the rootfs is ever resolved by the host's rules: every destination
is opened with openat2(RESOLVE_IN_ROOT) from an fd of the rootfs, and the mount
calls get ``/proc/self/fd/N`` for that fd. A symlink ``/proc -> /../../etc`` then
lands on the container's own /etc, never on the host's.

Each step raises ``StepFailed(step, path, errno)``; PID 1 sends it to the monitor.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import struct
import termios

from mcd.errors import KernelError
from mcd.runtime import syscalls as sc

O_PATH = os.O_PATH | os.O_CLOEXEC
RESOLVE = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS

DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
             ("core", "/proc/kcore"))

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441


class StepFailed(Exception):
    def __init__(self, step: str, path: str | None, err: int):
        super().__init__(f"{step} {path}: {os.strerror(err)}")
        self.step, self.path, self.errno = step, path, err


@contextlib.contextmanager
def step(name: str, path: str | None = None):
    try:
        yield
    except StepFailed:
        raise
    except KernelError as err:
        raise StepFailed(name, path or err.path, err.errno or errno.EIO) from None
    except OSError as err:
        raise StepFailed(name, path, err.errno or errno.EIO) from None


def resolve(rootfd: int, path: str, flags: int = O_PATH) -> int:
    """Open ``path`` as seen from inside the rootfs (symlinks cannot leave it)."""
    return sc.openat2(rootfd, path.lstrip("/") or ".", flags, RESOLVE, display=path)


def ensure_dir(rootfd: int, path: str, mode: int = 0o755) -> int:
    """O_PATH fd of the directory ``path`` inside the rootfs, creating missing parts."""
    try:
        return resolve(rootfd, path, O_PATH | os.O_DIRECTORY)
    except KernelError as err:
        if err.errno != errno.ENOENT:
            raise
    parent, name = os.path.split(path.rstrip("/"))
    pfd = ensure_dir(rootfd, parent or "/", mode)
    try:
        try:
            os.mkdir(name, mode, dir_fd=pfd)
        except FileExistsError:
            pass    # a dangling symlink: the resolve below refuses it (ENOENT)
        # Resolve again from the rootfs, not from pfd: pfd must not become a new "root".
        return resolve(rootfd, path, O_PATH | os.O_DIRECTORY)
    finally:
        os.close(pfd)


def ensure_file(rootfd: int, path: str, _links: int = 0) -> int:
    """O_PATH fd of the file ``path`` inside the rootfs, creating it (and its directories)
    when missing. A dangling symlink there (Ubuntu's /etc/resolv.conf ->
    ../run/systemd/resolve/stub-resolv.conf) gets its target made, inside the rootfs, as
    runc does: the link is the image's, its target is resolved by the rootfs' rules."""
    try:
        return resolve(rootfd, path)
    except KernelError as err:
        if err.errno != errno.ENOENT:
            raise
    parent, name = os.path.split(path.rstrip("/"))
    pfd = ensure_dir(rootfd, parent or "/")
    try:
        try:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY
                             | os.O_CLOEXEC, 0o644, dir_fd=pfd))
        except FileExistsError:
            try:
                target = os.readlink(name, dir_fd=pfd)
            except OSError:
                target = None       # not a link (made meanwhile): the resolve below says
            if target is not None:
                if _links >= 8:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP)) from None
                return ensure_file(rootfd, os.path.normpath(os.path.join(parent or "/", target)),
                                   _links + 1)
        return resolve(rootfd, path)
    finally:
        os.close(pfd)


def _mount_at(rootfd: int, path: str, source, fstype, flags, data=None, *, make=ensure_dir):
    fd = make(rootfd, path)
    try:
        sc.mount(source, sc.fd_path(fd), fstype, flags, data, display=path)
    finally:
        os.close(fd)


def set_readonly(rootfd: int, path: str, recursive: bool = True) -> None:
    fd = resolve(rootfd, path)
    try:
        sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if recursive else 0),
                         sc.MOUNT_ATTR_RDONLY, display=path)
    finally:
        os.close(fd)


def bind(rootfd: int, src_fd: int, path: str, readonly: bool) -> None:
    is_dir = stat.S_ISDIR(os.fstat(src_fd).st_mode)
    _mount_at(rootfd, path, sc.fd_path(src_fd), None, sc.MS_BIND | sc.MS_REC,
              make=ensure_dir if is_dir else ensure_file)
    if readonly:
        set_readonly(rootfd, path)


def overlay_options(paths, lowers: list[str], base: str = "") -> str:
    """The overlay mount data. Lowers under ``base`` are written relative to it (the
    mount is made with ``base`` as the working directory, as Docker does with its l/
    links), so a deep image fits the one page the kernel takes for mount data."""
    prefix = base.rstrip("/") + "/" if base else None
    names = [p[len(prefix):] if prefix and p.startswith(prefix) else p for p in lowers]
    for n in names:
        if not n or any(ch in n for ch in ":,\\"):
            raise StepFailed("mount overlay", n, errno.EINVAL)
    data = f"lowerdir={':'.join(names)},upperdir={paths.upper},workdir={paths.work}"
    if len(data) >= 4096:
        raise StepFailed("mount overlay: too many layers for one mount", paths.rootfs,
                         errno.E2BIG)
    return data


def mount_overlay(paths, lowers, base: str = "") -> None:
    """lowers: the lower dirs, top first (a str is one lower dir)."""
    if isinstance(lowers, str):
        lowers = [lowers]
    data = overlay_options(paths, lowers, base)
    with step("mount overlay", paths.rootfs):
        # nodev: device nodes work only on the container's own /dev tmpfs (overlay
        # still reads a lower layer's 0/0 whiteouts: it never opens them).
        if base:
            os.chdir(base)      # relative lowerdirs; pivot() moves the cwd on
        sc.mount("overlay", paths.rootfs, "overlay", sc.MS_NODEV, data)


def idmapped_lower(paths, userns_fd: int) -> str:
    """Attach an idmapped clone of the template at paths.lower_idmapped (this ns only)."""
    return idmapped_lowers(paths, userns_fd)[0][0]


def idmapped_lowers(paths, userns_fd: int) -> tuple[list[str], str]:
    """An idmapped clone of each lower dir, in this mount namespace only: the template's
    at paths.lower_idmapped itself, an image's layers at lower_idmapped/0, /1, ...
    Returns (lowers, base) for mount_overlay."""
    if len(paths.lowers) == 1:
        targets = [paths.lower_idmapped]
    else:
        targets = []
        for i in range(len(paths.lowers)):
            t = os.path.join(paths.lower_idmapped, str(i))
            with step("mkdir", t):
                os.makedirs(t, 0o755, exist_ok=True)
            targets.append(t)
    for src, target in zip(paths.lowers, targets):
        with step("idmap template" if len(targets) == 1 else "idmap layer", src):
            fd = sc.open_tree(-100, src, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC
                              | sc.AT_RECURSIVE)
            try:
                sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE,
                                 sc.MOUNT_ATTR_IDMAP, userns_fd=userns_fd, display=src)
                sc.move_mount(fd, "", -100, target, sc.MOVE_MOUNT_F_EMPTY_PATH)
            finally:
                os.close(fd)
    return targets, (paths.lower_idmapped if len(targets) > 1 else "")


def mount_system(rootfd: int, terminal: bool, console_size=()):
    """/proc, /sys, /dev (+pts, shm, mqueue). Returns (master, slave) fds when terminal."""
    nosuid = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    with step("mount", "/proc"):
        _mount_at(rootfd, "/proc", "proc", "proc", nosuid)
    with step("mount", "/sys"):
        # A fresh sysfs shows the links of the netns it is mounted in.
        _mount_at(rootfd, "/sys", "sysfs", "sysfs", nosuid | sc.MS_RDONLY)
    with step("mount", "/dev"):
        _mount_at(rootfd, "/dev", "tmpfs", "tmpfs", sc.MS_NOSUID | sc.MS_NOEXEC,
                  "mode=755,size=65536k")
    with step("mount", "/dev"):
        dev = resolve(rootfd, "/dev", O_PATH | os.O_DIRECTORY)
    pty = None
    try:
        for name, major, minor in DEVICES:
            with step("mknod", "/dev/" + name):
                os.mknod(name, 0o666 | stat.S_IFCHR, os.makedev(major, minor), dir_fd=dev)
        for name, target in DEV_LINKS:
            with step("symlink", "/dev/" + name):
                os.symlink(target, name, dir_fd=dev)
        for name, mode in (("pts", 0o755), ("shm", 0o1777), ("mqueue", 0o755)):
            with step("mkdir", "/dev/" + name):
                os.mkdir(name, mode, dir_fd=dev)
        with step("mount", "/dev/pts"):
            _mount_at(rootfd, "/dev/pts", "devpts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
                      "newinstance,ptmxmode=0666,mode=0620,gid=5")
        with step("mount", "/dev/shm"):
            _mount_at(rootfd, "/dev/shm", "shm", "tmpfs", nosuid, "mode=1777,size=65536k")
        with step("mount", "/dev/mqueue"):
            _mount_at(rootfd, "/dev/mqueue", "mqueue", "mqueue", nosuid)
        if terminal:
            with step("open pty", "/dev/pts/ptmx"):
                pty = open_pty(dev, "pts/ptmx", console_size)
            with step("mount", "/dev/console"):
                # What Docker and runc do: programs that write to the console reach the pty.
                os.close(os.open("console", os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC,
                                 0o600, dir_fd=dev))
                _mount_at(rootfd, "/dev/console", sc.fd_path(pty[1]), None, sc.MS_BIND,
                          make=ensure_file)
    finally:
        os.close(dev)
    return pty


def open_pty(dirfd: int, ptmx: str, size=()) -> tuple[int, int]:
    """A pty pair from the container's own devpts (its slave is a path inside it).

    size is the caller's [rows, cols]: set before exec, so the very first program already
    sees the right size (the caller's later TIOCSWINSZ would race with it)."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dirfd)
    st = os.fstat(master)
    if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) != 5:
        os.close(master)
        raise OSError(errno.ENOTTY, "not a ptmx")
    fcntl.ioctl(master, TIOCSPTLCK, b"\0\0\0\0")
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    if size:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    return master, slave


def userns_net_sysctls(rootfd: int) -> None:
    """With --userns the netns belongs to the host's userns, so the container's
    CAP_NET_BIND_SERVICE / CAP_NET_RAW count for nothing there. Open low ports and
    ICMP sockets to everyone in this netns instead (both sysctls are per netns)."""
    for path, value in (("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0"),
                        ("/proc/sys/net/ipv4/ping_group_range", "0 2147483647")):
        with step("sysctl", path):
            fd = resolve(rootfd, path, os.O_WRONLY)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)


@contextlib.contextmanager
def _existing(rootfd: int, path: str):
    """An fd for path resolved inside the root, or None when it does not exist (a masked or
    read-only path the kernel or the rootfs lacks is nothing to protect)."""
    try:
        fd = resolve(rootfd, path)
    except KernelError as err:
        if err.errno != errno.ENOENT:
            raise
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def mask_paths(rootfd: int, masked: list[str]) -> None:
    for path in masked:
        with step("mask", path), _existing(rootfd, path) as fd:
            if fd is None:
                continue
            target = sc.fd_path(fd)
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                sc.mount("tmpfs", target, "tmpfs", sc.MS_RDONLY, "size=0", display=path)
            else:
                sc.mount("/dev/null", target, None, sc.MS_BIND, display=path)


def readonly_paths(rootfd: int, paths: list[str]) -> None:
    for path in paths:
        with step("readonly", path):
            with _existing(rootfd, path) as fd:
                if fd is None:
                    continue
                sc.mount(sc.fd_path(fd), sc.fd_path(fd), None, sc.MS_BIND | sc.MS_REC,
                         display=path)
            set_readonly(rootfd, path)


def user_mounts(rootfd: int, mounts) -> None:
    for m in mounts:
        ro = "ro" in m.options
        if m.type == "bind":
            with step("bind source", m.source):
                src = os.open(m.source, O_PATH)
            try:
                with step("mount", m.destination):
                    bind(rootfd, src, m.destination, ro)
            finally:
                os.close(src)
        else:
            flags = sc.MS_NOSUID | sc.MS_NODEV
            data = []
            for opt in m.options:
                key = opt.partition("=")[0]
                if key in ("size", "mode"):
                    data.append(opt)
                else:
                    flags = {"ro": flags | sc.MS_RDONLY, "rw": flags & ~sc.MS_RDONLY,
                             "noexec": flags | sc.MS_NOEXEC, "exec": flags & ~sc.MS_NOEXEC,
                             "nosuid": flags | sc.MS_NOSUID, "suid": flags & ~sc.MS_NOSUID,
                             "nodev": flags | sc.MS_NODEV, "dev": flags & ~sc.MS_NODEV}.get(key, flags)
            with step("mount", m.destination):
                _mount_at(rootfd, m.destination, "tmpfs", "tmpfs", flags, ",".join(data) or None)


def bind_files(rootfd: int, files: list[tuple[str, str]], skip: set[str]) -> None:
    """Bind host-side files (hostname, hosts, resolv.conf) over their place in the rootfs."""
    for src, dest in files:
        if dest in skip:
            continue
        with step("mount", dest):
            src_fd = os.open(src, O_PATH)
            try:
                bind(rootfd, src_fd, dest, False)
            finally:
                os.close(src_fd)


def pivot(rootfd: int) -> None:
    """pivot_root(".", "."): the old root ends up stacked on "/" and is detached at once,
    so no put_old directory is ever created inside the container."""
    with step("pivot_root", "/"):
        os.fchdir(rootfd)
        sc.pivot_root(".", ".")
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
