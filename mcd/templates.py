"""Root filesystem templates: the overlay lowerdirs containers start from.

    ROOT/templates/<name>/rootfs/          the read-only tree
    ROOT/templates/<name>/template.json    {"name", "created", "source", "size"}

Every template is built in a temp dir beside its final place and renamed in
atomically, so a crash never leaves half a template under a real name.

Tar import does its own member checks and extraction (Python 3.11.2 here has no
tarfile extraction filters, and 3.11's filters had bypasses until 3.11.13): names
must be relative without '..', links must stay inside the tree, and every file is
created with O_NOFOLLOW|O_EXCL under a directory fd opened without following symlinks,
so even a checker bug cannot write outside. Device nodes and FIFOs are skipped, not
refused (``filter_rootfs_members``): distribution rootfs tarballs carry /dev/null and
friends, and the runtime makes the container's /dev itself.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import posixpath
import shutil
import stat
import subprocess
import tarfile
import uuid
from typing import Callable

from mcd.errors import Conflict, InvalidArgument, KernelError, MCError, NotFound, UnsafeArchive
from mcwire.spec import validate_name

MINIMAL = "minimal"
BUSYBOX = "/bin/busybox"

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\ndaemon:x:1:\ntty:x:5:\nusers:x:100:\nnogroup:x:65534:\n"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def tree_size(path: str) -> int:
    total = 0
    seen = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


# ------------------------------------------------------------ tar member checks

def member_name(raw: str) -> str | None:
    """The normalized relative path of a member, None for the archive root itself.
    Raises UnsafeArchive for absolute names or any '..' component."""
    if "\0" in raw:
        raise UnsafeArchive(f"tar member {raw!r}: NUL in name")
    if raw.startswith("/"):
        raise UnsafeArchive(f"tar member {raw!r}: absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"tar member {raw!r}: '..' in path")
    return "/".join(parts) or None


def check_symlink(name: str, target: str) -> None:
    """Absolute targets are read inside the container's root (fine); relative ones must
    not climb above the tree from where the link sits."""
    if not target or "\0" in target:
        raise UnsafeArchive(f"tar member {name!r}: empty or invalid symlink target")
    if target.startswith("/"):
        return
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if joined == ".." or joined.startswith("../"):
        raise UnsafeArchive(f"tar member {name!r}: symlink to {target!r} leaves the tree")


def check_member(m: tarfile.TarInfo) -> str | None:
    """-> normalized name (None: skip the root entry). Raises UnsafeArchive."""
    name = member_name(m.name)
    if not (m.isreg() or m.isdir() or m.issym() or m.islnk() or m.isfifo()
            or m.ischr() or m.isblk()):
        raise UnsafeArchive(f"tar member {m.name!r}: unsupported type {m.type!r}")
    if name is None:
        if not m.isdir():
            raise UnsafeArchive(f"tar member {m.name!r}: the root must be a directory")
        return None
    if m.issym():
        check_symlink(name, m.linkname)
    elif m.islnk():
        target = member_name(m.linkname)
        if target is None:
            raise UnsafeArchive(f"tar member {m.name!r}: hard link to the root")
    return name


def is_special_node(m: tarfile.TarInfo) -> bool:
    """A character or block device or a FIFO: skipped by filter_rootfs_members."""
    return m.ischr() or m.isblk() or m.isfifo()


def filter_rootfs_members(members) -> tuple[list[tuple[tarfile.TarInfo, str]], list[str]]:
    """The member rule for a root filesystem archive (a template import; image layers are
    the same kind of archive). Every member is checked before anything is written:

    - unsafe members refuse the whole archive (UnsafeArchive): absolute names, '..',
      symlinks that climb out of the tree, hard links outside it or to its root,
      unknown member types, a root entry that is not a directory;
    - device nodes and FIFOs are skipped, and so are hard links to them: the runtime
      makes the container's /dev (a tmpfs with its own nodes), the overlay is nodev,
      and seccomp refuses mknod of devices in the container anyway;
    - the rest is kept, with normalized names; the archive's root entry is dropped.

    Returns (kept (member, name) pairs in archive order, skipped names as "/dev/null").
    """
    skipped: list[str] = []
    kept = list(iter_rootfs_members(members, skipped))
    return kept, skipped


def iter_rootfs_members(members, skipped: list[str]):
    """filter_rootfs_members one member at a time, for a tar read as a stream (an image
    layer: each kept member is extracted before the next is read; the caller writes
    into a staging dir it drops when a later member raises). Skipped names are
    appended to ``skipped``."""
    dropped: set[str] = set()
    for m in members:
        name = check_member(m)
        if name is None:
            continue
        if is_special_node(m) or (m.islnk() and member_name(m.linkname) in dropped):
            dropped.add(name)
            skipped.append("/" + name)
            continue
        dropped.discard(name)       # a later member of the same name replaces the node
        yield m, name


def skipped_notice(skipped: list[str], limit: int = 8) -> str | None:
    """One line for the user about what an import left out; None when nothing was."""
    if not skipped:
        return None
    shown = ", ".join(skipped[:limit])
    if len(skipped) > limit:
        shown += f" and {len(skipped) - limit} more"
    what = "device node or FIFO" if len(skipped) == 1 else "device nodes and FIFOs"
    return f"skipped {len(skipped)} {what} (the runtime makes /dev): {shown}"


# ------------------------------------------------------------ safe extraction

def _open_dir(rootfd: int, rel: str, create: bool) -> int:
    """fd of directory ``rel`` under rootfd, never following a symlink on the way."""
    fd = os.dup(rootfd)
    for part in [p for p in rel.split("/") if p]:
        try:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=fd)
        except FileNotFoundError:
            if not create:
                os.close(fd)
                raise
            os.mkdir(part, 0o755, dir_fd=fd)
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=fd)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeArchive(f"tar member path {rel!r} goes through a symlink or file")
            raise
        os.close(fd)
        fd = nfd
    return fd


def _remove_existing(dfd: int, base: str) -> None:
    try:
        st = os.stat(base, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise UnsafeArchive(f"tar member {base!r} replaces a directory")
    os.unlink(base, dir_fd=dfd)


def _extract_member(tf: tarfile.TarFile, m: tarfile.TarInfo, name: str, rootfd: int,
                    dirs: list) -> None:
    parent, base = posixpath.split(name)
    dfd = _open_dir(rootfd, parent, create=True)
    try:
        if m.isdir():
            try:
                os.mkdir(base, 0o700, dir_fd=dfd)
            except FileExistsError:
                st = os.stat(base, dir_fd=dfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    raise UnsafeArchive(f"tar member {m.name!r}: directory over a non-directory")
            dirs.append((name, m))
            return
        _remove_existing(dfd, base)
        if m.issym():
            os.symlink(m.linkname, base, dir_fd=dfd)
        elif m.islnk():
            target = member_name(m.linkname)
            tparent, tbase = posixpath.split(target)
            tfd = _open_dir(rootfd, tparent, create=False)
            try:
                st = os.stat(tbase, dir_fd=tfd, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    raise UnsafeArchive(f"tar member {m.name!r}: hard link to a non-file")
                os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=dfd, follow_symlinks=False)
            finally:
                os.close(tfd)
            return      # a hard link shares its target's owner and mode
        else:
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            with os.fdopen(fd, "wb") as out:
                src = tf.extractfile(m)
                if src is not None:
                    shutil.copyfileobj(src, out, 1 << 20)
        os.chown(base, m.uid, m.gid, dir_fd=dfd, follow_symlinks=False)
        if not m.issym():
            # chown clears setuid bits, so the mode goes after it; bits are kept as given.
            os.chmod(base, m.mode & 0o7777, dir_fd=dfd)
        # A symlink's own mtime too (lutimes): the tree re-tars to the same layer.
        os.utime(base, (m.mtime, m.mtime), dir_fd=dfd, follow_symlinks=False)
    finally:
        os.close(dfd)


def _why(err: Exception) -> str:
    """tarfile's reason on one line (its 'tried every compression' text spans five)."""
    if isinstance(err, tarfile.ReadError) and "could not be opened successfully" in str(err):
        return "not a tar archive (plain, gzip, bzip2 or xz)"
    return " ".join(str(err).split())


