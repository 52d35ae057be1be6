"""Helpers of the dashboard tier. The daemon itself is tests/python/mcdaemon.py's, the
harness the integration tier uses too (``Daemon(base, web=True)``): here are the raw
requests to the dashboard port and the screenshots."""

from __future__ import annotations

import http.client
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "tests", "python"))

from mcdaemon import Daemon  # noqa: E402
from mctestlib import wait_for  # noqa: E402,F401 - re-exported to tests
SCREENSHOTS = os.path.join(REPO, "test-artifacts", "screenshots")


# ---------------------------------------------------------------- TCP side (the dashboard)

def web(daemon: Daemon, method: str, path: str, headers: dict | None = None,
        body: bytes | None = None, timeout: float = 30):
    """One request to the dashboard port, raw: (status, headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        hdrs = {"Host": f"127.0.0.1:{daemon.port}"}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            if v is not None:
                conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def screenshot(page, name: str) -> str:
    """A full-page screenshot kept as a test artifact (test-artifacts/screenshots/)."""
    os.makedirs(SCREENSHOTS, exist_ok=True)
    path = os.path.join(SCREENSHOTS, name)
    page.screenshot(path=path, full_page=True)
    return path
