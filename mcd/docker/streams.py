"""Docker's stream formats and the hijacked connections of attach and exec.

Without a TTY every chunk of output travels in Docker's 8-byte framing
(stream id, three zero bytes, big-endian length); with a TTY the bytes travel raw.
A hijacked connection carries stdin from the client on the same socket; a client
that half-closes it (CloseWrite) closes the process's stdin. The detach key sequence
(default Ctrl-P Ctrl-Q) ends the attachment and leaves the process running.

Nothing here knows the Manager: a Session owns pipe ends (or a pty master) and
copies between them and the socket.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import socket
import struct
import termios
import threading

from mcd.errors import InvalidArgument

log = logging.getLogger("mcd.docker")

STDIN, STDOUT, STDERR = 0, 1, 2
_STREAM_IDS = {"stdout": STDOUT, "stderr": STDERR}
DEFAULT_DETACH = b"\x10\x11"    # ctrl-p, ctrl-q


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def stream_id(name: str) -> int:
    return _STREAM_IDS.get(name, STDOUT)


def parse_detach_keys(text: str | None) -> bytes:
    """'ctrl-p,ctrl-q' -> b'\\x10\\x11' (Docker's notation: ctrl-<a-z@[\\]^_> or one char)."""
    if text is None or text == "":
        return DEFAULT_DETACH
    out = bytearray()
    for part in text.split(","):
        p = part.strip()
        if len(p) == 1:
            out.append(ord(p))
        elif p.lower().startswith("ctrl-") and len(p) == 6:
            ch = p[5].lower()
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
            elif ch in "@[\\]^_":
                out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[ch])
            else:
                raise InvalidArgument(f"invalid detach keys {text!r}: unknown key {p!r}")
        else:
            raise InvalidArgument(f"invalid detach keys {text!r}: {p!r} is not ctrl-<key> or one character")
    return bytes(out)


class DetachScanner:
    """Finds the detach sequence in stdin, across chunk boundaries. Bytes that may start
    the sequence are held back until the next chunk shows whether they do."""

    def __init__(self, keys: bytes):
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """-> (bytes to forward, detached)."""
        if not self.keys:
            return data, False
        buf = self.held + data
        i = buf.find(self.keys)
        if i >= 0:
            self.held = b""
            return buf[:i], True
        # Keep the longest tail that is a prefix of the sequence.
        for n in range(min(len(self.keys) - 1, len(buf)), 0, -1):
            if buf.endswith(self.keys[:n]):
                self.held = buf[-n:]
                return buf[:-n], False
        self.held = b""
        return buf, False


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _close(fd):
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _write_all(fd: int, data: bytes) -> bool:
    while data:
        try:
            n = os.write(fd, data)
        except InterruptedError:
            continue
        except OSError:
            return False
        data = data[n:]
    return True


