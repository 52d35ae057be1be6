"""The layer store on the real filesystem, as root: whiteouts become overlayfs's own,
hostile or broken layers are refused naming the layer, and nothing is half-written."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile

import pytest
import zstandard

from mcd.images import layers as L
from mcd.images.store import ImageStore, Load



def tar_bytes(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            name, kind = e[0], e[1]
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.mode = 1_700_000_000, 0o755 if kind == "d" else 0o644
            data = b""
            if kind == "f":
                data = e[2] if len(e) > 2 else b""
                ti.size = len(data)
            elif kind == "d":
                ti.type = tarfile.DIRTYPE
            elif kind == "l":
                ti.type, ti.linkname = tarfile.SYMTYPE, e[2]
            elif kind == "h":
                ti.type, ti.linkname = tarfile.LNKTYPE, e[2]
            elif kind == "c":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            tf.addfile(ti, io.BytesIO(data) if kind == "f" else None)
    return buf.getvalue()


def digest(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def unpack(tmp_path, raw, blob=None, diff_id=None, blob_digest=None):
    blob = raw if blob is None else blob
    return L.unpack(io.BytesIO(blob), str(tmp_path / "stage"), diff_id=diff_id or digest(raw),
                    what="image t layer 1/1", blob_digest=blob_digest)


def test_whiteouts_become_overlay_whiteouts(tmp_path):
    raw = tar_bytes(("etc", "d"), ("etc/.wh.motd", "f"), ("data", "d"),
                    ("data/.wh..wh..opq", "f"), ("data/c", "f", b"c"), (".wh.gone", "f"),
                    ("x", "d"), ("x/.wh..wh.plnk", "d"))
    st = unpack(tmp_path, raw)
    diff = os.path.join(st.path, "diff")
    for wh in ("etc/motd", "gone"):
        s = os.lstat(os.path.join(diff, wh))
        assert stat.S_ISCHR(s.st_mode) and s.st_rdev == 0
    assert os.getxattr(os.path.join(diff, "data"), "trusted.overlay.opaque") == b"y"
    assert os.listdir(os.path.join(diff, "data")) == ["c"]
    assert os.listdir(os.path.join(diff, "x")) == []          # aufs metadata dropped
    assert st.meta["diff_id"] == digest(raw) and st.meta["compression"] == "none"


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_compressed_layers_verify_both_digests(tmp_path, kind):
    raw = tar_bytes(("a", "f", b"hello" * 1000))
    blob = gzip.compress(raw) if kind == "gzip" else zstandard.ZstdCompressor().compress(raw)
    st = unpack(tmp_path, raw, blob=blob, blob_digest=digest(blob))
    assert st.meta["compression"] == kind and st.meta["blob_digest"] == digest(blob)
    with open(os.path.join(st.path, "blob"), "rb") as f:
        assert f.read() == blob                   # kept byte for byte for image save


@pytest.mark.parametrize("entries,why", [
    ([("/etc/passwd", "f", b"x")], "absolute path"),
    ([("a/../../x", "f", b"x")], "'..' in path"),
    ([("evil", "l", "../../../etc")], "leaves the tree"),
    ([("a", "d"), ("a/b", "h", "/etc/shadow")], "absolute path"),
    ([("b", "h", "notthere")], "not in this layer"),
])
def test_unsafe_members_are_refused_and_nothing_stays(tmp_path, entries, why):
    raw = tar_bytes(*entries)
    with pytest.raises(L.BadImage) as e:
        unpack(tmp_path, raw)
    assert "image t layer 1/1" in str(e.value) and why in str(e.value)
    assert not os.path.exists(tmp_path / "stage")


def test_digest_mismatch_truncation_and_garbage(tmp_path):
    raw = tar_bytes(("a", "f", b"x" * 100000))
    with pytest.raises(L.BadImage, match="does not match its diff ID"):
        unpack(tmp_path, raw, diff_id=digest(b"other"))
    blob = gzip.compress(raw)
    with pytest.raises(L.BadImage, match="blob digest mismatch"):
        unpack(tmp_path, raw, blob=blob, blob_digest=digest(b"other"))
    with pytest.raises(L.BadImage, match="truncated or corrupt"):
        unpack(tmp_path, raw, blob=blob[: len(blob) // 2])
    zblob = zstandard.ZstdCompressor().compress(raw)
    with pytest.raises(L.BadImage, match="corrupt"):
        unpack(tmp_path, raw, blob=zblob[: len(zblob) // 2])
    with pytest.raises(L.BadImage):
        unpack(tmp_path, raw, blob=b"\x1f\x8b" + os.urandom(200))
    assert not os.path.exists(tmp_path / "stage")


def test_device_nodes_are_skipped_with_a_notice(tmp_path):
    raw = tar_bytes(("dev", "d"), ("dev/null", "c"), ("ok", "f", b"1"))
    st = unpack(tmp_path, raw)
    assert os.listdir(os.path.join(st.path, "diff", "dev")) == []
    assert st.notices and "/dev/null" in st.notices[0] and "device node" in st.notices[0]


def _image(raw_layers):
    cfg = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
           "rootfs": {"type": "layers", "diff_ids": [digest(r) for r in raw_layers]}}
    return json.dumps(cfg).encode()


def test_two_loads_of_one_layer_store_it_once_and_gc_follows_the_images(tmp_path):
    store = ImageStore(str(tmp_path / "images"))
    shared = tar_bytes(("shared", "f", b"s"))
    own = tar_bytes(("own", "f", b"o"))
    a, b = Load(store, "a"), Load(store, "b")
    for ld, layers, tag in ((a, [shared], "a:1"), (b, [shared, own], "b:1")):
        for r in layers:
            ld.add_layer(io.BytesIO(r), diff_id=digest(r), what="t")
        ld.add_image(_image(layers), [tag], "t")
    a.commit()
    b.commit()                 # its staged copy of the shared layer is dropped
    a.close(), b.close()
    assert sorted(os.listdir(store.layers_dir)) == sorted(L.hex_of(digest(r))
                                                          for r in (shared, own))
    assert os.listdir(store.tmp) == []
    assert len(store.lowers(store.resolve("b:1"))) == 2
    res = store.remove("b:1")
    assert res["deleted"][1:] == [digest(own)]     # the shared layer stays for a:1
    store.remove("a:1")
    assert os.listdir(store.layers_dir) == [] and os.listdir(store.links_dir) == []


def test_a_failed_layer_adds_nothing_of_the_archive(tmp_path):
    store = ImageStore(str(tmp_path / "images"))
    good = tar_bytes(("g", "f", b"g"))
    with store.load("x") as ld:
        ld.add_layer(io.BytesIO(good), diff_id=digest(good), what="t")
        with pytest.raises(L.BadImage):
            bad = tar_bytes(("/abs", "f", b""))
            ld.add_layer(io.BytesIO(bad), diff_id=digest(bad), what="t")
    assert os.listdir(store.layers_dir) == [] and os.listdir(store.tmp) == []
    assert store.ids() == []


FULL_DISK = r'''
import io, json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from mcd.images.store import ImageStore
from mcd.images import archive
from mcd.errors import KernelError
mnt = sys.argv[2]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", mnt], check=True)
store = ImageStore(os.path.join(mnt, "images"))
try:
    with store.load("t") as ld:
        archive.load(ld, sys.argv[3])
        ld.commit()
    print(json.dumps({"error": None}))
except KernelError as err:
    print(json.dumps({"error": str(err), "tmp": os.listdir(store.tmp),
                      "layers": os.listdir(store.layers_dir), "images": store.ids(),
                      "links": os.listdir(store.links_dir)}))
'''


def test_a_full_disk_mid_load_leaves_nothing(tmp_path):
    """A 1.2 MB tmpfs (in a private mount namespace) fills while the 2 MB busybox layer
    unpacks: one error naming the layer and ENOSPC, and no staging, layer or image left."""
    import shutil
    import subprocess
    import sys
    if not shutil.which("umoci"):
        pytest.skip("umoci builds the image")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__))))
    import imagefixtures as fx
    layout = fx.build_oci(str(tmp_path / "layout"), str(tmp_path / "work"))
    mnt = tmp_path / "small"
    mnt.mkdir()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c",
                        FULL_DISK, repo, str(mnt), layout], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["error"] and "layer 1/3" in out["error"] and "No space left" in out["error"]
    assert out["tmp"] == [] and out["layers"] == [] and out["images"] == [] and out["links"] == []


def test_a_commit_that_fails_after_publishing_layers_takes_them_back(tmp_path, monkeypatch):
    store = ImageStore(str(tmp_path / "images"))
    raw = tar_bytes(("f", "f", b"x"))
    ld = Load(store, "t")
    ld.add_layer(io.BytesIO(raw), diff_id=digest(raw), what="t")
    ld.add_image(_image([raw]), ["t:1"], "t")

    def fail(*a, **kw):
        raise OSError(28, "No space left on device")
    # Stands in for a disk that fills exactly between the layer renames and the image's
    # write: a real full disk cannot be timed to land there (the tmpfs test above covers
    # one that fills while a layer unpacks).
    monkeypatch.setattr(store, "_publish_image", fail)
    with pytest.raises(Exception, match="No space left"):
        ld.commit()
    ld.close()
    assert os.listdir(store.layers_dir) == [] and os.listdir(store.links_dir) == []
    assert store.ids() == [] and os.listdir(store.tmp) == []
