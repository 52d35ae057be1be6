"""CgroupManager: where container cgroups go, and their create / open / list / stats."""

from __future__ import annotations

import errno as _errno
import os
import re
import threading

from mcd.errors import Conflict, InvalidArgument, KernelError
from mcwire.spec import Resources, validate_resources

from .base import RESOURCE_FIELDS, Cgroup, Features, cpuset_inherit, StatReader, read_file, read_or_none, write_file
from .detection import SUPERVISOR_LEAF, Layout, detect
from .v1 import USED_CONTROLLERS, CgroupV1
from .v2 import WANTED_CONTROLLERS, CgroupV2

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
PARENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}){0,7}")
DEFAULT_PARENT = "mini_container"
DELEGATED_PARENT = "containers"


def _kernel_error(call: str, err: OSError, path: str, what: str) -> KernelError:
    text = os.strerror(err.errno) if err.errno else str(err)
    return KernelError(f"cgroup {what}: {call} {path}: {text}", step=what, path=path, errno=err.errno)


def _mkdir(path: str, what: str) -> bool:
    """True when we made it, False when it was there."""
    try:
        os.mkdir(path, 0o755)
        return True
    except FileExistsError:
        return False
    except OSError as err:
        raise _kernel_error("mkdir", err, path, what) from err


