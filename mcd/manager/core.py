"""The Manager: the containers it knows, their names, and the one way a status changes.

It is given the layers below it (store, runtime, cgroup driver, template store) and
carries out the rules of mcd.manager.policy; its operations are spread over mixins by
topic (lifecycle, restore, views), all on this one object and its locks:

Locking: ``_lock`` guards the id/name maps and is never held across slow work; each
container has its own re-entrant lock (with a condition for exit waiters) held for the
whole of an operation on it.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading

from mcd.errors import Conflict, InvalidArgument, MCError, NotFound
from mcd.manager.events import EventBus
from mcd.manager.lifecycle import Lifecycle
from mcd.manager.naming import generate_name, hostname_for
from mcd.manager.restore import Restore
from mcd.manager.state import (ACTIVE, EVENTS, Container, State, Status, check_transition,
                               now_iso)
from mcd.manager.views import Views, stdio_for
from mcd.runtime.interface import Runtime
from mcwire.spec import ContainerSpec, Resources, parse_restart_policy, validate_name
from mcd.store import Store

log = logging.getLogger("mcd.manager")
_IMAGES_OPEN = threading.Lock()     # the first opening of an image store (see Manager.images)


class Manager(Lifecycle, Restore, Views):
    """The state machine over the layers below it, which it is given: a store (state on
    disk), a runtime (processes: mcd.runtime.interface.Runtime), a cgroup driver and the
    template store. ``cgroups`` and ``templates`` may be zero-argument callables that
    build them on first use (so the API and CLI never pay for them). ``timer`` makes the
    restart back-off's timers (threading.Timer; tests give one they fire themselves)."""

    def __init__(self, store: Store, runtime: Runtime, cgroups, templates, *,
                 cgroup_parent: str = "mini_container", on_change=None,
                 timer=threading.Timer, networks=None):
        self.store = store
        self._networks = networks
        if networks is not None:
            networks.users = self.network_users
        self.root = store.root
        self.runtime = runtime
        self.cgroup_parent = cgroup_parent
        self._templates = templates
        self._cgroups = cgroups
        self._timer = timer
        self._lock = threading.Lock()
        self._by_id: dict[str, Container] = {}
        self._names: dict[str, str] = {}
        self.events = EventBus()
        self.on_change = on_change or (lambda: None)
        self.started_at = now_iso()
        self._closing = False

    # -- lower layers, built on first use when given as factories
    @property
    def templates(self):
        if callable(self._templates) and not hasattr(self._templates, "rootfs_path"):
            self._templates = self._templates()
        return self._templates

    @property
    def images(self):
        """The image and layer store (mcd.images), ROOT/images. Opened once (under the
        lock: opening removes the staging a crash left, which must never meet a load that
        another first caller already began); the daemon opens it before it serves."""
        if getattr(self, "_images", None) is None:
            with _IMAGES_OPEN:
                if getattr(self, "_images", None) is None:
                    from mcd.images.store import open_store
                    self._images = open_store(self.root)
        return self._images

    def image_users(self, image_id: str) -> list[str]:
        """Names of the containers whose rootfs stacks this image's layers."""
        return [c.name for c in self._all() if c.spec is not None and c.spec.root.image == image_id]

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
        return sorted(c.name for c in self._all() if c.spec is not None and c.spec.network == name)

    @property
    def cgroups(self):
        if callable(self._cgroups) and not hasattr(self._cgroups, "create"):
            self._cgroups = self._cgroups()
        return self._cgroups

    def _paths(self, c: Container):
        if c.spec.root.image:
            return self.store.paths(c.id, lowers=self.images.lowers(c.spec.root.image),
                                    lower_base=self.images.dir)
        return self.store.paths(c.id, self.templates.rootfs_path(c.spec.root.template))

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

    def _all(self) -> list[Container]:
        with self._lock:
            return list(self._by_id.values())

    def list(self, all: bool = True) -> list[dict]:
        out = [c.summary() for c in self._all() if all or c.status in ACTIVE]
        return sorted(out, key=lambda s: s["created_at"] or "", reverse=True)

    def counts(self) -> dict:
        cs = self._all()
        counts = {str(s): 0 for s in Status if s != Status.STARTING}
        for c in cs:
            st = Status.CREATED if c.status == Status.STARTING else c.status
            counts[str(st)] += 1
        counts["total"] = len(cs)
        return counts

    def status_line(self) -> str:
        n = self.counts()
        return f"{n['running']} running, {n['paused']} paused, {n['stopped'] + n['created']} stopped"

    # -- persistence, and the one way a status changes
    def _persist(self, c: Container) -> None:
        # An auto-remove container's state is not synced: see mcd.store and restore().
        if not c.destroyed:
            self.store.write_state(c.id, c.state.to_dict(), durable=not c.auto_remove)

    def _persist_config(self, c: Container) -> None:
        c.config["spec"] = c.spec.to_dict()
        c.config["name"] = c.spec.name
        self.store.write_config(c.id, c.config)

    def _transition(self, c: Container, to: Status, **fields) -> None:
        """Move c to status ``to`` (refused unless the state machine allows it), with the
        state fields that go with it; persist; publish the transition's event. Caller
        holds c.lock."""
        frm = c.state.status
        check_transition(frm, to, c.name)
        c.state.update(status=to, **fields)
        self._persist(c)
        event = EVENTS.get((frm, to))
        if event is not None:
            kind, carried = event
            self.events.publish(kind, c, **{k: getattr(c.state, k) for k in carried})

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
        # The default network; -p/--ip against the network; -P from the image's ports.
        self.networks.prepare(spec, exposed=(image_meta or {}).get("exposed_ports") or ())
        with self._lock:
            if given:
                if given in self._names:
                    raise Conflict(f'container name "{given}" is already in use by '
                                   f'{self._names[given][:12]}', container=given)
                name = given
            else:
                name = generate_name(self._names)
            spec.name = name
            if not hostname_given:
                spec.hostname = hostname_for(name, cid)
            self._names[name] = cid       # reserved; released below if the write fails
        created = now_iso()
        config = {"id": cid, "name": name, "created": created, "spec": spec.to_dict(),
                  "auto_remove": bool(auto_remove)}
        if image_meta:
            config["image"] = image_meta
        state = State()
        try:
            self.store.create(cid, config, state.to_dict(), durable=not auto_remove)
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

    def run(self, spec_data: dict, *, auto_remove: bool = False, attach: bool = False,
            fds=(), stdin: bool = False):
        """Create and start: -> (container, Launched). The caller's fds are checked before
        anything is made; start removes an auto-removed container whose launch fails."""
        process = spec_data.get("process") if isinstance(spec_data, dict) else None
        stdio_for(isinstance(process, dict) and process.get("terminal") is True, attach, fds,
                  stdin)
        c = self.create(spec_data, auto_remove=auto_remove)
        return c, self.start(c, attach=attach, fds=fds, stdin=stdin)

    # -- templates in use
    def template_users(self, name: str) -> list[str]:
        """Names of the containers whose root is template name (broken ones too, by what
        their config says), and, when templates are images, those stacking its image."""
        users = {c.name for c in self._all() if c.template == name}
        image_of = getattr(self.templates, "image_of", None)
        image_id = image_of(name) if image_of is not None else None
        if image_id is not None:
            users.update(self.image_users(image_id))
        return sorted(users)

    def legacy_template_users(self, name: str) -> list[str]:
        """Containers whose spec names the template's tree (made before templates were
        images): the tree stays while one is left."""
        return sorted(c.name for c in self._all() if c.template == name)

    def migrate_templates(self) -> list[str]:
        """Template trees of earlier versions -> template images (daemon start, after
        restore: every container is known). One line per step, for the log."""
        migrate = getattr(self.templates, "migrate", None)
        return migrate(self.legacy_template_users) if migrate is not None else []

    def remove_template(self, name: str) -> None:
        """Remove a template no container uses (checked under the template lock)."""
        self.templates.remove(name, users=self.template_users)

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
            self.networks.renamed(c.id, new)
            self.events.publish("renamed", c, old_name=old)
        return c

    def update(self, ref, resources: dict, restart_policy: str | None = None) -> Container:
        c = self.get(ref)
        if not isinstance(resources, dict):
            raise InvalidArgument("resources: expected an object")
        if restart_policy is not None:
            parse_restart_policy(restart_policy)
        with c.lock:
            if c.status == Status.BROKEN:
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

    def close(self) -> None:
        """Daemon shutdown: containers keep running (live restore); timers stop."""
        self._closing = True
        for c in self._all():
            if c.restart_timer is not None:
                c.restart_timer.cancel()
        self.runtime.close()
