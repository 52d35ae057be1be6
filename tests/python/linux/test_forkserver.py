"""The fork server: containers started through it behave exactly like those the caller
forks itself, and it never outlives the process that spawned it."""

from __future__ import annotations

import os
import signal
import socket
import time

import psutil
import pytest

from mcd.runtime.forkserver import ForkServer
from mcd.runtime.interface import Stdio
from conftest import read_pty, wait_exit



class CountingServer:
    """The real server, with a count of the starts it accepted (to prove the path taken)."""

    def __init__(self, server: ForkServer):
        self.server = server
        self.accepted = 0

    def launch(self, plan, fds):
        ok = self.server.launch(plan, fds)
        self.accepted += ok
        return ok


@pytest.fixture
def server():
    fs = ForkServer.spawn()
    counting = CountingServer(fs)
    try:
        yield counting
    finally:
        fs.close()
    assert not psutil.pid_exists(fs.pid), "the fork server outlived close()"


@pytest.fixture
def forkserver(server):
    """The runtime of run_container/start_container (conftest) forks through it."""
    return server


def _is_zombie(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False    # reaped between listing and asking: not a zombie


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def test_output_exit_code_and_stdin_go_through_the_server(server, run_container):
    r, w = os.pipe()
    os.write(w, b"from stdin\n")
    os.close(w)
    try:
        res = run_container(["sh", "-c", "cat; echo out; echo err >&2; exit 3"], stdin=r)
    finally:
        os.close(r)
    assert server.accepted == 1
    assert (res.code, res.stdout, res.stderr) == (3, "from stdin\nout\n", "err\n")
    # The server forked the monitor itself and ignores SIGCHLD: the kernel reaped it,
    # no zombie stays under the server.
    assert res.launched.monitor_pid != server.server.pid
    assert _gone(res.launched.monitor_pid)
    assert not [c for c in psutil.Process(server.server.pid).children() if _is_zombie(c)]


def test_server_and_monitors_are_named_for_ps(server, start_container):
    _spec, _paths, launched = start_container(["sleep", "100"])
    with open(f"/proc/{server.server.pid}/comm") as f:
        assert f.read().strip() == "mcd-forkserver"
    with open(f"/proc/{launched.monitor_pid}/comm") as f:
        assert f.read().strip() == "mcd-monitor"
    with open(f"/proc/{launched.pid}/comm") as f:
        assert f.read().strip() == "sleep"     # PID 1 is named by its own exec


def test_a_setup_error_is_reported_by_step_through_the_server(server, run_container):
    from mcd import errors
    with pytest.raises(errors.SetupError) as exc:
        run_container(["/no/such/binary"])
    assert server.accepted == 1
    assert exc.value.exit_code == 127 and "No such file or directory" in str(exc.value)


def test_a_terminal_container_hands_its_pty_back(server, start_container):
    _spec, paths, launched = start_container(["sh", "-c", "stty size; exit 5"], terminal=True,
                                             console_size=[33, 120],
                                             stdio=Stdio(tty_to_caller=True))
    assert server.accepted == 1
    assert launched.tty_master is not None
    out = read_pty(launched.tty_master)    # reads to EOF and closes it
    assert b"33 120" in out, out    # stty ran on the pty, sized before exec
    assert wait_exit(paths)["exit_code"] == 5


def test_a_large_spec_goes_through_the_server_and_a_huge_one_falls_back(server, run_container):
    # 300 KiB of environment: more than a default SOCK_SEQPACKET message, within the API's
    # 1 MiB body limit.
    big = ["BIG%d=%s" % (i, "x" * 1000) for i in range(300)]
    res = run_container(["sh", "-c", 'echo ${#BIG299}'], env=big)
    assert (res.code, res.stdout) == (0, "1000\n") and server.accepted == 1
    # A plan over what the socket takes (its buffer made small here, as an unprivileged
    # daemon without SO_SNDBUFFORCE would have it): EMSGSIZE, forked here, server kept.
    server.server.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
    res = run_container(["sh", "-c", 'echo ${#BIG0}'], env=big)
    assert (res.code, res.stdout) == (0, "1000\n")
    assert server.accepted == 1 and server.server.alive
    res = run_container(["true"])
    assert res.code == 0 and server.accepted == 2


def test_a_failed_fork_in_the_server_reaches_the_caller_by_step(server, run_container,
                                                                 cgroup_manager):
    # The server in a pids cgroup of one (itself): its fork of the monitor fails with
    # EAGAIN, and the caller hears "fork monitor" and the errno, not a bare EOF.
    from mcd import errors
    from mcwire.spec import Resources
    cg = cgroup_manager.create("fs-pids", Resources(pids_limit=1))
    cg.join(server.server.pid)      # a process this test started
    with pytest.raises(errors.SetupError) as exc:
        run_container(["true"])
    assert "fork monitor" in str(exc.value) and "Resource temporarily unavailable" in str(exc.value)
    assert server.accepted == 1 and server.server.alive
    # Teardown: cgroup_manager (set up last, torn down first) kills what is in the cgroup,
    # the server included; the server fixture then reaps it and checks it is gone.


def test_a_failed_fork_without_server_is_reported_by_step(cgroup_manager, runtime_root,
                                                          minimal_rootfs):
    # The daemon's own path (no server): a stand-in daemon process in a pids cgroup of
    # one cannot fork the monitor; the error names the step and the errno.
    import subprocess
    import sys
    from mcwire.spec import Resources
    code = (
        "import os, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from conftest import make_spec\n"
        "from mcd.runtime import launcher\n"
        "from mcd.store import ContainerPaths\n"
        "from mcd import errors\n"
        "from mcd.runtime import security\n"
        "security.default_filter_bpf()\n"   # before the limit: finding libseccomp forks
        "spec = make_spec(['true'])\n"
        "paths = ContainerPaths(dir=os.path.join(sys.argv[2], 'containers', spec.name),"
        " lower=sys.argv[3])\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "try:\n"
        "    launcher.start(spec, paths, [])\n"
        "    print('started')\n"
        "except errors.SetupError as err:\n"
        "    print(err)\n")
    here = os.path.dirname(os.path.abspath(__file__))
    p = subprocess.Popen([sys.executable, "-c", code, here, runtime_root, minimal_rootfs],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(
                             os.path.dirname(here)))))
    try:
        assert p.stdout.readline() == "ready\n"
        cg = cgroup_manager.create("daemon-pids", Resources(pids_limit=1))
        cg.join(p.pid)      # a process this test started
        out, _ = p.communicate("go\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "fork monitor" in out and "Resource temporarily unavailable" in out, out


def _exec(server, launched, spec, args, stdin=None, **pkw):
    from mcd.runtime import exec as rexec
    from mcwire.spec import Process
    from conftest import read_all
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        h = rexec.run(launched.pid, Process(args=args, **pkw), spec, [],
                      Stdio(stdin=stdin, stdout=out_w, stderr=err_w), forkserver=server)
    finally:
        os.close(out_w)
        os.close(err_w)
    got = read_all({out_r: "out", err_r: "err"})
    return h, h.wait(), got["out"].decode(), got["err"].decode()


def test_exec_goes_through_the_server(server, start_container):
    spec, _paths, launched = start_container(["sleep", "100"])
    assert server.accepted == 1
    r, w = os.pipe()
    os.write(w, b"in\n")
    os.close(w)
    try:
        h, code, out, err = _exec(server, launched, spec, ["sh", "-c", "cat; echo $$; echo e >&2; exit 9"],
                                  stdin=r)
    finally:
        os.close(r)
    assert server.accepted == 2 and h.helper_pid is None    # the server forked the helper
    assert (code, err) == (9, "e\n")
    assert out.splitlines()[0] == "in" and int(out.splitlines()[1]) > 1   # in the pid ns
    # Killed by a signal: 128+N, as from the daemon's own helper.
    h, code, _out, _err = _exec(server, launched, spec, ["sh", "-c", "kill -9 $$"])
    assert code == 137 and server.accepted == 3


def test_exec_errors_through_the_server_name_the_step(server, start_container):
    from mcd import errors
    spec, _paths, launched = start_container(["sleep", "100"])
    with pytest.raises(errors.CommandNotFound) as exc:
        _exec(server, launched, spec, ["/no/such"])
    assert exc.value.exit_code == 127 and server.accepted == 2


def test_exec_with_a_terminal_through_the_server(server, start_container):
    from mcd.runtime import exec as rexec
    from mcwire.spec import Process
    spec, _paths, launched = start_container(["sleep", "100"])
    h = rexec.run(launched.pid, Process(args=["sh", "-c", "stty size; exit 3"], terminal=True,
                                        console_size=[33, 120]),
                  spec, [], Stdio(tty_to_caller=True), forkserver=server)
    assert h.tty_master is not None and h.helper_pid is None
    assert b"33 120" in read_pty(h.tty_master)
    assert h.wait() == 3


def test_a_dead_server_falls_back_to_forking_here(server, run_container, caplog):
    os.kill(server.server.pid, signal.SIGKILL)
    assert _gone(server.server.pid)
    with caplog.at_level("WARNING", logger="mcd.forkserver"):
        res = run_container(["echo", "still works"])
    assert "is gone" in caplog.text
    assert res.code == 0 and res.stdout == "still works\n"
    assert server.accepted == 0 and not server.server.alive


def test_close_kills_a_server_that_does_not_end(leak_check_root):
    fs = ForkServer.spawn()
    os.kill(fs.pid, signal.SIGSTOP)     # stuck: it cannot read the EOF
    fs.close(timeout=0.3)
    assert not psutil.pid_exists(fs.pid)


def test_the_server_dies_with_the_process_that_spawned_it(leak_check_root):
    # A stand-in daemon: a child that spawns a server and dies without closing it.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            fs = ForkServer.spawn()
            os.write(w, str(fs.pid).encode())
        finally:
            os._exit(0)
    os.close(w)
    server_pid = int(os.read(r, 32))
    os.close(r)
    os.waitpid(pid, 0)
    # PR_SET_PDEATHSIG and EOF on its socket: either ends it; it must not linger.
    assert _gone(server_pid), f"fork server {server_pid} outlived its daemon"
