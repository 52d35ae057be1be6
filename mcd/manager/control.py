"""Stop, kill, restart, pause, unpause, destroy, prune, wait: what a user does to a
container that exists. A mixin of mcd.manager.core.Manager (``self`` is the manager);
signals go through the runtime, freezing through the container's cgroup."""

from __future__ import annotations

from mcd.errors import Conflict, MCError, NotFound, NotRunning
from mcd.manager.state import ACTIVE, Container, Status
from mcd.runtime.interface import SIGINT, SIGKILL, SIGTERM, Proc, signal_number

KILL_WAIT = 30      # seconds an exit may take after SIGKILL before the operation fails


class Control:
    def _signal(self, c: Container, sig: int) -> None:
        proc = c.init or Proc(c.state.pid, c.state.pid_start_time)
        try:
            self.runtime.signal(proc, sig)
        except MCError as err:
            err.container = c.name
            raise

    def _remove_cgroup(self, cid: str) -> None:
        """Kill whatever runs in the container's cgroup, if it has one, and remove it."""
        cg = self.cgroups.open(cid)
        if cg is not None:
            cg.kill_all()
            cg.destroy()

    def _kill_all(self, c: Container) -> None:
        cg = c.cgroup or self.cgroups.open(c.id)
        if cg is not None:
            cg.kill_all()
            if c.status == Status.PAUSED:
                cg.thaw()
        self._signal(c, SIGKILL)

    def _cgroup_of(self, c: Container):
        if c.cgroup is None:
            c.cgroup = self.cgroups.open(c.id)
        if c.cgroup is None:
            raise MCError(f'container "{c.name}": its cgroup is gone', container=c.name,
                          step="cgroup")
        return c.cgroup

    def _kill_and_wait(self, c: Container, step: str) -> None:
        exits = c.exits
        self._kill_all(c)
        if not c.cond.wait_for(lambda: c.exits != exits, timeout=KILL_WAIT):
            raise MCError(f'container "{c.name}": still running {KILL_WAIT} s after SIGKILL',
                          container=c.name, step=step)

    def _cancel_restart(self, c: Container) -> None:
        if c.restart_timer is not None:
            c.restart_timer.cancel()
            c.restart_timer = None

    # -- stop, kill, restart
    def stop(self, ref, timeout: int | None = None) -> Container:
        c = ref if isinstance(ref, Container) else self.get(ref)
        with c.lock:
            self._cancel_restart(c)
            c.state.manually_stopped = True
            self._persist(c)
            if c.status not in ACTIVE:
                return c
            t = c.spec.stop_timeout if timeout is None else timeout
            exits = c.exits
            self._signal(c, signal_number(c.spec.stop_signal))
            if c.status == Status.PAUSED and c.cgroup is not None:
                c.cgroup.thaw()
            if not c.cond.wait_for(lambda: c.exits != exits, timeout=t):
                self._kill_and_wait(c, "stop")
            self.networks.settled(c.id)     # its network is released when stop returns
        return c

    def kill(self, ref, sig: str | int = "SIGKILL") -> Container:
        c = self.get(ref)
        num = signal_number(sig)
        with c.lock:
            if c.status not in ACTIVE:
                raise NotRunning(f'container "{c.name}" is not running', container=c.name)
            if num in (SIGKILL, SIGTERM, SIGINT):
                c.state.manually_stopped = True
                self._persist(c)
            self._signal(c, num)
        return c

    def restart(self, ref, timeout: int | None = None) -> Container:
        c = self.get(ref)
        with c.lock:
            self.stop(c, timeout)
            self.start(c)
        return c

    # -- pause
    def pause(self, ref) -> Container:
        c = self.get(ref)
        with c.lock:
            if c.status == Status.PAUSED:
                raise Conflict(f'container "{c.name}" is already paused', container=c.name)
            if c.status != Status.RUNNING:
                raise NotRunning(f'container "{c.name}" is not running', container=c.name)
            self._cgroup_of(c).freeze()
            self._transition(c, Status.PAUSED)
        self.on_change()
        return c

    def unpause(self, ref) -> Container:
        c = self.get(ref)
        with c.lock:
            if c.status != Status.PAUSED:
                raise Conflict(f'container "{c.name}" is not paused', container=c.name)
            self._cgroup_of(c).thaw()
            self._transition(c, Status.RUNNING)
        self.on_change()
        return c

    # -- destroy
    def destroy(self, ref, force: bool = False) -> Container:
        c = ref if isinstance(ref, Container) else self.get(ref)
        with c.lock:
            if c.destroyed:
                return c
            self._cancel_restart(c)
            if c.status in ACTIVE:
                if not force:
                    raise Conflict(f'container "{c.name}" is running: stop it first or use rm -f',
                                   container=c.name)
                c.state.manually_stopped = True
                self._kill_and_wait(c, "destroy")
            # Also for a broken one: its state is unreadable, but its cgroup may still hold
            # processes, and nothing may outlive the container.
            try:
                self._remove_cgroup(c.id)
            except MCError as err:
                raise MCError(f'container "{c.name}": removing its cgroup: {err}',
                              container=c.name, step="destroy") from err
            self.networks.detach(c.id)
            self.store.remove(c.id, durable=not c.auto_remove, background=True)
            c.destroyed = True
            c.cond.notify_all()
        with self._lock:
            self._by_id.pop(c.id, None)
            if self._names.get(c.name) == c.id:
                self._names.pop(c.name, None)
        self.events.publish("destroyed", c)
        self.on_change()
        return c

    def prune(self) -> list[str]:
        removed = []
        for c in self._all():
            if c.status in (Status.STOPPED, Status.CREATED):
                try:
                    self.destroy(c)
                    removed.append(c.id)
                except (Conflict, NotFound):
                    pass
        return removed

    # -- wait
    def wait(self, ref, client_gone=None) -> dict:
        c = ref if isinstance(ref, Container) else self.get(ref)
        with c.lock:
            # A created container is waited for too: until it has been started and has
            # exited (Docker's `wait`), or is removed.
            if c.status in (*ACTIVE, Status.STARTING, Status.CREATED) or c.restart_timer is not None:
                exits = c.exits
                while c.exits == exits and not c.destroyed:
                    # Wakes once a second only while a client waits, to notice it hanging up.
                    c.cond.wait(1.0 if client_gone else None)
                    if client_gone and client_gone():
                        break
            s = c.state
            return {"id": c.id, "name": c.name, "exit_code": s.exit_code,
                    "oom_killed": s.oom_killed, "memory_limit": s.memory_limit,
                    "memory_peak": s.memory_peak, "error": s.error}
