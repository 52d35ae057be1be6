"""The v1 and v2 drivers on fake trees: stats, effective values, limit plans,
rollback, refusal of what the host cannot enforce. The real kernel is in
tests/python/linux/test_cgroups.py; here files are plain files in tmp dirs.
"""

import os

import pytest

from mcd.errors import InvalidArgument, KernelError, Unsupported
from mcd.runtime import cgroups
from mcd.runtime.cgroups.base import Features, StatReader, Write
from mcd.runtime.cgroups.v1 import CgroupV1
from mcd.runtime.cgroups.v2 import CgroupV2
from mcwire.spec import Resources

MiB = 1024 * 1024
UNLIMITED_V1 = "9223372036854771712\n"


def put(d, name, text):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "w") as f:
        f.write(text)


def get(d, name):
    with open(os.path.join(d, name)) as f:
        return f.read()


def fake_v1(tmp_path, cid="c1", swap=True, **overrides):
    ctrl = ["cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"]
    dirs = {c: str(tmp_path / c / "mini_container" / cid) for c in ctrl}
    files = {
        "cpu": {"cpu.shares": "1024\n", "cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n",
                "cpu.stat": "nr_periods 40\nnr_throttled 7\nthrottled_time 123456789\n"},
        "cpuacct": {"cpuacct.usage": "5000000000\n", "cpuacct.stat": "user 300\nsystem 100\n"},
        "cpuset": {"cpuset.cpus": "0-1\n"},
        "memory": {"memory.usage_in_bytes": "1048576\n", "memory.max_usage_in_bytes": "2097152\n",
                   "memory.limit_in_bytes": str(32 * MiB) + "\n",
                   "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"},
        "pids": {"pids.current": "3\n", "pids.max": "32\n"},
        "freezer": {"freezer.state": "THAWED\n"},
    }
    if swap:
        files["memory"]["memory.memsw.limit_in_bytes"] = str(32 * MiB) + "\n"
    for c, fs in files.items():
        for name, text in fs.items():
            put(dirs[c], name, overrides.get(name, text))
        put(dirs[c], "cgroup.procs", "")
    put(str(tmp_path / "cpuset" / "mini_container"), "cpuset.effective_cpus", "0-1\n")
    put(str(tmp_path / "cpuset" / "mini_container"), "cpuset.cpus", "0-1\n")
    feats = Features(controllers=set(ctrl), swap=swap, freeze=True)
    return CgroupV1(cid, dirs, feats)


def fake_v2(tmp_path, cid="c1", swap=True, controllers=("cpu", "cpuset", "memory", "pids")):
    d = str(tmp_path / "mini_container" / cid)
    files = {"cpu.weight": "100\n", "cpu.max": "max 100000\n",
             "cpu.stat": "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 9\n"
                         "nr_throttled 2\nthrottled_usec 77\n",
             "cpuset.cpus": "\n", "memory.max": "max\n", "memory.current": "4096\n",
             "memory.peak": "8192\n", "memory.events": "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n",
             "pids.current": "2\n", "pids.max": "max\n", "cgroup.procs": "",
             "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.freeze": "0\n"}
    if swap:
        files["memory.swap.max"] = "max\n"
    for name, text in files.items():
        put(d, name, text)
    put(str(tmp_path / "mini_container"), "cpuset.cpus.effective", "0-3\n")
    feats = Features(controllers=set(controllers) | {"cpuacct", "freezer"}, swap=swap, freeze=True)
    return CgroupV2(cid, d, feats)


# ---------------------------------------------------------------- stats and effective

