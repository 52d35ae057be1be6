"""Images and their layers under ROOT/images (the layout is in docs/design.md):

    layers/<hex>/diff/        a layer unpacked once, by diff ID: an overlay lowerdir
    layers/<hex>/blob         the blob as it came (save hands out the same bytes)
    layers/<hex>/layer.json   {diff_id, blob_digest, media_type, size, link, ...}
    l/<12 chars> -> ../layers/<hex>/diff     short names for the overlay mount option
    images/<hex>/config.json  the image config, byte for byte (its sha256 is the image ID)
    images/<hex>/image.json   {id, layers, created, loaded, source, repo_digests}
    tags.json                 {"docker.io/library/busybox:latest": "sha256:<hex>"}
    tmp/                      staging: loads and pulls unpack here, then rename in

A load stages everything (every layer of every image in the archive) in tmp/ without
holding the lock; ``commit`` then takes the store's lock and renames it all in, so
an archive is added whole or not at all, and a layer two loads staged at once is
stored once (the second rename finds it there and drops its copy). Removal and
garbage collection take the same lock.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import shutil
import uuid
from contextlib import contextmanager

from mcd.errors import Conflict, InvalidArgument, KernelError, MCError, NotFound
from mcd.images import layers as L
from mcd.images import reference
from mcd.images.config import TEMPLATE_LABEL
from mcd.store import atomic_write_json, fsync_dir, read_json

MAX_LAYERS = 128        # Docker's overlay2 limit; far under the mount option's page


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _sync_tree_fs(path: str) -> None:
    """syncfs() of the filesystem holding ``path``: one call makes every file unpacked
    into a staging dir durable before the rename that publishes it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


class Load:
    """One load or pull: stage layers and images, then commit() them all at once."""

    def __init__(self, store: "ImageStore", source: str):
        self.store = store
        self.source = source
        self.dir = os.path.join(store.tmp, f"load-{uuid.uuid4().hex[:12]}")
        os.makedirs(self.dir, 0o700)
        self.layers: dict[str, L.Staged] = {}
        self.images: list[dict] = []
        self.notices: list[str] = []
        # True: a tag this load sets that already names another image is a Conflict
        # (checked under the lock; template import/create: a name is taken once).
        self.new_tags_only = False

    def has_layer(self, diff_id: str) -> bool:
        return diff_id in self.layers or self.store.layer_exists(diff_id)

    def add_layer(self, stream, *, diff_id: str, what: str, blob_digest: str | None = None,
                  media_type: str = "") -> None:
        staged = L.unpack(stream, os.path.join(self.dir, L.hex_of(diff_id)), diff_id=diff_id,
                          what=what, blob_digest=blob_digest, media_type=media_type)
        self.layers[diff_id] = staged
        self.notices.extend(staged.notices)

    def add_image(self, config_raw: bytes, tags: list[str], what: str,
                  repo_digests: list[str] = ()) -> str:
        """Stage an image record; its layers must have been added (or be in the store)."""
        image_id = "sha256:" + L.hashlib.sha256(config_raw).hexdigest()
        config = parse_config(config_raw, what)
        diff_ids = config["rootfs"]["diff_ids"]
        for d in diff_ids:
            if not self.has_layer(d):
                raise L.BadImage(f"{what}: layer {d} is missing")
        refs = []
        for t in tags:
            refs.append(str(reference.parse(t)))
        self.images.append({"id": image_id, "config_raw": config_raw, "layers": diff_ids,
                            "tags": refs, "created": config.get("created"),
                            "repo_digests": list(repo_digests)})
        return image_id

    def commit(self) -> list[dict]:
        st = self.store
        with st.lock():
            try:
                for img in self.images:
                    for d in img["layers"]:
                        if d not in self.layers and not st.layer_exists(d):
                            raise Conflict(f"image {img['id'][7:19]}: layer {d} was removed "
                                           f"while this load ran; load it again")
                current = st._read_tags()
                for img in self.images:
                    for t in img["tags"]:
                        st._keep_template_tag(current, t, img["id"])
                if self.new_tags_only:
                    current = st._read_tags()
                    for img in self.images:
                        for t in img["tags"]:
                            if current.get(t, img["id"]) != img["id"]:
                                raise Conflict(f"{reference.parse(t).familiar()} already "
                                               f"names image {current[t][7:19]}")
                if self.layers:
                    _sync_tree_fs(self.dir)
                for diff_id, staged in self.layers.items():
                    st._publish_layer(staged)
                out = []
                for img in self.images:
                    st._publish_image(img, self.source)
                    out.append({"id": img["id"], "tags": [reference.parse(t).familiar()
                                                         for t in img["tags"]]})
                tags = st._read_tags()
                for img in self.images:
                    for t in img["tags"]:
                        tags[t] = img["id"]
                st._write_tags(tags)
                return out
            except BaseException as err:
                # Layers this commit published before it failed belong to no image: gone
                # again (every other published layer has its image: loads publish under
                # this lock), so a failed load adds nothing.
                try:
                    st._gc_layers()
                except OSError:
                    pass
                if isinstance(err, OSError):
                    raise KernelError.from_oserror("commit image", err,
                                                   step="image store") from err
                raise

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def parse_config(raw: bytes, what: str) -> dict:
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise L.BadImage(f"{what}: image config is not JSON ({err})") from None
    if not isinstance(config, dict):
        raise L.BadImage(f"{what}: image config is not an object")
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers" \
            or not isinstance(rootfs.get("diff_ids"), list):
        raise L.BadImage(f"{what}: image config has no rootfs.diff_ids")
    for d in rootfs["diff_ids"]:
        if not isinstance(d, str):
            raise L.BadImage(f"{what}: bad diff ID {d!r}")
        L.hex_of(d)
    if len(rootfs["diff_ids"]) > MAX_LAYERS:
        raise L.BadImage(f"{what}: {len(rootfs['diff_ids'])} layers (at most {MAX_LAYERS})")
    if config.get("os", "linux") != "linux":
        raise L.BadImage(f"{what}: an image for {config.get('os')!r}, not linux")
    cfg = config.get("config")
    if cfg is not None and not isinstance(cfg, dict):
        raise L.BadImage(f"{what}: image config's 'config' is not an object")
    return config


