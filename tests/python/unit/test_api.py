"""The API's routing, validation and HTTP handling, in-process on a real Unix socket.

Only what needs no kernel privileges: creating (not starting) containers, lookups,
renames, destroys, bad input, body limits, fd passing. Starting containers is covered
by tests/python/integration against a real daemon.
"""

import json
import os
import socket
import threading

import pytest

from mcctl.client import Client
from mcwire.errors import MCError
from mcd.api import ROUTES, Api, build_openapi
from mcd.httpserver import HTTPServer, Response, bind_unix
from mcd.engine import open_manager
from mcd.templates import TemplateStore

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture
def api_server(tmp_path):
    root = tmp_path / "root"
    # A template is just a directory: a real TemplateStore over one.
    (root / "templates" / "minimal" / "rootfs").mkdir(parents=True)
    (root / "templates" / "minimal" / "template.json").write_text(json.dumps({"name": "minimal"}))
    m = open_manager(str(root), "mctest-unit", templates=TemplateStore(str(root / "templates")))
    sock_path = str(tmp_path / "api.sock")
    srv = HTTPServer(bind_unix(sock_path), Api(m), max_body=1 << 20, header_timeout=2)
    srv.start()
    yield Client(sock_path), m, sock_path
    srv.shutdown()
    m.close()


def test_openapi_in_repo_lists_every_route_and_matches_the_code():
    with open(os.path.join(REPO, "mcd", "openapi.json")) as f:
        doc = json.load(f)
    for r in ROUTES:
        assert r.method.lower() in doc["paths"].get(r.path, {}), f"{r.method} {r.path} missing from openapi.json"
    assert doc == json.loads(json.dumps(build_openapi())), "regenerate: python -m mcd.api > mcd/openapi.json"


def test_openapi_served(api_server):
    client, _m, _ = api_server
    assert client.get("/v1/openapi.json")["openapi"].startswith("3.")


def spec(name=None, **kw):
    s = {"process": {"args": ["true"]}, "root": {"template": "minimal"}, **kw}
    if name:
        s["name"] = name
    return s


def test_create_list_lookup_rename_destroy(api_server):
    client, m, _ = api_server
    a = client.post("/v1/containers", {"spec": spec("alpha")})
    b = client.post("/v1/containers", {"spec": spec()})
    assert len(a["id"]) == 64 and a["name"] == "alpha"
    assert "_" in b["name"]
    listed = client.get("/v1/containers", all=True)
    assert {x["name"] for x in listed} == {"alpha", b["name"]}
    assert client.get("/v1/containers") == []        # none running
    assert client.get(f"/v1/containers/{a['id'][:6]}")["name"] == "alpha"
    client.post("/v1/containers/alpha/rename", name="beta")
    with pytest.raises(MCError) as e:
        client.get("/v1/containers/alpha")
    assert e.value.code == "NOT_FOUND" and e.value.http_status == 404
    with pytest.raises(MCError) as e:
        client.post("/v1/containers/beta/rename", name=b["name"])
    assert e.value.code == "CONFLICT"
    with pytest.raises(MCError) as e:
        client.post("/v1/containers/beta/stop", t="soon")
    assert e.value.code == "INVALID_ARGUMENT" and "expected an integer" in e.value.message
    with pytest.raises(MCError) as e:
        client.post("/v1/containers/beta/kill")
    assert e.value.code == "NOT_RUNNING"
    client.delete("/v1/containers/beta")
    assert [x["name"] for x in client.get("/v1/containers", all=True)] == [b["name"]]
    assert client.post("/v1/containers/prune")["removed"] == [b["id"]]


def test_ambiguous_prefix(api_server):
    client, m, _ = api_server
    ids = [client.post("/v1/containers", {"spec": spec()})["id"] for _ in range(20)]
    first = {}
    for i in ids:
        first.setdefault(i[0], []).append(i)
    dup = next((v for v in first.values() if len(v) > 1), None)
    if dup:
        with pytest.raises(MCError) as e:
            client.get(f"/v1/containers/{dup[0][0]}")
        assert "ambiguous" in e.value.message