def safe_extract(archive: str, dest: str) -> list[str]:
    """Extract into the existing empty dir ``dest`` by filter_rootfs_members' rule.
    Returns the names it skipped."""
    try:
        tf = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as err:
        raise InvalidArgument(f"cannot read archive {archive}: {_why(err)}") from err
    with tf:
        try:
            members = tf.getmembers()
        except tarfile.TarError as err:
            raise InvalidArgument(f"cannot read archive {archive}: {_why(err)}") from err
        kept, skipped = filter_rootfs_members(members)     # refuse before writing anything
        rootfd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        dirs: list = []
        try:
            for m, name in kept:
                _extract_member(tf, m, name, rootfd, dirs)
            for name, m in reversed(dirs):
                parent, base = posixpath.split(name)
                dfd = _open_dir(rootfd, parent, create=False)
                try:
                    os.chown(base, m.uid, m.gid, dir_fd=dfd, follow_symlinks=False)
                    os.chmod(base, m.mode & 0o7777, dir_fd=dfd)
                    os.utime(base, (m.mtime, m.mtime), dir_fd=dfd)
                finally:
                    os.close(dfd)
        finally:
            os.close(rootfd)
        return skipped


# ------------------------------------------------------------ the store

class TemplateStore:
    def __init__(self, root_dir: str, busybox: str = BUSYBOX):
        self.dir = root_dir
        self.busybox = busybox

    # paths
    def _tdir(self, name: str) -> str:
        return os.path.join(self.dir, validate_name(name, "template name"))

    def rootfs_path(self, name: str) -> str:
        """The template's tree; ``minimal`` is built on first use."""
        path = os.path.join(self._tdir(name), "rootfs")
        if not os.path.isdir(path):
            if name == MINIMAL:
                self.ensure_minimal()
            else:
                raise NotFound(f"template {name!r} not found")
        return path

    def exists(self, name: str) -> bool:
        return os.path.isdir(os.path.join(self._tdir(name), "rootfs"))

    # building
    def _lock(self):
        os.makedirs(self.dir, 0o755, exist_ok=True)
        fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _build(self, name: str, source: str, fill: Callable[[str], object]) -> dict:
        """-> the template's metadata; plus ``skipped`` (names left out, see
        filter_rootfs_members) and a one-line ``notice`` about them when ``fill`` returned
        any: for the caller (the API answers with it), not stored."""
        final = self._tdir(name)
        lock = self._lock()
        tmp = os.path.join(self.dir, f".tmp-{name}-{uuid.uuid4().hex[:8]}")
        try:
            if os.path.exists(final):
                raise Conflict(f"template {name!r} already exists")
            os.mkdir(tmp, 0o755)
            rootfs = os.path.join(tmp, "rootfs")
            os.mkdir(rootfs, 0o755)
            skipped = fill(rootfs)
            os.chmod(rootfs, 0o755)
            meta = {"name": name, "created": _now(), "source": source, "size": tree_size(rootfs)}
            with open(os.path.join(tmp, "template.json"), "w") as f:
                json.dump(meta, f)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, final)
            dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(dfd)
            os.close(dfd)
            if skipped:
                return dict(meta, skipped=skipped, notice=skipped_notice(skipped))
            return meta
        except MCError:
            raise
        except OSError as err:
            raise KernelError.from_oserror(f"build template {name}", err) from err
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            os.close(lock)

    def ensure_minimal(self) -> dict:
        if self.exists(MINIMAL):
            return self.info(MINIMAL)
        try:
            return self._build(MINIMAL, f"busybox:{self.busybox}", self._fill_minimal)
        except Conflict:
            return self.info(MINIMAL)       # built meanwhile by another caller

    def _fill_minimal(self, root: str) -> None:
        if not os.path.isfile(self.busybox):
            raise NotFound(f"{self.busybox} not found: install busybox-static to build the "
                           f"minimal template")
        for d, mode in (("bin", 0o755), ("sbin", 0o755), ("usr", 0o755), ("usr/bin", 0o755),
                        ("usr/sbin", 0o755), ("lib", 0o755), ("etc", 0o755), ("proc", 0o555),
                        ("sys", 0o555), ("dev", 0o755), ("tmp", 0o1777), ("root", 0o700),
                        ("home", 0o755), ("var", 0o755), ("var/tmp", 0o1777), ("run", 0o755),
                        ("mnt", 0o755)):
            os.mkdir(os.path.join(root, d), mode)
            os.chmod(os.path.join(root, d), mode)
        shutil.copy2(self.busybox, os.path.join(root, "bin/busybox"))
        os.chmod(os.path.join(root, "bin/busybox"), 0o755)
        applets = subprocess.run([self.busybox, "--list-full"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for applet in applets:
            path = os.path.join(root, applet)
            if applet == "bin/busybox" or os.path.lexists(path):
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink("/bin/busybox", path)
        for rel, text in (("etc/passwd", PASSWD), ("etc/group", GROUP),
                          ("etc/hostname", "minimal\n"), ("etc/hosts", "127.0.0.1\tlocalhost\n"),
                          ("etc/resolv.conf", "")):
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
            os.chmod(os.path.join(root, rel), 0o644)

    def import_tar(self, name: str, path: str) -> dict:
        """``path`` may also be /proc/self/fd/N of a pipe or socket (a client streaming
        the archive): it is spooled to a temp file first, since the checks read the
        member list before extracting anything."""
        validate_name(name, "template name")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFound(f"archive {path} not found") from None
        if stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"archive {path} is a directory")
        if stat.S_ISREG(st.st_mode):
            return self._build(name, f"tar:{os.path.basename(path)}",
                               lambda root: safe_extract(path, root))
        os.makedirs(self.dir, 0o755, exist_ok=True)
        spool = os.path.join(self.dir, f".spool-{uuid.uuid4().hex[:8]}")
        try:
            try:
                with open(path, "rb") as src, open(spool, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except OSError as err:
                raise KernelError.from_oserror(f"import template {name}: spool archive", err,
                                               path=spool) from err
            return self._build(name, "tar:stream", lambda root: safe_extract(spool, root))
        finally:
            try:
                os.unlink(spool)
            except FileNotFoundError:
                pass

    def create_from_dir(self, name: str, src: str) -> dict:
        validate_name(name, "template name")
        if not os.path.isdir(src):
            raise NotFound(f"directory {src} not found")
        return self._build(name, f"dir:{src}", lambda root: _copy_tree(src, root))

    # reading
    def info(self, name: str) -> dict:
        try:
            with open(os.path.join(self._tdir(name), "template.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            raise NotFound(f"template {name!r} not found") from None

    def list(self) -> list[dict]:
        out = []
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return out
        for n in names:
            if n.startswith("."):
                continue
            try:
                out.append(self.info(n))
            except (NotFound, InvalidArgument, ValueError):
                continue
        return out

    def remove(self, name: str, users: Callable[[str], list[str]]) -> None:
        """Remove a template unless ``users(name)`` names containers that use it (the
        manager knows which: mcd.manager owns "template in use"); asked under the
        template lock, so no import or create of the same name runs in between."""
        tdir = self._tdir(name)
        lock = self._lock()
        try:
            if not os.path.isdir(tdir):
                raise NotFound(f"template {name!r} not found")
            holding = users(name)
            if holding:
                raise Conflict(f'template "{name}" is used by container(s) '
                               f'{", ".join(holding)}')
            trash = os.path.join(self.dir, f".trash-{name}-{uuid.uuid4().hex[:8]}")
            os.rename(tdir, trash)
        finally:
            os.close(lock)
        shutil.rmtree(trash, ignore_errors=True)


def _copy_tree(src: str, dst: str) -> list[str]:
    """Copy a directory tree preserving modes, owners and symlinks. Device nodes, FIFOs
    and sockets are skipped, as an import skips them (and reading a device would copy its
    content, /dev/zero forever). Returns the skipped paths, as "/dev/null"."""
    skipped = []
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target_dir = dst if rel == "." else os.path.join(dst, rel)
        for name in dirnames + filenames:
            s = os.path.join(dirpath, name)
            d = os.path.join(target_dir, name)
            st = os.lstat(s)
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(d, 0o700)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(s), d)
            elif stat.S_ISREG(st.st_mode):
                shutil.copyfile(s, d, follow_symlinks=False)
            else:
                skipped.append("/" + os.path.relpath(s, src))
                continue
            os.chown(d, st.st_uid, st.st_gid, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(d, stat.S_IMODE(st.st_mode))
        st = os.stat(dirpath)
        os.chown(target_dir, st.st_uid, st.st_gid)
        os.chmod(target_dir, stat.S_IMODE(st.st_mode))
    return skipped
