"""The container manager: the state machine between the API and the runtime.

    state.py      Status, State (state.json), the allowed transitions, Container
    policy.py     the rules as pure functions: restart policy and back-off, --rm,
                  what restore does with each situation it finds
    core.py       Manager: lookup, names, create, rename, update, templates in use,
                  and _transition, the one way a status changes (check, persist, publish)
    lifecycle.py  start and exit, restart by policy
    control.py    stop, kill, restart, pause, destroy, prune, wait
    restore.py    live restore at daemon start
    views.py      inspect, stats, top, logs, exec; Stdio from the caller's fds
    events.py     the event bus;  naming.py  generated names and hostnames

The manager is given its layers (store, runtime, cgroup driver, template store) and
never talks to the kernel itself: processes, signals, pidfds and the proc files are the
runtime's (mcd.runtime.interface.Runtime).
"""

from __future__ import annotations

import os

from mcd.manager.core import Manager
from mcd.manager.events import EventBus
from mcd.manager.state import ACTIVE, Container, State, Status
from mcd.store import Store

__all__ = ["ACTIVE", "Container", "EventBus", "Manager", "State", "Status", "open_manager"]


def open_manager(root: str, cgroup_parent: str = "mini_container", *, runtime=None,
                 templates=None, cgroups=None, networks=None, on_change=None) -> Manager:
    """A Manager over ROOT with the real layers: the store, a LinuxRuntime (without a fork
    server unless given a runtime that has one), the cgroup driver and the template store
    built on first use."""

    def make_templates():
        from mcd.templates import TemplateStore
        return TemplateStore(os.path.join(root, "templates"))

    def make_cgroups():
        from mcd.runtime import cgroups as cgroups_mod
        return cgroups_mod.CgroupManager(parent=cgroup_parent, layout=cgroups_mod.detect())

    if runtime is None:
        from mcd.runtime.linux import LinuxRuntime
        runtime = LinuxRuntime()
    return Manager(Store(root), runtime, cgroups or make_cgroups, templates or make_templates,
                   cgroup_parent=cgroup_parent, on_change=on_change, networks=networks)
