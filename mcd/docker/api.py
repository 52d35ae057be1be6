"""Docker Engine API routes: handler(Request) -> Response for mcd.httpserver.HTTPServer.

Paths are accepted with and without the /v1.NN prefix (MIN_API..MAX_API); errors are
mcd's typed errors in Docker's shape, ``{"message": ...}``, with Docker's status codes;
an unknown route is Docker's 404, never a hang. The handlers call the same Manager as
/v1 through its public methods.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import queue
import re
import socket
import threading
import time
import urllib.parse

from mcd.docker import MAX_API, MIN_API, streams
from mcd.docker import translate as tr
from mcd.errors import Conflict, InvalidArgument, MCError, NotFound, PermissionDenied
from mcd.httpserver import Request, Response

log = logging.getLogger("mcd.docker")

# (method, path template, handler). Docker's own names for the operations.
ROUTES = [
    ("GET", "/_ping", "ping"),
    ("GET", "/version", "version"),
    ("GET", "/info", "info"),
    ("GET", "/events", "events"),
    ("GET", "/system/df", "system_df"),
    ("GET", "/containers/json", "container_list"),
    ("POST", "/containers/create", "container_create"),
    ("POST", "/containers/prune", "container_prune"),
    ("GET", "/containers/{ref}/json", "container_inspect"),
    ("POST", "/containers/{ref}/start", "container_start"),
    ("POST", "/containers/{ref}/stop", "container_stop"),
    ("POST", "/containers/{ref}/restart", "container_restart"),
    ("POST", "/containers/{ref}/kill", "container_kill"),
    ("POST", "/containers/{ref}/wait", "container_wait"),
    ("POST", "/containers/{ref}/attach", "container_attach"),
    ("GET", "/containers/{ref}/logs", "container_logs"),
    ("POST", "/containers/{ref}/resize", "container_resize"),
    ("GET", "/containers/{ref}/top", "container_top"),
    ("GET", "/containers/{ref}/stats", "container_stats"),
    ("POST", "/containers/{ref}/pause", "container_pause"),
    ("POST", "/containers/{ref}/unpause", "container_unpause"),
    ("POST", "/containers/{ref}/rename", "container_rename"),
    ("POST", "/containers/{ref}/update", "container_update"),
    ("DELETE", "/containers/{ref}", "container_delete"),
    ("POST", "/containers/{ref}/exec", "exec_create"),
    ("POST", "/exec/{ref}/start", "exec_start"),
    ("POST", "/exec/{ref}/resize", "exec_resize"),
    ("GET", "/exec/{ref}/json", "exec_inspect"),
    ("GET", "/images/json", "image_list"),
    ("GET", "/images/{name}/json", "image_inspect"),
    ("POST", "/images/create", "image_pull"),
    ("POST", "/images/prune", "image_prune"),
    ("POST", "/images/load", "image_load"),
    ("GET", "/images/get", "image_save"),
    ("POST", "/build/prune", "build_prune"),
    ("GET", "/networks", "network_list"),
    ("POST", "/networks/create", "network_create"),
    ("POST", "/networks/prune", "network_prune"),
    ("GET", "/networks/{ref}", "network_inspect"),
    ("DELETE", "/networks/{ref}", "network_delete"),
    ("POST", "/networks/{ref}/connect", "network_connect"),
    ("POST", "/networks/{ref}/disconnect", "network_connect"),
    ("GET", "/images/{name}/get", "image_save"),
    ("DELETE", "/images/{name}", "image_delete"),
    ("POST", "/images/{name}/tag", "image_tag"),
]

_COMPILED = [(m, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", p) + "$"), h)
             for m, p, h in ROUTES]
# {name} in /images/{name}/json may hold slashes (docker.io/library/x).
_IMAGE_NAME_RX = {  # the fixed routes above come first: /images/prune is not an image
"image_inspect": r"^/images/(?P<name>.+)/json$",
                  "image_tag": r"^/images/(?P<name>.+)/tag$",
                  "image_save": r"^/images/(?P<name>.+)/get$",
                  "image_delete": r"^/images/(?P<name>.+)$"}
_COMPILED = [(m, re.compile(_IMAGE_NAME_RX[h]), h)
             if h in _IMAGE_NAME_RX and "{name}" in p else (m, rx, h)
             for (m, rx, h), (_m, p, _h) in zip(_COMPILED, ROUTES)]

MAX_EXECS = 1024


def stream_body(method: str, path: str) -> bool:
    """For HTTPServer(stream_body=): the routes whose handler reads its (large, possibly
    chunked) body itself: docker load."""
    try:
        _v, rest = tr.split_version(path)
    except InvalidArgument:
        return False
    return method == "POST" and rest.rstrip("/") == "/images/load"


def server_error_body(err: MCError) -> bytes:
    """What the HTTP server answers itself on this socket (403, 408, 413...): Docker's shape."""
    return tr.error_body(err.message)


def _json(obj, status: int = 200, **kw) -> Response:
    return Response(status=status, body=(json.dumps(obj) + "\n").encode(), **kw)


def _empty(status: int = 204) -> Response:
    return Response(status=status, body=b"", content_type="text/plain")


def _error(status: int, message: str) -> Response:
    return Response(status=status, body=tr.error_body(message))


def _bool(req: Request, key: str, default: bool = False) -> bool:
    v = req.query.get(key)
    if v is None:
        return default
    return v.lower() not in ("0", "false", "no", "")


def _int(req: Request, key: str, default=None):
    v = req.query.get(key)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {key}: {v!r} is not an integer") from None


def _stream_type(tty: bool) -> str:
    return "application/vnd.docker.raw-stream" if tty else \
        "application/vnd.docker.multiplexed-stream"


def _hijack_response(req: Request, tty: bool, run) -> Response:
    """101 with Upgrade: tcp when the client asked for it (the docker CLI, docker-py),
    else 200 and the raw stream; either way the connection then belongs to ``run``."""
    headers = {}
    status = 200
    if req.headers.get("upgrade", "").lower() == "tcp":
        status = 101
        headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
    return Response(status=status, content_type=_stream_type(tty), headers=headers, hijack=run)


