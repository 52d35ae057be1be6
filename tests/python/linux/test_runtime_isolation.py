"""Real containers from the minimal template, checked from the inside (issue #3 "Show").

Needs root and the real kernel; no cgroup (cgroup_procs=[]) unless a test says so.
"""

from __future__ import annotations

import os
import signal
import stat
import time
import uuid

import pytest

from mcd.runtime.interface import Stdio
from mcd.store import ContainerPaths
from mcwire.spec import (DEFAULT_CAPABILITIES, DEFAULT_NAMESPACES, IDMapping, Linux, Mount, Root,
                      User, resolve_capabilities)
from mcd.runtime.security import capability_mask
from conftest import read_pty, wait_exit



def status_fields(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def test_pid1_is_the_command(run_container):
    r = run_container(["sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '"])
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "1"
    assert lines[1].startswith("sh -c echo $$")


def test_hostname_is_the_containers(run_container):
    r = run_container(["sh", "-c", "hostname; cat /etc/hostname; grep box-7 /etc/hosts"],
                      hostname="box-7")
    assert r.code == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["box-7", "box-7"]
    assert os.uname().nodename != "box-7"


def test_only_loopback_and_it_is_up(run_container):
    r = run_container(["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1; echo --; "
                                   "ls /sys/class/net; echo --; cat /sys/class/net/lo/operstate;"
                                   " cat /sys/class/net/lo/flags; echo --; ip -o link"])
    assert r.code == 0, r.stderr
    devs, sysnet, state, iplink = r.stdout.split("--\n")
    assert [line.split(":")[1].strip() for line in iplink.splitlines()] == ["lo"]
    assert "UP" in iplink
    assert [d.strip() for d in devs.split()] == ["lo"]
    assert sysnet.split() == ["lo"]
    assert int(state.split()[1], 16) & 1      # IFF_UP


def test_network_host_shares_the_hosts_links(run_container):
    ns = [n for n in DEFAULT_NAMESPACES if n != "network"]
    r = run_container(["cat", "/proc/net/dev"], linux=Linux(namespaces=ns))
    assert r.code == 0, r.stderr
    with open("/proc/net/dev") as f:
        host_links = {line.split(":")[0].strip() for line in f.readlines()[2:]}
    inside = {line.split(":")[0].strip() for line in r.stdout.splitlines()[2:]}
    assert inside == host_links


EXPECTED_MOUNTS = {"/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                   "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}


def test_host_mounts_are_invisible(run_container):
    r = run_container(["cat", "/proc/self/mountinfo"])
    assert r.code == 0, r.stderr
    targets = {line.split()[4] for line in r.stdout.splitlines()}
    from mcwire.spec import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS
    allowed = EXPECTED_MOUNTS | set(DEFAULT_MASKED_PATHS) | set(DEFAULT_READONLY_PATHS)
    assert targets <= allowed, targets - allowed
    assert EXPECTED_MOUNTS <= targets
    assert not any(line.split()[4] == "/sys/fs/cgroup" for line in r.stdout.splitlines())


def test_container_rootfs_never_reaches_the_host_mount_table(start_container):
    spec, paths, launched = start_container(["sleep", "100"])
    with open("/proc/self/mountinfo") as f:
        host = f.read()
    assert paths.dir not in host
    assert paths.rootfs not in host


def test_mount_made_inside_never_appears_on_host(start_container, runtime_root):
    caps = resolve_capabilities(add=["SYS_ADMIN"])
    marker = "mct-inside-" + uuid.uuid4().hex[:8]
    r_fd, w_fd = os.pipe()
    spec, paths, launched = start_container(
        ["sh", "-c", f"mkdir -p /mnt/{marker} && mount -t tmpfs {marker} /mnt/{marker} && "
                     f"grep -c {marker} /proc/self/mounts && sleep 100"],
        capabilities=caps, linux=Linux(seccomp="unconfined"),
        stdio=Stdio(stdout=w_fd, stderr=w_fd))
    os.close(w_fd)
    line = os.read(r_fd, 100)
    os.close(r_fd)
    assert line.strip() == b"1", line     # mounted inside...
    with open("/proc/self/mountinfo") as f:
        assert marker not in f.read()     # ...and not on the host
    with open(f"/proc/{launched.pid}/mountinfo") as f:
        assert marker in f.read()


def test_masked_paths(run_container):
    r = run_container(["sh", "-c", "for p in /proc/kcore /proc/keys /proc/timer_list; do "
                                   "if [ -e $p ]; then echo $p $(wc -c < $p) $(stat -c %t:%T $p);"
                                   " else echo $p absent; fi; done; ls -A /sys/firmware | wc -l;"
                                   " touch /sys/firmware/x 2>&1"])
    lines = r.stdout.splitlines()
    for line in lines[:3]:
        path, rest = line.split(" ", 1)
        if os.path.exists(path):
            # present on this kernel: masked by /dev/null (char 1:3), reads nothing
            assert rest == "0 1:3", line
        else:
            assert rest == "absent", line
    assert lines[3] == "0"
    assert "Read-only" in r.stdout


def test_proc_sys_is_read_only(run_container):
    r = run_container(["sh", "-c", "echo x > /proc/sys/kernel/hostname; echo rc=$?; "
                                   "echo h > /proc/sysrq-trigger; echo rc=$?"])
    assert "rc=1" in r.stdout and "rc=0" not in r.stdout
    assert "Read-only file system" in r.stderr


def test_capabilities_nnp_seccomp(run_container):
    r = run_container(["cat", "/proc/self/status"])
    st = status_fields(r.stdout)
    want = capability_mask(DEFAULT_CAPABILITIES)
    assert len(DEFAULT_CAPABILITIES) <= 14
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert int(st[key], 16) == want, key
    assert int(st["CapInh"], 16) == 0
    assert int(st["CapAmb"], 16) == 0
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"


def test_cap_drop_and_add(run_container):
    caps = resolve_capabilities(add=["SYS_TIME"], drop=["CHOWN"])
    r = run_container(["sh", "-c", "grep CapEff /proc/self/status; chown 1:1 /tmp; echo rc=$?"],
                      capabilities=caps)
    assert int(status_fields(r.stdout)["CapEff"], 16) == capability_mask(caps)
    assert "rc=1" in r.stdout


def test_seccomp_unconfined_turns_the_filter_off(run_container):
    r = run_container(["grep", "Seccomp:", "/proc/self/status"], linux=Linux(seccomp="unconfined"))
    assert r.stdout.split() == ["Seccomp:", "0"]


def test_mount_unshare_mknod_are_refused(run_container):
    r = run_container(["sh", "-c",
                       "mount -t tmpfs x /mnt; echo mount=$?; "
                       "unshare -Ur true; echo unshare=$?; unshare -n true; echo unshare_n=$?; "
                       "mknod /tmp/sda b 8 0; echo mknod=$?; mknod /tmp/mem c 1 1; echo mknodc=$?; "
                       "mkfifo /tmp/fifo; echo fifo=$?"])
    out = dict(line.split("=") for line in r.stdout.split())
    assert out["mount"] != "0"
    assert out["unshare"] != "0"
    assert out["unshare_n"] != "0"
    assert out["mknod"] != "0"
    assert out["mknodc"] != "0"
    assert out["fifo"] == "0"      # the filter is precise: fifos still work


def test_only_fds_0_to_2_in_pid1(start_container):
    spec, paths, launched = start_container(["sleep", "100"])
    assert sorted(os.listdir(f"/proc/{launched.pid}/fd"), key=int) == ["0", "1", "2"]


def test_pid1_is_in_its_own_session(start_container):
    spec, paths, launched = start_container(["sleep", "100"])
    assert os.getsid(launched.pid) == launched.pid
    assert os.getsid(launched.pid) != os.getsid(0)


def test_env_is_exactly_the_spec(run_container, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("LISTEN_FDS", "3")
    r = run_container(["/bin/busybox", "env"], env=["PATH=/bin", "A=b c"], hostname="envbox")
    assert sorted(r.stdout.splitlines()) == ["A=b c", "HOSTNAME=envbox", "PATH=/bin"]


def test_exit_code_and_signal(run_container, start_container):
    assert run_container(["sh", "-c", "exit 3"]).exit["exit_code"] == 3
    spec, paths, launched = start_container(["sleep", "100"])
    os.kill(launched.pid, signal.SIGKILL)
    ex = wait_exit(paths)
    assert ex["exit_code"] == 137 and ex["signal"] == 9
    assert ex["finished_at"].endswith("Z")


def test_output_goes_to_the_log(run_container):
    from mcd.runtime import logs
    r = run_container(["sh", "-c", "echo out1; echo err1 >&2; printf partial"])
    entries = logs.read(r.paths.log)
    got = [(e["stream"], e["log"]) for e in entries]
    assert ("stdout", "out1\n") in got and ("stderr", "err1\n") in got
    assert ("stdout", "partial") in got
    assert all(e["time"].endswith("Z") for e in entries)
    assert r.stdout == "out1\npartial" and r.stderr == "err1\n"


def test_writes_never_reach_the_template_or_another_container(run_container, minimal_rootfs):
    before = sorted(os.listdir(os.path.join(minimal_rootfs, "etc")))
    a = run_container(["sh", "-c", "echo A > /etc/marker && rm /etc/group && "
                                   "echo x >> /etc/passwd && rm /bin/ls && echo done"])
    assert a.stdout.strip() == "done", a.stderr
    b = run_container(["sh", "-c", "ls /etc/marker; test -e /etc/group && echo group; "
                                   "grep -c x$ /etc/passwd; test -e /bin/ls && echo ls"])
    assert "group" in b.stdout and "\nls" in b.stdout
    assert "No such file" in b.stderr
    assert sorted(os.listdir(os.path.join(minimal_rootfs, "etc"))) == before
    assert os.path.lexists(os.path.join(minimal_rootfs, "bin/ls"))
    # A's changes live in A's upper dir only (a whiteout for the deleted file).
    assert os.path.exists(os.path.join(a.paths.upper, "etc/marker"))
    st = os.lstat(os.path.join(a.paths.upper, "etc/group"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_userns_maps_ids_as_promised(run_container):
    base = 300000 + (os.getpid() % 100) * 65536
    lin = Linux(namespaces=DEFAULT_NAMESPACES + ["user"],
                uid_mappings=[IDMapping(0, base, 65536)], gid_mappings=[IDMapping(0, base, 65536)])
    r = run_container(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; "
                                   "touch /root/by-root; mkdir /tmp/d; chown 1000:1000 /tmp/d; "
                                   "stat -c %u /bin/busybox"], linux=lin)
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["0", "0"]
    assert lines[2].split() == ["0", str(base), "65536"]
    assert lines[3].split() == ["0", str(base), "65536"]
    assert lines[4] == "0"     # the template (host uid 0) is seen through the idmapped mount
    st = os.stat(os.path.join(r.paths.upper, "root/by-root"))
    assert (st.st_uid, st.st_gid) == (base, base)
    st = os.stat(os.path.join(r.paths.upper, "tmp/d"))
    assert (st.st_uid, st.st_gid) == (base + 1000, base + 1000)


def test_userns_container_can_still_bind_low_ports(run_container):
    lin = Linux(namespaces=DEFAULT_NAMESPACES + ["user"],
                uid_mappings=[IDMapping(0, 600000, 65536)], gid_mappings=[IDMapping(0, 600000, 65536)])
    r = run_container(["sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; "
                                   "nc -l -p 80 -e true & for i in $(seq 200); do "
                                   "netstat -ltn | grep -q ':80 ' && break; "
                                   "kill -0 $! 2>/dev/null || break; sleep 0.05; done; "
                                   "netstat -ltn | grep -c ':80 '; kill $!"], linux=lin)
    lines = r.stdout.split()
    assert lines[0] == "0"
    assert lines[1] == "1", r.stderr


def test_userns_non_root_user(run_container):
    base = 400000
    lin = Linux(namespaces=DEFAULT_NAMESPACES + ["user"],
                uid_mappings=[IDMapping(0, base, 65536)], gid_mappings=[IDMapping(0, base, 65536)])
    r = run_container(["sh", "-c", "id -u; touch /tmp/f; grep CapEff /proc/self/status"],
                      linux=lin, user=User(uid=1000, gid=1000))
    assert r.stdout.splitlines()[0] == "1000"
    assert int(status_fields(r.stdout)["CapEff"], 16) == 0
    st = os.stat(os.path.join(r.paths.upper, "tmp/f"))
    assert (st.st_uid, st.st_gid) == (base + 1000, base + 1000)


def test_user_and_workdir(run_container):
    r = run_container(["sh", "-c", "id -u; id -g; id -G; pwd; grep CapEff /proc/self/status"],
                      user=User(uid=1000, gid=1001, additional_gids=[5]), cwd="/work/dir")
    lines = r.stdout.splitlines()
    assert lines[:4] == ["1000", "1001", "1001 5", "/work/dir"]
    assert int(status_fields(r.stdout)["CapEff"], 16) == 0     # non-root: none, as Docker


def test_readonly_rootfs(run_container):
    r = run_container(["sh", "-c", "touch /x; echo rc=$?; touch /tmp/y; echo tmp=$?; "
                                   "echo ok > /dev/null; echo dev=$?"], root=Root(readonly=True))
    assert "rc=1" in r.stdout and "Read-only" in r.stderr
    assert "dev=0" in r.stdout


def test_bind_and_tmpfs_mounts(run_container, leak_check_root):
    host_dir = os.path.join(leak_check_root, "vol-" + uuid.uuid4().hex[:6])
    os.mkdir(host_dir)
    with open(os.path.join(host_dir, "in.txt"), "w") as f:
        f.write("from host\n")
    ro_dir = os.path.join(leak_check_root, "ro-" + uuid.uuid4().hex[:6])
    os.mkdir(ro_dir)
    mounts = [Mount.parse_volume(f"{host_dir}:/data"), Mount.parse_volume(f"{ro_dir}:/ro:ro"),
              Mount.parse_tmpfs("/scratch:size=1m,mode=1777")]
    r = run_container(["sh", "-c", "cat /data/in.txt; echo hi > /data/out.txt; "
                                   "touch /ro/x; echo ro=$?; grep /scratch /proc/mounts; "
                                   "stat -c %a /scratch"], mounts=mounts)
    assert r.stdout.startswith("from host\n")
    assert "ro=1" in r.stdout
    assert "tmpfs /scratch tmpfs rw,nosuid,nodev" in r.stdout and "size=1024k" in r.stdout
    assert r.stdout.splitlines()[-1] == "1777"
    with open(os.path.join(host_dir, "out.txt")) as f:
        assert f.read() == "hi\n"
    assert os.listdir(ro_dir) == []


def test_terminal_to_caller(start_container):
    spec, paths, launched = start_container(
        ["sh", "-c", "tty; ls -l /proc/self/fd/0"], terminal=True,
        stdio=Stdio(tty_to_caller=True))
    assert launched.tty_master is not None
    out = read_pty(launched.tty_master)
    text = out.decode()
    assert "/dev/pts/0" in text.splitlines()[0]   # the container's own devpts
    assert wait_exit(paths)["exit_code"] == 0


def test_oom_protection_of_the_starter_is_not_inherited(runtime_root, minimal_rootfs):
    """The packaged daemon runs with OOMScoreAdjust=-500; its containers must get 0.
    Started from a child process that lowers its own value first (needs CAP_SYS_RESOURCE)."""
    import subprocess
    import sys
    name = "oom" + uuid.uuid4().hex[:8]
    cdir = os.path.join(runtime_root, "containers", name)
    code = (
        "import os, sys\n"
        "from mcd.runtime import launcher\n"
        "from mcd.runtime.interface import Stdio\n"
        "from mcd.store import ContainerPaths\n"
        "from mcwire.spec import ContainerSpec, Process\n"
        "try:\n"
        "    with open('/proc/self/oom_score_adj', 'w') as f:\n"
        "        f.write('-500')\n"
        "except OSError:\n"
        "    pass\n"
        f"spec = ContainerSpec(name={name!r}, process=Process(args=['cat', "
        "'/proc/self/oom_score_adj']))\n"
        f"paths = ContainerPaths(dir={cdir!r}, lower={minimal_rootfs!r})\n"
        "r, w = os.pipe()\n"
        "launcher.start(spec, paths, [], Stdio(stdout=w))\n"
        "os.close(w)\n"
        "print(open('/proc/self/oom_score_adj').read().strip(), os.read(r, 100).decode().strip())\n")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=repo, check=True).stdout.split()
    wait_exit(ContainerPaths(dir=cdir, lower=minimal_rootfs))
    if out[0] != "-500":
        pytest.skip("lowering oom_score_adj needs CAP_SYS_RESOURCE, which root lacks here "
                    "(a normal root with CAP_SYS_RESOURCE runs it)")
    assert out == ["-500", "0"]


def test_terminal_has_the_callers_size_before_exec(start_container):
    # stty runs at once: only a size set before exec (not a later TIOCSWINSZ) can reach it.
    spec, paths, launched = start_container(["stty", "size"], terminal=True, console_size=[40, 100])
    wait_exit(paths)
    from mcd.runtime import logs
    text = "".join(e["log"] for e in logs.read(paths.log))
    assert text.split() == ["40", "100"]


def test_terminal_console_is_the_pty(start_container):
    spec, paths, launched = start_container(
        ["sh", "-c", "echo via-console > /dev/console; stat -c %t:%T /dev/console $(tty)"],
        terminal=True)
    wait_exit(paths)
    from mcd.runtime import logs
    text = "".join(e["log"] for e in logs.read(paths.log))
    assert "via-console" in text
    console, tty = text.split()[-2:]
    assert console == tty and console.startswith("88:")     # pts major 136 = 0x88


def test_terminal_logged_by_monitor(start_container):
    spec, paths, launched = start_container(["sh", "-c", "tty; echo in-log"], terminal=True)
    wait_exit(paths)
    from mcd.runtime import logs
    text = "".join(e["log"] for e in logs.read(paths.log))
    assert "/dev/pts/0" in text and "in-log" in text


def test_stdin_from_caller(run_container):
    r_fd, w_fd = os.pipe()
    os.write(w_fd, b"fed through stdin\n")
    os.close(w_fd)
    r = run_container(["cat"], stdin=r_fd)
    os.close(r_fd)
    assert r.stdout == "fed through stdin\n"


def test_joins_a_real_cgroup(start_container):
    """PID 1 writes itself into every cgroup.procs it is given (a private mctest-* parent
    at the root of the v1 pids hierarchy, removed afterwards)."""
    if not os.path.isdir("/sys/fs/cgroup/pids"):
        pytest.skip("no v1 pids hierarchy here")
    parent = f"/sys/fs/cgroup/pids/mctest-{uuid.uuid4().hex[:8]}"
    child = os.path.join(parent, "c1")
    os.makedirs(child)
    try:
        r_fd, w_fd = os.pipe()
        spec, paths, launched = start_container(
            ["sh", "-c", "cat /proc/self/cgroup; echo END; exec sleep 100"],
            cgroup_procs=[os.path.join(child, "cgroup.procs")],
            stdio=Stdio(stdout=w_fd))
        os.close(w_fd)
        inside = b""
        while b"END\n" not in inside:
            data = os.read(r_fd, 4096)
            assert data, inside
            inside += data
        os.close(r_fd)
        with open(f"/proc/{launched.pid}/cgroup") as f:
            host_view = f.read()
        assert f":pids:/{os.path.basename(parent)}/c1\n" in host_view
        with open(os.path.join(child, "cgroup.procs")) as f:
            assert str(launched.pid) in f.read().split()
        os.kill(launched.pid, signal.SIGKILL)
        wait_exit(paths)
        # the cgroup namespace makes the container's own cgroup its root
        assert any(line.split(":")[1:] == ["pids", "/"] for line in inside.decode().splitlines())
    finally:
        for d in (child, parent):
            for _ in range(200):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)    # the last task leaves the cgroup asynchronously
    assert not os.path.exists(parent)


def test_pid_and_start_time_identify_pid1(start_container):
    spec, paths, launched = start_container(["sleep", "100"])
    from mcd.runtime.syscalls import proc_start_time
    assert proc_start_time(launched.pid) == launched.pid_start_time
    with open(f"/proc/{launched.pid}/status") as f:
        nspid = status_fields(f.read())["NSpid"].split()
    assert nspid == [str(launched.pid), "1"]
    with open(f"/proc/{launched.pid}/status") as f:
        assert int(status_fields(f.read())["PPid"]) == launched.monitor_pid


def test_monitor_survives_its_starter(runtime_root, minimal_rootfs):
    """A 'daemon' process starts a container and exits: the container and its monitor
    keep running, and the monitor still records the exit."""
    import json
    import subprocess
    import sys
    name = "surv" + uuid.uuid4().hex[:8]
    cdir = os.path.join(runtime_root, "containers", name)
    code = (
        "import json, sys\n"
        "from mcd.runtime import launcher\n"
        "from mcd.runtime.interface import Stdio\n"
        "from mcd.store import ContainerPaths\n"
        "from mcwire.spec import ContainerSpec, Process\n"
        f"spec = ContainerSpec(name={name!r}, process=Process(args=['sleep', '100']))\n"
        f"paths = ContainerPaths(dir={cdir!r}, lower={minimal_rootfs!r})\n"
        "l = launcher.start(spec, paths, [])\n"
        "print(json.dumps(l.__dict__))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.dirname(os.path.abspath(__file__))))))
    launched = json.loads(out.stdout)
    from mcd.runtime.syscalls import proc_start_time
    assert proc_start_time(launched["pid"]) == launched["pid_start_time"]   # still running
    os.kill(launched["pid"], signal.SIGTERM)    # PID 1 of a pidns ignores it without a handler
    os.kill(launched["pid"], signal.SIGKILL)
    paths = ContainerPaths(dir=cdir, lower=minimal_rootfs)
    assert wait_exit(paths)["signal"] == 9


def test_client_going_away_stops_only_its_copy(start_container):
    """EPIPE on an attach fd: the monitor stops copying there, keeps logging, the
    container never notices."""
    r_fd, w_fd = os.pipe()
    in_r, in_w = os.pipe()
    spec, paths, launched = start_container(
        ["sh", "-c", "read x; i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done"],
        stdio=Stdio(stdin=in_r, stdout=w_fd, stderr=w_fd))
    os.close(in_r)
    os.close(w_fd)
    os.close(r_fd)          # the client is gone before the container writes anything...
    os.write(in_w, b"go\n")  # ...and only now does it start writing
    os.close(in_w)
    ex = wait_exit(paths)
    assert ex["exit_code"] == 0
    from mcd.runtime import logs
    lines = [e["log"] for e in logs.read(paths.log)]
    assert lines[0] == "line 0\n" and lines[-1] == "line 1999\n" and len(lines) == 2000


def test_monitor_copes_with_its_dir_removed(start_container):
    """A force-remove can delete the container dir under a running monitor: it still
    drains, reaps PID 1 and exits (the session leak check would catch it staying)."""
    import shutil
    import psutil
    spec, paths, launched = start_container(["sleep", "100"])
    monitor = psutil.Process(launched.monitor_pid)
    # The monitor opens its log right after reporting the start: remove the dir after
    # that, or rmtree races the log's creation (ENOTEMPTY) instead of testing the monitor.
    deadline = time.monotonic() + 10
    while not os.path.exists(paths.log) and time.monotonic() < deadline:
        time.sleep(0.01)
    shutil.rmtree(paths.dir)
    os.kill(launched.pid, signal.SIGKILL)
    monitor.wait(timeout=10)
    assert not os.path.exists(paths.dir)
    os.makedirs(paths.dir)      # for the fixture's teardown, which waits for exit.json
    with open(paths.exit, "w") as f:
        f.write('{"exit_code": 137}')
