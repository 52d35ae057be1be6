"""The commands. Each is one short process: check everything, then act; a create that
fails part-way removes what it made (init, cgroup, state directory)."""

from __future__ import annotations

import json
import os
import signal
import sys

from mcrt import state as S
from mcrt.errors import McrtError, from_oserror


# ------------------------------------------------------------------ helpers

def _bundle(ns) -> str:
    return os.path.abspath(ns.bundle or os.getcwd())


def _load(ns, cid: str) -> S.Container:
    S.ensure_root(ns.root, create=False)
    return S.Container(ns.root, cid).load()


def _cgroup(c: S.Container):
    from mcrt.cgroup import ContainerCgroup
    return ContainerCgroup.from_state(c.id, c.data["cgroup"])


def _write_pid_file(path: str, pid: int) -> None:
    if path:
        S.write_atomic(os.path.abspath(path), str(pid).encode(), 0o644)


def parse_signal(text: str) -> int:
    """Names (TERM, SIGKILL) and numbers, by mcd's one rule (mcd.runtime.interface)."""
    from mcd.runtime.interface import signal_number
    from mcwire.errors import InvalidArgument
    try:
        return signal_number(text)
    except InvalidArgument as err:
        raise McrtError(f"invalid signal {text!r}: {err}") from None


def _hook_state(c: S.Container, status: str, pid: int | None = None) -> dict:
    st = c.oci_state(status)
    if pid is not None:
        st["pid"] = pid
    st.pop("rootfs", None)
    st.pop("created", None)
    st.pop("owner", None)
    return st


def _warn_hooks(c: S.Container, kind: str, status: str, log) -> None:
    try:
        hooks = (c.config().get("hooks") or {}).get(kind)
    except (OSError, ValueError):
        return
    if not hooks:
        return
    from mcrt.init import Refused, run_hooks
    from mcd.runtime.rootfs import StepFailed
    try:
        run_hooks(hooks, _hook_state(c, status), kind)
    except (Refused, StepFailed) as err:
        log.warn(f"container {c.id}: {err}")


# ------------------------------------------------------------------ create

