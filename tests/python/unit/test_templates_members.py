"""Tar member checks (pure logic, no extraction, no root)."""

from __future__ import annotations

import tarfile

import pytest

from mcd.templates import (UnsafeArchive, check_member, check_symlink, filter_rootfs_members,
                           member_name, skipped_notice)


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


def test_devices_pass_the_safety_check():
    # filter_rootfs_members skips them; check_member only says whether they are safe
    for t in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        assert check_member(ti("./dev/x", t)) == "dev/x"
    with pytest.raises(UnsafeArchive):
        check_member(ti("../dev/x", tarfile.CHRTYPE))


def debootstrap_dev():
    """/dev as a debootstrap tarball carries it (tar -C root -cf x.tar .)."""
    return [ti("./", tarfile.DIRTYPE), ti("./dev/", tarfile.DIRTYPE),
            ti("./dev/null", tarfile.CHRTYPE), ti("./dev/zero", tarfile.CHRTYPE),
            ti("./dev/full", tarfile.CHRTYPE), ti("./dev/tty", tarfile.CHRTYPE),
            ti("./dev/loop0", tarfile.BLKTYPE), ti("./dev/initctl", tarfile.FIFOTYPE),
            ti("./dev/pts/", tarfile.DIRTYPE), ti("./dev/fd", tarfile.SYMTYPE, "/proc/self/fd"),
            ti("./dev/null2", tarfile.LNKTYPE, "./dev/null"),
            ti("./etc/hostname", tarfile.REGTYPE)]


def test_filter_skips_device_nodes_fifos_and_links_to_them():
    kept, skipped = filter_rootfs_members(debootstrap_dev())
    assert [n for _m, n in kept] == ["dev", "dev/pts", "dev/fd", "etc/hostname"]
    assert skipped == ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/loop0",
                       "/dev/initctl", "/dev/null2"]


def test_filter_still_refuses_what_is_unsafe():
    for bad in (ti("../etc/x", tarfile.REGTYPE), ti("/dev/null", tarfile.CHRTYPE),
                ti("up", tarfile.SYMTYPE, "../.."), ti("h", tarfile.LNKTYPE, "../../x"),
                ti("x", b"Z")):
        with pytest.raises(UnsafeArchive):
            filter_rootfs_members([ti("./ok", tarfile.REGTYPE), bad])


def test_a_later_file_replaces_a_skipped_node():
    kept, skipped = filter_rootfs_members([ti("n", tarfile.CHRTYPE), ti("n", tarfile.REGTYPE),
                                           ti("h", tarfile.LNKTYPE, "n")])
    assert [n for _m, n in kept] == ["n", "h"] and skipped == ["/n"]


def test_notice_is_one_line():
    assert skipped_notice([]) is None
    assert skipped_notice(["/dev/null"]) == \
        "skipped 1 device node or FIFO (the runtime makes /dev): /dev/null"
    many = [f"/dev/n{i}" for i in range(12)]
    line = skipped_notice(many)
    assert "\n" not in line and line.startswith("skipped 12 device nodes and FIFOs")
    assert line.endswith("/dev/n7 and 4 more")


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
