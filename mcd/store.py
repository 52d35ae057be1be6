"""On-disk state under ROOT/containers/<id>/: the one owner of that layout.

    ROOT/containers/<id>/config.json     the spec, name, created, auto_remove
                        /state.json      status, pids, exit code... (mcd.manager.state)
                        /container.log   what PID 1 wrote (mcd.runtime.logs)
                        /exit.json       written by the monitor when PID 1 ended
                        /upper /work /rootfs /lower   the overlay (mcd.runtime.rootfs)
                        /hostname /hosts /resolv.conf bound into the container

Everyone else asks the store for a path (``Store.paths`` gives the runtime all of a
container's at once, as a ``ContainerPaths``).

Every write is atomic (mcd.atomicfile: temp file in the same dir, fsync, rename, fsync the dir),
so a crash leaves either the old or the new file, never half of one. A container
directory is born complete: it is written as ``.<id>.new`` and renamed into
place, so a directory without the leading dot always has its config.json.
Leftover ``.*.new`` directories are half-made creates and are removed on startup.

``durable=False`` skips the fsyncs (never the rename) for a container that is removed
when it exits (``--rm``): a daemon crash loses nothing that is not synced (the page
cache outlives the process), and after a host crash, when no process, cgroup or mount
of it can be left, restore removes what is left of such a container (its config.json
is always synced, so restore knows it is one).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
from dataclasses import dataclass, field

from mcd.atomicfile import fsync_dir, write_atomic
from mcd.errors import KernelError

CONFIG, STATE, LOG = "config.json", "state.json", "container.log"


@dataclass
class ContainerPaths:
    """Where a container's files are: its directory and what its overlay stacks. lower: a
    template's one tree; lowers: an image's layers, top first (overlay's order), and
    lower_base: the directory they are short names under (the mount is made from there
    with relative names, see rootfs.mount_overlay)."""
    dir: str
    lower: str = ""
    lowers: list = field(default_factory=list)
    lower_base: str = ""

    def __post_init__(self):
        if not self.lowers:
            self.lowers = [self.lower]
        if not self.lower:
            self.lower = self.lowers[0]
        d = self.dir
        self.upper = os.path.join(d, "upper")
        self.work = os.path.join(d, "work")
        self.rootfs = os.path.join(d, "rootfs")
        self.lower_idmapped = os.path.join(d, "lower")
        self.log = os.path.join(d, LOG)
        self.exit = os.path.join(d, "exit.json")
        self.hostname = os.path.join(d, "hostname")
        self.hosts = os.path.join(d, "hosts")
        self.resolv_conf = os.path.join(d, "resolv.conf")


def _encode(obj) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def _write_all(fd: int, data: bytes, sync: bool) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    if sync:
        os.fsync(fd)


def atomic_write_json(path: str, obj, mode: int = 0o600, durable: bool = True) -> None:
    try:
        write_atomic(path, _encode(obj), mode=mode, durable=durable)
    except OSError as err:
        raise KernelError.from_oserror("write", err, path=path, step="store") from err


def _write_new(path: str, obj, sync: bool) -> None:
    """A file in a directory nobody sees yet: no temp file and rename needed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, _encode(obj), sync)
    finally:
        os.close(fd)


class CorruptState(Exception):
    """A state file that exists but cannot be parsed; says which file and why."""

    def __init__(self, path: str, why: str):
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


