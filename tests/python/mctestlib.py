"""Helpers shared by the test tiers: polling with a bound, finding what a private cgroup
parent still holds, and (as a pytest plugin) the tiers' marks and the one root rule."""

from __future__ import annotations

import os
import time

import pytest

CGROUP_ROOT = "/sys/fs/cgroup"


def wait_for(pred, timeout: float = 30.0, what: str = "condition", step: float = 0.05):
    """Poll ``pred`` until it is truthy. A generous bound, not a timing assertion: it only
    turns a hang into a failure that names what never happened."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def cgroup_dirs(parent: str, root: str = CGROUP_ROOT) -> list[str]:
    """The directories named ``parent`` at the top of each hierarchy (symlinked
    hierarchies such as cpu -> cpu,cpuacct are read once, through their target)."""
    out = []
    for ctrl in sorted(os.listdir(root)):
        base = os.path.join(root, ctrl)
        if os.path.islink(base):
            continue
        p = os.path.join(base, parent)
        if os.path.isdir(p):
            out.append(p)
    return out


def procs_under(path: str) -> list[int]:
    """Every pid in every cgroup.procs at or below ``path``."""
    pids = []
    for dirpath, _dirs, files in os.walk(path):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    pids += [int(x) for x in f.read().split()]
            except OSError:
                pass
    return pids


def debootstrap_like_tar(path: str) -> list[str]:
    """Write a gzipped root filesystem tarball with /dev as debootstrap leaves it (``tar -C
    root -czf FILE .``): ./-prefixed names, character and block device nodes, a FIFO, pts
    and shm dirs, /proc/self links. busybox stands in for the distribution's binaries (there
    is no network here to run debootstrap). Returns the paths an import must skip."""
    import io
    import tarfile

    def add(tf, name, type=tarfile.REGTYPE, data=b"", mode=0o644, linkname="", major=0, minor=0):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.linkname = type, mode, linkname
        ti.devmajor, ti.devminor = major, minor
        ti.mtime = 1_700_000_000
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data) if type == tarfile.REGTYPE else None)

    with open("/bin/busybox", "rb") as f:
        busybox = f.read()
    nodes = (("console", 5, 1, 0o600), ("full", 1, 7, 0o666), ("null", 1, 3, 0o666),
             ("ptmx", 5, 2, 0o666), ("random", 1, 8, 0o666), ("tty", 5, 0, 0o666),
             ("urandom", 1, 9, 0o666), ("zero", 1, 5, 0o666))
    with tarfile.open(path, "w:gz") as tf:
        add(tf, "./", tarfile.DIRTYPE, mode=0o755)
        add(tf, "./bin/", tarfile.DIRTYPE, mode=0o755)
        add(tf, "./bin/busybox", data=busybox, mode=0o755)
        add(tf, "./bin/sh", tarfile.SYMTYPE, linkname="busybox")
        add(tf, "./etc/", tarfile.DIRTYPE, mode=0o755)
        add(tf, "./etc/os-release", data=b'ID=debian\nVERSION_ID="12"\n')
        add(tf, "./dev/", tarfile.DIRTYPE, mode=0o755)
        for name, major, minor, mode in nodes:
            add(tf, f"./dev/{name}", tarfile.CHRTYPE, mode=mode, major=major, minor=minor)
        add(tf, "./dev/loop0", tarfile.BLKTYPE, mode=0o660, major=7)
        add(tf, "./dev/initctl", tarfile.FIFOTYPE, mode=0o600)
        add(tf, "./dev/pts/", tarfile.DIRTYPE, mode=0o755)
        add(tf, "./dev/shm/", tarfile.DIRTYPE, mode=0o1777)
        add(tf, "./dev/fd", tarfile.SYMTYPE, linkname="/proc/self/fd")
        add(tf, "./dev/stdin", tarfile.SYMTYPE, linkname="/proc/self/fd/0")
    return [f"/dev/{n[0]}" for n in nodes] + ["/dev/loop0", "/dev/initctl"]


# ------------------------------------------------------------------ the tiers' marks
# A pytest plugin too (pyproject: addopts = "-p mctestlib"): one place says which tier
# needs what, and one rule skips what needs root when not root.

TESTS = os.path.dirname(os.path.abspath(__file__))
TIER_MARKS = {"linux": ("root",), "integration": ("root", "integration"),
              "browser": ("root", "integration", "browser"),
              "fuzz": ("root", "integration", "fuzz")}


def pytest_collection_modifyitems(config, items):
    for item in items:
        rel = os.path.relpath(str(item.path), TESTS)
        for mark in TIER_MARKS.get(rel.split(os.sep)[0], ()):
            item.add_marker(getattr(pytest.mark, mark))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before any fixture: a test marked root is skipped when not root (it needs the real
    kernel: namespaces, cgroups, mounts)."""
    if item.get_closest_marker("root") is not None and os.geteuid() != 0:
        pytest.skip("needs root and the real kernel")
