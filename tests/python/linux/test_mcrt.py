"""mcrt beside runc on the same bundles (root, real kernel).

Every bundle starts as `runc spec`'s config.json over the busybox tree, then each test
changes the field it is about. The "equal" tests run the bundle under runc and under
mcrt (each with its own --root and container id) and compare what the process sees,
the exit code and the state JSON. The rest check mcrt's own contract (create/start,
console socket, bad input). Each test records what it proved for the conformance table
(tests/python/mcrtlib.py). Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from mcrtlib import Bundle, busybox_rootfs, conformance, mcrt_binary, remove_cgroup_parent, write_conformance  # noqa: E402

pytestmark = pytest.mark.root
RUNTIMES = ("runc", "mcrt")


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def env(leak_check_root):
    base = os.path.join(leak_check_root, "mcrt-" + uuid.uuid4().hex[:6])
    os.makedirs(base)
    rootfs = busybox_rootfs(os.path.join(base, "rootfs-src"), os.path.join(base, "cache"))
    parent = f"mctest-{uuid.uuid4().hex[:8]}"
    e = Env(base, rootfs, parent)
    yield e
    for rt in RUNTIMES:
        for cid in e.list_ids(rt):
            e.cli(rt, "delete", "--force", cid)
    write_conformance("linux")
    left = remove_cgroup_parent(parent)
    assert not left, f"cgroups left behind: {left}"


class Env:
    def __init__(self, base, rootfs, parent):
        self.base, self.rootfs, self.parent = base, rootfs, parent
        self.roots = {rt: os.path.join(base, f"state-{rt}") for rt in RUNTIMES}
        self.bin = {"runc": "runc", "mcrt": mcrt_binary()}

    def bundle(self) -> Bundle:
        return Bundle(os.path.join(self.base, "bundles"), self.rootfs, self.parent)

    def cli(self, rt, *args, input=None, timeout=30, **kw):
        if args[0] == "create" or (("-d" in args or "--detach" in args) and args[0] in ("run", "exec")):
            # A detached process inherits our stdio: pipes would stay open while it runs.
            with open(os.path.join(self.base, "detached.out"), "w+") as out, \
                    open(os.path.join(self.base, "detached.err"), "w+") as err:
                p = subprocess.run([self.bin[rt], "--root", self.roots[rt], *args],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True,
                                   timeout=timeout, **kw)
                out.seek(0)
                err.seek(0)
                p.stdout, p.stderr = out.read(), err.read()
            return p
        return subprocess.run([self.bin[rt], "--root", self.roots[rt], *args], input=input,
                              capture_output=True, text=True, timeout=timeout, **kw)

    def list_ids(self, rt):
        p = self.cli(rt, "list", "-q")
        return p.stdout.split() if p.returncode == 0 else []

    def run(self, rt, b: Bundle, *extra):
        """`RT run` the bundle in the foreground -> CompletedProcess (exit code = process's)."""
        cid = f"{b.id}-{rt}"
        b.save(cid)
        return self.cli(rt, "run", "--bundle", b.dir, *extra, cid)

    def both(self, b: Bundle, *extra):
        out = {rt: self.run(rt, b, *extra) for rt in RUNTIMES}
        return out["runc"], out["mcrt"]


def same(r, m):
    assert (m.returncode, m.stdout) == (r.returncode, r.stdout), \
        f"runc: {r.returncode} {r.stdout!r} {r.stderr!r}\nmcrt: {m.returncode} {m.stdout!r} {m.stderr!r}"


def reap(*pids: int, timeout: float = 10.0) -> None:
    """Wait for every pid to die, reaping those that are our children (we are the
    subreaper). All at once: a pid namespace's init does not finish exiting before the
    other members of its namespace are reaped, and those may be our children too."""
    left = set(pids)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for pid in list(left):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    left.discard(pid)
            except ChildProcessError:
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            left.discard(pid)
                except FileNotFoundError:
                    left.discard(pid)
        time.sleep(0.01)
    assert not left, f"pids {sorted(left)} still alive after {timeout}s"


def sh(b: Bundle, script: str):
    b.cfg["process"]["args"] = ["sh", "-c", script]


# ------------------------------------------------------------------ process

def test_process_basics_equal(env):
    b = env.bundle()
    b.cfg["process"]["env"] += ["FOO=bar baz"]
    b.cfg["process"]["cwd"] = "/tmp"
    b.cfg["hostname"] = "box1"
    sh(b, "hostname; id; pwd; env | sort; grep -E '^Cap|NoNewPrivs' /proc/self/status; "
          "cat /proc/self/oom_score_adj; ls /dev | sort; readlink /dev/ptmx; readlink /dev/fd; "
          "cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 3")
    r, m = env.both(b)
    assert m.returncode == 3
    same(r, m)
    for f in ("process.args", "process.env", "process.cwd", "hostname", "process.noNewPrivileges",
              "process.capabilities", "root.path", "root.readonly", "linux.namespaces",
              "mounts (proc, sysfs, tmpfs, devpts, mqueue)", "run"):
        conformance(f, "equal")


def test_mount_table_equal(env):
    b = env.bundle()
    sh(b, "sed 's/^[0-9]* [0-9]* [0-9:]* [^ ]* \\([^ ]*\\) \\([^ ]*\\).* - \\([^ ]*\\) .*/\\1 \\2 \\3/' "
          "/proc/self/mountinfo | sort")
    r, m = env.both(b)
    same(r, m)
    conformance("mounts[].options", "equal")
    conformance("mounts (cgroup)", "equal")
    conformance("linux.maskedPaths", "equal")
    conformance("linux.readonlyPaths", "equal")


def test_user_umask_groups_equal(env):
    b = env.bundle()
    b.cfg["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 0o077}
    sh(b, "id; umask; touch /tmp/f 2>&1; grep -E '^Cap' /proc/self/status")
    b.cfg["root"]["readonly"] = False
    b.cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                            "options": ["mode=1777"]})
    r, m = env.both(b)
    same(r, m)
    assert "uid=1000 gid=1001 groups=10,20" in m.stdout
    conformance("process.user.uid/gid", "equal")
    conformance("process.user.additionalGids", "equal")
    conformance("process.user.umask", "equal")


