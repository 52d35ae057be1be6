"""Templates on the real filesystem, as root (owners, modes, setuid bits are kept).

Hostile tarballs are refused and write nothing outside the templates dir.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import tarfile
import uuid

import pytest

from mcd import errors
from mcd.templates import TemplateStore, UnsafeArchive

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mctestlib import debootstrap_like_tar  # noqa: E402



@pytest.fixture
def store(tmp_path):
    return TemplateStore(str(tmp_path / "templates"))


def add(tf: tarfile.TarFile, name: str, *, type=tarfile.REGTYPE, data=b"", mode=0o644,
        linkname="", uid=0, gid=0, devmajor=0, devminor=0):
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.linkname = linkname
    ti.devmajor, ti.devminor = devmajor, devminor
    ti.mtime = 1_700_000_000
    if type == tarfile.REGTYPE:
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    else:
        tf.addfile(ti)


def make_tar(path, entries, mode="w"):
    with tarfile.open(path, mode) as tf:
        for e in entries:
            add(tf, **e)
    return str(path)


GOOD = [
    {"name": "./", "type": tarfile.DIRTYPE, "mode": 0o755},
    {"name": "./bin", "type": tarfile.DIRTYPE, "mode": 0o755},
    {"name": "./bin/tool", "data": b"#!/bin/sh\necho tool\n", "mode": 0o755},
    {"name": "./bin/suid", "data": b"x", "mode": 0o4755, "uid": 0},
    {"name": "./bin/sh", "type": tarfile.SYMTYPE, "linkname": "/bin/tool"},
    {"name": "./bin/rel", "type": tarfile.SYMTYPE, "linkname": "tool"},
    {"name": "./bin/hard", "type": tarfile.LNKTYPE, "linkname": "./bin/tool"},
    {"name": "./home/user/file", "data": b"mine", "uid": 1000, "gid": 1000, "mode": 0o600},
    {"name": "./etc/mtab", "type": tarfile.SYMTYPE, "linkname": "/proc/self/mounts"},
    {"name": "./ro", "type": tarfile.DIRTYPE, "mode": 0o555},
    {"name": "./ro/inside", "data": b"y"},
    {"name": "./fifo", "type": tarfile.FIFOTYPE, "mode": 0o600},
]


@pytest.mark.parametrize("mode,ext", [("w", "tar"), ("w:gz", "tar.gz"), ("w:xz", "tar.xz")])
def test_import_good_archive(store, tmp_path, mode, ext):
    archive = make_tar(tmp_path / f"good.{ext}", GOOD, mode)
    meta = store.import_tar("good", archive)
    root = store.rootfs_path("good")
    assert meta["name"] == "good" and meta["size"] > 0
    assert open(os.path.join(root, "bin/tool")).read().startswith("#!/bin/sh")
    st = os.stat(os.path.join(root, "bin/suid"))
    assert stat.S_IMODE(st.st_mode) == 0o4755          # mode bits kept
    assert os.readlink(os.path.join(root, "bin/sh")) == "/bin/tool"
    assert os.stat(os.path.join(root, "bin/hard")).st_ino == \
        os.stat(os.path.join(root, "bin/tool")).st_ino
    st = os.stat(os.path.join(root, "home/user/file"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o600)
    assert stat.S_IMODE(os.stat(os.path.join(root, "ro")).st_mode) == 0o555
    assert not os.path.lexists(os.path.join(root, "fifo"))     # skipped, and said so
    assert meta["skipped"] == ["/fifo"] and meta["notice"].startswith("skipped 1 ")
    assert "skipped" not in store.info("good")                  # not stored
    assert [t["name"] for t in store.list()] == ["good"]


BAD = {
    "dotdot": [{"name": "../evil", "data": b"x"}],
    "dotdot-inner": [{"name": "a/../../evil", "data": b"x"}],
    "absolute": [{"name": "/tmp/evil", "data": b"x"}],
    "symlink-escape": [{"name": "up", "type": tarfile.SYMTYPE, "linkname": "../../../.."}],
    "symlink-escape-deep": [{"name": "a/b/up", "type": tarfile.SYMTYPE,
                             "linkname": "../../../etc/passwd"}],
    "hardlink-escape": [{"name": "h", "type": tarfile.LNKTYPE, "linkname": "../../etc/passwd"}],
    "hardlink-absolute": [{"name": "h", "type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}],
    "char-device-escaping": [{"name": "../dev/mem", "type": tarfile.CHRTYPE, "devmajor": 1,
                              "devminor": 1}],
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_hostile_archive_is_refused_and_writes_nothing(store, tmp_path, case):
    archive = make_tar(tmp_path / "bad.tar", [{"name": "ok", "data": b"first"}] + BAD[case])
    with pytest.raises(UnsafeArchive) as ei:
        store.import_tar("bad", archive)
    assert ei.value.http_status == 400 and "tar member" in str(ei.value)
    assert not store.exists("bad")
    assert [n for n in os.listdir(store.dir) if not n.startswith(".lock")] == []
    assert not os.path.exists(tmp_path / "evil")


def test_write_through_an_absolute_symlink_is_refused(store, tmp_path):
    """An absolute link is fine inside a container, but extraction never follows it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = make_tar(tmp_path / "sneaky.tar", [
        {"name": "d", "type": tarfile.SYMTYPE, "linkname": str(outside)},
        {"name": "d/pwned", "data": b"x"},
    ])
    with pytest.raises(UnsafeArchive):
        store.import_tar("sneaky", archive)
    assert list(outside.iterdir()) == []
    assert not store.exists("sneaky")


