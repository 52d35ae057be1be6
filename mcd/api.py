"""HTTP routes of the daemon (/v1/...), validation and error mapping.

Knows nothing of cgroup files or namespaces: it turns requests into Manager calls and
MCError into ``{"error": {"code", "message"}}`` with the error's HTTP status. The route
table below is also the source of the OpenAPI document (``python -m mcd.api`` prints it;
mcd/openapi.json is that output, checked by a unit test).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import queue
import signal
import threading
import time

from mcd.errors import InvalidArgument, MCError, MethodNotAllowed, PermissionDenied
from mcd.httpserver import Request, Response
from mcd.routing import Answer, Field, Link, Query, Route, Router, openapi
from mcwire import API_VERSION, __version__
from mcd.images.api import IMAGE_ROUTES, IMAGE_SCHEMAS, ImageRoutes
from mcwire.schema import IPV4, NAME_PATTERN, RESTART_POLICY_PATTERN

log = logging.getLogger("mcd.api")

# Path parameters: a container is a name, a full id or a unique id prefix; both fit this.
REF_PATTERN = "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}"
_SIGNALS = sorted({n for s in signal.Signals for n in (s.name, s.name[3:])}) + \
    [str(n) for n in range(1, 65)]

_T = Query("t", int, None, "seconds before SIGKILL (default: the spec's stop_timeout)", 0, 3600)
_ATTACH_FDS = ("with attach and no terminal, the client's stdin, stdout and stderr (3 fds); "
               "with a terminal the pty master comes back on the answer")
_CREATED = Answer(201, "IdName", description="created")
_OK = Answer(200, "IdName")


def _container_links(status: int, expression: str = "$response.body#/id") -> tuple[Link, ...]:
    """What an answer naming a container feeds: every operation that takes {ref}."""
    return tuple(Link(status, op, "ref", expression) for op in (
        "inspect", "start", "stop", "kill", "pause", "unpause", "exec", "logs", "top", "stats",
        "rename", "update", "destroy"))


ROUTES = [
    Route("GET", "/v1/info", "info", "Daemon, versions, cgroup mode, container counts",
          (Answer(200, "Info"),)),
    Route("GET", "/v1/version", "version", "Versions", (Answer(200, "Version"),)),
    Route("GET", "/v1/openapi.json", "openapi", "This OpenAPI document",
          (Answer(200, {"type": "object", "required": ["openapi", "paths"]}),)),
    Route("GET", "/v1/containers", "list_containers", "List containers",
          (Answer(200, {"type": "array", "items": {"$ref": "#/components/schemas/Summary"}}),),
          query=(Query("all", bool, False, "include containers that are not running"),)),
    Route("POST", "/v1/containers", "create_container",
          "Create (and optionally start, attach, auto-remove) a container",
          (_CREATED, Answer(200, "AttachLine", "application/x-ndjson",
                            "attached (attach): one line when attached, one at exit")),
          body=(Field("spec", dict, required=True, schema={"$ref": "#/components/schemas/ContainerSpec"}),
                Field("start", bool, default=False, description="start it (detached)"),
                Field("attach", bool, default=False, description="start it and stream until it exits"),
                Field("rm", bool, default=False, description="remove it when it ends"),
                Field("stdin", bool, default=False, description="with attach: connect stdin")),
          body_required=True, links=_container_links(201), fds=_ATTACH_FDS),
    Route("POST", "/v1/containers/prune", "prune", "Remove every stopped or created container",
          (Answer(200, "Pruned"),)),
    Route("GET", "/v1/containers/{ref}", "inspect", "Inspect a container", (Answer(200, "Inspect"),)),
    Route("DELETE", "/v1/containers/{ref}", "destroy", "Destroy a container", (_OK,),
          query=(Query("force", bool, False, "kill a running container first"),)),
    Route("POST", "/v1/containers/{ref}/start", "start", "Start a container",
          (_OK, Answer(200, "AttachLine", "application/x-ndjson", "attached (attach=1)")),
          query=(Query("attach", bool, False, "stream until it exits"),
                 Query("stdin", bool, False, "with attach: connect stdin")), fds=_ATTACH_FDS),
    Route("POST", "/v1/containers/{ref}/stop", "stop",
          "Stop: the stop signal, then SIGKILL after t seconds", (Answer(200, "Stopped"),),
          query=(_T,)),
    Route("POST", "/v1/containers/{ref}/restart", "restart", "Stop then start", (_OK,), query=(_T,)),
    Route("POST", "/v1/containers/{ref}/kill", "kill", "Send a signal to PID 1", (_OK,),
          query=(Query("signal", str, "SIGKILL", "a name (SIGTERM, TERM) or a number",
                       pattern="|".join(_SIGNALS)),)),
    Route("POST", "/v1/containers/{ref}/pause", "pause", "Freeze every process", (_OK,)),
    Route("POST", "/v1/containers/{ref}/unpause", "unpause", "Thaw", (_OK,)),
    Route("POST", "/v1/containers/{ref}/rename", "rename", "Rename", (_OK,),
          query=(Query("name", str, None, "the new name", pattern=NAME_PATTERN[1:-1],
                       required=True),), links=_container_links(200, "$response.body#/name")),
    Route("POST", "/v1/containers/{ref}/update", "update",
          "Change resource limits (merged with the current ones) and the restart policy",
          (Answer(200, "Updated"),),
          body=(Field("resources", dict, default=None,
                      schema={"$ref": "#/components/schemas/Resources"}),
                Field("restart_policy", str, default=None,
                      schema={"type": "string", "pattern": RESTART_POLICY_PATTERN}))),
    Route("POST", "/v1/containers/{ref}/wait", "wait", "Block until the container exits",
          (Answer(200, "WaitResult"),)),
    Route("GET", "/v1/containers/{ref}/logs", "logs", "Log lines, as JSON lines",
          (Answer(200, "LogLine", "application/x-ndjson"),),
          query=(Query("follow", bool, False, "keep streaming until the container stops"),
                 Query("tail", int, None, "only the last N lines", 0),
                 Query("timestamps", bool, False, "include each line's time"))),
    Route("GET", "/v1/containers/{ref}/top", "top", "Processes of the container", (Answer(200, "Top"),)),
    Route("GET", "/v1/containers/{ref}/stats", "stats", "Resource usage of one container",
          (Answer(200, "Stats"),)),
    Route("POST", "/v1/containers/{ref}/exec", "exec", "Run a process in a running container",
          (Answer(201, "ExecStarted", description="started (detach)"),
           Answer(200, "ExecLine", "application/x-ndjson", "attached")),
          body=(Field("process", dict, required=True,
                      schema={"$ref": "#/components/schemas/ExecProcess"}),
                Field("detach", bool, default=False, description="run it in the background"),
                Field("stdin", bool, default=False, description="connect stdin")),
          body_required=True, fds=_ATTACH_FDS),
    Route("GET", "/v1/stats", "stats_all", "Resource usage of all running containers",
          (Answer(200, {"type": "array", "items": {"$ref": "#/components/schemas/Stats"}}),
           Answer(200, "StatsLine", "application/x-ndjson", "stream=1: one line per interval")),
          query=(Query("stream", bool, False, "one line per interval until the client leaves"),
                 Query("interval", int, 1, "seconds between lines", 1, 3600))),
    Route("GET", "/v1/events", "events", "Events: created, started, died, oom, destroyed...",
          (Answer(200, {"type": "string"}, "text/event-stream", "stream (default)"),
           Answer(200, {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                  description="stream=0: the recent events")),
          query=(Query("history", bool, False, "replay the recent events first"),
                 Query("stream", bool, True, "0: answer the recent events as a list"))),
    Route("GET", "/v1/templates", "list_templates", "List templates",
          (Answer(200, {"type": "array", "items": {"$ref": "#/components/schemas/Template"}}),)),
    Route("POST", "/v1/templates", "create_template", "Create a template from a directory",
          (Answer(201, "Template", description="created"),),
          body=(Field("name", str, required=True, schema={"type": "string", "pattern": NAME_PATTERN}),
                Field("path", str, required=True, schema={"type": "string", "pattern": "^/",
                                                          "minLength": 1})),
          body_required=True, links=(Link(201, "remove_template", "name", "$response.body#/name"),),
          fds="the directory, opened by the client (one fd); without it, path (root only)"),
    Route("POST", "/v1/templates/import", "import_template", "Import a template from a tar archive",
          (Answer(201, "Template", description="created"),),
          body=(Field("name", str, required=True, schema={"type": "string", "pattern": NAME_PATTERN}),
                Field("path", str, default=None, schema={"type": "string", "pattern": "^/"})),
          body_required=True, links=(Link(201, "remove_template", "name", "$response.body#/name"),),
          fds="the tar archive (one fd); without it, path (root only)"),
    Route("DELETE", "/v1/templates/{name}", "remove_template", "Remove a template",
          (Answer(200, {"type": "object", "required": ["name"], "additionalProperties": False,
                        "properties": {"name": {"type": "string"}}}),)),
    Route("GET", "/v1/networks", "list_networks", "List networks",
          (Answer(200, {"type": "array", "items": {"$ref": "#/components/schemas/Network"}}),)),
    Route("POST", "/v1/networks", "create_network", "Create a bridge network",
          (Answer(201, "Network", description="created"),),
          body=(Field("name", str, required=True, schema={"type": "string", "pattern": NAME_PATTERN}),
                Field("subnet", str, default=None, description="an IPv4 CIDR (default: a free /24)",
                      schema={"type": "string", "pattern": f"^{IPV4}/([0-9]|[12][0-9]|3[0-2])$"}),
                Field("gateway", str, default=None, description="an IPv4 address in the subnet "
                      "(needs subnet)", schema={"type": "string", "pattern": f"^{IPV4}$"}),
                Field("internal", bool, default=False, description="no way out of the network"),
                Field("labels", dict, default=None,
                      schema={"type": "object", "additionalProperties": {"type": "string"}})),
          body_required=True, body_rules=(("dependentRequired", {"gateway": ["subnet"]}),),
          links=(
              Link(201, "inspect_network", "ref", "$response.body#/name"),
              Link(201, "remove_network", "ref", "$response.body#/name"))),
    Route("POST", "/v1/networks/prune", "prune_networks", "Remove every unused network made by create",
          (Answer(200, {"type": "object", "required": ["removed"], "additionalProperties": False,
                        "properties": {"removed": {"type": "array", "items": {"type": "string"}}}}),)),
    Route("GET", "/v1/networks/{ref}", "inspect_network", "Inspect a network",
          (Answer(200, "Network"),), path_types=(("ref", "NetworkRef"),)),
    Route("DELETE", "/v1/networks/{ref}", "remove_network", "Remove a network (refused while used)",
          (Answer(200, "Network"),), path_types=(("ref", "NetworkRef"),)),
    *IMAGE_ROUTES,
]
ROUTER = Router(ROUTES)

def _server_timing(req, launched) -> str:
    """The daemon's own share of a start, as a Server-Timing header (the W3C Server Timing
    format): request read -> PID 1 exec'd ("total"), and the manager's phases in it."""
    now = time.perf_counter_ns()
    parts = [f"{k};dur={v / 1e6:.3f}" for k, v in getattr(launched, "timing", {}).items()]
    if req.received_ns:
        parts.append(f"total;dur={(now - req.received_ns) / 1e6:.3f}")
    return ", ".join(parts)


def _ndjson(obj) -> bytes:
    return (json.dumps(obj) + "\n").encode()


class Api(ImageRoutes):
    """handler(Request) -> Response, for mcd.httpserver.HTTPServer."""

    def __init__(self, manager, *, info_extra=None):
        self.m = manager
        self.info_extra = info_extra or (lambda: {})

    def __call__(self, req: Request) -> Response:
        try:
            route, path_args = ROUTER.match(req.method, req.path.rstrip("/") or "/")
            return getattr(self, route.handler)(req, **route.arguments(req, path_args))
        except MethodNotAllowed as err:
            return Response.error(err, headers={"Allow": ", ".join(getattr(err, "allowed", ()))})
        except MCError as err:
            return Response.error(err)

    # -- daemon
    def version(self, req):
        return Response.json(self._versions())

    def _versions(self):
        return {"version": __version__,
                "api_version": API_VERSION, "python": platform.python_version(),
                "kernel": platform.release(), "os": platform.system().lower(),
                "arch": platform.machine()}

    def info(self, req):
        out = {**self._versions(), "containers": self.m.counts(), "root": self.m.root,
               "cgroup_parent": self.m.cgroup_parent, "daemon_pid": os.getpid(),
               "started_at": self.m.started_at}
        try:
            # The placement in force (driver, parent, what containers can use), not the
            # host's layout as detected.
            out["cgroup"] = self.m.cgroups.info()
        except Exception as err:     # info must answer even when a lower layer is missing
            out["cgroup"] = {"error": str(err)}
        try:
            out["templates"] = len(self.m.templates.list())
        except Exception as err:
            out["templates"] = None
            out["templates_error"] = str(err)
        out["drivers"] = {"storage": "overlay", "logging": "json-file", "network": ["none", "host"]}
        out.update(self.info_extra())
        return Response.json(out)

    def openapi(self, req):
        return Response.json(build_openapi())

    # -- containers
    def list_containers(self, req, all):
        return Response.json(self.m.list(all=all))

    def create_container(self, req, spec, start, attach, rm, stdin):
        start = start or attach
        # With attach, the client's own fds 0/1/2 ride on the request.
        fds = req.take_fds()
        try:
            if not start:
                c = self.m.create(spec, auto_remove=rm)
                return Response.json({"id": c.id, "name": c.name}, 201)
            c, launched = self.m.run(spec, auto_remove=rm, attach=attach, fds=fds, stdin=stdin)
            return self._started(req, c, launched, attach, created=True)
        finally:
            _close_all(fds)

    def _started(self, req, c, launched, attach, created=False):
        timing = {"Server-Timing": _server_timing(req, launched)}
        if not attach:
            resp = Response.json({"id": c.id, "name": c.name}, 201 if created else 200)
            resp.headers.update(timing)
            return resp
        fds = []
        master = getattr(launched, "tty_master", None)
        if master is not None:
            fds = [master]
        m = self.m

        def stream():
            yield _ndjson({"type": "attached", "id": c.id, "name": c.name,
                           "pid": launched.pid, "tty": master is not None})
            res = m.wait(c)
            yield _ndjson({"type": "exit", **res})

        return Response(200, content_type="application/x-ndjson", stream=stream(), fds=fds,
                        headers=timing)

    def inspect(self, req, ref):
        return Response.json(self.m.inspect(ref))

    def destroy(self, req, ref, force):
        c = self.m.destroy(ref, force=force)
        return Response.json({"id": c.id, "name": c.name})

    def prune(self, req):
        removed = self.m.prune()
        return Response.json({"removed": removed})

    def start(self, req, ref, attach, stdin):
        c = self.m.get(ref)
        fds = req.take_fds()
        try:
            launched = self.m.start(c, attach=attach, fds=fds, stdin=stdin)
            return self._started(req, c, launched, attach)
        finally:
            _close_all(fds)

    def stop(self, req, ref, t):
        c = self.m.stop(ref, t)
        return Response.json({"id": c.id, "name": c.name, "exit_code": c.state.exit_code})

    def restart(self, req, ref, t):
        c = self.m.restart(ref, t)
        return Response.json({"id": c.id, "name": c.name})

    def kill(self, req, ref, signal):
        c = self.m.kill(ref, signal)
        return Response.json({"id": c.id, "name": c.name})

    def pause(self, req, ref):
        c = self.m.pause(ref)
        return Response.json({"id": c.id, "name": c.name})

    def unpause(self, req, ref):
        c = self.m.unpause(ref)
        return Response.json({"id": c.id, "name": c.name})

    def rename(self, req, ref, name):
        c = self.m.rename(ref, name)
        return Response.json({"id": c.id, "name": c.name})

    def update(self, req, ref, resources, restart_policy):
        c = self.m.update(ref, resources or {}, restart_policy)
        return Response.json({"id": c.id, "name": c.name, "restart_policy": c.spec.restart_policy,
                              "resources": c.spec.linux.resources.to_dict()})

    def wait(self, req, ref):
        c = self.m.get(ref)
        return Response.json(self.m.wait(c, client_gone=req.client_gone))

    def top(self, req, ref):
        return Response.json(self.m.top(ref))

    def stats(self, req, ref):
        return Response.json(self.m.stats(ref))

    def stats_all(self, req, stream, interval):
        if not stream:
            return Response.json(self.m.stats_all())

        def lines():
            while True:
                yield _ndjson({"time": time.time(), "containers": self.m.stats_all()})
                time.sleep(interval)
                if req.client_gone():
                    return

        return Response(200, content_type="application/x-ndjson", stream=lines())

    def logs(self, req, ref, follow, tail, timestamps):
        c = self.m.get(ref)

        def stream():
            for e in self.m.logs(c, tail=tail, follow=follow, stop=req.client_gone):
                if not timestamps:
                    e = {k: v for k, v in e.items() if k != "time"}
                yield _ndjson(e)

        return Response(200, content_type="application/x-ndjson", stream=stream())

    def exec(self, req, ref, process, detach, stdin):
        fds = req.take_fds()
        try:
            handle = self.m.exec(ref, process, fds=fds, stdin=stdin, detach=detach)
        finally:
            _close_all(fds)
        if detach:
            # The exec helper is our child: reap it in the background.
            threading.Thread(target=handle.wait, name="exec-reaper", daemon=True).start()
            return Response.json({"pid": handle.pid}, 201)
        master = getattr(handle, "tty_master", None)

        def stream():
            yield _ndjson({"type": "attached", "pid": handle.pid, "tty": master is not None})
            code = handle.wait()
            yield _ndjson({"type": "exit", "exit_code": code})

        return Response(200, content_type="application/x-ndjson", stream=stream(),
                        fds=[master] if master is not None else [])

    def events(self, req, history, stream):
        q = self.m.events.subscribe()
        since_history = history

        def sse():
            try:
                if since_history:
                    for ev in self.m.events.recent():
                        yield f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n".encode()
                while True:
                    try:
                        ev = q.get(timeout=None if not req.sock else 30)
                    except queue.Empty:
                        # Only while a client listens: a comment line that shows if it hung up.
                        yield b": keep-alive\n\n"
                        continue
                    yield f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n".encode()
            finally:
                self.m.events.unsubscribe(q)

        if not stream:
            self.m.events.unsubscribe(q)
            return Response.json(self.m.events.recent())
        return Response(200, content_type="text/event-stream", stream=sse())

    # -- templates
    def list_templates(self, req):
        return Response.json([_tdict(t) for t in self.m.templates.list()])

    def create_template(self, req, name, path):
        for k, v in (("name", name), ("path", path)):
            if not v:
                raise InvalidArgument(f"request: the field {k} is required")
        fds = req.take_fds()
        try:
            if fds:
                # The client opened the directory: the daemon reads only what the caller could.
                src = f"/proc/self/fd/{fds[0]}"
            else:
                _require_root(req, "creating a template from a path")
                src = path
            t = self.m.templates.create_from_dir(name, src)
        finally:
            _close_all(fds)
        return Response.json(_tdict(t), 201)

    def import_template(self, req, name, path):
        if not name:
            raise InvalidArgument("request: the field name is required")
        fds = req.take_fds()
        try:
            if fds:
                src = f"/proc/self/fd/{fds[0]}"
            elif path:
                _require_root(req, "importing a template from a path")
                src = path
            else:
                raise InvalidArgument("import: pass the tar archive as an fd or a path")
            t = self.m.templates.import_tar(name, src)
        finally:
            _close_all(fds)
        return Response.json(_tdict(t), 201)

    def remove_template(self, req, name):
        self.m.remove_template(name)
        return Response.json({"name": name})

    # -- networks (mcd.network.service)
    def list_networks(self, req):
        return Response.json(self.m.networks.list())

    def create_network(self, req, name, subnet, gateway, internal, labels):
        net = self.m.networks.create_network(name, subnet or None, gateway or None, internal,
                                             labels)
        return Response.json(net, 201)

    def inspect_network(self, req, ref):
        return Response.json(self.m.networks.inspect_network(ref))

    def remove_network(self, req, ref):
        return Response.json(self.m.networks.remove_network(ref))

    def prune_networks(self, req):
        return Response.json({"removed": self.m.networks.prune()})


def _require_root(req: Request, what: str) -> None:
    if req.peer is not None and req.peer.uid != 0:
        raise PermissionDenied(f"{what} needs root; pass an open fd instead")


def _tdict(t):
    if isinstance(t, dict):
        return t
    if hasattr(t, "to_dict"):
        return t.to_dict()
    return dict(vars(t))


def _close_all(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _obj(required: dict, optional: dict | None = None, extra=False) -> dict:
    """An object schema: these fields always, those maybe; no others unless ``extra``."""
    return {"type": "object", "required": list(required),
            "properties": {**required, **(optional or {})}, "additionalProperties": extra}


def _null(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


_STR, _INT, _BOOL, _NUM = ({"type": "string"}, {"type": "integer"}, {"type": "boolean"},
                           {"type": "number"})
_ID = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_TIME = _null({"type": "string"})         # ISO 8601, UTC
_STATUS = {"type": "string", "enum": ["created", "running", "paused", "stopped", "broken"]}
_ID_NAME = {"id": _ID, "name": _STR}
_SUMMARY = {**_ID_NAME, "short_id": {"type": "string", "pattern": "^[0-9a-f]{12}$"},
            "template": _null(_STR), "image": _null(_STR), "command": _null(_STR),
            "status": _STATUS, "exit_code": _null(_INT), "oom_killed": _BOOL, "created_at": _TIME,
            "started_at": _TIME, "finished_at": _TIME, "restart_count": _INT, "pid": _null(_INT),
            "network": _null(_STR), "ports": {"type": "array", "items": {"type": "object"}}}
_WAIT = {**_ID_NAME, "exit_code": _null(_INT), "oom_killed": _BOOL, "memory_limit": _null(_INT),
         "memory_peak": _null(_INT), "error": _null(_STR)}

# The answers' schemas (the request types come from mcwire.schema). Exact where the daemon
# owns the shape; open (extra=True) where it passes through what a lower layer reports
# (cgroup accounting, the on-disk state) or what the daemon's configuration adds to info.
RESPONSE_SCHEMAS = {
    "ContainerRef": {"type": "string", "pattern": f"^{REF_PATTERN}$",
                     "description": "a name, a full id, or a unique id prefix"},
    "TemplateName": {"type": "string", "pattern": NAME_PATTERN},
    "NetworkRef": {"type": "string", "pattern": "^[^/\\x00]+$", "description": "a network's name"},
    "Network": {"type": "object", "required": ["name"], "properties": {"name": _STR}},
    "IdName": _obj(_ID_NAME),
    "Stopped": _obj({**_ID_NAME, "exit_code": _null(_INT)}),
    "Updated": _obj({**_ID_NAME, "restart_policy": _STR,
                     "resources": {"$ref": "#/components/schemas/Resources"}}),
    "Summary": _obj(_SUMMARY),
    "Inspect": _obj({**_SUMMARY, "spec": _null({"$ref": "#/components/schemas/ContainerSpec"}),
                     "state": {"type": "object"}, "auto_remove": _BOOL, "dir": _STR,
                     "limits": _null({"type": "object"})},
                    {"image_config": {"type": "object"},
                     "network_settings": _null({"type": "object"})}),
    "Pruned": _obj({"removed": {"type": "array", "items": _ID}}),
    "WaitResult": _obj(_WAIT),
    "Stats": _obj({**_ID_NAME, "status": _STATUS}, extra=_null({"type": "number"})),
    "Top": _obj({"titles": {"type": "array", "items": _STR},
                 "processes": {"type": "array", "items": {
                     "type": "array", "items": {"type": ["integer", "string"]}}}}),
    "Version": _obj({"version": _STR, "api_version": {"const": API_VERSION}, "python": _STR,
                     "kernel": _STR, "os": _STR, "arch": _STR}),
    "Info": _obj({"version": _STR, "api_version": {"const": API_VERSION}, "python": _STR,
                  "kernel": _STR, "os": _STR, "arch": _STR,
                  "containers": _obj({k: _INT for k in ("created", "running", "paused",
                                                        "stopped", "broken", "total")}),
                  "root": _STR, "cgroup_parent": _STR, "daemon_pid": _INT,
                  "started_at": _TIME, "cgroup": {"type": "object"},
                  "templates": _null(_INT), "drivers": {"type": "object"}},
                 {"templates_error": _STR}, extra=True),
    "Template": _obj({"name": _STR}, {"created": _STR, "source": _STR, "size": _INT}, extra=True),
    "ExecStarted": _obj({"pid": _INT}),
    "AttachLine": {"oneOf": [
        _obj({"type": {"const": "attached"}, **_ID_NAME, "pid": _INT, "tty": _BOOL}),
        _obj({"type": {"const": "exit"}, **_WAIT})]},
    "ExecLine": {"oneOf": [_obj({"type": {"const": "attached"}, "pid": _INT, "tty": _BOOL}),
                           _obj({"type": {"const": "exit"}, "exit_code": _null(_INT)})]},
    "LogLine": _obj({"log": _STR, "stream": {"enum": ["stdout", "stderr"]}}, {"time": _STR}),
    "StatsLine": _obj({"time": _NUM, "containers": {"type": "array", "items": {
        "$ref": "#/components/schemas/Stats"}}}),
    "Event": _obj({"type": _STR, **_ID_NAME, "time": _STR}, extra=True),
}


def build_openapi() -> dict:
    from mcwire.schema import spec_schemas
    return openapi(ROUTES, version=API_VERSION,
                   schemas={**spec_schemas(), **RESPONSE_SCHEMAS, **IMAGE_SCHEMAS},
                   description="mini-container daemon API over a Unix socket. Every route "
                               "declares its parameters, body and answers once (mcd/api.py); "
                               "see docs/api.md for fd passing and streaming.")


if __name__ == "__main__":
    print(json.dumps(build_openapi(), indent=1, sort_keys=True))
