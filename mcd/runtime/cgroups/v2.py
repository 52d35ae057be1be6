"""The cgroup v2 driver: one directory in the unified hierarchy."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mcd.errors import KernelError

from . import convert
from .base import Cgroup, Write, int_or_none, read_or_none

if TYPE_CHECKING:
    from mcwire.spec import Resources

# Controllers enabled for container cgroups when the parent offers them.
WANTED_CONTROLLERS = ("cpu", "cpuset", "memory", "pids")


class CgroupV2(Cgroup):
    driver = "v2"

    def __init__(self, container_id: str, path: str, features):
        super().__init__(container_id, {"": path}, features)
        self._dir = path

    def file(self, controller: str, name: str) -> str:
        return os.path.join(self._dir, name)

    @property
    def path(self) -> str:
        return self._dir

    def _swap_file(self) -> str:
        return os.path.join(self._dir, "memory.swap.max")

    def plan(self, r: Resources, fields: set, creating: bool) -> list[Write]:
        want = self._wanted(r, fields, creating)

        writes: list[Write] = []
        if want("cpu_shares"):
            weight = convert.shares_to_weight(r.cpu_shares) if r.cpu_shares is not None \
                else convert.WEIGHT_DEFAULT
            writes.append(Write("cpu", "cpu.weight", str(weight), "set cpu weight"))
        if want("cpu_quota") or want("cpu_period"):
            writes.append(Write("cpu", "cpu.max", convert.format_cpu_max(r.cpu_quota, r.cpu_period),
                                "set cpu quota"))
        if want("cpuset_cpus"):
            if r.cpuset_cpus is not None:
                self._check_cpuset(r.cpuset_cpus,
                                   os.path.join(os.path.dirname(self._dir), "cpuset.cpus.effective"))
            # An empty cpuset.cpus means "inherit the parent's", the v2 default.
            writes.append(Write("cpuset", "cpuset.cpus", r.cpuset_cpus or "", "set cpuset"))
        if want("memory"):
            writes.append(Write("memory", "memory.max", convert.format_limit(r.memory, v1=False),
                                "set memory limit"))
        if want("memory_swap") and self.features.swap:
            value = convert.v2_swap_max(r.memory, r.memory_swap) if r.memory_swap is not None else "max"
            writes.append(Write("memory", "memory.swap.max", value, "set swap limit"))
        if want("pids_limit"):
            writes.append(Write("pids", "pids.max", convert.format_limit(r.pids_limit, v1=False),
                                "set pids limit"))
        return writes

    # -- reading back
    def effective(self) -> dict:
        base = self._dir + "/"
        weight = int_or_none(read_or_none(base + "cpu.weight"))
        cpu_max = read_or_none(base + "cpu.max")
        quota = period = None
        if cpu_max is not None:
            quota, period = convert.parse_cpu_max(cpu_max)
        mem = read_or_none(base + "memory.max")
        swap = read_or_none(base + "memory.swap.max")
        pids = read_or_none(base + "pids.max")
        cpus = read_or_none(base + "cpuset.cpus")
        memory = convert.parse_limit(mem) if mem is not None else None
        swap_v = convert.parse_limit(swap) if swap is not None else None
        return {
            "cpu_shares": convert.weight_to_shares(weight) if weight is not None else None,
            "cpu_weight": weight,
            "cpu_quota": quota,
            "cpu_period": period,
            "cpuset_cpus": cpus.strip() if cpus is not None else None,
            "memory": memory,
            # Shown in Docker's terms (memory + swap), as it was asked.
            "memory_swap": memory + swap_v if memory is not None and swap_v is not None else None,
            "pids_limit": convert.parse_limit(pids) if pids is not None else None,
        }

    def stats(self, read=read_or_none) -> dict:
        base = self._dir + "/"
        s = {"cpu_usage_ns": None, "cpu_user_ns": None, "cpu_system_ns": None,
             "memory_current": None, "memory_peak": None, "memory_limit": None,
             "pids_current": None, "pids_limit": None, "oom_kills": None,
             "cpu_periods": None, "throttled_periods": None, "throttled_ns": None}
        st = read(base + "cpu.stat")
        if st is not None:
            kv = convert.parse_flat_keyed(st)

            def ns(key):
                return kv[key] * 1000 if key in kv else None
            s["cpu_usage_ns"] = ns("usage_usec")
            s["cpu_user_ns"] = ns("user_usec")
            s["cpu_system_ns"] = ns("system_usec")
            s["cpu_periods"] = kv.get("nr_periods")
            s["throttled_periods"] = kv.get("nr_throttled")
            s["throttled_ns"] = ns("throttled_usec")
        if "memory" in self.features.controllers:
            s["memory_current"] = int_or_none(read(base + "memory.current"))
            s["memory_peak"] = int_or_none(read(base + "memory.peak"))
            lim = read(base + "memory.max")
            s["memory_limit"] = convert.parse_limit(lim) if lim is not None else None
            ev = read(base + "memory.events")
            if ev is not None:
                s["oom_kills"] = convert.parse_flat_keyed(ev).get("oom_kill", 0)
        if "pids" in self.features.controllers:
            s["pids_current"] = int_or_none(read(base + "pids.current"))
            lim = read(base + "pids.max")
            s["pids_limit"] = convert.parse_limit(lim) if lim is not None else None
        return s

    def oom_killed(self) -> int:
        text = read_or_none(os.path.join(self._dir, "memory.events"))
        return convert.parse_flat_keyed(text or "").get("oom_kill", 0)

    # -- freezer and kill
    def _events(self) -> dict:
        return convert.parse_flat_keyed(self._read(os.path.join(self._dir, "cgroup.events"),
                                                   "read cgroup.events"))

    def freeze(self) -> None:
        self.features.require("freezer", "pause")
        self._write(os.path.join(self._dir, "cgroup.freeze"), "1", "freeze")
        try:
            self._wait(lambda: self._events().get("frozen") == 1, "freeze", self.FREEZE_TIMEOUT)
        except KernelError:
            # Never leave a container half frozen behind an error.
            self._write(os.path.join(self._dir, "cgroup.freeze"), "0", "thaw after failed freeze")
            raise

    def thaw(self) -> None:
        self.features.require("freezer", "unpause")
        self._write(os.path.join(self._dir, "cgroup.freeze"), "0", "thaw")
        self._wait(lambda: self._events().get("frozen") == 0, "thaw", self.FREEZE_TIMEOUT)

    def frozen(self) -> bool:
        text = read_or_none(os.path.join(self._dir, "cgroup.events"))
        return convert.parse_flat_keyed(text or "").get("frozen") == 1

    def _kill_file(self) -> str | None:
        return os.path.join(self._dir, "cgroup.kill") if self.features.kill else None
