"""Shared fixtures for the root tier (real kernel: namespaces, mounts, cgroups).

- every test here carries the ``root`` mark (tests/python/mctestlib.py): skipped
  when not root, before any fixture runs.
- a session-level leak check: the pytest process is made a child subreaper, so
  every monitor/container process the tests start (double-forked, reparented)
  stays our descendant; at the end none may still run, and the host mount table
  may not hold anything under the test root (nor an nsfs bind anywhere in it). A
  namespace lives only while a process or an nsfs mount holds it, so these two
  checks also prove no netns/mount ns is left. (Comparing namespace inode numbers
  instead would be unsound: the kernel reuses them at once, and other tests on
  this host run containers that get them.) A leak fails the session.
- ``runtime_root`` (session): a private ROOT dir with the ``minimal`` template.
- ``run_container`` / ``start_container``: start real containers from it.

Other engineers: append fixtures below, do not reorder.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import shutil
import signal
import tempfile
import time
import uuid

import psutil
import pytest

PR_SET_CHILD_SUBREAPER = 36


def _mount_lines(needle: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if needle in line]


def _nsfs_mounts() -> list[str]:
    """nsfs binds whose mount point is ours (a runtime must never pin a namespace)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "nsfs" and "/mctest-" in fields[4]:
                out.append(line)
    return out


