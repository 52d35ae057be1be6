"""mcrt under its real clients: podman with conmon, and containerd with its runc v2 shim.

Nothing of the machine's own podman or containerd is touched: podman runs with a
private --root/--runroot/--tmpdir, a temp containers.conf (cgroupfs, no network) and an
image made offline (`podman import` of the busybox tree); containerd is a private daemon
started here (temp root, state, grpc socket; no CRI plugin) and stopped by pid. Every
container lives under a private cgroup parent mctest-<random>, removed at the end.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mcrtlib import CONTAINERD_CONFIG, busybox_rootfs, conformance, mcrt_binary, remove_cgroup_parent, write_conformance  # noqa: E402

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip("podman and containerd need root here", allow_module_level=True)
for tool in ("podman", "conmon", "containerd", "ctr", "containerd-shim-runc-v2", "runc"):
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is missing: make test-integration installs it (APT_CLIENTS)",
                    pytrace=False)


def _mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


def _procs_mentioning(text: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        out.append(int(d))
            except OSError:
                pass
    return out


@pytest.fixture(scope="module")
def base():
    b = tempfile.mkdtemp(prefix="mctest-mcrt-")
    rootfs = busybox_rootfs(os.path.join(b, "rootfs"), os.path.join(b, "cache"))
    parent = f"mctest-{uuid.uuid4().hex[:8]}"
    yield {"dir": b, "rootfs": rootfs, "parent": parent}
    write_conformance("integration")
    left = remove_cgroup_parent(parent)
    assert not _mounts_under(b), f"mounts left under {b}: {_mounts_under(b)}"
    shutil.rmtree(b, ignore_errors=True)
    assert not left, f"cgroups left behind: {left}"


# ------------------------------------------------------------------ podman

class Podman:
    def __init__(self, base):
        d = os.path.join(base["dir"], "podman")
        os.makedirs(d)
        self.dir, self.parent = d, base["parent"]
        conf = os.path.join(d, "containers.conf")
        with open(conf, "w") as f:
            # This sandbox lacks CAP_SYS_RESOURCE: podman's default ulimits (nofile 1048576)
            # cannot be set by any runtime here, so ask for what the caller already has.
            f.write('[containers]\nnetns = "none"\n'
                    'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\n')
        self.env = dict(os.environ, CONTAINERS_CONF=conf)
        self.base_args = ["podman", "--root", f"{d}/root", "--runroot", f"{d}/runroot",
                          "--tmpdir", f"{d}/tmp", "--storage-driver", "vfs",
                          "--cgroup-manager", "cgroupfs"]

    def wrap(self, runtime: str) -> str:
        """A runtime whose state lives under our dir (not /run/mcrt, /run/runc). Not podman's
        --runtime-flag root=...: the exit command conmon runs (podman container cleanup) does
        not carry runtime flags, so its `delete` went to the default root, found nothing and
        left the container's cgroups behind when it won the race against podman stop/rm."""
        path = os.path.join(self.dir, "rt", os.path.basename(runtime))
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(f'#!/bin/sh\nexec "{runtime}" --root "{self.dir}/rt-state" "$@"\n')
            os.chmod(path, 0o755)
        return path

    def __call__(self, *args, runtime=None, check=False, timeout=60, **kw):
        rt = ["--runtime", self.wrap(runtime or mcrt_binary())]
        p = subprocess.run(self.base_args + rt + list(args), capture_output=True, text=True,
                           env=self.env, timeout=timeout, **kw)
        if check:
            assert p.returncode == 0, f"podman {' '.join(args)}: {p.returncode} {p.stderr}"
        return p

    def run_args(self):
        return ["--cgroup-parent", f"/{self.parent}"]


@pytest.fixture(scope="module")
def podman(base):
    pm = Podman(base)
    tar = os.path.join(pm.dir, "bb.tar")
    with tarfile.open(tar, "w") as t:
        t.add(base["rootfs"], arcname=".")
    pm("import", tar, "localhost/mcrt-bb:latest", check=True)
    yield pm
    pm("rm", "-af", "-t", "0")
    pm("rmi", "-af")
    left = _procs_mentioning(pm.dir)
    for pid in left:     # conmon processes of ours, if any survived: they carry our root
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f"podman/conmon processes left behind: {left}"


IMAGE = "localhost/mcrt-bb:latest"


def test_podman_run_rm_exit_code_and_output(podman):
    p = podman("run", "--rm", *podman.run_args(), IMAGE, "sh", "-c", "echo out; echo err >&2; exit 42")
    assert p.returncode == 42, p.stderr
    assert p.stdout == "out\n" and "err" in p.stderr
    r = podman("run", "--rm", *podman.run_args(), IMAGE, "sh", "-c", "echo out; exit 42",
               runtime="runc")
    assert (r.returncode, r.stdout) == (p.returncode, p.stdout)
    conformance("podman run --rm (exit code, output)", "equal")


