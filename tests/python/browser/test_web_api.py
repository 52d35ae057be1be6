"""The dashboard port's rules, over raw HTTP against a real mcd: token, Origin,
Host, the route allowlist, static files without traversal, the headers."""

from __future__ import annotations

import grp
import json
import os
import socket
import stat

import pytest

from mcweb_harness import web, wait_for
from mcd.errors import InvalidArgument
from mcd.web import start_web


@pytest.fixture(scope="module")
def victim(daemon):
    daemon.api_run("victim", ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 0.2; done'])
    return "victim"


def control(daemon, **over):
    h = {"X-MC-Token": daemon.token, "Origin": daemon.url}
    h.update(over)
    return h


def assert_security_headers(headers):
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "access-control-allow-origin" not in headers


def test_page_and_assets_with_headers(daemon):
    status, h, body = web(daemon, "GET", "/")
    assert status == 200 and h["content-type"].startswith("text/html")
    assert b'<script src="/static/app.js"' in body
    assert_security_headers(h)
    for path, ctype in (("/static/app.js", "text/javascript"), ("/static/style.css", "text/css"),
                        ("/static/favicon.svg", "image/svg+xml")):
        status, h, _ = web(daemon, "GET", path)
        assert status == 200 and h["content-type"].startswith(ctype), path
        assert_security_headers(h)
    # Revalidation works (the page is cheap to reopen).
    status, h, _ = web(daemon, "GET", "/static/app.js")
    status, _, body = web(daemon, "GET", "/static/app.js", {"If-None-Match": h["etag"]})
    assert status == 304 and body == b""


@pytest.mark.parametrize("path", [
    "/static/../__init__.py", "/static/%2e%2e/__init__.py", "/static/..%2f..%2fsecurity.py",
    "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/../../../../etc/passwd",
    "//etc/passwd", "/static//etc/passwd", "/static/app.js%00.css", "/static/.%2e/server.py",
    "/static/%5c..%5cserver.py", "/etc/passwd", "/static/", "/mcd/web/security.py",
    "/static/../../../root/dashboard.token", "/dashboard.token",
])
def test_no_path_traversal(daemon, path):
    status, h, body = web(daemon, "GET", path)
    assert status == 404, (path, status, body[:200])
    assert b"root:" not in body and b"import" not in body and daemon.token.encode() not in body
    assert_security_headers(h)


def test_reads_need_no_token(daemon, victim):
    status, h, body = web(daemon, "GET", "/v1/containers?all=1")
    assert status == 200 and h["cache-control"] == "no-store"
    assert victim in [c["name"] for c in json.loads(body)]
    for path in ("/v1/info", f"/v1/containers/{victim}", f"/v1/containers/{victim}/top",
                 f"/v1/containers/{victim}/stats", "/v1/stats", "/v1/templates"):
        status, h, body = web(daemon, "GET", path)
        assert status == 200, (path, body)
        assert_security_headers(h)
    assert daemon.token.encode() not in web(daemon, "GET", "/v1/info")[2]


def test_control_needs_token_and_origin(daemon, victim):
    path = f"/v1/containers/{victim}/stop?t=5"
    refusals = [
        {},                                                           # nothing
        {"Origin": daemon.url},                                      # origin, no token
        {"X-MC-Token": daemon.token},                                 # token, no origin (CSRF)
        control(daemon, Origin="http://evil.example"),                # foreign origin
        control(daemon, Origin="null"),
        control(daemon, Origin=f"http://127.0.0.1:{daemon.port + 1}"),
        control(daemon, **{"X-MC-Token": "x" * len(daemon.token)}),   # wrong token
        {"Cookie": f"token={daemon.token}", "Origin": daemon.url},   # a cookie is not enough
    ]
    for headers in refusals:
        status, _, body = web(daemon, "POST", path, headers)
        assert status == 403, (headers, body)
        assert json.loads(body)["error"]["code"] == "PERMISSION_DENIED"
        assert daemon.status_of(victim) == "running", headers
    status, _, body = web(daemon, "POST", path, control(daemon))
    assert status == 200, body
    assert daemon.status_of(victim) == "stopped"
    status, _, body = web(daemon, "POST", f"/v1/containers/{victim}/start", control(daemon))
    assert status == 200, body
    assert daemon.status_of(victim) == "running"


def test_the_token_never_opens_create_exec_or_templates(daemon, victim):
    spec = {"spec": {"name": "sneaky", "process": {"args": ["true"]},
                     "mounts": [{"destination": "/host", "type": "bind", "source": "/"}]},
            "start": True}
    attempts = [
        ("POST", "/v1/containers", json.dumps(spec).encode()),
        ("POST", f"/v1/containers/{victim}/exec",
         json.dumps({"process": {"args": ["id"]}, "detach": True}).encode()),
        ("POST", f"/v1/containers/{victim}/kill?signal=KILL", b""),
        ("POST", f"/v1/containers/{victim}/update",
         json.dumps({"resources": {"memory": 8 * 1024 * 1024}}).encode()),
        ("POST", "/v1/containers/prune", b""),
        ("POST", "/v1/templates", json.dumps({"name": "x", "path": "/"}).encode()),
        ("DELETE", "/v1/templates/minimal", b""),
        ("PUT", f"/v1/containers/{victim}", b""),
    ]
    for method, path, body in attempts:
        status, _, out = web(daemon, method, path,
                             {**control(daemon), "Content-Type": "application/json"}, body)
        assert status in (403, 405), (method, path, status, out)
    assert daemon.api("GET", "/v1/containers/sneaky")[0] == 404
    assert daemon.status_of(victim) == "running"
    assert daemon.api("GET", "/v1/templates")[1]


def test_cors_preflight_gets_no_grant(daemon, victim):
    status, h, _ = web(daemon, "OPTIONS", f"/v1/containers/{victim}/stop", {
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-mc-token"})
    assert status >= 400
    assert not any(k.startswith("access-control-") for k in h)


def test_dns_rebinding_host_is_refused(daemon):
    for host in ("evil.example", f"evil.example:{daemon.port}", f"127.0.0.1:{daemon.port + 1}"):
        status, _, body = web(daemon, "GET", "/v1/containers", {"Host": host})
        assert status == 403, (host, body)
    assert web(daemon, "GET", "/v1/containers", {"Host": f"localhost:{daemon.port}"})[0] == 200


def test_session_says_whether_the_token_is_good(daemon):
    assert json.loads(web(daemon, "GET", "/web/session")[2])["control"] is False
    bad = {"X-MC-Token": "nope"}
    assert json.loads(web(daemon, "GET", "/web/session", bad)[2])["control"] is False
    good = {"X-MC-Token": daemon.token}
    assert json.loads(web(daemon, "GET", "/web/session", good)[2])["control"] is True


def test_feed_streams_samples_of_the_real_containers(daemon, victim):
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as s:
        s.sendall(f"GET /web/feed HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n\r\n".encode())
        buf = b""
        while buf.count(b"event: sample") < 2:
            chunk = s.recv(65536)
            assert chunk, "feed closed early"
            buf += chunk
    head = buf.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert "text/event-stream" in head and "content-security-policy" in head
    data = [line for line in buf.split(b"\n") if line.startswith(b"data: {\"t\"")][-1]
    # Chunked framing may split a line: take the JSON from its start to the first newline.
    sample = json.loads(data[len(b"data: "):])
    names = {c["name"]: c for c in sample["containers"]}
    assert names[victim]["status"] == "running"
    assert names[victim]["stats"]["memory_current"] > 0
    assert sample["host"]["cgroup"]["mode"] in ("v1", "v2", "hybrid")


def test_token_file_is_root_and_mcd_group_only(daemon):
    st = os.stat(os.path.join(daemon.root, "dashboard.token"))
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0
    try:
        assert st.st_gid == grp.getgrnam("mcd").gr_gid
    except KeyError:
        assert st.st_gid == 0


def test_non_loopback_needs_the_explicit_flag():
    # Refused before anything is bound, so this never opens a port beyond loopback.
    for addr in ("0.0.0.0:0", "[::]:0", "192.0.2.1:7070"):
        with pytest.raises(InvalidArgument, match="allow-remote"):
            start_web(lambda req: None, addr, "t" * 43)


def test_ephemeral_loopback_listener_stops_cleanly(daemon):
    """start_web on the real Api class in-process (not a fake): binds, serves, stops."""
    from mcd.api import Api
    from mcd.engine import open_manager
    root = os.path.join(daemon.base, "inproc-root")
    os.makedirs(root)
    m = open_manager(root, daemon.tag + "-inproc")
    stop = start_web(Api(m), "127.0.0.1:0", None)
    try:
        with socket.create_connection(("127.0.0.1", stop.port), timeout=5) as s:
            s.sendall(f"GET /v1/containers HTTP/1.1\r\nHost: 127.0.0.1:{stop.port}\r\n"
                      "Connection: close\r\n\r\n".encode())
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        assert out.startswith(b"HTTP/1.1 200") and out.rstrip().endswith(b"[]")
        # Read-only when started without a token.
        with socket.create_connection(("127.0.0.1", stop.port), timeout=5) as s:
            s.sendall(f"POST /v1/containers/x/stop HTTP/1.1\r\nHost: 127.0.0.1:{stop.port}\r\n"
                      f"Origin: http://127.0.0.1:{stop.port}\r\nX-MC-Token: \r\n"
                      "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
            assert s.recv(100).startswith(b"HTTP/1.1 403")
    finally:
        stop()
        m.close()

    def closed():
        try:
            socket.create_connection(("127.0.0.1", stop.port), timeout=1).close()
            return False
        except OSError:
            return True
    wait_for(closed, 10, "the in-process listener to close")


def test_non_loopback_with_the_flag_binds_and_warns():
    """Inside a fresh network namespace (only its own lo), so 0.0.0.0 exposes nothing."""
    import subprocess
    import sys
    from mcweb_harness import REPO
    code = (
        "import logging, socket\n"
        "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')\n"
        "from mcd.web import start_web\n"
        "stop = start_web(lambda req: None, '0.0.0.0:0', 't' * 43, allow_remote=True)\n"
        "s = socket.create_connection(('127.0.0.1', stop.port), timeout=5)\n"
        "s.sendall(b'GET / HTTP/1.1\\r\\nHost: anything.example\\r\\nConnection: close\\r\\n\\r\\n')\n"
        "print(s.recv(20).decode().split('\\r\\n')[0])\n"
        "stop()\n")
    out = subprocess.run(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" -c "$1"',
                          sys.executable, code], cwd=REPO,
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert out.returncode == 0, out.stderr
    assert "HTTP/1.1 200" in out.stdout          # any Host is fine once remote is allowed
    assert "WARNING dashboard: listening on 0.0.0.0:0, reachable from other hosts" in out.stderr