def test_capability_sets_equal(env):
    b = env.bundle()
    caps = ["CAP_NET_RAW", "CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"]
    b.cfg["process"]["capabilities"] = {"bounding": caps, "effective": caps[:2],
                                        "permitted": caps, "inheritable": caps[:1],
                                        "ambient": caps[:1]}
    b.cfg["process"]["user"] = {"uid": 0, "gid": 0}
    sh(b, "grep -E '^Cap' /proc/self/status")
    r, m = env.both(b)
    same(r, m)
    conformance("process.capabilities (five sets)", "equal")


def test_rlimits_oom_nnp_equal(env):
    b = env.bundle()
    b.cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
                                   {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    b.cfg["process"]["oomScoreAdj"] = 500
    b.cfg["process"]["noNewPrivileges"] = False
    sh(b, "ulimit -n; ulimit -Hn; ulimit -c; cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status")
    r, m = env.both(b)
    same(r, m)
    assert m.stdout.split()[:4] == ["256", "512", "0", "500"]
    conformance("process.rlimits", "equal")
    conformance("process.oomScoreAdj", "equal")


def test_readonly_root_masked_paths_equal(env):
    b = env.bundle()
    sh(b, "touch /x 2>&1; echo 1 > /proc/sys/kernel/domainname 2>&1; wc -c < /proc/kcore; "
          "ls /sys/firmware | wc -l; echo done")
    r, m = env.both(b)
    same(r, m)


def test_bind_tmpfs_mounts_equal(env, tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    (src / "f").write_text("host file\n")
    sub = src / "sub"
    sub.mkdir()
    b = env.bundle()
    b.cfg["mounts"] += [
        {"destination": "/data", "type": "bind", "source": str(src), "options": ["rbind", "ro"]},
        {"destination": "/rw", "type": "none", "source": str(src), "options": ["bind", "rw", "nosuid"]},
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
         "options": ["size=1m", "mode=700", "noexec"]},
        {"destination": "/etc/motd", "type": "bind", "source": str(src / "f"), "options": ["bind", "ro"]},
    ]
    sh(b, "cat /data/f; touch /data/g 2>&1; stat -c '%a' /scratch; cat /etc/motd; "
          "grep -E ' /(data|rw|scratch|etc/motd) ' /proc/self/mountinfo | "
          "sed 's/^[^ ]* [^ ]* [^ ]* [^ ]* \\([^ ]*\\) \\([^ ]*\\).* - \\([^ ]*\\) [^ ]* \\([^,]*\\).*/\\1 \\2 \\3 \\4/' | sort")
    r, m = env.both(b)
    same(r, m)
    conformance("mounts (bind, rbind, ro/rw, nosuid)", "equal")
    conformance("mounts (tmpfs with size/mode)", "equal")
    conformance("mounts (file bind)", "equal")


def test_sysctl_hostname_domainname_equal(env):
    b = env.bundle()
    b.cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmni": "2048"}
    b.cfg["domainname"] = "example.test"
    sh(b, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni; cat /proc/sys/kernel/domainname; "
          "ip link 2>/dev/null | grep -c UP")
    r, m = env.both(b)
    # runc 1.1.5 (Debian 12) leaves the domain name alone; the runtime-spec sets it.
    assert r.stdout.splitlines()[2] == "(none)" and m.stdout.splitlines()[2] == "example.test"
    assert r.returncode == m.returncode == 0
    assert r.stdout.splitlines()[:2] + r.stdout.splitlines()[3:] == \
        m.stdout.splitlines()[:2] + m.stdout.splitlines()[3:]
    conformance("linux.sysctl", "equal")
    conformance("domainname", "supported", "set as the runtime-spec says; runc 1.1.5 ignores it")


def test_sysctl_host_wide_refused(env):
    b = env.bundle()
    b.cfg["linux"]["sysctl"] = {"vm.overcommit_memory": "1"}
    m = env.run("mcrt", b)
    assert m.returncode == 1
    assert "linux.sysctl.vm.overcommit_memory" in m.stderr
    conformance("linux.sysctl (host-wide keys)", "refused")


def test_devices_equal(env):
    b = env.bundle()
    b.cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                  "fileMode": 0o640, "uid": 0, "gid": 0},
                                 {"path": "/dev/myfifo", "type": "p", "fileMode": 0o600}]
    b.cfg["linux"]["resources"]["devices"].append({"allow": True, "type": "c", "major": 10,
                                                   "minor": 229, "access": "rwm"})
    sh(b, "stat -c '%n %F %t %T %a' /dev/fuse /dev/myfifo /dev/null; echo x > /dev/null && echo null-ok")
    r, m = env.both(b)
    same(r, m)
    conformance("linux.devices", "equal")
    conformance("linux.resources.devices", "equal")


