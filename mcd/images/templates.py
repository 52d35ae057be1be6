"""Templates as one-layer images in the image store (issue 14).

A template (busybox ``minimal``, ``template import FILE NAME``, ``template create DIR
NAME``) is an image with one layer, tagged ``NAME`` (``docker.io/library/NAME:latest``,
Docker's reading of a bare name) and labelled ``org.minicontainer.template=NAME``. Its
config carries the defaults templates always had: Cmd ``sh``, Env PATH.

One ingestion path: every source first becomes one uncompressed layer tar in the store's
``tmp/``, and that tar goes through ``Load.add_layer`` like any layer of a loaded or
pulled image (the same member checks, the same extraction, diff ID verified, staged and
committed under the store's lock; the tar is kept as the layer's blob, so ``image save``
hands it out and another host loads the same image ID).

The layer tar of a directory (``layer_tar``) is reproducible: the same tree gives the
same bytes, hence the same diff ID:

- PAX format; members depth first, each directory's entries sorted by name (a directory
  before what it holds); no entry for the root itself;
- directories, regular files, symlinks; a file's second and later names (same inode)
  are hard-link members to the first name in that order;
- mode bits, uid and gid as stored (numeric; user and group names left empty), mtime as
  stored in whole seconds -- or one fixed mtime for every member when asked (``minimal``
  uses 0, so every build from the same busybox binary has the same diff ID);
- no device nodes, FIFOs or sockets (skipped, and reported, as an import skips them);
  no xattrs.

The diff ID is the sha256 of that tar. An imported archive is decompressed (gzip, bzip2,
xz, zstd or plain, told by magic bytes) into such a tar as it is: its diff ID is the
sha256 of the archive's own uncompressed bytes, as ``docker import`` does.

Upgrade from the template directories of earlier versions (``ROOT/templates/NAME/``,
still read through ``mcd.templates.TemplateStore``): ``migrate`` runs at daemon start.
Each tree not yet migrated is tarred and loaded as above (config ``created`` is the
template's own, so a re-run after a crash makes the same image ID: stored once), then
``template.json`` gets ``"image": ID`` (written atomically: the mark that it is done).
Only then, and only while no container still names the template (``root.template`` in
its spec: containers made before the upgrade), is the old tree removed; a tree such
containers use stays their lowerdir, unchanged, until the last of them is removed (the
next start, or ``template rm``, removes it). A crash at any step loses nothing: the tree
goes last.
"""

from __future__ import annotations

import bz2
import datetime
import fcntl
import hashlib
import json
import logging
import lzma
import os
import platform
import shutil
import stat
import tarfile
import uuid
from contextlib import contextmanager

from mcd.errors import Conflict, InvalidArgument, KernelError, MCError, NotFound
from mcd.images import layers as L
from mcd.images import reference
from mcd.images.config import TEMPLATE_LABEL
from mcd.store import atomic_write_json, read_json
from mcd.templates import MINIMAL, TemplateStore
from mcwire.errors import BadImage, UnsafeArchive
from mcwire.spec import validate_name
from mcwire.units import DEFAULT_ENV

log = logging.getLogger("mcd.templates")

LABEL = TEMPLATE_LABEL
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def go_arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


class _Hashing:
    """A write-only file that hashes what passes through."""

    def __init__(self, out):
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


# ------------------------------------------------------------ the reproducible layer tar

def layer_tar(src: str, out, *, mtime: int | None = None) -> tuple[str, list[str]]:
    """Write the reproducible layer tar of directory ``src`` to the binary file ``out``
    (rules in the module docstring). Returns (diff ID, skipped names as "/dev/null")."""
    sink = _Hashing(out)
    skipped: list[str] = []
    seen: dict[tuple[int, int], str] = {}
    rootfd = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            _add_dir(tf, rootfd, "", skipped, seen, mtime)
    finally:
        os.close(rootfd)
    return sink.digest(), skipped


def _info(rel: str, st: os.stat_result, mtime: int | None) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(rel)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = int(st.st_mtime) if mtime is None else mtime
    return ti


