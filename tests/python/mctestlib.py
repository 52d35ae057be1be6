"""Helpers shared by the tiers that run a real mcd (integration, browser): polling with a
bound, and finding what a private cgroup parent still holds."""

from __future__ import annotations

import os
import time

CGROUP_ROOT = "/sys/fs/cgroup"


def wait_for(pred, timeout: float = 30.0, what: str = "condition", step: float = 0.05):
    """Poll ``pred`` until it is truthy. A generous bound, not a timing assertion: it only
    turns a hang into a failure that names what never happened."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def cgroup_dirs(parent: str, root: str = CGROUP_ROOT) -> list[str]:
    """The directories named ``parent`` at the top of each hierarchy (symlinked
    hierarchies such as cpu -> cpu,cpuacct are read once, through their target)."""
    out = []
    for ctrl in sorted(os.listdir(root)):
        base = os.path.join(root, ctrl)
        if os.path.islink(base):
            continue
        p = os.path.join(base, parent)
        if os.path.isdir(p):
            out.append(p)
    return out


def procs_under(path: str) -> list[int]:
    """Every pid in every cgroup.procs at or below ``path``."""
    pids = []
    for dirpath, _dirs, files in os.walk(path):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    pids += [int(x) for x in f.read().split()]
            except OSError:
                pass
    return pids
