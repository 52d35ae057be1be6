"""Which cgroup layout this host has, and where our cgroups may go.

Read-only: nothing here writes to the kernel. Every kernel path is a parameter,
so the same code runs on fake trees in unit tests.

Rules (docs/design.md, "Cgroups"):
- mode: "v1" when only cgroup (v1) hierarchies are mounted under ROOT, "v2" when
  only cgroup2 is, "hybrid" when both are.
- driver: "v1" when any resource controller is bound to a v1 hierarchy (the
  unified mount of a hybrid host then carries no controllers and is ignored for
  limits), else "v2".
- delegated: systemd is running, our own cgroup is a unit (*.service / *.scope,
  or a `supervisor` leaf directly under one that we moved ourselves into), and
  systemd marked it delegated (the trusted.delegate / user.delegate xattr that
  Delegate=yes sets on systemd >= 251; failing that, `systemctl show -p Delegate`
  says yes). Then containers go under that unit; otherwise under a parent at
  the root of each hierarchy.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from dataclasses import dataclass, field

from mcd.errors import KernelError, Unsupported

# Controllers the v1 driver knows; anything else in a mount's options is ignored.
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "blkio",
                  "devices", "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc")
# Of those, the ones that make a host "v1" for limits.
V1_RESOURCE_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "blkio")
SUPERVISOR_LEAF = "supervisor"


@dataclass(frozen=True)
class Mount:
    mount_point: str
    root: str                 # the hierarchy path seen at the mount point (field 4)
    fstype: str               # cgroup | cgroup2
    options: tuple            # super options: controllers for v1


@dataclass(frozen=True)
class Layout:
    mode: str                              # v1 | v2 | hybrid
    driver: str                            # v1 | v2: which driver sets the limits
    root: str                              # normally /sys/fs/cgroup
    controllers: frozenset                 # usable: cpu cpuacct cpuset memory pids freezer blkio|io
    swap_accounting: bool                  # v1 memory.memsw.*, v2 memory.swap.max
    v1_mounts: dict = field(default_factory=dict)   # controller -> mount dir
    unified: str | None = None             # cgroup2 mount dir
    systemd: bool = False
    delegated: bool = False
    # Our own cgroup: {"": path} for v2, {controller: path} for v1 (paths from /proc/self/cgroup).
    own: dict = field(default_factory=dict)
    # The delegated unit's cgroup path (v2: one path; v1: per controller), when delegated.
    delegated_to: dict = field(default_factory=dict)
    v2_freeze: bool = False
    v2_kill: bool = False
    # v2: systemd started us inside <unit>/supervisor (DelegateSubgroup=supervisor, systemd
    # >= 254), so a restart of the unit puts the next daemon there too, not in the unit root.
    started_in_leaf: bool = False

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["controllers"] = sorted(self.controllers)
        return d


# ---------------------------------------------------------------- parsers

def _unescape(path: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in path:
        return path
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and i + 4 <= len(path) and path[i + 1:i + 4].isdigit():
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup and cgroup2 mounts in a /proc/PID/mountinfo text."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf = left.split()
        rf = right.split()
        if len(lf) < 5 or len(rf) < 3:
            continue
        fstype = rf[0]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mounts.append(Mount(mount_point=_unescape(lf[4]), root=_unescape(lf[3]),
                            fstype=fstype, options=tuple(rf[2].split(","))))
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {controller: path}; the v2 line is keyed "" ("0::/path")."""
    out = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if not ctrls:
            out[""] = path
            continue
        for c in ctrls.split(","):
            out[c] = path
    return out


# ---------------------------------------------------------------- detection

def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _kernel_at_least(major: int, minor: int, release: str | None = None) -> bool:
    release = release or os.uname().release
    try:
        parts = release.split(".")
        return (int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)) >= (major, minor)
    except (IndexError, ValueError):
        return False


def _is_delegated_dir(path: str) -> bool:
    for name in ("trusted.delegate", "user.delegate"):
        try:
            if os.getxattr(path, name).strip(b"\0\n") in (b"1", b"yes", b"true"):
                return True
        except OSError:
            continue
    return False


