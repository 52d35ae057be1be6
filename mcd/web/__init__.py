"""The monitoring dashboard, served by mcd itself on loopback TCP.

The daemon calls one function::

    stop = mcd.web.start_web(api, "127.0.0.1:7070", token, allow_remote=False)
    ...
    stop()

``api`` is the same Api object the Unix socket serves (a ``handler(Request) ->
Response``, or an object with such a ``handle`` method); the dashboard keeps no
state of its own. See docs/dashboard.md.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Callable

from mcd.errors import InvalidArgument, KernelError, MCError
from mcd.httpserver import HTTPServer, Request, bind_tcp
from mcd.web import security
from mcd.web.feed import DEFAULT_INTERVAL, LiveFeed
from mcd.web.security import load_or_create_token  # noqa: F401  (the daemon's entry point too)
from mcd.web.server import WebHandler

log = logging.getLogger("mcd.web")

MAX_BODY = 64 * 1024


def api_handler(api) -> Callable[[Request], object]:
    handle = getattr(api, "handle", None)
    if callable(handle):
        return handle
    if callable(api):
        return api
    raise TypeError(f"{api!r} is neither a handler nor has a handle(Request) method")


def api_get(handler, path: str, query: dict | None = None):
    """One in-process GET through the Api, answered as parsed JSON (MCError if it failed)."""
    req = Request(method="GET", target=path, path=path, query=query or {}, headers={},
                  body=b"")
    resp = handler(req)
    if resp.stream is not None:
        raise TypeError(f"GET {path}: expected a plain answer, got a stream")
    payload = json.loads(resp.body or b"null")
    if resp.status >= 400:
        raise MCError.from_wire(payload, resp.status)
    return payload


def stats_by_id(payload) -> dict:
    """GET /v1/stats in any of its shapes -> {id: stats}."""
    if isinstance(payload, dict) and isinstance(payload.get("containers"), (list, dict)):
        payload = payload["containers"]
    if isinstance(payload, dict):
        return {k: v for k, v in payload.items() if isinstance(v, dict)}
    out = {}
    for item in payload or []:
        if isinstance(item, dict) and "id" in item:
            out[item["id"]] = item.get("stats", item)
    return out


def host_facts(proc: str = "/proc") -> dict:
    facts = {"cpus": os.cpu_count()}
    try:
        with open(os.path.join(proc, "meminfo")) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    facts["memory_total"] = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return facts


def make_fetch(handler) -> Callable[[], dict]:
    """The feed's sampler: the list, one stats pass for all, the host summary and the
    daemon's recent events (the feed sends on only the new ones)."""
    host_static = host_facts()

    def fetch() -> dict:
        listed = api_get(handler, "/v1/containers", {"all": "1"})
        if isinstance(listed, dict):
            listed = listed.get("containers", [])
        running = [c for c in listed if c.get("status") in ("running", "paused")]
        stats = stats_by_id(api_get(handler, "/v1/stats")) if running else {}
        info = api_get(handler, "/v1/info")
        host = {**host_static, **(info if isinstance(info, dict) else {})}
        try:
            events = api_get(handler, "/v1/events", {"stream": "0"})
        except MCError:
            events = []
        containers = []
        for c in listed:
            c = dict(c)
            c["stats"] = stats.get(c.get("id"))
            containers.append(c)
        return {"host": host, "containers": containers, "events": events}

    return fetch


def start_web(api, listen: str, token: str | None, allow_remote: bool = False, *,
              interval: float = DEFAULT_INTERVAL) -> Callable[[], None]:
    """Serve the dashboard on ``listen`` (HOST:PORT); returns the function that stops it.

    Refuses a non-loopback address unless ``allow_remote`` (then logs a warning);
    ``token`` None or empty makes the dashboard read-only for everyone.
    Raises InvalidArgument for a bad address, KernelError when it cannot bind.
    """
    host, port = security.parse_listen(listen)
    loopback = security.is_loopback(host)
    if not loopback and not allow_remote:
        raise InvalidArgument(
            f"--web-listen {listen}: not a loopback address; the dashboard shows every "
            "container to whoever can reach it. Pass --web-allow-remote to do it anyway")
    if not loopback:
        log.warning("dashboard: listening on %s, reachable from other hosts; anyone who can "
                    "reach it sees every container (control needs the token)", listen)
    handler = api_handler(api)
    feed = LiveFeed(make_fetch(handler), interval=interval)
    try:
        sock = bind_tcp(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    except OSError as err:
        raise KernelError.from_oserror(f"dashboard: bind {listen}", err) from err
    bound_port = sock.getsockname()[1]
    web = WebHandler(handler, feed, token,
                     host_check=security.allowed_hosts(host, bound_port) if loopback else None)
    server = HTTPServer(sock, web, max_body=MAX_BODY, name="web")
    server.start()
    log.info("dashboard: http://%s:%d/", f"[{host}]" if ":" in host else host, bound_port)

    def stop() -> None:
        feed.stop()
        server.shutdown()

    stop.port = bound_port          # for tests and `listen` with port 0
    stop.feed = feed
    return stop
