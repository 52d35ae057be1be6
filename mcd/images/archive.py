"""Read images out of a `docker save` archive or an OCI image layout.

    docker-archive   manifest.json: [{"Config", "RepoTags", "Layers"}], layers as
                     <id>/layer.tar (legacy) or blobs/sha256/<hex> (Docker 25+)
    OCI layout       oci-layout + index.json + blobs/sha256/<hex>; tags from the
                     org.opencontainers.image.ref.name / io.containerd.image.name
                     annotations; a nested index chooses the host's platform

Either may be a directory or a tar (plain or gzip-compressed); Docker 25+ writes
both in one archive, and then manifest.json is read (it carries the tags).

Every blob with a known digest is checked against it (configs and manifests as
read, layers while they stream into mcd.images.layers); a legacy layer.tar has no
blob digest, but its content must match the diff ID the config names.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import posixpath
import tarfile

from mcd.errors import InvalidArgument, NotFound
from mcd.images import layers as L
from mcd.images.store import Load, parse_config

MAX_JSON = 8 << 20
MT_INDEX = ("application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json")
MT_MANIFEST = ("application/vnd.oci.image.manifest.v1+json",
               "application/vnd.docker.distribution.manifest.v2+json")
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_platform() -> tuple[str, str]:
    return "linux", _ARCH.get(platform.machine(), platform.machine())


class Source:
    """The files of an archive or a directory, by normalized relative name."""

    def open(self, name: str):
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def read(self, name: str, what: str, limit: int = MAX_JSON) -> bytes:
        try:
            with self.open(name) as f:
                data = f.read(limit + 1)
        except (FileNotFoundError, KeyError):
            raise L.BadImage(f"{what}: {name} is missing from the archive") from None
        if len(data) > limit:
            raise L.BadImage(f"{what}: {name} is larger than {limit} bytes")
        return data

    def close(self) -> None:
        pass


class DirSource(Source):
    def __init__(self, path: str):
        self.root = os.path.realpath(path)

    def _path(self, name: str) -> str:
        p = os.path.realpath(os.path.join(self.root, name))
        if p != self.root and not p.startswith(self.root + "/"):
            raise L.BadImage(f"{name}: leaves the image directory")
        return p

    def exists(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def open(self, name: str):
        return open(self._path(name), "rb")


class TarSource(Source):
    def __init__(self, path: str):
        try:
            self.tf = tarfile.open(path, "r:*")
            members = self.tf.getmembers()
        except tarfile.ReadError:
            raise L.BadImage("not an image archive: neither a tar nor a compressed tar, "
                             "nor a directory") from None
        except (tarfile.TarError, EOFError, OSError) as err:
            text = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise InvalidArgument(f"cannot read image archive: {text}") from None
        self.members = {}
        for m in members:
            name = posixpath.normpath(m.name.lstrip("/"))
            self.members[name] = m

    def _member(self, name: str, depth: int = 0):
        name = posixpath.normpath(name)
        m = self.members.get(name)
        if m is None:
            raise FileNotFoundError(name)
        if (m.issym() or m.islnk()) and depth < 8:
            target = m.linkname if m.islnk() else posixpath.join(posixpath.dirname(name),
                                                                  m.linkname)
            return self._member(posixpath.normpath(target.lstrip("/")), depth + 1)
        if not m.isreg():
            raise FileNotFoundError(name)
        return m

    def exists(self, name: str) -> bool:
        try:
            self._member(name)
            return True
        except FileNotFoundError:
            return False

    def open(self, name: str):
        return self.tf.extractfile(self._member(name))

    def close(self) -> None:
        self.tf.close()


def open_source(path: str) -> Source:
    if os.path.isdir(path):
        return DirSource(path)
    if not os.path.exists(path):
        raise NotFound(f"image archive {path} not found")
    return TarSource(path)


def _json(raw: bytes, what: str):
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise L.BadImage(f"{what}: not valid JSON ({err})") from None


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{L.hex_of(digest)}"


def _read_blob(src: Source, desc: dict, what: str) -> bytes:
    digest = desc.get("digest")
    if not isinstance(digest, str):
        raise L.BadImage(f"{what}: a descriptor without a digest")
    raw = src.read(_blob_name(digest), what)
    got = "sha256:" + hashlib.sha256(raw).hexdigest()
    if got != digest:
        raise L.BadImage(f"{what}: blob {digest} does not match its digest (got {got})")
    if isinstance(desc.get("size"), int) and desc["size"] != len(raw):
        raise L.BadImage(f"{what}: blob {digest} is {len(raw)} bytes, the descriptor says "
                         f"{desc['size']}")
    return raw


def load(ld: Load, path: str) -> list[dict]:
    """Stage every image of the archive or layout at ``path`` into ``ld``.
    Returns [{"id", "tags"}] in archive order (commit publishes them)."""
    src = open_source(path)
    try:
        if src.exists("manifest.json"):
            return _load_docker(ld, src)
        if src.exists("index.json"):
            return _load_oci(ld, src)
        raise L.BadImage("not an image archive: neither manifest.json (docker save) "
                         "nor index.json (OCI layout) is in it")
    finally:
        src.close()


def _stage(ld: Load, src: Source, config_raw: bytes, layer_descs: list[tuple[str, str | None, str]],
           tags: list[str], label: str, repo_digests=()) -> str:
    """layer_descs: (name in the source, blob digest or None, media type) per layer."""
    what = f"image {label}"
    config = parse_config(config_raw, what)
    diff_ids = config["rootfs"]["diff_ids"]
    if len(diff_ids) != len(layer_descs):
        raise L.BadImage(f"{what}: the manifest lists {len(layer_descs)} layers, the config "
                         f"{len(diff_ids)}")
    n = len(diff_ids)
    for i, (diff_id, (name, blob_digest, mt)) in enumerate(zip(diff_ids, layer_descs), 1):
        if ld.has_layer(diff_id):
            continue
        lwhat = f"{what} layer {i}/{n} ({diff_id[:19]})"
        if mt and ("nondistributable" in mt or "foreign" in mt):
            raise L.BadImage(f"{lwhat}: non-distributable layers ({mt}) are not supported")
        try:
            stream = src.open(name)
        except (FileNotFoundError, KeyError):
            raise L.BadImage(f"{lwhat}: blob {name} is missing from the archive") from None
        with stream:
            ld.add_layer(stream, diff_id=diff_id, what=lwhat, blob_digest=blob_digest,
                         media_type=mt or "")
    return ld.add_image(config_raw, tags, what, repo_digests)


def _load_docker(ld: Load, src: Source) -> list[dict]:
    manifest = _json(src.read("manifest.json", "manifest.json"), "manifest.json")
    if not isinstance(manifest, list) or not manifest:
        raise L.BadImage("manifest.json: expected a non-empty list of images")
    out = []
    for n, entry in enumerate(manifest, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list):
            raise L.BadImage(f"manifest.json entry {n}: Config and Layers are required")
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise L.BadImage(f"manifest.json entry {n}: RepoTags is not a list of names")
        label = tags[0] if tags else f"#{n}"
        cname = entry["Config"]
        config_raw = src.read(cname, f"image {label}")
        expected = _digest_from_name(cname)
        got = "sha256:" + hashlib.sha256(config_raw).hexdigest()
        if expected and got != expected:
            raise L.BadImage(f"image {label}: config {cname} does not match its digest "
                             f"(got {got})")
        descs = [(lname, _digest_from_name(lname) if lname.startswith("blobs/") else None, "")
                 for lname in entry["Layers"]]
        image_id = _stage(ld, src, config_raw, descs, tags, label)
        out.append({"id": image_id, "tags": tags})
    return out


def _digest_from_name(name: str) -> str | None:
    """blobs/sha256/<hex> or <hex>.json -> sha256:<hex>."""
    base = posixpath.basename(name)
    if base.endswith(".json"):
        base = base[:-5]
    if len(base) == 64 and all(c in "0123456789abcdef" for c in base):
        return "sha256:" + base
    return None


def _load_oci(ld: Load, src: Source) -> list[dict]:
    index = _json(src.read("index.json", "index.json"), "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise L.BadImage("index.json: no manifests list")
    out = []
    os_, arch = host_platform()
    for n, desc in enumerate(index["manifests"], 1):
        if not isinstance(desc, dict):
            raise L.BadImage(f"index.json entry {n}: not a descriptor")
        ann = desc.get("annotations") or {}
        tags = []
        name = ann.get(CONTAINERD_NAME) or ann.get(REF_NAME)
        if isinstance(name, str) and ("/" in name or ":" in name):
            tags.append(name)
        label = tags[0] if tags else f"#{n} ({str(desc.get('digest'))[:19]})"
        mdesc = _choose(src, desc, f"image {label}", os_, arch)
        if mdesc is None:
            continue
        raw = _read_blob(src, mdesc, f"image {label}")
        manifest = _json(raw, f"image {label} manifest")
        cdesc = manifest.get("config") if isinstance(manifest, dict) else None
        if not isinstance(cdesc, dict) or not isinstance(manifest.get("layers"), list):
            raise L.BadImage(f"image {label}: the manifest has no config or layers")
        config_raw = _read_blob(src, cdesc, f"image {label} config")
        descs = []
        for ldesc in manifest["layers"]:
            if not isinstance(ldesc, dict) or not isinstance(ldesc.get("digest"), str):
                raise L.BadImage(f"image {label}: a layer descriptor without a digest")
            descs.append((_blob_name(ldesc["digest"]), ldesc["digest"],
                          str(ldesc.get("mediaType", ""))))
        image_id = _stage(ld, src, config_raw, descs, tags, label)
        out.append({"id": image_id, "tags": tags})
    if not out:
        raise L.BadImage(f"index.json: no image for {os_}/{arch}")
    return out


def _choose(src: Source, desc: dict, what: str, os_: str, arch: str, depth: int = 0):
    """The manifest descriptor for this host under ``desc`` (None: another platform)."""
    plat = desc.get("platform")
    if isinstance(plat, dict) and (plat.get("os", os_) != os_
                                   or plat.get("architecture", arch) != arch):
        return None
    if desc.get("mediaType") in MT_INDEX:
        if depth > 4:
            raise L.BadImage(f"{what}: image indexes nested too deep")
        inner = _json(_read_blob(src, desc, what), f"{what} index")
        for d in inner.get("manifests") or []:
            if isinstance(d, dict):
                found = _choose(src, d, what, os_, arch, depth + 1)
                if found is not None:
                    return found
        raise L.BadImage(f"{what}: the image index has no image for {os_}/{arch}")
    return desc