def test_namespace_by_path_equal(env):
    holder = subprocess.Popen(["unshare", "--net", "--uts", "sleep", "300"])
    try:
        time.sleep(0.2)
        net = f"/proc/{holder.pid}/ns/net"
        want = os.readlink(net)
        b = env.bundle()
        for ns in b.cfg["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = net
        sh(b, "readlink /proc/self/ns/net")
        r, m = env.both(b)
        same(r, m)
        assert m.stdout.strip() == want
    finally:
        holder.kill()
        holder.wait()
    conformance("linux.namespaces[].path", "equal")


def test_seccomp_profile_equal(env):
    b = env.bundle()
    b.cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["no_such_syscall_here"], "action": "SCMP_ACT_ERRNO"},
        ]}
    sh(b, "mkdir /tmp/x 2>&1; echo rc=$?; grep Seccomp: /proc/self/status")
    b.cfg["root"]["readonly"] = False
    r, m = env.both(b)
    same(r, m)
    assert "Permission denied" in m.stdout
    conformance("linux.seccomp", "equal")


def test_cgroup_resources_equal(env):
    b = env.bundle()
    b.cfg["linux"]["resources"].update({
        "memory": {"limit": 64 * 1024 * 1024, "swap": 128 * 1024 * 1024},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "pids": {"limit": 42}})
    b.cfg["process"]["args"] = ["sleep", "30"]
    files = ("memory/memory.limit_in_bytes", "memory/memory.memsw.limit_in_bytes",
             "cpu/cpu.shares", "cpu/cpu.cfs_quota_us", "pids/pids.max")
    got = {}
    for rt in RUNTIMES:
        cid = f"{b.id}-{rt}"
        b.save(cid)
        p = env.cli(rt, "run", "-d", "--bundle", b.dir, cid)
        assert p.returncode == 0, p.stderr
        vals = []
        for f in files:
            ctrl, name = f.split("/")
            with open(f"/sys/fs/cgroup/{ctrl}/{env.parent}/{cid}/{name}") as fh:
                vals.append(fh.read().strip())
        got[rt] = vals
        assert env.cli(rt, "delete", "--force", cid).returncode == 0
        assert not os.path.exists(f"/sys/fs/cgroup/memory/{env.parent}/{cid}")
    assert got["mcrt"] == got["runc"] == ["67108864", "134217728", "512", "50000", "42"]
    for f in ("linux.resources.memory", "linux.resources.cpu", "linux.resources.pids",
              "linux.cgroupsPath", "delete --force"):
        conformance(f, "equal")


