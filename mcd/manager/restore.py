"""Live restore: at daemon start, rebuild the containers from disk and find their processes
again. What happens to each situation is mcd.manager.policy's (restore_action,
at_daemon_start); this reads, asks the runtime, and carries it out. A mixin of
mcd.manager.core.Manager (``self`` is the manager)."""

from __future__ import annotations

import logging

from mcd.errors import InvalidArgument, MCError
from mcd.manager import policy
from mcd.manager.policy import AtStart, Found
from mcd.manager.state import ACTIVE, Container, State, Status
from mcwire.spec import ContainerSpec
from mcd.store import CorruptState

log = logging.getLogger("mcd.manager")


class Restore:
    def restore(self) -> dict:
        """Rebuild the view from disk and the running processes. Returns what was done,
        for the log."""
        report = {"adopted": [], "exited": [], "cleaned": [], "broken": [], "restarting": [],
                  "removed": []}
        report["cleaned"] += self.store.clean_half_made()
        self.store.clean_trash()
        for cid in self.store.list_ids():
            c = self._load(cid, report)
            with self._lock:
                self._by_id[cid] = c
                if c.name in self._names:
                    log.error("container %s: name %s also used by %s", cid[:12], c.name,
                              self._names[c.name][:12])
                else:
                    self._names[c.name] = cid
        cs = self._all()
        for c in cs:
            self._readopt(c, report)
        # Every attachment of a container that is not running now is DELeted (a start cut
        # short, an exit while the daemon was away, a container removed meanwhile).
        net = self.networks.restore({c.id for c in cs if c.status in ACTIVE})
        report["network cleaned"] = net["cleaned"]
        for c in cs:
            then, clear = policy.at_daemon_start(c.spec.restart_policy if c.spec else None,
                                                 c.state, c.auto_remove,
                                                 c.id in report["exited"])
            if clear:
                c.state.manually_stopped = False
            if then == AtStart.REMOVE:
                # Finish it, as the exit handler would have.
                try:
                    self.destroy(c, force=True)
                    report["removed"].append(c.id)
                except MCError as err:
                    log.error("container %s: auto-remove at startup failed: %s", c.name, err)
            elif then == AtStart.RESTART:
                report["restarting"].append(c.id)
                self._schedule_restart(c)
        return report

    def _load(self, cid: str, report: dict) -> Container:
        config = None
        try:
            config = self.store.read_config(cid)
            raw = self.store.read_state(cid)
            if config is None:
                raise CorruptState(self.store.config_path(cid), "missing")
            if raw is None:
                raise CorruptState(self.store.state_path(cid), "missing")
            spec = ContainerSpec.from_dict(config["spec"])
            if not isinstance(raw, dict):
                raise CorruptState(self.store.state_path(cid), "not an object")
            try:
                state = State.from_dict(raw)
            except (ValueError, TypeError) as err:
                raise CorruptState(self.store.state_path(cid), str(err)) from None
        except (CorruptState, InvalidArgument, KeyError, TypeError) as err:
            why = str(err)
            log.error("container %s is broken: %s", cid[:12], why)
            report["broken"].append(cid)
            cfg = config if isinstance(config, dict) else {}
            return Container(cid, None, cfg.get("created") or "",
                             State(status=Status.BROKEN, error=why), cfg)
        return Container(cid, spec, config.get("created", ""), state, config)

    def _readopt(self, c: Container, report: dict) -> None:
        s = c.state
        monitor = None
        if s.status in (Status.RUNNING, Status.PAUSED):
            monitor = self.runtime.adopt(s.monitor_pid, s.monitor_start_time)
            if monitor is not None and self.runtime.has_exited(monitor):
                # Ended but not yet reaped by its parent (a zombie): handle its exit now, so
                # READY=1 already reflects it (and a --rm container is already gone).
                self.runtime.release(monitor)
                monitor = None
        found = policy.restore_action(s.status, monitor is not None)
        if found == Found.ADOPT:
            c.monitor = monitor
            c.init = self.runtime.adopt(s.pid, s.pid_start_time)
            try:
                c.cgroup = self.cgroups.open(c.id)
            except MCError as err:
                log.error("container %s: reopening its cgroup: %s", c.name, err)
            self.runtime.watch(monitor, lambda c=c: self._on_exit(c))
            report["adopted"].append(c.id)
            log.info("container %s: re-adopted (monitor pid %s)", c.name, s.monitor_pid)
        elif found == Found.UNDO_START:
            # A start that never finished: whatever it made goes, the container is as before.
            try:
                self._remove_cgroup(c.id)
            except MCError as err:
                log.error("container %s: cleaning a half-made start: %s", c.name, err)
            before = s.previous_status if s.previous_status == Status.STOPPED else Status.CREATED
            with c.lock:
                self._transition(c, before, previous_status=None)
            report["cleaned"].append(c.id)
        elif found == Found.RECORD_EXIT:
            with c.lock:
                self._record_exit(c)
            report["exited"].append(c.id)
            log.info("container %s: exited while the daemon was away (exit code %s)",
                     c.name, s.exit_code)
