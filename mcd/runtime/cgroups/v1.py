"""The cgroup v1 driver: one directory per controller hierarchy."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mcd.errors import InvalidArgument, KernelError

from . import convert
from .base import Cgroup, Write, int_or_none, read_or_none

if TYPE_CHECKING:
    from mcwire.spec import Resources

# Hierarchies a container gets a directory in, in creation order.
USED_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer")

_HZ = convert.clock_ticks()


class CgroupV1(Cgroup):
    driver = "v1"

    def self_join_files(self) -> list[str]:
        """`tasks`, not `cgroup.procs`: moving a whole process takes the kernel's global
        cgroup_threadgroup_rwsem for writing, and its first writer waits for an RCU grace
        period (5-20 ms here, the largest single cost of a start). Moving one thread by
        writing "0" (the caller itself) skips that lock. The callers are freshly forked,
        hence single-threaded, so moving the thread moves the process."""
        return [os.path.join(d, "tasks") for d in self.unique_dirs()]

    def _swap_file(self) -> str:
        return self.file("memory", "memory.memsw.limit_in_bytes") if "memory" in self.dirs \
            else "memory.memsw.limit_in_bytes"

    def plan(self, r: Resources, fields: set, creating: bool) -> list[Write]:
        want = self._wanted(r, fields, creating)

        writes: list[Write] = []
        if want("cpu_shares"):
            shares = r.cpu_shares if r.cpu_shares is not None else convert.SHARES_DEFAULT
            writes.append(Write("cpu", "cpu.shares", str(shares), "set cpu shares"))
        # Period first: the kernel checks the quota against the period in force.
        if want("cpu_period"):
            period = r.cpu_period or convert.PERIOD_DEFAULT
            writes.append(Write("cpu", "cpu.cfs_period_us", str(period), "set cpu period"))
        if want("cpu_quota"):
            quota = r.cpu_quota if r.cpu_quota is not None else -1
            writes.append(Write("cpu", "cpu.cfs_quota_us", str(quota), "set cpu quota"))
        if want("cpuset_cpus"):
            if r.cpuset_cpus is not None:
                self._check_cpuset(r.cpuset_cpus, self._parent_file("cpuset", "cpuset.effective_cpus"))
                cpus = r.cpuset_cpus
            else:
                cpus = (read_or_none(self._parent_file("cpuset", "cpuset.cpus")) or "").strip()
            if cpus:
                writes.append(Write("cpuset", "cpuset.cpus", cpus, "set cpuset"))
        writes += self._plan_memory(r, want)
        if want("pids_limit"):
            writes.append(Write("pids", "pids.max", convert.format_limit(r.pids_limit, v1=False),
                                "set pids limit"))
        return writes

    def _parent_file(self, controller: str, name: str) -> str:
        return os.path.join(os.path.dirname(self.dirs[controller]), name)

    def _plan_memory(self, r, want) -> list[Write]:
        mem_w = swap_w = None
        if want("memory"):
            mem_w = Write("memory", "memory.limit_in_bytes",
                          convert.format_limit(r.memory, v1=True), "set memory limit")
        if want("memory_swap") and self.features.swap:
            swap_w = Write("memory", "memory.memsw.limit_in_bytes",
                           convert.format_limit(r.memory_swap, v1=True), "set memory+swap limit")
        if mem_w is None and swap_w is None:
            return []
        # The kernel keeps memory.limit <= memsw.limit at every step: raise memsw
        # first when the new memory limit would exceed the current memsw.
        inf = float("inf")
        cur_swap = None
        if self.features.swap:
            cur_swap = convert.parse_limit(read_or_none(self.file("memory", "memory.memsw.limit_in_bytes")) or "-1")
        cur_swap_v = inf if cur_swap is None else cur_swap
        new_mem = inf if r.memory in (None, -1) else r.memory
        if mem_w is not None and swap_w is None and new_mem > cur_swap_v:
            raise InvalidArgument(
                f"--memory: {r.memory} is above the current --memory-swap {cur_swap}; "
                "set --memory-swap as well")
        if mem_w is not None and swap_w is not None and new_mem > cur_swap_v:
            return [swap_w, mem_w]
        return [w for w in (mem_w, swap_w) if w is not None]

    # -- reading back
    def effective(self) -> dict:
        def rd(controller, name):
            if controller not in self.dirs:
                return None
            return read_or_none(self.file(controller, name))

        quota = int_or_none(rd("cpu", "cpu.cfs_quota_us"))
        mem = rd("memory", "memory.limit_in_bytes")
        swap = rd("memory", "memory.memsw.limit_in_bytes")
        pids = rd("pids", "pids.max")
        cpus = rd("cpuset", "cpuset.cpus")
        return {
            "cpu_shares": int_or_none(rd("cpu", "cpu.shares")),
            "cpu_quota": None if quota is None or quota < 0 else quota,
            "cpu_period": int_or_none(rd("cpu", "cpu.cfs_period_us")),
            "cpuset_cpus": cpus.strip() if cpus is not None else None,
            "memory": convert.parse_limit(mem) if mem is not None else None,
            "memory_swap": convert.parse_limit(swap) if swap is not None else None,
            "pids_limit": convert.parse_limit(pids) if pids is not None else None,
        }

    def stats(self, read=read_or_none) -> dict:
        d = self.dirs
        s = {"cpu_usage_ns": None, "cpu_user_ns": None, "cpu_system_ns": None,
             "memory_current": None, "memory_peak": None, "memory_limit": None,
             "pids_current": None, "pids_limit": None, "oom_kills": None,
             "cpu_periods": None, "throttled_periods": None, "throttled_ns": None}
        if "cpuacct" in d:
            base = d["cpuacct"] + "/"
            s["cpu_usage_ns"] = int_or_none(read(base + "cpuacct.usage"))
            st = read(base + "cpuacct.stat")
            if st is not None:
                kv = convert.parse_flat_keyed(st)
                if "user" in kv:
                    s["cpu_user_ns"] = convert.ticks_to_ns(kv["user"], _HZ)
                if "system" in kv:
                    s["cpu_system_ns"] = convert.ticks_to_ns(kv["system"], _HZ)
        if "cpu" in d:
            st = read(d["cpu"] + "/cpu.stat")
            if st is not None:
                kv = convert.parse_flat_keyed(st)
                s["cpu_periods"] = kv.get("nr_periods")
                s["throttled_periods"] = kv.get("nr_throttled")
                s["throttled_ns"] = kv.get("throttled_time")
        if "memory" in d:
            base = d["memory"] + "/"
            s["memory_current"] = int_or_none(read(base + "memory.usage_in_bytes"))
            s["memory_peak"] = int_or_none(read(base + "memory.max_usage_in_bytes"))
            lim = read(base + "memory.limit_in_bytes")
            s["memory_limit"] = convert.parse_limit(lim) if lim is not None else None
            oc = read(base + "memory.oom_control")
            if oc is not None:
                s["oom_kills"] = convert.parse_flat_keyed(oc).get("oom_kill", 0)
        if "pids" in d:
            base = d["pids"] + "/"
            s["pids_current"] = int_or_none(read(base + "pids.current"))
            lim = read(base + "pids.max")
            s["pids_limit"] = convert.parse_limit(lim) if lim is not None else None
        return s

    def oom_killed(self) -> int:
        if "memory" not in self.dirs:
            return 0
        text = read_or_none(self.file("memory", "memory.oom_control"))
        return convert.parse_flat_keyed(text or "").get("oom_kill", 0)

    # -- freezer
    def _freezer_state(self) -> str:
        return self._read(self.file("freezer", "freezer.state"), "read freezer state").strip()

    def freeze(self) -> None:
        self.features.require("freezer", "pause")
        self._write(self.file("freezer", "freezer.state"), "FROZEN", "freeze")
        try:
            # FREEZING until every task has stopped (a task in D state can hold it there).
            self._wait(lambda: self._freezer_state() == "FROZEN", "freeze", self.FREEZE_TIMEOUT)
        except KernelError:
            # Never leave a container half frozen behind an error.
            self._write(self.file("freezer", "freezer.state"), "THAWED", "thaw after failed freeze")
            raise

    def thaw(self) -> None:
        self.features.require("freezer", "unpause")
        self._write(self.file("freezer", "freezer.state"), "THAWED", "thaw")
        self._wait(lambda: self._freezer_state() == "THAWED", "thaw", self.FREEZE_TIMEOUT)

    def frozen(self) -> bool:
        if "freezer" not in self.dirs:
            return False
        return (read_or_none(self.file("freezer", "freezer.state")) or "").strip() == "FROZEN"