def _create(ns, log, *, for_run: bool = False) -> tuple[S.Container, int]:
    from mcrt import config as C
    from mcrt.cgroup import ContainerCgroup
    cid = ns.id
    S.check_id(cid)
    S.ensure_root(ns.root, create=True)
    bundle = _bundle(ns)
    cfg = C.load(bundle)
    proc, lin = cfg["process"], cfg.get("linux") or {}
    nstypes = {n["type"]: n.get("path") or "" for n in lin.get("namespaces") or []}
    if "mount" not in nstypes:
        raise McrtError("config.json: linux.namespaces: a mount namespace is required "
                        "(mcrt builds the rootfs with mounts)")
    if proc.get("terminal") and not ns.console_socket and not for_run:
        raise McrtError("process.terminal is true: --console-socket is required to receive "
                        "the pty")
    if proc.get("terminal") and not ns.console_socket and for_run and ns.detach:
        raise McrtError("run --detach: process.terminal is true: --console-socket is required "
                        "to receive the pty (nobody would hold it)")
    if ns.console_socket and not proc.get("terminal"):
        raise McrtError("--console-socket given but process.terminal is false")
    if os.path.lexists(os.path.join(ns.root, cid)):
        raise McrtError(f"container {cid} already exists (state in {os.path.join(ns.root, cid)})",
                        container=cid)
    cgroup = ContainerCgroup.plan(cid, lin.get("cgroupsPath") or "", ns.systemd_cgroup)
    cgroup.check(lin.get("resources") or {})
    bpf = None
    if lin.get("seccomp"):
        from mcrt.seccomp import compile_profile
        bpf = compile_profile(lin["seccomp"])
    from mcd.runtime import security
    from mcd.runtime.rootfs import StepFailed  # noqa: F401 - imported before fork
    fds: dict = {}
    made_dir = made_cgroup = False
    a_pid = init_pid = 0
    sock = None
    c = S.Container(ns.root, cid)
    try:
        for t, p in nstypes.items():
            if p and t != "user":
                try:
                    fds[t] = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as err:
                    raise McrtError(f"config.json: linux.namespaces {t}: open {p}: "
                                    f"{os.strerror(err.errno)}") from None
        if "user" in nstypes:
            fds["userns"] = _userns(nstypes["user"], lin)
        try:
            os.mkdir(c.dir, 0o700)
        except FileExistsError:
            raise McrtError(f"container {cid} already exists", container=cid) from None
        except OSError as err:
            raise from_oserror(f"container {cid}: create state directory", err, c.dir) from err
        made_dir = True
        S.write_atomic(c.config_file, json.dumps(cfg).encode())
        if bpf is not None:
            S.write_atomic(c.bpf_file, bpf)
        try:
            os.mkfifo(c.fifo, 0o622)
            os.chmod(c.fifo, 0o622)     # past the umask: a user-namespaced init writes it
        except OSError as err:
            raise from_oserror(f"container {cid}: mkfifo", err, c.fifo) from err
        fds["statedir"] = os.open(c.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        cgroup.create(lin.get("resources") or {})
        made_cgroup = True
        if ns.console_socket:
            fds["console"] = _connect(ns.console_socket)
        elif proc.get("terminal"):
            # `run` in the foreground: the pty master comes to us, and we copy it to our
            # own stdio (runc does the same).
            import socket
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            fds["console"] = theirs.detach()
            c.console = mine
        plan = {"id": cid, "bundle": bundle, "cgroup": cgroup.to_state(),
                "cgroup_join": cgroup.join_files(), "bpf": bpf, "cap_last": security.last_cap(),
                "preserve_fds": ns.preserve_fds, "no_pivot": ns.no_pivot,
                "new_keyring": not ns.no_new_keyring}
        from mcrt import init
        sys.stdout.flush()
        sys.stderr.flush()
        sock, a_pid = init.fork_init(plan, cfg, fds)
        for k in list(fds):
            os.close(fds.pop(k))
        # A says "P" (B's host pid) while B may already say "N" (namespaces made): either
        # order. B waits for "G" after "N", so "R" (ready) comes last.
        hooks = cfg.get("hooks") or {}
        got_n = False
        while True:
            kind, payload, _ = init.recv(sock)
            if kind == b"P":
                init_pid = payload["pid"]
                _reap(a_pid)
                a_pid = 0
                start_time = S.proc_start(init_pid)
                c.data = {"id": cid, "pid": init_pid,
                          "start_time": start_time[0] if start_time else 0,
                          "bundle": bundle, "rootfs": cfg["root"]["path"],
                          "created": S.now_rfc3339(), "ociVersion": cfg.get("ociVersion", "1.0.2"),
                          "annotations": cfg.get("annotations") or {},
                          "cgroup": cgroup.to_state(), "userns": "user" in nstypes,
                          "hooks": sorted(k for k, v in hooks.items() if v)}
            elif kind == b"N":
                got_n = True
            else:
                break
            if got_n and init_pid:
                got_n = False
                st = _hook_state(c, "creating", init_pid)
                for kind_ in ("prestart", "createRuntime"):
                    if hooks.get(kind_):
                        try:
                            init.run_hooks(hooks[kind_], st, kind_)
                        except (init.Refused, StepFailed) as err:
                            raise McrtError(f"container {cid}: {err}", container=cid) from None
                init.send(sock, b"G", {"pid": init_pid})
        if kind != b"R" or not init_pid:
            why = init.describe(payload) if kind == b"E" else "the init exited during setup"
            raise McrtError(f"container {cid}: {why}", container=cid)
        c.save()
        _write_pid_file(ns.pid_file, init_pid)
        log.debug(f"container {cid} created, init pid {init_pid}")
        return c, init_pid
    except BaseException:
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        if a_pid:
            _reap(a_pid)
        if init_pid:
            _kill_wait(init_pid)
        if made_cgroup:
            try:
                cgroup.destroy()
            except McrtError:
                pass
        if made_dir:
            import shutil
            shutil.rmtree(c.dir, ignore_errors=True)
        raise
    finally:
        if sock is not None:
            sock.close()


def _userns(path: str, lin: dict) -> int:
    if path:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise McrtError(f"config.json: linux.namespaces user: open {path}: "
                            f"{os.strerror(err.errno)}") from None
    from types import SimpleNamespace as NS
    from mcd.runtime import launcher
    from mcd.runtime.rootfs import StepFailed

    def maps(key):
        return [NS(container_id=m["containerID"], host_id=m["hostID"], size=m["size"])
                for m in lin.get(key) or []]
    spec = NS(linux=NS(uid_mappings=maps("uidMappings"), gid_mappings=maps("gidMappings")))
    try:
        return launcher._make_userns(spec)
    except StepFailed as err:
        raise McrtError(f"user namespace: {err}") from None


def _connect(path: str) -> int:
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as err:
        s.close()
        raise from_oserror("connect console socket", err, path) from None
    return s.detach()


def _reap(pid: int) -> int | None:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return status
        except InterruptedError:
            continue
        except ChildProcessError:
            return None


def _kill_wait(pid: int, timeout: float = 5.0) -> None:
    import time
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            got = S.proc_start(pid)
            if got is None or got[1] in ("Z", "X"):
                return
        time.sleep(0.005)


def cmd_create(ns, log) -> int:
    _create(ns, log)
    return 0


# ------------------------------------------------------------------ start / run

def _release(c: S.Container, log) -> None:
    import select
    import time
    st = c.status()
    if st != "created":
        raise McrtError(f"cannot start container {c.id}: it is {st}, not created", container=c.id)
    try:
        fd = os.open(c.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise McrtError(f"cannot start container {c.id}: already started", container=c.id) from None
    try:
        # The init opened (or is opening) the fifo for writing: its byte arrives at once.
        while True:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                data = os.read(fd, 1)
                if data:
                    break
            if not c.alive():
                raise McrtError(f"cannot start container {c.id}: its init exited", container=c.id)
            time.sleep(0.001) if not r else None
    finally:
        os.close(fd)
    try:
        os.unlink(c.fifo)
    except FileNotFoundError:
        pass
    _warn_hooks(c, "poststart", "running", log)


def cmd_start(ns, log) -> int:
    c = _load(ns, ns.id)
    _release(c, log)
    return 0


class _Forward:
    """Signals mcrt gets while it waits for the container go to its process, as runc does."""
    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
               signal.SIGUSR2, signal.SIGWINCH)

    def __init__(self, pid: int):
        self.pid = pid
        for s in self.SIGNALS:
            signal.signal(s, self._send)

    def _send(self, signum, _frame):
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass


def _wait_exit(pid: int) -> int:
    status = _reap(pid)
    if status is None:
        return 255
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _receive_console(c: S.Container) -> int | None:
    sock = getattr(c, "console", None)
    if sock is None:
        return None
    import socket
    try:
        _msg, fds, _f, _a = socket.recv_fds(sock, 4096, 1)
    finally:
        sock.close()
    if not fds:
        raise McrtError(f"container {c.id}: the init sent no pty", container=c.id)
    return fds[0]


def _proxy_pty(master: int, pid: int) -> None:
    """Copy our stdin to the pty and the pty to our stdout until the container closes it;
    our terminal (when stdin is one) goes raw meanwhile and its size follows SIGWINCH."""
    import fcntl
    import select
    import struct
    import termios
    import tty
    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)

        def resize(*_a):
            try:
                size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(master, termios.TIOCSWINSZ, size)
            except OSError:
                pass
        resize()
        signal.signal(signal.SIGWINCH, resize)
        del struct
    watch = [master, 0]
    try:
        while True:
            try:
                r, _, _ = select.select(watch, [], [])
            except InterruptedError:
                continue
            if master in r:
                try:
                    data = os.read(master, 65536)
                except OSError:      # EIO: every holder of the slave closed it
                    break
                if not data:
                    break
                os.write(1, data)
            if 0 in r:
                data = os.read(0, 65536)
                if not data:
                    watch = [master]
                else:
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)


