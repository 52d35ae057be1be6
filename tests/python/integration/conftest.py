"""Fixtures of the integration tier: a real mcd (tests/python/mcdaemon.py, the harness
the browser tier shares) on a temp socket, root and private cgroup parent.

The ``daemon`` fixture starts one and, at teardown, removes every container, stops the
daemon BY PID and proves nothing is left behind (Daemon.cleanup). The tier's tests
carry the ``root`` and ``integration`` marks (tests/python/mctestlib.py gives them).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "python"))

from mcdaemon import Daemon, procs_mentioning  # noqa: E402,F401 - re-exported to tests
from mctestlib import cgroup_dirs, wait_for  # noqa: E402,F401 - re-exported to tests


@pytest.fixture
def tmpbase():
    d = tempfile.mkdtemp(prefix="mcd-it-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemon(tmpbase):
    d = Daemon(tmpbase).start()
    yield d
    leftovers = d.cleanup()
    assert not leftovers, f"left behind: {json.dumps(leftovers)}\n{d.log()}"


@pytest.fixture
def make_daemon(tmpbase):
    """For tests that need a daemon they start themselves (with a special environment)."""
    made = []

    def make():
        d = Daemon(tmpbase)
        made.append(d)
        return d

    yield make
    for d in made:
        leftovers = d.cleanup()
        assert not leftovers, f"left behind: {json.dumps(leftovers)}\n{d.log()}"


def spec(*args, **kw) -> dict:
    s = {"process": {"args": list(args) or ["sh"]}, "root": {"template": "minimal"}}
    s.update(kw)
    return s


def raw_request(sock_path: str, data: bytes, read: bool = True, timeout: float = 30) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if not read:
            return b""
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(body) >= int(line.split(b":")[1]):
                            return out
        return out
    finally:
        s.close()