class ImageStore:
    def __init__(self, root_dir: str):
        self.dir = root_dir
        self.layers_dir = os.path.join(root_dir, "layers")
        self.links_dir = os.path.join(root_dir, "l")
        self.images_dir = os.path.join(root_dir, "images")
        self.tmp = os.path.join(root_dir, "tmp")
        self.tags_path = os.path.join(root_dir, "tags.json")
        for d in (self.dir, self.layers_dir, self.links_dir, self.images_dir, self.tmp):
            os.makedirs(d, 0o700 if d == self.tmp else 0o755, exist_ok=True)

    # ------------------------------------------------------------ locking, staging
    @contextmanager
    def lock(self):
        fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def load(self, source: str):
        ld = Load(self, source)
        try:
            yield ld
        finally:
            ld.close()

    def clean_tmp(self) -> list[str]:
        """Staging left by a crash (daemon start-up, before any load runs)."""
        gone = []
        for n in os.listdir(self.tmp):
            shutil.rmtree(os.path.join(self.tmp, n), ignore_errors=True)
            gone.append(n)
        return gone

    # ------------------------------------------------------------ layers
    def _layer_dir(self, diff_id: str) -> str:
        return os.path.join(self.layers_dir, L.hex_of(diff_id))

    def layer_exists(self, diff_id: str) -> bool:
        return os.path.isfile(os.path.join(self._layer_dir(diff_id), "layer.json"))

    def layer_info(self, diff_id: str) -> dict:
        meta = read_json(os.path.join(self._layer_dir(diff_id), "layer.json"))
        if meta is None:
            raise NotFound(f"layer {diff_id} not found")
        return meta

    def layer_blob(self, diff_id: str) -> str:
        return os.path.join(self._layer_dir(diff_id), "blob")

    def _publish_layer(self, staged: L.Staged) -> None:
        final = self._layer_dir(staged.diff_id)
        if os.path.isfile(os.path.join(final, "layer.json")):
            return                                  # stored once: the other copy wins
        if os.path.exists(final):                   # no layer.json: a half-removed one
            shutil.rmtree(final)
        os.rename(staged.path, final)
        link = os.path.join(self.links_dir, staged.meta["link"])
        tmp = link + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.path.join("..", "layers", L.hex_of(staged.diff_id), "diff"), tmp)
        os.rename(tmp, link)
        fsync_dir(self.layers_dir)
        fsync_dir(self.links_dir)

    def lowers(self, image_id: str) -> list[str]:
        """Absolute short-link paths of the image's layers, top layer first (overlay's
        lowerdir order). Missing layers are a NotFound naming the image."""
        rec = self.get(image_id)
        out = []
        seen = set()
        for d in reversed(rec["layers"]):
            # A layer twice in one image (empty layers often are) is stacked once, at its top
            # place: overlayfs refuses a lowerdir twice (ELOOP), and the lower copy is wholly
            # shadowed by the upper one (the same entries, the same whiteouts), so the
            # merged tree is the same.
            if d in seen:
                continue
            seen.add(d)
            if not self.layer_exists(d):
                raise NotFound(f"image {image_id[7:19]}: layer {d} is missing from the store")
            out.append(os.path.join(self.links_dir, L.short_link(d)))
        if not out:
            raise InvalidArgument(f"image {image_id[7:19]} has no layers")
        return out

    # ------------------------------------------------------------ images
    def _image_dir(self, image_id: str) -> str:
        return os.path.join(self.images_dir, L.hex_of(image_id))

    def _publish_image(self, img: dict, source: str) -> None:
        final = self._image_dir(img["id"])
        if os.path.isfile(os.path.join(final, "image.json")):
            rec = read_json(os.path.join(final, "image.json"))
            digests = sorted(set(rec.get("repo_digests", [])) | set(img["repo_digests"]))
            if digests != rec.get("repo_digests", []):
                rec["repo_digests"] = digests
                atomic_write_json(os.path.join(final, "image.json"), rec, mode=0o644)
            return
        tmp = os.path.join(self.images_dir, f".{L.hex_of(img['id'])}.new")
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp, 0o755)
        try:
            with open(os.path.join(tmp, "config.json"), "wb") as f:
                f.write(img["config_raw"])
                f.flush()
                os.fsync(f.fileno())
            rec = {"id": img["id"], "layers": img["layers"], "created": img["created"],
                   "loaded": _now(), "source": source, "repo_digests": img["repo_digests"]}
            with open(os.path.join(tmp, "image.json"), "w") as f:
                json.dump(rec, f)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(self.images_dir)

    def ids(self) -> list[str]:
        return sorted("sha256:" + n for n in os.listdir(self.images_dir)
                      if not n.startswith(".")
                      and os.path.isfile(os.path.join(self.images_dir, n, "image.json")))

    def get(self, image_id: str) -> dict:
        rec = read_json(os.path.join(self._image_dir(image_id), "image.json"))
        if rec is None:
            raise NotFound(f"no such image: {image_id}")
        return rec

    def config(self, image_id: str) -> dict:
        with open(os.path.join(self._image_dir(image_id), "config.json"), "rb") as f:
            return json.loads(f.read())

    def config_raw(self, image_id: str) -> bytes:
        with open(os.path.join(self._image_dir(image_id), "config.json"), "rb") as f:
            return f.read()

    def _read_tags(self) -> dict:
        return read_json(self.tags_path) or {}

    def _write_tags(self, tags: dict) -> None:
        atomic_write_json(self.tags_path, dict(sorted(tags.items())), mode=0o644)

    def tags_of(self, image_id: str, tags: dict | None = None) -> list[str]:
        tags = self._read_tags() if tags is None else tags
        return sorted(reference.parse(t).familiar() for t, i in tags.items() if i == image_id)

    def _tag_of(self, ref: str, tags: dict) -> str | None:
        """The stored tag key ``ref`` names, None when it names no tag."""
        if ref.startswith("sha256:") or not self._parses(ref):
            return None
        r = reference.parse(ref)
        return str(r) if not r.digest and str(r) in tags else None

    def resolve(self, ref: str) -> str:
        """An image ID for a name[:tag], a name@digest, a full ID or an ID prefix
        (a tag wins over an ID prefix that spells the same, as in Docker)."""
        if not isinstance(ref, str) or not ref:
            raise InvalidArgument("an image name or id is required")
        ids = self.ids()
        tags = self._read_tags()
        t = self._tag_of(ref, tags)
        if t is not None and tags[t] in ids:
            return tags[t]
        if reference.looks_like_id(ref):
            h = ref[len("sha256:"):] if ref.startswith("sha256:") else ref
            matches = [i for i in ids if i[7:].startswith(h)]
            if len(matches) > 1:
                raise InvalidArgument(f'image id prefix "{ref}" is ambiguous: '
                                      f'{len(matches)} images match')
            if matches:
                return matches[0]
            if ref.startswith("sha256:"):
                raise NotFound(f"no such image: {ref}")
        r = reference.parse(ref)
        if r.digest:
            for i in ids:
                if f"{r.name}@{r.digest}" in self.get(i).get("repo_digests", []):
                    return i
        raise NotFound(f"no such image: {r.familiar()}")

    def exists(self, ref: str) -> bool:
        try:
            self.resolve(ref)
            return True
        except NotFound:
            return False

    def summary(self, image_id: str, tags: dict | None = None) -> dict:
        rec = self.get(image_id)
        size = 0
        for d in rec["layers"]:
            try:
                size += self.layer_info(d).get("size", 0)
            except NotFound:
                pass
        return {"id": image_id, "short_id": image_id[7:19], "tags": self.tags_of(image_id, tags),
                "repo_digests": rec.get("repo_digests", []), "created": rec.get("created"),
                "loaded": rec.get("loaded"), "layers": len(rec["layers"]), "size": size,
                "source": rec.get("source")}

    def list(self) -> list[dict]:
        tags = self._read_tags()
        out = [self.summary(i, tags) for i in self.ids()]
        return sorted(out, key=lambda s: s.get("loaded") or "", reverse=True)

    def inspect(self, ref: str) -> dict:
        image_id = self.resolve(ref)
        rec = self.get(image_id)
        config = self.config(image_id)
        out = self.summary(image_id)
        out.update({"architecture": config.get("architecture"), "os": config.get("os"),
                    "config": config.get("config") or {},
                    "rootfs": {"type": "layers", "diff_ids": rec["layers"]},
                    "history": config.get("history") or []})
        return out

    def history(self, ref: str) -> list[dict]:
        """Newest first, like docker history; empty_layer steps have no layer."""
        image_id = self.resolve(ref)
        config = self.config(image_id)
        diff_ids = list(config["rootfs"]["diff_ids"])
        rows = []
        for h in config.get("history") or []:
            empty = bool(h.get("empty_layer"))
            diff = None if empty or not diff_ids else diff_ids.pop(0)
            size = 0
            if diff:
                try:
                    size = self.layer_info(diff).get("size", 0)
                except NotFound:
                    pass
            rows.append({"created": h.get("created"), "created_by": h.get("created_by", ""),
                         "comment": h.get("comment", ""), "layer": diff, "size": size})
        for diff in diff_ids:       # layers the history does not describe
            rows.append({"created": None, "created_by": "", "comment": "", "layer": diff,
                         "size": self.layer_info(diff).get("size", 0)})
        return list(reversed(rows))

    # ------------------------------------------------------------ tags, removal
    def tag(self, ref: str, new: str) -> str:
        image_id = self.resolve(ref)
        r = reference.parse(new)
        if r.digest:
            raise InvalidArgument(f"image tag: {new!r}: a tag cannot name a digest")
        with self.lock():
            tags = self._read_tags()
            self._keep_template_tag(tags, str(r), image_id)
            tags[str(r)] = image_id
            self._write_tags(tags)
        return image_id

    def _keep_template_tag(self, tags: dict, tag: str, image_id: str) -> None:
        """A template's name (NAME:latest on an image labelled as template NAME, see
        mcd.images.templates) is not moved to another image by a tag, load or pull: `run
        NAME` keeps running the template. Conflict naming how to free it."""
        current = tags.get(tag)
        if current is None or current == image_id:
            return
        try:
            labels = (self.config(current).get("config") or {}).get("Labels") or {}
        except (OSError, ValueError):
            return
        name = reference.parse(tag).familiar()
        template = name.removesuffix(":latest")
        if name.endswith(":latest") and labels.get(TEMPLATE_LABEL) == template:
            raise Conflict(f"{name} is the template {template!r}: remove it first "
                           f"(mcctl template rm {template}) or use another name")

    def remove(self, ref: str, *, force: bool = False, users=lambda image_id: []) -> dict:
        """Docker's rules: 'name:tag' untags, and deletes the image once no tag is left;
        an ID deletes it (refused while it has several tags unless force). An image a
        container uses is refused; with force it loses its tags but stays for the
        containers (its layers are their lowerdirs) until prune removes it."""
        with self.lock():
            image_id = self.resolve(ref)
            tags = self._read_tags()
            mine = [t for t, i in tags.items() if i == image_id]
            t = self._tag_of(ref, tags)
            untagged: list[str] = []
            if t is not None:
                del tags[t]
                untagged.append(reference.parse(t).familiar())
                mine.remove(t)
                if mine:
                    self._write_tags(tags)
                    return {"untagged": untagged, "deleted": []}
            elif len(mine) > 1 and not force:
                raise Conflict(f"image {image_id[7:19]} has {len(mine)} tags "
                               f"({', '.join(self.tags_of(image_id))}): remove by name, or -f")
            using = users(image_id)
            if using and not force:
                raise Conflict(f"image {image_id[7:19]} is in use by container(s) "
                               f"{', '.join(sorted(using))} (-f untags it and keeps it "
                               f"for them)")
            for t in mine:
                tags.pop(t, None)
                untagged.append(reference.parse(t).familiar())
            self._write_tags(tags)
            if using:
                return {"untagged": sorted(set(untagged)), "deleted": []}
            self._delete_image(image_id)
            deleted = [image_id] + self._gc_layers()
            return {"untagged": sorted(set(untagged)), "deleted": deleted}

    @staticmethod
    def _parses(ref: str) -> bool:
        try:
            reference.parse(ref)
            return True
        except InvalidArgument:
            return False

    def _delete_image(self, image_id: str) -> None:
        d = self._image_dir(image_id)
        trash = os.path.join(self.images_dir, f".{L.hex_of(image_id)}.del")
        os.rename(d, trash)
        fsync_dir(self.images_dir)
        shutil.rmtree(trash, ignore_errors=True)

    def _gc_layers(self) -> list[str]:
        """Layers no image names any more (call with the lock held)."""
        used = set()
        for i in self.ids():
            used.update(self.get(i)["layers"])
        gone = []
        for h in os.listdir(self.layers_dir):
            if h.startswith("."):
                continue
            diff_id = "sha256:" + h
            if diff_id in used:
                continue
            link = os.path.join(self.links_dir, L.short_link(diff_id))
            if os.path.lexists(link):
                os.unlink(link)
            trash = os.path.join(self.layers_dir, f".{h}.del")
            os.rename(os.path.join(self.layers_dir, h), trash)
            shutil.rmtree(trash, ignore_errors=True)
            gone.append(diff_id)
        return gone

    def prune(self, *, all: bool = False, users=lambda image_id: []) -> dict:
        """Untagged images (all: every image) no container uses."""
        deleted = []
        with self.lock():
            tags = self._read_tags()
            tagged = set(tags.values())
            for i in self.ids():
                if (all or i not in tagged) and not users(i):
                    for t in [t for t, v in tags.items() if v == i]:
                        del tags[t]
                    self._delete_image(i)
                    deleted.append(i)
            self._write_tags(tags)
            deleted += self._gc_layers()
        return {"deleted": deleted}

    def df(self) -> dict:
        """Bytes on disk: layers once each, however many images share them."""
        layers = []
        for h in os.listdir(self.layers_dir):
            if h.startswith("."):
                continue
            meta = read_json(os.path.join(self.layers_dir, h, "layer.json")) or {}
            layers.append(meta)
        users: dict[str, int] = {}
        ids = self.ids()
        for i in ids:
            for d in set(self.get(i)["layers"]):
                users[d] = users.get(d, 0) + 1
        return {"images": len(ids), "layers": len(layers),
                "layers_size": sum(m.get("size", 0) for m in layers),
                "blobs_size": sum(m.get("blob_size", 0) for m in layers),
                "shared_layers": sum(1 for n in users.values() if n > 1)}


def open_store(root: str) -> ImageStore:
    """The daemon's store; staging a crash left behind is removed (no load runs yet)."""
    try:
        store = ImageStore(os.path.join(root, "images"))
        store.clean_tmp()
        return store
    except OSError as err:
        raise KernelError.from_oserror("open image store", err) from err


__all__ = ["ImageStore", "Load", "MCError", "open_store", "parse_config"]
