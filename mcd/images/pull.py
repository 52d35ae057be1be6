"""Pull an image from a registry into the store, and the registry credentials.

A pull is a load whose blobs come over HTTP: the manifest (by tag or digest; an index
chooses the host's platform) and the config are read whole and checked against their
digests, then each layer the store lacks streams through the same Load as `image load`
(blob digest, diff ID, member rule), and commit publishes the image whole. A failure
anywhere, a full disk included, drops the staging dir: no partial image, no stray file.

Progress goes to ``progress(event)`` as dicts (the API streams them as NDJSON):
    {"type": "status", "message": ...}
    {"type": "layer", "layer": <12 hex>, "status": "exists"|"downloading"|"done",
     "current": bytes, "total": bytes}
Credentials: ROOT/auth.json, mode 0600, {registry: {"auth": base64(user:password)}},
written atomically; nothing else reads or logs them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time

from mcd.errors import InvalidArgument
from mcd.images import archive, reference
from mcd.images import layers as L
from mcd.images.registry import (MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX,
                                 MT_OCI_MANIFEST, Registry)
from mcd.store import atomic_write_json, read_json

PROGRESS_EVERY = 0.25       # seconds between two progress events of one layer


class _Progress:
    def __init__(self, src, emit, layer: str, total: int):
        self.src, self.emit, self.layer, self.total = src, emit, layer, total
        self.current = 0
        self.last = 0.0

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n if n and n > 0 else 1 << 20)
        self.current += len(data)
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY or not data:
            self.last = now
            self.emit({"type": "layer", "layer": self.layer, "status": "downloading",
                       "current": self.current, "total": self.total})
        return data


class Credentials:
    def __init__(self, root: str):
        self.path = os.path.join(root, "auth.json")

    def _read(self) -> dict:
        return read_json(self.path) or {}

    def get(self, registry: str) -> tuple[str, str] | None:
        entry = self._read().get(registry)
        if not entry:
            return None
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        return user, password

    def save(self, registry: str, user: str, password: str) -> None:
        data = self._read()
        data[registry] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        atomic_write_json(self.path, data, mode=0o600)

    def remove(self, registry: str) -> bool:
        data = self._read()
        if registry not in data:
            return False
        del data[registry]
        atomic_write_json(self.path, data, mode=0o600)
        return True


# A registry as login and logout take it: a host name or IPv4 address, or [IPv6], and a port.
# (DNS labels of at most 63 characters: a longer one fails in the IDNA codec, not as OSError.)
REGISTRY_RE = re.compile(r"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                         r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
                         r"|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")


def registry_of(text: str) -> str:
    """'localhost:5000', 'docker.io' from a login argument (a host or a full reference)."""
    text = text.strip().removeprefix("https://").removeprefix("http://").split("/")[0]
    if not text:
        raise InvalidArgument("login: a registry is required")
    port = text.rpartition("]")[2].rpartition(":")[2] if ":" in text.rpartition("]")[2] else ""
    if not REGISTRY_RE.fullmatch(text) or len(text) > 253 or (port and int(port) > 65535):
        raise InvalidArgument(f"login: {text!r} is not a registry (HOST[:PORT])")
    return "docker.io" if text in ("index.docker.io", "registry-1.docker.io") else text


def client_for(registry: str, creds: Credentials, insecure: list[str]) -> Registry:
    return Registry(registry, insecure=registry in (insecure or []),
                    credentials=creds.get(registry))


def login(registry: str, user: str, password: str, creds: Credentials,
          insecure: list[str]) -> None:
    """Check the credentials against the registry, then store them."""
    if not user or not password:
        raise InvalidArgument("login: a username and a password are required")
    reg = Registry(registry, insecure=registry in (insecure or []),
                   credentials=(user, password))
    reg.ping(f"login {registry}")
    creds.save(registry, user, password)


def _digest(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def pull(store, text: str, *, creds: Credentials, insecure: list[str],
         progress=lambda event: None) -> dict:
    ref = reference.parse(text)
    what = f"pull {ref.familiar()}"
    reg = client_for(ref.registry, creds, insecure)
    progress({"type": "status", "message": f"Pulling {ref.familiar()} from {ref.registry}"})
    raw, mt = reg.manifest(ref.repository, ref.digest or ref.tag, what)
    digest = _digest(raw)
    if ref.digest and digest != ref.digest:
        raise L.BadImage(f"{what}: the manifest does not match its digest (got {digest})")
    manifest = _json(raw, what)
    mt = manifest.get("mediaType") or mt
    os_, arch = archive.host_platform()
    if mt in (MT_OCI_INDEX, MT_DOCKER_LIST) or "manifests" in manifest:
        chosen = None
        for d in manifest.get("manifests") or []:
            p = d.get("platform") or {}
            if p.get("os", os_) == os_ and p.get("architecture", arch) == arch:
                chosen = d
                break
        if chosen is None:
            raise L.BadImage(f"{what}: no image for {os_}/{arch} in the index")
        raw, _mt = reg.manifest(ref.repository, chosen["digest"], what)
        if _digest(raw) != chosen["digest"]:
            raise L.BadImage(f"{what}: the manifest for {os_}/{arch} does not match its digest")
        manifest = _json(raw, what)
    elif mt not in (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST, ""):
        raise L.BadImage(f"{what}: unsupported manifest type {mt!r}")
    cdesc = manifest.get("config")
    layers = manifest.get("layers")
    if not isinstance(cdesc, dict) or not isinstance(layers, list):
        raise L.BadImage(f"{what}: the manifest has no config or layers")
    resp, conn = reg.blob(ref.repository, cdesc["digest"], what)
    try:
        config_raw = resp.read(archive.MAX_JSON + 1)
    finally:
        conn.close()
    if _digest(config_raw) != cdesc["digest"]:
        raise L.BadImage(f"{what}: config blob {cdesc['digest']} does not match its digest")
    from mcd.images.store import parse_config
    config = parse_config(config_raw, what)
    diff_ids = config["rootfs"]["diff_ids"]
    if len(diff_ids) != len(layers):
        raise L.BadImage(f"{what}: the manifest lists {len(layers)} layers, the config "
                         f"{len(diff_ids)}")
    tags = [str(ref)] if ref.tag else []
    with store.load(f"pull:{ref.familiar()}") as ld:
        n = len(layers)
        for i, (diff_id, desc) in enumerate(zip(diff_ids, layers), 1):
            short = desc["digest"][7:19]
            if ld.has_layer(diff_id):
                progress({"type": "layer", "layer": short, "status": "exists"})
                continue
            mtl = str(desc.get("mediaType", ""))
            lwhat = f"image {ref.familiar()} layer {i}/{n} ({diff_id[:19]})"
            if "nondistributable" in mtl or "foreign" in mtl:
                raise L.BadImage(f"{lwhat}: non-distributable layers are not supported")
            resp, conn = reg.blob(ref.repository, desc["digest"], lwhat)
            try:
                size = desc.get("size") if isinstance(desc.get("size"), int) else 0
                ld.add_layer(_Progress(resp, progress, short, size), diff_id=diff_id,
                             what=lwhat, blob_digest=desc["digest"], media_type=mtl)
            finally:
                conn.close()
            progress({"type": "layer", "layer": short, "status": "done",
                      "current": size, "total": size})
        image_id = ld.add_image(config_raw, tags, f"image {ref.familiar()}",
                                [f"{ref.name}@{digest}"])
        ld.commit()
        for n in ld.notices:
            progress({"type": "status", "message": n})
    return {"id": image_id, "tags": [ref.familiar()] if ref.tag else [],
            "digest": digest, "ref": ref.familiar()}


def _json(raw: bytes, what: str) -> dict:
    try:
        out = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise L.BadImage(f"{what}: the manifest is not JSON ({err})") from None
    if not isinstance(out, dict):
        raise L.BadImage(f"{what}: the manifest is not an object")
    return out
