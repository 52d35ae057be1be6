"""A small client of the OCI distribution API (pull side), on the stdlib's http.client.

    GET /v2/<name>/manifests/<tag|digest>   Accept: OCI index/manifest, Docker list/v2
    GET /v2/<name>/blobs/<digest>           followed through redirects (to any host;
                                            the Authorization header stays behind)

Authentication is the registry's challenge: a 401 with ``WWW-Authenticate: Bearer
realm=...,service=...,scope=...`` sends us to the realm for a token (with the stored
credentials as Basic auth when there are any: anonymous pulls get one too), ``Basic``
means the credentials themselves. Credentials never appear in an error or a log line.

Plain HTTP is used only for registries the daemon's config lists as insecure and for
localhost/127.0.0.0/8/::1, as Docker allows; everything else is HTTPS with the system's
CA store. Why our own module and not a PyPI client: see docs/design.md (Images).
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import re
import ssl
import urllib.parse

from mcd.errors import InvalidArgument, MCError, NotFound, PermissionDenied, Unavailable

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join((MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST))
MAX_MANIFEST = 4 << 20
DOCKER_HUB = "registry-1.docker.io"


def endpoint(registry: str) -> str:
    """docker.io's API host is registry-1.docker.io (Docker's own rule)."""
    return DOCKER_HUB if registry == "docker.io" else registry


def is_local(registry: str) -> bool:
    host = registry
    if host.startswith("["):
        host = host[1:host.index("]")]
    elif ":" in host:
        host = host.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_challenge(header: str) -> tuple[str, dict]:
    """'Bearer realm="x",service="y"' -> ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


class Registry:
    def __init__(self, registry: str, *, insecure: bool = False,
                 credentials: tuple[str, str] | None = None, timeout: float = 60.0):
        self.registry = registry
        self.host = endpoint(registry)
        self.scheme = "http" if insecure or is_local(registry) else "https"
        self.credentials = credentials
        self.timeout = timeout
        self._auth: str | None = None       # the Authorization header that worked

    # ------------------------------------------------------------ HTTP
    def _connect(self, scheme: str, netloc: str):
        if scheme == "https":
            return http.client.HTTPSConnection(netloc, timeout=self.timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(netloc, timeout=self.timeout)

    def _basic(self) -> str:
        user, password = self.credentials
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def _open(self, url: str, headers: dict, what: str):
        """GET url, following redirects; returns (response, connection)."""
        for _ in range(6):
            u = urllib.parse.urlsplit(url)
            conn = self._connect(u.scheme, u.netloc)
            path = u.path + ("?" + u.query if u.query else "")
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                text = getattr(err, "strerror", None) or str(err) or type(err).__name__
                if isinstance(err, ssl.SSLError):
                    text = f"TLS: {err.reason or err} (plain HTTP only for insecure_registries " \
                           f"in mcd.toml)"
                raise Unavailable(f"{what}: cannot reach registry {self.registry}: {text}") from None
            if resp.status in (301, 302, 303, 307, 308):
                loc = resp.getheader("Location")
                resp.read()
                conn.close()
                if not loc:
                    raise MCError(f"{what}: registry {self.registry} redirected nowhere")
                new = urllib.parse.urljoin(url, loc)
                if urllib.parse.urlsplit(new).netloc != u.netloc:
                    headers = {k: v for k, v in headers.items() if k != "Authorization"}
                url = new
                continue
            return resp, conn
        raise MCError(f"{what}: too many redirects from registry {self.registry}")

    def _token(self, params: dict, scope: str, what: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise MCError(f"{what}: registry {self.registry} sent a Bearer challenge without realm")
        query = {"service": params["service"]} if params.get("service") else {}
        query["scope"] = params.get("scope") or scope
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {"Authorization": self._basic()} if self.credentials else {}
        resp, conn = self._open(url, headers, what)
        try:
            body = resp.read(1 << 20)
        finally:
            conn.close()
        if resp.status in (401, 403):
            raise PermissionDenied(f"{what}: registry {self.registry} refused the credentials"
                                   if self.credentials else
                                   f"{what}: registry {self.registry} requires a login "
                                   f"(mcctl login {self.registry})")
        if resp.status != 200:
            raise MCError(f"{what}: token from {self.registry}: HTTP {resp.status}")
        try:
            data = json.loads(body)
            return data.get("token") or data["access_token"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise MCError(f"{what}: registry {self.registry} sent no token") from None

    def get(self, path: str, *, scope: str, what: str, accept: str | None = None):
        """GET /v2/... as the registry wants us authenticated. Returns (response, conn);
        the caller reads and closes. Non-200 answers become errors naming ``what``."""
        url = f"{self.scheme}://{self.host}{path}"
        for attempt in range(2):
            headers = {"User-Agent": "mini-container"}
            if accept:
                headers["Accept"] = accept
            if self._auth:
                headers["Authorization"] = self._auth
            resp, conn = self._open(url, headers, what)
            if resp.status == 401 and attempt == 0:
                challenge = resp.getheader("WWW-Authenticate") or ""
                resp.read()
                conn.close()
                scheme, params = parse_challenge(challenge)
                if scheme == "bearer":
                    self._auth = "Bearer " + self._token(params, scope, what)
                elif scheme == "basic" and self.credentials:
                    self._auth = self._basic()
                else:
                    raise PermissionDenied(f"{what}: registry {self.registry} requires a "
                                           f"login (mcctl login {self.registry})")
                continue
            if resp.status == 200:
                return resp, conn
            body = resp.read(64 << 10)
            conn.close()
            detail = _error_detail(body)
            if resp.status in (401, 403):
                raise PermissionDenied(f"{what}: registry {self.registry} denied access"
                                       f"{detail} (mcctl login {self.registry})")
            if resp.status == 404:
                raise NotFound(f"{what}: not found in registry {self.registry}{detail}")
            if resp.status == 429:
                raise Unavailable(f"{what}: registry {self.registry} rate-limits this pull")
            raise MCError(f"{what}: registry {self.registry} answered HTTP {resp.status}{detail}")
        raise PermissionDenied(f"{what}: registry {self.registry} did not accept our "
                               f"authentication")

    # ------------------------------------------------------------ the API
    def ping(self, what: str) -> None:
        """GET /v2/ authenticated: how login checks credentials."""
        resp, conn = self.get("/v2/", scope="registry:catalog:*", what=what)
        resp.read()
        conn.close()

    def manifest(self, repository: str, ref: str, what: str) -> tuple[bytes, str]:
        """(raw bytes, media type) of a manifest or index, by tag or digest."""
        resp, conn = self.get(f"/v2/{repository}/manifests/{ref}", scope=_scope(repository),
                              what=what, accept=ACCEPT)
        try:
            raw = resp.read(MAX_MANIFEST + 1)
        finally:
            conn.close()
        if len(raw) > MAX_MANIFEST:
            raise InvalidArgument(f"{what}: manifest larger than {MAX_MANIFEST} bytes")
        mt = (resp.getheader("Content-Type") or "").split(";")[0].strip()
        return raw, mt

    def blob(self, repository: str, digest: str, what: str):
        """(response, conn): the blob as a stream; the caller verifies and closes."""
        return self.get(f"/v2/{repository}/blobs/{digest}", scope=_scope(repository), what=what)


def _scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def _error_detail(body: bytes) -> str:
    try:
        errs = json.loads(body).get("errors") or []
        msgs = [f"{e.get('code')}: {e.get('message')}" for e in errs if isinstance(e, dict)]
        return f" ({'; '.join(msgs)})" if msgs else ""
    except (ValueError, AttributeError):
        return ""
