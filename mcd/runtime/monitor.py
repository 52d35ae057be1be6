"""The per-container monitor: the parent of PID 1, outliving the daemon.

It copies PID 1's output into the log (and to attached clients), reaps PID 1 and
writes ``exit.json`` atomically. It is a forked copy of the daemon, so every page
it does not write stays shared with the daemon: the loop below works on ints and
bytes only, the garbage collector is frozen and off, and nothing is imported here.
"""

from __future__ import annotations

import gc
import json
import os
import select
import time

from mcd.atomicfile import write_atomic
from mcd.runtime.logs import LogWriter


def write_json_atomic(path: str, data: dict) -> None:
    write_atomic(path, json.dumps(data).encode() + b"\n", mode=0o644)


def exit_record(status: int) -> dict:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        code, signame = 128 + sig, sig
    else:
        code, signame = os.WEXITSTATUS(status), None
    return {"exit_code": code, "signal": signame,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) +
            ".%06dZ" % (time.time_ns() // 1000 % 1_000_000)}


def make_light() -> None:
    """Keep the forked interpreter's pages shared with the daemon."""
    gc.disable()
    gc.freeze()


def copy_output(sources: dict, log: LogWriter | None, attach: dict) -> None:
    """sources: fd -> stream name; attach: stream name -> fd (or absent)."""
    poller = select.poll()
    for fd in sources:
        poller.register(fd, select.POLLIN)
    live = len(sources)
    while live:
        for fd, _ev in poller.poll():
            try:
                data = os.read(fd, 65536)
            except OSError:     # EIO: the pty's last slave is closed
                data = b""
            if not data:
                poller.unregister(fd)
                os.close(fd)
                live -= 1
                continue
            stream = sources[fd]
            if log is not None:
                try:
                    log.write(stream, data)
                except OSError:
                    pass    # a full disk must not block the container on its pipe
            out = attach.get(stream)
            if out is not None and not write_all(out, data):
                # EPIPE: the client went away; stop copying to it, keep logging.
                attach = {k: v for k, v in attach.items() if v != out}
                os.close(out)


def write_all(fd: int, data: bytes) -> bool:
    """Blocking write of everything, also to an O_NONBLOCK fd (a client's socket may be
    one): a slow client slows the copy down instead of losing output. False on error."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            p = select.poll()
            p.register(fd, select.POLLOUT)
            p.poll()
            continue
        except InterruptedError:
            continue
        except OSError:
            return False
        view = view[n:]
    return True


def supervise(pid: int, sources: dict, log_path: str | None, attach: dict,
              exit_path: str) -> None:
    """Copy output until PID 1's pipes close, reap it, record how it ended."""
    log = None
    if log_path:
        try:
            log = LogWriter(log_path)
        except OSError:
            pass    # no log (dir removed, disk full): still drain the pipes and reap PID 1
    copy_output(sources, log, attach)
    if log is not None:
        log.close()
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    try:
        write_json_atomic(exit_path, exit_record(status))
    except OSError:
        pass    # the container dir is gone (force-removed): nobody is left to read it