@pytest.mark.parametrize("body,code,needle", [
    ({"spec": {"process": {"args": []}}}, "INVALID_ARGUMENT", "a command is required"),
    ({"spec": spec(), "start": 1}, "INVALID_ARGUMENT", "expected a boolean"),
    ({"spec": spec(), "nope": True}, "INVALID_ARGUMENT", "unknown field(s) nope"),
    ({}, "INVALID_ARGUMENT", "spec is required"),
    ({"spec": spec("x", hostname="bad_host")}, "INVALID_ARGUMENT", "hostname"),
    ({"spec": {**spec(), "root": {"template": "ghost"}}}, "NOT_FOUND", "ghost"),
])
def test_bad_creates_change_nothing(api_server, body, code, needle):
    client, m, _ = api_server
    with pytest.raises(MCError) as e:
        client.post("/v1/containers", body)
    assert e.value.code == code and needle in e.value.message
    assert client.get("/v1/containers", all=True) == []


def test_unknown_route_and_method(api_server):
    client, _m, _ = api_server
    with pytest.raises(MCError) as e:
        client.get("/v2/containers")
    assert e.value.http_status == 404
    with pytest.raises(MCError) as e:
        client.call("PATCH", "/v1/containers")
    assert e.value.http_status == 405


def _raw(path, data):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    try:
        s.sendall(data)
    except BrokenPipeError:
        pass
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        out += d
    s.close()
    return out


