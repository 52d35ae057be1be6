"""The one atomic file write: temp file beside the target, fsync, rename, fsync the dir.

A crash leaves the old file or the new one, never half of one; and any failure on the
way (a full disk, EIO on close, a rename refused, even KeyboardInterrupt) removes the
temp file before the error goes on, so nothing ``.NAME.<random>.tmp`` is left behind.

Used by the store (config.json, state.json), the monitor (exit.json) and the
dashboard token. Plain ``os`` only: the monitor imports it, and it must stay light.
Raises ``OSError``; callers name the step in their own error.
"""

from __future__ import annotations

import os

TMP_SUFFIX = ".tmp"


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: str) -> str:
    """``DIR/.NAME.<random>.tmp``: hidden, unique, and recognisable as ours."""
    d, base = os.path.split(path)
    return os.path.join(d, f".{base}.{os.urandom(6).hex()}{TMP_SUFFIX}")


def write_atomic(path: str, data: bytes, *, mode: int = 0o600, durable: bool = True,
                 owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` with ``data`` atomically. ``durable=False`` skips the fsyncs
    (never the rename); ``owner`` is (uid, gid) for the new file."""
    d = os.path.dirname(path) or "."
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 mode)
    try:
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)         # after chown (which clears set-id bits); not umasked
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(d)
