"""A private daemon for the fuzzer: its own network namespace, an empty minimal template."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import urllib.parse

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "tests", "python"))

from mcdaemon import Daemon  # noqa: E402


class FuzzDaemon(Daemon):
    """mcd in a network namespace of its own (``unshare --net``), whose links, routes,
    firewall rules and outside connections die with it; network configs in a temp dir."""

    def __init__(self, base: str):
        super().__init__(base)
        self.net_d = os.path.join(base, "net.d")
        os.makedirs(self.net_d)
        # An empty template: containers are set up up to execve, and no program runs. The
        # daemon makes it the minimal image at start (as it migrates any template tree);
        # the sequences' reset makes it again from empty_tree when a sequence removed it.
        self.empty_tree = os.path.join(base, "empty-tree")
        os.makedirs(self.empty_tree)
        tdir = os.path.join(self.root, "templates", "minimal")
        os.makedirs(os.path.join(tdir, "rootfs"))
        with open(os.path.join(tdir, "template.json"), "w") as f:
            json.dump({"name": "minimal", "created": "2026-01-01T00:00:00Z",
                       "source": "empty (fuzzing)", "size": 0}, f)

    def argv(self):
        return ["unshare", "--net", "--", *super().argv(), "--network-config-dir", self.net_d]

    base_url = "http://mcd"         # any host: the session's adapter sends it to the socket


@pytest.fixture(scope="session")
def fuzz_daemon():
    base = tempfile.mkdtemp(prefix="mcd-fuzz-")
    os.chmod(base, 0o755)
    d = FuzzDaemon(base).start()
    yield d
    leftovers = d.cleanup()
    # The daemon's log (tracebacks of any 500) stays for the CI artefacts.
    os.makedirs(os.path.join(REPO, "test-artifacts"), exist_ok=True)
    shutil.copy(d.log_path, os.path.join(REPO, "test-artifacts", "fuzz-mcd.log"))
    shutil.rmtree(base, ignore_errors=True)
    assert not leftovers, f"left behind: {json.dumps(leftovers)}"


@pytest.fixture(scope="session")
def fuzz_session(fuzz_daemon):
    """A requests session whose http://mcd/... goes to the daemon's Unix socket
    (requests-unixsocket's pool, for one fixed socket path)."""
    import requests
    from requests_unixsocket.adapters import UnixAdapter, UnixHTTPConnectionPool

    url = "http+unix://" + urllib.parse.quote(fuzz_daemon.socket, safe="")

    class SocketAdapter(UnixAdapter):
        def get_connection(self, _url, proxies=None):
            return UnixHTTPConnectionPool(url, self.timeout)

    with requests.Session() as s:
        s.mount(FuzzDaemon.base_url + "/", SocketAdapter())
        yield s


@pytest.fixture(scope="session")
def api_schema(fuzz_daemon):
    """The schema the daemon publishes, fetched from it."""
    import schemathesis
    doc = fuzz_daemon.client.get("/v1/openapi.json")
    return schemathesis.openapi.from_dict(doc)
