"""One container's state directory: ROOT/ID/ holding state.json (written atomically),
config.json (the bundle's config as the container was created from it), exec.fifo
(present while the init waits for `start`) and seccomp.bpf (the compiled profile that
exec reuses).

Status is derived, as runc derives it: no live init -> stopped; exec.fifo present ->
created; cgroup frozen -> paused; else running. The init is identified by pid and
start time, so a reused pid never passes for the container."""

from __future__ import annotations

import datetime
import json
import os
import re
import stat

from mcrt.errors import McrtError, from_oserror

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,1023}")
FIFO = "exec.fifo"


def check_id(cid: str) -> None:
    if not ID_RE.fullmatch(cid or ""):
        raise McrtError(f"invalid container id {cid!r}: letters, digits, _ . + - "
                        "(not starting with one of _ . + -)")


def ensure_root(root: str, create: bool) -> None:
    """The state root must be ours: a directory another user owns (or anyone may write
    into) could hold state.json files that make us signal or delete the wrong things."""
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        if not create:
            return
        try:
            os.makedirs(root, 0o700, exist_ok=True)
        except OSError as err:
            raise from_oserror("create state root", err, root) from err
        st = os.lstat(root)
    except OSError as err:
        raise from_oserror("state root", err, root) from err
    if not stat.S_ISDIR(st.st_mode):
        raise McrtError(f"state root {root}: not a directory")
    if st.st_uid != os.geteuid():
        raise McrtError(f"state root {root}: owned by uid {st.st_uid}, not by this user "
                        f"(uid {os.geteuid()})")
    if st.st_mode & 0o022:
        raise McrtError(f"state root {root}: writable by other users (mode {stat.S_IMODE(st.st_mode):o})")


def now_rfc3339() -> str:
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}000Z"


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Whole or not at all (a temp file renamed over the old one), as runc writes its
    state and pid files. No fsync: a reader sees the whole file after the rename whatever
    the disk does, and after a crash none of it matters (the state root is /run, a tmpfs;
    the processes it names are gone), so each call would wait on a flush for nothing."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise from_oserror("write", err, path) from err


def proc_start(pid: int) -> tuple[int, str] | None:
    """(start time, state letter) of a pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[19]), rest[0].decode()


class Container:
    def __init__(self, root: str, cid: str):
        check_id(cid)
        self.root, self.id = root, cid
        self.dir = os.path.join(root, cid)
        self.state_file = os.path.join(self.dir, "state.json")
        self.fifo = os.path.join(self.dir, FIFO)
        self.config_file = os.path.join(self.dir, "config.json")
        self.bpf_file = os.path.join(self.dir, "seccomp.bpf")
        self.data: dict = {}
        self.console = None     # `run`'s end of the pty socket (foreground with a terminal)

    # -- loading
    def load(self) -> "Container":
        try:
            st = os.lstat(self.dir)
        except FileNotFoundError:
            raise McrtError(f"container {self.id} does not exist", container=self.id) from None
        if st.st_uid != os.geteuid() or not stat.S_ISDIR(st.st_mode):
            raise McrtError(f"container {self.id}: state directory {self.dir} is owned by uid "
                            f"{st.st_uid}, not by this user", container=self.id)
        try:
            with open(self.state_file, "rb") as f:
                self.data = json.loads(f.read())
        except FileNotFoundError:
            raise McrtError(f"container {self.id} does not exist (no state.json: its create "
                            "did not finish)", container=self.id) from None
        except (OSError, ValueError) as err:
            raise McrtError(f"container {self.id}: read {self.state_file}: {err}",
                            container=self.id) from None
        return self

    def config(self) -> dict:
        with open(self.config_file, "rb") as f:
            return json.loads(f.read())

    def save(self) -> None:
        write_atomic(self.state_file, json.dumps(self.data, indent=1).encode())

    # -- status
    @property
    def pid(self) -> int:
        return int(self.data.get("pid") or 0)

    def alive(self) -> bool:
        got = proc_start(self.pid) if self.pid else None
        return bool(got) and got[0] == self.data.get("start_time") and got[1] not in ("Z", "X")

    def signal_init(self, sig: int) -> bool:
        """Send `sig` to the init through a pidfd; False when it is gone. The start time
        is checked after the pidfd is open, so the fd names this very process, never a
        newer one with a reused pid (mcd's LinuxRuntime.adopt/signal do the same)."""
        import select
        import signal as _signal
        if not self.pid:
            return False
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return False
        except OSError as err:
            raise from_oserror(f"container {self.id}: pidfd_open", err) from err
        try:
            if not self.alive():
                return False
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            if poller.poll(0):      # exited (a zombie): nothing to signal
                return False
            try:
                _signal.pidfd_send_signal(fd, sig)
            except ProcessLookupError:
                return False
            except OSError as err:
                raise from_oserror(f"container {self.id}: kill", err) from err
            return True
        finally:
            os.close(fd)

    def frozen(self) -> bool:
        """Read straight from the freezer (v1) or cgroup.events (v2): `state`, which podman
        and the shim call most, needs no cgroup driver for it."""
        cg = self.data.get("cgroup") or {}
        dirs = cg.get("dirs") or {}
        try:
            if cg.get("driver") == "v1":
                if "freezer" not in dirs:
                    return False
                with open(os.path.join(dirs["freezer"], "freezer.state")) as f:
                    return f.read().strip() == "FROZEN"
            with open(os.path.join(dirs.get("", ""), "cgroup.events")) as f:
                return "frozen 1" in f.read()
        except OSError:
            return False

    def status(self, cgroup=None) -> str:
        if not self.alive():
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        if cgroup.frozen() if cgroup is not None else self.frozen():
            return "paused"
        return "running"

    def oci_state(self, status: str) -> dict:
        d = self.data
        out = {"ociVersion": d.get("ociVersion", "1.0.2"), "id": self.id,
               "pid": self.pid if status != "stopped" else 0, "status": status,
               "bundle": d.get("bundle", ""), "rootfs": d.get("rootfs", ""),
               "created": d.get("created", ""), "owner": ""}
        if d.get("annotations"):
            out["annotations"] = d["annotations"]
        return out
