"""One layer blob -> one directory overlayfs can stack, checked on the way.

A layer arrives as a stream (a file in an archive, an HTTP body). It is read once:
its bytes are hashed as they come (the blob digest), kept in the staging dir (so
``image save`` can hand out the very same blob), decompressed (gzip, zstd or none,
told by the magic bytes, not by the media type a sender claims), hashed again (the
diff ID the image config names) and unpacked member by member into ``diff/``.

Whiteouts become what overlayfs understands in a lower layer:

    a/.wh.name       -> a/name, a character device 0/0 (a deleted file or directory)
    a/.wh..wh..opq   -> the trusted.overlay.opaque=y xattr on a/ (nothing below shows)

Members are checked by the same rule as template import (mcd.templates.iter_rootfs_members,
one member at a time: no absolute names, no "..", symlinks that stay inside the tree, hard
links only to files of the same layer; device nodes and FIFOs skipped with a notice). Files
are created by the template importer's extraction (O_NOFOLLOW|O_EXCL under directory fds
opened without following symlinks), so even a checker bug cannot write outside.

Nothing here touches the store's real names: the caller gets a staging dir back and
renames it in (mcd.images.store) once every layer of every image checked out.
"""

from __future__ import annotations

import base64
import errno
import gzip
import hashlib
import json
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass, field

from mcd import templates
from mcd.errors import KernelError, MCError
from mcwire.errors import BadImage

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
# xattrs a layer may carry (PAX SCHILY.xattr.*): file capabilities (ping) and user
# data. trusted.overlay.* would let a layer forge redirects/metacopy: never.
ALLOWED_XATTRS = ("security.capability", "user.")


def hex_of(digest: str) -> str:
    """'sha256:<64 hex>' -> the hex; anything else is refused."""
    algo, _, h = (digest or "").partition(":")
    if algo != "sha256" or len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise BadImage(f"unsupported or malformed digest {digest!r} (sha256:<64 hex> expected)")
    return h


def short_link(diff_id: str) -> str:
    """The layer's name under l/: 12 base32 chars of its diff ID's hash (60 bits).

    Short so that a 100-layer image's lowerdir option stays far under the one page
    the kernel takes for mount data (see mount_overlay in mcd.runtime.rootfs)."""
    raw = hashlib.sha256(diff_id.encode()).digest()
    return base64.b32encode(raw).decode()[:12]


