"""Helpers for the mcrt tests (linux tier: mcrt beside runc on the same bundle;
integration tier: podman/conmon and containerd/shim driving mcrt).

- ``busybox_rootfs(dest)``: the minimal busybox tree the daemon's tests use (TemplateStore's
  ``minimal``), copied so a bundle may create mount points in it.
- ``Bundle``: a directory with ``runc spec``'s config.json (the reference generator, not
  ours) over that tree, changed per test, and a private cgroup parent.
- ``conformance(field, kind)``: records that a test proved a runtime-spec field or a runc
  command (kind: equal = same visible result as runc; supported; refused). The session
  writes test-artifacts/mcrt-conformance.json; scripts/gen-mcrt-conformance.py renders
  docs/mcrt-conformance.md from it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACT = os.path.join(REPO, "test-artifacts", "mcrt-conformance.json")


def mcrt_binary() -> str:
    """MCRT overrides (e.g. dist/mcrt/mcrt); else the venv's console script."""
    return os.environ.get("MCRT") or os.path.join(os.path.dirname(sys.executable), "mcrt")


_RECORDS: dict[str, dict] = {}


def conformance(field: str, kind: str, note: str = "") -> None:
    assert kind in ("equal", "supported", "refused")
    prev = _RECORDS.get(field)
    rank = {"refused": 0, "supported": 1, "equal": 2}
    if prev is None or rank[kind] > rank[prev["kind"]]:
        _RECORDS[field] = {"kind": kind, "note": note}


def write_conformance(tier: str) -> None:
    if not _RECORDS:
        return
    os.makedirs(os.path.dirname(ARTIFACT), exist_ok=True)
    try:
        with open(ARTIFACT) as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = {}
    data[tier] = _RECORDS
    tmp = ARTIFACT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, ARTIFACT)
    _RECORDS.clear()     # the next module (tier) in this pytest process starts afresh


def busybox_rootfs(dest: str, cache_root: str) -> str:
    from mcd.templates import TemplateStore
    store = TemplateStore(os.path.join(cache_root, "templates"))
    store.ensure_minimal()
    shutil.copytree(store.rootfs_path("minimal"), dest, symlinks=True)
    return dest


class Bundle:
    """A bundle directory; ``cfg`` is runc spec's config.json, to be changed then saved."""

    def __init__(self, base: str, rootfs_src: str, cgroup_parent: str):
        self.id = "t" + uuid.uuid4().hex[:10]
        self.dir = os.path.join(base, self.id)
        os.makedirs(self.dir)
        shutil.copytree(rootfs_src, os.path.join(self.dir, "rootfs"), symlinks=True)
        subprocess.run(["runc", "spec", "--bundle", self.dir], check=True)
        with open(self.config_path) as f:
            self.cfg = json.load(f)
        self.cfg["process"]["terminal"] = False
        self.cgroup_parent = cgroup_parent

    @property
    def config_path(self) -> str:
        return os.path.join(self.dir, "config.json")

    def save(self, cgroup_name: str) -> None:
        self.cfg.setdefault("linux", {})["cgroupsPath"] = f"/{self.cgroup_parent}/{cgroup_name}"
        with open(self.config_path, "w") as f:
            json.dump(self.cfg, f, indent=1)


def remove_cgroup_parent(parent: str, root: str = "/sys/fs/cgroup") -> list[str]:
    """rmdir the private parent (and empty leaves) in every hierarchy; -> what is left."""
    left = []
    for ctrl in sorted(os.listdir(root)):
        base = os.path.join(root, ctrl)
        if os.path.islink(base):
            continue
        top = os.path.join(base, parent)
        if not os.path.isdir(top):
            continue
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(dirpath)
            except OSError:
                left.append(dirpath)
    return left


# A private containerd for the integration tests and bench/mcrt_bench.py. Only what they
# need: no CRI (kubelet's plugin; nothing here speaks CRI), and the
# snapshotters that need a kernel module or a special filesystem are off.
CONTAINERD_CONFIG = """version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
# The entry a Kubernetes RuntimeClass `handler: mcrt` selects (read by the CRI plugin).
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.mcrt]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.mcrt.options]
  BinaryName = "{mcrt}"
  Root = "{mcrt_root}"
"""
