"""Start and exit: a container's way to running and back to stopped, and what its restart
policy and --rm make of an exit (the rules are mcd.manager.policy's; this carries them
out). A mixin of mcd.manager.core.Manager: ``self`` is the manager."""

from __future__ import annotations

import logging
import threading
import time

from mcd.errors import Conflict, ExitStatus, MCError, NotFound
from mcd.manager import policy
from mcd.manager.control import Control
from mcd.manager.state import ACTIVE, Container, Status, now_iso
from mcd.manager.views import stdio_for

log = logging.getLogger("mcd.manager")


class Lifecycle(Control):
    # -- start
    def start(self, ref, *, attach: bool = False, fds=(), stdin: bool = False,
              pty_to_caller: bool = True, manual: bool = True):
        """Start a created or stopped container; returns the runtime's Launched. With
        attach, fds are the caller's stdin, stdout, stderr (see views.stdio_for). A container
        to be auto-removed whose launch fails is removed (as dockerd does), whoever started
        it: run, the Docker API's create-then-start, or start."""
        c = ref if isinstance(ref, Container) else self.get(ref)
        stdio = stdio_for(c.spec.process.terminal if c.spec else False, attach, fds, stdin,
                          pty_to_caller=pty_to_caller)
        with c.lock:
            if c.destroyed:
                raise NotFound(f'no such container: "{c.name}"', container=c.name)
            if c.status == Status.BROKEN:
                raise Conflict(f'container "{c.name}" is broken: {c.state.error}', container=c.name)
            if c.status in ACTIVE or c.status == Status.STARTING:
                raise Conflict(f'container "{c.name}" is already running', container=c.name)
            if c.restart_timer is not None:
                c.restart_timer.cancel()
                c.restart_timer = None
            if manual:
                c.state.update(manually_stopped=False, restart_count=0)
            try:
                return self._launch(c, stdio)
            except MCError as err:
                if not c.auto_remove:
                    raise
                failed = err
        try:
            self.destroy(c, force=True)
        except MCError as err:
            log.error("container %s: removing after a failed start: %s", c.name, err)
        raise failed

    def _launch(self, c: Container, stdio):
        t0 = time.perf_counter_ns()
        paths = self._paths(c)
        previous = c.status
        self._remove_cgroup(c.id)   # one left by a crash: nothing may still run in it
        cg = self.cgroups.create(c.id, c.spec.linux.resources)
        t1 = time.perf_counter_ns()
        try:
            self._transition(c, Status.STARTING, previous_status=previous)
            t2 = time.perf_counter_ns()
            net = self.networks.attach(c.id, c.name, c.spec, paths.hosts)
            t_net = time.perf_counter_ns()
            launched = self.runtime.start(c.spec, paths, cg.self_join_files(), stdio,
                                          netns=net.netns if net else None,
                                          etc=net.etc if net else None)
            if net is not None:
                self.networks.started(c.id)     # peers that came meanwhile
            t3 = time.perf_counter_ns()
        except MCError as err:
            # Kept for ps/inspect, as Docker does: the container stays, with why it failed.
            c.state.update(error=str(err),
                           exit_code=err.exit_code if err.exit_code in (
                               ExitStatus.CANNOT_INVOKE, ExitStatus.NOT_FOUND) else None)
            self._undo_start(c, cg, previous)
            if err.container is None:
                err.container = c.name
                if not err.message.startswith("container "):
                    err.message = f'container "{c.name}": {err.message}'
            raise
        except BaseException:
            self._undo_start(c, cg, previous)
            raise
        c.cgroup = cg
        c.monitor = self.runtime.adopt(launched.monitor_pid, None)
        c.init = self.runtime.adopt(launched.pid, launched.pid_start_time)
        self._transition(c, Status.RUNNING, pid=launched.pid,
                         pid_start_time=launched.pid_start_time,
                         monitor_pid=launched.monitor_pid,
                         monitor_start_time=c.monitor.start_time if c.monitor else None,
                         started_at=now_iso(), finished_at=None, exit_code=None,
                         oom_killed=False, error=None, memory_peak=None, previous_status=None,
                         network=self.networks.info(c.id))
        launched.timing = {"cgroup": t1 - t0, "persist": t2 - t1, "network": t_net - t2,
                           "launch": t3 - t_net, "record": time.perf_counter_ns() - t3}
        launched.timing.update(self.networks.timing(c.id))     # the network phase's parts
        if c.monitor is None:
            # The monitor already ended (and was reaped) before we could watch it.
            threading.Thread(target=self._on_exit, args=(c,), daemon=True).start()
        else:
            self.runtime.watch(c.monitor, lambda c=c: self._on_exit(c))
        self.on_change()
        return launched

    def _undo_start(self, c: Container, cg, previous: Status) -> None:
        try:
            cg.kill_all()
            cg.destroy()
        except MCError as err:
            log.error("container %s: cleaning the cgroup after a failed start: %s", c.name, err)
        self.networks.detach(c.id)
        if c.status == Status.STARTING:     # else "starting" was refused: nothing to undo
            self._transition(c, previous, previous_status=None)

    # -- exit
    def _on_exit(self, c: Container) -> None:
        try:
            with c.lock:
                if c.status not in ACTIVE:
                    return
                # The network is held before the exit shows (so stop, rm and a new start wait
                # for its release) and released after c.lock: the exit reaches waiters (run's
                # exit line) without waiting for CNI DEL, ~100 ms of iptables.
                held = self.networks.hold(c.id)
                try:
                    self._record_exit(c)
                    then = policy.after_exit(c.auto_remove, self._should_restart(c))
                except BaseException:
                    if held is not None:
                        held()
                    raise
            if held is not None:
                held()          # CNI DEL, netns, record; then the hold is let go
            self.on_change()
            if then == policy.AfterExit.REMOVE:
                try:
                    self.destroy(c, force=True)
                except MCError as err:
                    log.error("container %s: auto-remove failed: %s", c.name, err)
            elif then == policy.AfterExit.RESTART:
                self._schedule_restart(c)
        except Exception:
            log.exception("container %s: handling its exit failed", c.name)

    def _record_exit(self, c: Container) -> None:
        """Final stats, exit status and cgroup removal; caller holds c.lock."""
        exit_info = None
        try:
            exit_info = self.runtime.read_exit(self._paths(c))
        except MCError as err:
            log.warning("container %s: reading exit status: %s", c.name, err)
        except Exception:
            log.exception("container %s: reading exit status", c.name)
        cg = c.cgroup
        if cg is None:
            try:
                cg = self.cgroups.open(c.id)
            except MCError:
                cg = None
        oom = False
        stats = {}
        if cg is not None:
            try:
                stats = cg.stats() or {}
                oom = cg.oom_killed() > 0
            except MCError as err:
                log.warning("container %s: final stats: %s", c.name, err)
            try:
                cg.kill_all()       # PID 1 is gone; anything left in the cgroup must go too
                cg.destroy()
            except MCError as err:
                log.error("container %s: removing its cgroup: %s", c.name, err)
        # The network attachment goes in _on_exit (after the exit is reported), or at restore.
        if exit_info is None:
            code, sig = 255, None
            c.state.error = "exit status lost: the monitor ended without recording it"
        else:
            code, sig = exit_info.get("exit_code"), exit_info.get("signal")
        if oom and code is None:
            code = 137
        c.cgroup = None
        if c.monitor is not None:
            self.runtime.unwatch(c.monitor)
        self.runtime.release(c.monitor)
        self.runtime.release(c.init)
        c.monitor = c.init = None
        c.exits += 1
        self._transition(c, Status.STOPPED, exit_code=code, signal=sig, oom_killed=oom,
                         finished_at=(exit_info or {}).get("finished_at") or now_iso(),
                         pid=None, memory_peak=stats.get("memory_peak"),
                         memory_limit=stats.get("memory_limit"), network=None)
        c.cond.notify_all()
        if oom:
            self.events.publish("oom", c, memory_limit=stats.get("memory_limit"),
                                memory_peak=stats.get("memory_peak"))

    # -- restart by policy
    def _should_restart(self, c: Container) -> bool:
        if self._closing or c.destroyed:
            return False
        return policy.should_restart(c.spec.restart_policy, c.state)

    def _schedule_restart(self, c: Container) -> None:
        def again():
            with c.lock:
                c.restart_timer = None
                if c.destroyed or c.status in ACTIVE or not self._should_restart(c):
                    return
                c.state.restart_count += 1
                try:
                    self.start(c, manual=False)
                except MCError as err:
                    log.error("container %s: restart by policy failed: %s", c.name, err)
                    c.state.error = str(err)
                    self._persist(c)

        with c.lock:
            c.restart_timer = self._timer(policy.restart_delay(c.state.restart_count), again)
            c.restart_timer.daemon = True
            c.restart_timer.start()