class _Reader:
    """A read-only stream that hashes and counts what passes, optionally teeing it."""

    def __init__(self, src, tee=None):
        self.src = src
        self.tee = tee
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        if data:
            self.hash.update(data)
            self.size += len(data)
            if self.tee is not None:
                self.tee.write(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class _Peek:
    """Give back the first bytes read for the compression sniff."""

    def __init__(self, src, head: bytes):
        self.src, self.head = src, head

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0:
                data, self.head = self.head + self.src.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            if len(data) < n:
                data += self.src.read(n - len(data))
            return data
        return self.src.read(n)


def _read_exact(src, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = src.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def decompressor(stream):
    """(kind, file object of the uncompressed bytes) by the stream's magic bytes."""
    head = _read_exact(stream, 4)
    src = _Peek(stream, head)
    if head.startswith(GZIP_MAGIC):
        return "gzip", gzip.GzipFile(fileobj=src, mode="rb")
    if head == ZSTD_MAGIC:
        import zstandard     # PyPI 'zstandard': streaming, multi-frame (see docs/design.md)
        return "zstd", zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)
    return "none", src


@dataclass
class Staged:
    """A layer unpacked and verified in a staging dir, not yet in the store."""
    diff_id: str
    path: str                   # the staging dir: diff/, blob, layer.json
    meta: dict = field(default_factory=dict)
    notices: list = field(default_factory=list)


def unpack(stream, staging: str, *, diff_id: str, what: str,
           blob_digest: str | None = None, media_type: str = "") -> Staged:
    """Read ``stream`` (one layer blob) into ``staging`` (an absent path): diff/ with the
    tree, blob with the bytes as received, layer.json. Raises BadImage naming ``what``
    (e.g. 'image busybox:latest layer 2/3 sha256:ab..') for any failed check."""
    hex_of(diff_id)
    if blob_digest:
        hex_of(blob_digest)
    os.mkdir(staging, 0o700)
    diff = os.path.join(staging, "diff")
    os.mkdir(diff, 0o755)
    notices: list[str] = []
    try:
        with open(os.path.join(staging, "blob"), "wb") as blob:
            outer = _Reader(stream, tee=blob)
            try:
                kind, plain = decompressor(outer)
                inner = _Reader(plain)
                _extract(inner, diff, what, notices)
                inner.drain()       # the tar's trailing blocks count for the diff ID
                outer.drain()
            except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError) as err:
                raise BadImage(f"{what}: truncated or corrupt layer ({err or type(err).__name__})") from None
            except MCError:
                raise
            except OSError as err:
                if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS,
                                 errno.EPERM, errno.EACCES):
                    raise KernelError.from_oserror(f"{what}: unpack", err) from err
                raise BadImage(f"{what}: corrupt layer ({err})") from None
            except Exception as err:   # zstandard.ZstdError and friends
                if type(err).__module__.startswith("zstandard"):
                    raise BadImage(f"{what}: truncated or corrupt zstd layer ({err})") from None
                raise
            blob.flush()
            os.fsync(blob.fileno())
        if blob_digest and outer.digest() != blob_digest:
            raise BadImage(f"{what}: blob digest mismatch: expected {blob_digest}, "
                           f"got {outer.digest()} ({outer.size} bytes)")
        if inner.digest() != diff_id:
            raise BadImage(f"{what}: layer content does not match its diff ID: expected "
                           f"{diff_id}, got {inner.digest()}")
        meta = {"diff_id": diff_id, "blob_digest": outer.digest(), "blob_size": outer.size,
                "compression": kind, "media_type": media_type or _media_type(kind),
                "size": templates.tree_size(diff), "link": short_link(diff_id)}
        with open(os.path.join(staging, "layer.json"), "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        return Staged(diff_id, staging, meta, notices)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _media_type(kind: str) -> str:
    base = "application/vnd.oci.image.layer.v1.tar"
    return {"gzip": base + "+gzip", "zstd": base + "+zstd"}.get(kind, base)


def _extract(src, dest: str, what: str, notices: list) -> None:
    try:
        tf = tarfile.open(fileobj=src, mode="r|")
    except tarfile.ReadError as err:
        raise BadImage(f"{what}: truncated or corrupt layer: not a tar ({err})") from None
    rootfd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    dirs: list = []
    opaque: list[str] = []
    skipped: list[str] = []
    members = templates.iter_rootfs_members(tf, skipped)
    try:
        while True:
            try:
                m, name = next(members)
            except StopIteration:
                break
            except templates.UnsafeArchive as err:
                raise BadImage(f"{what}: {err}") from None
            parent, base = posixpath.split(name)
            if base == OPAQUE:
                opaque.append(parent)
                continue
            if base.startswith(WHITEOUT):
                target = base[len(WHITEOUT):]
                if target.startswith(WHITEOUT):     # .wh..wh.plnk and other aufs metadata
                    continue
                if not target or target in (".", ".."):
                    raise BadImage(f"{what}: tar member {m.name!r}: malformed whiteout")
                _whiteout(rootfd, parent, target, what)
                continue
            try:
                templates._extract_member(tf, m, name, rootfd, dirs)
            except templates.UnsafeArchive as err:
                raise BadImage(f"{what}: {err}") from None
            except FileNotFoundError:
                if m.islnk():
                    raise BadImage(f"{what}: tar member {m.name!r}: hard link to "
                                   f"{m.linkname!r}, which is not in this layer") from None
                raise
            _xattrs(rootfd, name, m)
        notice = templates.skipped_notice(skipped)
        if notice:
            notices.append(f"{what}: {notice}")
        for name in opaque:
            dfd = templates._open_dir(rootfd, name, create=True)
            try:
                os.setxattr(dfd, OPAQUE_XATTR, b"y")
            finally:
                os.close(dfd)
        for name, m in reversed(dirs):
            parent, base = posixpath.split(name)
            dfd = templates._open_dir(rootfd, parent, create=False)
            try:
                os.chown(base, m.uid, m.gid, dir_fd=dfd, follow_symlinks=False)
                os.chmod(base, m.mode & 0o7777, dir_fd=dfd)
                os.utime(base, (m.mtime, m.mtime), dir_fd=dfd)
            finally:
                os.close(dfd)
    finally:
        os.close(rootfd)


def _whiteout(rootfd: int, parent: str, target: str, what: str) -> None:
    dfd = templates._open_dir(rootfd, parent, create=True)
    try:
        try:
            st = os.stat(target, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise BadImage(f"{what}: whiteout {parent}/{target} over a directory of "
                               f"the same layer")
            os.unlink(target, dir_fd=dfd)
        except FileNotFoundError:
            pass
        os.mknod(target, 0o600 | stat.S_IFCHR, os.makedev(0, 0), dir_fd=dfd)
    finally:
        os.close(dfd)


def _xattrs(rootfd: int, name: str, m: tarfile.TarInfo) -> None:
    wanted = [(k[len("SCHILY.xattr."):], v) for k, v in (m.pax_headers or {}).items()
              if k.startswith("SCHILY.xattr.")]
    wanted = [(k, v) for k, v in wanted if k.startswith(ALLOWED_XATTRS)]
    if not wanted or m.issym() or m.islnk():
        return
    parent, base = posixpath.split(name)
    dfd = templates._open_dir(rootfd, parent, create=False)
    try:
        fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        try:
            for key, value in wanted:
                raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
                try:
                    os.setxattr(fd, key, raw)
                except OSError:
                    pass    # a filesystem without user xattrs: the file still works
        finally:
            os.close(fd)
    finally:
        os.close(dfd)
