"""Real answers of a running daemon, checked against the schema it publishes.

Every route is called at least once through its ordinary uses (create, attach, exec,
logs, stats, events, templates...); each JSON answer, and each line of an NDJSON answer,
is validated with jsonschema against the response schema that GET /v1/openapi.json
declares for that route, status and media type. Error answers are checked against the
Error schema. The test fails if a route was never exercised.
"""

from __future__ import annotations

import io
import json
import os
import tarfile

import jsonschema
import pytest

from conftest import spec, wait_for
from mcd.api import ROUTER

pytestmark = pytest.mark.integration


class Checker:
    def __init__(self, daemon):
        self.client = daemon.client
        self.doc = self.client.get("/v1/openapi.json")
        self.seen: set[str] = set()
        self.checked = 0

    def _schema(self, route, status: int, media: str) -> dict:
        op = self.doc["paths"][route.path][route.method.lower()]
        resp = op["responses"].get(str(status)) or op["responses"]["default"]
        content = resp["content"]
        assert media in content, f"{route.handler}: {status} {media} is not declared"
        # The refs are "#/components/...": resolve them against the document itself.
        return {**content[media]["schema"], "components": self.doc["components"]}

    def _validate(self, schema, value, where):
        try:
            jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator)
        except jsonschema.ValidationError as err:
            pytest.fail(f"{where}: answer does not match its schema: {err.message}\n"
                        f"at {list(err.absolute_path)}: {json.dumps(value)[:500]}")
        self.checked += 1

    def call(self, method, path, body=None, query=None, fds=(), expect=None):
        """Send a request; validate the answer (JSON, or each NDJSON line); return it."""
        route, _ = ROUTER.match(method, path.split("?")[0])
        self.seen.add(route.handler)
        from mcwire.errors import MCError
        try:
            resp = self.client.open(method, path, body, query, fds=fds)
        except MCError as err:
            assert err.received, err
            schema = self._schema(route, err.http_status, "application/json")
            self._validate(schema, {"error": {"code": err.code, "message": err.message}},
                           f"{method} {path} -> {err.http_status}")
            assert err.http_status == expect, f"{method} {path} -> {err.http_status}: {err}"
            return err
        try:
            media = resp.headers.get("content-type", "").split(";")[0]
            schema = self._schema(route, resp.status, media)
            where = f"{method} {path} -> {resp.status} {media}"
            if media == "application/x-ndjson":
                out = list(resp.lines())
                assert out, where
                for line in out:
                    self._validate(schema, line, where)
            elif media == "text/event-stream":
                out = None
            else:
                out = resp.json()
                self._validate(schema, out, where)
            if expect is not None:
                assert resp.status == expect, where
            return out
        finally:
            resp.close()


def _stdio():
    return [os.open("/dev/null", os.O_RDONLY), os.open("/dev/null", os.O_WRONLY),
            os.open("/dev/null", os.O_WRONLY)]


def _close(fds):
    for fd in fds:
        os.close(fd)