class CgroupManager:
    """Container cgroups under one parent.

    parent: the directory our containers live in, relative to the root of each
    hierarchy (or to the delegated unit's cgroup); "a/b" nests. None picks the
    default: `mini_container` at the root of each hierarchy, or `containers`
    inside a delegated systemd unit (where the default name `mini_container`
    is read as `containers` too, so the daemon's default config lands there).

    delegation: where containers go when systemd delegated our unit to us.
      "yes"  inside the unit: <unit>/<parent>/<id>, the daemon moved to <unit>/supervisor.
      "no"   at the root of each hierarchy, as without systemd.
      "auto" (default) "yes" where that survives a restart of the unit while containers
             run: cgroup v1 (no internal-process rule), or v2 when systemd itself started
             us in <unit>/supervisor (DelegateSubgroup=supervisor, systemd >= 254).
             Otherwise "no": with the daemon in the unit root, systemd < 254 cannot
             start the unit again while containers live below it (status=219/CGROUP,
             the kernel's no-internal-process rule; docs/design.md, "Cgroups").
    """

    def __init__(self, parent: str | None = None, layout: Layout | None = None,
                 root: str | None = None, pid: int | None = None, delegation: str = "auto"):
        if layout is None:
            layout = detect(root=root or "/sys/fs/cgroup")
        self.layout = layout
        if delegation not in ("auto", "yes", "no"):
            raise InvalidArgument(f"cgroup delegation {delegation!r}: must be auto, yes or no")
        if delegation == "yes" and not layout.delegated:
            raise InvalidArgument("cgroup delegation 'yes': this process is not in a systemd unit "
                                  "with Delegate=yes")
        if delegation == "auto":
            self.delegated = layout.delegated and (layout.driver == "v1" or layout.started_in_leaf)
        else:
            self.delegated = layout.delegated and delegation == "yes"
        if parent is None or (self.delegated and parent == DEFAULT_PARENT):
            parent = DELEGATED_PARENT if self.delegated else DEFAULT_PARENT
        if not isinstance(parent, str) or not PARENT_RE.fullmatch(parent) \
                or parent.split("/")[0] == SUPERVISOR_LEAF or ".." in parent.split("/"):
            raise InvalidArgument(f"cgroup parent {parent!r}: must be a relative path of names "
                                  "matching [A-Za-z0-9][A-Za-z0-9_.-]* (not starting with 'supervisor')")
        self.parent = parent
        self.driver = layout.driver
        self._pid = pid or os.getpid()
        self.features = Features()
        self._prepared = False
        self._prepare_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stat_reader = StatReader()
        if self.driver == "v1":
            self.bases = {}
            for c in USED_CONTROLLERS:
                if c in layout.controllers and c in layout.v1_mounts:
                    unit = layout.delegated_to.get(c, "") if self.delegated else ""
                    self.bases[c] = os.path.normpath(layout.v1_mounts[c] + "/" + unit + "/" + parent)
        else:
            unit = layout.delegated_to.get("", "") if self.delegated else ""
            self.bases = {"": os.path.normpath(layout.unified + "/" + unit + "/" + parent)}

    # ---------------------------------------------------------- parent setup

    def unique_bases(self) -> list[str]:
        seen, out = set(), []
        for b in self.bases.values():
            if b not in seen:
                seen.add(b)
                out.append(b)
        return out

    def prepare(self) -> None:
        """Make our parent cgroups (idempotent). Under a delegated v2 unit, first move
        this process (only this one) into the unit's `supervisor` leaf, because
        cgroup v2 lets a cgroup with processes in it delegate no controller."""
        if self._prepared:
            return
        with self._prepare_lock:
            if self._prepared:
                return
            if self.driver == "v1":
                self._prepare_v1()
            else:
                self._prepare_v2()
            self._prepared = True

    def _levels(self, base: str) -> list[str]:
        """The directories of our parent, top first: a/b/c -> [.../a, .../a/b, .../a/b/c]."""
        n = len(self.parent.split("/"))
        out = [base]
        for _ in range(n - 1):
            out.insert(0, os.path.dirname(out[0]))
        return out

    def _prepare_v1(self) -> None:
        feats = Features()
        for c in ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"):
            if c not in self.bases:
                feats.why_missing[c] = f"no v1 {c} hierarchy is mounted under {self.layout.root}"
        for c, base in self.bases.items():
            for level in self._levels(base):
                _mkdir(level, "create parent")
                if c == "cpuset":
                    self._cpuset_inherit(level)
        feats.controllers = set(self.bases)
        mem = self.bases.get("memory")
        feats.swap = bool(mem) and os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes"))
        feats.freeze = "freezer" in self.bases
        self.features.__dict__.update(feats.__dict__)

    _cpuset_inherit = staticmethod(cpuset_inherit)

    def _enable(self, cgroup_dir: str, wanted, feats: Features, what: str) -> set:
        """Enable each wanted controller in cgroup_dir's subtree_control; return those on."""
        try:
            available = set(read_file(os.path.join(cgroup_dir, "cgroup.controllers")).split())
            enabled = set(read_file(os.path.join(cgroup_dir, "cgroup.subtree_control")).split())
        except OSError as err:
            raise _kernel_error("read", err, cgroup_dir, what) from err
        for c in wanted:
            if c in enabled:
                continue
            if c not in available:
                feats.why_missing.setdefault(
                    c, f"not in {cgroup_dir}/cgroup.controllers"
                    + ("; on this hybrid host it is bound to cgroup v1" if c in self.layout.v1_mounts else ""))
                continue
            try:
                write_file(os.path.join(cgroup_dir, "cgroup.subtree_control"), "+" + c)
                enabled.add(c)
            except OSError as err:
                text = os.strerror(err.errno)
                if err.errno == _errno.EBUSY:
                    pids = read_or_none(os.path.join(cgroup_dir, "cgroup.procs")) or ""
                    text += (f" (processes still in {cgroup_dir}: {pids.split()[:10]}; "
                             "only this daemon moves itself out)")
                feats.why_missing.setdefault(c, f"enabling it in {cgroup_dir}/cgroup.subtree_control failed: {text}")
        return enabled

    def _prepare_v2(self) -> None:
        feats = Features()
        base = self.bases[""]
        levels = self._levels(base)
        top = os.path.dirname(levels[0])
        if self.delegated:
            unit = top
            sup = os.path.join(unit, SUPERVISOR_LEAF)
            procs = read_or_none(os.path.join(unit, "cgroup.procs")) or ""
            if str(self._pid) in procs.split():
                _mkdir(sup, "create supervisor leaf")
                try:
                    write_file(os.path.join(sup, "cgroup.procs"), str(self._pid))
                except OSError as err:
                    raise _kernel_error(f"write {self._pid} to", err, sup + "/cgroup.procs",
                                        "move daemon to supervisor leaf") from err
        enabled = self._enable(top, WANTED_CONTROLLERS, feats, "enable controllers")
        for level in levels:
            _mkdir(level, "create parent")
            enabled = self._enable(level, [c for c in WANTED_CONTROLLERS if c in enabled], feats,
                                   "enable controllers")
        feats.controllers = set(enabled) | {"cpuacct"}
        feats.freeze = os.path.exists(os.path.join(base, "cgroup.freeze"))
        if feats.freeze:
            feats.controllers.add("freezer")
        else:
            feats.why_missing["freezer"] = "this kernel has no cgroup.freeze (needs 5.2)"
        feats.kill = os.path.exists(os.path.join(base, "cgroup.kill"))
        feats.swap = os.path.exists(os.path.join(base, "memory.swap.max"))
        self.features.__dict__.update(feats.__dict__)

    def remove_parent(self) -> None:
        """rmdir our parent in every hierarchy (fails if a container is still there)."""
        for base in reversed(self.unique_bases()):
            try:
                os.rmdir(base)
            except FileNotFoundError:
                pass
            except OSError as err:
                raise _kernel_error("rmdir", err, base, "remove parent") from err
            # Upper levels of a nested parent go too, unless something else of ours lives there.
            for level in reversed(self._levels(base)[:-1]):
                try:
                    os.rmdir(level)
                except OSError:
                    break
        self._prepared = False

    # ---------------------------------------------------------- containers

    def _make(self, container_id: str) -> Cgroup:
        if not isinstance(container_id, str) or not ID_RE.fullmatch(container_id):
            raise InvalidArgument(f"container id {container_id!r} cannot name a cgroup")
        if self.driver == "v1":
            cg = CgroupV1(container_id, {c: os.path.join(b, container_id) for c, b in self.bases.items()},
                          self.features)
        else:
            cg = CgroupV2(container_id, os.path.join(self.bases[""], container_id), self.features)
        cg.on_destroy = self._forget
        return cg

    def _forget(self, container_id: str) -> None:
        with self._stats_lock:
            self._stat_reader.forget(container_id)

    def create(self, container_id: str, resources: Resources) -> Cgroup:
        """mkdir in every hierarchy and write the limits; undo all of it on any failure.

        A limit the kernel cannot enforce raises Unsupported before anything is made.
        An existing, empty cgroup of the same id (left by a crash) is taken over.
        """
        validate_resources(resources)
        self.prepare()
        cg = self._make(container_id)
        asked = {f for f in RESOURCE_FIELDS if getattr(resources, f) is not None}
        cg.check_supported(resources, asked)
        made: list[str] = []
        try:
            for d in cg.unique_dirs():
                if _mkdir(d, f"create cgroup for container {container_id[:12]}"):
                    made.append(d)
                else:
                    made.append(d)
                    procs = read_or_none(os.path.join(d, "cgroup.procs"))
                    if procs and procs.split():
                        raise Conflict(f"container {container_id[:12]}: cgroup {d} exists and has "
                                       f"processes {procs.split()[:10]}", container=container_id,
                                       step="create cgroup", path=d)
            cg.apply(resources, asked, creating=True)
        except BaseException:
            for d in reversed(made):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            raise
        return cg

    def _prepared_if_present(self) -> bool:
        """Read-only calls never create our parent: prepare only when it already exists
        (e.g. a restarted daemon re-adopting its containers)."""
        if self._prepared:
            return True
        if all(os.path.isdir(b) for b in self.unique_bases()):
            self.prepare()
            return True
        return False

    def open(self, container_id: str) -> Cgroup | None:
        cg = self._make(container_id)
        if not self._prepared_if_present():
            return None
        return cg if cg.exists() else None

    def list_ids(self) -> list[str]:
        ids: set[str] = set()
        for base in self.unique_bases():
            try:
                names = os.listdir(base)
            except FileNotFoundError:
                continue
            except OSError as err:
                raise _kernel_error("list", err, base, "list cgroups") from err
            for n in names:
                if ID_RE.fullmatch(n) and os.path.isdir(os.path.join(base, n)):
                    ids.add(n)
        return sorted(ids)

    def stats_all(self, ids) -> dict:
        """{id: stats} for every id whose cgroup exists, in one pass over the files.

        The files stay open between calls (see StatReader); ids not asked for this
        time have theirs closed, so call it with every container you want stats of.
        """
        ids = list(ids)
        out = {}
        if not self._prepared_if_present():
            return out
        with self._stats_lock:
            self._stat_reader.retain(ids)
            for cid in ids:
                cg = self._make(cid)
                s = cg.stats(self._stat_reader.reader(cid))
                # A vanished cgroup reads as all-None: leave it out.
                if any(v is not None for v in s.values()):
                    out[cid] = s
                else:
                    self._stat_reader.forget(cid)
        return out

    def close(self) -> None:
        """Close the files stats_all keeps open."""
        with self._stats_lock:
            self._stat_reader.close()

    def info(self) -> dict:
        """For GET /v1/info: the layout and what our containers can use (features are
        known once the parent exists: after the first create, or a restart)."""
        self._prepared_if_present()
        return {"mode": self.layout.mode, "driver": self.driver, "delegated": self.delegated,
                "systemd_delegated_unit": self.layout.delegated,
                "parent": self.unique_bases(), "controllers": sorted(self.features.controllers),
                "swap_accounting": self.features.swap, "freeze": self.features.freeze,
                "kill": self.features.kill or self.features.freeze}
