"""A container's state: the typed ``State`` (what state.json holds), the ``Status`` it is
in, which status may follow which, and the ``Container`` the manager keeps in memory.

    created --start--> starting --launched--> running <--pause/unpause--> paused
       ^                 |  (a failed start goes back                |        |
       |                 |   to where it came from)                 exit     exit
       +-----------------+                                            v        v
    stopped <--------------------------------------------------------- stopped
    stopped --start--> starting ...                 broken: files unreadable, no way out
                                                    but destroy

``starting`` is on disk before a launch, so that a daemon that dies mid-start knows on
the next boot that a half-made start must be cleaned (mcd.manager.policy.restore_action).
Destroyed is not a status: the container's directory is gone.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum

from mcd.errors import Conflict
from mcd.runtime.interface import Proc
from mcwire.spec import ContainerSpec


class Status(StrEnum):
    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    BROKEN = "broken"


ACTIVE = (Status.RUNNING, Status.PAUSED)

# Which status may follow which. A start goes back to where it came from if it fails.
ALLOWED: dict[Status, frozenset[Status]] = {
    Status.CREATED: frozenset({Status.STARTING}),
    Status.STARTING: frozenset({Status.RUNNING, Status.CREATED, Status.STOPPED}),
    Status.RUNNING: frozenset({Status.PAUSED, Status.STOPPED}),
    Status.PAUSED: frozenset({Status.RUNNING, Status.STOPPED}),
    Status.STOPPED: frozenset({Status.STARTING}),
    Status.BROKEN: frozenset(),
}

# The event a transition publishes, and what of the state it carries.
EVENTS: dict[tuple[Status, Status], tuple[str, tuple[str, ...]]] = {
    (Status.STARTING, Status.RUNNING): ("started", ("pid",)),
    (Status.RUNNING, Status.PAUSED): ("paused", ()),
    (Status.PAUSED, Status.RUNNING): ("unpaused", ()),
    (Status.RUNNING, Status.STOPPED): ("died", ("exit_code",)),
    (Status.PAUSED, Status.STOPPED): ("died", ("exit_code",)),
}


def check_transition(frm: Status, to: Status, name: str) -> None:
    """Refuse a transition the state machine does not have (a bug, not bad input: every
    operation refuses the user's mistakes with its own words first)."""
    if to not in ALLOWED[frm]:
        raise Conflict(f'container "{name}": cannot go from {frm} to {to}', container=name,
                       step="state")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# state.json always has these keys (as the first daemon wrote them); the others only once set.
_ALWAYS = ("status", "restart_count", "exit_code", "oom_killed", "started_at", "finished_at",
           "pid", "monitor_pid")


@dataclass
class State:
    """What state.json holds. Unknown keys (a newer daemon's) are kept and written back; a
    key is written once it has been set (even to null), as the dict it replaces did."""
    status: Status = Status.CREATED
    restart_count: int = 0
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    pid: int | None = None
    monitor_pid: int | None = None
    pid_start_time: int | None = None
    monitor_start_time: int | None = None
    signal: int | None = None
    error: str | None = None
    memory_peak: int | None = None
    memory_limit: int | None = None
    manually_stopped: bool | None = None    # None: never set (not written)
    previous_status: Status | None = None     # set while starting
    network: dict | None = None     # the network attachment while running (mcd.network)
    extra: dict = field(default_factory=dict)
    _set: set = field(default_factory=set, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict) -> State:
        """From state.json; raises ValueError for a status it does not know."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "_set"}
        kw = {k: v for k, v in d.items() if k in names}
        kw["status"] = Status(d.get("status"))
        if kw.get("previous_status") is not None:
            kw["previous_status"] = Status(kw["previous_status"])
        kw["restart_count"] = kw.get("restart_count") or 0
        kw["oom_killed"] = bool(kw.get("oom_killed"))
        return cls(**kw, extra={k: v for k, v in d.items() if k not in names}, _set=set(kw))

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "_set"):
                continue
            v = getattr(self, f.name)
            if f.name in ("previous_status", "network") and v is None:
                continue    # only while starting / running
            if f.name in _ALWAYS or f.name in self._set or v is not None:
                out[f.name] = str(v) if isinstance(v, Status) else v
        return {**self.extra, **out}

    def update(self, **fields) -> None:
        for k, v in fields.items():
            if k in ("extra", "_set") or not hasattr(self, k):
                raise AttributeError(f"State has no field {k!r}")
            setattr(self, k, v)
            self._set.add(k)


class Container:
    """One container in memory: spec, config, state, and what the runtime holds of it.
    ``lock`` (re-entrant) is held for the whole of an operation on it; ``cond`` wakes
    exit waiters."""

    def __init__(self, cid: str, spec: ContainerSpec | None, created_at: str, state: State,
                 config: dict | None = None):
        self.id = cid
        self.spec = spec
        self.created_at = created_at
        self.state = state
        self.config = config or {}
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.cgroup = None
        self.monitor: Proc | None = None    # held by the runtime while it runs
        self.init: Proc | None = None
        self.exits = 0          # bumped on every exit, so waiters see one exit even on restart
        self.destroyed = False
        self.restart_timer = None

    @property
    def name(self) -> str:
        return self.spec.name if self.spec else self.config.get("name") or self.id[:12]

    @property
    def status(self) -> Status:
        return self.state.status

    @property
    def auto_remove(self) -> bool:
        return bool(self.config.get("auto_remove"))

    @property
    def template(self) -> str | None:
        """The template it starts from (for a broken one, what its config says)."""
        if self.spec is not None:
            return self.spec.root.template
        spec = self.config.get("spec")
        root = spec.get("root") if isinstance(spec, dict) else None
        return root.get("template") if isinstance(root, dict) else None

    def summary(self) -> dict:
        s = self.state
        spec = self.spec
        return {
            "id": self.id, "short_id": self.id[:12], "name": self.name,
            "template": (spec.root.template or (self.config.get("image") or {}).get("ref"))
            if spec else None,
            "image": spec.root.image or None if spec else None,
            "command": " ".join(spec.process.args) if spec else None,
            "status": str(Status.CREATED if s.status == Status.STARTING else s.status),
            "exit_code": s.exit_code, "oom_killed": s.oom_killed,
            "created_at": self.created_at, "started_at": s.started_at,
            "finished_at": s.finished_at, "restart_count": s.restart_count,
            "pid": s.pid if s.status in ACTIVE else None,
            "network": spec.network if spec else None,
            "ports": (s.network or {}).get("ports", []) if s.status in ACTIVE else [],
        }