def _add_dir(tf, dfd: int, prefix: str, skipped, seen, mtime) -> None:
    for name in sorted(os.listdir(dfd)):
        rel = prefix + name
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        ti = _info(rel, st, mtime)
        if stat.S_ISDIR(st.st_mode):
            ti.type = tarfile.DIRTYPE
            tf.addfile(ti)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=dfd)
            try:
                _add_dir(tf, sub, rel + "/", skipped, seen, mtime)
            finally:
                os.close(sub)
        elif stat.S_ISLNK(st.st_mode):
            ti.type = tarfile.SYMTYPE
            ti.linkname = os.readlink(name, dir_fd=dfd)
            tf.addfile(ti)
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in seen:
                ti.type = tarfile.LNKTYPE
                ti.linkname = seen[key]
                tf.addfile(ti)
                continue
            seen[key] = rel
            ti.type = tarfile.REGTYPE
            ti.size = st.st_size
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            with os.fdopen(fd, "rb") as f:
                tf.addfile(ti, f)
        else:
            skipped.append("/" + rel)


def plain_tar(src, out) -> str:
    """Copy archive ``src`` to ``out`` uncompressed (gzip, bzip2, xz, zstd or plain, by
    magic bytes). Returns the sha256 of the uncompressed bytes (the diff ID)."""
    kind, stream = L.decompressor(src)
    if kind == "none":
        head = L._read_exact(stream, 6)
        stream = L._Peek(stream, head)
        if head.startswith(BZIP2_MAGIC):
            stream = bz2.BZ2File(stream)
        elif head.startswith(XZ_MAGIC):
            stream = lzma.LZMAFile(stream)
    sink = _Hashing(out)
    try:
        shutil.copyfileobj(stream, sink, 1 << 20)
    except (EOFError, OSError, lzma.LZMAError, ValueError) as err:
        if isinstance(err, OSError) and err.errno is not None:
            raise
        raise InvalidArgument(f"cannot read archive: truncated or corrupt ({err})") from None
    except Exception as err:
        if type(err).__module__.startswith("zstandard"):
            raise InvalidArgument(f"cannot read archive: corrupt zstd ({err})") from None
        raise
    return sink.digest()


# ------------------------------------------------------------ templates over the store