def test_hooks_equal(env, tmp_path):
    b = env.bundle()
    out = {}
    for rt in RUNTIMES:
        d = tmp_path / rt
        d.mkdir()
        host = {k: {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {d}/{k}.json"]}
                for k in ("prestart", "createRuntime", "createContainer", "poststart", "poststop")}
        hooks = {k: [v] for k, v in host.items()}
        # startContainer runs inside the container: its path and output are the container's.
        hooks["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /out/startContainer.json"]}]
        b.cfg["hooks"] = hooks
        b.cfg["mounts"] = [m for m in b.cfg["mounts"] if m["destination"] != "/out"]
        b.cfg["mounts"].append({"destination": "/out", "type": "bind", "source": str(d),
                                "options": ["rbind"]})
        sh(b, "echo ran")
        p = env.run(rt, b)
        assert p.returncode == 0 and p.stdout == "ran\n", p.stderr
        seen = {}
        for f in sorted(os.listdir(d)):
            with open(d / f) as fh:
                st = json.load(fh)
            seen[f[:-5]] = (st["status"], st["id"].endswith(rt), st["bundle"] == b.dir,
                            st.get("pid", 0) > 0)
        out[rt] = seen
    assert set(out["mcrt"]) == {"prestart", "createRuntime", "createContainer", "startContainer",
                                "poststart", "poststop"}
    assert {k: v[1:] for k, v in out["mcrt"].items()} == {k: v[1:] for k, v in out["runc"].items()}
    conformance("hooks (all six kinds)", "equal" if out["mcrt"] == out["runc"] else "supported",
                "" if out["mcrt"] == out["runc"] else f"state status differs: runc {out['runc']} mcrt {out['mcrt']}")


