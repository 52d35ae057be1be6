"""What a caller reads of a container or runs in it: inspect, stats, top, logs, exec, and
the runtime's Stdio made of a caller's plain fds. A mixin of mcd.manager.core.Manager
(``self`` is the manager); the processes and logs are the runtime's to read."""

from __future__ import annotations

import logging

from mcd.errors import InvalidArgument, MCError, NotRunning
from mcd.manager.state import ACTIVE, Container, Status
from mcd.runtime.interface import Stdio
from mcwire.spec import Process

log = logging.getLogger("mcd.manager")


def stdio_for(terminal: bool, attach: bool, fds, stdin: bool, what: str = "attach",
              pty_to_caller: bool = True) -> Stdio:
    """The runtime's Stdio for a start or exec from the caller's plain fds: none when not
    attached; for a terminal, the pty master handed back (unless pty_to_caller is False:
    then the monitor keeps it and copies to the fds); else fds are the caller's stdin,
    stdout, stderr (each may be None: not attached), stdin used only if asked."""
    if not attach:
        return Stdio()
    if terminal and pty_to_caller:
        return Stdio(tty_to_caller=True)
    if len(fds) != 3:
        raise InvalidArgument(f"{what} needs the client's stdin, stdout and stderr "
                              f"passed as 3 fds (SCM_RIGHTS), got {len(fds)}")
    return Stdio(stdin=fds[0] if stdin else None, stdout=fds[1], stderr=fds[2])


class Views:
    def inspect(self, ref) -> dict:
        c = self.get(ref)
        with c.lock:
            out = c.summary()
            out["spec"] = c.spec.to_dict() if c.spec else None
            out["state"] = c.state.to_dict()
            out["auto_remove"] = c.auto_remove
            if c.config.get("image"):
                out["image_config"] = c.config["image"]    # which values came from the image
            out["dir"] = self.store.container_dir(c.id)
            out["network_settings"] = self.networks.info(c.id) if c.status in ACTIVE else None
            out["limits"] = None
            if c.cgroup is not None and c.status in ACTIVE:
                try:
                    out["limits"] = c.cgroup.effective()
                except MCError as err:
                    out["limits"] = {"error": str(err)}
        return out

    def stats(self, ref) -> dict:
        c = self.get(ref)
        with c.lock:
            if c.status not in ACTIVE or c.cgroup is None:
                return {"id": c.id, "name": c.name, "status": str(c.status)}
            return {"id": c.id, "name": c.name, "status": str(c.status),
                    **(c.cgroup.stats() or {})}

    def stats_all(self) -> list[dict]:
        cs = [c for c in self._all() if c.status in ACTIVE]
        try:
            # One pass over the files of every running container (the driver keeps them open).
            by_id = self.cgroups.stats_all([c.id for c in cs])
        except MCError as err:
            log.warning("stats of all containers: %s", err)
            by_id = {}
        return [{"id": c.id, "name": c.name, "status": str(c.status), **by_id[c.id]}
                for c in cs if c.id in by_id]

    def top(self, ref) -> dict:
        c = self.get(ref)
        with c.lock:
            if c.status not in ACTIVE:
                raise NotRunning(f'container "{c.name}" is not running', container=c.name)
            pid = c.state.pid
            cg = c.cgroup
        pids = []
        if cg is not None and hasattr(cg, "pids"):
            try:
                pids = sorted(cg.pids())     # the cgroup sees exec'd processes too
            except MCError:
                pids = []
        return self.runtime.top(pids, pid)

    def logs(self, ref, *, tail: int | None = None, follow: bool = False, stop=None):
        """Log entries of a container; with follow, until it stops running or stop()."""
        c = ref if isinstance(ref, Container) else self.get(ref)

        def done():
            return c.destroyed or c.status not in (*ACTIVE, Status.STARTING) \
                or (stop is not None and stop())
        return self.runtime.logs(self.store.log_path(c.id), tail, follow, done)

    def exec(self, ref, process: dict, *, fds=(), stdin: bool = False, detach: bool = False,
             pty_to_caller: bool = True):
        """Run process in the running container; unless detached, fds are the caller's
        stdin, stdout, stderr (see stdio_for). Returns the runtime's handle."""
        terminal = isinstance(process, dict) and process.get("terminal") is True
        stdio = Stdio() if detach else stdio_for(terminal, True, fds, stdin, what="exec",
                                                 pty_to_caller=pty_to_caller)
        c = self.get(ref)
        if not isinstance(process, dict):
            raise InvalidArgument("process: expected an object")
        with c.lock:
            if c.status != Status.RUNNING:
                raise NotRunning(f'container "{c.name}" is not running', container=c.name)
            base = c.spec.process.to_dict()
            data = dict(process)
            if "env" in data:
                if not isinstance(data["env"], list):
                    raise InvalidArgument("process.env: expected a list")
                keys = {e.split("=", 1)[0] for e in data["env"] if isinstance(e, str)}
                data["env"] = [e for e in base["env"] if e.split("=", 1)[0] not in keys] + data["env"]
            proc = Process.from_dict({**base, **data}, "process")
            cg_procs = c.cgroup.self_join_files() if c.cgroup is not None else []
            handle = self.runtime.exec(c.state.pid, proc, c.spec, cg_procs, stdio)
        self.events.publish("exec", c, pid=handle.pid, command=" ".join(proc.args))
        return handle
