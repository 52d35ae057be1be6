"""The container manager: lifecycle state machine, locks, events, restart policies,
live restore.

States: created -> running (<-> paused) -> stopped (-> running again) -> destroyed,
plus ``broken`` for a container whose files on disk cannot be read. ``starting`` is
written to disk before a launch so that a daemon that dies mid-start knows on the next
boot that a half-made start must be cleaned.

Locking: one lock guards the id/name maps and is never held across slow work; each
container has its own re-entrant lock (with a condition for exit waiters) held for
the whole of an operation on it. Exits arrive from one watcher thread that polls the
pidfds of all monitors (no timeouts: an idle daemon never wakes up).
"""

from __future__ import annotations

import logging
import os
import queue
import random
import secrets
import select
import signal
import threading
import time
from datetime import datetime, timezone

from mcd.errors import (Conflict, InvalidArgument, KernelError, MCError, NotFound,
                        NotRunning)
from mcwire.spec import ContainerSpec, Process, Resources, parse_restart_policy, validate_name
from mcd.store import CorruptState, Store

log = logging.getLogger("mcd.manager")

CREATED, STARTING, RUNNING, PAUSED, STOPPED, BROKEN = (
    "created", "starting", "running", "paused", "stopped", "broken")
ACTIVE = (RUNNING, PAUSED)

ADJECTIVES = ("brave", "calm", "clever", "eager", "fancy", "gentle", "happy", "jolly", "keen",
              "lucid", "mellow", "nifty", "proud", "quiet", "rapid", "sharp", "silly", "sunny",
              "tender", "vivid", "witty", "zen", "bold", "cosy", "dreamy", "epic", "frosty",
              "gallant", "hungry", "kind", "lively", "modest", "noble", "polite", "quirky",
              "relaxed", "serene", "trusting", "upbeat", "wizardly")
NOUNS = ("turing", "lovelace", "hopper", "ritchie", "thompson", "torvalds", "knuth", "dijkstra",
         "hamilton", "noether", "curie", "tesla", "babbage", "shannon", "mccarthy", "liskov",
         "lamport", "wirth", "backus", "kernighan", "pike", "stallman", "cerf", "berners",
         "goldberg", "perlman", "allen", "feynman", "euler", "gauss", "hypatia", "kepler",
         "newton", "pascal", "ramanujan", "sammet", "wozniak", "yonath", "zuse", "bell")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def proc_start_time(pid: int, proc: str = "/proc") -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot): with the pid, it names one process."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def _pidfd(pid: int | None, start_time: int | None, proc: str = "/proc") -> int | None:
    """A pidfd for pid if it is still the process that started at start_time."""
    if not pid:
        return None
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    # Checked after opening: if the start time still matches, the fd names that very process.
    if start_time is not None and proc_start_time(pid, proc) != start_time:
        os.close(fd)
        return None
    return fd