def test_file_replacing_a_symlink_does_not_follow_it(store, tmp_path):
    outside = tmp_path / "victim"
    outside.write_text("original")
    archive = make_tar(tmp_path / "swap.tar", [
        {"name": "x", "type": tarfile.SYMTYPE, "linkname": str(outside)},
        {"name": "x", "data": b"overwritten?"},
    ])
    store.import_tar("swap", archive)
    assert outside.read_text() == "original"
    root = store.rootfs_path("swap")
    assert not os.path.islink(os.path.join(root, "x"))
    assert open(os.path.join(root, "x")).read() == "overwritten?"


def test_import_from_a_pipe(store, tmp_path):
    """The daemon gets the archive as an fd from the client: it may be a pipe."""
    import threading
    archive = make_tar(tmp_path / "good.tar.gz", GOOD, "w:gz")
    r, w = os.pipe()

    def feed():
        with open(archive, "rb") as f, os.fdopen(w, "wb") as out:
            out.write(f.read())

    t = threading.Thread(target=feed)
    t.start()
    try:
        meta = store.import_tar("piped", f"/proc/self/fd/{r}")
    finally:
        t.join()
        os.close(r)
    assert meta["source"] == "tar:stream"
    assert os.path.islink(os.path.join(store.rootfs_path("piped"), "bin/sh"))
    assert not [n for n in os.listdir(store.dir) if n.startswith(".spool")]


def test_not_an_archive(store, tmp_path):
    p = tmp_path / "junk.tar"
    p.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(errors.InvalidArgument) as ei:
        store.import_tar("junk", str(p))
    assert str(ei.value) == (f"cannot read archive {p}: not a tar archive "
                             "(plain, gzip, bzip2 or xz)")
    assert not store.exists("junk")


def test_names_are_validated(store, tmp_path):
    archive = make_tar(tmp_path / "good.tar", GOOD)
    for bad in ("bad\n", "../x", "", "-x", "a" * 64):
        with pytest.raises(errors.InvalidArgument):
            store.import_tar(bad, archive)


def test_duplicate_name_conflicts(store, tmp_path):
    archive = make_tar(tmp_path / "good.tar", GOOD)
    store.import_tar("dup", archive)
    with pytest.raises(errors.Conflict):
        store.import_tar("dup", archive)


def test_minimal_template(store):
    meta = store.ensure_minimal()
    root = store.rootfs_path("minimal")
    assert meta["source"].startswith("busybox:")
    for d in ("bin", "lib", "proc", "sys", "dev", "etc", "root", "tmp"):
        assert os.path.isdir(os.path.join(root, d)), d
    assert stat.S_IMODE(os.stat(os.path.join(root, "tmp")).st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(os.path.join(root, "root")).st_mode) == 0o700
    assert os.readlink(os.path.join(root, "bin/sh")) == "/bin/busybox"
    assert open(os.path.join(root, "etc/passwd")).read().startswith("root:x:0:0:")
    assert "root:x:0:" in open(os.path.join(root, "etc/group")).read()
    assert store.ensure_minimal() == meta        # idempotent


def test_rootfs_path_builds_minimal_on_first_use(store):
    assert not store.exists("minimal")
    assert os.path.isfile(os.path.join(store.rootfs_path("minimal"), "bin/busybox"))


