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
import re
import threading
import time

from mcd.errors import InvalidArgument, MCError, MethodNotAllowed, NotFound
from mcd.httpserver import Request, Response
from mcwire import API_VERSION, __version__
from mcd.images.api import IMAGE_BODIES, IMAGE_ROUTES, ImageRoutes

log = logging.getLogger("mcd.api")

# (method, path template, handler, summary)
ROUTES = [
    ("GET", "/v1/info", "info", "Daemon, versions, cgroup mode, container counts"),
    ("GET", "/v1/version", "version", "Versions"),
    ("GET", "/v1/openapi.json", "openapi", "This OpenAPI document"),
    ("GET", "/v1/containers", "list_containers", "List containers (?all=1 includes stopped)"),
    ("POST", "/v1/containers", "create_container",
     "Create (and optionally start, attach, auto-remove) a container"),
    ("POST", "/v1/containers/prune", "prune", "Remove every stopped or created container"),
    ("GET", "/v1/containers/{ref}", "inspect", "Inspect a container"),
    ("DELETE", "/v1/containers/{ref}", "destroy", "Destroy a container (?force=1 kills it first)"),
    ("POST", "/v1/containers/{ref}/start", "start", "Start a container (?attach=1 with fds)"),
    ("POST", "/v1/containers/{ref}/stop", "stop", "Stop: stop signal, then SIGKILL after ?t= seconds"),
    ("POST", "/v1/containers/{ref}/restart", "restart", "Stop then start"),
    ("POST", "/v1/containers/{ref}/kill", "kill", "Send ?signal= (default SIGKILL) to PID 1"),
    ("POST", "/v1/containers/{ref}/pause", "pause", "Freeze every process"),
    ("POST", "/v1/containers/{ref}/unpause", "unpause", "Thaw"),
    ("POST", "/v1/containers/{ref}/rename", "rename", "Rename to ?name="),
    ("POST", "/v1/containers/{ref}/update", "update",
     "Change resource limits and restart policy (body: resources, restart_policy)"),
    ("POST", "/v1/containers/{ref}/wait", "wait", "Block until the container exits"),
    ("GET", "/v1/containers/{ref}/logs", "logs", "Log lines (?follow=1&tail=N&timestamps=1)"),
    ("GET", "/v1/containers/{ref}/top", "top", "Processes of the container"),
    ("GET", "/v1/containers/{ref}/stats", "stats", "Resource usage of one container"),
    ("POST", "/v1/containers/{ref}/exec", "exec", "Run a process in a running container"),
    ("GET", "/v1/stats", "stats_all", "Resource usage of all running containers (?stream=1)"),
    ("GET", "/v1/events", "events", "Server-sent events: created, started, died, oom, destroyed"),
    ("GET", "/v1/templates", "list_templates", "List templates"),
    ("POST", "/v1/templates", "create_template", "Create a template from a directory"),
    ("POST", "/v1/templates/import", "import_template", "Import a template from a tar archive"),
    ("DELETE", "/v1/templates/{name}", "remove_template", "Remove a template"),
    ("GET", "/v1/networks", "list_networks", "List networks"),
    ("POST", "/v1/networks", "create_network", "Create a bridge network"),
    ("POST", "/v1/networks/prune", "prune_networks", "Remove every unused network made by create"),
    ("GET", "/v1/networks/{ref}", "inspect_network", "Inspect a network"),
    ("DELETE", "/v1/networks/{ref}", "remove_network", "Remove a network (refused while used)"),
] + IMAGE_ROUTES


def _compile(template: str):
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


_COMPILED = [(m, _compile(p), h) for m, p, h, _ in ROUTES]


def _bool(req: Request, key: str, default: bool = False) -> bool:
    v = req.query.get(key)
    if v is None:
        return default
    if v.lower() in ("1", "true", "yes", ""):
        return True
    if v.lower() in ("0", "false", "no"):
        return False
    raise InvalidArgument(f"query parameter {key}: expected 1 or 0, got {v!r}")


def _int(req: Request, key: str, default=None, lo=None, hi=None):
    v = req.query.get(key)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except ValueError:
        raise InvalidArgument(f"query parameter {key}: expected an integer, got {v!r}") from None
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise InvalidArgument(f"query parameter {key}: {n} is out of range [{lo}, {hi}]")
    return n


