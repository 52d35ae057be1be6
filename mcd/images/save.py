"""Write images as one tar stream: an OCI image layout, a docker-save archive, or both
in one (as Docker 25+ writes them), so that `mcctl image load`, `docker load`,
`podman load` and `skopeo copy oci-archive:/docker-archive:` all read it.

    oci-layout, index.json           the OCI layout (format oci or both)
    manifest.json                    docker-save's index (format docker or both)
    blobs/sha256/<hex>               configs, manifests and layers, each once

Layers go out as the blobs they came in as (stored beside each layer), so their
digests, and the image IDs, survive a save -> load round trip.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time

from mcd.errors import InvalidArgument
from mcd.images import layers as L
from mcd.images import reference

FORMATS = ("both", "oci", "docker")


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), 0o644, mtime
    tf.addfile(ti, io.BytesIO(data))


def _add_dir(tf: tarfile.TarFile, name: str, mtime: int) -> None:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, mtime
    tf.addfile(ti)


def save(store, refs: list[str], out, fmt: str = "both") -> dict:
    """Write the images ``refs`` name to the binary stream ``out``."""
    if fmt not in FORMATS:
        raise InvalidArgument(f"image save: format {fmt!r} is not one of {', '.join(FORMATS)}")
    chosen: list[tuple[str, list[str]]] = []
    for ref in refs:
        image_id = store.resolve(ref)
        tags = []
        if not reference.looks_like_id(ref) or store._tag_of(ref, store._read_tags()):
            r = reference.parse(ref)
            if r.tag:
                tags.append(str(r))
        for existing in chosen:
            if existing[0] == image_id:
                existing[1].extend(t for t in tags if t not in existing[1])
                break
        else:
            chosen.append((image_id, tags))
    mtime = int(time.time())
    written: set[str] = set()
    index, manifest_json = [], []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        _add_dir(tf, "blobs", mtime)
        _add_dir(tf, "blobs/sha256", mtime)
        for image_id, tags in chosen:
            rec = store.get(image_id)
            config_raw = store.config_raw(image_id)
            if image_id not in written:
                _add_bytes(tf, f"blobs/sha256/{L.hex_of(image_id)}", config_raw, mtime)
                written.add(image_id)
            descs = []
            for diff_id in rec["layers"]:
                meta = store.layer_info(diff_id)
                digest = meta["blob_digest"]
                descs.append({"mediaType": meta.get("media_type") or
                              "application/vnd.oci.image.layer.v1.tar",
                              "digest": digest, "size": meta["blob_size"]})
                if digest in written:
                    continue
                ti = tarfile.TarInfo(f"blobs/sha256/{L.hex_of(digest)}")
                ti.size, ti.mode, ti.mtime = meta["blob_size"], 0o644, mtime
                with open(store.layer_blob(diff_id), "rb") as f:
                    tf.addfile(ti, f)
                written.add(digest)
            manifest = {"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                   "digest": image_id, "size": len(config_raw)},
                        "layers": descs}
            mraw = json.dumps(manifest, separators=(",", ":")).encode()
            mdigest = "sha256:" + hashlib.sha256(mraw).hexdigest()
            if mdigest not in written:
                _add_bytes(tf, f"blobs/sha256/{L.hex_of(mdigest)}", mraw, mtime)
                written.add(mdigest)
            for t in tags or [None]:
                desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": mdigest, "size": len(mraw)}
                if t:
                    r = reference.parse(t)
                    desc["annotations"] = {"io.containerd.image.name": str(r),
                                           "org.opencontainers.image.ref.name": r.tag}
                index.append(desc)
            manifest_json.append({"Config": f"blobs/sha256/{L.hex_of(image_id)}",
                                  "RepoTags": [reference.parse(t).familiar() for t in tags],
                                  "Layers": [f"blobs/sha256/{L.hex_of(d['digest'])}"
                                             for d in descs]})
        if fmt in ("oci", "both"):
            _add_bytes(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', mtime)
            _add_bytes(tf, "index.json", json.dumps(
                {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": index}).encode(), mtime)
        if fmt in ("docker", "both"):
            _add_bytes(tf, "manifest.json", json.dumps(manifest_json).encode(), mtime)
    return {"images": [{"id": i, "tags": [reference.parse(t).familiar() for t in ts]}
                       for i, ts in chosen], "format": fmt}