def test_create_from_dir_and_remove(store, tmp_path):
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "x").write_text("x")
    os.chmod(src / "bin" / "x", 0o4711)
    os.symlink("/etc/passwd", src / "link")
    os.chown(src / "bin" / "x", 12, 34)
    os.chmod(src / "bin" / "x", 0o4711)
    store.create_from_dir("fromdir", str(src))
    root = store.rootfs_path("fromdir")
    st = os.stat(os.path.join(root, "bin/x"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (12, 34, 0o4711)
    assert os.readlink(os.path.join(root, "link")) == "/etc/passwd"
    listed = {t["name"]: t for t in store.list()}
    assert listed["fromdir"]["size"] > 0
    with pytest.raises(errors.Conflict, match="web"):
        store.remove("fromdir", users=lambda name: ["web"] if name == "fromdir" else [])
    assert store.exists("fromdir")
    store.remove("fromdir", users=lambda name: [])
    assert not store.exists("fromdir")
    assert [n for n in os.listdir(store.dir) if not n.startswith(".lock")] == []
    with pytest.raises(errors.NotFound):
        store.remove("fromdir", users=lambda name: [])


def test_create_from_dir_skips_devices_fifos_sockets(store, tmp_path):
    import socket
    src = tmp_path / "src"
    (src / "dev").mkdir(parents=True)
    (src / "etc").mkdir()
    (src / "etc/hostname").write_text("x\n")
    os.mknod(src / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(src / "dev/loop0", 0o660 | stat.S_IFBLK, os.makedev(7, 0))
    os.mkfifo(src / "dev/initctl")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "dev/log"))
    sock.close()
    meta = store.create_from_dir("dev", str(src))
    assert sorted(meta["skipped"]) == ["/dev/initctl", "/dev/log", "/dev/loop0", "/dev/null"]
    root = store.rootfs_path("dev")
    assert os.listdir(os.path.join(root, "dev")) == []
    assert open(os.path.join(root, "etc/hostname")).read() == "x\n"


def test_debootstrap_like_archive_imports_and_runs(store, tmp_path, run_container):
    name = "deb" + uuid.uuid4().hex[:4]
    archive = str(tmp_path / "debian12-minbase.tar.gz")
    expected = debootstrap_like_tar(archive)
    meta = store.import_tar(name, archive)
    assert meta["skipped"] == expected == [
        "/dev/console", "/dev/full", "/dev/null", "/dev/ptmx", "/dev/random", "/dev/tty",
        "/dev/urandom", "/dev/zero", "/dev/loop0", "/dev/initctl"]
    assert meta["notice"] == ("skipped 10 device nodes and FIFOs (the runtime makes /dev): "
                              "/dev/console, /dev/full, /dev/null, /dev/ptmx, /dev/random, "
                              "/dev/tty, /dev/urandom, /dev/zero and 2 more")
    root = store.rootfs_path(name)
    assert sorted(os.listdir(os.path.join(root, "dev"))) == ["fd", "pts", "shm", "stdin"]
    r = run_container(["sh", "-c", "cat /etc/os-release; echo x > /dev/null && "
                       "head -c 4 /dev/zero | wc -c; test -c /dev/tty && echo tty"],
                      lower=root)
    assert r.code == 0, r.stderr
    assert r.stdout.splitlines() == ["ID=debian", 'VERSION_ID="12"', "4", "tty"]


def test_container_starts_from_an_imported_template(store, tmp_path, run_container):
    """A docker-export-like tree: busybox at /bin/busybox and a sh symlink."""
    with open("/bin/busybox", "rb") as f:
        bb = f.read()
    archive = make_tar(tmp_path / "export.tar", [
        {"name": "bin/busybox", "data": bb, "mode": 0o755},
        {"name": "bin/sh", "type": tarfile.SYMTYPE, "linkname": "/bin/busybox"},
        {"name": "etc/os-release", "data": b"ID=imported\n"},
    ])
    store.import_tar("imported" + uuid.uuid4().hex[:4], archive)
    name = store.list()[0]["name"]
    r = run_container(["sh", "-c", "cat /etc/os-release; ls -d /proc/1"],
                      lower=store.rootfs_path(name))
    assert r.code == 0, r.stderr
    assert r.stdout.splitlines() == ["ID=imported", "/proc/1"]