def _reap_zombies() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _live_descendants() -> list[psutil.Process]:
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.fixture(scope="session")
def leak_check_root():
    """A directory for everything the session creates, checked for leaks at the end."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    base = tempfile.mkdtemp(prefix="mctest-")
    before = set(_mount_lines(base))
    nsfs_before = set(_nsfs_mounts())
    yield base
    # Monitors finish a moment after their container; give them a few seconds.
    deadline = time.monotonic() + 10
    while True:
        _reap_zombies()
        live = _live_descendants()
        if not live or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    leftover_mounts = [m for m in _mount_lines(base) if m not in before]
    leftover_mounts += [m for m in _nsfs_mounts() if m not in nsfs_before]
    for p in live:     # be a good neighbour even when failing: these are ours
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    _reap_zombies()
    shutil.rmtree(base, ignore_errors=True)
    assert not live, f"processes left behind: {[(p.pid, p.info if hasattr(p, 'info') else '') for p in live]}"
    assert not leftover_mounts, f"mounts left on the host: {leftover_mounts}"


@pytest.fixture(scope="session")
def runtime_root(leak_check_root):
    from mcd.templates import TemplateStore
    root = os.path.join(leak_check_root, "root")
    store = TemplateStore(os.path.join(root, "templates"))
    store.ensure_minimal()
    return root


@pytest.fixture(scope="session")
def minimal_rootfs(runtime_root):
    from mcd.templates import TemplateStore
    return TemplateStore(os.path.join(runtime_root, "templates")).rootfs_path("minimal")


def make_spec(args, name=None, **kw):
    from mcwire.spec import ContainerSpec, Process
    pkw = {k: kw.pop(k) for k in list(kw) if k in
           ("env", "cwd", "user", "terminal", "capabilities", "no_new_privileges",
            "console_size")}
    return ContainerSpec(name=name or "c" + uuid.uuid4().hex[:10],
                         process=Process(args=list(args), **pkw), **kw)


def read_pty(master: int) -> bytes:
    """Everything a pty master yields until the other side is closed (EIO), then close it."""
    out = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:        # EIO: the process closed its side
            break
        if not data:
            break
        out += data
    os.close(master)
    return out


def read_all(fds: dict[int, str]) -> dict[str, bytes]:
    """Read pipes to EOF. fds: read fd -> key."""
    out = {k: b"" for k in fds.values()}
    sel = selectors.DefaultSelector()
    for fd, key in fds.items():
        sel.register(fd, selectors.EVENT_READ, key)
    while sel.get_map():
        for skey, _ in sel.select():
            data = os.read(skey.fd, 65536)
            if not data:
                sel.unregister(skey.fd)
                os.close(skey.fd)
            else:
                out[skey.data] += data
    return out


class Result:
    def __init__(self, exit, stdout, stderr, paths, launched):
        self.exit = exit
        self.code = exit["exit_code"] if exit else None
        self.stdout = stdout.decode()
        self.stderr = stderr.decode()
        self.paths = paths
        self.launched = launched


@pytest.fixture
def forkserver():
    """The fork server the runtime under test forks through: none here (the caller forks
    itself); test_forkserver.py gives a real one."""
    return None


@pytest.fixture
def runtime(forkserver):
    """A LinuxRuntime, as the daemon has one (its exit watcher is started only if used)."""
    from mcd.runtime.linux import LinuxRuntime
    rt = LinuxRuntime(forkserver=forkserver)
    yield rt
    rt.close()


@pytest.fixture
def run_container(runtime, runtime_root, minimal_rootfs):
    """run_container(args, **spec fields) -> Result (after the container exited)."""
    from mcd.runtime.interface import Stdio
    from mcd.store import ContainerPaths

    def run(args, *, spec=None, cgroup_procs=(), lower=None, stdin=None, **kw):
        spec = spec or make_spec(args, **kw)
        paths = ContainerPaths(dir=os.path.join(runtime_root, "containers", spec.name),
                               lower=lower or minimal_rootfs)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            launched = runtime.start(spec, paths, list(cgroup_procs),
                                     Stdio(stdin=stdin, stdout=out_w, stderr=err_w))
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        got = read_all({out_r: "out", err_r: "err"})
        # The monitor closes our pipes only when it exits, after writing exit.json.
        return Result(runtime.read_exit(paths), got["out"], got["err"], paths, launched)

    return run


@pytest.fixture
def start_container(runtime, runtime_root, minimal_rootfs):
    """start_container(args, **spec fields) -> (spec, paths, launched); killed at teardown."""
    from mcd.runtime.interface import Stdio
    from mcd.store import ContainerPaths
    started = []

    def start(args, *, spec=None, lower=None, stdio=None, cgroup_procs=(), **kw):
        spec = spec or make_spec(args, **kw)
        paths = ContainerPaths(dir=os.path.join(runtime_root, "containers", spec.name),
                               lower=lower or minimal_rootfs)
        launched = runtime.start(spec, paths, list(cgroup_procs), stdio or Stdio())
        started.append((paths, launched))
        return spec, paths, launched

    yield start
    from mcd.runtime.syscalls import proc_start_time
    for paths, launched in started:
        try:
            if proc_start_time(launched.pid) == launched.pid_start_time:
                os.kill(launched.pid, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass
        wait_exit(paths)


def wait_exit(paths, timeout: float = 10.0):
    """Poll for exit.json (the monitor writes it after reaping PID 1)."""
    from mcd.runtime.launcher import read_exit
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ex = read_exit(paths)
        if ex is not None:
            return ex
        time.sleep(0.02)
    raise AssertionError(f"no exit.json in {paths.dir} after {timeout}s")


# --- cgroups (resource manager engineer) ---------------------------------------------------

@pytest.fixture
def cgroup_manager():
    """A CgroupManager under a private parent `mctest-<random>` at the place the daemon's
    would go (root of each hierarchy, or the delegated unit). At teardown every container
    cgroup left in it is killed and removed, then the parent, and the fixture asserts that
    nothing is left in any hierarchy."""
    from mcd.runtime import cgroups
    mgr = cgroups.CgroupManager(parent=f"mctest-{uuid.uuid4().hex[:8]}", layout=cgroups.detect())
    mgr.prepare()
    yield mgr
    for cid in mgr.list_ids():
        cg = mgr.open(cid)
        if cg is not None:
            if cg.frozen():
                cg.thaw()
            cg.destroy(kill=True)
    mgr.remove_parent()
    left = [b for b in mgr.unique_bases() if os.path.exists(b)]
    assert not left, f"cgroups left behind: {left}"
