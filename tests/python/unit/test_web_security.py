"""The dashboard's access rules, the static-file table and the token file (no daemon)."""

import os
import stat

import pytest

from mcd.errors import InvalidArgument
from mcd.web import security, static_files

TOKEN = "t" * 43
HOST = "127.0.0.1:7070"


def hdrs(**kw):
    d = {"Host": HOST}
    d.update({k.replace("_", "-"): v for k, v in kw.items()})
    return d


def control_headers():
    return hdrs(Origin=f"http://{HOST}", **{"X-MC-Token": TOKEN})


@pytest.mark.parametrize("path", [
    "/v1/info", "/v1/version", "/v1/containers", "/v1/containers/web",
    "/v1/containers/abc123/logs", "/v1/containers/web.1/top", "/v1/containers/w_x-y/stats",
    "/v1/stats", "/v1/events", "/v1/templates", "/v1/openapi.json",
])
def test_reads_need_no_token(path):
    assert security.check_api_request("GET", path, hdrs(), TOKEN).allowed


@pytest.mark.parametrize("path", [
    "/v1/containers/../../etc/passwd", "/v1/containers/web/exec", "/v1/containers/web/logs/x",
    "/v1/dashboard", "/v1/containers/.hidden", "/v1/", "/v1/containers/web/wait",
])
def test_unknown_reads_are_not_forwarded(path):
    d = security.check_api_request("GET", path, hdrs(), TOKEN)
    assert not d.allowed and d.status == 404


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/containers/web/start"), ("POST", "/v1/containers/web/stop"),
    ("POST", "/v1/containers/web/restart"), ("POST", "/v1/containers/web/pause"),
    ("POST", "/v1/containers/web/unpause"), ("DELETE", "/v1/containers/web"),
])
def test_control_needs_token_and_origin(method, path):
    assert security.check_api_request(method, path, control_headers(), TOKEN).allowed
    no_token = hdrs(Origin=f"http://{HOST}")
    assert security.check_api_request(method, path, no_token, TOKEN).status == 403
    wrong = hdrs(Origin=f"http://{HOST}", **{"X-MC-Token": "x" * 43})
    assert not security.check_api_request(method, path, wrong, TOKEN).allowed
    for origin in (None, "null", "http://evil.example", f"https://{HOST}", "http://127.0.0.1:7071"):
        h = hdrs(**{"X-MC-Token": TOKEN})
        if origin:
            h["Origin"] = origin
        d = security.check_api_request(method, path, h, TOKEN)
        assert not d.allowed and "Origin" in d.message, origin


def test_no_token_configured_means_read_only():
    for tok in (None, ""):
        d = security.check_api_request("POST", "/v1/containers/web/stop",
                                       hdrs(Origin=f"http://{HOST}", **{"X-MC-Token": ""}), tok)
        assert not d.allowed


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/containers"), ("POST", "/v1/containers/web/exec"),
    ("POST", "/v1/containers/web/kill"), ("POST", "/v1/containers/web/update"),
    ("POST", "/v1/containers/web/rename"), ("POST", "/v1/containers/prune"),
    ("POST", "/v1/templates"), ("POST", "/v1/templates/import"),
    ("DELETE", "/v1/templates/minimal"), ("PUT", "/v1/containers/web"),
])
def test_dangerous_routes_are_refused_even_with_the_token(method, path):
    d = security.check_api_request(method, path, control_headers(), TOKEN)
    assert not d.allowed and d.status == 403


def test_token_compare():
    assert security.token_matches(TOKEN, TOKEN)
    assert not security.token_matches(TOKEN, TOKEN[:-1])
    assert not security.token_matches(TOKEN, None)
    assert not security.token_matches(None, None)


@pytest.mark.parametrize("text,want", [
    ("127.0.0.1:7070", ("127.0.0.1", 7070)), ("[::1]:0", ("::1", 0)),
    ("localhost:80", ("localhost", 80)), ("0.0.0.0:7070", ("0.0.0.0", 7070)),
])
def test_parse_listen(text, want):
    assert security.parse_listen(text) == want


@pytest.mark.parametrize("text", ["", "7070", "127.0.0.1", "host:port", "[::1]", "1.2.3.4:99999", "off"])
def test_parse_listen_refuses(text):
    with pytest.raises(InvalidArgument, match="--web-listen"):
        security.parse_listen(text)


def test_loopback_detection():
    assert security.is_loopback("127.0.0.1")
    assert security.is_loopback("127.1.2.3")
    assert security.is_loopback("::1")
    assert not security.is_loopback("0.0.0.0")
    assert not security.is_loopback("::")
    assert not security.is_loopback("192.0.2.1")


def test_allowed_hosts_block_rebinding():
    ok = security.allowed_hosts("127.0.0.1", 7070)
    assert "127.0.0.1:7070" in ok and "localhost:7070" in ok and "[::1]:7070" in ok
    assert "evil.example:7070" not in ok and "127.0.0.1:7071" not in ok


def test_security_headers():
    csp = security.SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert security.SECURITY_HEADERS["X-Content-Type-Options"] == "nosniff"


# ---------------------------------------------------------------- static files

def test_shipped_static_files_load():
    files = static_files.load()
    assert {"index.html", "app.js", "style.css", "favicon.svg"} <= set(files)
    index = files["index.html"].body.decode()
    # Everything the page loads is its own: no CDN, no inline script or style.
    assert "http://" not in index and "https://" not in index
    assert "<script>" not in index and "<style" not in index and " style=" not in index
    assert "innerHTML" not in files["app.js"].body.decode()


@pytest.mark.parametrize("path", [
    "/static/../__init__.py", "/static/..%2f__init__.py", "/static/", "/static/.hidden",
    "/static//etc/passwd", "/static/static_files.py", "/etc/passwd", "/static/app.js/",
    "/static/APP.JS", "/static/app.js\x00.css", "/../security.py",
])
def test_static_lookup_is_a_table_not_a_path(path):
    assert static_files.lookup(static_files.load(), path) is None


def test_static_load_skips_symlinks_and_unknown_types(tmp_path):
    (tmp_path / "index.html").write_text("<p>hi</p>")
    (tmp_path / "secret.key").write_text("nope")
    (tmp_path / ".env.js").write_text("nope")
    os.symlink("/etc/passwd", tmp_path / "passwd.css")
    files = static_files.load(str(tmp_path))
    assert set(files) == {"index.html"}
    assert static_files.lookup(files, "/").content_type.startswith("text/html")


# ---------------------------------------------------------------- token file

def test_token_file_is_made_once_and_private(tmp_path):
    t1 = security.load_or_create_token(str(tmp_path), group="no-such-group-here")
    path = tmp_path / security.TOKEN_FILE
    assert len(t1) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert security.load_or_create_token(str(tmp_path), group="no-such-group-here") == t1
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]


def test_token_file_with_garbage_is_replaced(tmp_path):
    (tmp_path / security.TOKEN_FILE).write_text("short\n")
    t = security.load_or_create_token(str(tmp_path), group="no-such-group-here")
    assert t != "short" and len(t) >= 32
