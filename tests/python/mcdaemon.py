"""The one harness for a real mcd, shared by the integration and browser tiers.

``Daemon(base)`` runs ``python -m mcd`` as a child on a socket, root and private cgroup
parent ``mctest-<random>`` under the temp dir ``base``; ``Daemon(base, web=True)`` also
serves the dashboard on a free loopback port. ``cleanup()`` removes every container,
stops the daemon and then its supervisor BY PID and returns what was left behind (it
must be nothing): an mcd, monitor or supervisor process (all carry the unique temp root
on their command line), a process in the private cgroup parent, a cgroup below it (the
parent itself is then removed), a mount under the temp dir, a listener on the dashboard
port. Whatever it finds it also
tidies, so the next test starts clean.
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
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from mcctl.client import Client  # noqa: E402
from mcwire.errors import MCError  # noqa: E402
from mctestlib import cgroup_dirs, procs_under, wait_for  # noqa: E402


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


def _kill(pids) -> None:
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _ended(pid: int) -> bool:
    """Gone, or a zombie (not our child: init reaps it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X")


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
    def __init__(self, base: str, *, web: bool = False):
        self.base = base
        self.port = free_port() if web else None
        self.created: set[str] = set()
        self.tag = "mctest-" + secrets.token_hex(4)
        self.root = os.path.join(base, "root-" + self.tag)
        self.socket = os.path.join(base, "mcd.sock")
        self.proc: subprocess.Popen | None = None
        self.client = Client(self.socket)
        self.log_path = os.path.join(base, "mcd.log")

    def argv(self):
        # --default-network none: this daemon runs in the machine's own network namespace,
        # whose links and firewall tests must never change. Network tests run their own
        # daemon inside a namespace they made (integration/test_network.py), default on.
        return [sys.executable, "-m", "mcd", "--socket", self.socket, "--root", self.root,
                "--cgroup-parent", self.tag, "--log-level", "debug",
                "--web-listen", f"127.0.0.1:{self.port}" if self.port else "off",
                "--config", os.path.join(self.base, "none.toml"), "--default-network", "none"]

    def start(self, env=None, wait=True):
        with open(os.path.join(self.base, "none.toml"), "w") as f:
            f.write("")
        if env is None:
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            env.pop("NOTIFY_SOCKET", None)      # not the test runner's service manager's
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), cwd=REPO, stdout=log, stderr=log,
                                     env=env, start_new_session=True)
        log.close()
        if wait:
            wait_for(self.answers, 60, "the daemon to answer")
            if self.port:
                wait_for(self._web_listens, 30, "the dashboard to listen")
        return self

    def _web_listens(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    @property
    def url(self) -> str:
        """The dashboard's origin (web=True)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        with open(os.path.join(self.root, "dashboard.token")) as f:
            return f.read().strip()

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

    # The one supervisor (mcd.supervisor, the default) outlives the daemon by design (as it
    # outlives `systemctl restart mcd`), so stopping the daemon does not stop it: whoever
    # started the daemon stops it, by its pid, when done with the daemon's root.

    @property
    def supervisor_socket(self) -> str:
        return os.path.join(self.root, "run", "supervisor.sock")   # ROOT/run: --root's run dir

    def supervisor_pid(self) -> int | None:
        from mcd.supervisor.client import SupervisorClient, SupervisorError
        try:
            with SupervisorClient(self.supervisor_socket, timeout=10) as c:
                return c.call("ping")[0]["pid"]
        except (OSError, SupervisorError, ValueError):
            return None

    def stop_supervisor(self) -> None:
        """SIGTERM the supervisor this daemon started (found by its socket; its command line
        names this daemon's root) and wait until it is gone. Containers it still holds keep
        running: remove them first."""
        pid = self.supervisor_pid()
        if pid is None or pid not in procs_mentioning(self.root):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        wait_for(lambda: _ended(pid), 30, f"the supervisor (pid {pid}) to stop")

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

    def status_of(self, ref: str) -> str:
        return self.api("GET", f"/v1/containers/{ref}")[1]["status"]

    def api(self, method: str, path: str, body=None, timeout: float = 60):
        """One raw request on the Unix socket: (status, parsed body or text)."""
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

    def api_run(self, name: str, args: list[str], *, labels=None, memory=None,
                start=True) -> dict:
        """Create (and start) a container through the API: {"id", "name"}."""
        spec = {"name": name, "process": {"args": args}, "root": {"template": "minimal"},
                "labels": labels or {}}
        if memory:
            spec["linux"] = {"resources": {"memory": memory}}
        status, body = self.api("POST", "/v1/containers", {"spec": spec, "start": start})
        if status != 201:
            raise AssertionError(f"create {name}: {status} {body}\n{self.log()}")
        self.created.add(body["id"])
        return body

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
        self.stop_supervisor()
        leftovers = {}
        # Processes: the daemon, its monitors and its supervisor all carry the temp root on
        # their command line.
        stray = [p for p in procs_mentioning(self.root) if p != os.getpid()]
        if stray:
            leftovers["processes"] = stray
            _kill(stray)
        for d in cgroup_dirs(self.tag):
            pids = procs_under(d)
            if pids:
                leftovers.setdefault("cgroup_procs", []).extend(pids)
                _kill(pids)     # ours: they are in our private parent
            subdirs = [s for s in os.listdir(d) if os.path.isdir(os.path.join(d, s))]
            if subdirs:
                leftovers.setdefault("cgroups", []).extend(os.path.join(d, s) for s in subdirs)
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if self.base in line]
        if mounts:
            leftovers["mounts"] = mounts
        if self.port and self._web_listens():
            leftovers["listener"] = f"127.0.0.1:{self.port}"
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
        left = cgroup_dirs(self.tag)
        if left:
            leftovers["cgroup_parents"] = left
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", m], check=False)
        return leftovers