def _fields(body, allowed: dict, where: str = "request") -> dict:
    """Refuse unknown fields and wrong types in a request body."""
    if not isinstance(body, dict):
        raise InvalidArgument(f"{where}: expected a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidArgument(f"{where}: unknown field(s) {', '.join(unknown)}")
    for k, typ in allowed.items():
        if k in body and body[k] is not None:
            if (typ is int and isinstance(body[k], bool)) or not isinstance(body[k], typ):
                tname = {dict: "an object", str: "a string", bool: "a boolean", int: "an integer",
                         list: "a list"}.get(typ, str(typ))
                raise InvalidArgument(f"{where}.{k}: expected {tname}, got {json.dumps(body[k])[:40]}")
    return body


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
            path = req.path.rstrip("/") or "/"
            allowed = []
            for method, rx, handler in _COMPILED:
                mt = rx.match(path)
                if mt:
                    if method == req.method or (method == "GET" and req.method == "HEAD"):
                        return getattr(self, handler)(req, **mt.groupdict())
                    allowed.append(method)
            if allowed:
                return Response.error(MethodNotAllowed(f"{req.method} {path}: use {', '.join(allowed)}"),
                                      headers={"Allow": ", ".join(allowed)})
            return Response.error(NotFound(f"no such endpoint: {req.method} {path}"))
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
    def list_containers(self, req):
        return Response.json(self.m.list(all=_bool(req, "all")))

    def create_container(self, req):
        body = _fields(req.json(), {"spec": dict, "start": bool, "attach": bool, "rm": bool,
                                    "stdin": bool})
        if "spec" not in body:
            raise InvalidArgument("request: the field spec is required")
        attach = bool(body.get("attach"))
        start = bool(body.get("start")) or attach
        # With attach, the client's own fds 0/1/2 ride on the request.
        fds = req.take_fds()
        try:
            if not start:
                c = self.m.create(body["spec"], auto_remove=bool(body.get("rm")))
                return Response.json({"id": c.id, "name": c.name}, 201)
            c, launched = self.m.run(body["spec"], auto_remove=bool(body.get("rm")),
                                     attach=attach, fds=fds, stdin=bool(body.get("stdin")))
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

    def destroy(self, req, ref):
        c = self.m.destroy(ref, force=_bool(req, "force"))
        return Response.json({"id": c.id, "name": c.name})

    def prune(self, req):
        removed = self.m.prune()
        return Response.json({"removed": removed})

    def start(self, req, ref):
        c = self.m.get(ref)
        attach = _bool(req, "attach")
        fds = req.take_fds()
        try:
            launched = self.m.start(c, attach=attach, fds=fds, stdin=_bool(req, "stdin"))
            return self._started(req, c, launched, attach)
        finally:
            _close_all(fds)

    def stop(self, req, ref):
        c = self.m.stop(ref, _int(req, "t", None, 0, 3600))
        return Response.json({"id": c.id, "name": c.name, "exit_code": c.state.exit_code})

    def restart(self, req, ref):
        c = self.m.restart(ref, _int(req, "t", None, 0, 3600))
        return Response.json({"id": c.id, "name": c.name})

    def kill(self, req, ref):
        c = self.m.kill(ref, req.query.get("signal") or "SIGKILL")
        return Response.json({"id": c.id, "name": c.name})

    def pause(self, req, ref):
        c = self.m.pause(ref)
        return Response.json({"id": c.id, "name": c.name})

    def unpause(self, req, ref):
        c = self.m.unpause(ref)
        return Response.json({"id": c.id, "name": c.name})

    def rename(self, req, ref):
        name = req.query.get("name")
        if not name:
            raise InvalidArgument("rename: query parameter name is required")
        c = self.m.rename(ref, name)
        return Response.json({"id": c.id, "name": c.name})

    def update(self, req, ref):
        body = _fields(req.json(), {"resources": dict, "restart_policy": str})
        c = self.m.update(ref, body.get("resources") or {}, body.get("restart_policy"))
        return Response.json({"id": c.id, "name": c.name, "restart_policy": c.spec.restart_policy,
                              "resources": c.spec.linux.resources.to_dict()})

    def wait(self, req, ref):
        c = self.m.get(ref)
        return Response.json(self.m.wait(c, client_gone=req.client_gone))

    def top(self, req, ref):
        return Response.json(self.m.top(ref))

    def stats(self, req, ref):
        return Response.json(self.m.stats(ref))

    def stats_all(self, req):
        if not _bool(req, "stream"):
            return Response.json(self.m.stats_all())
        interval = _int(req, "interval", 1, 1, 3600)

        def stream():
            while True:
                yield _ndjson({"time": time.time(), "containers": self.m.stats_all()})
                time.sleep(interval)
                if req.client_gone():
                    return

        return Response(200, content_type="application/x-ndjson", stream=stream())

    def logs(self, req, ref):
        c = self.m.get(ref)
        follow = _bool(req, "follow")
        tail = _int(req, "tail", None, 0)
        timestamps = _bool(req, "timestamps")

        def stream():
            for e in self.m.logs(c, tail=tail, follow=follow, stop=req.client_gone):
                if not timestamps:
                    e = {k: v for k, v in e.items() if k != "time"}
                yield _ndjson(e)

        return Response(200, content_type="application/x-ndjson", stream=stream())

    def exec(self, req, ref):
        body = _fields(req.json(), {"process": dict, "detach": bool, "stdin": bool})
        if "process" not in body:
            raise InvalidArgument("request: the field process is required")
        detach = bool(body.get("detach"))
        fds = req.take_fds()
        try:
            handle = self.m.exec(ref, body["process"], fds=fds, stdin=bool(body.get("stdin")),
                                 detach=detach)
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

    def events(self, req):
        q = self.m.events.subscribe()
        since_history = _bool(req, "history")

        def stream():
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

        if not _bool(req, "stream", True):
            self.m.events.unsubscribe(q)
            return Response.json(self.m.events.recent())
        return Response(200, content_type="text/event-stream", stream=stream())

    # -- templates
    def list_templates(self, req):
        return Response.json([_tdict(t) for t in self.m.templates.list()])

    def create_template(self, req):
        body = _fields(req.json(), {"name": str, "path": str})
        for k in ("name", "path"):
            if not body.get(k):
                raise InvalidArgument(f"request: the field {k} is required")
        fds = req.take_fds()
        try:
            if fds:
                # The client opened the directory: the daemon reads only what the caller could.
                src = f"/proc/self/fd/{fds[0]}"
            else:
                _require_root(req, "creating a template from a path")
                src = body["path"]
            t = self.m.templates.create_from_dir(body["name"], src)
        finally:
            _close_all(fds)
        return Response.json(_tdict(t), 201)

    def import_template(self, req):
        body = _fields(req.json(), {"name": str, "path": str})
        if not body.get("name"):
            raise InvalidArgument("request: the field name is required")
        fds = req.take_fds()
        try:
            if fds:
                src = f"/proc/self/fd/{fds[0]}"
            elif body.get("path"):
                _require_root(req, "importing a template from a path")
                src = body["path"]
            else:
                raise InvalidArgument("import: pass the tar archive as an fd or a path")
            t = self.m.templates.import_tar(body["name"], src)
        finally:
            _close_all(fds)
        return Response.json(_tdict(t), 201)

    def remove_template(self, req, name):
        self.m.remove_template(name)
        return Response.json({"name": name})

    # -- networks (mcd.network.service)
    def list_networks(self, req):
        return Response.json(self.m.networks.list())

    def create_network(self, req):
        body = _fields(req.json(), {"name": str, "subnet": str, "gateway": str,
                                    "internal": bool, "labels": dict})
        if not body.get("name"):
            raise InvalidArgument("request: the field name is required")
        net = self.m.networks.create_network(body["name"], body.get("subnet") or None,
                                             body.get("gateway") or None,
                                             bool(body.get("internal")), body.get("labels"))
        return Response.json(net, 201)

    def inspect_network(self, req, ref):
        return Response.json(self.m.networks.inspect_network(ref))

    def remove_network(self, req, ref):
        return Response.json(self.m.networks.remove_network(ref))

    def prune_networks(self, req):
        return Response.json({"removed": self.m.networks.prune()})


def _require_root(req: Request, what: str) -> None:
    from mcd.errors import PermissionDenied
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


_JSON_TYPES = {int: "integer", str: "string", bool: "boolean", list: "array", dict: "object",
               float: "number"}

# Request bodies, by operation (the spec classes give their own schemas below).
_BODIES = {
    "create_container": {"type": "object", "required": ["spec"], "additionalProperties": False,
                         "properties": {"spec": {"$ref": "#/components/schemas/ContainerSpec"},
                                        "start": {"type": "boolean"}, "attach": {"type": "boolean"},
                                        "rm": {"type": "boolean"}, "stdin": {"type": "boolean"}}},
    "update": {"type": "object", "additionalProperties": False,
               "properties": {"resources": {"$ref": "#/components/schemas/Resources"},
                              "restart_policy": {"type": "string"}}},
    "exec": {"type": "object", "required": ["process"], "additionalProperties": False,
             "properties": {"process": {"$ref": "#/components/schemas/Process"},
                            "detach": {"type": "boolean"}, "stdin": {"type": "boolean"}}},
    "create_template": {"type": "object", "required": ["name", "path"], "additionalProperties": False,
                        "properties": {"name": {"type": "string"}, "path": {"type": "string"}}},
    "import_template": {"type": "object", "required": ["name"], "additionalProperties": False,
                        "properties": {"name": {"type": "string"}, "path": {"type": "string"}}},
    **IMAGE_BODIES,
    "create_network": {"type": "object", "required": ["name"], "additionalProperties": False,
                       "properties": {"name": {"type": "string"}, "subnet": {"type": "string"},
                                      "gateway": {"type": "string"},
                                      "internal": {"type": "boolean"},
                                      "labels": {"type": "object"}}},
}


def _spec_schemas() -> dict:
    """JSON schemas of the spec dataclasses, from their fields and declared types."""
    import dataclasses
    from mcwire import spec as specmod
    out = {}
    for cls in (specmod.ContainerSpec, specmod.Process, specmod.User, specmod.Root,
                specmod.Mount, specmod.Linux, specmod.Resources, specmod.IDMapping,
                specmod.Networking, specmod.PortMapping):
        props = {}
        for f in dataclasses.fields(cls):
            nested = cls._nested.get(f.name)
            if isinstance(nested, list):
                props[f.name] = {"type": "array",
                                 "items": {"$ref": f"#/components/schemas/{nested[0].__name__}"}}
            elif nested is not None:
                props[f.name] = {"$ref": f"#/components/schemas/{nested.__name__}"}
            elif f.name in cls._types:
                props[f.name] = {"type": _JSON_TYPES.get(cls._types[f.name], "string")}
                if cls._types[f.name] is list:
                    props[f.name]["items"] = {"type": "string" if f.name not in (
                        "additional_gids", "console_size") else "integer"}
                    if f.name == "extra_hosts":
                        props[f.name]["items"] = {"type": "object", "properties": {
                            "name": {"type": "string"}, "ip": {"type": "string"}}}
            else:
                props[f.name] = {}
            if f.name in cls._types and cls is specmod.Resources:
                props[f.name]["nullable"] = True
        out[cls.__name__] = {"type": "object", "additionalProperties": False, "properties": props}
    out["ContainerSpec"]["required"] = ["process"]
    out["Process"]["required"] = ["args"]
    return out


def build_openapi() -> dict:
    paths: dict = {}
    err = {"description": "error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
    for method, path, handler, summary in ROUTES:
        op = {"operationId": handler, "summary": summary,
              "responses": {"200": {"description": "OK"}, "default": err}}
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in re.findall(r"\{(\w+)\}", path)]
        if params:
            op["parameters"] = params
        if handler in _BODIES:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": _BODIES[handler]}}}
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "mcd API", "version": API_VERSION,
                 "description": "mini-container daemon API over a Unix socket. "
                                "See docs/api.md for bodies, fd passing and streaming."},
        "paths": paths,
        "components": {"schemas": {**_spec_schemas(), "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "message"],
                                     "properties": {"code": {"type": "string"},
                                                    "message": {"type": "string"},
                                                    "container": {"type": "string"},
                                                    "step": {"type": "string"}}}}}}},
    }


if __name__ == "__main__":
    print(json.dumps(build_openapi(), indent=1, sort_keys=True))
