"""What every benchmarked tool runs on, and the idempotent teardown of all of it.

One busybox rootfs serves everyone: runc and crun get OCI bundles whose config.json comes
from `runc spec` (edited: no terminal, the command, the shared rootfs, a cgroup under our
own parent), podman gets an image from `podman import` of the same tree as a tarball.
Everything lives under names only the bench uses (WORK, MCD_ROOT, the cgroup parents, a
private runc/crun state root, a private podman storage), so teardown can remove exactly
what the bench made and nothing else, even after a crash (`harness.py cleanup`).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

import mcapi
import procstat

WORK = Path(os.environ.get("MCBENCH_WORK", "/run/mcbench"))
MCD_ROOT = Path(os.environ.get("MCBENCH_MCD_ROOT", "/var/lib/mcbench"))
MCD_CGROUP_PARENT = "mcbench"          # the daemon's containers
OCI_CGROUP_PARENT = "mcbench-oci"      # runc, crun and podman containers
CGROUP_ROOT = Path("/sys/fs/cgroup")
BUSYBOX = "/bin/busybox"
PODMAN_IMAGE = "localhost/mcbench-busybox:latest"

RUNC = "/usr/sbin/runc"
CRUN = "/usr/bin/crun"
PODMAN = "/usr/bin/podman"
NSENTER = "/usr/bin/nsenter"
UNSHARE = "/usr/bin/unshare"

Log = Callable[[str], None]


def sh(argv: list[str], *, env: dict | None = None, check: bool = True,
       timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, check=check, timeout=timeout, text=True,
                          stdin=subprocess.DEVNULL, capture_output=True)


# --- the rootfs -----------------------------------------------------------------------------

def build_rootfs(dest: Path) -> None:
    """A static busybox with its applet links: the same tree mcd's `minimal` template holds."""
    if dest.exists():
        shutil.rmtree(dest)
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "root"):
        (dest / d).mkdir(parents=True)
    shutil.copy2(os.path.realpath(BUSYBOX), dest / "bin/busybox")
    (dest / "bin/busybox").chmod(0o755)
    applets = sh([str(dest / "bin/busybox"), "--list"]).stdout.split()
    for name in applets:
        link = dest / "bin" / name
        if not link.exists():
            link.symlink_to("busybox")
    (dest / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (dest / "etc/group").write_text("root:x:0:\n")


def make_tarball(rootfs: Path, tar: Path) -> None:
    sh(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tar), "."])


# --- OCI bundles ------------------------------------------------------------------------------

def spec_template(work: Path) -> dict:
    """`runc spec` output, generated once; each bundle is an edited copy of it."""
    tmp = work / "spec-template"
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "config.json"
    if not cfg.exists():
        sh([RUNC, "spec", "--bundle", str(tmp)])
    return json.loads(cfg.read_text())


def write_bundle(work: Path, name: str, args: list[str], rootfs: Path) -> Path:
    """A bundle dir whose container gets its own cgroup /mcbench-oci/<name>.

    Without cgroupsPath runc would nest the container under its caller's cgroup, which on
    this machine belongs to the host; each bundle therefore names its own cgroup.
    """
    spec = spec_template(work)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["root"] = {"path": str(rootfs), "readonly": True}
    spec["hostname"] = "mcbench"
    spec["linux"]["cgroupsPath"] = f"/{OCI_CGROUP_PARENT}/{name}"
    bundle = work / "bundles" / name
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(spec, indent=1))
    return bundle


# --- crun's private mount namespace --------------------------------------------------------