def _has_exited(pidfd: int) -> bool:
    """A pidfd polls readable once its process has exited, zombie or reaped."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def _close(fd):
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


# ---------------------------------------------------------------- events

class EventBus:
    def __init__(self, history: int = 256):
        self._subs: set[queue.Queue] = set()
        self._lock = threading.Lock()
        self._history: list[dict] = []
        self._max = history

    def publish(self, kind: str, c: "Container", **extra) -> None:
        ev = {"type": kind, "id": c.id, "name": c.name, "time": now_iso(), **extra}
        with self._lock:
            self._history.append(ev)
            del self._history[:-self._max]
            subs = list(self._subs)
        for q in subs:
            q.put(ev)

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue()
        with self._lock:
            self._subs.add(q)
        return q

    def unsubscribe(self, q) -> None:
        with self._lock:
            self._subs.discard(q)

    def recent(self) -> list[dict]:
        with self._lock:
            return list(self._history)


# ---------------------------------------------------------------- exit watcher

class ExitWatcher:
    """One thread, one poll() over the pidfds of all monitors and a wake pipe."""

    def __init__(self):
        self._r, self._w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._lock = threading.Lock()
        self._callbacks: dict[int, callable] = {}
        self._pending: list[tuple[int, bool]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="exit-watcher", daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        try:
            os.write(self._w, b"x")
        except BlockingIOError:
            pass        # the pipe is full of wake-ups already: the loop will run

    def add(self, fd: int, callback) -> None:
        with self._lock:
            self._callbacks[fd] = callback
            self._pending.append((fd, True))
        self._wake()

    def remove(self, fd: int) -> None:
        with self._lock:
            if self._callbacks.pop(fd, None) is not None:
                self._pending.append((fd, False))
        self._wake()

    def stop(self) -> None:
        self._stop = True
        self._wake()

    def _loop(self) -> None:
        p = select.poll()
        p.register(self._r, select.POLLIN)
        while not self._stop:
            for fd, ev in p.poll():
                if fd == self._r:
                    try:
                        os.read(self._r, 4096)
                    except BlockingIOError:
                        pass
                    with self._lock:
                        pending, self._pending = self._pending, []
                    for pfd, add in pending:
                        if add:
                            p.register(pfd, select.POLLIN)
                        else:
                            try:
                                p.unregister(pfd)
                            except KeyError:
                                pass
                    continue
                with self._lock:
                    cb = self._callbacks.pop(fd, None)
                try:
                    p.unregister(fd)
                except KeyError:
                    pass
                if cb is not None:
                    threading.Thread(target=cb, name="on-exit", daemon=True).start()


# ---------------------------------------------------------------- the container

class Container:
    def __init__(self, cid: str, spec: ContainerSpec | None, created_at: str, state: dict,
                 config: dict | None = None):
        self.id = cid
        self.spec = spec
        self.created_at = created_at
        self.state = state
        self.config = config or {}
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.cgroup = None
        self.monitor_fd: int | None = None
        self.init_fd: int | None = None
        self.exits = 0          # bumped on every exit, so waiters see one exit even on restart
        self.destroyed = False
        self.restart_timer: threading.Timer | None = None

    @property
    def name(self) -> str:
        return self.spec.name if self.spec else self.config.get("name") or self.id[:12]

    @property
    def status(self) -> str:
        return self.state.get("status", BROKEN)

    @property
    def auto_remove(self) -> bool:
        return bool(self.config.get("auto_remove"))

    def summary(self) -> dict:
        s = self.state
        spec = self.spec
        return {
            "id": self.id, "short_id": self.id[:12], "name": self.name,
            "template": (spec.root.template or (self.config.get("image") or {}).get("ref"))
            if spec else None,
            "image": spec.root.image or None if spec else None,
            "command": " ".join(spec.process.args) if spec else None,
            "status": self.status if self.status != STARTING else CREATED,
            "exit_code": s.get("exit_code"), "oom_killed": bool(s.get("oom_killed")),
            "created_at": self.created_at, "started_at": s.get("started_at"),
            "finished_at": s.get("finished_at"), "restart_count": s.get("restart_count", 0),
            "pid": s.get("pid") if self.status in ACTIVE else None,
            "network": spec.network if spec else None,
            "ports": (s.get("network") or {}).get("ports", []) if self.status in ACTIVE else [],
        }


class Manager:
    def __init__(self, root: str, cgroup_parent: str = "mini_container", *,
                 templates=None, cgroups=None, proc: str = "/proc", on_change=None,
                 networks=None):
        self.root = root
        self._networks = networks
        if networks is not None:
            networks.users = self.network_users
        self.proc = proc
        self.store = Store(root)
        self.cgroup_parent = cgroup_parent
        self._templates = templates
        self._cgroups = cgroups
        self._lock = threading.Lock()
        self._by_id: dict[str, Container] = {}
        self._names: dict[str, str] = {}
        self.events = EventBus()
        self.watcher = ExitWatcher()
        self.on_change = on_change or (lambda: None)
        self.started_at = now_iso()
        self._closing = False

    # -- lower layers, imported on first use so the API and CLI never pay for them
    @property
    def templates(self):
        if self._templates is None:
            from mcd.templates import TemplateStore
            self._templates = TemplateStore(os.path.join(self.root, "templates"))
        return self._templates

    @property
    def images(self):
        """The image and layer store (mcd.images), ROOT/images."""
        if getattr(self, "_images", None) is None:
            from mcd.images.store import open_store
            self._images = open_store(self.root)
        return self._images

    def image_users(self, image_id: str) -> list[str]:
        """Names of the containers whose rootfs stacks this image's layers."""
        with self._lock:
            cs = list(self._by_id.values())
        return [c.name for c in cs if c.spec is not None and c.spec.root.image == image_id]

    @property
    def cgroups(self):
        if self._cgroups is None:
            from mcd.runtime import cgroups
            self._cgroups = cgroups.CgroupManager(parent=self.cgroup_parent, layout=cgroups.detect())
        return self._cgroups

    @property
    def networks(self):
        """The network service (mcd.network.service): an engine service of its own, with its
        state under ROOT/networks. Without one given, a service with no default network."""
        if self._networks is None:
            from mcd.network.service import NetworkService
            self._networks = NetworkService(self.root, os.path.join(self.root, "run"),
                                            users=self.network_users)
        return self._networks

    def network_users(self, name: str) -> list[str]:
        """Names of the containers (any state) whose spec names the network."""
        with self._lock:
            cs = list(self._by_id.values())
        return sorted(c.name for c in cs if c.spec is not None and c.spec.network == name)

    @staticmethod
    def _launcher():
        from mcd.runtime import launcher
        return launcher

    def _paths(self, c: Container):
        launcher = self._launcher()
        if c.spec.root.image:
            return launcher.ContainerPaths(dir=self.store.container_dir(c.id),
                                           lowers=self.images.lowers(c.spec.root.image),
                                           lower_base=self.images.dir)
        return launcher.ContainerPaths(dir=self.store.container_dir(c.id),
                                       lower=self.templates.rootfs_path(c.spec.root.template))

    # -- lookup
    def get(self, ref: str) -> Container:
        if not isinstance(ref, str) or not ref:
            raise InvalidArgument("a container name or id is required")
        with self._lock:
            c = self._by_id.get(ref)
            if c is None and ref in self._names:
                c = self._by_id[self._names[ref]]
            if c is None and all(ch in "0123456789abcdef" for ch in ref):
                matches = [v for k, v in self._by_id.items() if k.startswith(ref)]
                if len(matches) > 1:
                    raise InvalidArgument(f'id prefix "{ref}" is ambiguous: {len(matches)} containers match')
                if matches:
                    c = matches[0]
        if c is None:
            raise NotFound(f'no such container: "{ref}"', container=ref)
        return c

    def list(self, all: bool = True) -> list[dict]:
        with self._lock:
            cs = list(self._by_id.values())
        out = [c.summary() for c in cs if all or c.status in ACTIVE]
        return sorted(out, key=lambda s: s["created_at"] or "", reverse=True)

    def counts(self) -> dict:
        with self._lock:
            cs = list(self._by_id.values())
        counts = {s: 0 for s in (CREATED, RUNNING, PAUSED, STOPPED, BROKEN)}
        for c in cs:
            st = CREATED if c.status == STARTING else c.status
            counts[st] = counts.get(st, 0) + 1
        counts["total"] = len(cs)
        return counts

    def status_line(self) -> str:
        n = self.counts()
        return f"{n[RUNNING]} running, {n[PAUSED]} paused, {n[STOPPED] + n[CREATED]} stopped"

    # -- persistence
    def _persist(self, c: Container) -> None:
        # An auto-remove container's state is not synced: see mcd.store and restore().
        if not c.destroyed:
            self.store.write_state(c.id, c.state, durable=not c.auto_remove)

    def _persist_config(self, c: Container) -> None:
        c.config["spec"] = c.spec.to_dict()
        c.config["name"] = c.spec.name
        self.store.write_config(c.id, c.config)

    def _generate_name(self) -> str:
        rnd = random.SystemRandom()
        for i in range(100):
            name = f"{rnd.choice(ADJECTIVES)}_{rnd.choice(NOUNS)}"
            if i > 20:
                name += str(rnd.randrange(100))
            if name not in self._names:
                return name
        raise Conflict("could not generate a free container name")

    # -- create
    def create(self, spec_data: dict, *, auto_remove: bool = False) -> Container:
        if not isinstance(spec_data, dict):
            raise InvalidArgument("spec: expected an object")
        from mcd.images.config import prepare as image_prepare
        spec_data, image_meta = image_prepare(
            dict(spec_data), self.templates,
            self.images if isinstance(spec_data.get("root"), dict)
            and spec_data["root"].get("image") else None)
        given = spec_data.get("name")
        cid = secrets.token_hex(32)
        # Validate everything before taking a name, so bad input changes nothing.
        hostname_given = bool(spec_data.get("hostname"))
        probe = dict(spec_data, name=given or "probe")
        if not hostname_given:
            probe["hostname"] = "probe"
        spec = ContainerSpec.from_dict(probe)
        if not spec.root.image:
            self.templates.rootfs_path(spec.root.template)   # NotFound names the template
        self.networks.prepare(spec)     # the default network; -p/--ip against the network
        with self._lock:
            if given:
                if given in self._names:
                    raise Conflict(f'container name "{given}" is already in use by '
                                   f'{self._names[given][:12]}', container=given)
                name = given
            else:
                name = self._generate_name()
            spec.name = name
            if not hostname_given:
                spec.hostname = _hostname_for(name, cid)
            self._names[name] = cid       # reserved; released below if the write fails
        created = now_iso()
        config = {"id": cid, "name": name, "created": created, "spec": spec.to_dict(),
                  "auto_remove": bool(auto_remove)}
        if image_meta:
            config["image"] = image_meta
        state = {"status": CREATED, "restart_count": 0, "exit_code": None, "oom_killed": False,
                 "started_at": None, "finished_at": None, "pid": None, "monitor_pid": None}
        try:
            self.store.create(cid, config, state, durable=not auto_remove)
        except BaseException:
            with self._lock:
                self._names.pop(name, None)
            raise
        c = Container(cid, spec, created, state, config)
        with self._lock:
            self._by_id[cid] = c
        self.events.publish("created", c)
        self.on_change()
        return c

    # -- start
    def start(self, ref, *, stdio=None, manual: bool = True):
        """Start a created or stopped container; returns the runtime's Launched."""
        c = ref if isinstance(ref, Container) else self.get(ref)
        with c.lock:
            if c.destroyed:
                raise NotFound(f'no such container: "{c.name}"', container=c.name)
            if c.status == BROKEN:
                raise Conflict(f'container "{c.name}" is broken: {c.state.get("error")}', container=c.name)
            if c.status in ACTIVE or c.status == STARTING:
                raise Conflict(f'container "{c.name}" is already running', container=c.name)
            if c.restart_timer is not None:
                c.restart_timer.cancel()
                c.restart_timer = None
            if manual:
                c.state["manually_stopped"] = False
                c.state["restart_count"] = 0
            return self._launch(c, stdio)

    def _launch(self, c: Container, stdio):
        t0 = time.perf_counter_ns()
        launcher = self._launcher()
        paths = self._paths(c)
        previous = c.status
        self._remove_cgroup(c.id)   # one left by a crash: nothing may still run in it
        cg = self.cgroups.create(c.id, c.spec.linux.resources)
        t1 = time.perf_counter_ns()
        c.state.update(status=STARTING, previous_status=previous)
        try:
            self._persist(c)
            t2 = time.perf_counter_ns()
            net = self.networks.attach(c.id, c.name, c.spec, paths.hosts)
            t_net = time.perf_counter_ns()
            launched = launcher.start(c.spec, paths, cgroup_procs=cg.self_join_files(),
                                      stdio=stdio or launcher.Stdio(),
                                      netns=net.netns if net else None,
                                      etc=net.etc if net else None)
            t3 = time.perf_counter_ns()
        except MCError as err:
            # Kept for ps/inspect, as Docker does: the container stays, with why it failed.
            c.state.update(error=str(err), exit_code=err.exit_code if err.exit_code in (126, 127) else None)
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
        c.monitor_fd = _pidfd(launched.monitor_pid, None, self.proc)
        c.init_fd = _pidfd(launched.pid, launched.pid_start_time, self.proc)
        c.state.update(status=RUNNING, pid=launched.pid, pid_start_time=launched.pid_start_time,
                       monitor_pid=launched.monitor_pid,
                       monitor_start_time=proc_start_time(launched.monitor_pid, self.proc),
                       started_at=now_iso(), finished_at=None, exit_code=None, oom_killed=False,
                       error=None, memory_peak=None)
        c.state.pop("previous_status", None)
        c.state["network"] = self.networks.info(c.id)
        self._persist(c)
        launched.timing = {"cgroup": t1 - t0, "persist": t2 - t1, "network": t_net - t2,
                           "launch": t3 - t_net, "record": time.perf_counter_ns() - t3}
        self.events.publish("started", c, pid=launched.pid)
        if c.monitor_fd is None:
            # The monitor already ended (and was reaped) before we could watch it.
            threading.Thread(target=self._on_exit, args=(c,), daemon=True).start()
        else:
            self.watcher.add(c.monitor_fd, lambda c=c: self._on_exit(c))
        self.on_change()
        return launched

    def _undo_start(self, c: Container, cg, previous: str) -> None:
        try:
            cg.kill_all()
            cg.destroy()
        except MCError as err:
            log.error("container %s: cleaning the cgroup after a failed start: %s", c.name, err)
        self.networks.detach(c.id)
        c.state.update(status=previous)
        c.state.pop("previous_status", None)
        self._persist(c)

    # -- exit
    def _on_exit(self, c: Container) -> None:
        try:
            with c.lock:
                if c.status not in ACTIVE:
                    return
                self._record_exit(c)
                restart = self._should_restart(c)
            self.on_change()
            if c.auto_remove and not restart:
                try:
                    self.destroy(c, force=True)
                except MCError as err:
                    log.error("container %s: auto-remove failed: %s", c.name, err)
            elif restart:
                self._schedule_restart(c)
        except Exception:
            log.exception("container %s: handling its exit failed", c.name)

    def _record_exit(self, c: Container) -> None:
        """Final stats, exit status and cgroup removal; caller holds c.lock."""
        exit_info = None
        try:
            exit_info = self._launcher().read_exit(self._paths(c))
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
        self.networks.detach(c.id)      # nothing runs in its netns any more
        c.state.pop("network", None)
        if exit_info is None:
            code, sig = 255, None
            c.state["error"] = "exit status lost: the monitor ended without recording it"
        else:
            code, sig = exit_info.get("exit_code"), exit_info.get("signal")
        if oom and code is None:
            code = 137
        c.state.update(status=STOPPED, exit_code=code, signal=sig, oom_killed=oom,
                       finished_at=(exit_info or {}).get("finished_at") or now_iso(),
                       pid=None, memory_peak=stats.get("memory_peak"),
                       memory_limit=stats.get("memory_limit"))
        c.cgroup = None
        if c.monitor_fd is not None:
            self.watcher.remove(c.monitor_fd)
        _close(c.monitor_fd)
        _close(c.init_fd)
        c.monitor_fd = c.init_fd = None
        c.exits += 1
        self._persist(c)
        c.cond.notify_all()
        self.events.publish("died", c, exit_code=code)
        if oom:
            self.events.publish("oom", c, memory_limit=stats.get("memory_limit"),
                                memory_peak=stats.get("memory_peak"))

    def _should_restart(self, c: Container) -> bool:
        if self._closing or c.destroyed:
            return False
        policy, max_retries = parse_restart_policy(c.spec.restart_policy)
        if policy == "no" or c.state.get("manually_stopped"):
            return False
        if policy == "on-failure":
            if c.state.get("exit_code") == 0:
                return False
            if max_retries and c.state.get("restart_count", 0) >= max_retries:
                return False
        return True

    def _schedule_restart(self, c: Container) -> None:
        n = c.state.get("restart_count", 0)
        delay = min(0.1 * (2 ** min(n, 10)), 10.0)   # Docker's doubling back-off

        def again():
            with c.lock:
                c.restart_timer = None
                if c.destroyed or c.status in ACTIVE or not self._should_restart(c):
                    return
                c.state["restart_count"] = c.state.get("restart_count", 0) + 1
                try:
                    self.start(c, manual=False)
                except MCError as err:
                    log.error("container %s: restart by policy failed: %s", c.name, err)
                    c.state["error"] = str(err)
                    self._persist(c)

        with c.lock:
            c.restart_timer = threading.Timer(delay, again)
            c.restart_timer.daemon = True
            c.restart_timer.start()

    # -- stop, kill, pause
    def _signal(self, c: Container, sig: int) -> None:
        try:
            if c.init_fd is not None:
                signal.pidfd_send_signal(c.init_fd, sig)
            else:
                pid = c.state.get("pid")
                if pid and proc_start_time(pid, self.proc) == c.state.get("pid_start_time"):
                    os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except OSError as err:
            raise KernelError.from_oserror("kill", err, container=c.name) from err

    def stop(self, ref, timeout: int | None = None) -> Container:
        c = ref if isinstance(ref, Container) else self.get(ref)
        with c.lock:
            if c.restart_timer is not None:
                c.restart_timer.cancel()
                c.restart_timer = None
            c.state["manually_stopped"] = True
            if c.status not in ACTIVE:
                self._persist(c)
                return c
            self._persist(c)
            t = c.spec.stop_timeout if timeout is None else timeout
            exits = c.exits
            sig = _signum(c.spec.stop_signal)
            self._signal(c, sig)
            if c.status == PAUSED and c.cgroup is not None:
                c.cgroup.thaw()
            if not c.cond.wait_for(lambda: c.exits != exits, timeout=t):
                self._kill_all(c)
                if not c.cond.wait_for(lambda: c.exits != exits, timeout=30):
                    raise MCError(f'container "{c.name}": still running 30 s after SIGKILL',
                                  container=c.name, step="stop")
        return c

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
            if c.status == PAUSED:
                cg.thaw()
        self._signal(c, signal.SIGKILL)

    def kill(self, ref, sig: str | int = "SIGKILL") -> Container:
        c = self.get(ref)
        num = _signum(sig)
        with c.lock:
            if c.status not in ACTIVE:
                raise NotRunning(f'container "{c.name}" is not running', container=c.name)
            if num in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
                c.state["manually_stopped"] = True
                self._persist(c)
            self._signal(c, num)
        return c

    def restart(self, ref, timeout: int | None = None) -> Container:
        c = self.get(ref)
        with c.lock:
            self.stop(c, timeout)
            self.start(c)
        return c

    def pause(self, ref) -> Container:
        c = self.get(ref)
        with c.lock:
            if c.status == PAUSED:
                raise Conflict(f'container "{c.name}" is already paused', container=c.name)
            if c.status != RUNNING:
                raise NotRunning(f'container "{c.name}" is not running', container=c.name)
            self._cgroup_of(c).freeze()
            c.state["status"] = PAUSED
            self._persist(c)
            self.events.publish("paused", c)
        self.on_change()
        return c

    def unpause(self, ref) -> Container:
        c = self.get(ref)
        with c.lock:
            if c.status != PAUSED:
                raise Conflict(f'container "{c.name}" is not paused', container=c.name)
            self._cgroup_of(c).thaw()
            c.state["status"] = RUNNING
            self._persist(c)
            self.events.publish("unpaused", c)
        self.on_change()
        return c

    def _cgroup_of(self, c: Container):
        if c.cgroup is None:
            c.cgroup = self.cgroups.open(c.id)
        if c.cgroup is None:
            raise MCError(f'container "{c.name}": its cgroup is gone', container=c.name,
                          step="cgroup")
        return c.cgroup

    # -- destroy
    def destroy(self, ref, force: bool = False) -> Container:
        c = ref if isinstance(ref, Container) else self.get(ref)
        with c.lock:
            if c.destroyed:
                return c
            if c.restart_timer is not None:
                c.restart_timer.cancel()
                c.restart_timer = None
            if c.status in ACTIVE:
                if not force:
                    raise Conflict(f'container "{c.name}" is running: stop it first or use rm -f',
                                   container=c.name)
                c.state["manually_stopped"] = True
                exits = c.exits
                self._kill_all(c)
                if not c.cond.wait_for(lambda: c.exits != exits, timeout=30):
                    raise MCError(f'container "{c.name}": still running 30 s after SIGKILL',
                                  container=c.name, step="destroy")
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
        with self._lock:
            cs = list(self._by_id.values())
        removed = []
        for c in cs:
            if c.status in (STOPPED, CREATED):
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
            if c.status in ACTIVE or c.status in (STARTING, CREATED) or c.restart_timer is not None:
                exits = c.exits
                while c.exits == exits and not c.destroyed:
                    # Wakes once a second only while a client waits, to notice it hanging up.
                    c.cond.wait(1.0 if client_gone else None)
                    if client_gone and client_gone():
                        break
            return {"id": c.id, "name": c.name, "exit_code": c.state.get("exit_code"),
                    "oom_killed": bool(c.state.get("oom_killed")),
                    "memory_limit": c.state.get("memory_limit"),
                    "memory_peak": c.state.get("memory_peak"), "error": c.state.get("error")}

    # -- rename, update
    def rename(self, ref, new: str) -> Container:
        c = self.get(ref)
        validate_name(new, "container name")
        with c.lock:
            old = c.name
            if old == new:
                return c
            with self._lock:
                if new in self._names:
                    raise Conflict(f'container name "{new}" is already in use', container=new)
                self._names[new] = c.id
            c.spec.name = new
            try:
                self._persist_config(c)
            except BaseException:
                c.spec.name = old
                with self._lock:
                    self._names.pop(new, None)
                raise
            with self._lock:
                self._names.pop(old, None)
            self.events.publish("renamed", c, old_name=old)
        return c

    def update(self, ref, resources: dict, restart_policy: str | None = None) -> Container:
        c = self.get(ref)
        if not isinstance(resources, dict):
            raise InvalidArgument("resources: expected an object")
        if restart_policy is not None:
            parse_restart_policy(restart_policy)
        with c.lock:
            if c.status == BROKEN:
                raise Conflict(f'container "{c.name}" is broken', container=c.name)
            merged = {**c.spec.linux.resources.to_dict(), **resources}
            new = Resources.from_dict(merged, "resources")
            if resources and c.status in ACTIVE and c.cgroup is not None:
                c.cgroup.update(new)
            old, old_policy = c.spec.linux.resources, c.spec.restart_policy
            c.spec.linux.resources = new
            if restart_policy is not None:
                c.spec.restart_policy = restart_policy
            try:
                self._persist_config(c)
            except BaseException:
                c.spec.linux.resources, c.spec.restart_policy = old, old_policy
                raise
        return c

    # -- inspect, stats, top, logs, exec
    def inspect(self, ref) -> dict:
        c = self.get(ref)
        with c.lock:
            out = c.summary()
            out["spec"] = c.spec.to_dict() if c.spec else None
            out["state"] = dict(c.state)
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
                return {"id": c.id, "name": c.name, "status": c.status}
            return {"id": c.id, "name": c.name, "status": c.status, **(c.cgroup.stats() or {})}

    def stats_all(self) -> list[dict]:
        with self._lock:
            cs = [c for c in self._by_id.values() if c.status in ACTIVE]
        try:
            # One pass over the files of every running container (the driver keeps them open).
            by_id = self.cgroups.stats_all([c.id for c in cs])
        except MCError as err:
            log.warning("stats of all containers: %s", err)
            by_id = {}
        return [{"id": c.id, "name": c.name, "status": c.status, **by_id[c.id]}
                for c in cs if c.id in by_id]

    def top(self, ref) -> dict:
        import psutil
        c = self.get(ref)
        with c.lock:
            if c.status not in ACTIVE:
                raise NotRunning(f'container "{c.name}" is not running', container=c.name)
            pid = c.state["pid"]
            cg = c.cgroup
        pids = []
        if cg is not None and hasattr(cg, "pids"):
            try:
                pids = sorted(cg.pids())     # the cgroup sees exec'd processes too
            except MCError:
                pids = []
        if not pids:
            try:
                root = psutil.Process(pid)
                pids = [pid] + [p.pid for p in root.children(recursive=True)]
            except psutil.NoSuchProcess:
                pids = []
        procs = []
        for p in pids:
            try:
                procs.append(psutil.Process(p))
            except psutil.NoSuchProcess:
                pass
        rows = []
        for p in procs:
            try:
                with p.oneshot():
                    rows.append([p.pid, p.ppid(), p.uids().effective, p.status(),
                                 round(p.memory_info().rss / 1024), " ".join(p.cmdline()) or p.name()])
            except psutil.Error:
                continue
        return {"titles": ["PID", "PPID", "UID", "STAT", "RSS_KB", "COMMAND"], "processes": rows}

    def log_path(self, c: Container) -> str:
        return os.path.join(self.store.container_dir(c.id), "container.log")

    def exec(self, ref, process: dict, *, stdio=None, detach: bool = False):
        from mcd.runtime import exec as rexec
        c = self.get(ref)
        if not isinstance(process, dict):
            raise InvalidArgument("process: expected an object")
        with c.lock:
            if c.status != RUNNING:
                raise NotRunning(f'container "{c.name}" is not running', container=c.name)
            base = c.spec.process.to_dict()
            data = dict(process)
            if "env" in data:
                if not isinstance(data["env"], list):
                    raise InvalidArgument("process.env: expected a list")
                keys = {e.split("=", 1)[0] for e in data["env"] if isinstance(e, str)}
                data["env"] = [e for e in base["env"] if e.split("=", 1)[0] not in keys] + data["env"]
            proc = Process.from_dict({**base, **data}, "process")
            pid = c.state["pid"]
            cg_procs = c.cgroup.self_join_files() if c.cgroup is not None else []
            handle = rexec.run(pid, proc, c.spec, cg_procs, stdio)
        self.events.publish("exec", c, pid=handle.pid, command=" ".join(proc.args))
        return handle

    # -- live restore
    def restore(self) -> dict:
        """Rebuild the view from disk and /proc. Returns what was done, for the log."""
        report = {"adopted": [], "exited": [], "cleaned": [], "broken": [], "restarting": [],
                  "removed": []}
        report["cleaned"] += self.store.clean_half_made()
        self.store.clean_trash()
        for cid in self.store.list_ids():
            c = self._load(cid, report)
            if c is None:
                continue
            with self._lock:
                self._by_id[cid] = c
                if c.name in self._names:
                    log.error("container %s: name %s also used by %s", cid[:12], c.name,
                              self._names[c.name][:12])
                else:
                    self._names[c.name] = cid
        with self._lock:
            cs = list(self._by_id.values())
        for c in cs:
            if c.status in ACTIVE or c.status == STARTING:
                self._readopt(c, report)
        # Every attachment of a container that is not running now is DELeted (a start cut
        # short, an exit while the daemon was away, a container removed meanwhile).
        net = self.networks.restore({c.id for c in cs if c.status in ACTIVE})
        report["network cleaned"] = net["cleaned"]
        for c in cs:
            if c.auto_remove and (c.status == BROKEN
                                  or (c.status == STOPPED and not self._should_restart(c))):
                # Its removal was due when the daemon went away, or its unsynced state was
                # cut short by a host crash: finish it, as _on_exit would have.
                try:
                    self.destroy(c, force=True)
                    report["removed"].append(c.id)
                except MCError as err:
                    log.error("container %s: auto-remove at startup failed: %s", c.name, err)
                continue
            # Those that were running when the daemon (or the host) went away come back, and
            # so does every stopped always/unless-stopped one that no user stopped (Docker's
            # rule at daemon start; it also covers a restart back-off cut short by the restart).
            if c.status != STOPPED:
                continue
            policy, _ = parse_restart_policy(c.spec.restart_policy)
            if policy == "always" and c.state.get("manually_stopped"):
                # Docker's rule, the one difference between the two: a user's stop holds an
                # `always` container only until the daemon restarts; `unless-stopped` stays.
                c.state["manually_stopped"] = False
            if not self._should_restart(c):
                continue
            if c.id in report["exited"] or policy in ("always", "unless-stopped"):
                report["restarting"].append(c.id)
                self._schedule_restart(c)
        return report

    def _load(self, cid: str, report: dict) -> Container | None:
        try:
            config = self.store.read_config(cid)
            state = self.store.read_state(cid)
            if config is None:
                raise CorruptState(self.store.config_path(cid), "missing")
            if state is None:
                raise CorruptState(self.store.state_path(cid), "missing")
            spec = ContainerSpec.from_dict(config["spec"])
            if not isinstance(state, dict):
                raise CorruptState(self.store.state_path(cid), "not an object")
        except (CorruptState, InvalidArgument, KeyError, TypeError) as err:
            why = str(err)
            log.error("container %s is broken: %s", cid[:12], why)
            report["broken"].append(cid)
            cfg = config if isinstance(locals().get("config"), dict) else {}
            return Container(cid, None, cfg.get("created") or "", {"status": BROKEN, "error": why}, cfg)
        return Container(cid, spec, config.get("created", ""), state, config)

    def _readopt(self, c: Container, report: dict) -> None:
        s = c.state
        fd = None
        if c.status != STARTING:
            fd = _pidfd(s.get("monitor_pid"), s.get("monitor_start_time"), self.proc)
            if fd is not None and _has_exited(fd):
                # Ended but not yet reaped by its parent (a zombie): handle its exit now, so
                # READY=1 already reflects it (and a --rm container is already gone).
                _close(fd)
                fd = None
        if fd is not None:
            c.monitor_fd = fd
            c.init_fd = _pidfd(s.get("pid"), s.get("pid_start_time"), self.proc)
            try:
                c.cgroup = self.cgroups.open(c.id)
            except MCError as err:
                log.error("container %s: reopening its cgroup: %s", c.name, err)
            self.watcher.add(fd, lambda c=c: self._on_exit(c))
            report["adopted"].append(c.id)
            log.info("container %s: re-adopted (monitor pid %s)", c.name, s.get("monitor_pid"))
            return
        if c.status == STARTING:
            # A start that never finished: whatever it made goes, the container is as before.
            try:
                self._remove_cgroup(c.id)
            except MCError as err:
                log.error("container %s: cleaning a half-made start: %s", c.name, err)
            c.state["status"] = s.pop("previous_status", None) or CREATED
            self._persist(c)
            report["cleaned"].append(c.id)
            return
        with c.lock:
            self._record_exit(c)
        report["exited"].append(c.id)
        log.info("container %s: exited while the daemon was away (exit code %s)",
                 c.name, c.state.get("exit_code"))

    def close(self) -> None:
        """Daemon shutdown: containers keep running (live restore); timers stop."""
        self._closing = True
        with self._lock:
            cs = list(self._by_id.values())
        for c in cs:
            if c.restart_timer is not None:
                c.restart_timer.cancel()
        self.watcher.stop()


def _hostname_for(name: str, cid: str) -> str:
    """The container's name as a hostname (names allow '_', hostnames do not)."""
    from mcwire.spec import HOSTNAME_RE
    host = name.replace("_", "-").strip("-.")[:63].strip("-.")
    return host if host and HOSTNAME_RE.fullmatch(host) else cid[:12]


def _signum(sig) -> int:
    if isinstance(sig, int) and not isinstance(sig, bool):
        num = sig
    elif isinstance(sig, str):
        s = sig.upper()
        if s.isdigit():
            num = int(s)
        else:
            if not s.startswith("SIG"):
                s = "SIG" + s
            num = getattr(signal.Signals, s, None)
            if num is None:
                raise InvalidArgument(f"unknown signal {sig!r}")
            num = int(num)
    else:
        raise InvalidArgument(f"signal: expected a name or number, got {sig!r}")
    if not 1 <= num <= 64:
        raise InvalidArgument(f"signal {sig!r} is out of range")
    return num