def _systemd_says_delegated(unit_path: str, systemctl: str | None) -> bool:
    """Older systemd marks nothing in cgroupfs: ask it (once, at detection)."""
    if not systemctl:
        return False
    unit = unit_path.rstrip("/").rsplit("/", 1)[-1]
    try:
        out = subprocess.run([systemctl, "show", "--property=Delegate", "--value", unit],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == "yes"


def _unit_of(path: str) -> str | None:
    """The systemd unit cgroup we may own: P if P is a unit, or P's parent if P is our supervisor leaf."""
    parts = [p for p in path.split("/") if p]
    if parts and parts[-1] == SUPERVISOR_LEAF:
        parts = parts[:-1]
    if parts and (parts[-1].endswith(".service") or parts[-1].endswith(".scope")):
        return "/" + "/".join(parts)
    return None


def _within(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return root == "/" or path == root or path.startswith(root + "/")


def detect(root: str = "/sys/fs/cgroup", mounts: str = "/proc/self/mountinfo",
           proc_cgroup: str = "/proc/self/cgroup", systemd_dir: str = "/run/systemd/system",
           delegated: bool | None = None, driver: str | None = None,
           kernel_release: str | None = None, systemctl: str | None = "systemctl") -> Layout:
    """Detect the layout. `delegated` and `driver` override detection (tests, config).

    driver="v2" on a hybrid host uses the unified mount (with whatever controllers
    it has, usually none): useful to exercise the v2 driver's core files here.
    """
    root = os.path.normpath(root)
    try:
        all_mounts = parse_mountinfo(_read(mounts))
    except OSError as err:
        raise KernelError.from_oserror("read", err, mounts, step="cgroup detect") from err
    mine = [m for m in all_mounts if _within(m.mount_point, root)]

    v1_mounts: dict[str, str] = {}
    v1_roots: dict[str, str] = {}
    unified = None
    for m in mine:
        if m.fstype == "cgroup2":
            if unified is None or m.mount_point == root:
                unified = m.mount_point
        else:
            for opt in m.options:
                if opt in V1_CONTROLLERS and os.path.isdir(m.mount_point):
                    v1_mounts[opt] = m.mount_point
                    v1_roots[opt] = m.root
    has_v1 = bool(v1_mounts) or any(m.fstype == "cgroup" for m in mine)
    if not has_v1 and unified is None:
        raise Unsupported(f"no cgroup filesystem is mounted under {root}: "
                          "mount cgroup2 (or the v1 controllers) there")
    mode = "hybrid" if has_v1 and unified else ("v1" if has_v1 else "v2")
    if driver is None:
        driver = "v1" if any(c in v1_mounts for c in V1_RESOURCE_CONTROLLERS) else "v2"
    if driver not in ("v1", "v2") or (driver == "v2" and unified is None) \
            or (driver == "v1" and not v1_mounts):
        raise Unsupported(f"cgroup driver {driver!r} cannot be used on this {mode} host")

    try:
        own = parse_proc_cgroup(_read(proc_cgroup))
    except OSError:
        own = {}
    systemd = os.path.isdir(systemd_dir)

    if driver == "v1":
        return _detect_v1(root, mode, v1_mounts, v1_roots, unified, own, systemd, delegated, systemctl)
    return _detect_v2(root, mode, v1_mounts, unified, own, systemd, delegated, kernel_release, systemctl)


def _detect_v1(root, mode, v1_mounts, v1_roots, unified, own, systemd, delegated, systemctl) -> Layout:
    controllers = {c for c in v1_mounts if c in V1_RESOURCE_CONTROLLERS}
    mem = v1_mounts.get("memory")
    swap = bool(mem) and os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes"))
    own_v1 = {}
    for c, path in own.items():
        if c in v1_mounts:
            # With a cgroup namespace or a bind of a sub-hierarchy the mount shows
            # only part of the tree; paths in /proc/self/cgroup are then relative to it.
            mroot = v1_roots.get(c, "/")
            if mroot != "/" and path.startswith(mroot):
                path = path[len(mroot):] or "/"
            own_v1[c] = path
    delegated_to = {}
    if delegated is None:
        delegated = False
        if systemd:
            # systemd tracks units in name=systemd (or the unified mount on hybrid);
            # Delegate=yes marks the unit's cgroup there.
            unit = _unit_of(own.get("name=systemd", "")) or _unit_of(own.get("", ""))
            tracker = None
            sysd_mount = None
            if unit and own.get("name=systemd"):
                sysd_mount = os.path.join(root, "systemd")
                tracker = sysd_mount + unit
            elif unit and unified:
                tracker = unified + unit
            delegated = bool(tracker) and (_is_delegated_dir(tracker)
                                           or _systemd_says_delegated(unit, systemctl))
    if delegated:
        for c in controllers:
            unit = _unit_of(own_v1.get(c, ""))
            if unit is None:
                delegated = False
                delegated_to = {}
                break
            delegated_to[c] = unit
    return Layout(mode=mode, driver="v1", root=root, controllers=frozenset(controllers),
                  swap_accounting=swap, v1_mounts=dict(v1_mounts), unified=unified,
                  systemd=systemd, delegated=bool(delegated), own=own_v1,
                  delegated_to=delegated_to)


def _detect_v2(root, mode, v1_mounts, unified, own, systemd, delegated, kernel_release,
               systemctl) -> Layout:
    own_path = own.get("", "/")
    unit = _unit_of(own_path)
    if delegated is None:
        delegated = bool(systemd and unit and (_is_delegated_dir(unified + unit)
                                               or _systemd_says_delegated(unit, systemctl)))
    elif delegated and not unit:
        raise Unsupported(f"delegation asked for, but our cgroup {own_path} is not a systemd unit")
    base = unified + unit if delegated else unified
    try:
        available = set(_read(os.path.join(base, "cgroup.controllers")).split())
    except OSError:
        available = set()
    controllers = available & {"cpu", "cpuset", "memory", "pids", "io"}
    # cpu.stat (usage, user, system) is a core file in v2: accounting needs no controller.
    controllers.add("cpuacct")
    # cgroup.freeze, cgroup.kill and memory.swap.max exist only below the root;
    # probe a non-root cgroup when there is one, else go by the kernel version.
    probe = None
    for cand in (unified + own_path if own_path not in ("", "/") else None,):
        if cand and os.path.isdir(cand):
            probe = cand
    if probe is None:
        try:
            for name in sorted(os.listdir(unified)):
                p = os.path.join(unified, name)
                if os.path.isdir(p):
                    probe = p
                    break
        except OSError:
            pass

    def has(name, major, minor):
        if probe is not None:
            return os.path.exists(os.path.join(probe, name))
        return _kernel_at_least(major, minor, kernel_release)

    freeze = has("cgroup.freeze", 5, 2)
    kill = has("cgroup.kill", 5, 14)
    if freeze:
        controllers.add("freezer")
    swap = False
    if "memory" in controllers:
        if probe is not None and os.path.exists(os.path.join(probe, "memory.max")):
            swap = os.path.exists(os.path.join(probe, "memory.swap.max"))
        else:
            try:
                cmdline = _read("/proc/cmdline")
            except OSError:
                cmdline = ""
            swap = "cgroup.memory=noswap" not in cmdline and "swapaccount=0" not in cmdline
    return Layout(mode=mode, driver="v2", root=root, controllers=frozenset(controllers),
                  swap_accounting=swap, v1_mounts=dict(v1_mounts), unified=unified,
                  systemd=systemd, delegated=bool(delegated), own={"": own_path},
                  delegated_to={"": unit} if delegated else {}, v2_freeze=freeze, v2_kill=kill,
                  started_in_leaf=bool(unit) and own_path == unit + "/" + SUPERVISOR_LEAF)