class TemplateImages:
    """The template commands over the image store, plus the legacy trees of containers
    made before the upgrade. ``images`` is a zero-argument callable giving the daemon's
    ImageStore (the manager's: one store, one staging cleaner)."""

    def __init__(self, images, legacy: TemplateStore):
        self._images = images
        self.legacy = legacy
        self.busybox = legacy.busybox

    @property
    def images(self):
        return self._images()

    # -- names
    @staticmethod
    def _ref(name: str) -> str:
        validate_name(name, "template name")
        try:
            return str(reference.parse(name))
        except InvalidArgument:
            raise InvalidArgument(f"template name {name!r}: templates are images now; an "
                                  f"image name is lowercase letters, digits and . _ -") from None

    def image_of(self, name: str) -> str | None:
        """The image ID the template name's tag points at, None when there is none."""
        try:
            ref = self._ref(name)
        except InvalidArgument:
            return None
        return self.images._read_tags().get(ref)

    def image_id(self, name: str) -> str | None:
        """The image a template name runs (``minimal`` is built on first use); None when
        no image carries that name."""
        image_id = self.image_of(name)
        if image_id is None and name == MINIMAL:
            image_id = self.ensure_minimal()["image"]
        return image_id

    # -- legacy trees (containers from before the upgrade)
    def exists(self, name: str) -> bool:
        return self.image_of(name) is not None or self.unmigrated(name) is not None

    def unmigrated(self, name: str) -> dict | None:
        try:
            if not self.legacy.exists(name):
                return None
            meta = self.legacy.info(name)
        except (NotFound, InvalidArgument, ValueError):
            return None
        return None if meta.get("image") else meta

    def rootfs_path(self, name: str) -> str:
        """The tree of a template named by a container made before the upgrade."""
        if not self.legacy.exists(name):
            raise NotFound(f"template {name!r} not found (its tree was removed; templates "
                           f"are images now)")
        return self.legacy.rootfs_path(name)

    # -- building
    @contextmanager
    def _build_lock(self):
        fd = os.open(os.path.join(self.images.dir, ".template-lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _ingest(self, name: str, tar_path: str, diff_id: str, *, how: str, source: str,
                created: str | None = None, replace: bool = False) -> dict:
        """Load the layer tar at ``tar_path`` as the one layer of template image ``name``."""
        ref = self._ref(name)
        store = self.images
        created = created or _now()
        what = f"template {name}"
        config = {"architecture": go_arch(), "os": "linux", "created": created,
                  "config": {"Cmd": ["sh"], "Env": list(DEFAULT_ENV), "Labels": {LABEL: name}},
                  "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                  "history": [{"created": created, "created_by": f"template {name}: {how} {source}"}]}
        raw = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        with store.load(f"template:{source}") as ld:
            # Unpacked even when the store has the layer (commit then keeps the stored
            # copy): the checks run and the notice of what was skipped is the same.
            with open(tar_path, "rb") as f:
                try:
                    ld.add_layer(f, diff_id=diff_id, what=what,
                                 media_type="application/vnd.oci.image.layer.v1.tar")
                except BadImage as err:
                    # The member rule's refusals are the import's own (UNSAFE_ARCHIVE).
                    raise UnsafeArchive(str(err)) from None
            image_id = ld.add_image(raw, [ref], what)
            ld.new_tags_only = not replace
            ld.commit()
            notices = [n[len(what) + 2:] if n.startswith(what + ": ") else n
                       for n in ld.notices]
        out = self._meta(name, image_id)
        if notices:
            out["notice"] = "; ".join(notices)
        return out

    def _spool(self) -> str:
        return os.path.join(self.images.tmp, f"template-{uuid.uuid4().hex[:12]}.tar")

    def _from_tree(self, name: str, tree: str, *, how: str, source: str,
                   mtime: int | None = None, created: str | None = None,
                   replace: bool = False) -> dict:
        tar_path = self._spool()
        try:
            with open(tar_path, "wb") as out:
                diff_id, skipped = layer_tar(tree, out, mtime=mtime)
            res = self._ingest(name, tar_path, diff_id, how=how, source=source,
                               created=created, replace=replace)
        except MCError:
            raise
        except OSError as err:
            raise KernelError.from_oserror(f"template {how} {name}", err, path=tar_path) from err
        finally:
            _unlink(tar_path)
        if skipped:
            from mcd.templates import skipped_notice
            res.update(skipped=skipped, notice=skipped_notice(skipped))
        return res

    def _refuse_taken(self, name: str) -> None:
        if self.image_of(name) is not None or self.unmigrated(name) is not None:
            raise Conflict(f"template {name!r} already exists")

    def ensure_minimal(self) -> dict:
        """The busybox template image, built once (under a lock: two first runs build it
        once). Its tree is made in the store's tmp/ and tarred with mtime 0."""
        image_id = self.image_of(MINIMAL)
        if image_id is not None:
            return self._meta(MINIMAL, image_id)
        with self._build_lock():
            image_id = self.image_of(MINIMAL)
            if image_id is not None:
                return self._meta(MINIMAL, image_id)
            tree = os.path.join(self.images.tmp, f"minimal-{uuid.uuid4().hex[:12]}")
            os.mkdir(tree, 0o755)
            try:
                self.legacy._fill_minimal(tree)
                return self._from_tree(MINIMAL, tree, how="build", source=f"busybox:{self.busybox}",
                                       mtime=0)
            except OSError as err:
                raise KernelError.from_oserror("build template minimal", err) from err
            finally:
                shutil.rmtree(tree, ignore_errors=True)

    def create_from_dir(self, name: str, src: str) -> dict:
        self._ref(name)
        if not os.path.isdir(src):
            raise NotFound(f"directory {src} not found")
        with self._build_lock():
            self._refuse_taken(name)
            return self._from_tree(name, src, how="create", source=f"dir:{src}")

    def import_tar(self, name: str, path: str) -> dict:
        """``path`` may be /proc/self/fd/N (a file, a pipe or a socket the client passed)."""
        self._ref(name)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFound(f"archive {path} not found") from None
        if stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"archive {path} is a directory")
        source = f"tar:{os.path.basename(path)}" if stat.S_ISREG(st.st_mode) else "tar:stream"
        with self._build_lock():
            self._refuse_taken(name)
            tar_path = self._spool()
            try:
                with open(path, "rb") as src, open(tar_path, "wb") as out:
                    try:
                        diff_id = plain_tar(src, out)
                    except InvalidArgument as err:
                        raise InvalidArgument(f"cannot read archive {path}: "
                                              f"{str(err).split(': ', 1)[1]}") from None
                return self._ingest(name, tar_path, diff_id, how="import", source=source)
            except MCError:
                raise
            except OSError as err:
                raise KernelError.from_oserror(f"import template {name}", err,
                                               path=tar_path) from err
            finally:
                _unlink(tar_path)

    # -- reading
    def _meta(self, name: str, image_id: str) -> dict:
        store = self.images
        rec = store.summary(image_id)
        return {"name": name, "image": image_id, "created": rec.get("created"),
                "source": (rec.get("source") or "").removeprefix("template:"),
                "size": rec.get("size", 0)}

    def info(self, name: str) -> dict:
        image_id = self.image_of(name)
        if image_id is not None:
            return self._meta(name, image_id)
        meta = self.unmigrated(name)
        if meta is None:
            raise NotFound(f"template {name!r} not found")
        return meta

    def list(self) -> list[dict]:
        """Tags NAME(:latest) whose image carries the template label for NAME, and any
        tree not migrated (yet)."""
        store = self.images
        out = {}
        for ref, image_id in store._read_tags().items():
            r = reference.parse(ref)
            name = r.familiar().removesuffix(":latest")
            if "/" in name or ":" in name:
                continue
            try:
                labels = (store.config(image_id).get("config") or {}).get("Labels") or {}
            except (OSError, ValueError):
                continue
            if labels.get(LABEL) == name:
                out[name] = self._meta(name, image_id)
        for meta in self.legacy.list():
            if not meta.get("image") and meta.get("name") not in out:
                out[meta["name"]] = meta
        return [out[n] for n in sorted(out)]

    # -- removal
    def remove(self, name: str, users) -> None:
        """Untag the template's image (deleted with its last tag) and remove an old tree,
        unless ``users(name)`` (the manager: containers from the image or the old tree)
        names a container."""
        validate_name(name, "template name")
        image_id = self.image_of(name)
        has_tree = self.legacy.exists(name)
        if image_id is None and not has_tree:
            raise NotFound(f"template {name!r} not found")
        holding = users(name)
        if holding:
            raise Conflict(f'template "{name}" is used by container(s) {", ".join(holding)}')
        if image_id is not None:
            self.images.remove(self._ref(name), users=lambda i: users(name))
        if has_tree:
            try:
                self.legacy.remove(name, users)
            except NotFound:
                pass

    # -- upgrade
    def migrate(self, legacy_users) -> list[str]:
        """Template trees of earlier versions -> template images (see the module
        docstring). ``legacy_users(name)``: containers whose spec names the template.
        Returns what it did, one line each, for the daemon's log."""
        done = []
        for meta in self.legacy.list():
            name = meta.get("name")
            try:
                if not meta.get("image"):
                    done.append(self._migrate_one(name, meta))
                    meta = self.legacy.info(name)
                if meta.get("image") and self.legacy.exists(name) and not legacy_users(name):
                    self.legacy.remove(name, legacy_users)
                    done.append(f"template {name}: old tree removed (no container uses it)")
            except (MCError, OSError) as err:
                log.error("template %s: not migrated to an image: %s", name, err)
                done.append(f"template {name}: not migrated ({err}); its tree stays in use")
        return done

    def _migrate_one(self, name: str, meta: dict) -> str:
        try:
            ref = self._ref(name)
        except InvalidArgument as err:
            raise MCError(str(err)) from None
        taken = self.images._read_tags().get(ref)
        tree = os.path.join(self.legacy._tdir(name), "rootfs")
        with self._build_lock():
            res = self._from_tree(name, tree, how="migrate", source=meta.get("source", ""),
                                  created=meta.get("created"), replace=True) \
                if taken is None else None
        if res is None:
            labels = (self.images.config(taken).get("config") or {}).get("Labels") or {}
            if labels.get(LABEL) != name:
                raise Conflict(f"the name {name!r} is an image's tag already "
                               f"({taken[7:19]}): the template stays a tree")
            res = {"image": taken}
        path = os.path.join(self.legacy._tdir(name), "template.json")
        atomic_write_json(path, dict(read_json(path) or meta, image=res["image"]), mode=0o644)
        return f"template {name}: now image {res['image'][7:19]}"


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


__all__ = ["LABEL", "TemplateImages", "layer_tar", "plain_tar"]