class MountNsHolder:
    """A sleeping process in a private mount namespace without /sys/fs/cgroup/unified.

    crun 1.8 refuses this hybrid layout; inside that namespace it sees plain v1. Joining
    the namespace with nsenter costs one extra exec per run (measured as its own row),
    much less than `unshare -m sh -c 'umount ...; exec crun'` would.
    """

    def __init__(self, work: Path):
        self.pidfile = work / "mountns-holder.pid"

    def start(self) -> int:
        # unshare(1) makes the new namespace's mounts private, so the umount stays inside.
        proc = subprocess.Popen(
            [UNSHARE, "--mount", "--propagation", "private", "/bin/sh", "-c",
             "umount /sys/fs/cgroup/unified && exec sleep infinity"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        self.pidfile.write_text(str(proc.pid))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"mount namespace holder exited: {proc.stderr.read().strip()}")
            if _comm(proc.pid) == "sleep":
                return proc.pid
            time.sleep(0.01)
        raise RuntimeError("mount namespace holder did not come up in 10 s")

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _comm(pid) == "sleep" else None

    def nsenter(self) -> list[str]:
        pid = self.pid()
        if pid is None:
            raise RuntimeError("mount namespace holder is not running")
        return [NSENTER, f"--mount=/proc/{pid}/ns/mnt", "--"]

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            _kill_and_reap(pid)
        self.pidfile.unlink(missing_ok=True)


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _kill_and_reap(pid: int, sig: int = signal.SIGTERM, wait: float = 10.0) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not Path(f"/proc/{pid}").exists():
                return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


# --- podman with private storage and config ----------------------------------------------------

class Podman:
    """podman confined to the bench's own storage, config and cgroup parent.

    Here podman needs cgroupfs (PID 1 is not systemd), a file events logger, the runc
    runtime (crun refuses hybrid cgroups) and ulimits below the hard limits of this shell.
    """

    def __init__(self, work: Path):
        self.dir = work / "podman"
        self.env = {
            "CONTAINERS_CONF": str(self.dir / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.dir / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(self.dir / "registries.conf"),
        }

    def configure(self) -> None:
        d = self.dir
        for sub in ("graph", "run", "tmp", "networks", "volumes"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        nofile = min(20000, _hard_limit(resource.RLIMIT_NOFILE))
        nproc = min(32768, _hard_limit(resource.RLIMIT_NPROC))
        (d / "containers.conf").write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            'log_driver = "k8s-file"\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{d}/events.log"\n'
            'runtime = "runc"\n'
            f'tmp_dir = "{d}/tmp"\n'
            f'volume_path = "{d}/volumes"\n'
            "[network]\n"
            f'network_config_dir = "{d}/networks"\n')
        (d / "storage.conf").write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{d}/graph"\n'
            f'runroot = "{d}/run"\n')
        (d / "registries.conf").write_text("unqualified-search-registries = []\n")

    def argv(self, *args: str) -> list[str]:
        return [PODMAN, *args]

    def run_argv(self, *args: str) -> list[str]:
        return [PODMAN, "run", "--network", "none", "--runtime", "runc",
                "--cgroup-parent", f"/{OCI_CGROUP_PARENT}", *args]

    def call(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        env = dict(os.environ, **self.env)
        env["PATH"] = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
        return sh([PODMAN, *args], env=env, check=check, timeout=timeout).stdout

    def import_image(self, tar: Path) -> None:
        self.call("import", "--change", "CMD=/bin/sh", str(tar), PODMAN_IMAGE)

    def teardown(self, log: Log) -> None:
        if not (self.dir / "storage.conf").exists():
            return
        try:
            ids = self.call("ps", "-aq", check=False).split()
            for i in range(0, len(ids), 50):
                self.call("rm", "-f", "-t", "0", *ids[i:i + 50], check=False)
            self.call("rmi", "-a", "-f", check=False)
            if ids:
                log(f"  podman: removed {len(ids)} containers")
        except (subprocess.SubprocessError, OSError) as err:
            log(f"  podman teardown: {err}")


def _hard_limit(which: int) -> int:
    hard = resource.getrlimit(which)[1]
    return 1 << 30 if hard == resource.RLIM_INFINITY else hard


# --- a private dockerd ----------------------------------------------------------------------------

def docker_client() -> str | None:
    # The client from the same docker.io package speaks the server's API version natively.
    for c in ("/usr/bin/docker", "/usr/local/bin/docker"):
        if os.access(c, os.X_OK):
            return c
    return None


class Docker:
    """A private dockerd (own socket, data root, exec root, cgroup parent); stopped by pid.

    Offline and without touching the host's network: no bridge, no iptables. Its
    containerd is the one dockerd starts itself, under the private exec root.
    """

    def __init__(self, work: Path):
        self.dir = work / "docker"
        self.socket = work / "docker.sock"
        self.pidfile = work / "docker.pid"
        self.client = docker_client()
        self.env = {"DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(self.dir / "client")}

    @staticmethod
    def available() -> str | None:
        """None when usable, else why not."""
        if not shutil.which("dockerd", path="/usr/sbin:/usr/bin:/usr/local/bin"):
            return "no dockerd on this machine (docker client only): apt-get install docker.io to add it"
        if docker_client() is None:
            return "no docker client"
        return None

    def start(self, log_path: Path, timeout: float = 60) -> int:
        for sub in ("data", "exec", "client"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "daemon.json").write_text("{}\n")
        argv = [shutil.which("dockerd", path="/usr/sbin:/usr/bin:/usr/local/bin"),
                "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
                "-H", f"unix://{self.socket}", "--pidfile", str(self.pidfile),
                "--config-file", str(self.dir / "daemon.json"),
                "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
                "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", f"/{OCI_CGROUP_PARENT}",
                "--default-ulimit", "nofile=20000:20000"]
        logf = open(log_path, "ab")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                env={"PATH": "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"})
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"dockerd exited {proc.returncode} (see {log_path})")
            if self.call("version", "--format", "{{.Server.Version}}", check=False, timeout=10).strip():
                return proc.pid
            time.sleep(0.2)
        raise RuntimeError(f"dockerd did not answer within {timeout} s")

    def call(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        env = dict(os.environ, **self.env)
        env["PATH"] = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
        try:
            return sh([self.client, *args], env=env, check=check, timeout=timeout).stdout
        except subprocess.CalledProcessError:
            raise
        except (OSError, subprocess.SubprocessError):
            if check:
                raise
            return ""

    def argv(self, *args: str) -> list[str]:
        return [self.client, *args]

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if any(str(self.socket) in a for a in _cmdline(pid)) else None

    def containerd_pids(self) -> list[int]:
        """The containerd this dockerd started (its config lives under our exec root)."""
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                argv = _cmdline(int(d.name))
                if argv and argv[0].endswith("containerd") and any(str(self.dir) in a for a in argv):
                    out.append(int(d.name))
        return out

    def shim_pids(self) -> list[int]:
        ids = set(self.call("ps", "-q", "--no-trunc", check=False).split())
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            argv = _cmdline(int(d.name))
            if argv and argv[0].endswith("containerd-shim-runc-v2") and "-id" in argv:
                if argv[argv.index("-id") + 1] in ids:
                    pids.append(int(d.name))
        return pids

    def teardown(self, log: Log) -> None:
        pid = self.pid()
        if pid is None:
            return
        ids = self.call("ps", "-aq", check=False).split()
        for i in range(0, len(ids), 50):
            self.call("rm", "-f", *ids[i:i + 50], check=False)
        self.call("rmi", "-f", PODMAN_IMAGE, check=False)
        _kill_and_reap(pid, wait=30)
        self.pidfile.unlink(missing_ok=True)
        log(f"  docker: removed {len(ids)} containers, stopped dockerd")


# --- runc / crun state -------------------------------------------------------------------------

def oci_root(work: Path, runtime: str) -> Path:
    return work / f"{runtime}-state"


def oci_teardown(work: Path, runtime: str, prefix: list[str], log: Log) -> None:
    """Delete every container in the bench's private runtime root (--root)."""
    root = oci_root(work, runtime)
    if not root.exists():
        return
    binary = RUNC if runtime == "runc" else CRUN
    ids = [p.name for p in root.iterdir() if p.is_dir()]
    for cid in ids:
        sh([*prefix, binary, "--root", str(root), "delete", "--force", cid], check=False)
    if ids:
        log(f"  {runtime}: deleted {len(ids)} containers")


# --- the private mcd daemon ---------------------------------------------------------------------

class Daemon:
    """A private mcd on its own socket, root and cgroup parent; stopped by pid."""

    def __init__(self, work: Path, root: Path, mcd: str, log_path: Path):
        self.work, self.root, self.mcd, self.log_path = work, root, mcd, log_path
        self.socket = work / "mcd.sock"
        self.pidfile = work / "mcd.pid"
        self.proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        return [self.mcd, "--socket", str(self.socket), "--root", str(self.root),
                "--cgroup-parent", MCD_CGROUP_PARENT, "--web-listen", "off",
                # In the machine's own netns: containers get no network (as the others here,
                # --network none); bench/network_bench.py measures networks in a netns of its own.
                "--default-network", "none"]

    def start(self, timeout: float = 60) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")
        env = {"PATH": "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "LANG": "C.UTF-8", "PYTHONNOUSERSITE": "1"}
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        logf.close()
        self.pidfile.write_text(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"mcd exited {self.proc.returncode} at startup: "
                                   + " | ".join(tail))
            if self._answers():
                return self.proc.pid
            time.sleep(0.05)
        raise RuntimeError(f"mcd did not answer on {self.socket} within {timeout} s")

    def _answers(self) -> bool:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(2)
            s.connect(str(self.socket))
            s.sendall(b"GET /v1/version HTTP/1.1\r\nHost: mcd\r\nConnection: close\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1.")
        except OSError:
            return False
        finally:
            s.close()

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return None
        # Only ever signal the daemon this bench started on this socket.
        return pid if str(self.socket) in _cmdline(pid) else None

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            _kill_and_reap(pid, wait=20)
        self.pidfile.unlink(missing_ok=True)

    def stop_supervisor(self) -> None:
        """The daemon's one supervisor outlives it by design: stopped by its pid."""
        procstat.stop_supervisor(self.root)


def leftover_container_pids(root: Path) -> list[int]:
    """Monitors and PID 1s that a crashed run left, from the daemon's own state files."""
    pids = []
    for state in root.glob("containers/*/state.json"):
        try:
            data = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        for key in ("monitor_pid", "pid"):
            pid = data.get(key)
            if isinstance(pid, int) and pid > 1 and Path(f"/proc/{pid}").exists():
                pids.append(pid)
    return pids


# --- cgroups and mounts --------------------------------------------------------------------------

def cgroup_dirs(parent: str, cgroot: Path = CGROUP_ROOT) -> list[Path]:
    return [h / parent for h in sorted(cgroot.iterdir()) if (h / parent).is_dir()]


def remove_cgroup_tree(top: Path, log: Log) -> None:
    """rmdir leaf-first; processes still inside are ours (we made the cgroup): kill them."""
    for _ in range(50):
        if not top.exists():
            return
        busy = False
        for dirpath, dirnames, _files in os.walk(top, topdown=False):
            d = Path(dirpath)
            try:
                procs = (d / "cgroup.procs").read_text().split()
            except OSError:
                procs = []
            for pid in procs:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            if (d / "freezer.state").exists():
                try:
                    (d / "freezer.state").write_text("THAWED")
                except OSError:
                    pass
            try:
                d.rmdir()
            except OSError:
                busy = True
        if not busy:
            return
        time.sleep(0.1)
    log(f"  cgroup {top}: could not remove (still busy)")


def our_mounts(prefixes: list[Path]) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if any(mnt == str(p) or mnt.startswith(str(p) + "/") for p in prefixes):
                out.append(mnt)
    return sorted(out, key=len, reverse=True)


def teardown_all(work: Path, mcd_root: Path, log: Log = print) -> list[str]:
    """Remove everything the bench may have made. Idempotent; returns what is left."""
    holder = MountNsHolder(work)
    daemon = Daemon(work, mcd_root, mcd="", log_path=Path("/dev/null"))
    # Containers first: the daemon's monitors outlive it by design.
    if daemon.pid() is not None:
        try:
            n = mcapi.remove_all(str(daemon.socket))
            log(f"  mcd: removed {n} containers")
        except (OSError, ValueError, mcapi.ApiError) as err:
            log(f"  mcd: could not list/remove containers: {err}")
        daemon.stop()
        log("  mcd: stopped")
    daemon.stop_supervisor()
    for pid in leftover_container_pids(mcd_root):
        _kill_and_reap(pid, signal.SIGKILL, wait=2)
    Podman(work).teardown(log)
    Docker(work).teardown(log)
    oci_teardown(work, "runc", [], log)
    if holder.pid() is not None:
        oci_teardown(work, "crun", holder.nsenter(), log)
    elif oci_root(work, "crun").exists():
        tmp = MountNsHolder(work)
        tmp.start()
        oci_teardown(work, "crun", tmp.nsenter(), log)
        tmp.stop()
    holder.stop()
    for parent in (MCD_CGROUP_PARENT, OCI_CGROUP_PARENT):
        for top in cgroup_dirs(parent):
            remove_cgroup_tree(top, log)
    for mnt in our_mounts([work, mcd_root]):
        sh(["umount", "-l", mnt], check=False)
    for d in (work, mcd_root):
        shutil.rmtree(d, ignore_errors=True)
    left = [str(p) for parent in (MCD_CGROUP_PARENT, OCI_CGROUP_PARENT)
            for p in cgroup_dirs(parent)]
    left += our_mounts([work, mcd_root])
    left += [str(d) for d in (work, mcd_root) if d.exists()]
    return left