def cmd_run(ns, log) -> int:
    from mcd.runtime import syscalls as sc
    if not ns.detach:
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    c, pid = _create(ns, log, for_run=True)
    fwd = None if ns.detach else _Forward(pid)
    try:
        master = _receive_console(c)
        _release(c, log)
    except BaseException:
        _delete(c, log, force=True)
        raise
    if ns.detach:
        return 0
    del fwd
    if master is not None:
        _proxy_pty(master, pid)
    code = _wait_exit(pid)
    if not ns.keep:
        _delete(c, log, force=True)
    return code


# ------------------------------------------------------------------ state, list

def cmd_state(ns, log) -> int:
    c = _load(ns, ns.id)
    sys.stdout.write(json.dumps(c.oci_state(c.status()), indent=2) + "\n")
    return 0


def cmd_list(ns, log) -> int:
    S.ensure_root(ns.root, create=False)
    out = []
    try:
        names = sorted(os.listdir(ns.root))
    except FileNotFoundError:
        names = []
    for name in names:
        try:
            c = S.Container(ns.root, name).load()
        except McrtError:
            continue
        out.append(c.oci_state(c.status()))
    if ns.quiet:
        sys.stdout.write("".join(s["id"] + "\n" for s in out))
    elif ns.format == "json":
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], "root")
                 for s in out]
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for r in rows:
            sys.stdout.write("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() + "\n")
    return 0


# ------------------------------------------------------------------ kill, delete

def cmd_kill(ns, log) -> int:
    c = _load(ns, ns.id)
    sig = parse_signal(ns.signal)
    if ns.all:
        cg = _cgroup(c)
        pids = cg.pids()
        if not pids and c.status(cg) == "stopped":
            raise McrtError(f"container {c.id} is not running", container=c.id)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return 0
    # The init, named by pid and start time and signalled through a pidfd, the rule of
    # mcd's LinuxRuntime.adopt/signal (a reused pid is never signalled), without loading
    # mcd's runtime or the cgroup drivers: state.json and /proc say all kill needs.
    if c.status() == "stopped" or not c.signal_init(sig):
        raise McrtError(f"container {c.id} is not running", container=c.id)
    return 0


def _empty_cgroup_gone(c: S.Container) -> bool:
    """The common case of delete (the container exited by itself): every cgroup directory
    is empty, so rmdir them without loading the cgroup drivers. False when a directory
    still holds a process (or is busy): the drivers' kill-and-destroy loop takes over."""
    import errno as _e
    dirs = list(dict.fromkeys((c.data.get("cgroup") or {}).get("dirs", {}).values()))
    for d in dirs:
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                if f.read().strip():
                    return False
        except FileNotFoundError:
            continue
        except OSError:
            return False
    for d in reversed(dirs):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as err:
            if err.errno == _e.EBUSY:
                return False
            raise from_oserror(f"container {c.id}: remove cgroup", err, d) from None
    return True


def _delete(c: S.Container, log, force: bool) -> None:
    import shutil
    if c.status() == "stopped" and _empty_cgroup_gone(c):
        kinds = c.data.get("hooks")     # None: state written before the list was kept
        if kinds is None or "poststop" in kinds:
            _warn_hooks(c, "poststop", "stopped", log)
        shutil.rmtree(c.dir, ignore_errors=True)
        return
    cg = _cgroup(c)
    st = c.status(cg)
    if st in ("running", "paused") and not force:
        raise McrtError(f"cannot delete container {c.id} that is not stopped: {st} "
                        "(use delete --force)", container=c.id)
    if st != "stopped" or cg.pids():
        if cg.frozen():
            try:
                cg.cg.thaw()
            except Exception:    # noqa: BLE001 - killing comes next anyway
                pass
        if c.alive():
            try:
                os.kill(c.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    cg.destroy()
    _wait_gone(c)
    _warn_hooks(c, "poststop", "stopped", log)
    shutil.rmtree(c.dir, ignore_errors=True)


def _wait_gone(c: S.Container, timeout: float = 5.0) -> None:
    import time
    deadline = time.monotonic() + timeout
    while c.alive() and time.monotonic() < deadline:
        time.sleep(0.005)


def cmd_delete(ns, log) -> int:
    S.check_id(ns.id)
    try:
        c = _load(ns, ns.id)
    except McrtError:
        d = os.path.join(ns.root, ns.id)
        if os.path.isdir(d) and not os.path.exists(os.path.join(d, "state.json")) \
                and os.stat(d).st_uid == os.geteuid():
            # A create that died before it finished: nothing runs from it.
            import shutil
            shutil.rmtree(d, ignore_errors=True)
            return 0
        if ns.force and not os.path.lexists(d):
            return 0
        raise
    _delete(c, log, ns.force)
    return 0


# ------------------------------------------------------------------ pause, resume, ps, update

def cmd_pause(ns, log) -> int:
    c = _load(ns, ns.id)
    cg = _cgroup(c)
    st = c.status(cg)
    if st not in ("running", "created"):
        raise McrtError(f"cannot pause container {c.id}: it is {st}", container=c.id)
    try:
        cg.cg.freeze()
    except Exception as err:    # noqa: BLE001 - mcd's KernelError/Unsupported: one line
        raise McrtError(f"pause {c.id}: {err}", container=c.id) from None
    return 0


def cmd_resume(ns, log) -> int:
    c = _load(ns, ns.id)
    cg = _cgroup(c)
    if c.status(cg) != "paused":
        raise McrtError(f"cannot resume container {c.id}: it is not paused", container=c.id)
    try:
        cg.cg.thaw()
    except Exception as err:    # noqa: BLE001
        raise McrtError(f"resume {c.id}: {err}", container=c.id) from None
    return 0


def cmd_ps(ns, log) -> int:
    c = _load(ns, ns.id)
    pids = _cgroup(c).pids()
    if ns.format == "json":
        sys.stdout.write(json.dumps(pids) + "\n")
        return 0
    import subprocess
    args = [a for a in ns.ps_args if a != "--"] or ["-ef"]
    try:
        out = subprocess.run(["ps", *args], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise McrtError(f"ps {' '.join(args)}: {err}") from None
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise McrtError("ps: no PID column in its output")
    col = header.index("PID")
    sys.stdout.write(lines[0] + "\n")
    want = set(pids)
    for line in lines[1:]:
        f = line.split()
        if len(f) > col and f[col].isdigit() and int(f[col]) in want:
            sys.stdout.write(line + "\n")
    return 0


def cmd_update(ns, log) -> int:
    c = _load(ns, ns.id)
    cg = _cgroup(c)
    if c.status(cg) == "stopped":
        raise McrtError(f"cannot update container {c.id}: it is stopped", container=c.id)
    res: dict = {}
    field = "linux.resources"
    if ns.resources:
        field = "--resources"
        try:
            if ns.resources == "-":
                res = json.loads(sys.stdin.read() or "{}")
            else:
                with open(ns.resources) as f:
                    res = json.load(f)
        except (OSError, ValueError) as err:
            raise McrtError(f"update --resources {ns.resources}: {err}") from None
        from mcrt import config as C
        C._check_keys(res, "linux.resources")
        for sub in ("memory", "cpu", "pids"):
            C._check_keys(res.get(sub), f"linux.resources.{sub}")
    for flag, (sub, key) in {"memory": ("memory", "limit"), "memory_swap": ("memory", "swap"),
                             "cpu_shares": ("cpu", "shares"), "cpu_quota": ("cpu", "quota"),
                             "cpu_period": ("cpu", "period"), "cpuset_cpus": ("cpu", "cpus"),
                             "pids_limit": ("pids", "limit")}.items():
        v = getattr(ns, flag)
        if v is not None:
            res.setdefault(sub, {})[key] = v
    cg.update(res, field)
    return 0


# ------------------------------------------------------------------ exec

def cmd_exec(ns, log) -> int:
    from mcrt import config as C
    c = _load(ns, ns.id)
    cg = _cgroup(c)
    st = c.status(cg)
    if st not in ("running", "created"):
        raise McrtError(f"cannot exec in container {c.id}: it is {st}", container=c.id)
    cfg = c.config()
    if ns.process_label or ns.apparmor:
        raise McrtError("exec: --process-label/--apparmor: not supported by mcrt")
    if ns.process:
        try:
            with open(ns.process) as f:
                proc = json.load(f)
        except (OSError, ValueError) as err:
            raise McrtError(f"exec --process {ns.process}: {err}") from None
    else:
        args = [a for a in ns.args if a != "--"] if ns.args[:1] == ["--"] else list(ns.args)
        if not args:
            raise McrtError("exec: a command (or --process FILE) is required")
        proc = json.loads(json.dumps(cfg["process"]))
        proc["args"] = args
        proc["terminal"] = ns.tty
        proc["env"] = list(proc.get("env") or []) + ns.env
        if ns.cwd:
            proc["cwd"] = ns.cwd
        if ns.user:
            uid, _, gid = ns.user.partition(":")
            try:
                proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
            except ValueError:
                raise McrtError(f"exec --user {ns.user!r}: expected UID[:GID]") from None
        if ns.additional_gids:
            proc.setdefault("user", {})["additionalGids"] = ns.additional_gids
        if ns.cap:
            caps = proc.setdefault("capabilities", {})
            for s_ in ("bounding", "effective", "permitted", "ambient"):
                caps[s_] = sorted(set(caps.get(s_) or []) | set(ns.cap))
        if ns.no_new_privs:
            proc["noNewPrivileges"] = True
    C.check_process(proc, "process")
    if proc.get("terminal") and not ns.console_socket:
        raise McrtError("exec: a terminal needs --console-socket to receive the pty")
    if ns.console_socket and not proc.get("terminal"):
        raise McrtError("exec: --console-socket given but the process has no terminal")
    from mcd.runtime import security
    from mcd.runtime import syscalls as sc
    from mcrt import init
    bpf = None
    if os.path.exists(c.bpf_file):
        with open(c.bpf_file, "rb") as f:
            bpf = f.read()
    order = {t: i for i, t in enumerate(init.JOIN_ORDER)}
    kinds = sorted({n["type"] for n in (cfg.get("linux") or {}).get("namespaces") or []},
                   key=order.__getitem__)
    ns_fds = []
    fds = {}
    try:
        for t in kinds:
            path = f"/proc/{c.pid}/ns/{sc.NAMESPACES[t][1]}"
            try:
                ns_fds.append((t, path, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
            except OSError as err:
                raise from_oserror(f"container {c.id}: open namespace", err, path) from None
        if not c.alive():     # the fds may belong to a reused pid
            raise McrtError(f"cannot exec in container {c.id}: it is stopped", container=c.id)
        if ns.console_socket:
            fds["console"] = _connect(ns.console_socket)
    except BaseException:
        for _t, _p, fd in ns_fds:
            os.close(fd)
        for fd in fds.values():
            os.close(fd)
        raise
    if not ns.detach:
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    plan = {"cgroup_join": cg.join_files(), "bpf": bpf, "cap_last": security.last_cap(),
            "preserve_fds": ns.preserve_fds, "userns": c.data.get("userns")}
    sys.stdout.flush()
    sys.stderr.flush()
    sock, a = init.exec_process(plan, proc, ns_fds, fds)
    for fd in fds.values():
        os.close(fd)
    try:
        kind, payload, _ = init.recv(sock)
        _reap(a)
        if kind != b"P":
            raise McrtError(f"exec in {c.id}: {init.describe(payload) if kind == b'E' else 'the helper exited'}",
                            container=c.id)
        pid = payload["pid"]
        kind, payload, _ = init.recv(sock)
        if kind == b"E":
            _reap(pid) if not ns.detach else None
            raise McrtError(f"exec in {c.id}: {init.describe(payload)}", container=c.id)
    finally:
        sock.close()
    _write_pid_file(ns.pid_file, pid)
    if ns.detach:
        return 0
    _Forward(pid)
    return _wait_exit(pid)


# ------------------------------------------------------------------ features, spec

def cmd_features(ns, log) -> int:
    from mcrt import SPEC_VERSION
    from mcrt import config as C
    from mcrt.seccomp import ACTIONS, ARCHES, OPS
    from mcwire.units import CAPABILITIES
    out = {
        "ociVersionMin": "1.0.0", "ociVersionMax": SPEC_VERSION,
        "hooks": list(C.HOOK_KINDS),
        "mountOptions": sorted(set(C.FLAGS) | set(C.PROPAGATION)),
        "linux": {
            "namespaces": sorted(C.NAMESPACE_TYPES),
            "capabilities": sorted(CAPABILITIES, key=CAPABILITIES.get),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": list(ACTIONS), "operators": sorted(OPS),
                        "archs": sorted(ARCHES)},
            "apparmor": {"enabled": False}, "selinux": {"enabled": False},
        },
        "annotations": {"org.opencontainers.runc.version": "1.1.5-compatible",
                        "io.github.mini-container.mcrt.version": _version()},
    }
    sys.stdout.write(json.dumps(out, indent=4) + "\n")
    return 0


def _version() -> str:
    from mcrt import VERSION
    return VERSION


def cmd_spec(ns, log) -> int:
    if ns.rootless:
        raise McrtError("spec --rootless: mcrt runs as root only")
    from mcrt.spec_template import default_spec
    bundle = _bundle(ns)
    path = os.path.join(bundle, "config.json")
    if os.path.lexists(path):
        raise McrtError(f"{path} exists: remove it first")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        with os.fdopen(fd, "w") as f:
            json.dump(default_spec(), f, indent="\t")
    except OSError as err:
        raise from_oserror("write", err, path) from None
    return 0
