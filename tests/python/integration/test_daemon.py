"""The daemon as a server: live restore after kill -9, concurrency, bad input, peer
credentials, systemd readiness, one daemon per root and socket."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import threading

import pytest

from conftest import REPO, raw_request, spec, wait_for
from mcctl.client import Client
from mcwire.errors import MCError


def test_kill9_then_new_daemon_readopts_and_reports_real_exit_code(daemon):
    c = daemon.client
    c.post("/v1/containers", {"spec": spec("sleep", "1000", name="keeper"), "start": True})
    c.post("/v1/containers", {"spec": spec("sh", "-c", "read x < /dev/null; sleep 1; exit 42",
                                           name="quitter"), "start": True})
    keeper = daemon.state("keeper")
    quitter_dir = daemon.state("quitter")["dir"]
    daemon.kill9()
    assert os.path.exists(daemon.socket)          # stale socket left by the crash
    os.kill(keeper["pid"], 0)                     # still running without a daemon
    wait_for(lambda: os.path.exists(os.path.join(quitter_dir, "exit.json")),
             what="quitter to exit while the daemon is away")
    daemon.start()
    k = daemon.state("keeper")
    assert k["status"] == "running" and k["pid"] == keeper["pid"]
    q = daemon.state("quitter")
    assert q["status"] == "stopped" and q["exit_code"] == 42
    c.post("/v1/containers/keeper/stop", t=1)
    k = daemon.state("keeper")
    assert k["status"] == "stopped" and k["exit_code"] == 137
    assert not os.path.exists(f"/proc/{keeper['pid']}")


def _gone_or_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_rm_container_that_exits_while_the_daemon_is_away_is_removed_at_start(daemon):
    # --rm state is written without fsync; whatever a crash leaves, startup finishes the removal.
    from conftest import cgroup_dirs
    c = daemon.client
    c.post("/v1/containers", {"spec": spec("sleep", "1000", name="gone"), "start": True, "rm": True})
    c.post("/v1/containers", {"spec": spec("true", name="wreck"), "rm": True})
    c.post("/v1/containers", {"spec": spec("true", name="fresh"), "rm": True})
    st = daemon.state("gone")
    assert st["auto_remove"] and st["status"] == "running"
    wreck = daemon.state("wreck")["dir"]
    daemon.kill9()
    os.kill(st["pid"], signal.SIGKILL)            # PID 1 of the container this test started
    wait_for(lambda: os.path.exists(os.path.join(st["dir"], "exit.json")),
             what="the --rm container to exit while the daemon is away")
    mon = st["state"]["monitor_pid"]
    wait_for(lambda: _gone_or_zombie(mon), what="its monitor to end")
    with open(os.path.join(wreck, "state.json"), "w") as f:
        f.write("")                               # what a host crash may leave of unsynced state
    daemon.start()
    names = {x["name"]: x for x in c.get("/v1/containers", all=True)}
    assert set(names) == {"fresh"}                # created, never started: still to be run
    assert not os.path.exists(st["dir"]) and not os.path.exists(wreck)
    assert not [d for top in cgroup_dirs(daemon.tag) for d in os.listdir(top)
                if d == st["id"]]


def test_readopted_container_exit_is_noticed(daemon):
    c = daemon.client
    c.post("/v1/containers", {"spec": spec("sleep", "1000", name="later"), "start": True})
    daemon.stop()          # SIGTERM: containers keep running
    daemon.start()
    assert daemon.state("later")["status"] == "running"
    c.post("/v1/containers/later/kill", signal="KILL")
    wait_for(lambda: daemon.state("later")["status"] == "stopped", what="exit of a re-adopted one")
    assert daemon.state("later")["exit_code"] == 137


def test_corrupt_state_marks_one_container_broken(daemon):
    c = daemon.client
    good = c.post("/v1/containers", {"spec": spec("true", name="good")})
    bad = c.post("/v1/containers", {"spec": spec("true", name="bad")})
    daemon.stop()
    with open(os.path.join(daemon.root, "containers", bad["id"], "state.json"), "w") as f:
        f.write("{not json")
    # A create that died half-way: a temp dir that never got renamed into place.
    os.mkdir(os.path.join(daemon.root, "containers", ".deadbeef.new"))
    daemon.start()
    items = {x["id"]: x for x in c.get("/v1/containers", all=True)}
    assert items[good["id"]]["status"] == "created"
    assert items[bad["id"]]["status"] == "broken"
    assert "not valid JSON" in daemon.state(bad["id"])["state"]["error"]
    assert not os.path.exists(os.path.join(daemon.root, "containers", ".deadbeef.new"))
    with pytest.raises(MCError) as e:
        c.post(f"/v1/containers/{bad['id']}/start")
    assert e.value.code == "CONFLICT" and "broken" in e.value.message
    c.delete(f"/v1/containers/{bad['id']}")


def test_50_parallel_creates_of_one_name_give_exactly_one(daemon):
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def create():
        cl = Client(daemon.socket)
        barrier.wait()
        try:
            r = cl.post("/v1/containers", {"spec": spec("true", name="solo")})
            out = ("ok", r["id"])
        except MCError as err:
            out = (err.code, None)
        with lock:
            results.append(out)

    threads = [threading.Thread(target=create) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    oks = [r for r in results if r[0] == "ok"]
    assert len(oks) == 1, results
    assert sorted({r[0] for r in results}) == ["CONFLICT", "ok"]
    listed = [x for x in daemon.client.get("/v1/containers", all=True) if x["name"] == "solo"]
    assert len(listed) == 1 and listed[0]["id"] == oks[0][1]
    assert len(os.listdir(os.path.join(daemon.root, "containers"))) == 1


def test_200_concurrent_requests_all_answered(daemon):
    answers = []
    lock = threading.Lock()
    barrier = threading.Barrier(200)

    def ask(i):
        cl = Client(daemon.socket)
        barrier.wait()
        try:
            path = "/v1/containers" if i % 2 else "/v1/info"
            r = cl.get(path)
            ok = isinstance(r, (list, dict))
        except MCError as err:
            ok = str(err)
        with lock:
            answers.append(ok)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers.count(True) == 200, [a for a in answers if a is not True][:5]


def _post(daemon, body: bytes, path="/v1/containers") -> tuple[int, dict]:
    req = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    out = raw_request(daemon.socket, req)
    head, _, payload = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


@pytest.mark.parametrize("body,needle", [
    (b"{not json", "not valid JSON"),
    (b'{"spec": {"process": {"args": "sh"}}}', "expected list"),
    (b'{"spec": {"process": {"args": ["sh"]}}, "start": "yes"}', "expected a boolean"),
    (b'{"spec": {"process": {"args": ["sh"]}, "colour": "red"}}', "unknown field(s) colour"),
    (b'{"spec": {"process": {"args": ["sh"]}}, "extra": 1}', "unknown field(s) extra"),
    (b'{"spec": {"process": {"args": ["sh"]}, "linux": {"resources": {"memory": true}}}}',
     "expected an integer"),
    (b'[1, 2]', "expected a JSON object"),
])
def test_bad_bodies_refused_and_nothing_created(daemon, body, needle):
    status, payload = _post(daemon, body)
    assert status == 400, payload
    assert payload["error"]["code"] == "INVALID_ARGUMENT"
    assert needle in payload["error"]["message"]
    assert daemon.client.get("/v1/containers", all=True) == []


def test_100mb_body_is_refused_with_413_and_daemon_keeps_serving(daemon):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(daemon.socket)
    size = 100 * 1024 * 1024
    s.sendall(f"POST /v1/containers HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(100):
            s.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass      # the daemon answered and closed without reading 100 MB: that is the point
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except ConnectionResetError:
        pass
    s.close()
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert b"PAYLOAD_TOO_LARGE" in data
    assert daemon.client.get("/v1/containers", all=True) == []


def test_client_hanging_up_mid_request_leaves_nothing(daemon):
    body = json.dumps({"spec": spec("true", name="halfway"), "start": True}).encode()
    head = (f"POST /v1/containers HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    raw_request(daemon.socket, head + body[: len(body) // 2], read=False)
    raw_request(daemon.socket, b"POST /v1/contai", read=False)     # mid request line
    assert daemon.client.get("/v1/containers", all=True) == []
    assert daemon.client.get("/v1/version")["api_version"] == "v1"


def test_read_deadline_answers_408(daemon):
    # Headers never finish: the daemon's deadline (10 s) ends it with 408 and keeps serving.
    out = raw_request(daemon.socket, b"GET /v1/version HTTP/1.1\r\nHost: x\r\n", timeout=60)
    assert out.startswith(b"HTTP/1.1 408")
    assert daemon.client.get("/v1/version")


def test_unknown_route_and_method(daemon):
    with pytest.raises(MCError) as e:
        daemon.client.get("/v1/nope")
    assert e.value.http_status == 404
    with pytest.raises(MCError) as e:
        daemon.client.call("PUT", "/v1/containers")
    assert e.value.http_status == 405


def test_socket_mode_and_unprivileged_user_refused(daemon):
    st = os.stat(daemon.socket)
    assert stat.S_ISSOCK(st.st_mode)
    try:
        import grp
        grp.getgrnam("mcd")
        assert stat.S_IMODE(st.st_mode) == 0o660
    except KeyError:
        assert stat.S_IMODE(st.st_mode) == 0o600
    nobody = pwd.getpwnam("nobody")
    probe = (
        "import os, socket, sys\n"
        f"os.setgroups([]); os.setgid({nobody.pw_gid}); os.setuid({nobody.pw_uid})\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({daemon.socket!r})\n"
        "except PermissionError:\n"
        "    print('EACCES'); sys.exit(0)\n"
        "try:\n"
        "    s.sendall(b'GET /v1/containers HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n"
        "except BrokenPipeError:\n"
        "    pass  # the daemon answered 403 at connect and closed; the answer is still queued\n"
        "print(s.recv(4096).decode().split('\\r\\n')[0])\n")
    # The file mode keeps nobody out...
    os.chmod(daemon.base, 0o755)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "EACCES", r.stderr
    # ...and with the mode opened up, SO_PEERCRED still does.
    os.chmod(daemon.socket, 0o666)
    try:
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
        assert r.stdout.strip() == "HTTP/1.1 403 Forbidden", r.stderr
    finally:
        os.chmod(daemon.socket, 0o600)
    assert daemon.client.get("/v1/version")


def test_member_of_group_mcd_is_accepted(make_daemon):
    import grp
    made = False
    try:
        gid = grp.getgrnam("mcd").gr_gid
    except KeyError:
        # As the packages' sysusers.d would; removed again below.
        subprocess.run(["groupadd", "--system", "mcd"], check=True)
        made = True
        gid = grp.getgrnam("mcd").gr_gid
    try:
        _check_group_member(make_daemon, gid)
    finally:
        if made:
            subprocess.run(["groupdel", "mcd"], check=False)


def _check_group_member(make_daemon, gid):
    d = make_daemon().start()
    assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o660 and os.stat(d.socket).st_gid == gid
    os.chmod(d.base, 0o755)
    nobody = pwd.getpwnam("nobody")
    probe = (
        "import os, sys\n"
        f"os.setgroups([{gid}]); os.setgid({nobody.pw_gid}); os.setuid({nobody.pw_uid})\n"
        f"sys.path.insert(0, {REPO!r})\n"
        "from mcctl.client import Client\n"
        f"print(Client({d.socket!r}).get('/v1/version')['api_version'])\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "v1", r.stderr


def test_second_daemon_on_same_root_or_socket_refused(daemon, tmpbase):
    # Same root, other socket: the lock under ROOT refuses it.
    r = subprocess.run([sys.executable, "-m", "mcd", "--socket", os.path.join(tmpbase, "other.sock"),
                        "--root", daemon.root, "--cgroup-parent", daemon.tag, "--web-listen", "off",
                        "--config", os.path.join(tmpbase, "none.toml")],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "already uses" in r.stderr
    # Same socket, other root: the live socket is not stolen.
    r = subprocess.run([sys.executable, "-m", "mcd", "--socket", daemon.socket,
                        "--root", os.path.join(tmpbase, "root2"), "--cgroup-parent", daemon.tag,
                        "--web-listen", "off", "--config", os.path.join(tmpbase, "none.toml")],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "another daemon is listening on it" in r.stderr
    assert daemon.client.get("/v1/version")


def test_notify_ready_only_after_api_answers_and_env_never_leaks(make_daemon, tmpbase):
    d = make_daemon()
    path = os.path.join(tmpbase, "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    ns.settimeout(60)
    env = dict(os.environ, NOTIFY_SOCKET=path, LISTEN_FDS="0", LISTEN_PID="1")
    d.start(env=env, wait=False)
    messages = []
    while True:
        msg = ns.recv(4096).decode()
        messages.append(msg)
        if "READY=1" in msg:
            # At the moment READY=1 arrives, the API must already answer.
            assert d.client.get("/v1/version")["api_version"] == "v1"
            break
    assert "STATUS=0 running" in "\n".join(messages)
    d.client.post("/v1/containers", {"spec": spec("sleep", "1000", name="envcheck"), "start": True})
    st = d.state("envcheck")
    # The container's PID 1 gets only its spec's environment. (The monitor is a fork that
    # never execs: its /proc/PID/environ still shows the daemon's exec-time block, but
    # os.environ, which is all it could pass on, was scrubbed before it was forked.)
    with open(f"/proc/{st['pid']}/environ", "rb") as f:
        environ = f.read()
    assert b"NOTIFY_SOCKET" not in environ and b"LISTEN_" not in environ
    d.client.post("/v1/containers", {"spec": spec("env", name="envdump"), "start": True})
    wait_for(lambda: d.state("envdump")["status"] == "stopped", what="env to finish")
    out = d.mcctl("logs", "envdump", check=0).stdout
    assert "PATH=" in out and "NOTIFY_SOCKET" not in out and "LISTEN_" not in out
    got = ns.recv(4096).decode()       # a STATUS update for the new running container
    assert "STATUS=" in got
    d.client.delete("/v1/containers/envcheck", force=True)
    d.stop()
    tail = []
    ns.settimeout(5)
    try:
        while True:
            tail.append(ns.recv(4096).decode())
    except socket.timeout:
        pass
    assert any("STOPPING=1" in m for m in tail)
    ns.close()


def test_removing_a_broken_running_container_kills_what_it_left(daemon):
    c = daemon.client
    r = c.post("/v1/containers", {"spec": spec("sleep", "1000", name="wreck"), "start": True})
    pid = daemon.state("wreck")["pid"]
    daemon.stop()
    with open(os.path.join(daemon.root, "containers", r["id"], "state.json"), "w") as f:
        f.write("\0\0garbage")
    daemon.start()
    assert daemon.state("wreck")["status"] == "broken"
    os.kill(pid, 0)      # still running: the daemon could not re-adopt it, but knows its cgroup
    c.delete("/v1/containers/wreck")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="the orphaned PID 1 to be killed")


def test_idle_daemon_never_wakes_up(daemon):
    """No timers: with containers running and no client, no daemon thread is scheduled."""
    import time
    daemon.client.post("/v1/containers", {"spec": spec("sleep", "1000", name="idle1"), "start": True})
    daemon.client.post("/v1/containers", {"spec": spec("sleep", "1000", name="idle2"), "start": True})
    pid = daemon.proc.pid

    def switches():
        out = {}
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/status") as f:
                out[t] = sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        return out

    time.sleep(0.5)                 # let the threads that served the requests finish
    before = switches()
    time.sleep(3)
    after = switches()
    woke = {t: after[t] - before[t] for t in before if t in after and after[t] != before[t]}
    assert not woke, f"daemon threads woke up while idle: {woke}"


def test_watchdog_pings_only_when_asked_and_checks_the_api(make_daemon, tmpbase):
    d = make_daemon()
    path = os.path.join(tmpbase, "wd.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    ns.settimeout(60)
    d.start(env=dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="300000"), wait=False)
    got = []
    while got.count("WATCHDOG=1") < 2:
        got.append(ns.recv(4096).decode())
    assert any(m.startswith("READY=1") for m in got)
    d.stop()
    ns.close()