def test_body_limit_and_malformed_request(api_server):
    _client, _m, path = api_server
    out = _raw(path, b"POST /v1/containers HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 1000)
    assert out.startswith(b"HTTP/1.1 413")
    out = _raw(path, b"GARBAGE\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")
    out = _raw(path, b"POST /v1/containers HTTP/1.1\r\nContent-Length: -5\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")
    out = _raw(path, b"POST /v1/containers HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 411")
    out = _raw(path, b"GET /v1/version HTTP/1.1\r\nHost: x\r\n")   # never finishes: deadline
    assert out.startswith(b"HTTP/1.1 408")


def test_keep_alive_two_requests_on_one_connection(api_server):
    _client, _m, path = api_server
    req = b"GET /v1/version HTTP/1.1\r\nHost: x\r\n\r\n"
    out = _raw(path, req + req[:-2] + b"Connection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200") == 2


def test_fds_ride_on_requests_and_responses(tmp_path):
    """SCM_RIGHTS both ways: the handler reads the fd we sent and sends one back."""
    seen = {}

    def handler(req):
        fds = req.take_fds()
        seen["data"] = os.read(fds[0], 100)
        for fd in fds:
            os.close(fd)
        r, w = os.pipe()
        os.write(w, b"from-daemon")
        os.close(w)
        return Response.json({"ok": True}, fds=[r])

    path = str(tmp_path / "fd.sock")
    srv = HTTPServer(bind_unix(path), handler)
    srv.start()
    try:
        r, w = os.pipe()
        os.write(w, b"from-client")
        os.close(w)
        resp = Client(path).open("POST", "/x", {}, fds=[r])
        os.close(r)
        assert resp.json() == {"ok": True}
        got = resp.fds
        assert len(got) == 1 and os.read(got[0], 100) == b"from-daemon"
        os.close(got[0])
        resp.close()
        assert seen["data"] == b"from-client"
    finally:
        srv.shutdown()


def test_streamed_response_is_chunked(tmp_path):
    def handler(req):
        return Response(200, stream=iter([b'{"n": 1}\n', b'{"n": 2}\n']),
                        content_type="application/x-ndjson")

    path = str(tmp_path / "s.sock")
    srv = HTTPServer(bind_unix(path), handler)
    srv.start()
    try:
        resp = Client(path).open("GET", "/x")
        assert [x["n"] for x in resp.lines()] == [1, 2]
        resp.close()
    finally:
        srv.shutdown()


def test_live_socket_is_not_replaced_but_stale_one_is(tmp_path):
    path = str(tmp_path / "a.sock")
    s = bind_unix(path)
    with pytest.raises(OSError) as e:
        bind_unix(path)
    assert "another daemon is listening" in str(e.value)
    s.close()           # the file stays: a stale socket, as after a crash
    assert os.path.exists(path)
    s2 = bind_unix(path, mode=0o600)
    assert (os.stat(path).st_mode & 0o777) == 0o600
    s2.close()


def test_concurrent_creates_same_name_exactly_one(api_server):
    client, _m, path = api_server
    results = []
    barrier = threading.Barrier(30)

    def go():
        barrier.wait()
        try:
            Client(path).post("/v1/containers", {"spec": spec("same")})
            results.append("ok")
        except MCError as err:
            results.append(err.code)

    ts = [threading.Thread(target=go) for _ in range(30)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results.count("ok") == 1 and results.count("CONFLICT") == 29


def test_connection_limit_answers_503_and_recovers(tmp_path):
    path = str(tmp_path / "lim.sock")
    srv = HTTPServer(bind_unix(path), lambda req: Response.json({"ok": 1}), max_connections=2)
    srv.start()
    try:
        held = []
        for _ in range(2):
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            held.append(s)
        # The server registers held connections as their threads start.
        import time
        deadline = time.monotonic() + 10
        while len(srv._conns) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _raw(path, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 503")
        for s in held:
            s.close()
        deadline = time.monotonic() + 10
        while srv._conns and time.monotonic() < deadline:
            time.sleep(0.01)
        assert Client(path).get("/x") == {"ok": 1}
    finally:
        srv.shutdown()


def test_openapi_refs_resolve_and_spec_fields_are_described():
    import dataclasses
    from mcwire.spec import ContainerSpec, Resources
    doc = build_openapi()
    text = json.dumps(doc)
    import re
    for ref in set(re.findall(r'"#/components/schemas/(\w+)"', text)):
        assert ref in doc["components"]["schemas"], ref
    for cls in (ContainerSpec, Resources):
        props = doc["components"]["schemas"][cls.__name__]["properties"]
        assert set(props) == {f.name for f in dataclasses.fields(cls)}
    create = doc["paths"]["/v1/containers"]["post"]["requestBody"]["content"]["application/json"]
    assert create["schema"]["required"] == ["spec"]


# ---------------------------------------------------------------- self-describing routes

def test_every_handler_takes_exactly_what_its_route_declares():
    import inspect
    for r in ROUTES:
        params = list(inspect.signature(getattr(Api, r.handler)).parameters)
        assert params[:2] == ["self", "req"], r.handler
        declared = r.path_params + [q.name for q in r.query] + [f.name for f in r.body or ()]
        assert sorted(params[2:]) == sorted(declared), r.handler


def test_every_route_publishes_a_response_schema_and_its_links_resolve():
    doc = build_openapi()
    ops = {op["operationId"]: op for p in doc["paths"].values() for op in p.values()}
    assert len(ops) == len(ROUTES)
    for r in ROUTES:
        op = ops[r.handler]
        ok = {k: v for k, v in op["responses"].items() if k != "default"}
        assert ok, r.handler
        for status, resp in ok.items():
            assert 200 <= int(status) < 300
            for media, content in resp["content"].items():
                assert content["schema"], (r.handler, status, media)
        assert op["responses"]["default"]["content"]["application/json"]["schema"] == \
            {"$ref": "#/components/schemas/Error"}
        for resp in ok.values():
            for link in resp.get("links", {}).values():
                target = ops[link["operationId"]]
                names = {p["name"] for p in target.get("parameters", [])}
                assert set(link["parameters"]) <= names, link
    # Creating a container feeds its id to the operations that take one.
    links = ops["create_container"]["responses"]["201"]["links"]
    assert links["inspect_ref"] == {"operationId": "inspect", "parameters": {"ref": "$response.body#/id"}}


def test_error_schema_lists_the_closed_set_of_codes():
    from mcwire.errors import CODES
    schema = build_openapi()["components"]["schemas"]["Error"]
    assert schema["properties"]["error"]["properties"]["code"]["enum"] == sorted(CODES)


@pytest.mark.parametrize("path, body, needle", [
    # Found by schemathesis (issue 11): both were 500 INTERNAL.
    ("/v1/containers", {"spec": {"process": {"args": ["true"]},
                                 "linux": {"namespaces": ["pid", "mount", "user"],
                                           "uid_mappings": [{"size": 1}],
                                           "gid_mappings": [{"size": None}]}}},
     "ContainerSpec.linux.gid_mappings[0].size: must not be null"),
    ("/v1/containers/anything/exec", {"process": None}, "request.process: expected an object, got null"),
    ("/v1/containers", {"spec": None}, "request.spec: expected an object, got null"),
    ("/v1/containers", {"spec": {"process": {"args": ["true"], "user": None}}},
     "ContainerSpec.process.user: must not be null"),
    ("/v1/containers/anything/exec", {"process": {"args": ["true"]}, "detach": "yes"},
     'request.detach: expected a boolean, got "yes"'),
])
def test_null_and_wrong_types_are_400_naming_the_field(api_server, path, body, needle):
    client, _m, _ = api_server
    with pytest.raises(MCError) as e:
        client.post(path, body)
    assert (e.value.http_status, e.value.code) == (400, "INVALID_ARGUMENT")
    assert needle in e.value.message
    assert client.get("/v1/containers", all=True) == []


@pytest.mark.parametrize("path, needle", [
    ("/v1/containers/x/kill?signal=SIGNOPE", "query parameter signal: invalid value 'SIGNOPE'"),
    ("/v1/containers/x/stop?t=9999", "query parameter t: 9999 is out of range [0, 3600]"),
    ("/v1/containers/x/rename", "query parameter name is required"),
    ("/v1/containers/x/rename?name=a/b", "query parameter name: invalid value 'a/b'"),
])
def test_query_parameters_are_checked_as_declared(api_server, path, needle):
    client, _m, _ = api_server
    with pytest.raises(MCError) as e:
        client.post(path)
    assert e.value.http_status == 400 and needle in e.value.message


def test_events_and_stats_answer_a_list_when_not_streaming(api_server):
    # stream=0 must be a plain JSON answer (the dashboard's feed reads it in-process).
    client, _m, _ = api_server
    assert client.get("/v1/events", stream=False) == []
    assert client.get("/v1/stats") == []


@pytest.mark.parametrize("body, needle", [
    # Found by the fuzz tier (tests/python/fuzz): each was a 500.
    (b'{"spec": {"process": {"args": ["\\udbeb"]}}}', "lone UTF-16 surrogate"),
    (b'{"spec": {"process": {"args": [""]}}}', "the command (the first argument) is empty"),
    (b'{"spec": {"root": {"image": "x"}, "process": [null, null]}}',
     "ContainerSpec.process: expected an object"),
])
def test_fuzz_findings_are_400s(api_server, body, needle):
    client, _m, path = api_server
    out = _raw(path, b"POST /v1/containers HTTP/1.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    assert out.startswith(b"HTTP/1.1 400"), out[:300]
    assert needle.encode() in out
    assert client.get("/v1/containers", all=True) == []


def test_a_registry_is_a_host_and_port():
    from mcd.images.pull import registry_of
    assert registry_of("https://localhost:5000/x") == "localhost:5000"
    assert registry_of("[::1]:5000") == "[::1]:5000" and registry_of("[::1]") == "[::1]"
    for bad in ("A\x06", "a b", "x:y", "a" * 64, "x." + "b" * 64, "x:99999"):  # IDNA, port range
        with pytest.raises(MCError) as e:
            registry_of(bad)
        assert e.value.http_status == 400
