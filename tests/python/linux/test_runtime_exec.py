"""exec into running containers: same namespaces, same security, errors by step."""

from __future__ import annotations

import os

import pytest

from mcd import errors
from mcd.runtime import exec as rexec
from mcd.runtime.interface import Stdio
from mcd.runtime.security import capability_mask
from mcwire.spec import DEFAULT_CAPABILITIES, DEFAULT_NAMESPACES, IDMapping, Linux, Process, User
from conftest import read_all, read_pty



def run_exec(launched, spec, args, **pkw):
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        h = rexec.run(launched.pid, Process(args=args, **pkw), spec, [],
                      Stdio(stdout=out_w, stderr=err_w))
    finally:
        os.close(out_w)
        os.close(err_w)
    got = read_all({out_r: "out", err_r: "err"})
    return h.wait(), got["out"].decode(), got["err"].decode(), h


def ns_links(pid):
    return {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in ("pid", "mnt", "uts", "ipc", "net",
                                                            "cgroup")}


@pytest.mark.parametrize("userns", [False, True], ids=["plain", "userns"])
def test_exec_sees_pid1s_namespaces_hostname_and_mounts(start_container, userns):
    kw = {}
    if userns:
        kw["linux"] = Linux(namespaces=DEFAULT_NAMESPACES + ["user"],
                            uid_mappings=[IDMapping(0, 500000, 65536)],
                            gid_mappings=[IDMapping(0, 500000, 65536)])
    spec, paths, launched = start_container(["sleep", "100"], hostname="exechost", **kw)
    code, out, err, h = run_exec(launched, spec, [
        "sh", "-c", "for n in pid mnt uts ipc net cgroup; do readlink /proc/self/ns/$n; done; "
                    "hostname; cat /proc/1/cmdline; echo; cut -d' ' -f5 /proc/self/mountinfo "
                    "| sort | tr '\\n' ' '; echo; id -u; readlink /proc/self/ns/user"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:6] == list(ns_links(launched.pid).values())
    assert lines[6] == "exechost"
    assert lines[7].startswith("sleep")
    with open(f"/proc/{launched.pid}/mountinfo") as f:
        pid1_mounts = sorted(line.split()[4] for line in f)
    assert lines[8].split() == pid1_mounts
    assert lines[9] == "0"
    assert lines[10] == os.readlink(f"/proc/{launched.pid}/ns/user")


def test_exec_security_is_pid1s(start_container):
    spec, paths, launched = start_container(["sleep", "100"])
    code, out, err, _ = run_exec(launched, spec, ["cat", "/proc/self/status"])
    st = dict((k.strip(), v.strip()) for k, _, v in
              (line.partition(":") for line in out.splitlines()))
    assert int(st["CapEff"], 16) == capability_mask(DEFAULT_CAPABILITIES)
    assert int(st["CapBnd"], 16) == capability_mask(DEFAULT_CAPABILITIES)
    assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2"
    code, out, err, _ = run_exec(launched, spec, ["sh", "-c", "ls /proc/self/fd"])
    # the shell's ls sees its own 0-2 and the dir it is reading: nothing of the daemon's
    assert out.split() == ["0", "1", "2", "3"]


def test_exec_pid_is_in_the_container_pidns(start_container):
    spec, paths, launched = start_container(["sleep", "100"])
    r, w = os.pipe()
    in_r, in_w = os.pipe()
    h = rexec.run(launched.pid, Process(args=["sh", "-c", "echo $$; read x"]), spec, [],
                  Stdio(stdin=in_r, stdout=w))
    os.close(w)
    os.close(in_r)
    inner = int(os.read(r, 100))
    os.close(r)
    with open(f"/proc/{h.pid}/status") as f:
        nspid = [line for line in f if line.startswith("NSpid:")][0].split()[1:]
    assert nspid == [str(h.pid), str(inner)]
    assert inner > 1
    os.write(in_w, b"go\n")     # the process waited on our stdin until now
    os.close(in_w)
    assert h.wait() == 0


def test_exec_user_env_cwd(start_container):
    spec, paths, launched = start_container(["sleep", "100"], hostname="h1")
    code, out, err, _ = run_exec(launched, spec, ["sh", "-c", "id -u; pwd; env | sort"],
                                 user=User(uid=123, gid=456), cwd="/tmp/wd",
                                 env=["X=1", "PATH=/bin"])
    lines = out.splitlines()
    assert lines[:2] == ["123", "/tmp/wd"]
    assert sorted(lines[2:]) == sorted(["HOSTNAME=h1", "PATH=/bin", "PWD=/tmp/wd", "SHLVL=1",
                                                  "X=1"])


def test_exec_exit_codes_and_errors(start_container):
    spec, paths, launched = start_container(["sleep", "100"])
    assert run_exec(launched, spec, ["sh", "-c", "exit 7"])[0] == 7
    assert run_exec(launched, spec, ["sh", "-c", "kill -9 $$"])[0] == 137
    with pytest.raises(errors.CommandNotFound) as ei:
        rexec.run(launched.pid, Process(args=["/bin/nope"]), spec, [])
    assert str(ei.value).endswith('exec "/bin/nope": No such file or directory')
    assert ei.value.exit_code == 127
    with pytest.raises(errors.CommandNotExecutable) as ei:
        rexec.run(launched.pid, Process(args=["/etc/passwd"]), spec, [])
    assert ei.value.exit_code == 126
    with pytest.raises(errors.SetupError) as ei:
        rexec.run(launched.pid, Process(args=["true"]), spec, ["/nonexistent/cgroup.procs"])
    assert "join cgroup /nonexistent/cgroup.procs: No such file or directory" in str(ei.value)


def test_exec_into_a_stopped_container_is_refused(run_container):
    r = run_container(["true"])
    with pytest.raises(errors.NotRunning):
        rexec.run(r.launched.pid, Process(args=["true"]),
                  __import__("conftest").make_spec(["true"]), [])


def test_exec_terminal_has_the_callers_size(start_container):
    spec, paths, launched = start_container(["sleep", "100"])
    h = rexec.run(launched.pid, Process(args=["stty", "size"], terminal=True, console_size=[33, 120]),
                  spec, [])
    out = read_pty(h.tty_master)
    assert h.wait() == 0
    assert out.split() == [b"33", b"120"]


def test_exec_with_terminal(start_container):
    spec, paths, launched = start_container(["sleep", "100"])
    h = rexec.run(launched.pid, Process(args=["sh", "-c", "tty; echo done"], terminal=True),
                  spec, [])
    assert h.tty_master is not None
    out = read_pty(h.tty_master)
    assert h.wait() == 0
    assert out.decode().splitlines()[0].startswith("/dev/pts/")
