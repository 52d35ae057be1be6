"""The dashboard's TCP front end: one handler on the daemon's own HTTP server.

It owns no state. ``/`` and ``/static/*`` are the page's files (from memory);
``/v1/*`` goes, after the rules in ``security``, to the very Api handler the
Unix socket serves; ``/web/feed`` is the server-sent-events live feed;
``/web/session`` tells the page whether the token it holds is good (so it
knows whether to show the control buttons; every action is checked again).
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator

from mcd.errors import MethodNotAllowed, NotFound, PermissionDenied, Unavailable
from mcd.httpserver import Request, Response
from mcd.web import security, static_files
from mcd.web.feed import LiveFeed

log = logging.getLogger("mcd.web")

KEEPALIVE_SECONDS = 15
# Each open page holds a connection thread in the daemon: enough for a wall of
# screens, not enough for a local user to exhaust the daemon's threads.
MAX_FEED_CLIENTS = 32
# Only these request headers reach the Api: the token and the browser's
# cookies/identity stay in the front end.
FORWARD_HEADERS = ("content-type", "content-length", "accept", "connection")


class Headers:
    """Case-insensitive view of the server's lower-cased header dict."""

    def __init__(self, raw: dict):
        self._raw = raw

    def get(self, name: str, default=None):
        return self._raw.get(name.lower(), default)


class WebHandler:
    """``handler(Request) -> Response`` for the dashboard's TCP listener."""

    def __init__(self, api_handler: Callable[[Request], Response], feed: LiveFeed,
                 token: str | None, host_check: set[str] | None,
                 files: dict | None = None):
        self.api_handler = api_handler
        self.feed = feed
        self.token = token
        self.host_check = host_check
        self.files = static_files.load() if files is None else files

    def __call__(self, req: Request) -> Response:
        resp = self._route(req)
        for k, v in security.SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
        if resp.stream is not None:
            resp.headers.setdefault("X-Accel-Buffering", "no")
        return resp

    def _route(self, req: Request) -> Response:
        headers = Headers(req.headers)
        if self.host_check is not None and (headers.get("Host") or "").lower() not in self.host_check:
            return Response.error(PermissionDenied(
                "unexpected Host header: open the dashboard by its loopback address"))
        path = req.path
        if path == "/v1" or path.startswith("/v1/"):
            return self._api(req, headers)
        if req.method not in ("GET", "HEAD"):
            return Response.error(MethodNotAllowed(f"{req.method} is not allowed on {path}"),
                                  headers={"Allow": "GET, HEAD"})
        if path == "/web/feed":
            if self.feed.subscribers >= MAX_FEED_CLIENTS:
                return Response.error(Unavailable(
                    f"too many open dashboard pages (max {MAX_FEED_CLIENTS})"))
            return Response(200, content_type="text/event-stream; charset=utf-8",
                            headers={"Cache-Control": "no-store"}, stream=self._feed_stream())
        if path == "/web/session":
            good = security.token_matches(self.token, headers.get(security.TOKEN_HEADER))
            return Response.json({"control": good, "interval": self.feed.interval},
                                 headers={"Cache-Control": "no-store"})
        f = static_files.lookup(self.files, path)
        if f is None:
            return Response.error(NotFound("no such page"))
        return self._static(f, headers)

    def _api(self, req: Request, headers: Headers) -> Response:
        decision = security.check_api_request(req.method, req.path, headers, self.token)
        if not decision.allowed:
            return Response.error(decision.error)
        fwd = Request(method="GET" if req.method == "HEAD" else req.method, target=req.target,
                      path=req.path, query=dict(req.query),
                      headers={k: v for k, v in req.headers.items() if k in FORWARD_HEADERS},
                      body=req.body, fds=[], peer=None, sock=req.sock)
        resp = self.api_handler(fwd)
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    def _static(self, f, headers: Headers) -> Response:
        common = {"ETag": f.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if headers.get("If-None-Match") == f.etag:
            return Response(304, b"", content_type=f.content_type, headers=common)
        if f.gzipped is not None and "gzip" in (headers.get("Accept-Encoding") or ""):
            return Response(200, f.gzipped, content_type=f.content_type,
                            headers={**common, "Content-Encoding": "gzip"})
        return Response(200, f.body, content_type=f.content_type, headers=common)

    def _feed_stream(self) -> Iterator[bytes]:
        sub = self.feed.subscribe()
        try:
            yield b"retry: 2000\n\n"
            while not sub.closed:
                message = sub.get(timeout=KEEPALIVE_SECONDS)
                if message == b"":
                    return
                # The comment line doubles as the probe that notices a closed tab.
                yield message if message is not None else b": keepalive\n\n"
        finally:
            sub.close()
