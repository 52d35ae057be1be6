"""A real mcd on a temp socket, root and private cgroup parent ``mctest-<random>``.

The ``daemon`` fixture starts ``python -m mcd`` as a child and, at teardown, removes
every container, stops the daemon BY PID and proves nothing is left behind: no mcd
or monitor process (both carry the unique temp root on their command line), no
process in the private cgroup parent, no cgroup below it (the parent itself is then
removed), no mount under the temp root.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "python"))

from mcctl.client import Client  # noqa: E402
from mcwire.errors import MCError  # noqa: E402
from mctestlib import cgroup_dirs, procs_under, wait_for  # noqa: E402,F401 - wait_for is re-exported to tests

pytestmark = pytest.mark.integration


def procs_mentioning(text: str) -> list[int]:
    """Processes whose command line contains text (the daemon and its forked monitors)."""
    out = []
    needle = text.encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle in f.read():
                    out.append(int(d))
        except OSError:
            pass
    return out


class Daemon:
    def __init__(self, base: str):
        self.base = base
        self.tag = "mctest-" + secrets.token_hex(4)
        self.root = os.path.join(base, "root-" + self.tag)
        self.socket = os.path.join(base, "mcd.sock")
        self.proc: subprocess.Popen | None = None
        self.client = Client(self.socket)
        self.log_path = os.path.join(base, "mcd.log")

    def argv(self):
        # --default-network none: this daemon runs in the machine's own network namespace,
        # whose links and firewall tests must never change. Network tests run their own
        # daemon inside a namespace they made (tests/python/network), with the default on.
        return [sys.executable, "-m", "mcd", "--socket", self.socket, "--root", self.root,
                "--cgroup-parent", self.tag, "--web-listen", "off", "--log-level", "debug",
                "--config", os.path.join(self.base, "none.toml"), "--default-network", "none"]

    def start(self, env=None, wait=True):
        with open(os.path.join(self.base, "none.toml"), "w") as f:
            f.write("")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), cwd=REPO, stdout=log, stderr=log,
                                     env=env or dict(os.environ), start_new_session=True)
        log.close()
        if wait:
            wait_for(self.answers, 30, "the daemon to answer")
        return self

    def answers(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"mcd exited with {self.proc.returncode}:\n{self.log()}")
        try:
            self.client.get("/v1/version")
            return True
        except MCError:
            return False

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-5000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        """Stop the daemon by its pid (containers keep running: live restore)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(30)
        self.proc = None

    def kill9(self):
        self.stop(signal.SIGKILL)

    def restart(self, env=None):
        self.stop()
        return self.start(env)

    def mcctl(self, *args, input=None, check=None, env=None, timeout=60):
        e = dict(os.environ, MCD_SOCKET=self.socket, **(env or {}))
        r = subprocess.run([sys.executable, "-m", "mcctl", *args], cwd=REPO, env=e,
                           input=input, capture_output=True, text=True, timeout=timeout)
        if check is not None:
            assert r.returncode == check, f"mcctl {' '.join(args)} -> {r.returncode}\n{r.stderr}"
        return r

    def state(self, ref) -> dict:
        return self.client.get(f"/v1/containers/{ref}")

    def cleanup(self):
        if self.proc is None:
            try:
                self.start()
            except AssertionError:
                pass
        if self.proc is not None:
            try:
                for c in self.client.get("/v1/containers", all=True):
                    try:
                        self.client.delete(f"/v1/containers/{c['id']}", force=True)
                    except MCError:
                        pass
            except MCError:
                pass
        self.stop()
        leftovers = {}
        # Processes: the daemon and its monitors all carry the temp root on their command line.
        stray = [p for p in procs_mentioning(self.root) if p != os.getpid()]
        if stray:
            leftovers["processes"] = stray
            for p in stray:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for d in cgroup_dirs(self.tag):
            pids = procs_under(d)
            if pids:
                leftovers.setdefault("cgroup_procs", []).extend(pids)
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            subdirs = [s for s in os.listdir(d) if os.path.isdir(os.path.join(d, s))]
            if subdirs:
                leftovers.setdefault("cgroups", []).extend(os.path.join(d, s) for s in subdirs)
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if self.base in line]
        if mounts:
            leftovers["mounts"] = mounts
        # Tidy up whatever is left so the next test starts clean, then fail if anything was.
        for d in cgroup_dirs(self.tag):
            for dirpath, dirs, _files in sorted(os.walk(d, topdown=False), key=lambda t: -len(t[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    time.sleep(0.1)
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", m], check=False)
        return leftovers


@pytest.fixture
def tmpbase():
    d = tempfile.mkdtemp(prefix="mcd-it-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemon(tmpbase):
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (real namespaces and cgroups)")
    d = Daemon(tmpbase).start()
    yield d
    leftovers = d.cleanup()
    assert not leftovers, f"left behind: {json.dumps(leftovers)}\n{d.log()}"


@pytest.fixture
def make_daemon(tmpbase):
    """For tests that need a daemon they start themselves (with a special environment)."""
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (real namespaces and cgroups)")
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
