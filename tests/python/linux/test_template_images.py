"""Templates as one-layer images (mcd.images.templates), on the real filesystem as root
(owners, modes, device nodes, hard links are real).

The reproducible layer tar, the one ingestion path (the tar goes through Load like any
layer), the template commands over the store, and the migration of template trees as the
old code left them: ``mcd.templates.TemplateStore``, the tree store every earlier version
wrote with (its on-disk format, ROOT/templates/NAME/{rootfs,template.json}, unchanged;
the integration tier runs the real old daemon of c0fe02f), including crashes between its
steps.
"""

from __future__ import annotations

import gzip
import bz2
import hashlib
import io
import lzma
import os
import shutil
import stat
import tarfile
import threading

import pytest

from mcd import errors
from mcd.images import store as store_mod
from mcd.images import templates as T
from mcd.images.store import ImageStore
from mcd.templates import TemplateStore


def make_tree(root: str) -> None:
    os.makedirs(os.path.join(root, "etc/sub"))
    os.makedirs(os.path.join(root, "bin"))
    with open(os.path.join(root, "etc/b"), "w") as f:
        f.write("b\n")
    with open(os.path.join(root, "etc/a"), "w") as f:
        f.write("a\n")
    os.link(os.path.join(root, "etc/a"), os.path.join(root, "bin/a-link"))
    os.symlink("../etc/a", os.path.join(root, "bin/sym"))
    os.chown(os.path.join(root, "etc/b"), 1234, 5678)
    os.chmod(os.path.join(root, "etc/b"), 0o4750)
    os.chmod(os.path.join(root, "etc/sub"), 0o1777)
    os.mknod(os.path.join(root, "etc/null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mkfifo(os.path.join(root, "etc/fifo"))
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (1_700_000_000, 1_700_000_000),
                     follow_symlinks=False)


@pytest.fixture
def tree(tmp_path):
    t = str(tmp_path / "tree")
    os.mkdir(t)
    make_tree(t)
    return t


@pytest.fixture
def env(tmp_path):
    legacy = TemplateStore(str(tmp_path / "root" / "templates"))
    images = ImageStore(str(tmp_path / "root" / "images"))
    return T.TemplateImages(lambda: images, legacy), images, legacy


def tar_of(tree, **kw) -> tuple[bytes, str, list]:
    out = io.BytesIO()
    diff_id, skipped = T.layer_tar(tree, out, **kw)
    return out.getvalue(), diff_id, skipped


def test_layer_tar_is_reproducible_and_keeps_what_it_should(tree, tmp_path):
    raw, diff_id, skipped = tar_of(tree)
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert skipped == ["/etc/fifo", "/etc/null"]
    assert tar_of(tree)[0] == raw                       # the same tree, the same bytes
    copy = str(tmp_path / "copy")                       # other inodes, same content
    os.mkdir(copy)
    make_tree(copy)
    assert tar_of(copy)[1] == diff_id
    members = tarfile.open(fileobj=io.BytesIO(raw)).getmembers()
    assert [m.name for m in members] == ["bin", "bin/a-link", "bin/sym", "etc", "etc/a",
                                         "etc/b", "etc/sub"]
    by = {m.name: m for m in members}
    assert by["bin/a-link"].isreg()                     # the first name in order: a file
    assert by["etc/a"].islnk() and by["etc/a"].linkname == "bin/a-link"
    assert by["bin/sym"].linkname == "../etc/a"
    assert (by["etc/b"].uid, by["etc/b"].gid, by["etc/b"].mode) == (1234, 5678, 0o4750)
    assert by["etc/sub"].mode == 0o1777
    assert all(m.uname == "" and m.gname == "" and m.mtime == 1_700_000_000 for m in members)
    # the same tree one second newer somewhere: another diff ID; a fixed mtime: one again
    os.utime(os.path.join(copy, "etc/a"), (1_700_000_001, 1_700_000_001))
    assert tar_of(copy)[1] != diff_id
    assert tar_of(copy, mtime=0)[1] == tar_of(tree, mtime=0)[1]


def test_hard_link_member_follows_sorted_order(tmp_path):
    t = str(tmp_path / "t")
    os.mkdir(t)
    with open(os.path.join(t, "z"), "w") as f:
        f.write("x")
    os.link(os.path.join(t, "z"), os.path.join(t, "a"))
    members = tarfile.open(fileobj=io.BytesIO(tar_of(t)[0])).getmembers()
    assert [(m.name, m.islnk(), m.linkname) for m in members] == [("a", False, ""),
                                                                  ("z", True, "a")]


def _layer_tree(images, image_id) -> str:
    diff = images.get(image_id)["layers"]
    assert len(diff) == 1
    return os.path.join(images.layers_dir, diff[0][7:], "diff")


def test_create_from_dir_is_one_layer_image_through_the_load_path(env, tree):
    ti, images, _ = env
    res = ti.create_from_dir("tpl", tree)
    assert res["notice"].startswith("skipped 2 device nodes and FIFOs")
    image_id = res["image"]
    assert images.resolve("tpl") == image_id
    rec = images.get(image_id)
    # the layer's diff ID is the reproducible tar's; re-tarring the unpacked layer gives it
    assert rec["layers"] == [tar_of(tree)[1]]
    assert tar_of(_layer_tree(images, image_id))[1] == rec["layers"][0]
    # the tar is the layer's blob (image save hands it out)
    with open(images.layer_blob(rec["layers"][0]), "rb") as f:
        assert f.read() == tar_of(tree)[0]
    cfg = images.config(image_id)
    assert cfg["config"] == {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:"
                                                    "/usr/sbin:/usr/bin:/sbin:/bin"],
                             "Labels": {T.LABEL: "tpl"}}
    assert cfg["os"] == "linux" and cfg["rootfs"]["diff_ids"] == rec["layers"]
    st = os.lstat(os.path.join(_layer_tree(images, image_id), "etc/b"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4750)
    assert [t["name"] for t in ti.list()] == ["tpl"]
    with pytest.raises(errors.Conflict, match="template 'tpl' already exists"):
        ti.create_from_dir("tpl", tree)
    assert os.listdir(images.tmp) == []


@pytest.mark.parametrize("kind", ["plain", "gzip", "bzip2", "xz", "stream"])
def test_import_every_compression_and_a_pipe(env, tree, tmp_path, kind):
    ti, images, _ = env
    raw = tar_of(tree)[0]
    data = {"plain": raw, "stream": raw, "gzip": gzip.compress(raw), "bzip2": bz2.compress(raw),
            "xz": lzma.compress(raw)}[kind]
    if kind == "stream":
        r, w = os.pipe()
        threading.Thread(target=lambda: (os.write(w, data), os.close(w)), daemon=True).start()
        path = f"/proc/self/fd/{r}"
    else:
        path = str(tmp_path / "t.tar")
        with open(path, "wb") as f:
            f.write(data)
    try:
        res = ti.import_tar("imp", path)
    finally:
        if kind == "stream":
            os.close(r)
    # the diff ID is the sha256 of the uncompressed archive, as docker import has it
    assert images.get(res["image"])["layers"] == ["sha256:" + hashlib.sha256(raw).hexdigest()]
    assert res["source"] == ("tar:stream" if kind == "stream" else "tar:t.tar")
    assert os.listdir(images.tmp) == []


def test_hostile_or_broken_archive_adds_nothing(env, tmp_path):
    ti, images, _ = env
    bad = str(tmp_path / "bad.tar")
    with tarfile.open(bad, "w") as tf:
        ti_ = tarfile.TarInfo("../escape")
        ti_.size = 1
        tf.addfile(ti_, io.BytesIO(b"x"))
    with pytest.raises(errors.UnsafeArchive, match=r"template evil: tar member '../escape'"):
        ti.import_tar("evil", bad)
    with open(bad, "wb") as f:
        f.write(gzip.compress(b"not a tar at all" * 100)[:40])
    with pytest.raises(errors.InvalidArgument, match="cannot read archive"):
        ti.import_tar("evil", bad)
    assert images.ids() == [] and os.listdir(images.layers_dir) == []
    assert os.listdir(images.tmp) == [] and not os.path.exists(str(tmp_path / "escape"))
    with pytest.raises(errors.InvalidArgument, match="image name is lowercase"):
        ti.import_tar("Upper", bad)


def test_minimal_is_built_once_and_reproducibly(env):
    ti, images, _ = env
    if not os.path.isfile(ti.busybox):
        pytest.fail("busybox-static is required (the Makefile installs it)")
    found = []
    threads = [threading.Thread(target=lambda: found.append(ti.image_id("minimal")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(found)) == 1 and images.ids() == found[:1]
    diff = images.get(found[0])["layers"]
    members = tarfile.open(images.layer_blob(diff[0])).getmembers()
    assert {m.mtime for m in members} == {0}
    assert ti.info("minimal")["source"] == f"busybox:{ti.busybox}"
    images.remove("minimal")
    again = ti.image_id("minimal")
    assert images.get(again)["layers"] == diff          # the same busybox, the same layer


def test_remove_refused_in_use_and_untags(env, tree):
    ti, images, _ = env
    image_id = ti.create_from_dir("tpl", tree)["image"]
    with pytest.raises(errors.Conflict, match='template "tpl" is used by container\\(s\\) c1'):
        ti.remove("tpl", lambda n: ["c1"])
    assert images.ids() == [image_id]
    ti.remove("tpl", lambda n: [])
    assert images.ids() == [] and ti.list() == []
    with pytest.raises(errors.NotFound):
        ti.remove("tpl", lambda n: [])


# ------------------------------------------------------------ migration

def old_templates(legacy: TemplateStore, tree: str) -> None:
    """Template trees as earlier versions wrote them: minimal, and one from a directory."""
    legacy.ensure_minimal()
    legacy.create_from_dir("fromdir", tree)


def test_migration_is_idempotent_and_keeps_trees_in_use(env, tree):
    ti, images, legacy = env
    old_templates(legacy, tree)
    created = legacy.info("fromdir")["created"]
    users = {"minimal": ["oldc"]}
    lines = ti.migrate(lambda n: users.get(n, []))
    assert lines[0].startswith("template fromdir: now image")
    assert "template fromdir: old tree removed (no container uses it)" in lines
    assert legacy.exists("minimal") and not legacy.exists("fromdir")
    assert legacy.info("minimal")["image"] == images.resolve("minimal")
    assert images.get(images.resolve("fromdir"))["created"] == created
    assert [t["name"] for t in ti.list()] == ["fromdir", "minimal"]
    assert ti.rootfs_path("minimal") == os.path.join(legacy.dir, "minimal", "rootfs")
    before = (images.ids(), images._read_tags())
    assert ti.migrate(lambda n: users.get(n, [])) == []       # nothing left to do
    assert (images.ids(), images._read_tags()) == before
    users.clear()                                           # the old container is gone
    assert ti.migrate(lambda n: []) == ["template minimal: old tree removed (no container "
                                        "uses it)"]
    assert os.listdir(legacy.dir) == [".lock"]
    with pytest.raises(errors.NotFound):
        ti.rootfs_path("minimal")


def test_a_crash_at_any_step_loses_nothing(env, tree, monkeypatch):
    ti, images, legacy = env
    old_templates(legacy, tree)
    # 1. dies in the commit: nothing published, the trees untouched
    real_commit = store_mod.Load.commit
    monkeypatch.setattr(store_mod.Load, "commit",
                        lambda self: (_ for _ in ()).throw(OSError(5, "EIO in test")))
    lines = ti.migrate(lambda n: [])
    assert all("not migrated" in line for line in lines) and len(lines) == 2
    assert images.ids() == [] and sorted(os.listdir(legacy.dir)) == [".lock", "fromdir",
                                                                      "minimal"]
    assert [t["name"] for t in ti.list()] == ["fromdir", "minimal"]     # still templates
    monkeypatch.setattr(store_mod.Load, "commit", real_commit)
    # 2. dies after the commit, before template.json says so: the image is there, the
    #    tree too; the next start makes the very same image (stored once) and goes on
    real_write = T.atomic_write_json
    monkeypatch.setattr(T, "atomic_write_json",
                        lambda *a, **k: (_ for _ in ()).throw(OSError(28, "ENOSPC in test")))
    ti.migrate(lambda n: [])
    first = sorted(images.ids())
    assert len(first) == 2 and sorted(os.listdir(legacy.dir)) == [".lock", "fromdir", "minimal"]
    monkeypatch.setattr(T, "atomic_write_json", real_write)
    ti.migrate(lambda n: [])
    assert sorted(images.ids()) == first and os.listdir(legacy.dir) == [".lock"]
    assert sorted(images._read_tags()) == ["docker.io/library/fromdir:latest",
                                           "docker.io/library/minimal:latest"]
    assert os.listdir(images.tmp) == []


def test_a_name_an_image_already_has_stays_a_tree(env, tree):
    ti, images, legacy = env
    legacy.create_from_dir("busybox", tree)
    other = ti.create_from_dir("other", tree)["image"]
    images.tag("other", "busybox")                  # e.g. a pulled busybox:latest
    lines = ti.migrate(lambda n: [])
    assert lines == ["template busybox: not migrated (the name 'busybox' is an image's tag "
                     f"already ({other[7:19]}): the template stays a tree); its tree stays "
                     "in use"]
    assert legacy.exists("busybox") and ti.unmigrated("busybox")
    shutil.rmtree(legacy.dir)


def test_a_template_name_is_not_moved_to_another_image(env, tree, tmp_path):
    """`run tpl` keeps running the template: a tag or a load naming tpl:latest for another
    image is refused (Conflict, nothing changed); other names, and the same image, are fine."""
    ti, images, _ = env
    tpl = ti.create_from_dir("tpl", tree)["image"]
    other_tree = str(tmp_path / "other")
    os.makedirs(os.path.join(other_tree, "x"))
    other = ti.create_from_dir("other", other_tree)["image"]
    with pytest.raises(errors.Conflict, match="tpl:latest is the template 'tpl': remove it "
                                              "first"):
        images.tag(other, "tpl")
    with pytest.raises(errors.Conflict, match="is the template 'tpl'"):
        images.tag(other, "tpl:latest")
    images.tag(other, "tpl:v2")                     # another tag of the name: not the template
    images.tag(tpl, "tpl")                          # the same image: nothing moves
    cfg = images.config_raw(other)
    with images.load("test") as ld:                 # a load tagging tpl:latest: refused whole
        ld.add_image(cfg, ["tpl:latest", "fresh:1"], "test image")
        with pytest.raises(errors.Conflict, match="is the template 'tpl'"):
            ld.commit()
    assert images.resolve("tpl") == tpl and not images.exists("fresh:1")
    ti.remove("tpl", lambda n: [])                  # freed: now the name can move
    images.tag(other, "tpl")
    assert images.resolve("tpl") == other and ti.info("other")["image"] == other
