"""Detection and placement on fake cgroup trees (tmp dirs; every kernel path is a parameter)."""

import os

import pytest

from mcd.errors import InvalidArgument, Unsupported
from mcd.runtime import cgroups
from mcd.runtime.cgroups import detection as det

V1_CTRLS = ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"]


def _touch(path, text=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def make_hybrid(tmp_path, memsw=True, unified=True, cpu_cpuacct_together=False):
    """A tree shaped like this host's: v1 controllers + an empty cgroup2 at unified/."""
    root = tmp_path / "cg"
    lines = [f"31 23 0:28 / {root} rw,relatime - tmpfs tmpfs rw,mode=755"]
    n = 32
    ctrls = list(V1_CTRLS)
    if cpu_cpuacct_together:
        ctrls = [c for c in ctrls if c not in ("cpu", "cpuacct")] + ["cpu,cpuacct"]
    for c in ctrls:
        d = root / c
        d.mkdir(parents=True)
        _touch(str(d / "cgroup.procs"))
        lines.append(f"{n} 31 0:{n} / {d} rw,relatime - cgroup cgroup rw,{c}")
        n += 1
    _touch(str(root / "memory" / "memory.limit_in_bytes"), "9223372036854771712\n")
    if memsw:
        _touch(str(root / "memory" / "memory.memsw.limit_in_bytes"), "9223372036854771712\n")
    (root / "systemd").mkdir()
    lines.append(f"{n} 31 0:{n} / {root}/systemd rw,relatime - cgroup cgroup rw,name=systemd")
    if unified:
        (root / "unified").mkdir()
        _touch(str(root / "unified" / "cgroup.controllers"), "\n")
        lines.append(f"{n + 1} 31 0:{n + 1} / {root}/unified rw,relatime - cgroup2 cgroup2 rw")
    lines.append("22 1 8:1 / / rw,relatime - ext4 /dev/vda rw")
    mi = tmp_path / "mountinfo"
    mi.write_text("\n".join(lines) + "\n")
    pc = tmp_path / "proc_cgroup"
    pc.write_text("9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n")
    return dict(root=str(root), mounts=str(mi), proc_cgroup=str(pc),
                systemd_dir=str(tmp_path / "no-systemd"))


def make_v2(tmp_path, own="/system.slice/mcd.service", systemd=True, delegate_xattr=None,
            controllers="cpuset cpu io memory hugetlb pids rdma misc", swap=True):
    root = tmp_path / "cg"
    root.mkdir()
    _touch(str(root / "cgroup.controllers"), controllers + "\n")
    _touch(str(root / "cgroup.subtree_control"), controllers + "\n")
    unit = root / own.strip("/")
    unit.mkdir(parents=True, exist_ok=True)
    for f in ("cgroup.procs", "cgroup.freeze", "cgroup.kill", "memory.max"):
        _touch(str(unit / f))
    if swap:
        _touch(str(unit / "memory.swap.max"), "max\n")
    _touch(str(unit / "cgroup.controllers"), controllers + "\n")
    if delegate_xattr:
        os.setxattr(str(unit if not own.endswith("/supervisor") else unit.parent), delegate_xattr, b"1")
    mi = tmp_path / "mountinfo"
    mi.write_text(f"22 1 8:1 / / rw - ext4 /dev/vda rw\n"
                  f"30 22 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n")
    pc = tmp_path / "proc_cgroup"
    pc.write_text(f"0::{own}\n")
    sd = tmp_path / "run-systemd"
    if systemd:
        sd.mkdir()
    return dict(root=str(root), mounts=str(mi), proc_cgroup=str(pc), systemd_dir=str(sd),
                systemctl=None)


# ---------------------------------------------------------------- parsers

def test_parse_mountinfo_finds_cgroup_mounts_and_unescapes():
    text = ("35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
            "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
            "41 31 0:38 / /sys/fs/cgroup/uni\\040fied rw - cgroup2 cgroup2 rw\n"
            "22 1 8:1 / / rw,relatime - ext4 /dev/vda rw\n"
            "garbage line\n")
    ms = det.parse_mountinfo(text)
    assert [m.mount_point for m in ms] == ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu,cpuacct",
                                           "/sys/fs/cgroup/uni fied"]
    assert ms[1].options == ("rw", "cpu", "cpuacct")
    assert ms[2].fstype == "cgroup2"


def test_parse_mountinfo_with_optional_fields():
    text = "30 22 0:26 / /sys/fs/cgroup rw,nosuid shared:4 master:1 - cgroup2 cgroup2 rw,nsdelegate\n"
    (m,) = det.parse_mountinfo(text)
    assert m.mount_point == "/sys/fs/cgroup" and m.fstype == "cgroup2"