def read_json(path: str):
    """The parsed file, None if it does not exist, CorruptState if it is not JSON."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptState(path, f"not valid JSON ({err})") from None


class Store:
    def __init__(self, root: str):
        self.root = root
        self.containers = os.path.join(root, "containers")
        os.makedirs(self.containers, mode=0o711, exist_ok=True)
        self._purge_queue: queue.Queue = queue.Queue()
        self._purge_lock = threading.Lock()
        self._purger: threading.Thread | None = None

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.containers, cid)

    def config_path(self, cid: str) -> str:
        return os.path.join(self.container_dir(cid), CONFIG)

    def state_path(self, cid: str) -> str:
        return os.path.join(self.container_dir(cid), STATE)

    def log_path(self, cid: str) -> str:
        return os.path.join(self.container_dir(cid), LOG)

    def paths(self, cid: str, lower: str = "", lowers=(), lower_base: str = "") -> ContainerPaths:
        """Every file of the container, for the runtime: lower is its template's rootfs,
        or lowers (under lower_base) its image's layers."""
        return ContainerPaths(dir=self.container_dir(cid), lower=lower, lowers=list(lowers),
                              lower_base=lower_base)

    def create(self, cid: str, config: dict, state: dict, durable: bool = True) -> str:
        """Write a whole container directory, then make it appear in one rename.

        config.json is synced even when not durable: restore must be able to tell
        that what a host crash left belongs to a container it may remove.
        """
        final = self.container_dir(cid)
        tmp = os.path.join(self.containers, f".{cid}.new")
        try:
            os.mkdir(tmp, 0o711)
            _write_new(os.path.join(tmp, CONFIG), config, True)
            _write_new(os.path.join(tmp, STATE), state, durable)
            fsync_dir(tmp)
            os.rename(tmp, final)
            if durable:
                fsync_dir(self.containers)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise KernelError.from_oserror("create container dir", err, path=final,
                                           step="store") from err
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def write_config(self, cid: str, config: dict) -> None:
        atomic_write_json(self.config_path(cid), config)

    def write_state(self, cid: str, state: dict, durable: bool = True) -> None:
        atomic_write_json(self.state_path(cid), state, durable=durable)

    def read_config(self, cid: str):
        return read_json(self.config_path(cid))

    def read_state(self, cid: str):
        return read_json(self.state_path(cid))

    def list_ids(self) -> list[str]:
        try:
            names = os.listdir(self.containers)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if not n.startswith("."))

    def clean_half_made(self) -> list[str]:
        """Remove directories of creates that never completed; returns their names."""
        removed = []
        for n in os.listdir(self.containers):
            if n.startswith(".") and n.endswith(".new"):
                shutil.rmtree(os.path.join(self.containers, n), ignore_errors=True)
                removed.append(n)
        return removed

    def remove(self, cid: str, durable: bool = True, background: bool = False) -> None:
        """Rename away first so a crash mid-delete never leaves a half container visible.

        With background, the files are deleted by a thread after this returns (off the
        request path); a crash before it is done leaves a ``.del`` dir that startup
        removes (clean_trash).
        """
        final = self.container_dir(cid)
        trash = os.path.join(self.containers, f".{cid}.del")
        try:
            os.rename(final, trash)
            if durable:
                fsync_dir(self.containers)
        except FileNotFoundError:
            return
        except OSError as err:
            raise KernelError.from_oserror("remove container dir", err, path=final,
                                           step="store") from err
        if background:
            self._purge_later(trash)
        else:
            shutil.rmtree(trash, ignore_errors=True)

    def _purge_later(self, trash: str) -> None:
        # One thread for all deletes, so a prune of hundreds does not start hundreds.
        with self._purge_lock:
            self._purge_queue.put(trash)
            if self._purger is None:
                self._purger = threading.Thread(target=self._purge_loop, name="rm-trash",
                                                daemon=True)
                self._purger.start()

    def _purge_loop(self) -> None:
        while True:
            trash = self._purge_queue.get()
            shutil.rmtree(trash, ignore_errors=True)
            self._purge_queue.task_done()

    def wait_purged(self) -> None:
        """Until every background delete asked for so far is done (tests, shutdown)."""
        self._purge_queue.join()

    def clean_trash(self) -> None:
        for n in os.listdir(self.containers):
            if n.startswith(".") and n.endswith(".del"):
                shutil.rmtree(os.path.join(self.containers, n), ignore_errors=True)
