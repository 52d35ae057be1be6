"""The manager's rules as pure functions: restart policy and back-off, what happens when a
container's PID 1 ends (restart, remove for --rm, or stay stopped), and what restore does
with each situation it finds on disk. No locks, no I/O: tests/python/unit/test_manager_*
call them directly, and the manager only carries their answers out.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum

from mcd.manager.state import ACTIVE, State, Status
from mcwire.spec import parse_restart_policy

BACKOFF_FIRST = 0.1     # seconds before the first restart; doubled each time (Docker's rule)
BACKOFF_MAX = 10.0


def should_restart(restart_policy: str, state: State) -> bool:
    """Whether a container that has stopped is restarted by its policy: "no" never, a
    user's stop never, "on-failure[:N]" after a non-zero exit while fewer than N restarts
    were made, "always" and "unless-stopped" otherwise."""
    policy, max_retries = parse_restart_policy(restart_policy)
    if policy == "no" or state.manually_stopped:
        return False
    if policy == "on-failure":
        if state.exit_code == 0:
            return False
        if max_retries and state.restart_count >= max_retries:
            return False
    return True


def restart_delay(restart_count: int) -> float:
    """Back-off before restart number restart_count+1: 0.1 s doubling, at most 10 s."""
    return min(BACKOFF_FIRST * (2 ** min(restart_count, 10)), BACKOFF_MAX)


class AfterExit(StrEnum):
    RESTART = "restart"
    REMOVE = "remove"       # --rm: the container goes with its process
    KEEP = "keep"           # stays stopped


def after_exit(auto_remove: bool, restart: bool) -> AfterExit:
    """A restart policy that still applies wins over --rm (Docker refuses the pair; a
    daemon that finds them together restarts first and removes at the end)."""
    if restart:
        return AfterExit.RESTART
    return AfterExit.REMOVE if auto_remove else AfterExit.KEEP


class Found(StrEnum):
    """What restore does with a container it reads from disk."""
    ADOPT = "adopt"             # its monitor still runs: watch it again
    RECORD_EXIT = "record_exit"  # it ended while the daemon was away: record how
    UNDO_START = "undo_start"   # a start the daemon never finished: clean, back to before
    LEAVE = "leave"             # created, stopped or broken: nothing runs


def restore_action(status: Status, monitor_alive: bool) -> Found:
    """By status on disk and whether its monitor (same pid, same start time) still runs.
    A half-made start is undone even if something of it runs: the daemon never learnt its
    pids, so nothing of it can be trusted (its cgroup is killed)."""
    if status == Status.STARTING:
        return Found.UNDO_START
    if status in ACTIVE:
        return Found.ADOPT if monitor_alive else Found.RECORD_EXIT
    return Found.LEAVE


class AtStart(StrEnum):
    """What restore does next with a container once every one is loaded."""
    REMOVE = "remove"
    RESTART = "restart"
    KEEP = "keep"


def at_daemon_start(restart_policy: str | None, state: State, auto_remove: bool,
                    exited_while_away: bool) -> tuple[AtStart, bool]:
    """-> (what to do, whether to clear manually_stopped first).

    An auto-remove container that is broken or stopped for good is removed (its removal
    was due when the daemon went away, or a host crash cut its unsynced state short).
    Those that were running when the daemon (or the host) went away come back if their
    policy says so, and so does every stopped always/unless-stopped one that no user
    stopped (Docker's rule at daemon start, which also covers a restart back-off cut
    short). A user's stop holds an "always" container only until the daemon restarts;
    "unless-stopped" stays stopped: the one difference between the two."""
    status = state.status
    if auto_remove and (status == Status.BROKEN or (
            status == Status.STOPPED and not should_restart(restart_policy, state))):
        return AtStart.REMOVE, False
    if status != Status.STOPPED:
        return AtStart.KEEP, False
    policy, _ = parse_restart_policy(restart_policy)
    clear = policy == "always" and bool(state.manually_stopped)
    probe = dataclasses.replace(state, manually_stopped=False) if clear else state
    if not should_restart(restart_policy, probe):
        return AtStart.KEEP, clear
    if exited_while_away or policy in ("always", "unless-stopped"):
        return AtStart.RESTART, clear
    return AtStart.KEEP, clear
