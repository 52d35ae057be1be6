"""mcd with its one supervisor (the default; ``--supervisor`` here all the same): one
process holds every container (issue 17).

Real daemon, real containers (the ``minimal`` template), real supervisor under the
daemon's run dir. The harness's cleanup stops the supervisor BY PID after the daemon,
before the usual leak check."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from conftest import Daemon, REPO, procs_mentioning, wait_for

sys.path.insert(0, REPO)
from mcd.supervisor.client import SupervisorClient  # noqa: E402

WRITER = "i=0; while [ $i -lt {n} ]; do echo line-$i; i=$((i+1)); sleep 0.01; done; exit {code}"


class SupervisedDaemon(Daemon):
    """The supervisor is the default; ``supervised = False`` runs the previous version's
    way (``--no-supervisor``: a monitor per container). The harness's cleanup stops the
    supervisor by pid after the daemon (it outlives the daemon by design)."""
    supervised = True

    def argv(self):
        return super().argv() + (["--supervisor"] if self.supervised else ["--no-supervisor"])

    @property
    def sup_socket(self) -> str:
        return self.supervisor_socket

    def sup_pid(self) -> int:
        with SupervisorClient(self.sup_socket, timeout=10) as c:
            return c.call("ping")[0]["pid"]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X")


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


@pytest.fixture
def sd(tmpbase):
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (real namespaces and cgroups)")
    d = SupervisedDaemon(tmpbase).start()
    yield d
    leftovers = d.cleanup()
    assert not leftovers, f"left behind: {leftovers}\n{d.log()}"


def _lines(d, name) -> list[str]:
    return d.mcctl("logs", name, check=0).stdout.splitlines()


def _complete(d, name, n) -> bool:
    return _lines(d, name) == [f"line-{i}" for i in range(n)]


def _status(d, name) -> dict:
    return d.state(name)


def test_containers_run_under_one_supervisor_with_no_monitor_each(sd):
    r = sd.mcctl("run", "--rm", "minimal", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    for k in range(3):
        sd.mcctl("run", "-d", "--name", f"c{k}", "minimal", "sleep", "1000", check=0)
    sup = sd.sup_pid()
    pids = [_status(sd, f"c{k}")["pid"] for k in range(3)]
    for pid in pids:    # PID 1 is the supervisor's child: no monitor in between
        with open(f"/proc/{pid}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) == sup
    monitors = [p for p in procs_mentioning(sd.root) if _comm(p) == "mcd-monitor"]
    assert monitors == []
    sd.mcctl("run", "-d", "--name", "x", "minimal", "sh", "-c", "echo bye; exit 7", check=0)
    wait_for(lambda: _status(sd, "x")["status"] == "stopped", 30, "x to exit")
    assert _status(sd, "x")["exit_code"] == 7 and _lines(sd, "x") == ["bye"]
    # a terminal container: the supervisor reads its pty master
    sd.mcctl("run", "-d", "-t", "--name", "tty", "minimal", "sh", "-c", "echo on-a-tty; exit 4",
             check=0)
    wait_for(lambda: _status(sd, "tty")["status"] == "stopped", 30, "tty to exit")
    assert _status(sd, "tty")["exit_code"] == 4
    assert [x.rstrip("\r") for x in _lines(sd, "tty")] == ["on-a-tty"]
    sd.mcctl("stop", "-t", "1", "c0", check=0)     # PID 1 ignores SIGTERM: SIGKILL after 1 s
    assert _status(sd, "c0")["exit_code"] == 128 + signal.SIGKILL


def test_the_supervisor_is_the_default(daemon):
    # The harness's plain daemon (no --supervisor flag, an empty config file).
    daemon.mcctl("run", "-d", "--name", "d", "minimal", "sleep", "1000", check=0)
    sup = daemon.supervisor_pid()
    assert sup is not None, daemon.log()
    with open(f"/proc/{daemon.state('d')['pid']}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == sup
    assert [p for p in procs_mentioning(daemon.root) if _comm(p) == "mcd-monitor"] == []


def test_mcd_restart_keeps_the_supervisor_and_every_exit_code(sd):
    sup = sd.sup_pid()
    sd.mcctl("run", "-d", "--name", "long", "minimal", "sh", "-c", WRITER.format(n=400, code=4),
             check=0)
    sd.mcctl("run", "-d", "--name", "short", "minimal", "sh", "-c", "sleep 1; exit 6", check=0)
    sd.stop()
    time.sleep(2)           # short ends while no daemon runs
    sd.start()
    assert sd.sup_pid() == sup
    wait_for(lambda: _status(sd, "short")["status"] == "stopped", 30, "short's exit")
    assert _status(sd, "short")["exit_code"] == 6
    assert _status(sd, "long")["status"] == "running"
    wait_for(lambda: _status(sd, "long")["status"] == "stopped", 60, "long's exit")
    assert _status(sd, "long")["exit_code"] == 4 and _complete(sd, "long", 400)


def test_kill_9_of_the_supervisor_no_container_dies_none_loses_output(sd):
    old = sd.sup_pid()
    n = 600
    for k in range(4):
        sd.mcctl("run", "-d", "--name", f"w{k}", "minimal", "sh", "-c", WRITER.format(n=n, code=k),
                 check=0)
    time.sleep(1)
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: _zombie(old), 10, "the supervisor to die")
    # mcd holds copies of the pipes: nothing dies of SIGPIPE; it starts a successor.
    wait_for(lambda: _new_supervisor(sd, old), 30, "a new supervisor")
    for k in range(4):
        wait_for(lambda k=k: _status(sd, f"w{k}")["status"] == "stopped", 60, f"w{k}'s exit")
        assert _complete(sd, f"w{k}", n), f"w{k} lost output"
        st = _status(sd, f"w{k}")
        # Its parent died: nobody can read its real status, and mcd says so.
        error = (st.get("state") or {}).get("error") or st.get("error") or ""
        assert st["exit_code"] == 255 and "exit status lost" in error, (st["exit_code"], error)
    # and the new supervisor starts containers as the old one did
    r = sd.mcctl("run", "--rm", "minimal", "sh", "-c", "echo again; exit 2")
    assert (r.returncode, r.stdout) == (2, "again\n")


def _new_supervisor(d, old) -> bool:
    try:
        return d.sup_pid() != old
    except OSError:
        return False


def test_supervisor_upgrade_by_reexec_keeps_containers_output_and_exit_codes(sd):
    sup = sd.sup_pid()
    n = 300
    for k in range(4):
        sd.mcctl("run", "-d", "--name", f"u{k}", "minimal", "sh", "-c",
                 WRITER.format(n=n, code=k + 1), check=0)
    time.sleep(0.5)
    with SupervisorClient(sd.sup_socket) as c:
        assert c.call("upgrade")[0]["pid"] == sup
    wait_for(lambda: _alive_sup(sd, sup), 30, "the re-executed supervisor")
    for k in range(4):
        wait_for(lambda k=k: _status(sd, f"u{k}")["status"] == "stopped", 60, f"u{k}'s exit")
        assert _status(sd, f"u{k}")["exit_code"] == k + 1
        assert _complete(sd, f"u{k}", n)
    assert sd.sup_pid() == sup


def _alive_sup(d, pid) -> bool:
    try:
        return d.sup_pid() == pid
    except OSError:
        return False


def test_monitors_of_the_previous_version_are_still_adopted(sd):
    sd.stop()
    sd.supervised = False       # the "previous version": a monitor per container
    sd.start()
    sd.mcctl("run", "-d", "--name", "old", "minimal", "sh", "-c", "sleep 2; exit 9", check=0)
    monitors = [p for p in procs_mentioning(sd.root) if _comm(p) == "mcd-monitor"]
    assert len(monitors) == 1
    sd.stop()
    sd.supervised = True
    sd.start()
    wait_for(lambda: _status(sd, "old")["status"] == "stopped", 30, "old's exit")
    assert _status(sd, "old")["exit_code"] == 9


def test_switching_the_supervisor_off_keeps_what_it_holds_truthful(sd):
    sup = sd.sup_pid()
    sd.mcctl("run", "-d", "--name", "held", "minimal", "sh", "-c", WRITER.format(n=200, code=5),
             check=0)
    sd.stop()
    sd.supervised = False
    sd.start()
    # new containers get a monitor; the held one still reports its real exit
    sd.mcctl("run", "-d", "--name", "mon", "minimal", "sleep", "1000", check=0)
    assert len([p for p in procs_mentioning(sd.root) if _comm(p) == "mcd-monitor"]) == 1
    wait_for(lambda: _status(sd, "held")["status"] == "stopped", 60, "held's exit")
    assert _status(sd, "held")["exit_code"] == 5 and _complete(sd, "held", 200)
    # holding nothing any more, it is stopped at the next daemon start with the switch off
    sd.stop()
    sd.start()
    wait_for(lambda: _zombie(sup), 30, "the idle supervisor to stop")
