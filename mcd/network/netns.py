"""Network namespaces held by a bind mount, the way ``ip netns add`` holds them.

A container's netns is made before its PID 1 exists and outlives it, so that the CNI
plugins can configure it first and DEL it after the container is gone. It is made by
a short-lived thread: unshare(CLONE_NEWNET) changes only the calling thread's
namespace, the thread binds /proc/thread-self/ns/net onto a file under the daemon's
run directory, and ends; the mount keeps the namespace alive until it is unmounted.
"""

from __future__ import annotations

import errno
import os
import threading

from mcd.errors import KernelError
from mcd.runtime import syscalls as sc

NSFS_MAGIC = 0x6E736673


def create(path: str) -> str:
    """A new netns held at path (an empty file is made first). Returns path."""
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        os.close(fd)
    except FileExistsError:
        if is_held(path):
            raise KernelError(f"netns {path}: already exists", path=path, errno=errno.EEXIST,
                              step="netns") from None
    except OSError as err:
        raise KernelError.from_oserror("create netns file", err, path, step="netns") from err
    failure: list[BaseException] = []

    def make():
        try:
            sc.unshare(sc.CLONE_NEWNET)
            sc.mount(f"/proc/thread-self/ns/net", path, None, sc.MS_BIND)
        except BaseException as err:  # noqa: B036 - reported to the caller below
            failure.append(err)

    t = threading.Thread(target=make, name="netns-create")
    t.start()
    t.join()
    if failure:
        try:
            os.unlink(path)
        except OSError:
            pass
        err = failure[0]
        if isinstance(err, KernelError):
            raise KernelError(f"create netns {path}: {err}", path=path, errno=err.errno,
                              step="netns") from err
        raise err
    return path


def is_held(path: str) -> bool:
    """Whether a namespace is mounted at path (statfs says nsfs)."""
    try:
        st = os.stat(path)
        parent = os.stat(os.path.dirname(path))
    except OSError:
        return False
    # A bind mount of an nsfs inode lives on another device than its directory.
    return st.st_dev != parent.st_dev


def remove(path: str) -> None:
    """Unmount and delete; a path already gone is fine."""
    if is_held(path):
        try:
            sc.umount2(path, sc.MNT_DETACH)
        except KernelError as err:
            if err.errno not in (errno.EINVAL, errno.ENOENT):
                raise
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise KernelError.from_oserror("remove netns file", err, path, step="netns") from err
