"""The client side of ``-it``: raw mode, copying both ways, window size.

The daemon hands us the pty master (SCM_RIGHTS). Our terminal goes raw so every key,
Ctrl-C included, reaches the container's line discipline; SIGWINCH copies our window
size onto the master (TIOCSWINSZ), which signals the container's foreground group.
The terminal is restored on every way out (finally), including errors and signals.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import termios
import threading
import tty as _tty


def copy_winsize(src_fd: int, master: int) -> None:
    try:
        size = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]


def interact(master: int, finished, *, stdin_fd: int = 0, stdout_fd: int = 1,
             interactive: bool = True):
    """Copy stdin -> master and master -> stdout until the container is gone.

    ``finished`` is a callable run in a thread that blocks until the daemon reports the
    exit and returns that report; its result is returned here.
    """
    result = {}
    wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def waiter():
        try:
            result["value"] = finished()
        except BaseException as err:   # handed to the main thread, raised there
            result["error"] = err
        finally:
            os.write(wake_w, b"x")

    is_tty = os.isatty(stdin_fd)
    saved = termios.tcgetattr(stdin_fd) if is_tty else None
    old_winch = None
    old_term = {}
    sig_r = sig_w = None
    old_wakeup = None
    try:
        if is_tty:
            # A kill of mcctl must not leave the user's terminal raw: turn the usual
            # termination signals into SystemExit so the finally below runs.
            def terminate(signum, _frame):
                raise SystemExit(128 + signum)
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
                old_term[sig] = signal.signal(sig, terminate)
            _tty.setraw(stdin_fd, termios.TCSANOW)
            copy_winsize(stdin_fd, master)
            sig_r, sig_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            old_winch = signal.signal(signal.SIGWINCH, lambda *_: None)
            old_wakeup = signal.set_wakeup_fd(sig_w)
        threading.Thread(target=waiter, daemon=True).start()
        p = select.poll()
        p.register(master, select.POLLIN)
        p.register(wake_r, select.POLLIN)
        if interactive:
            p.register(stdin_fd, select.POLLIN)
        if sig_r is not None:
            p.register(sig_r, select.POLLIN)
        master_open = True
        done = False
        while not done:
            for fd, ev in p.poll():
                if fd == master:
                    try:
                        data = os.read(master, 65536)
                    except OSError as err:
                        if err.errno != errno.EIO:
                            raise
                        data = b""
                    if not data:
                        p.unregister(master)
                        master_open = False
                    else:
                        _write_all(stdout_fd, data)
                elif fd == stdin_fd:
                    data = os.read(stdin_fd, 65536) if ev & (select.POLLIN | select.POLLHUP) else b""
                    if not data:
                        p.unregister(stdin_fd)
                        if not is_tty:
                            # EOF from a pipe: tell the container as a terminal would (^D).
                            try:
                                _write_all(master, b"\x04")
                            except OSError:
                                pass
                    else:
                        _write_all(master, data)
                elif fd == sig_r:
                    os.read(sig_r, 64)
                    copy_winsize(stdin_fd, master)
                elif fd == wake_r:
                    done = True
        # Whatever the container printed before it ended is still in the master: drain it.
        if master_open:
            os.set_blocking(master, False)
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                _write_all(stdout_fd, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSAFLUSH, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        for sig, handler in old_term.items():
            signal.signal(sig, handler)
        if old_wakeup is not None:
            signal.set_wakeup_fd(old_wakeup)
        for fd in (wake_r, wake_w, sig_r, sig_w):
            if fd is not None:
                os.close(fd)
    if "error" in result:
        raise result["error"]
    return result.get("value")