def test_failing_hook_fails_create(env):
    b = env.bundle()
    b.cfg["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]}
    cid = f"{b.id}-mcrt"
    b.save(cid)
    p = env.cli("mcrt", "create", "--bundle", b.dir, cid)
    assert p.returncode == 1
    assert "createRuntime[0]" in p.stderr and "exited with 3" in p.stderr
    assert cid not in env.list_ids("mcrt")
    assert not os.path.exists(f"/sys/fs/cgroup/memory/{env.parent}/{cid}")


# ------------------------------------------------------------------ lifecycle

def test_create_start_contract_equal(env, tmp_path):
    """After create: init exists, blocked, host pid in --pid-file, our child (we are the
    subreaper), user process not yet run. start releases it."""
    b = env.bundle()
    marker = tmp_path / "ran"
    b.cfg["mounts"].append({"destination": "/m", "type": "bind", "source": str(tmp_path),
                            "options": ["rbind"]})
    b.cfg["process"]["args"] = ["sh", "-c", "touch /m/ran-$0; exec sleep 30", "x"]
    states = {}
    for rt in RUNTIMES:
        cid = f"{b.id}-{rt}"
        b.cfg["process"]["args"][-1] = rt
        b.save(cid)
        pidfile = tmp_path / f"{rt}.pid"
        p = env.cli(rt, "create", "--bundle", b.dir, "--pid-file", str(pidfile), cid)
        assert p.returncode == 0, p.stderr
        pid = int(pidfile.read_text())
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        assert fields[1] == str(os.getpid()), "init's parent is not the caller's subreaper"
        assert not os.path.exists(f"{marker}-{rt}")
        created = json.loads(env.cli(rt, "state", cid).stdout)
        assert created["status"] == "created" and created["pid"] == pid
        assert env.cli(rt, "start", cid).returncode == 0
        deadline = time.monotonic() + 10
        while not os.path.exists(f"{marker}-{rt}") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.path.exists(f"{marker}-{rt}")
        running = json.loads(env.cli(rt, "state", cid).stdout)
        again = env.cli(rt, "start", cid)
        assert again.returncode != 0
        assert env.cli(rt, "kill", cid, "KILL").returncode == 0
        os.waitpid(pid, 0)
        stopped = json.loads(env.cli(rt, "state", cid).stdout)
        assert env.cli(rt, "delete", cid).returncode == 0
        states[rt] = (created, running, stopped)
    for i, status in enumerate(("created", "running", "stopped")):
        r, m = states["runc"][i], states["mcrt"][i]
        assert r["status"] == m["status"] == status
        assert set(m) == set(r), f"state keys differ: runc {sorted(r)} mcrt {sorted(m)}"
        assert m["bundle"] == r["bundle"] == b.dir
        assert m["rootfs"] == r["rootfs"]
    for f in ("create", "start", "state", "create --pid-file", "kill"):
        conformance(f, "equal")


@pytest.mark.parametrize("sig,code", [("USR1", 10), ("SIGUSR2", 12), ("15", 15), ("KILL", 137)])
def test_kill_signal_names_and_numbers_equal(env, sig, code):
    b = env.bundle()
    sh(b, "trap 'exit 10' USR1; trap 'exit 12' USR2; trap 'exit 15' TERM; "
          "echo ready > /dev/null; while :; do sleep 0.05; done")
    codes = {}
    for rt in RUNTIMES:
        cid = f"{b.id}-{rt}"
        b.save(cid)
        pidfile = os.path.join(b.dir, f"{rt}.pid")
        assert env.cli(rt, "run", "-d", "--pid-file", pidfile, "--bundle", b.dir, cid).returncode == 0
        pid = int(open(pidfile).read())
        time.sleep(0.2)     # the shell installs its traps
        assert env.cli(rt, "kill", cid, sig).returncode == 0
        _, status = os.waitpid(pid, 0)
        codes[rt] = os.waitstatus_to_exitcode(status)
        assert env.cli(rt, "delete", cid).returncode == 0
    assert codes["mcrt"] == codes["runc"]
    assert codes["mcrt"] in (code, -9)


def test_exec_ps_pause_update(env, tmp_path):
    b = env.bundle()
    b.cfg["process"]["args"] = ["sleep", "60"]
    b.cfg["linux"]["resources"]["memory"] = {"limit": 64 << 20}
    results = {}
    for rt in RUNTIMES:
        cid = f"{b.id}-{rt}"
        b.save(cid)
        assert env.cli(rt, "run", "-d", "--bundle", b.dir, cid).returncode == 0
        r = {}
        e = env.cli(rt, "exec", "--env", "X=1", "--cwd", "/tmp", "--user", "1000:1000", cid,
                    "sh", "-c", "echo $X; pwd; id; exit 7")
        r["exec"] = (e.returncode, e.stdout)
        procfile = tmp_path / f"{rt}-proc.json"
        procfile.write_text(json.dumps({"args": ["sh", "-c", "echo from-process-file; exit 2"],
                                        "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}))
        e = env.cli(rt, "exec", "--process", str(procfile), cid)
        r["exec --process"] = (e.returncode, e.stdout)
        if True:
            pidfile = tmp_path / f"{rt}-exec.pid"
            e = env.cli(rt, "exec", "--detach", "--pid-file", str(pidfile), cid, "sleep", "50")
            assert e.returncode == 0, e.stderr
            epid = int(pidfile.read_text())
            pids = json.loads(env.cli(rt, "ps", "--format", "json", cid).stdout)
            assert len(pids) == 2 and epid in pids
        r["ps json"] = True
        table = env.cli(rt, "ps", cid).stdout.splitlines()
        r["ps"] = (table[0].split()[:2], len(table) - len(pids))
        u = env.cli(rt, "update", "--resources", "-", cid,
                    input=json.dumps({"memory": {"limit": 96 << 20}, "pids": {"limit": 50}}))
        with open(f"/sys/fs/cgroup/memory/{env.parent}/{cid}/memory.limit_in_bytes") as f:
            r["update"] = (u.returncode, f.read().strip())
        k = env.cli(rt, "delete", cid)
        r["delete running"] = k.returncode != 0
        assert env.cli(rt, "kill", "--all", cid, "KILL").returncode == 0
        reap(*pids)
        d = env.cli(rt, "delete", cid)
        assert d.returncode == 0, (rt, d.stderr)
        results[rt] = r
    assert results["mcrt"] == results["runc"] == {
        "exec": (7, "1\n/tmp\nuid=1000 gid=1000\n"),
        "exec --process": (2, "from-process-file\n"), "ps json": True, "ps": (["UID", "PID"], 1),
        "update": (0, str(96 << 20)), "delete running": True}
    for f in ("exec", "exec --process", "exec --env/--cwd/--user", "exec --detach --pid-file",
              "ps", "ps --format json", "update --resources", "kill --all", "delete"):
        conformance(f, "equal")


def test_pause_resume_equal(env):
    b = env.bundle()
    sh(b, "while :; do echo x > /dev/null; sleep 0.05; done")
    seen = {}
    for rt in RUNTIMES:
        cid = f"{b.id}-{rt}"
        b.save(cid)
        pidfile = os.path.join(b.dir, f"{rt}.pid")
        assert env.cli(rt, "run", "-d", "--pid-file", pidfile, "--bundle", b.dir, cid).returncode == 0
        pid = int(open(pidfile).read())
        assert env.cli(rt, "pause", cid).returncode == 0
        paused = json.loads(env.cli(rt, "state", cid).stdout)["status"]
        with open(f"/sys/fs/cgroup/freezer/{env.parent}/{cid}/freezer.state") as f:
            frozen = f.read().strip()
        again = env.cli(rt, "pause", cid).returncode
        assert env.cli(rt, "resume", cid).returncode == 0
        resumed = json.loads(env.cli(rt, "state", cid).stdout)["status"]
        not_paused = env.cli(rt, "resume", cid).returncode
        assert env.cli(rt, "delete", "--force", cid).returncode == 0
        reap(pid)
        seen[rt] = (paused, frozen, again != 0, resumed, not_paused != 0)
    assert seen["mcrt"] == seen["runc"] == ("paused", "FROZEN", True, "running", True)
    conformance("pause", "equal")
    conformance("resume", "equal")


def test_console_socket_equal(env, tmp_path):
    b = env.bundle()
    b.cfg["process"]["terminal"] = True
    b.cfg["process"]["args"] = ["sh", "-c", "tty; stty size; echo hi"]
    b.cfg["process"]["consoleSize"] = {"height": 30, "width": 100}
    outs = {}
    for rt in RUNTIMES:
        cid = f"{b.id}-{rt}"
        b.save(cid)
        path = str(tmp_path / f"{rt}.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        p = subprocess.Popen([env.bin[rt], "--root", env.roots[rt], "create", "--bundle", b.dir,
                              "--console-socket", path, cid], stderr=subprocess.PIPE, text=True)
        conn, _ = srv.accept()
        _msg, fds, _f, _a = socket.recv_fds(conn, 4096, 1)
        conn.close()
        srv.close()
        assert p.wait(timeout=30) == 0, p.stderr.read()
        assert len(fds) == 1 and os.isatty(fds[0])
        master = fds[0]
        assert env.cli(rt, "start", cid).returncode == 0
        data = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        os.close(master)
        pid = json.loads(env.cli(rt, "state", cid).stdout)["pid"]
        if pid:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        env.cli(rt, "delete", "--force", cid)
        outs[rt] = data.replace(b"\r", b"")
    assert outs["mcrt"] == outs["runc"] == b"/dev/pts/0\n30 100\nhi\n"
    conformance("create --console-socket (pty master by SCM_RIGHTS)", "equal")
    conformance("process.terminal", "equal")
    conformance("process.consoleSize", "equal")


def test_preserve_fds_and_no_pivot_equal(env):
    b = env.bundle()
    sh(b, "echo via-fd3 >&3; echo done")
    outs = {}
    for rt in RUNTIMES:
        rd, wr = os.pipe()
        cid = f"{b.id}-{rt}"
        b.save(cid)
        p = subprocess.run([env.bin[rt], "--root", env.roots[rt], "run", "--preserve-fds", "1",
                            "--no-pivot", "--bundle", b.dir, cid], pass_fds=(3,),
                           capture_output=True, text=True, preexec_fn=lambda w=wr: os.dup2(w, 3))
        os.close(wr)
        with os.fdopen(rd) as f:
            outs[rt] = (p.returncode, p.stdout, f.read())
    assert outs["mcrt"] == outs["runc"] == (0, "done\n", "via-fd3\n")
    conformance("create --preserve-fds", "equal")
    conformance("create --no-pivot", "equal")


def test_user_namespace_supported(env):
    b = env.bundle()
    b.cfg["linux"]["namespaces"].append({"type": "user"})
    b.cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.cfg["mounts"] = [m for m in b.cfg["mounts"] if m["type"] != "cgroup"]
    sh(b, "cat /proc/self/uid_map /proc/self/gid_map; id -u")
    m = env.run("mcrt", b)
    assert m.returncode == 0, m.stderr
    assert m.stdout.split() == ["0", "100000", "65536", "0", "100000", "65536", "0"]
    conformance("linux.uidMappings/gidMappings (user namespace)", "supported",
                "mcrt builds the rootfs as host root and enters the user namespace last, as mcd")


# ------------------------------------------------------------------ commands without a container

def test_version_features_spec(env, tmp_path):
    v = env.cli("mcrt", "--version")
    lines = v.stdout.splitlines()
    assert v.returncode == 0 and lines[0].startswith("mcrt version ") and lines[2].startswith("spec: 1.")
    feats = json.loads(env.cli("mcrt", "features").stdout)
    runc_feats = json.loads(env.cli("runc", "features").stdout)
    assert set(feats) >= {"ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux"}
    assert set(feats["linux"]) >= set(runc_feats["linux"]) - {"intelRdt"}
    (tmp_path / "b").mkdir()
    assert env.cli("mcrt", "spec", "--bundle", str(tmp_path / "b")).returncode == 0
    ours = json.loads((tmp_path / "b" / "config.json").read_text())
    subprocess.run(["runc", "spec", "--bundle", str(tmp_path)], check=True)
    theirs = json.loads((tmp_path / "config.json").read_text())
    assert set(ours) == set(theirs) and ours["mounts"] == theirs["mounts"]
    again = env.cli("mcrt", "spec", "--bundle", str(tmp_path / "b"))
    assert again.returncode == 1 and "exists" in again.stderr
    for f in ("--version", "features", "spec"):
        conformance(f, "supported")


def test_list_and_log_json(env, tmp_path):
    b = env.bundle()
    b.cfg["process"]["args"] = ["sleep", "30"]
    cid = f"{b.id}-mcrt"
    b.save(cid)
    assert env.cli("mcrt", "run", "-d", "--bundle", b.dir, cid).returncode == 0
    listed = json.loads(env.cli("mcrt", "list", "--format", "json").stdout)
    assert any(c["id"] == cid and c["status"] == "running" for c in listed)
    table = env.cli("mcrt", "list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    log = tmp_path / "log.json"
    p = env.cli("mcrt", "--log", str(log), "--log-format", "json", "start", cid)
    assert p.returncode == 1
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert lines[-1]["level"] == "error" and cid in lines[-1]["msg"]
    assert p.stderr.count("\n") == 1
    assert env.cli("mcrt", "delete", "--force", cid).returncode == 0
    assert env.cli("mcrt", "delete", "--force", cid).returncode == 0    # gone: --force is quiet
    for f in ("list", "--log --log-format json"):
        conformance(f, "supported")


# ------------------------------------------------------------------ bad input

def _assert_clean_failure(env, p, cid, needle):
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.count("\n") == 1 and needle in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert cid not in env.list_ids("mcrt")
    assert not os.path.exists(os.path.join(env.roots["mcrt"], cid))
    for ctrl in ("memory", "pids", "cpu"):
        assert not os.path.exists(f"/sys/fs/cgroup/{ctrl}/{env.parent}/{cid}")


def test_bad_input_missing_bundle(env, tmp_path):
    p = env.cli("mcrt", "create", "--bundle", str(tmp_path / "nope"), "bad1")
    _assert_clean_failure(env, p, "bad1", "no such directory")


def test_bad_input_malformed_config(env):
    b = env.bundle()
    with open(b.config_path, "w") as f:
        f.write('{"ociVersion": "1.0.2", "process": ')
    p = env.cli("mcrt", "create", "--bundle", b.dir, "bad2")
    _assert_clean_failure(env, p, "bad2", "malformed JSON")


def test_bad_input_unknown_namespace(env):
    b = env.bundle()
    b.cfg["linux"]["namespaces"].append({"type": "nosuchns"})
    b.save("bad3")
    p = env.cli("mcrt", "create", "--bundle", b.dir, "bad3")
    _assert_clean_failure(env, p, "bad3", "unknown namespace type 'nosuchns'")
    conformance("linux.namespaces (unknown type)", "refused")


def test_bad_input_id_in_use(env):
    b = env.bundle()
    b.cfg["process"]["args"] = ["sleep", "30"]
    cid = f"{b.id}-mcrt"
    b.save(cid)
    assert env.cli("mcrt", "create", "--bundle", b.dir, cid).returncode == 0
    p = env.cli("mcrt", "create", "--bundle", b.dir, cid)
    assert p.returncode == 1 and "already exists" in p.stderr and p.stderr.count("\n") == 1
    st = json.loads(env.cli("mcrt", "state", cid).stdout)
    assert st["status"] == "created"        # the first one is untouched
    assert env.cli("mcrt", "delete", cid).returncode == 0
    assert not os.path.exists(f"/proc/{st['pid']}") or open(f"/proc/{st['pid']}/stat").read().split(") ")[1][0] == "Z"


def test_bad_input_state_dir_of_another_user(env, tmp_path):
    root = tmp_path / "foreign"
    root.mkdir(mode=0o700)
    os.chown(root, 4242, 4242)
    b = env.bundle()
    b.save("bad5")
    p = subprocess.run([mcrt_binary(), "--root", str(root), "create", "--bundle", b.dir, "bad5"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "owned by uid 4242" in p.stderr and p.stderr.count("\n") == 1
    assert os.listdir(root) == []
    assert not os.path.exists(f"/sys/fs/cgroup/memory/{env.parent}/bad5")


@pytest.mark.parametrize("field,patch", [
    ("linux.intelRdt", lambda c: c["linux"].__setitem__("intelRdt", {"closID": "x"})),
    ("process.apparmorProfile", lambda c: c["process"].__setitem__("apparmorProfile", "p")),
    ("linux.resources.blockIO", lambda c: c["linux"]["resources"].__setitem__("blockIO", {"weight": 10})),
    ("linux.resources.memory.kernel", lambda c: c["linux"]["resources"].__setitem__("memory", {"kernel": 1 << 20})),
    ("mounts[7].options", lambda c: c["mounts"].append({"destination": "/x", "type": "bind",
                                                        "source": "/tmp", "options": ["rro"]})),
    ("linux.seccomp.listenerPath", lambda c: c["linux"].__setitem__("seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"})),
    ("mounts[7].destination", lambda c: c["mounts"].append({"destination": "/proc/sys", "type": "bind",
                                                            "source": "/tmp", "options": ["rbind"]})),
    ("unknownTopLevel", lambda c: c.__setitem__("unknownTopLevel", {"a": 1})),
])
def test_unhonourable_fields_are_refused_by_name(env, field, patch):
    b = env.bundle()
    patch(b.cfg)
    b.save("refused")
    p = env.cli("mcrt", "create", "--bundle", b.dir, "refused")
    _assert_clean_failure(env, p, "refused", field)
    conformance(field.replace("[7]", "[]"), "refused")


def test_run_with_terminal_proxies_the_pty_equal(env):
    """`run` in the foreground with process.terminal and no console socket: the runtime
    holds the pty master and copies it to its own stdio (here a pty of the test's)."""
    import pty
    b = env.bundle()
    b.cfg["process"]["terminal"] = True
    sh(b, "tty; read line; echo got:$line; exit 5")
    outs = {}
    for rt in RUNTIMES:
        cid = f"{b.id}-{rt}"
        b.save(cid)
        master, slave = pty.openpty()
        p = subprocess.Popen([env.bin[rt], "--root", env.roots[rt], "run", "--bundle", b.dir, cid],
                             stdin=slave, stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        data = b""
        sent = False
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if not sent and (b"console" in data or time.monotonic() > deadline - 18):
                os.write(master, b"hello\n")
                sent = True
            if not r:
                if p.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        if p.poll() is None:
            p.kill()
        os.close(master)
        rc = p.wait(timeout=30)
        outs[rt] = (rc, [x for x in data.replace(b"\r", b"").split(b"\n") if x and x != b"hello"])
    # The exit code, what went through the pty both ways and the slave's name are runc's.
    assert outs["mcrt"] == outs["runc"] == (5, [b"/dev/pts/0", b"got:hello"])
    conformance("run with process.terminal (pty proxied to the caller's stdio)", "equal")
