"""The one supervisor (mcd.supervisor): a real process, real children, real pipes and logs.

The "containers" here are plain processes the supervisor forks (``spawn``): what is
tested is the supervisor's own job (subreaper, pipes, logs, exit records, surviving its
death and its upgrade, fairness), which is the same for a container's PID 1. The test
process plays mcd's part of the protocol, including keeping the pipes' read ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from mcd.runtime import logs
from mcd.supervisor.client import SupervisorClient, SupervisorError

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mctestlib import wait_for  # noqa: E402



def _start(sock: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "mcd.supervisor", "--socket", sock],
                         stdin=subprocess.DEVNULL)
    wait_for(lambda: os.path.exists(sock) and _ping(sock), what="supervisor socket")
    return p


def _ping(sock: str) -> bool:
    try:
        with SupervisorClient(sock, timeout=2) as c:
            return c.call("ping")[0]["ok"]
    except OSError:
        return False


def _exit_of(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _lines(log: str) -> list[str]:
    return [e["log"] for e in logs.read(log) if e["stream"] == "stdout"]


def _status(field: str) -> str:
    with open("/proc/self/status") as f:
        return next(line.split()[1] for line in f if line.startswith(field + ":"))


def _alive(pid: int) -> bool:
    """Running (not a zombie), whoever its parent is now."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def _reap(pid: int) -> None:
    """A process the supervisor left behind is ours now (the linux tier's pytest is a
    subreaper): wait for it so none is left."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="mctest-sup-")
    procs: list[subprocess.Popen] = []
    pids: list[int] = []
    yield d, procs, pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(pid)
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    subprocess.run(["rm", "-rf", d], check=False)


def _spawn(client, d, cid, script, keep=False):
    ans, fds = client.call("spawn", id=cid, argv=["/bin/sh", "-c", script],
                           log=os.path.join(d, cid + ".log"), exit=os.path.join(d, cid + ".exit"),
                           keep=keep)
    return ans["pid"], fds


def test_spawn_logs_and_exit_records_as_the_monitor_writes_them(work):
    d, procs, pids = work
    sock = os.path.join(d, "s.sock")
    sup = _start(sock)
    procs.append(sup)
    # -999 needs CAP_SYS_RESOURCE (some sandboxes drop it from root): then the score
    # it inherited from us, never a higher one
    has_sys_resource = bool(int(_status("CapEff"), 16) >> 24 & 1)
    expected = "-999" if has_sys_resource else open("/proc/self/oom_score_adj").read().strip()
    assert open(f"/proc/{sup.pid}/oom_score_adj").read().strip() == expected
    with SupervisorClient(sock) as c:
        a, _ = _spawn(c, d, "a", "echo out; echo err >&2; printf partial; exit 3")
        b, _ = _spawn(c, d, "b", "kill -TERM $$")
        pids += [a, b]
        wait_for(lambda: _exit_of(os.path.join(d, "a.exit")) is not None, what="a's exit")
        wait_for(lambda: _exit_of(os.path.join(d, "b.exit")) is not None, what="b's exit")
        assert c.call("ping")[0]["count"] == 0
        with pytest.raises(SupervisorError, match="unknown op"):
            c.call("frobnicate")
    ea, eb = _exit_of(os.path.join(d, "a.exit")), _exit_of(os.path.join(d, "b.exit"))
    assert (ea["exit_code"], ea["signal"]) == (3, None)
    assert (eb["exit_code"], eb["signal"]) == (128 + signal.SIGTERM, signal.SIGTERM)
    entries = logs.read(os.path.join(d, "a.log"))
    assert [(e["stream"], e["log"]) for e in entries if e["stream"] == "stdout"] == \
        [("stdout", "out\n"), ("stdout", "partial")]
    assert [e["log"] for e in entries if e["stream"] == "stderr"] == ["err\n"]
    assert all(e["time"].endswith("Z") for e in entries)


def test_child_does_not_inherit_the_protective_oom_score(work):
    d, procs, pids = work
    sock = os.path.join(d, "s.sock")
    procs.append(_start(sock))
    with SupervisorClient(sock) as c:
        pid, _ = _spawn(c, d, "o", "cat /proc/self/oom_score_adj")
        pids.append(pid)
    wait_for(lambda: _exit_of(os.path.join(d, "o.exit")) is not None, what="exit")
    assert _lines(os.path.join(d, "o.log")) == ["0\n"]


WRITER = "i=0; while [ $i -lt {n} ]; do echo line-$i; i=$((i+1)); sleep 0.01; done; exit {code}"


def _complete(log: str, n: int) -> bool:
    return _lines(log) == [f"line-{i}\n" for i in range(n)]


def test_kill_9_of_the_supervisor_loses_no_container_and_no_output(work):
    d, procs, pids = work
    sock = os.path.join(d, "s.sock")
    first = _start(sock)
    procs.append(first)
    n, count = 300, 8
    kept = {}
    with SupervisorClient(sock) as c:
        for k in range(count):
            pid, fds = _spawn(c, d, f"w{k}", WRITER.format(n=n, code=k), keep=True)
            pids.append(pid)
            kept[f"w{k}"] = (pid, fds)
    time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait()
    # No reader but our kept copies: the writers fill the pipes and wait, none dies.
    time.sleep(1.0)
    for cid, (pid, _) in kept.items():
        assert _alive(pid), f"{cid} ended while no supervisor ran"
    second = _start(sock)
    procs.append(second)
    with SupervisorClient(sock) as c:
        for cid, (pid, fds) in kept.items():
            ans, _ = c.call("adopt", fds=fds, id=cid, pid=pid, start_time=None,
                            log=os.path.join(d, cid + ".log"),
                            exit=os.path.join(d, cid + ".exit"), streams=["stdout", "stderr"])
            assert ans["child"] is False
        assert len(c.call("list")[0]["containers"]) == count
    for cid, (pid, fds) in kept.items():
        wait_for(lambda cid=cid: _exit_of(os.path.join(d, cid + ".exit")) is not None,
                 timeout=60, what=f"{cid}'s exit record")
        for fd in fds:
            os.close(fd)
        assert _complete(os.path.join(d, cid + ".log"), n), f"{cid} lost output"
        rec = _exit_of(os.path.join(d, cid + ".exit"))
        # The old supervisor was its parent; nobody else can read its status.
        assert rec["exit_code"] is None and rec["status_lost"] is True
        _reap(pid)


def test_upgrade_by_reexec_keeps_children_output_and_exit_codes(work):
    d, procs, pids = work
    sock = os.path.join(d, "s.sock")
    sup = _start(sock)
    procs.append(sup)
    n, count = 200, 6
    with SupervisorClient(sock) as c:
        for k in range(count):
            pids.append(_spawn(c, d, f"u{k}", WRITER.format(n=n, code=k + 1))[0])
        # an unterminated line that is in the log writer's memory at the upgrade
        pids.append(_spawn(c, d, "p", "printf half; sleep 1; echo -half; exit 9")[0])
        time.sleep(0.4)
        assert c.call("upgrade")[0]["pid"] == sup.pid
    wait_for(lambda: _ping(sock), what="the re-executed supervisor")
    with SupervisorClient(sock) as c:
        ans = c.call("ping")[0]
        assert ans["pid"] == sup.pid and sup.poll() is None
    for k in range(count):
        wait_for(lambda k=k: _exit_of(os.path.join(d, f"u{k}.exit")) is not None, timeout=60,
                 what=f"u{k}'s exit")
        assert _exit_of(os.path.join(d, f"u{k}.exit"))["exit_code"] == k + 1
        assert _complete(os.path.join(d, f"u{k}.log"), n)
    wait_for(lambda: _exit_of(os.path.join(d, "p.exit")) is not None, what="p's exit")
    assert _exit_of(os.path.join(d, "p.exit"))["exit_code"] == 9
    assert "".join(_lines(os.path.join(d, "p.log"))) == "half-half\n"


def test_a_flood_does_not_hold_back_a_trickle(work):
    d, procs, pids = work
    sock = os.path.join(d, "s.sock")
    procs.append(_start(sock))
    with SupervisorClient(sock) as c:
        flood = [_spawn(c, d, f"f{k}", "exec yes flooding-the-log")[0] for k in range(2)]
        pids += flood
        trickle = "i=0; while [ $i -lt 15 ]; do date +%s%N; sleep 0.1; i=$((i+1)); done; exit 4"
        pids.append(_spawn(c, d, "t", trickle)[0])
        wait_for(lambda: _exit_of(os.path.join(d, "t.exit")) is not None, timeout=60,
                 what="the trickle's exit while two floods run")
    assert _exit_of(os.path.join(d, "t.exit"))["exit_code"] == 4
    lags = []
    for e in logs.read(os.path.join(d, "t.log")):
        written = int(e["log"])
        secs, _, frac = e["time"].rstrip("Z").partition(".")
        read = int(time.mktime(time.strptime(secs, "%Y-%m-%dT%H:%M:%S")) - time.timezone) \
            * 10 ** 9 + int(frac)
        lags.append((read - written) / 1e9)
    assert len(lags) == 15
    # A bound, not a speed: with two floods, each line is logged within one loop round
    # per flood (bench/ measures the actual lag).
    assert max(lags) < 2.0, lags
    for pid in flood:
        os.kill(pid, signal.SIGKILL)
    for k in range(2):
        wait_for(lambda k=k: _exit_of(os.path.join(d, f"f{k}.exit")) is not None, what="flood exit")


def test_adopt_refuses_a_pid_that_is_not_the_named_process(work):
    d, procs, pids = work
    sock = os.path.join(d, "s.sock")
    procs.append(_start(sock))
    r, w = os.pipe()
    try:
        with SupervisorClient(sock) as c:
            with pytest.raises(SupervisorError, match="not the process"):
                c.call("adopt", fds=[r], id="x", pid=os.getpid(), start_time=1, log=None,
                       exit=None, streams=["stdout"])
            assert c.call("ping")[0]["count"] == 0
    finally:
        os.close(r)
        os.close(w)


def test_a_bad_start_job_is_answered_on_its_result_socket_and_the_supervisor_stays(work):
    import socket
    d, procs, pids = work
    sock = os.path.join(d, "s.sock")
    procs.append(_start(sock))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        with SupervisorClient(sock) as c:
            socket.send_fds(c.sock, [b"\x80not a pickle"], [theirs.fileno()])
            theirs.close()
            ours.settimeout(10)
            msg = ours.recv(65536)
            assert msg[:1] == b"E"          # the launcher's failure message, not a bare EOF
            assert c.call("ping")[0]["count"] == 0
    finally:
        ours.close()
