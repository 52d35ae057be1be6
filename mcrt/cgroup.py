"""The container's cgroup at the OCI cgroupsPath, through mcd's cgroup drivers
(mcd.runtime.cgroups: the v1 and v2 drivers, their limit plans with rollback, freeze,
kill and destroy loops). What mcrt adds: placing the cgroup where the caller's
cgroupsPath says (absolute, relative to our own cgroup, or systemd's slice:prefix:name),
converting linux.resources to mcd's Resources, and the v1 device rules."""

from __future__ import annotations

import os

from mcrt.errors import McrtError

# v1 hierarchies a container gets a directory in (mcd's plus devices and blkio, as runc).
HIERARCHIES = ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "devices", "blkio")

# What runc allows beyond the spec's rules, so that a spec with only "deny all" still
# gets a working /dev (containerd's default spec relies on this).
DEFAULT_ALLOWED = ("c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                   "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm")


V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "devices", "blkio")


def _layout(root: str = "/sys/fs/cgroup"):
    """Where the hierarchies are mounted and where this process sits in them: the part of
    mcd's cgroups.detect() that an OCI runtime needs (the caller names the cgroup; there
    is no parent of ours to place, no systemd delegation to find). Read from
    /proc/self/mountinfo and /proc/self/cgroup in one pass each, on every create."""
    from types import SimpleNamespace
    v1, unified = {}, None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            mnt = left.split()[4]
            if not mnt.startswith(root + "/") and mnt != root:
                continue
            fstype, _src, opts = right.split()[:3]
            if fstype == "cgroup2":
                if unified is None or mnt == root:
                    unified = mnt
            elif fstype == "cgroup":
                for opt in opts.split(","):
                    if opt in V1_CONTROLLERS:
                        v1[opt] = mnt
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _n, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                own[c] = path
    driver = "v1" if any(c in v1 for c in ("cpu", "memory", "pids")) else "v2"
    if driver == "v2" and unified is None:
        raise McrtError(f"no cgroup filesystem is mounted under {root}")
    return SimpleNamespace(driver=driver, v1_mounts=v1, unified=unified, own=own, root=root)


def expand_systemd(path: str, cid: str) -> str:
    """slice:prefix:name -> the cgroupfs path systemd would give it
    (machine.slice -> /machine.slice, a-b.slice -> /a.slice/a-b.slice)."""
    parts = path.split(":")
    if len(parts) != 3:
        raise McrtError(f"config.json: linux.cgroupsPath: {path!r} is not slice:prefix:name "
                        "(as --systemd-cgroup expects)")
    slc, prefix, name = parts
    slc = slc or "system.slice"
    if slc.endswith(".slice"):
        words = slc[:-len(".slice")].split("-")
        slices = ["-".join(words[:i + 1]) + ".slice" for i in range(len(words))]
        base = "/" + "/".join(slices) if slc != "-.slice" else ""
    else:
        raise McrtError(f"config.json: linux.cgroupsPath: slice {slc!r} must end in .slice")
    unit = name if name.endswith((".slice", ".scope")) else f"{prefix}-{name or cid}.scope" \
        if prefix else f"{name or cid}.scope"
    return f"{base}/{unit}"


def resolve_path(cfg_path: str, cid: str, systemd: bool) -> str:
    if systemd and cfg_path and ":" in cfg_path:
        return expand_systemd(cfg_path, cid)
    return cfg_path or f"/mcrt/{cid}"


def dirs_for(path: str, layout) -> dict[str, str]:
    """controller -> directory ("" -> directory on v2)."""
    if layout.driver == "v1":
        out = {}
        for c in HIERARCHIES:
            mnt = layout.v1_mounts.get(c)
            if mnt is None:
                continue
            rel = path if path.startswith("/") else os.path.join(layout.own.get(c, "/"), path)
            out[c] = os.path.normpath(mnt + "/" + rel)
        # systemd's named hierarchy: runc makes the container a cgroup there too (and the
        # cgroup mount shows it); it carries no limits.
        named = os.path.join(layout.root, "systemd")
        if os.path.ismount(named):
            rel = path if path.startswith("/") else os.path.join(layout.own.get("cpu", "/"), path)
            out["name=systemd"] = os.path.normpath(named + "/" + rel)
        return out
    rel = path if path.startswith("/") else os.path.join(layout.own.get("", "/"), path)
    return {"": os.path.normpath(layout.unified + "/" + rel)}


def open_cgroup(cid: str, dirs: dict[str, str], driver: str):
    from mcd.runtime.cgroups.base import Features
    feats = Features()
    if driver == "v1":
        from mcd.runtime.cgroups.v1 import CgroupV1
        feats.controllers = set(dirs)
        mem = dirs.get("memory")
        while mem and not os.path.isdir(mem):
            mem = os.path.dirname(mem)
        feats.swap = bool(mem) and os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes"))
        feats.freeze = "freezer" in dirs
        return CgroupV1(cid, dict(dirs), feats)
    from mcd.runtime.cgroups.v2 import CgroupV2
    d = dirs[""]
    try:
        with open(os.path.join(os.path.dirname(d), "cgroup.subtree_control")) as f:
            feats.controllers = set(f.read().split())
    except OSError:
        pass
    feats.swap = "memory" in feats.controllers
    feats.freeze = os.path.exists(os.path.join(os.path.dirname(d), "cgroup.freeze")) or True
    return CgroupV2(cid, d, feats)


_LIMIT_KEYS = (("memory", ("limit", "swap")), ("cpu", ("shares", "quota", "period", "cpus")),
               ("pids", ("limit",)))


def _limits_given(res: dict) -> bool:
    """Does linux.resources name any limit to_resources converts? (Without one, create
    neither builds mcd's Resources nor asks the driver for a plan: nothing to write.)"""
    return any((res.get(group) or {}).get(k) not in (None, "")
               for group, keys in _LIMIT_KEYS for k in keys)


