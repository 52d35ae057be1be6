"""The dashboard's access rules, as pure functions.

The TCP front end is reachable by every local user and every web page the
operator's browser opens, so it forwards only an allowlist of the /v1 API:

* reads (GET) that the ``mcctl`` read commands also make: anyone on the port;
* a handful of lifecycle actions (start, stop, restart, pause, unpause,
  remove): only with the secret token in the ``X-MC-Token`` header (never a
  cookie: a cookie rides along on a cross-site request by itself) **and** an
  ``Origin`` equal to the dashboard's own (CSRF);
* nothing else, token or not: no create (bind mounts are root on the host),
  no exec, no update, no template import. Those stay on the Unix socket.

The ``Host`` header is checked on loopback binds so a DNS-rebinding page at
``evil.example`` resolving to 127.0.0.1 cannot read the API either.
"""

from __future__ import annotations

import grp
import hmac
import ipaddress
import os
import re
import secrets
import socket

from mcd.atomicfile import write_atomic
from mcd.errors import InvalidArgument, KernelError, MCError, NotFound, PermissionDenied

TOKEN_HEADER = "X-MC-Token"
TOKEN_FILE = "dashboard.token"
TOKEN_GROUP = "mcd"

# The page's own files and the API both answer with these. 'self' only: the page
# loads nothing from anywhere else, so it works offline and injected markup cannot
# pull a script in; frame-ancestors stops clickjacking of the control buttons.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

_REF = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
READ_ROUTES = [re.compile(p) for p in (
    r"/v1/info", r"/v1/version", r"/v1/openapi\.json",
    r"/v1/containers",
    rf"/v1/containers/{_REF}",
    rf"/v1/containers/{_REF}/(logs|top|stats)",
    r"/v1/stats", r"/v1/events", r"/v1/templates",
)]
CONTROL_ROUTES = {
    "POST": re.compile(rf"/v1/containers/{_REF}/(start|stop|restart|pause|unpause)"),
    "DELETE": re.compile(rf"/v1/containers/{_REF}"),
}


class Decision:
    """What the front end does with a request: forward it, or refuse with an error."""
    __slots__ = ("allowed", "error")

    def __init__(self, allowed: bool, error: MCError | None = None):
        self.allowed, self.error = allowed, error

    @property
    def status(self) -> int:
        return self.error.http_status if self.error else 200

    @property
    def code(self) -> str:
        return self.error.code if self.error else ""

    @property
    def message(self) -> str:
        return self.error.message if self.error else ""

    def __repr__(self) -> str:
        return f"Decision({self.allowed}, {self.status}, {self.code!r})"


ALLOW = Decision(True)


def _deny(err: MCError) -> Decision:
    return Decision(False, err)


def token_matches(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def origin_matches(origin: str | None, host: str | None) -> bool:
    """The Origin a same-origin fetch sends is ``http://`` + the Host it sent."""
    if not origin or not host or origin == "null":
        return False
    return origin.rstrip("/").lower() == f"http://{host}".lower()


def is_control_route(method: str, path: str) -> bool:
    rx = CONTROL_ROUTES.get(method)
    return bool(rx and rx.fullmatch(path))


def check_api_request(method: str, path: str, headers, token: str | None) -> Decision:
    """May this /v1 request go through to the Api? ``headers`` is case-insensitive."""
    if method in ("GET", "HEAD"):
        if any(rx.fullmatch(path) for rx in READ_ROUTES):
            return ALLOW
        return _deny(NotFound(f"{path} is not served by the dashboard"))
    if not is_control_route(method, path):
        return _deny(PermissionDenied(f"{method} {path} is not allowed over the dashboard; use mcctl"))
    if not token_matches(token, headers.get(TOKEN_HEADER)):
        return _deny(PermissionDenied(
            "control actions need the dashboard token (open the URL `mcctl dashboard` prints)"))
    if not origin_matches(headers.get("Origin"), headers.get("Host")):
        return _deny(PermissionDenied(
            "cross-origin request refused (Origin does not match the dashboard)"))
    return ALLOW


# ---------------------------------------------------------------- listen address

def parse_listen(listen: str) -> tuple[str, int]:
    """'127.0.0.1:7070' | '[::1]:7070' | 'localhost:7070' -> (host, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", listen or "")
    if not m:
        raise InvalidArgument(
            f"--web-listen: {listen!r} is not HOST:PORT (e.g. 127.0.0.1:7070), or 'off'")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 <= port <= 65535:
        raise InvalidArgument(f"--web-listen: port {port} is out of range")
    return host, port


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback one."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    addrs = {i[4][0] for i in infos}
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def allowed_hosts(host: str, port: int) -> set[str]:
    """Host header values a loopback dashboard answers to (anti DNS-rebinding)."""
    names = {host, "localhost", "127.0.0.1", "[::1]"}
    if ":" in host and not host.startswith("["):
        names.add(f"[{host}]")
    return {f"{n}:{port}".lower() for n in names} | ({n.lower() for n in names} if port == 80 else set())


# ---------------------------------------------------------------- the token file

def load_or_create_token(root: str, group: str = TOKEN_GROUP) -> str:
    """The secret in ``ROOT/dashboard.token`` (mode 0640, root:mcd), made on first use.

    Kept across daemon restarts so an open dashboard keeps working; delete the
    file and restart mcd to rotate it. Written atomically (temp, fsync, rename).
    """
    path = os.path.join(root, TOKEN_FILE)
    try:
        with open(path, encoding="ascii") as f:
            token = f.read().strip()
        if re.fullmatch(r"[A-Za-z0-9_-]{32,}", token):
            _fix_mode(path, group)
            return token
    except FileNotFoundError:
        pass
    except OSError as err:
        raise KernelError.from_oserror("read dashboard token", err, path) from err
    token = secrets.token_urlsafe(32)
    try:
        write_atomic(path, (token + "\n").encode(), mode=0o640, owner=_token_owner(group))
    except OSError as err:
        raise KernelError.from_oserror("write dashboard token", err, path) from err
    return token


def _token_owner(group: str) -> tuple[int, int] | None:
    """root:GROUP (root:root on a host without the group); None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        return 0, grp.getgrnam(group).gr_gid
    except KeyError:
        return 0, 0     # no mcd group on this host: root only


def _fix_mode(path: str, group: str) -> None:
    owner = _token_owner(group)
    if owner is not None:
        os.chown(path, *owner)
    os.chmod(path, 0o640)
