"""ctypes bindings for the system calls Python 3.11 does not expose.

This is the kernel boundary: every failure becomes ``mcd.errors.KernelError``
naming the call and the path with the errno text (``mount /proc: Permission
denied``), and keeps ``errno`` so the container setup can report it over the
sync socket. Syscall numbers are x86_64's; the ones glibc wraps go through
libc so other architectures only need the numbers table below.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

from mcd.errors import KernelError


def _load_libc() -> ctypes.CDLL:
    # glibc's soname first: find_library runs `ldconfig -p` in a subprocess, a fork and
    # an exec on every start of every process that imports this (each mcrt call).
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library
        return ctypes.CDLL(find_library("c"), use_errno=True)


_libc = _load_libc()
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

# Raw syscall numbers (x86_64 / aarch64) for calls glibc 2.36 does not wrap.
_NR = {
    "x86_64": {"pivot_root": 155, "pidfd_open": 434, "pidfd_send_signal": 424,
               "openat2": 437, "open_tree": 428, "move_mount": 429, "mount_setattr": 442,
               "capget": 125, "capset": 126},
    "aarch64": {"pivot_root": 41, "pidfd_open": 434, "pidfd_send_signal": 424,
                "openat2": 437, "open_tree": 428, "move_mount": 429, "mount_setattr": 442,
                "capget": 90, "capset": 91},
}[platform.machine()]

# namespaces (linux/sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
CLONE_NEW_ALL = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
                 | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME)

# spec namespace name -> (clone flag, /proc/PID/ns entry)
NAMESPACES = {
    "user": (CLONE_NEWUSER, "user"), "ipc": (CLONE_NEWIPC, "ipc"), "uts": (CLONE_NEWUTS, "uts"),
    "network": (CLONE_NEWNET, "net"), "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "pid": (CLONE_NEWPID, "pid"), "mount": (CLONE_NEWNS, "mnt"),
}

# mount flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# new mount API
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_IDMAP = 0x100000

# prctl
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _fail(call: str, path: str | None = None):
    err = ctypes.get_errno()
    raise KernelError.from_oserror(call, OSError(err, os.strerror(err)), path)


def _b(s: str | bytes | None):
    if s is None:
        return None
    return s if isinstance(s, bytes) else os.fsencode(s)


def unshare(flags: int) -> None:
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        _fail("unshare")


def setns(fd: int, nstype: int = 0, path: str | None = None) -> None:
    if _libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        _fail("setns", path)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None, *, display: str | None = None) -> None:
    """``display`` is the path the user knows (target may be /proc/self/fd/N)."""
    if _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)) != 0:
        _fail("mount", display or target)


def umount2(target: str, flags: int = 0, *, display: str | None = None) -> None:
    if _libc.umount2(_b(target), ctypes.c_int(flags)) != 0:
        _fail("umount", display or target)


def pivot_root(new_root: str, put_old: str) -> None:
    if _syscall(_NR["pivot_root"], _b(new_root), _b(put_old)) != 0:
        _fail("pivot_root", new_root)


def sethostname(name: str) -> None:
    raw = name.encode()
    if _libc.sethostname(raw, ctypes.c_size_t(len(raw))) != 0:
        _fail("sethostname", name)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0,
          *, what: str = "prctl") -> int:
    ret = _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                      ctypes.c_ulong(arg4), ctypes.c_ulong(arg5))
    if ret < 0:
        _fail(what)
    return ret


PR_SET_NAME = 15


def set_name(name: str) -> None:
    """The thread's comm (what ps -o comm and top show), at most 15 bytes. Best effort."""
    _libc.prctl(ctypes.c_int(PR_SET_NAME), ctypes.c_char_p(name.encode()[:15]),
                ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """-> (effective, permitted, inheritable) as 64-bit masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    if _syscall(_NR["capget"], ctypes.byref(hdr), data) != 0:
        _fail("capget")
    return tuple(data[0].__getattribute__(f) | (data[1].__getattribute__(f) << 32)
                 for f in ("effective", "permitted", "inheritable"))


def capset(effective: int, permitted: int, inheritable: int = 0) -> None:
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _syscall(_NR["capset"], ctypes.byref(hdr), data) != 0:
        _fail("capset")


def pidfd_open(pid: int) -> int:
    fd = _syscall(_NR["pidfd_open"], ctypes.c_int(pid), ctypes.c_uint(0))
    if fd < 0:
        _fail("pidfd_open", f"/proc/{pid}")
    return fd


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    if _syscall(_NR["pidfd_send_signal"], ctypes.c_int(pidfd), ctypes.c_int(sig), None,
                ctypes.c_uint(0)) != 0:
        _fail("pidfd_send_signal")


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0,
            *, display: str | None = None) -> int:
    how = struct.pack("QQQ", flags | os.O_CLOEXEC, mode, resolve)
    buf = ctypes.create_string_buffer(how, len(how))
    fd = _syscall(_NR["openat2"], ctypes.c_int(dirfd), _b(path), buf, ctypes.c_size_t(len(how)))
    if fd < 0:
        _fail("open", display or path)
    return fd


def open_tree(dirfd: int, path: str, flags: int, *, display: str | None = None) -> int:
    fd = _syscall(_NR["open_tree"], ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags))
    if fd < 0:
        _fail("open_tree", display or path)
    return fd


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: str, flags: int,
               *, display: str | None = None) -> None:
    if _syscall(_NR["move_mount"], ctypes.c_int(from_fd), _b(from_path), ctypes.c_int(to_fd),
                _b(to_path), ctypes.c_uint(flags)) != 0:
        _fail("move_mount", display or to_path)


def mount_setattr(fd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0,
                  userns_fd: int = 0, *, display: str | None = None) -> None:
    attr = struct.pack("QQQQ", attr_set, attr_clr, 0, userns_fd)
    buf = ctypes.create_string_buffer(attr, len(attr))
    if _syscall(_NR["mount_setattr"], ctypes.c_int(fd), _b(path), ctypes.c_uint(flags), buf,
                ctypes.c_size_t(len(attr))) != 0:
        _fail("mount_setattr", display)


def fd_path(fd: int) -> str:
    """A path the mount calls accept for an O_PATH fd (no re-resolution of the original name)."""
    return f"/proc/self/fd/{fd}"


def proc_start_time(pid: int, proc: str = "/proc") -> int:
    """Field 22 of /proc/PID/stat: with the pid, identifies a process across pid reuse."""
    with open(f"{proc}/{pid}/stat", "rb") as f:
        data = f.read()
    # comm may contain spaces and parentheses: split after the last ')'.
    return int(data[data.rindex(b")") + 2:].split()[19])