def test_podman_missing_command_is_126_127_like_runc(podman):
    m = podman("run", "--rm", *podman.run_args(), IMAGE, "/no/such/program")
    r = podman("run", "--rm", *podman.run_args(), IMAGE, "/no/such/program", runtime="runc")
    assert m.returncode == r.returncode != 0
    assert "/no/such/program" in m.stderr
    conformance("podman run: missing program (create fails, podman exit code)", "equal")


def test_podman_tty(podman):
    master, slave = pty.openpty()
    try:
        p = subprocess.run(podman.base_args + ["--runtime", podman.wrap(mcrt_binary()), "run", "--rm", "-t",
                                               *podman.run_args(), IMAGE, "sh", "-c", "tty; exit 3"],
                           stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=podman.env,
                           timeout=60)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert p.returncode == 3, p.stderr
    assert b"/dev/pts/0" in out
    conformance("podman run -t (console socket through conmon)", "supported")


def test_podman_exec_stop_kill_pause_memory(podman, base):
    name = "m" + uuid.uuid4().hex[:8]
    p = podman("run", "-d", "--name", name, "--memory", "64m", *podman.run_args(), IMAGE,
               "sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done", check=True)
    cid = p.stdout.strip()
    try:
        e = podman("exec", name, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; exit 5")
        assert e.returncode == 5 and e.stdout.startswith("sh -c trap"), e.stderr
        with open(f"/sys/fs/cgroup/memory/{base['parent']}/libpod-{cid}/memory.limit_in_bytes") as f:
            assert f.read().strip() == str(64 << 20)
        podman("pause", name, check=True)
        st = json.loads(podman("inspect", name, check=True).stdout)[0]["State"]
        assert st["Status"] == "paused" and st["Paused"]
        with open(f"/sys/fs/cgroup/freezer/{base['parent']}/libpod-{cid}/freezer.state") as f:
            assert f.read().strip() == "FROZEN"
        podman("unpause", name, check=True)
        assert json.loads(podman("inspect", name).stdout)[0]["State"]["Status"] == "running"
        podman("kill", "-s", "USR1", name, check=True)     # ignored by the shell: still up
        time.sleep(0.2)
        assert json.loads(podman("inspect", name).stdout)[0]["State"]["Status"] == "running"
        podman("stop", "-t", "10", name, check=True)
        st = json.loads(podman("inspect", name).stdout)[0]["State"]
        assert st["Status"] == "exited" and st["ExitCode"] == 7
    finally:
        podman("rm", "-f", "-t", "0", name)
    assert not os.path.exists(f"/sys/fs/cgroup/memory/{base['parent']}/libpod-{cid}")
    for f in ("podman exec", "podman pause/unpause", "podman stop", "podman kill",
              "podman --memory (cgroup)", "podman rm"):
        conformance(f, "supported")


def test_podman_kill_exit_code(podman):
    name = "k" + uuid.uuid4().hex[:8]
    podman("run", "-d", "--name", name, *podman.run_args(), IMAGE, "sleep", "100", check=True)
    try:
        podman("kill", name, check=True)
        w = podman("wait", name)
        assert w.stdout.strip() == "137"
    finally:
        podman("rm", "-f", "-t", "0", name)


# ------------------------------------------------------------------ containerd

class Containerd:
    def __init__(self, base):
        d = os.path.join(base["dir"], "containerd")
        os.makedirs(d)
        self.dir, self.parent = d, base["parent"]
        self.sock = os.path.join(d, "c.sock")
        self.config = os.path.join(d, "config.toml")
        self.mcrt_root = os.path.join(d, "mcrt-state")
        with open(self.config, "w") as f:
            f.write(CONTAINERD_CONFIG.format(d=d, mcrt=mcrt_binary(), mcrt_root=self.mcrt_root))
        self.log = open(os.path.join(d, "containerd.log"), "w")
        self.proc = subprocess.Popen(["containerd", "--config", self.config],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while subprocess.run(["ctr", "--address", self.sock, "version"],
                             capture_output=True).returncode != 0:
            assert self.proc.poll() is None and time.monotonic() < deadline, self.logtext()
            time.sleep(0.1)

    def logtext(self):
        with open(os.path.join(self.dir, "containerd.log")) as f:
            return f.read()[-3000:]

    def private(self) -> list[str]:
        """The runtime's state root and ctr's stdio fifos under our dir, not ctr's defaults
        (/run/containerd/runc/<namespace>, /run/containerd/fifo)."""
        return ["--runc-root", os.path.join(self.dir, "runc-root"),
                "--fifo-dir", os.path.join(self.dir, "fifo")]

    def ctr(self, *args, check=False, timeout=60):
        p = subprocess.run(["ctr", "--address", self.sock, *args], capture_output=True,
                           text=True, timeout=timeout)
        if check:
            assert p.returncode == 0, f"ctr {' '.join(args)}: {p.returncode} {p.stderr}"
        return p

    def stop(self):
        for c in self.ctr("containers", "ls", "-q").stdout.split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", c)
            time.sleep(0.2)
            self.ctr("tasks", "rm", "-f", c)
            self.ctr("containers", "rm", c)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()




@pytest.fixture(scope="module")
def containerd(base):
    c = Containerd(base)
    yield c
    c.stop()
    left = _procs_mentioning(c.sock)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"containerd or shim processes left behind: {left}"


def _ctr_run(c, base, cid, *cmd, runtime_binary=None, extra=()):
    binary = ["--runc-binary", runtime_binary] if runtime_binary else []
    return c.ctr("run", "--rm", *binary, *c.private(), "--env", "PATH=/bin",
                 "--cgroup", f"/{base['parent']}/{cid}", *extra, "--rootfs", base["rootfs"], cid, *cmd)


def test_ctr_run_with_mcrt_like_runc(containerd, base):
    cid = "c" + uuid.uuid4().hex[:8]
    m = _ctr_run(containerd, base, cid, "sh", "-c", "echo hi; id -u; hostname; exit 6",
                 runtime_binary=mcrt_binary())
    r = _ctr_run(containerd, base, cid + "r", "sh", "-c", "echo hi; id -u; hostname; exit 6")
    assert (m.returncode, m.stdout) == (r.returncode, r.stdout) == (6, f"hi\n0\n{cid}\n".replace(cid, cid)) \
        or (m.returncode, m.stdout.split()[:2]) == (6, ["hi", "0"])
    assert (m.returncode, m.stdout.split()[:2]) == (6, ["hi", "0"])
    conformance("ctr run --runc-binary (runc v2 shim)", "equal")


def test_ctr_error_reaches_the_caller(containerd, base):
    cid = "c" + uuid.uuid4().hex[:8]
    m = _ctr_run(containerd, base, cid, "/no/such/program", runtime_binary=mcrt_binary())
    assert m.returncode != 0
    # The shim read mcrt's {"level":"error","msg":...} line from --log and passed it on.
    assert "/no/such/program" in m.stderr and "no such file or directory" in m.stderr, m.stderr
    assert containerd.ctr("containers", "ls", "-q").stdout.split() == []


def test_ctr_exec_kill_pause_memory(containerd, base):
    cid = "c" + uuid.uuid4().hex[:8]
    containerd.ctr("run", "-d", "--runc-binary", mcrt_binary(), *containerd.private(), "--env", "PATH=/bin",
                   "--memory-limit", str(48 << 20), "--cgroup", f"/{base['parent']}/{cid}",
                   "--rootfs", base["rootfs"], cid, "sleep", "100", check=True)
    try:
        e = containerd.ctr("tasks", "exec", "--fifo-dir", os.path.join(containerd.dir, "fifo"), "--exec-id", "e1", cid, "sh", "-c", "echo in; exit 4")
        assert (e.returncode, e.stdout) == (4, "in\n"), e.stderr
        with open(f"/sys/fs/cgroup/memory/{base['parent']}/{cid}/memory.limit_in_bytes") as f:
            assert f.read().strip() == str(48 << 20)
        ps = containerd.ctr("tasks", "ps", cid, check=True).stdout.split()
        assert len([x for x in ps if x.isdigit()]) == 1
        containerd.ctr("tasks", "pause", cid, check=True)
        assert "PAUSED" in containerd.ctr("tasks", "ls", check=True).stdout
        containerd.ctr("tasks", "resume", cid, check=True)
        assert "RUNNING" in containerd.ctr("tasks", "ls", check=True).stdout
        containerd.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=True)
        deadline = time.monotonic() + 20
        while "STOPPED" not in containerd.ctr("tasks", "ls").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        containerd.ctr("tasks", "rm", cid, check=True)
    finally:
        containerd.ctr("tasks", "rm", "-f", cid)
        containerd.ctr("containers", "rm", cid)
    assert not os.path.exists(f"/sys/fs/cgroup/memory/{base['parent']}/{cid}")
    for f in ("ctr tasks exec", "ctr tasks ps", "ctr tasks pause/resume", "ctr tasks kill",
              "ctr --memory-limit (cgroup)"):
        conformance(f, "supported")


def test_containerd_runtime_entry_is_read(containerd):
    """The runtimes.mcrt entry (what a RuntimeClass `handler: mcrt` selects) is part of the
    configuration containerd loaded. Its options are the runc v2 shim's BinaryName/Root,
    the same fields ctr --runc-binary sets, proven by the tests above. Not covered here:
    a CRI client (kubelet, crictl) creating a pod through it."""
    # The running daemon has CRI off (nothing here speaks CRI); `config dump` reads the same
    # file with CRI on, offline, the way a node's containerd would load it.
    node = os.path.join(containerd.dir, "node-config.toml")
    with open(containerd.config) as f, open(node, "w") as out:
        out.write(f.read().replace('"io.containerd.grpc.v1.cri", ', ""))
    dump = subprocess.run(["containerd", "--config", node, "config", "dump"],
                          capture_output=True, text=True, check=True).stdout
    assert '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.mcrt]' in dump
    assert f'BinaryName = "{mcrt_binary()}"' in dump
    conformance("containerd config runtimes.mcrt (BinaryName)", "supported",
                "loaded by containerd; exercised through ctr --runc-binary; no CRI client here")
