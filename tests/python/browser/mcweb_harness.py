"""A real mcd on a temp socket, root, private cgroup parent and loopback port.

``RealDaemon.start()`` runs ``python -m mcd`` as a child; ``stop()`` removes every
container it made, stops the daemon by its pid, and PROVES nothing is left: no
daemon, no listener on the port, no process in the private cgroup parent, no
cgroup directory under it (the parent itself is removed here), no stray mount.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "tests", "python"))

from mctestlib import cgroup_dirs, procs_under, wait_for  # noqa: E402,F401 - wait_for is re-exported to tests
SCREENSHOTS = os.path.join(REPO, "test-artifacts", "screenshots")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RealDaemon:
    def __init__(self, tmp: str):
        self.tmp = tmp
        self.tag = "mctest-" + secrets.token_hex(4)
        self.socket = os.path.join(tmp, "mcd.sock")
        self.root = os.path.join(tmp, "root")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(tmp, "mcd.log")
        self.proc: subprocess.Popen | None = None
        self.created: set[str] = set()

    # ------------------------------------------------------------- lifecycle
    def start(self) -> "RealDaemon":
        env = dict(os.environ, PYTHONPATH=REPO, PYTHONUNBUFFERED="1")
        env.pop("NOTIFY_SOCKET", None)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mcd", "--socket", self.socket, "--root", self.root,
             "--cgroup-parent", self.tag, "--web-listen", f"127.0.0.1:{self.port}",
             "--log-level", "debug", "--default-network", "none"],   # the host's netns: no bridge
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        wait_for(lambda: self._ready() or self._died(), 60, "mcd to listen")
        if self.proc.poll() is not None:
            raise AssertionError(f"mcd exited with {self.proc.returncode}:\n{self.log()}")
        return self

    def _died(self):
        return self.proc.poll() is not None

    def _ready(self) -> bool:
        if not os.path.exists(self.socket):
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-6000:]
        except OSError:
            return ""

    @property
    def token(self) -> str:
        with open(os.path.join(self.root, "dashboard.token")) as f:
            return f.read().strip()

    def stop(self) -> None:
        """Remove our containers, stop mcd, and prove that nothing is left behind."""
        problems = []
        if self.proc and self.proc.poll() is None:
            for c in self.api("GET", "/v1/containers?all=1")[1] or []:
                status, body = self.api("DELETE", f"/v1/containers/{c['id']}?force=1")
                if status >= 300:
                    problems.append(f"destroy {c['name']}: {body}")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                problems.append("mcd did not stop on SIGTERM; killed")
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()
        # Proof: the daemon is gone, nothing listens on the port, nothing runs in our cgroups.
        if self.proc and self.proc.poll() is None:
            problems.append("mcd still running")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                problems.append(f"something still listens on 127.0.0.1:{self.port}")
        except OSError:
            pass
        for d in cgroup_dirs(self.tag):
            pids = procs_under(d)
            if pids:
                problems.append(f"processes left in {d}: {pids}")
                for pid in pids:      # ours: they are in our private parent
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            children = [c for c in os.listdir(d) if os.path.isdir(os.path.join(d, c))]
            if children:
                problems.append(f"cgroups left under {d}: {children}")
            for c in children:
                try:
                    os.rmdir(os.path.join(d, c))
                except OSError:
                    pass
            try:
                os.rmdir(d)
            except OSError as err:
                problems.append(f"rmdir {d}: {err.strerror}")
        leftover = cgroup_dirs(self.tag)
        if leftover:
            problems.append(f"cgroup parents left: {leftover}")
        with open("/proc/self/mountinfo") as f:
            mounts = [line for line in f if self.tmp in line]
        if mounts:
            problems.append(f"mounts left under {self.tmp}: {mounts}")
        if problems:
            raise AssertionError("teardown: " + "; ".join(problems) + "\n" + self.log())

    # ------------------------------------------------------------- the Unix socket API
    def api(self, method: str, path: str, body=None, timeout: float = 60):
        conn = UnixHTTPConnection(self.socket, timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw.strip() else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return resp.status, parsed

    def run(self, name: str, args: list[str], *, labels=None, memory=None, start=True) -> dict:
        spec = {"name": name, "process": {"args": args}, "root": {"template": "minimal"},
                "labels": labels or {}}
        if memory:
            spec["linux"] = {"resources": {"memory": memory}}
        status, body = self.api("POST", "/v1/containers", {"spec": spec, "start": start})
        if status != 201:
            raise AssertionError(f"create {name}: {status} {body}\n{self.log()}")
        self.created.add(body["id"])
        return body

    def status_of(self, ref: str) -> str:
        return self.api("GET", f"/v1/containers/{ref}")[1]["status"]


# ---------------------------------------------------------------- TCP side (the dashboard)

def web(daemon: RealDaemon, method: str, path: str, headers: dict | None = None,
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