def to_resources(res: dict, field: str = "linux.resources"):
    """linux.resources -> (mcd Resources, the names of the fields given)."""
    from mcd.errors import InvalidArgument
    from mcwire.spec import Resources
    mem, cpu, pids = res.get("memory") or {}, res.get("cpu") or {}, res.get("pids") or {}
    kw = {}
    names = {}
    for src, key, dst in ((mem, "limit", "memory"), (mem, "swap", "memory_swap"),
                          (cpu, "shares", "cpu_shares"), (cpu, "quota", "cpu_quota"),
                          (cpu, "period", "cpu_period"), (cpu, "cpus", "cpuset_cpus"),
                          (pids, "limit", "pids_limit")):
        v = src.get(key)
        if v is None or v == "":
            continue
        if dst == "pids_limit" and v <= 0:
            v = -1
        if dst == "cpu_quota" and v <= 0:
            v = -1
        if dst in ("memory", "memory_swap") and v < 0:
            v = -1
        if dst == "cpu_shares" and v == 0:
            continue
        kw[dst] = v
        names[dst] = f"{field}.{'memory' if src is mem else 'cpu' if src is cpu else 'pids'}.{key}"
    kw.setdefault("pids_limit", None)
    try:
        return Resources(**kw), names
    except InvalidArgument as err:
        raise McrtError(f"config.json: {field}: {err}") from None


class ContainerCgroup:
    """The cgroup of one container: made at create, removed at delete."""

    def __init__(self, cid: str, dirs: dict[str, str], driver: str):
        self.id, self.dirs, self.driver = cid, dirs, driver
        self.cg = open_cgroup(cid, dirs, driver)

    @classmethod
    def plan(cls, cid: str, cfg_path: str, systemd: bool) -> "ContainerCgroup":
        layout = _layout()
        path = resolve_path(cfg_path, cid, systemd)
        return cls(cid, dirs_for(path, layout), layout.driver)

    def to_state(self) -> dict:
        return {"driver": self.driver, "dirs": self.dirs}

    @classmethod
    def from_state(cls, cid: str, st: dict) -> "ContainerCgroup":
        return cls(cid, st["dirs"], st["driver"])

    def check(self, res: dict) -> None:
        """Refuse what this host cannot enforce, before anything is made."""
        if not _limits_given(res):
            names = {}
        else:
            resources, names = to_resources(res)
        try:
            if names:
                self.cg.check_supported(resources, set(names))
        except Exception as err:    # mcd's Unsupported
            field = next(iter(names.values()), "linux.resources")
            raise McrtError(f"config.json: {field}: {err}") from None
        if res.get("devices") and self.driver != "v1":
            raise McrtError("config.json: linux.resources.devices: device rules need a BPF "
                            "program on cgroup v2, which mcrt does not load")

    def create(self, res: dict) -> None:
        made = []
        try:
            for c, d in self.dirs.items():
                parent = os.path.dirname(d)
                levels = []
                p = d
                while not os.path.isdir(p):
                    levels.append(p)
                    p = os.path.dirname(p)
                for level in reversed(levels):
                    try:
                        os.mkdir(level, 0o755)
                    except FileExistsError:
                        continue
                    made.append(level)
                    if c == "cpuset":
                        from mcd.runtime.cgroups.base import cpuset_inherit
                        cpuset_inherit(level)
                if d not in levels:
                    procs = _read(os.path.join(d, "cgroup.procs"))
                    if procs.split():
                        raise McrtError(f"cgroup {d} exists and has processes "
                                        f"{procs.split()[:5]}: another container's?")
                del parent
            if _limits_given(res):
                resources, names = to_resources(res)
                try:
                    self.cg.apply(resources, set(names), creating=True)
                except McrtError:
                    raise
                except Exception as err:
                    raise McrtError(f"cgroup limits: {err}") from None
            self._devices(res.get("devices") or [])
        except BaseException:
            for d in reversed(made):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            raise

    def _devices(self, rules: list) -> None:
        d = self.dirs.get("devices")
        if d is None or not rules:
            return
        lines = []
        for r in rules:
            t = r.get("type") or "a"
            major = "*" if r.get("major") in (None, -1) else str(r["major"])
            minor = "*" if r.get("minor") in (None, -1) else str(r["minor"])
            acc = r.get("access") or "rwm"
            lines.append(("devices.allow" if r["allow"] else "devices.deny",
                          "a" if t == "a" else f"{t} {major}:{minor} {acc}"))
        lines += [("devices.allow", rule) for rule in DEFAULT_ALLOWED]
        for fname, value in lines:
            path = os.path.join(d, fname)
            try:
                with open(path, "w") as f:
                    f.write(value)
            except OSError as err:
                raise McrtError(f"cgroup devices: write {value!r} to {path}: "
                                f"{os.strerror(err.errno)}") from None

    def join_files(self) -> list[str]:
        return self.cg.self_join_files()

    def pids(self) -> list[int]:
        return self.cg.pids()

    def frozen(self) -> bool:
        try:
            return self.cg.frozen()
        except OSError:
            return False

    def update(self, res: dict, field: str = "linux.resources") -> None:
        resources, names = to_resources(res, field)
        if res.get("devices"):
            raise McrtError(f"{field}.devices: changing device rules of a running container "
                            "is not supported by mcrt")
        try:
            self.cg.apply(resources, set(names))
        except Exception as err:
            raise McrtError(f"update {self.id}: {err}") from None

    def destroy(self) -> None:
        try:
            self.cg.destroy(kill=True)
        except Exception as err:
            raise McrtError(f"container {self.id}: remove cgroup: {err}") from None


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
