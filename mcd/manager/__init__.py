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
never talks to the kernel itself: processes, signals, process fds and the proc files are the
runtime's (mcd.runtime.interface.Runtime). mcd.engine.open_manager builds one over the
real layers.
"""

from __future__ import annotations

from mcd.manager.core import Manager
from mcd.manager.events import EventBus
from mcd.manager.state import ACTIVE, Container, State, Status

__all__ = ["ACTIVE", "Container", "EventBus", "Manager", "State", "Status"]
