"""Tar member checks (pure logic, no extraction, no root)."""

from __future__ import annotations

import tarfile

import pytest

from mcd.templates import UnsafeArchive, check_member, check_symlink, member_name


def ti(name, type=tarfile.REGTYPE, linkname=""):
    t = tarfile.TarInfo(name)
    t.type = type
    t.linkname = linkname
    return t


@pytest.mark.parametrize("raw,norm", [
    ("bin/sh", "bin/sh"), ("./bin/sh", "bin/sh"), ("bin//sh", "bin/sh"), ("bin/./sh", "bin/sh"),
    ("./", None), (".", None), ("dir/", "dir"),
])
def test_member_names_normalize(raw, norm):
    assert member_name(raw) == norm


@pytest.mark.parametrize("raw", ["/etc/passwd", "../x", "a/../../x", "a/..", "..", "a\0b",
                                 "//abs"])
def test_unsafe_names(raw):
    with pytest.raises(UnsafeArchive):
        member_name(raw)


@pytest.mark.parametrize("name,target", [
    ("bin/sh", "busybox"), ("bin/sh", "/bin/busybox"), ("a/b/c", "../../x"),
    ("etc/mtab", "/proc/self/mounts"), ("a/l", "."), ("a/l", ".."),
])
def test_symlinks_inside(name, target):
    check_symlink(name, target)


@pytest.mark.parametrize("name,target", [
    ("l", ".."), ("l", "../etc"), ("a/l", "../.."), ("a/b/l", "../../../x"), ("l", ""),
    ("a/l", "b/../../../x"),
])
def test_symlinks_escaping(name, target):
    with pytest.raises(UnsafeArchive):
        check_symlink(name, target)


def test_devices_are_refused():
    for t in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        with pytest.raises(UnsafeArchive, match="device"):
            check_member(ti("dev/x", t))


def test_fifo_dir_file_are_fine():
    assert check_member(ti("f", tarfile.FIFOTYPE)) == "f"
    assert check_member(ti("./d/", tarfile.DIRTYPE)) == "d"
    assert check_member(ti("./", tarfile.DIRTYPE)) is None


def test_root_must_be_a_dir():
    with pytest.raises(UnsafeArchive):
        check_member(ti("./", tarfile.REGTYPE))


def test_hard_links_must_stay_inside():
    assert check_member(ti("b", tarfile.LNKTYPE, "./a")) == "b"
    for target in ("../a", "/etc/shadow", "./", "a/../../b"):
        with pytest.raises(UnsafeArchive):
            check_member(ti("b", tarfile.LNKTYPE, target))


def test_unsupported_types():
    with pytest.raises(UnsafeArchive):
        check_member(ti("x", b"Z"))