def test_parse_proc_cgroup():
    own = det.parse_proc_cgroup("4:memory:/process_api/x\n2:cpu,cpuacct:/a\n1:name=systemd:/s\n0::/u\n")
    assert own == {"memory": "/process_api/x", "cpu": "/a", "cpuacct": "/a",
                   "name=systemd": "/s", "": "/u"}


# ---------------------------------------------------------------- detection

def test_detect_hybrid_uses_v1_and_ignores_unified(tmp_path):
    lay = cgroups.detect(**make_hybrid(tmp_path))
    assert lay.mode == "hybrid" and lay.driver == "v1"
    assert lay.controllers == {"cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "blkio"}
    assert lay.swap_accounting is True
    assert lay.unified.endswith("/unified")
    assert lay.v1_mounts["memory"].endswith("/memory")
    assert lay.own["memory"] == "/process_api/abc"
    assert lay.delegated is False and lay.systemd is False


def test_detect_hybrid_without_swap_accounting(tmp_path):
    lay = cgroups.detect(**make_hybrid(tmp_path, memsw=False))
    assert lay.swap_accounting is False


def test_detect_pure_v1_and_comounted_cpu_cpuacct(tmp_path):
    lay = cgroups.detect(**make_hybrid(tmp_path, unified=False, cpu_cpuacct_together=True))
    assert lay.mode == "v1" and lay.driver == "v1"
    assert lay.v1_mounts["cpu"] == lay.v1_mounts["cpuacct"]
    mgr = cgroups.CgroupManager(layout=lay)
    # one directory serves both controllers
    assert mgr.bases["cpu"] == mgr.bases["cpuacct"]
    assert len(mgr.unique_bases()) == len(set(mgr.bases.values()))


def test_detect_v2_not_delegated_without_systemd_mark(tmp_path):
    lay = cgroups.detect(**make_v2(tmp_path))
    assert lay.mode == "v2" and lay.driver == "v2"
    assert lay.systemd is True and lay.delegated is False
    assert {"cpu", "cpuset", "memory", "pids", "io", "freezer", "cpuacct"} <= lay.controllers
    assert lay.swap_accounting is True and lay.v2_kill and lay.v2_freeze
    mgr = cgroups.CgroupManager(layout=lay)
    assert mgr.bases == {"": os.path.join(lay.root, "mini_container")}


@pytest.mark.parametrize("xattr", ["trusted.delegate", "user.delegate"])
def test_detect_v2_delegated_service(tmp_path, xattr):
    try:
        kw = make_v2(tmp_path, delegate_xattr=xattr)
    except OSError as err:
        pytest.skip(f"this filesystem cannot hold the {xattr} xattr: {err}")
    lay = cgroups.detect(**kw)
    assert lay.delegated is True and lay.started_in_leaf is False
    assert lay.delegated_to == {"": "/system.slice/mcd.service"}
    mgr = cgroups.CgroupManager(layout=lay, delegation="yes")
    assert mgr.delegated and mgr.parent == "containers"
    assert mgr.bases[""] == os.path.join(lay.root, "system.slice/mcd.service/containers")
    # the daemon's default config name lands in the same place; other names are kept
    assert cgroups.CgroupManager(parent="mini_container", layout=lay, delegation="yes").bases == mgr.bases
    assert cgroups.CgroupManager(parent="mctest-1", layout=lay, delegation="yes").bases[""].endswith(
        "mcd.service/mctest-1")


def test_auto_delegation_stays_out_of_a_unit_that_could_not_restart(tmp_path):
    # Started in the unit root (no DelegateSubgroup=): moving ourselves to supervisor and
    # enabling controllers there would make systemd < 254 fail the next start of the unit.
    lay = cgroups.detect(**make_v2(tmp_path), delegated=True)
    mgr = cgroups.CgroupManager(layout=lay)
    assert not mgr.delegated
    assert mgr.bases[""] == os.path.join(lay.root, "mini_container")
    assert cgroups.CgroupManager(layout=lay, delegation="no").bases == mgr.bases


def test_auto_delegation_inside_a_unit_that_started_us_in_the_leaf(tmp_path):
    lay = cgroups.detect(**make_v2(tmp_path, own="/system.slice/mcd.service/supervisor"), delegated=True)
    assert lay.started_in_leaf
    mgr = cgroups.CgroupManager(layout=lay)
    assert mgr.delegated and mgr.bases[""] == os.path.join(lay.root, "system.slice/mcd.service/containers")


def test_delegation_policy_checked(tmp_path):
    lay = cgroups.detect(**make_v2(tmp_path))       # not delegated
    with pytest.raises(InvalidArgument, match="not in a systemd unit with Delegate=yes"):
        cgroups.CgroupManager(layout=lay, delegation="yes")
    with pytest.raises(InvalidArgument, match="auto, yes or no"):
        cgroups.CgroupManager(layout=lay, delegation="maybe")


def test_detect_v2_recognises_our_supervisor_leaf(tmp_path):
    lay = cgroups.detect(**make_v2(tmp_path, own="/system.slice/mcd.service/supervisor"), delegated=True)
    assert lay.delegated_to == {"": "/system.slice/mcd.service"}


def test_detect_v2_without_systemd_is_never_delegated(tmp_path):
    kw = make_v2(tmp_path, systemd=False)
    os.setxattr(os.path.join(kw["root"], "system.slice/mcd.service"), "user.delegate", b"1")
    assert cgroups.detect(**kw).delegated is False


def test_detect_v2_refuses_delegation_outside_a_unit(tmp_path):
    with pytest.raises(Unsupported, match="not a systemd unit"):
        cgroups.detect(**make_v2(tmp_path, own="/user.slice/session-1"), delegated=True)


def test_detect_v2_without_swap(tmp_path):
    lay = cgroups.detect(**make_v2(tmp_path, swap=False))
    assert lay.swap_accounting is False


def test_detect_v2_controllers_missing(tmp_path):
    lay = cgroups.detect(**make_v2(tmp_path, controllers="cpu pids"))
    assert "memory" not in lay.controllers and "cpu" in lay.controllers


def test_detect_driver_override_on_hybrid_uses_unified(tmp_path):
    lay = cgroups.detect(**make_hybrid(tmp_path), driver="v2")
    assert lay.mode == "hybrid" and lay.driver == "v2"
    assert lay.controllers <= {"cpuacct", "freezer"}   # the unified mount has no controllers


def test_detect_nothing_mounted(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text("22 1 8:1 / / rw - ext4 /dev/vda rw\n")
    with pytest.raises(Unsupported, match="no cgroup filesystem"):
        cgroups.detect(root=str(tmp_path), mounts=str(mi), proc_cgroup=str(mi))


def test_detect_ignores_mounts_outside_root(tmp_path):
    kw = make_hybrid(tmp_path)
    with open(kw["mounts"], "a") as f:
        f.write("99 1 0:99 / /elsewhere/cgroup2 rw - cgroup2 cgroup2 rw\n")
    assert cgroups.detect(**kw).unified == os.path.join(kw["root"], "unified")


def test_kernel_version_compare():
    assert det._kernel_at_least(5, 2, "6.18.44-fc-v657")
    assert det._kernel_at_least(5, 14, "5.14.0-rc1")
    assert not det._kernel_at_least(5, 14, "5.10.0-21-amd64")


def test_layout_to_dict_is_json_friendly(tmp_path):
    import json
    d = cgroups.detect(**make_hybrid(tmp_path)).to_dict()
    assert json.loads(json.dumps(d))["controllers"] == sorted(d["controllers"])


@pytest.mark.parametrize("parent", ["", "a/../b", "..", "/abs", "a//b", "supervisor", "supervisor/x",
                                    "x" * 200, 5])
def test_bad_parent_refused(tmp_path, parent):
    lay = cgroups.detect(**make_hybrid(tmp_path))
    with pytest.raises(InvalidArgument, match="cgroup parent"):
        cgroups.CgroupManager(parent=parent, layout=lay)


def test_v1_placement_at_root_of_each_hierarchy(tmp_path):
    lay = cgroups.detect(**make_hybrid(tmp_path))
    mgr = cgroups.CgroupManager(parent="mctest-x", layout=lay)
    for c in ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"):
        assert mgr.bases[c] == os.path.join(lay.root, c, "mctest-x")
    # never inside the cgroup the shell runs in (memory:/process_api/abc)
    assert "process_api" not in mgr.bases["memory"]


def test_nested_parent(tmp_path):
    lay = cgroups.detect(**make_hybrid(tmp_path))
    mgr = cgroups.CgroupManager(parent="mctest-x/inner", layout=lay)
    assert mgr.bases["memory"] == os.path.join(lay.root, "memory", "mctest-x", "inner")
    assert mgr._levels(mgr.bases["memory"]) == [os.path.join(lay.root, "memory", "mctest-x"),
                                                mgr.bases["memory"]]


def _fake_systemctl(tmp_path, answer):
    script = tmp_path / "systemctl"
    script.write_text(f"#!/bin/sh\n[ \"$*\" = \"show --property=Delegate --value mcd.service\" ] "
                      f"&& echo {answer} && exit 0\nexit 1\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("answer, delegated", [("yes", True), ("no", False)])
def test_detect_v2_asks_systemctl_when_no_xattr(tmp_path, answer, delegated):
    kw = make_v2(tmp_path)
    kw["systemctl"] = _fake_systemctl(tmp_path, answer)
    assert cgroups.detect(**kw).delegated is delegated