class Session:
    """One attachment: the process's stdio ends on our side, and the copy loops.

    ``child_fds()`` makes the ends the process gets (pipes, or a request for the pty
    master); after the start, ``close_child_ends()`` and ``ready(master)``; then the
    hijacked connection's thread runs ``run(sock, leftover)``."""

    def __init__(self, *, tty: bool, stdin: bool, stdout: bool, stderr: bool,
                 detach_keys: bytes = DEFAULT_DETACH, logs_when_tty: bool = True):
        self.tty, self.want_stdin = tty, stdin
        self.want_stdout, self.want_stderr = stdout, stderr
        self.detach_keys = detach_keys
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self.error: str | None = None
        self.master: int | None = None
        self.stdin_w: int | None = None
        self.outputs: dict[int, int] = {}        # our read end -> stream id
        self._child: list[int] = []
        self.detached = False
        self.closed = threading.Event()
        self.on_done = None                      # called once the copy loops ended
        # With the pty master here the monitor sees no output: the container's log is
        # written from this copy loop instead (write/flush/close, mcd.runtime.logs).
        self.log = None

    # -- set-up, from the thread that starts the process
    def child_fds(self, tty_master: bool = True):
        """-> ((stdin, stdout, stderr), pty_to_caller): the fds the process gets (None: not
        attached), for the manager's start/exec. With a TTY and tty_master the pty master
        comes to us; else the monitor keeps it, logs, and copies to us."""
        if self.tty and tty_master:
            return (None, None, None), True
        kw = {}
        if self.want_stdin and not self.tty:
            r, w = os.pipe2(os.O_CLOEXEC)
            self.stdin_w = w
            self._child.append(r)
            kw["stdin"] = r
        for name, want in (("stdout", self.want_stdout), ("stderr", self.want_stderr and not self.tty)):
            if want:
                r, w = os.pipe2(os.O_CLOEXEC)
                self.outputs[r] = stream_id(name) if not self.tty else STDOUT
                self._child.append(w)
                kw[name] = w
        return (kw.get("stdin"), kw.get("stdout"), kw.get("stderr")), False

    def close_child_ends(self) -> None:
        for fd in self._child:
            _close(fd)
        self._child = []

    def ready(self, master: int | None = None) -> None:
        if master is not None:
            self.master = master
        self._ready.set()

    def fail(self, message: str) -> None:
        self.error = message
        self.close_child_ends()
        for fd in list(self.outputs):
            _close(fd)
        self.outputs = {}
        self._close_stdin()
        self._ready.set()

    def wait_started(self) -> None:
        """Until the start that took this session handed over (or failed): a start does
        not block, so this is short."""
        self._ready.wait()

    def wait_ready(self, sock: socket.socket) -> bool:
        """Until the process started (True) or the client hung up / the start failed."""
        while not self._ready.wait(0.5):
            if peer_gone(sock):
                return False
        return self.error is None

    # -- the copy loops, on the hijacked connection's thread
    def run(self, sock: socket.socket, leftover: bytes) -> None:
        stdin_fd = self.master if self.master is not None else self.stdin_w
        t = None
        if self.want_stdin and stdin_fd is not None:
            t = threading.Thread(target=self._copy_stdin, args=(sock, leftover, stdin_fd),
                                 name="docker-stdin", daemon=True)
            t.start()
        try:
            self._copy_output(sock)
        finally:
            if self.on_done is not None:
                try:
                    self.on_done()
                except Exception:
                    log.exception("docker: finishing an attachment")
            self.closed.set()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if t is not None:
                t.join(5)
            if self.master is None:
                self._close_stdin()

    def _copy_stdin(self, sock: socket.socket, leftover: bytes, fd: int) -> None:
        scanner = DetachScanner(self.detach_keys)
        data = leftover
        while True:
            if data:
                out, detached = scanner.feed(data)
                if out and not _write_all(fd, out):
                    return
                if detached:
                    self.detached = True
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                break
        # The client closed its stdin (CloseWrite): so does the process's, without a TTY.
        if self.master is None:
            self._close_stdin()

    def _close_stdin(self) -> None:
        with self._lock:
            fd, self.stdin_w = self.stdin_w, None
        _close(fd)

    def _copy_output(self, sock: socket.socket) -> None:
        sources = dict(self.outputs)
        if self.master is not None:
            sources = {self.master: STDOUT}
        poller = select.poll()
        for fd in sources:
            poller.register(fd, select.POLLIN)
        sockfd = sock.fileno()
        poller.register(sockfd, 0)      # POLLHUP/POLLERR only: the client went away
        client = True
        while sources:
            try:
                events = poller.poll(1000)
            except InterruptedError:
                continue
            for fd, ev in events:
                if fd == sockfd:
                    client = False
                    poller.unregister(sockfd)
                    continue
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""      # EIO: the pty's last slave is closed
                if not data:
                    poller.unregister(fd)
                    sources.pop(fd, None)
                    if fd != self.master:
                        _close(fd)
                    continue
                if self.log is not None and fd == self.master:
                    try:
                        self.log.write("stdout", data)
                    except OSError:
                        pass    # a full disk must not stop the terminal
                if client and not self.detached:
                    payload = data if self.tty else frame(sources[fd], data)
                    try:
                        sock.sendall(payload)
                    except OSError:
                        client = False
            if not client or self.detached:
                # Nobody reads any more. Pipes: closing them lets the writer see EPIPE and
                # carry on; a pty master is drained instead (closing it would hang up the
                # container's terminal).
                for pfd in [f for f in sources if f != self.master]:
                    poller.unregister(pfd)
                    sources.pop(pfd)
                    _close(pfd)
        self.outputs = {}
        if self.master is not None:
            _close(self.master)
            self.master = None
        if self.log is not None:
            try:
                self.log.close()        # flushes what it can; never raises for a full disk
            except OSError:
                pass
            self.log = None


def peer_gone(sock: socket.socket) -> bool:
    """The client closed its side for good (not just its stdin, which is POLLRDHUP)."""
    p = select.poll()
    p.register(sock, 0)     # a client that closed only its stdin is still there
    return any(ev & (select.POLLHUP | select.POLLERR) for _fd, ev in p.poll(0))