def test_every_route_answers_as_its_schema_says(daemon, tmp_path):
    ck = Checker(daemon)
    ck.call("GET", "/v1/version")
    ck.call("GET", "/v1/info")
    ck.call("GET", "/v1/openapi.json")

    # Attached runs: the NDJSON lines of create and of start.
    fds = _stdio()
    try:
        lines = ck.call("POST", "/v1/containers", {"spec": spec("sh", "-c", "echo out; echo err >&2"),
                                                   "attach": True, "rm": False}, fds=fds)
    finally:
        _close(fds)
    assert [ln["type"] for ln in lines] == ["attached", "exit"]
    once = lines[0]["id"]
    fds = _stdio()
    try:
        lines = ck.call("POST", f"/v1/containers/{once}/start", query={"attach": True}, fds=fds)
    finally:
        _close(fds)
    assert lines[-1]["exit_code"] == 0
    ck.call("GET", f"/v1/containers/{once}/logs", query={"timestamps": True, "tail": 5})
    ck.call("POST", f"/v1/containers/{once}/wait")

    made = ck.call("POST", "/v1/containers", {"spec": spec("sleep", "1000", name="conf")}, expect=201)
    ck.call("POST", f"/v1/containers/{made['id']}/rename", query={"name": "conf2"})
    ck.call("POST", "/v1/containers/conf2/start", expect=200)
    ck.call("GET", "/v1/containers", query={"all": True})
    ck.call("GET", "/v1/containers/conf2")
    ck.call("GET", "/v1/containers/conf2/top")
    ck.call("GET", "/v1/containers/conf2/stats")
    ck.call("GET", "/v1/stats")
    ck.call("GET", "/v1/stats", query={"stream": False})
    ck.call("POST", "/v1/containers/conf2/update", {"resources": {"memory": 64 << 20},
                                                    "restart_policy": "on-failure:2"})
    ck.call("POST", "/v1/containers/conf2/exec", {"process": {"args": ["true"]}, "detach": True},
            expect=201)
    fds = _stdio()
    try:
        lines = ck.call("POST", "/v1/containers/conf2/exec", {"process": {"args": ["sh", "-c", "exit 3"]}},
                        fds=fds)
    finally:
        _close(fds)
    assert lines[-1] == {"type": "exit", "exit_code": 3}
    ck.call("POST", "/v1/containers/conf2/pause")
    ck.call("POST", "/v1/containers/conf2/unpause")
    ck.call("POST", "/v1/containers/conf2/kill", query={"signal": "9"})
    wait_for(lambda: daemon.state("conf2")["status"] == "stopped", 30, "conf2 to stop")
    ck.call("POST", "/v1/containers/conf2/restart", query={"t": 0})
    ck.call("POST", "/v1/containers/conf2/stop", query={"t": 0})
    events = ck.call("GET", "/v1/events", query={"stream": False, "history": True})
    assert isinstance(events, list) and {"created", "started", "died"} <= {e["type"] for e in events}
    ck.call("DELETE", "/v1/containers/conf2")
    ck.call("POST", "/v1/containers/prune")

    # Templates: one from a directory (fd), one imported from a tar (fd).
    src = tmp_path / "tree"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "hello").write_text("hi\n")
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ck.call("POST", "/v1/templates", {"name": "conf-dir", "path": str(src)}, fds=[fd], expect=201)
    finally:
        os.close(fd)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(src, arcname=".")
    (tmp_path / "t.tar").write_bytes(buf.getvalue())
    fd = os.open(tmp_path / "t.tar", os.O_RDONLY)
    try:
        ck.call("POST", "/v1/templates/import", {"name": "conf-tar"}, fds=[fd], expect=201)
    finally:
        os.close(fd)
    ck.call("GET", "/v1/templates")
    ck.call("DELETE", "/v1/templates/conf-dir")
    ck.call("DELETE", "/v1/templates/conf-tar")

    # Networks as objects only (nothing attaches: no bridge is made on this host).
    ck.call("POST", "/v1/networks", {"name": "conf-net", "internal": True}, expect=201)
    ck.call("GET", "/v1/networks")
    ck.call("GET", "/v1/networks/conf-net")
    ck.call("DELETE", "/v1/networks/conf-net")
    ck.call("POST", "/v1/networks/prune")

    # Images: what an empty store answers, and the refusals.
    ck.call("GET", "/v1/images")
    ck.call("GET", "/v1/system/df")
    ck.call("POST", "/v1/images/prune", {"all": True})
    ck.call("GET", "/v1/images/inspect", query={"ref": "nope:1"}, expect=404)
    ck.call("GET", "/v1/images/history", query={"ref": "nope:1"}, expect=404)
    ck.call("POST", "/v1/images/tag", {"ref": "nope:1", "tag": "other:2"}, expect=404)
    ck.call("POST", "/v1/images/remove", {"ref": "nope:1"}, expect=404)
    ck.call("POST", "/v1/images/load", {}, expect=400)
    ck.call("POST", "/v1/images/save", {"refs": ["nope:1"]}, expect=400)
    ck.call("POST", "/v1/images/pull", {"ref": "::bad::"}, expect=400)
    ck.call("POST", "/v1/auth/logout", {"registry": "localhost:1"})
    ck.call("POST", "/v1/auth/login", {"registry": "localhost:1", "username": "u"}, expect=400)

    # Errors answer with the Error schema too.
    ck.call("GET", "/v1/containers/nope", expect=404)
    ck.call("POST", "/v1/containers", {"spec": {"process": None}}, expect=400)

    # The event stream: its head only (it never ends by itself).
    resp = daemon.client.open("GET", "/v1/events")
    try:
        assert resp.status == 200 and resp.headers["content-type"].startswith("text/event-stream")
    finally:
        resp.close()
    ck.seen.add("events")

    missing = {r.handler for r in ROUTER.routes} - ck.seen
    assert not missing, f"routes never exercised: {sorted(missing)}"
    assert ck.checked >= 35       # every answer and every NDJSON line above
