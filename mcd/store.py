"""On-disk state under ROOT/containers/<id>/.

Every write is atomic (temp file in the same dir, fsync, rename, fsync the dir),
so a crash leaves either the old or the new file, never half of one. A container
directory is born complete: it is written as ``.<id>.new`` and renamed into
place, so a directory without the leading dot always has its config.json.
Leftover ``.*.new`` directories are half-made creates and are removed on startup.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from mcd.errors import KernelError


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_json(path: str, obj, mode: int = 0o600) -> None:
    d = os.path.dirname(path) or "."
    data = (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.rename(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        fsync_dir(d)
    except OSError as err:
        raise KernelError.from_oserror("write", err, path=path, step="store") from err


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

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.containers, cid)

    def config_path(self, cid: str) -> str:
        return os.path.join(self.container_dir(cid), "config.json")

    def state_path(self, cid: str) -> str:
        return os.path.join(self.container_dir(cid), "state.json")

    def create(self, cid: str, config: dict, state: dict) -> str:
        """Write a whole container directory, then make it appear in one rename."""
        final = self.container_dir(cid)
        tmp = os.path.join(self.containers, f".{cid}.new")
        try:
            os.mkdir(tmp, 0o711)
            atomic_write_json(os.path.join(tmp, "config.json"), config)
            atomic_write_json(os.path.join(tmp, "state.json"), state)
            os.rename(tmp, final)
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

    def write_state(self, cid: str, state: dict) -> None:
        atomic_write_json(self.state_path(cid), state)

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

    def remove(self, cid: str) -> None:
        """Rename away first so a crash mid-delete never leaves a half container visible."""
        final = self.container_dir(cid)
        trash = os.path.join(self.containers, f".{cid}.del")
        try:
            os.rename(final, trash)
            fsync_dir(self.containers)
        except FileNotFoundError:
            return
        except OSError as err:
            raise KernelError.from_oserror("remove container dir", err, path=final,
                                           step="store") from err
        shutil.rmtree(trash, ignore_errors=True)

    def clean_trash(self) -> None:
        for n in os.listdir(self.containers):
            if n.startswith(".") and n.endswith(".del"):
                shutil.rmtree(os.path.join(self.containers, n), ignore_errors=True)