def _cpu_system_ns() -> int:
    """Host CPU time in ns, from /proc/stat (what dockerd reports as system_cpu_usage)."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()[1:8]
        return sum(int(p) for p in parts) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError):
        return 0


def _now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + \
        ".%09dZ" % (ns % 1_000_000_000)


def _network_json(n: dict, containers: dict | None = None) -> dict:
    """mcd's network view -> Docker's network object."""
    ipam = [{"Subnet": n["subnet"], **({"Gateway": n["gateway"]} if n.get("gateway") else {})}] \
        if n.get("subnet") else []
    return {"Name": n["name"], "Id": n["id"], "Created": n.get("created") or tr.ZERO_TIME,
            "Scope": "local", "Driver": n.get("driver") or "bridge", "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": ipam},
            "Internal": bool(n.get("internal")), "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Containers": containers if containers is not None else {},
            "Options": {"com.docker.network.bridge.name": n["bridge"]} if n.get("bridge") else {},
            "Labels": n.get("labels") or {}}


# Docker always lists these two; in mcd they are modes, not networks.
_PSEUDO_NETWORKS = [{"name": "host", "id": hashlib.sha256(b"mini-container-network:host").hexdigest(),
                     "driver": "host"},
                    {"name": "none", "id": hashlib.sha256(b"mini-container-network:none").hexdigest(),
                     "driver": "null"}]


class ExecInstance:
    def __init__(self, eid: str, cid: str, process: dict, tty: bool, stdin: bool,
                 stdout: bool, stderr: bool, detach_keys: bytes):
        self.id, self.cid, self.process = eid, cid, process
        self.tty, self.stdin, self.stdout, self.stderr = tty, stdin, stdout, stderr
        self.detach_keys = detach_keys
        self.running = False
        self.started = False
        self.exit_code: int | None = None
        self.pid = 0
        self.master: int | None = None
        self.created = time.monotonic()


class DockerApi:
    """handler(Request) -> Response."""

    def __init__(self, manager, *, info_extra=None):
        self.m = manager
        self.info_extra = info_extra or (lambda: {})
        self._lock = threading.Lock()
        self._pending: dict[str, streams.Session] = {}   # container id -> attach before start
        self._ttys: dict[str, streams.Session] = {}      # container id -> live tty session
        self._execs: dict[str, ExecInstance] = {}

    # ------------------------------------------------------------ dispatch
    def __call__(self, req: Request) -> Response:
        try:
            try:
                _version, path = tr.split_version(req.path)
            except InvalidArgument as err:
                return _error(400, err.message)
            path = path.rstrip("/") or "/"
            allowed = []
            for method, rx, handler in _COMPILED:
                mt = rx.match(path)
                if mt:
                    if method == req.method or (method == "GET" and req.method == "HEAD"):
                        return getattr(self, handler)(req, **mt.groupdict())
                    if handler != "image_delete":   # its name takes any path under /images
                        allowed.append(method)
            if allowed:
                return _error(405, f"{req.method} {path}: method not allowed (use "
                                   f"{', '.join(allowed)})")
            return _error(404, f"page not found: {req.method} {path} is not served by "
                               f"mini-container's Docker API (see docs/api.md)")
        except MCError as err:
            return _error(tr.error_status(err), tr.error_message(err))
        except Exception:   # a bug: logged with its traceback, answered in Docker's shape
            log.exception("docker: %s %s failed", req.method, req.path)
            return _error(500, "internal error (see the mcd log)")

    # ------------------------------------------------------------ system
    def _versions(self) -> dict:
        from mcwire import __version__
        return {"version": __version__, "kernel": platform.release(),
                "arch": tr.go_arch(platform.machine())}

    def ping(self, req):
        return Response(200, body=b"OK", content_type="text/plain; charset=utf-8", headers={
            "API-Version": MAX_API, "Docker-Experimental": "false", "Ostype": "linux",
            "Builder-Version": "", "Swarm": "inactive",
            "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"})

    def version(self, req):
        v = self._versions()
        details = {"ApiVersion": MAX_API, "MinAPIVersion": MIN_API, "Os": "linux",
                   "Arch": v["arch"], "KernelVersion": v["kernel"], "Experimental": "false",
                   "GitCommit": "", "GoVersion": "python" + platform.python_version(),
                   "BuildTime": ""}
        return _json({"Platform": {"Name": "mini-container"},
                      "Components": [{"Name": "Engine", "Version": v["version"],
                                      "Details": details}],
                      "Version": v["version"], **{k: details[k] for k in details
                                                   if k != "Experimental"}})

    def info(self, req):
        counts = self.m.counts()
        try:
            templates = len(self.m.templates.list())
        except MCError:
            templates = 0
        try:
            cg = self.m.cgroups.info()
        except Exception:
            cg = {}
        mode = str(cg.get("mode") or "")
        mem_total = tr._host_memory()
        return _json({
            "ID": hashlib.sha256(self.m.root.encode()).hexdigest()[:32],
            "Containers": counts.get("total", 0), "ContainersRunning": counts.get("running", 0),
            "ContainersPaused": counts.get("paused", 0),
            "ContainersStopped": counts.get("stopped", 0) + counts.get("created", 0),
            "Images": templates, "Driver": "overlay", "DriverStatus": [],
            "Plugins": {"Volume": [], "Network": ["host", "none"], "Authorization": None,
                        "Log": ["json-file"]},
            "MemoryLimit": True, "SwapLimit": bool(cg.get("swap_accounting")),
            "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True,
            "PidsLimit": True, "OomKillDisable": False, "IPv4Forwarding": False,
            "Debug": False, "NFd": len(os.listdir("/proc/self/fd")),
            "NGoroutines": threading.active_count(), "SystemTime": _now_rfc3339(),
            "LoggingDriver": "json-file", "CgroupDriver": "systemd" if cg.get("driver") == "systemd" else "cgroupfs",
            "CgroupVersion": "2" if mode == "v2" else "1", "NEventsListener": 0,
            "KernelVersion": platform.release(), "OperatingSystem": _os_name(),
            "OSVersion": "", "OSType": "linux", "Architecture": platform.machine(),
            "IndexServerAddress": "", "RegistryConfig": None, "NCPU": os.cpu_count() or 1,
            "MemTotal": mem_total, "GenericResources": None, "DockerRootDir": self.m.root,
            "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": socket.gethostname(),
            "Labels": [], "ExperimentalBuild": False, "ServerVersion": self._versions()["version"],
            "Runtimes": {"mcd": {"path": "mcd"}}, "DefaultRuntime": "mcd",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "",
            "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
            "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges"],
            "CDISpecDirs": [], "Warnings": None,
        })

    def system_df(self, req):
        containers = [self._list_entry(s) for s in self.m.list(all=True)]
        for c in containers:
            c["SizeRw"] = 0
            c["SizeRootFs"] = 0
        images = self._all_images()
        return _json({"LayersSize": sum(i["Size"] for i in images), "Images": images,
                      "Containers": containers, "Volumes": [], "BuildCache": []})

    def events(self, req):
        filters = tr.parse_filters(req.query.get("filters"))
        since = _float_time(req.query.get("since"))
        until = _float_time(req.query.get("until"))
        q = self.m.events.subscribe()

        def wanted(msg) -> bool:
            if msg is None:
                return False
            for key, values in filters.items():
                if key == "type" and "container" not in values:
                    return False
                if key == "event" and msg["Action"].split(":")[0] not in values:
                    return False
                if key == "container" and not any(
                        msg["id"].startswith(v) or msg["Actor"]["Attributes"].get("name") == v
                        for v in values):
                    return False
                if key == "label":
                    return False    # labels are not carried on mcd's events
            return True

        def stream():
            try:
                if since is not None:
                    for ev in self.m.events.recent():
                        msg = tr.event(ev)
                        if wanted(msg) and msg["time"] >= since and (until is None or msg["time"] <= until):
                            yield (json.dumps(msg) + "\n").encode()
                while until is None or time.time() < until:
                    try:
                        ev = q.get(timeout=1.0)
                    except queue.Empty:
                        if req.client_gone():
                            return
                        continue
                    msg = tr.event(ev)
                    if wanted(msg):
                        yield (json.dumps(msg) + "\n").encode()
            finally:
                self.m.events.unsubscribe(q)

        return Response(200, content_type="application/json", stream=stream())

    # ------------------------------------------------------------ containers
    def _spec_of(self, cid: str) -> dict | None:
        try:
            return self.m.inspect(cid).get("spec")
        except NotFound:
            return None

    def _list_entry(self, summary: dict) -> dict:
        return tr.list_entry(summary, self._spec_of(summary["id"]))

    def container_list(self, req):
        filters = tr.parse_filters(req.query.get("filters"))
        show_all = _bool(req, "all")
        limit = _int(req, "limit", -1)
        out = []
        for s in self.m.list(all=True):
            if not show_all and s["status"] not in ("running", "paused") and "status" not in filters:
                continue
            spec = self._spec_of(s["id"])
            if not tr.matches_filters(s, spec, filters):
                continue
            out.append(tr.list_entry(s, spec))
            if limit is not None and limit > 0 and len(out) >= limit:
                break
        return _json(out)

    def container_create(self, req):
        name = req.query.get("name") or None
        if name and name.startswith("/"):
            name = name[1:]
        if req.query.get("platform") not in (None, "", "linux", f"linux/{tr.go_arch(platform.machine())}"):
            raise InvalidArgument(f"platform {req.query['platform']!r}: only linux/"
                                  f"{tr.go_arch(platform.machine())} is available")
        body = req.json()
        image = body.get("Image") if isinstance(body, dict) else None
        from mcd.images.config import is_template
        is_image = not is_template(image, self.m.templates) and self._image_id(image) is not None
        spec, auto_remove = tr.create_to_spec(body, name, image=is_image)
        if not is_image:
            template = spec["root"]["template"]
            if template != "minimal" and not self.m.templates.exists(template):
                raise NotFound(f"No such image: {image}")
        try:
            c = self.m.create(spec, auto_remove=auto_remove)
        except NotFound as err:
            # The image was found above. Docker clients read a 404 from create as "no such
            # image" and pull (the CLI says "Unable to find image"); anything else the
            # request names that does not exist (a network) is a bad request here.
            raise InvalidArgument(err.message) from None
        return _json({"Id": c.id, "Warnings": []}, 201)

    def container_inspect(self, req, ref):
        view = self.m.inspect(ref)
        execs = [e.id for e in list(self._execs.values()) if e.cid == view["id"] and e.running]
        return _json(tr.inspect(view, execs))

    def container_start(self, req, ref):
        c = self.m.get(ref)
        if self.m.inspect(c.id)["status"] in ("running", "paused"):
            return _empty(304)
        with self._lock:
            session = self._pending.pop(c.id, None)
        attach = {}
        if session is not None:
            fds, to_caller = session.child_fds(tty_master=session.want_stdin)
            attach = dict(attach=True, fds=fds, stdin=True, pty_to_caller=to_caller)
        try:
            launched = self.m.start(c, **attach)
        except MCError as err:
            if session is not None:
                session.fail(err.message)
            if isinstance(err, Conflict) and "already running" in err.message:
                return _empty(304)
            raise
        except BaseException:
            if session is not None:
                session.fail("start failed")
            raise
        if session is not None:
            session.close_child_ends()
            master = getattr(launched, "tty_master", None)
            if master is not None:
                with self._lock:
                    self._ttys[c.id] = session
                try:
                    from mcd.runtime.logs import LogWriter
                    session.log = LogWriter(self.m.store.log_path(c.id))
                except OSError as err:
                    log.warning("container %s: its terminal output is not logged: %s",
                                c.name, os.strerror(err.errno) if err.errno else err)

                def forget(cid=c.id, s=session):
                    with self._lock:
                        if self._ttys.get(cid) is s:
                            del self._ttys[cid]
                session.on_done = forget
            session.ready(master)
        return _empty(204)

    def container_stop(self, req, ref):
        c = self.m.get(ref)
        if self.m.inspect(c.id)["status"] not in ("running", "paused"):
            return _empty(304)
        if req.query.get("signal"):
            raise InvalidArgument("stop: signal is not supported (the container's StopSignal "
                                  "is used); use kill")
        self.m.stop(c.id, _int(req, "t"))
        return _empty(204)

    def container_restart(self, req, ref):
        self.m.restart(ref, _int(req, "t"))
        return _empty(204)

    def container_kill(self, req, ref):
        c = self.m.get(ref)
        if self.m.inspect(c.id)["status"] not in ("running", "paused"):
            raise Conflict(f"Container {c.id} is not running")
        self.m.kill(c.id, tr.parse_signal(req.query.get("signal")))
        return _empty(204)

    def container_pause(self, req, ref):
        self.m.pause(ref)
        return _empty(204)

    def container_unpause(self, req, ref):
        self.m.unpause(ref)
        return _empty(204)

    def container_rename(self, req, ref):
        name = req.query.get("name")
        if not name:
            raise InvalidArgument("rename: query parameter name is required")
        self.m.rename(ref, name.lstrip("/"))
        return _empty(204)

    def container_update(self, req, ref):
        body = req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("request body: expected a JSON object")
        res, policy = {}, None
        mapping = {"Memory": "memory", "MemorySwap": "memory_swap", "CpuShares": "cpu_shares",
                   "CpuQuota": "cpu_quota", "CpuPeriod": "cpu_period", "CpusetCpus": "cpuset_cpus",
                   "PidsLimit": "pids_limit"}
        for k, v in body.items():
            if k in mapping:
                if v:
                    res[mapping[k]] = v
            elif k == "NanoCpus":
                if v:
                    res["cpu_period"] = 100000
                    res["cpu_quota"] = max(1000, int(v) * 100000 // 1_000_000_000)
            elif k == "RestartPolicy":
                if v and v.get("Name"):
                    n, r = v.get("Name"), v.get("MaximumRetryCount") or 0
                    policy = f"{n}:{r}" if n == "on-failure" and r else n
            elif not tr._zero(v):
                tr._refuse(k, v)
        self.m.update(ref, res, policy)
        return _json({"Warnings": []})

    def container_delete(self, req, ref):
        if _bool(req, "link"):
            raise InvalidArgument("links are not supported")
        # v: remove anonymous volumes. mini-container creates none, so there is nothing to do.
        c = self.m.get(ref)
        with self._lock:
            session = self._pending.pop(c.id, None)
        if session is not None:
            session.fail("container removed")
        self.m.destroy(c.id, force=_bool(req, "force"))
        return _empty(204)

    def container_prune(self, req):
        filters = tr.parse_filters(req.query.get("filters"))
        if filters:
            raise InvalidArgument("prune: filters are not supported")
        removed = self.m.prune()
        return _json({"ContainersDeleted": removed or None, "SpaceReclaimed": 0})

    def container_wait(self, req, ref):
        cond = req.query.get("condition") or "not-running"
        if cond not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {cond!r} (not-running, next-exit or removed)")
        c = self.m.get(ref)
        cid = c.id
        # Subscribed before the answer's head goes out: the client starts the container only
        # after it got the head, so no exit can slip between.
        q = self.m.events.subscribe() if cond != "not-running" else None
        m = self.m
        last_exit = self.m.inspect(cid).get("exit_code")

        def result(code, error=None):
            return (json.dumps({"StatusCode": code if code is not None else 0,
                                "Error": {"Message": error} if error else None}) + "\n").encode()

        def stream():
            try:
                if q is None:
                    r = m.wait(c, client_gone=req.client_gone)
                    yield result(r.get("exit_code"), r.get("error"))
                    return
                code = None
                while True:
                    try:
                        ev = q.get(timeout=1.0)
                    except queue.Empty:
                        if req.client_gone():
                            return
                        continue
                    if ev.get("id") != cid:
                        continue
                    if ev["type"] == "died":
                        code = ev.get("exit_code")
                        if cond == "next-exit":
                            yield result(code)
                            return
                    elif ev["type"] == "destroyed":
                        yield result(code if code is not None else last_exit)
                        return
            finally:
                if q is not None:
                    m.events.unsubscribe(q)

        return Response(200, content_type="application/json", stream=stream())

    def container_attach(self, req, ref):
        c = self.m.get(ref)
        view = self.m.inspect(c.id)
        tty = bool(((view.get("spec") or {}).get("process") or {}).get("terminal"))
        want_in, want_out, want_err = (_bool(req, "stdin"), _bool(req, "stdout"),
                                       _bool(req, "stderr"))
        keys = streams.parse_detach_keys(req.query.get("detachKeys"))
        if not _bool(req, "stream") and not _bool(req, "logs"):
            raise InvalidArgument("attach: stream or logs must be set")
        if view["status"] in ("running", "paused"):
            return self._attach_running(req, c, tty, want_out, want_err)
        if not _bool(req, "stream"):
            return self._attach_running(req, c, tty, want_out, want_err)
        session = streams.Session(tty=tty, stdin=want_in, stdout=want_out, stderr=want_err,
                                  detach_keys=keys)
        with self._lock:
            old = self._pending.pop(c.id, None)
            self._pending[c.id] = session
        if old is not None:
            old.fail("another client attached")

        def run(sock, leftover):
            if not session.wait_ready(sock):
                with self._lock:
                    if self._pending.get(c.id) is session:
                        del self._pending[c.id]     # the client left before any start
                        return
                # A start took the session just as the client left: its process has our
                # pipe ends (or pty master), which must still be drained and closed.
                session.wait_started()
                if session.error is not None:
                    return
            session.run(sock, leftover)

        return _hijack_response(req, tty, run)

    def _attach_running(self, req, c, tty, want_out, want_err):
        """A running container's output from now on (with logs=1, from its log first);
        its stdin was fixed at start, as for a container dockerd runs without OpenStdin."""
        replay = _bool(req, "logs")
        follow = _bool(req, "stream")
        m = self.m

        def run(sock, leftover):
            # The follow also ends when the client hangs up, not only with the container.
            entries = m.logs(c, tail=None if replay or not follow else 0, follow=follow,
                             stop=lambda: streams.peer_gone(sock))
            try:
                for e in entries:
                    name = e.get("stream", "stdout")
                    if (name == "stdout" and not want_out) or (name == "stderr" and not want_err):
                        continue
                    data = e.get("log", "").encode()
                    sock.sendall(data if tty else streams.frame(streams.stream_id(name), data))
            except OSError:
                pass
            finally:
                close = getattr(entries, "close", None)
                if close:
                    close()

        return _hijack_response(req, tty, run)

    def container_logs(self, req, ref):
        c = self.m.get(ref)
        view = self.m.inspect(c.id)
        tty = bool(((view.get("spec") or {}).get("process") or {}).get("terminal"))
        want_out, want_err = _bool(req, "stdout"), _bool(req, "stderr")
        if not want_out and not want_err:
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        follow, timestamps = _bool(req, "follow"), _bool(req, "timestamps")
        tail_raw = req.query.get("tail", "all")
        tail = None if tail_raw in ("all", "", None) else _int(req, "tail")
        if tail is not None and tail < 0:
            tail = None
        since = _float_time(req.query.get("since"))
        until = _float_time(req.query.get("until"))
        m = self.m

        def stream():
            entries = m.logs(c, tail=tail, follow=follow, stop=req.client_gone)
            for e in entries:
                name = e.get("stream", "stdout")
                if (name == "stdout" and not want_out) or (name == "stderr" and not want_err):
                    continue
                t = e.get("time") or ""
                if since is not None or until is not None:
                    ts = _parse_time(t)
                    if since is not None and ts < since:
                        continue
                    if until is not None and ts > until:
                        if follow:
                            return
                        continue
                data = e.get("log", "").encode()
                if timestamps:
                    data = f"{t} ".encode() + data
                yield data if tty else streams.frame(streams.stream_id(name), data)

        return Response(200, content_type=_stream_type(tty), stream=stream())

    def container_resize(self, req, ref):
        c = self.m.get(ref)
        h, w = _int(req, "h", 0), _int(req, "w", 0)
        with self._lock:
            session = self._ttys.get(c.id)
        if session is None or session.master is None:
            view = self.m.inspect(c.id)
            if view["status"] not in ("running", "paused"):
                raise Conflict(f"Container {c.id} is not running")
            # No terminal we hold: no TTY, or its terminal belongs to an mcctl client.
            return _empty(200)
        try:
            streams.set_winsize(session.master, h, w)
        except OSError as err:
            raise InvalidArgument(f"resize: {os.strerror(err.errno)}") from None
        return _empty(200)

    def container_top(self, req, ref):
        ps_args = req.query.get("ps_args")
        if ps_args not in (None, "", "-ef"):
            raise InvalidArgument(f"top: ps_args {ps_args!r} are not supported (the columns are "
                                  "fixed: PID PPID UID STAT RSS_KB COMMAND)")
        t = self.m.top(ref)
        return _json({"Titles": t["titles"],
                      "Processes": [[str(x) for x in row] for row in t["processes"]]})

    def container_stats(self, req, ref):
        c = self.m.get(ref)
        stream = _bool(req, "stream", True)
        one_shot = _bool(req, "one-shot")
        ncpu = len(os.sched_getaffinity(0)) or 1
        m = self.m

        def sample():
            return m.stats(c.id), _now_rfc3339(), _cpu_system_ns()

        if not stream:
            prev, pread, psys = sample()
            if not one_shot and prev.get("status") in ("running", "paused"):
                time.sleep(1.0)      # as dockerd: a second sample, so CPU % means something
                cur, read, sys_ns = sample()
            else:
                cur, read, sys_ns = prev, pread, psys
                prev, pread, psys = None, tr.ZERO_TIME, 0
            return _json(tr.stats(cur, prev, ncpu, read, pread, sys_ns, psys))

        def gen():
            prev, pread, psys = None, tr.ZERO_TIME, 0
            while True:
                try:
                    cur, read, sys_ns = sample()
                except NotFound:
                    return
                yield (json.dumps(tr.stats(cur, prev, ncpu, read, pread, sys_ns, psys)) + "\n").encode()
                prev, pread, psys = cur, read, sys_ns
                for _ in range(10):
                    time.sleep(0.1)
                    if req.client_gone():
                        return

        return Response(200, content_type="application/json", stream=gen())

    # ------------------------------------------------------------ networks
    def network_list(self, req):
        filters = tr.parse_filters(req.query.get("filters"))
        for k in filters:
            if k not in ("name", "id", "driver", "label"):
                raise InvalidArgument(f"invalid filter '{k}' (supported: name, id, driver, label)")
        out = []
        for n in self.m.networks.list() + _PSEUDO_NETWORKS:
            d = _network_json(n)
            if "name" in filters and not any(v in d["Name"] for v in filters["name"]):
                continue
            if "id" in filters and not any(d["Id"].startswith(v) for v in filters["id"]):
                continue
            if "driver" in filters and d["Driver"] not in filters["driver"]:
                continue
            if "label" in filters and not all(
                    (lambda k, sep, v: k in d["Labels"] and (not sep or d["Labels"][k] == v))(*lb.partition("="))
                    for lb in filters["label"]):
                continue
            out.append(d)
        return _json(out)

    def _network(self, ref):
        for p in _PSEUDO_NETWORKS:
            if ref in (p["name"], p["id"]) or (len(ref) >= 6 and p["id"].startswith(ref)):
                return p, {}
        n = self.m.networks.inspect_network(ref)
        containers = {}
        for name, att in (n.get("attachments") or {}).items():
            try:
                cid = self.m.get(name).id
            except NotFound:
                continue
            containers[cid] = {"Name": name, "EndpointID": "", "MacAddress": att.get("mac") or "",
                               "IPv4Address": f"{att['ip']}/{n['subnet'].split('/')[1]}"
                               if att.get("ip") and n.get("subnet") else "",
                               "IPv6Address": ""}
        return n, containers

    def network_inspect(self, req, ref):
        n, containers = self._network(ref)
        return _json(_network_json(n, containers))

    def network_create(self, req):
        body = req.json()
        if not isinstance(body, dict) or not body.get("Name"):
            raise InvalidArgument("network create: Name is required")
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            tr._refuse("Driver", driver, "bridge networks only")
        for k, v in body.items():
            if k not in ("Name", "Driver", "Internal", "IPAM", "Labels", "CheckDuplicate",
                         "Attachable", "Scope") and not tr._zero(v):
                tr._refuse(k, v)
        ipam = body.get("IPAM") or {}
        if (ipam.get("Driver") or "default") != "default" or not tr._zero(ipam.get("Options")):
            tr._refuse("IPAM", ipam, "the default IPAM driver, no options")
        configs = ipam.get("Config") or []
        if len(configs) > 1:
            tr._refuse("IPAM.Config", configs, "one subnet per network")
        cfg = configs[0] if configs else {}
        for k, v in cfg.items():
            if k not in ("Subnet", "Gateway") and not tr._zero(v):
                tr._refuse(f"IPAM.Config.{k}", v)
        net = self.m.networks.create_network(body["Name"], cfg.get("Subnet") or None,
                                             cfg.get("Gateway") or None,
                                             bool(body.get("Internal")), body.get("Labels") or None)
        return _json({"Id": net["id"], "Warning": ""}, 201)

    def network_delete(self, req, ref):
        if any(ref in (p["name"], p["id"]) for p in _PSEUDO_NETWORKS):
            raise PermissionDenied(f"{ref} is a pre-defined network and cannot be removed")
        self.m.networks.remove_network(ref)
        return _empty(204)

    def network_prune(self, req):
        if tr.parse_filters(req.query.get("filters")):
            raise InvalidArgument("network prune: filters are not supported")
        return _json({"NetworksDeleted": self.m.networks.prune() or None})

    def network_connect(self, req, ref):
        self._network(ref)      # 404 first, as dockerd
        raise InvalidArgument("network connect/disconnect: not supported by mini-container: "
                              "a container joins one network, at create (--network)")

    # ------------------------------------------------------------ exec
    def exec_create(self, req, ref):
        c = self.m.get(ref)
        body = req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("request body: expected a JSON object")
        for k, v in body.items():
            if k not in ("AttachStdin", "AttachStdout", "AttachStderr", "DetachKeys", "Tty",
                         "ConsoleSize", "Env", "Cmd", "User", "WorkingDir", "Privileged",
                         "Container", "Detach") \
                    and not tr._zero(v):
                tr._refuse(k, v)
        if body.get("Privileged"):
            tr._refuse("Privileged", True, "containers always run with a bounded capability set")
        cmd = body.get("Cmd")
        if not isinstance(cmd, list) or not cmd:
            raise InvalidArgument("No exec command specified")
        view = self.m.inspect(c.id)
        if view["status"] != "running":
            if view["status"] == "paused":
                raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
            raise Conflict(f"Container {c.id} is not running")
        process: dict = {"args": cmd, "terminal": bool(body.get("Tty"))}
        if body.get("Env"):
            process["env"] = body["Env"]
        if body.get("WorkingDir"):
            process["cwd"] = body["WorkingDir"]
        if body.get("User"):
            from mcwire.units import parse_user
            process["user"] = parse_user(body["User"])
        size = body.get("ConsoleSize")
        if process["terminal"] and isinstance(size, list) and len(size) == 2 and all(size):
            process["console_size"] = [int(size[0]), int(size[1])]
        eid = os.urandom(32).hex()
        inst = ExecInstance(eid, c.id, process, process["terminal"], bool(body.get("AttachStdin")),
                            bool(body.get("AttachStdout")), bool(body.get("AttachStderr")),
                            streams.parse_detach_keys(body.get("DetachKeys")))
        with self._lock:
            if len(self._execs) >= MAX_EXECS:
                done = sorted((e for e in self._execs.values() if not e.running),
                              key=lambda e: e.created)
                for e in done[:len(self._execs) - MAX_EXECS + 1]:
                    del self._execs[e.id]
            self._execs[eid] = inst
        return _json({"Id": eid}, 201)

    def _exec(self, ref) -> ExecInstance:
        with self._lock:
            inst = self._execs.get(ref)
        if inst is None:
            raise NotFound(f"No such exec instance: {ref}")
        return inst

    def exec_start(self, req, ref):
        inst = self._exec(ref)
        body = req.json()
        detach = bool(body.get("Detach")) if isinstance(body, dict) else False
        with self._lock:
            if inst.started:
                raise Conflict(f"exec {ref} has already been started")
            inst.started = True
        if detach:
            handle = self.m.exec(inst.cid, inst.process, detach=True)
            inst.running, inst.pid = True, handle.pid

            def reap():
                code = handle.wait()
                inst.exit_code, inst.running = code, False
            threading.Thread(target=reap, name="docker-exec-reaper", daemon=True).start()
            return _empty(200)
        # As dockerd: the process starts once the connection is hijacked, so its first
        # output cannot reach a client still reading the response head (docker-py reads
        # the stream from the raw socket, past its own buffer). A failure to start then
        # travels in the stream, on stderr.
        self.m.get(inst.cid)
        m = self.m

        def run(sock, leftover):
            session = streams.Session(tty=inst.tty, stdin=inst.stdin, stdout=inst.stdout,
                                      stderr=inst.stderr, detach_keys=inst.detach_keys)
            fds, to_caller = session.child_fds(tty_master=True)
            try:
                handle = m.exec(inst.cid, inst.process, fds=fds, stdin=True,
                                pty_to_caller=to_caller)
            except MCError as err:
                session.fail(err.message)
                inst.exit_code, inst.running = int(err.exit_code), False
                msg = (err.message + "\n").encode()
                try:
                    sock.sendall(msg if inst.tty else streams.frame(streams.STDERR, msg))
                except OSError:
                    pass
                return
            except BaseException:
                session.fail("exec failed")
                inst.exit_code, inst.running = 126, False
                raise
            session.close_child_ends()
            inst.running, inst.pid = True, handle.pid
            inst.master = getattr(handle, "tty_master", None)

            def finish():
                # Before the connection closes: a client reads ExitCode right after the stream.
                inst.exit_code = handle.wait()
                inst.running = False
                inst.master = None

            session.on_done = finish
            session.ready(inst.master)
            session.run(sock, leftover)

        return _hijack_response(req, inst.tty, run)

    def exec_resize(self, req, ref):
        inst = self._exec(ref)
        h, w = _int(req, "h", 0), _int(req, "w", 0)
        if inst.master is not None:
            try:
                streams.set_winsize(inst.master, h, w)
            except OSError:
                pass    # the exec ended meanwhile
        elif not inst.running:
            raise Conflict(f"exec {ref} is not running")
        return _empty(200)

    def exec_inspect(self, req, ref):
        inst = self._exec(ref)
        args = inst.process["args"]
        return _json({"ID": inst.id, "Running": inst.running, "ExitCode": inst.exit_code,
                      "ProcessConfig": {"tty": inst.tty, "entrypoint": args[0],
                                        "arguments": args[1:], "privileged": False,
                                        "user": inst.process.get("user") and
                                        f"{inst.process['user']['uid']}" or ""},
                      "OpenStdin": inst.stdin, "OpenStderr": inst.stderr,
                      "OpenStdout": inst.stdout, "CanRemove": False, "ContainerID": inst.cid,
                      "DetachKeys": "", "Pid": inst.pid})

    # ------------------------------------------------------------ images
    # The image store's images (mcd.images) and the templates, side by side: a name is an
    # image when the store resolves it, else a template (as mcd's own create decides).
    def _store(self):
        try:
            return self.m.images
        except (AttributeError, MCError):
            return None

    def _image_id(self, ref) -> str | None:
        store = self._store()
        if store is None or not isinstance(ref, str) or not ref:
            return None
        try:
            return store.resolve(ref)
        except (NotFound, InvalidArgument):
            return None

    def _template_summary(self, t: dict) -> dict:
        name = t["name"]
        return {"Id": _template_id(name), "ParentId": "", "RepoTags": [f"{name}:latest"],
                "RepoDigests": [], "Created": tr._epoch(t.get("created")),
                "Size": t.get("size") or 0, "SharedSize": -1, "VirtualSize": t.get("size") or 0,
                "Labels": {}, "Containers": -1}

    def _image_summary(self, s: dict) -> dict:
        cfg = {}
        try:
            cfg = (self.m.images.config(s["id"]).get("config") or {})
        except MCError:
            pass
        return {"Id": s["id"], "ParentId": "", "RepoTags": list(s.get("tags") or []),
                "RepoDigests": list(s.get("repo_digests") or []),
                "Created": tr._epoch(s.get("created")), "Size": s.get("size") or 0,
                "SharedSize": -1, "VirtualSize": s.get("size") or 0,
                "Labels": cfg.get("Labels") or {}, "Containers": -1}

    def _all_images(self) -> list[dict]:
        try:
            self.m.templates.ensure_minimal()          # always available: built on first use
        except MCError as err:
            log.warning("template minimal: %s", err)
        out = []
        store = self._store()
        if store is not None:
            out += [self._image_summary(s) for s in store.list()]
        # Templates are images (mcd.images.templates) listed above; only a template tree
        # not migrated is listed as a template.
        out += [self._template_summary(t) for t in self.m.templates.list() if not t.get("image")]
        return out

    def image_list(self, req):
        filters = tr.parse_filters(req.query.get("filters"))
        for k in filters:
            if k not in ("reference", "dangling"):
                raise InvalidArgument(f"invalid filter '{k}' (supported: reference, dangling)")
        refs = filters.get("reference")
        dangling = filters.get("dangling")
        out = []
        for img in self._all_images():
            if refs and not any(_tag_matches(r, img["RepoTags"]) for r in refs):
                continue
            if dangling and (dangling[0] in ("true", "1")) != (not img["RepoTags"]):
                continue
            out.append(img)
        return _json(out)

    def image_pull(self, req):
        """docker pull (and docker run's pull of a missing image), through the image
        store's registry client, with its progress as Docker's JSON message stream.
        Docker Hub is not pulled from here: the docker CLI spells every short name out
        (`alpine` arrives as docker.io/library/alpine), so a pull it makes after create's
        404 cannot be told from one the user asked for, and would reach the internet
        unasked. Other registries, named in the reference, are pulled."""
        if req.query.get("fromSrc"):
            raise InvalidArgument("image import (fromSrc) is not supported: use mcctl template "
                                  "import or image load")
        image, tag = req.query.get("fromImage") or "", req.query.get("tag") or ""
        if not image:
            raise InvalidArgument("fromImage is required")
        last = image.rpartition("/")[2]
        ref = image if ("@" in image or ":" in last or not tag) else \
            f"{image}@{tag}" if tag.startswith("sha256:") else f"{image}:{tag}"
        if self._store() is None or not _names_registry(image) or _is_docker_hub(image):
            raise NotFound(f"pull access denied for {ref}, repository does not exist: "
                           "mini-container's Docker API pulls from the registry a reference "
                           "names, not from Docker Hub (mcctl pull does; or mcctl image load)")
        auth = req.headers.get("x-registry-auth", "")
        if auth and auth not in ("e30=", "e30", "null"):
            raise InvalidArgument("X-Registry-Auth: registry credentials come from the daemon "
                                  "(mcctl login), not from the client")
        from mcd.images import pull, reference
        reference.parse(ref)            # 400 for a reference that does not parse, up front
        events: queue.Queue = queue.Queue()
        store, creds = self.m.images, pull.Credentials(self.m.root)
        insecure = getattr(self.m, "insecure_registries", [])

        def work():
            try:
                res = pull.pull(store, ref, creds=creds, insecure=insecure, progress=events.put)
                events.put({"type": "done", **res})
            except MCError as err:
                events.put({"type": "error", "message": err.message})
            except OSError as err:
                events.put({"type": "error", "message": f"pull {ref}: {os.strerror(err.errno)}"
                            if err.errno else f"pull {ref}: {err}"})
            except Exception as err:      # one line for the client; the log has the rest
                log.exception("docker: pull %s", ref)
                events.put({"type": "error", "message": f"pull {ref}: {err}"})

        threading.Thread(target=work, name="docker-pull", daemon=True).start()

        def stream():
            while True:
                ev = events.get()
                for msg in _pull_messages(ev, ref):
                    yield (json.dumps(msg) + "\n").encode()
                if ev["type"] in ("done", "error"):
                    return

        return Response(200, content_type="application/json", stream=stream())

    def image_inspect(self, req, name):
        image_id = self._image_id(name)
        if image_id is not None:
            return _json(self._inspect_stored(image_id))
        t = self._template(name)
        if t.get("image"):                          # minimal, just built: an image
            return _json(self._inspect_stored(t["image"]))
        return _json({
            "Id": _template_id(t["name"]), "RepoTags": [f"{t['name']}:latest"], "RepoDigests": [],
            "Parent": "", "Comment": f"mini-container template ({t.get('source', '')})",
            "Created": t.get("created"), "DockerVersion": "", "Author": "",
            "Config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": None, "Entrypoint": None, "WorkingDir": "", "Labels": None,
                       "User": "", "Volumes": None, "ExposedPorts": None},
            "Architecture": tr.go_arch(platform.machine()), "Os": "linux",
            "Size": t.get("size") or 0, "GraphDriver": {"Name": "overlay", "Data": None},
            "RootFS": {"Type": "layers", "Layers": []}, "Metadata": {"LastTagTime": tr.ZERO_TIME},
        })

    def _template(self, name: str) -> dict:
        """The template an image name or template id names, or Docker's 404."""
        if name.startswith("sha256:"):
            match = [t for t in self.m.templates.list() if _template_id(t["name"]) == name]
            if not match:
                raise NotFound(f"No such image: {name}")
            return match[0]
        template = tr.image_to_template(name)
        if template == "minimal":
            self.m.templates.ensure_minimal()           # built on first use
        try:
            return self.m.templates.info(template)
        except (NotFound, InvalidArgument):
            raise NotFound(f"No such image: {name}") from None

    def _inspect_stored(self, image_id: str) -> dict:
        d = self.m.images.inspect(image_id)
        cfg = d.get("config") or {}
        return {
            "Id": d["id"], "RepoTags": list(d.get("tags") or []),
            "RepoDigests": list(d.get("repo_digests") or []), "Parent": "", "Comment": "",
            "Created": d.get("created") or tr.ZERO_TIME, "DockerVersion": "", "Author": "",
            "Config": {"Env": cfg.get("Env"), "Cmd": cfg.get("Cmd"),
                       "Entrypoint": cfg.get("Entrypoint"), "WorkingDir": cfg.get("WorkingDir") or "",
                       "Labels": cfg.get("Labels"), "User": cfg.get("User") or "",
                       "Volumes": cfg.get("Volumes"), "ExposedPorts": cfg.get("ExposedPorts"),
                       "StopSignal": cfg.get("StopSignal")},
            "Architecture": d.get("architecture") or "", "Os": d.get("os") or "linux",
            "Size": d.get("size") or 0, "GraphDriver": {"Name": "overlay", "Data": None},
            "RootFS": {"Type": "layers", "Layers": list((d.get("rootfs") or {}).get("diff_ids") or [])},
            "Metadata": {"LastTagTime": tr.ZERO_TIME},
        }

    def image_delete(self, req, name):
        if self._image_id(name) is not None:
            r = self.m.images.remove(name, force=_bool(req, "force"), users=self.m.image_users)
            return _json([{"Untagged": t} for t in r.get("untagged") or []] +
                         [{"Deleted": d} for d in r.get("deleted") or []])
        t = self._template(name)
        try:
            self.m.remove_template(t["name"])      # the manager knows which containers use it
        except Conflict as err:
            raise Conflict(f"conflict: unable to remove: {err.message}") from None
        return _json([{"Untagged": f"{t['name']}:latest"}, {"Deleted": _template_id(t["name"])}])

    def image_load(self, req):
        """docker load: the archive (docker save or an OCI layout tar) streams in, chunked
        as the CLI sends it, is spooled into the image store's tmp dir (an archive is read
        out of order) and loaded as `mcctl image load` loads it: all or nothing."""
        import uuid
        from mcd.images import archive
        store = self._store()
        if store is None:
            raise NotFound("page not found: no image store")
        if req.body_stream is None:
            raise InvalidArgument("images/load: expected the archive as the request body")
        spool = os.path.join(store.tmp, f"docker-load-{uuid.uuid4().hex[:12]}")
        try:
            size = 0
            with open(spool, "wb") as f:
                while True:
                    chunk = req.body_stream.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
                    size += len(chunk)
            if not size:
                raise InvalidArgument("images/load: empty archive")
            with store.load("docker load") as ld:
                archive.load(ld, spool)
                images = ld.commit()
        except OSError as err:
            from mcd.errors import KernelError
            raise KernelError.from_oserror("image load", err) from err
        finally:
            try:
                os.unlink(spool)
            except FileNotFoundError:
                pass
        lines = []
        for img in images:
            if img["tags"]:
                lines += [f"Loaded image: {t}\n" for t in img["tags"]]
            else:
                lines.append(f"Loaded image ID: {img['id']}\n")
        body = "".join(json.dumps({"stream": line}) + "\n" for line in lines)
        return Response(200, body=body.encode(), content_type="application/json")

    def image_prune(self, req):
        """Untagged images no container uses; with dangling=false every unused image (the
        image store's prune). Templates are not images here: kept."""
        filters = tr.parse_filters(req.query.get("filters"))
        for k in filters:
            if k != "dangling":
                raise InvalidArgument(f"invalid filter '{k}' (supported: dangling)")
        every = (filters.get("dangling") or ["true"])[0].lower() in ("false", "0")
        store = self._store()
        deleted = store.prune(all=every, users=self.m.image_users)["deleted"] if store else []
        return _json({"ImagesDeleted": [{"Deleted": d} for d in deleted] or None,
                      "SpaceReclaimed": 0})

    def build_prune(self, req):
        # mini-container builds nothing, so there is never a build cache to remove.
        return _json({"CachesDeleted": None, "SpaceReclaimed": 0})

    def image_save(self, req, name=None):
        """docker save: GET /images/get?names=A&names=B (or /images/{name}/get). The
        archive (docker-archive with the OCI layout beside, as current dockerd writes) is
        made in the store's tmp dir first, so an unknown name is a clean 404 before any
        byte of it goes out, then streamed and removed."""
        import uuid
        from mcd.images import save
        refs = [name] if name else urllib.parse.parse_qs(
            urllib.parse.urlsplit(req.target).query).get("names", [])
        if not refs:
            raise InvalidArgument("images/get: name at least one image (names=)")
        store = self._store()
        if store is None:
            raise NotFound("page not found: no image store")
        spool = os.path.join(store.tmp, f"docker-save-{uuid.uuid4().hex[:12]}")
        try:
            with open(spool, "wb") as out:
                save.save(store, refs, out, "both")
            f = open(spool, "rb")
        except BaseException as err:
            with contextlib.suppress(OSError):
                os.unlink(spool)
            if isinstance(err, OSError):
                from mcd.errors import KernelError
                raise KernelError.from_oserror("image save", err) from err
            raise
        os.unlink(spool)                # the open file is all the stream needs

        def chunks():
            with f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        return
                    yield b

        return Response(200, content_type="application/x-tar", stream=chunks())

    def image_tag(self, req, name):
        repo = req.query.get("repo")
        if not repo:
            raise InvalidArgument("repository name (repo) is required")
        tag = req.query.get("tag") or "latest"
        if self._image_id(name) is None and not self._template(name).get("image"):
            # 404 for neither; a template tree not migrated has no tags of its own
            raise InvalidArgument(f"{name} is a template: templates cannot be tagged "
                                  "(mcctl template create makes a copy under a new name)")
        self.m.images.tag(name, f"{repo}:{tag}")
        return _empty(201)


def _template_id(name: str) -> str:
    return "sha256:" + hashlib.sha256(f"mini-container-template:{name}".encode()).hexdigest()


def _names_registry(ref: str) -> bool:
    """Docker's rule: a first component with '.', ':' or 'localhost' names a registry."""
    first, sep, _ = ref.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def _is_docker_hub(ref: str) -> bool:
    return ref.partition("/")[0] in ("docker.io", "index.docker.io", "registry-1.docker.io")


def _pull_messages(ev: dict, ref: str) -> list[dict]:
    """The registry client's progress events -> Docker's pull message stream."""
    t = ev.get("type")
    if t == "status":
        return [{"status": ev.get("message", "")}]
    if t == "layer":
        status = {"exists": "Already exists", "downloading": "Downloading",
                  "done": "Pull complete"}.get(ev.get("status"), ev.get("status"))
        msg = {"status": status, "id": ev.get("layer", "")}
        if ev.get("status") == "downloading":
            msg["progressDetail"] = {"current": ev.get("current") or 0, "total": ev.get("total") or 0}
        return [msg]
    if t == "done":
        return [{"status": f"Digest: {ev.get('digest', '')}"},
                {"status": f"Status: Downloaded newer image for {ev.get('ref') or ref}"}]
    if t == "error":
        return [{"errorDetail": {"message": ev["message"]}, "error": ev["message"]}]
    return []


def _tag_matches(ref: str, tags: list[str]) -> bool:
    """Docker's reference filter: 'name', 'name:tag' (a glob is not supported)."""
    want = ref if ":" in ref.rpartition("/")[2] else f"{ref}:latest"
    return any(t == want or t == ref for t in tags)


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _float_time(v: str | None) -> float | None:
    """Docker's since/until: unix seconds (with fractions), or RFC 3339."""
    if v is None or v == "":
        return None
    try:
        return float(v)
    except ValueError:
        pass
    ts = _parse_time(v)
    if ts == 0:
        raise InvalidArgument(f"invalid time {v!r}: unix seconds or RFC 3339")
    return ts


def _parse_time(t: str) -> float:
    import calendar
    try:
        secs = calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0.0
    frac = re.match(r"\.(\d+)", t[19:])
    return secs + (float("0." + frac.group(1)) if frac else 0.0)