def test_v1_stats(tmp_path):
    s = fake_v1(tmp_path).stats()
    assert s == {"cpu_usage_ns": 5_000_000_000, "cpu_user_ns": 300 * (10 ** 9 // os.sysconf("SC_CLK_TCK")),
                 "cpu_system_ns": 100 * (10 ** 9 // os.sysconf("SC_CLK_TCK")),
                 "memory_current": 1048576, "memory_peak": 2097152, "memory_limit": 32 * MiB,
                 "pids_current": 3, "pids_limit": 32, "oom_kills": 1, "cpu_periods": 40,
                 "throttled_periods": 7, "throttled_ns": 123456789}


def test_v1_stats_unlimited_and_missing_files(tmp_path):
    cg = fake_v1(tmp_path, **{"memory.limit_in_bytes": UNLIMITED_V1, "pids.max": "max\n"})
    os.unlink(os.path.join(cg.dirs["cpuacct"], "cpuacct.stat"))
    s = cg.stats()
    assert s["memory_limit"] is None and s["pids_limit"] is None
    assert s["cpu_user_ns"] is None and s["cpu_usage_ns"] == 5_000_000_000


def test_v2_stats(tmp_path):
    s = fake_v2(tmp_path).stats()
    assert s == {"cpu_usage_ns": 2_000_000, "cpu_user_ns": 1_500_000, "cpu_system_ns": 500_000,
                 "memory_current": 4096, "memory_peak": 8192, "memory_limit": None,
                 "pids_current": 2, "pids_limit": None, "oom_kills": 1, "cpu_periods": 9,
                 "throttled_periods": 2, "throttled_ns": 77_000}


def test_v2_stats_without_memory_peak(tmp_path):
    cg = fake_v2(tmp_path)
    os.unlink(os.path.join(cg.path, "memory.peak"))   # kernels before 5.19
    assert cg.stats()["memory_peak"] is None


def test_v1_effective_and_oom(tmp_path):
    cg = fake_v1(tmp_path, **{"cpu.cfs_quota_us": "50000\n", "pids.max": "max\n"})
    assert cg.effective() == {"cpu_shares": 1024, "cpu_quota": 50000, "cpu_period": 100000,
                              "cpuset_cpus": "0-1", "memory": 32 * MiB, "memory_swap": 32 * MiB,
                              "pids_limit": None}
    assert cg.oom_killed() == 1


def test_v2_effective_reads_back_in_docker_units(tmp_path):
    cg = fake_v2(tmp_path)
    put(cg.path, "cpu.weight", "39\n")
    put(cg.path, "cpu.max", "50000 100000\n")
    put(cg.path, "memory.max", str(64 * MiB))
    put(cg.path, "memory.swap.max", str(32 * MiB))
    put(cg.path, "pids.max", "32\n")
    e = cg.effective()
    assert e["cpu_weight"] == 39 and 1024 - 27 <= e["cpu_shares"] <= 1024
    assert (e["cpu_quota"], e["cpu_period"]) == (50000, 100000)
    assert e["memory"] == 64 * MiB and e["memory_swap"] == 96 * MiB and e["pids_limit"] == 32
    assert cg.oom_killed() == 1


# ---------------------------------------------------------------- writing limits

def test_v2_update_writes_converted_values(tmp_path):
    cg = fake_v2(tmp_path)
    cg.update(Resources(cpu_shares=1024, cpu_quota=50000, cpu_period=100000, cpuset_cpus="1-2",
                        memory=64 * MiB, memory_swap=96 * MiB, pids_limit=32))
    assert get(cg.path, "cpu.weight") == "39"
    assert get(cg.path, "cpu.max") == "50000 100000"
    assert get(cg.path, "cpuset.cpus") == "1-2"
    assert get(cg.path, "memory.max") == str(64 * MiB)
    assert get(cg.path, "memory.swap.max") == str(32 * MiB)
    assert get(cg.path, "pids.max") == "32"


def test_v2_full_update_resets_unset_limits_to_kernel_defaults(tmp_path):
    cg = fake_v2(tmp_path)
    cg.update(Resources(memory=64 * MiB, pids_limit=None))
    assert get(cg.path, "cpu.weight") == "100"
    assert get(cg.path, "cpu.max") == "max 100000"
    assert get(cg.path, "memory.swap.max") == "max"
    assert get(cg.path, "pids.max") == "max"


def test_update_only_touches_named_fields(tmp_path):
    cg = fake_v2(tmp_path)
    cg.update(Resources(memory=64 * MiB, pids_limit=7), only=["memory"])
    assert get(cg.path, "memory.max") == str(64 * MiB)
    assert get(cg.path, "pids.max") == "max\n"
    with pytest.raises(InvalidArgument, match="unknown resource fields"):
        cg.update(Resources(), only=["memroy"])


def test_v1_update_writes_files(tmp_path):
    cg = fake_v1(tmp_path)
    cg.update(Resources(cpu_shares=512, cpu_quota=25000, cpu_period=50000, memory=16 * MiB,
                        memory_swap=24 * MiB, pids_limit=-1))
    assert get(cg.dirs["cpu"], "cpu.shares") == "512"
    assert get(cg.dirs["cpu"], "cpu.cfs_quota_us") == "25000"
    assert get(cg.dirs["cpu"], "cpu.cfs_period_us") == "50000"
    assert get(cg.dirs["memory"], "memory.limit_in_bytes") == str(16 * MiB)
    assert get(cg.dirs["memory"], "memory.memsw.limit_in_bytes") == str(24 * MiB)
    assert get(cg.dirs["pids"], "pids.max") == "max"


def test_v1_memory_raised_writes_memsw_first(tmp_path):
    cg = fake_v1(tmp_path)      # memory 32m, memsw 32m
    writes = cg.plan(Resources(memory=64 * MiB, memory_swap=64 * MiB), {"memory", "memory_swap"}, False)
    assert [w.file for w in writes] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_v1_memory_lowered_writes_memory_first(tmp_path):
    cg = fake_v1(tmp_path)
    writes = cg.plan(Resources(memory=16 * MiB, memory_swap=16 * MiB), {"memory", "memory_swap"}, False)
    assert [w.file for w in writes] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]


def test_v1_memory_above_current_memsw_alone_is_refused(tmp_path):
    cg = fake_v1(tmp_path)
    with pytest.raises(InvalidArgument, match="--memory-swap as well"):
        cg.update(Resources(memory=64 * MiB), only=["memory"])
    assert get(cg.dirs["memory"], "memory.limit_in_bytes") == str(32 * MiB) + "\n"


def test_cpuset_outside_available_cpus_refused(tmp_path):
    cg = fake_v1(tmp_path)
    with pytest.raises(InvalidArgument, match=r"--cpuset-cpus: '7' is outside the CPUs available here \(0-1\)"):
        cg.update(Resources(cpuset_cpus="7"), only=["cpuset_cpus"])


def test_failed_update_puts_back_what_it_wrote(tmp_path):
    cg = fake_v2(tmp_path)
    # Make pids.max a dangling symlink: the write after cpu.weight and memory.max fails.
    os.unlink(os.path.join(cg.path, "pids.max"))
    os.symlink("nowhere", os.path.join(cg.path, "pids.max"))
    with pytest.raises(KernelError) as ei:
        cg.update(Resources(cpu_shares=2, memory=64 * MiB, pids_limit=32))
    msg = str(ei.value)
    assert msg.startswith("container c1: set pids limit: write '32' to ") and "pids.max" in msg
    assert "No such file or directory" in msg and ei.value.container == "c1"
    assert get(cg.path, "cpu.weight") == "100"
    assert get(cg.path, "memory.max") == "max"


# ---------------------------------------------------------------- refusing what cannot be enforced

def test_swap_without_accounting_is_refused_naming_memory(tmp_path):
    cg = fake_v1(tmp_path, swap=False)
    with pytest.raises(Unsupported) as ei:
        cg.update(Resources(memory=32 * MiB, memory_swap=64 * MiB))
    assert "--memory-swap" in str(ei.value) and "memory" in str(ei.value)
    assert "memsw" in str(ei.value) and ei.value.details == {"controller": "memory.swap"}
    assert get(cg.dirs["memory"], "memory.limit_in_bytes") == str(32 * MiB) + "\n"


def test_unlimited_swap_needs_no_accounting(tmp_path):
    cg = fake_v1(tmp_path, swap=False)
    cg.update(Resources(memory=16 * MiB, memory_swap=-1), only=["memory", "memory_swap"])
    assert get(cg.dirs["memory"], "memory.limit_in_bytes") == str(16 * MiB)


@pytest.mark.parametrize("kw, ctrl", [(dict(pids_limit=32), "pids"), (dict(memory=64 * MiB), "memory"),
                                      (dict(cpu_shares=512), "cpu"), (dict(cpu_quota=50000), "cpu"),
                                      (dict(cpuset_cpus="0"), "cpuset")])
def test_missing_controller_is_named(tmp_path, kw, ctrl):
    cg = fake_v2(tmp_path, controllers=())
    with pytest.raises(Unsupported, match=f"the {ctrl} cgroup controller is missing"):
        cg.update(Resources(**{"pids_limit": None, **kw}), only=list(kw))


def test_freeze_needs_the_freezer(tmp_path):
    cg = fake_v2(tmp_path)
    cg.features.controllers.discard("freezer")
    with pytest.raises(Unsupported, match="pause cannot be enforced: the freezer"):
        cg.freeze()


# ---------------------------------------------------------------- the manager on a fake tree

def fake_v2_manager(tmp_path, controllers="cpuset cpu io memory pids"):
    from test_cgroups_detect import make_v2
    kw = make_v2(tmp_path, controllers=controllers)
    lay = cgroups.detect(**kw)
    mgr = cgroups.CgroupManager(parent="mctest", layout=lay)
    base = mgr.bases[""]
    put(base, "cgroup.controllers", controllers)
    put(base, "cgroup.subtree_control", controllers)
    for f in ("cgroup.freeze", "cgroup.kill", "memory.swap.max"):
        put(base, f, "")
    return mgr


def test_manager_prepare_reads_features(tmp_path):
    mgr = fake_v2_manager(tmp_path)
    mgr.prepare()
    assert mgr.features.controllers >= {"cpu", "cpuset", "memory", "pids", "freezer", "cpuacct"}
    assert mgr.features.swap and mgr.features.kill and mgr.features.freeze


def test_create_refuses_before_making_anything(tmp_path):
    mgr = fake_v2_manager(tmp_path, controllers="cpu memory")
    with pytest.raises(Unsupported, match="pids"):
        mgr.create("c1", Resources(pids_limit=32))
    assert not os.path.exists(os.path.join(mgr.bases[""], "c1"))
    assert mgr.list_ids() == []


def test_create_failure_removes_what_it_made(tmp_path):
    mgr = fake_v2_manager(tmp_path)
    # On a fake tree the new directory has no control files, so the first write fails:
    # exactly the "failure after mkdir" case.
    with pytest.raises(KernelError, match="No such file or directory"):
        mgr.create("c1", Resources(memory=64 * MiB))
    assert not os.path.exists(os.path.join(mgr.bases[""], "c1"))


def test_bad_container_id_refused(tmp_path):
    mgr = fake_v2_manager(tmp_path)
    for bad in ("../x", "", "a/b", ".hidden"):
        with pytest.raises(InvalidArgument, match="cannot name a cgroup"):
            mgr.create(bad, Resources())


def test_list_open_and_stats_all(tmp_path):
    mgr = fake_v2_manager(tmp_path)
    mgr.prepare()
    base = mgr.bases[""]
    for cid in ("aaa", "bbb"):
        fake_v2(tmp_path / "x", cid)
        os.rename(str(tmp_path / "x" / "mini_container" / cid), os.path.join(base, cid))
    assert mgr.list_ids() == ["aaa", "bbb"]
    assert mgr.open("aaa").path == os.path.join(base, "aaa")
    assert mgr.open("zzz") is None
    st = mgr.stats_all(["aaa", "bbb", "gone"])
    assert set(st) == {"aaa", "bbb"} and st["aaa"]["memory_current"] == 4096


def test_write_plan_is_ordered_period_then_quota_v1(tmp_path):
    cg = fake_v1(tmp_path)
    writes = cg.plan(Resources(cpu_quota=50000, cpu_period=50000), {"cpu_quota", "cpu_period"}, False)
    assert [w.file for w in writes] == ["cpu.cfs_period_us", "cpu.cfs_quota_us"]
    assert isinstance(writes[0], Write)


def test_a_freeze_that_does_not_complete_is_undone(tmp_path, monkeypatch):
    cg = fake_v2(tmp_path)      # a fake tree: cgroup.events never says "frozen 1"
    monkeypatch.setattr(CgroupV2, "FREEZE_TIMEOUT", 0.05)
    with pytest.raises(KernelError, match="container c1: freeze: did not complete"):
        cg.freeze()
    assert get(cg.path, "cgroup.freeze") == "0"


def test_v1_freeze_that_does_not_complete_is_undone(tmp_path, monkeypatch):
    cg = fake_v1(tmp_path)
    monkeypatch.setattr(CgroupV1, "FREEZE_TIMEOUT", 0.05)
    # a plain file would read back FROZEN at once; a task stuck in D state keeps it FREEZING
    monkeypatch.setattr(CgroupV1, "_freezer_state", lambda self: "FREEZING")
    with pytest.raises(KernelError, match="freeze: did not complete"):
        cg.freeze()
    assert get(cg.dirs["freezer"], "freezer.state") == "THAWED"


# ---------------------------------------------------------------- the stat reader

def test_stat_reader_keeps_files_open_and_closes_them(tmp_path):
    put(str(tmp_path / "a"), "f1", "1\n")
    put(str(tmp_path / "b"), "f1", "2\n")
    r = StatReader(max_fds=10)
    assert r.read("a", str(tmp_path / "a/f1")) == "1\n"
    assert r.read("b", str(tmp_path / "b/f1")) == "2\n"
    assert len(r) == 2
    with open(tmp_path / "a/f1", "r+") as f:       # same file, new content: pread sees it
        f.write("7\n")
    assert r.reader("a")(str(tmp_path / "a/f1")) == "7\n" and len(r) == 2
    assert r.read("a", str(tmp_path / "a/nope")) is None and len(r) == 2
    r.retain(["b"])
    assert len(r) == 1
    r.forget("b")
    assert len(r) == 0


def test_stat_reader_is_bounded(tmp_path):
    put(str(tmp_path), "f", "3\n")
    r = StatReader(max_fds=0)
    assert r.read("a", str(tmp_path / "f")) == "3\n" and len(r) == 0
    assert StatReader().max_fds > 0


def test_stats_all_uses_one_reader_and_prunes(tmp_path):
    mgr = fake_v2_manager(tmp_path)
    mgr.prepare()
    base = mgr.bases[""]
    for cid in ("aaa", "bbb"):
        fake_v2(tmp_path / "x", cid)
        os.rename(str(tmp_path / "x" / "mini_container" / cid), os.path.join(base, cid))
    mgr.stats_all(["aaa", "bbb"])
    both = len(mgr._stat_reader)
    assert both > 0
    mgr.stats_all(["aaa"])
    assert 0 < len(mgr._stat_reader) < both
    mgr.open("aaa").on_destroy("aaa")
    assert len(mgr._stat_reader) == 0
    mgr.stats_all(["aaa"])
    mgr.close()
    assert len(mgr._stat_reader) == 0


def test_read_only_calls_never_create_the_parent(tmp_path):
    from test_cgroups_detect import make_v2
    lay = cgroups.detect(**make_v2(tmp_path))
    mgr = cgroups.CgroupManager(parent="never-made", layout=lay)
    assert mgr.open("x") is None
    assert mgr.list_ids() == [] and mgr.stats_all(["x"]) == {}
    assert mgr.info()["parent"] == [mgr.bases[""]]
    assert not os.path.exists(mgr.bases[""])


def test_kill_all_of_an_empty_cgroup_skips_the_freezer(tmp_path, monkeypatch):
    # The usual case after an exit: nothing left, so no freeze/thaw round trip.
    cg = fake_v1(tmp_path)
    called = []
    monkeypatch.setattr(CgroupV1, "freeze", lambda self: called.append("freeze"))
    monkeypatch.setattr(CgroupV1, "thaw", lambda self: called.append("thaw"))
    cg.kill_all()
    assert called == [] and get(cg.dirs["freezer"], "freezer.state") == "THAWED\n"
    put(cg.dirs["pids"], "cgroup.procs", f"{2 ** 22 + 1}\n")    # a pid no process can have
    with pytest.raises(KernelError):
        cg.kill_all(timeout=0.05)   # a plain file never empties: the loop gives up, loudly
    assert called[:2] == ["freeze", "thaw"]
