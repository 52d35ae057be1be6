"""Issue 11 item 2: every writer on a full disk fails with ENOSPC and leaves no temporary
file behind. Each test mounts a small tmpfs of its own (real kernel, real ENOSPC), fills it
and checks what is left in it; the mount is removed at teardown."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import tarfile
import tempfile

import pytest

from mcd.errors import KernelError, MCError
from mcd.runtime import monitor
from mcd.runtime.logs import LogWriter, read
from mcd.store import Store
from mcd.templates import TemplateStore
from mcd.web.security import load_or_create_token



@pytest.fixture
def small_fs():
    """A 1 MiB tmpfs on a private temp dir; unmounted and removed at teardown."""
    d = tempfile.mkdtemp(prefix="mctest-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "mctest-full", d],
                   check=True)
    try:
        yield d
    finally:
        # lazily if a failing writer still holds a file open in it: never leave the mount
        if subprocess.run(["umount", d]).returncode != 0:
            subprocess.run(["umount", "-l", d], check=True)
        os.rmdir(d)


def fill(d: str) -> None:
    """Write one filler file until the kernel says ENOSPC (pages, then bytes)."""
    fd = os.open(os.path.join(d, ".filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (b"\0" * 65536, b"\0" * 4096, b"\0"):
            while True:
                try:
                    if os.write(fd, chunk) < len(chunk):
                        break
                except OSError as err:
                    assert err.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    with pytest.raises(OSError) as ei:     # really full: a new file gets no page
        with open(os.path.join(d, "probe"), "wb") as f:
            f.write(b"x" * 4096)
    assert ei.value.errno == errno.ENOSPC
    os.unlink(os.path.join(d, "probe"))


def everything(d: str) -> set[str]:
    out = set()
    for dirpath, dirs, files in os.walk(d):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(dirpath, n), d))
    return out - {".filler"}


def tmp_files(d: str) -> list[str]:
    return sorted(p for p in everything(d) if ".tmp" in p or ".new" in p or ".spool" in p)


# ---------------------------------------------------------------- state and config

@pytest.mark.parametrize("which", ["state", "config"])
def test_store_writes(small_fs, which):
    store = Store(small_fs)
    cid = "c" * 64
    store.create(cid, {"spec": {"name": "x"}}, {"status": "created"})
    before = everything(small_fs)
    fill(small_fs)
    write = store.write_state if which == "state" else store.write_config
    with pytest.raises(KernelError) as ei:
        write(cid, {"status": "stopped", "pad": "x" * 8192})
    path = os.path.join(small_fs, "containers", cid, f"{which}.json")
    assert str(ei.value) == f"write {path}: No space left on device"
    assert tmp_files(small_fs) == []
    assert everything(small_fs) == before
    # the old file is whole
    old = store.read_state(cid) if which == "state" else store.read_config(cid)
    assert old in ({"status": "created"}, {"spec": {"name": "x"}})


def test_store_create(small_fs):
    store = Store(small_fs)
    fill(small_fs)
    with pytest.raises(KernelError) as ei:
        store.create("d" * 64, {"spec": {"name": "x", "pad": "y" * 8192}}, {"status": "created"})
    assert "No space left on device" in str(ei.value)
    assert everything(small_fs) == {"containers"}


# ---------------------------------------------------------------- the monitor's exit.json

def test_exit_json(small_fs):
    path = os.path.join(small_fs, "exit.json")
    fill(small_fs)
    with pytest.raises(OSError) as ei:
        monitor.write_json_atomic(path, {"exit_code": 0, "pad": "z" * 8192})
    assert ei.value.errno == errno.ENOSPC
    assert everything(small_fs) == set()


# ---------------------------------------------------------------- the dashboard token

def test_dashboard_token(small_fs):
    fill(small_fs)
    # a token is short; on a full tmpfs even its first page is refused
    with pytest.raises(KernelError) as ei:
        load_or_create_token(small_fs)
    assert str(ei.value).endswith("dashboard.token: No space left on device")
    assert everything(small_fs) == set()


# ---------------------------------------------------------------- template metadata and trees

def _tar_bytes(size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("etc/hostname", b"t\n"), ("big", b"\1" * size)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_template_import_and_create(small_fs, tmp_path):
    templates = TemplateStore(os.path.join(small_fs, "templates"))
    archive = tmp_path / "t.tar"
    archive.write_bytes(_tar_bytes(2 << 20))       # bigger than the whole filesystem
    src = tmp_path / "tree"
    src.mkdir()
    (src / "big").write_bytes(b"\2" * (2 << 20))
    for build in (lambda: templates.import_tar("t1", str(archive)),
                  lambda: templates.create_from_dir("t2", str(src))):
        with pytest.raises(MCError) as ei:
            build()
        assert "No space left on device" in str(ei.value)
        assert tmp_files(small_fs) == [] and templates.list() == []
    # streamed import (a pipe): the spool file goes too
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.write(w, _tar_bytes(2 << 20))
        finally:
            os._exit(0)
    os.close(w)
    try:
        with pytest.raises(MCError) as ei:
            templates.import_tar("t3", f"/proc/self/fd/{r}")
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    assert "No space left on device" in str(ei.value)
    assert everything(small_fs) <= {"templates", "templates/.lock"}


def test_template_metadata_on_a_full_disk(small_fs, tmp_path, monkeypatch):
    """template.json is the last file of a build: fill the disk just before it."""
    templates = TemplateStore(os.path.join(small_fs, "templates"))
    src = tmp_path / "tree"
    src.mkdir()
    (src / "f").write_text("x")
    import mcd.templates as tm
    real = tm.tree_size

    def size_then_fill(path):
        n = real(path)
        fill(small_fs)
        return n
    monkeypatch.setattr(tm, "tree_size", size_then_fill)
    with pytest.raises(MCError) as ei:
        templates.create_from_dir("meta", str(src))
    assert "No space left on device" in str(ei.value)
    assert everything(small_fs) <= {"templates", "templates/.lock"}


# ---------------------------------------------------------------- logs

def test_log_writer(small_fs):
    path = os.path.join(small_fs, "container.log")
    log = LogWriter(path, max_size=64 * 1024, max_files=2)
    log.write("stdout", b"before\n")
    fill(small_fs)
    with pytest.raises(OSError) as ei:
        log.write("stdout", b"y" * 10000 + b"\n")
    assert ei.value.errno == errno.ENOSPC
    log.write("stdout", b"z" * 10000)
    log.close()         # the flush fails on the full disk; close must not raise
    with open(path, "rb") as f:
        raw = f.read()
    assert raw.endswith(b"\n") and b"yyy" not in raw and b"zzz" not in raw   # no torn line
    assert [e["log"] for e in read(path)] == ["before\n"]
    assert everything(small_fs) == {"container.log"}
