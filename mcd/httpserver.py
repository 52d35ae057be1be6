"""A small threaded HTTP/1.1 server for AF_UNIX and TCP listeners.

Why not http.server: the API needs things it does not give — file descriptors
received with recvmsg (SCM_RIGHTS) along with a request and sent back with a
response, a hard body-size limit answered with 413 before the body is read, read
*deadlines* (not per-recv timeouts, which a slow client can drip around), peer
credentials, and chunked streaming that stops when the client goes away.

The handler is any callable ``handler(Request) -> Response``. The same class
serves the API on the Unix socket and (for the dashboard) on TCP::

    server = HTTPServer(bind_tcp("127.0.0.1:8080"), my_handler, name="web")
    server.start()          # a thread; server.shutdown() closes it
"""

from __future__ import annotations

import array
import errno
import json
import logging
import os
import select
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from mcwire.errors import (HeadersTooLarge, InvalidArgument, LengthRequired, MCError,
                           PayloadTooLarge, PermissionDenied, RequestTimeout, Unavailable)

log = logging.getLogger("mcd.http")

MAX_HEADER_BYTES = 64 * 1024
MAX_FDS = 8
REASONS = {
    101: "Switching Protocols", 200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified", 400: "Bad Request",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    409: "Conflict", 411: "Length Required", 413: "Payload Too Large",
    422: "Unprocessable Entity", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable",
}


class ClientGone(Exception):
    """The client closed the connection (cleanly between requests, or mid-request)."""


@dataclass
class Peer:
    pid: int
    uid: int
    gid: int


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: dict
    headers: dict
    body: bytes
    fds: list = field(default_factory=list)
    peer: Peer | None = None
    sock: socket.socket | None = None
    received_ns: int = 0    # perf_counter_ns() when the head was read: for Server-Timing
    # A body the handler reads itself (HTTPServer's stream_body routes: large uploads,
    # chunked ones): a BodyReader, and then .body is b"".
    body_stream: "BodyReader | None" = None

    def json(self):
        """The body as JSON (an empty body is an empty object)."""
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as err:
            raise InvalidArgument(f"request body is not valid JSON: {err}") from None
        try:
            # JSON may escape a lone UTF-16 surrogate ("\udbeb"), which is no character:
            # refused here, not as a UnicodeEncodeError wherever the string is next written.
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise InvalidArgument("request body: a string holds a lone UTF-16 surrogate "
                                  "(not a character)") from None
        return data

    def take_fds(self) -> list[int]:
        """Claim the received fds: the server will no longer close them after the handler."""
        fds, self.fds = self.fds, []
        return fds

    def client_gone(self) -> bool:
        """True once the client hung up (for long waits that should then stop)."""
        if self.sock is None:
            return False
        p = select.poll()
        p.register(self.sock, select.POLLIN | select.POLLRDHUP)
        for _fd, ev in p.poll(0):
            if ev & (select.POLLHUP | select.POLLRDHUP | select.POLLERR):
                return True
        return False


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)
    stream: Iterable[bytes] | None = None     # sent chunked; stops when the client is gone
    fds: list = field(default_factory=list)   # sent with the status line (SCM_RIGHTS), then closed
    # Connection hijack (Docker's attach/exec): after the head, the server hands the socket
    # and any bytes already read past the request to hijack(sock, leftover) and, when it
    # returns, closes the connection. No Content-Length, no chunking.
    hijack: Callable[[socket.socket, bytes], None] | None = None

    @classmethod
    def json(cls, obj, status: int = 200, **kw) -> "Response":
        return cls(status=status, body=(json.dumps(obj) + "\n").encode(), **kw)

    @classmethod
    def error(cls, err: MCError, **kw) -> "Response":
        """The answer for an error: its code's HTTP status, ``{"error": {...}}`` as the body."""
        return cls.json(err.to_wire(), err.http_status, **kw)


# ---------------------------------------------------------------- listeners

def bind_unix(path: str, mode: int = 0o600, gid: int | None = None, backlog: int = 512) -> socket.socket:
    """A listening socket at a filesystem path. A stale socket (nobody accepting) is replaced;
    a live one is an error, so two daemons never share a socket."""
    if os.path.exists(path) or os.path.islink(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)
        except OSError as err:
            raise OSError(err.errno, f"cannot probe existing socket {path}: {err.strerror}") from err
        else:
            raise OSError(errno.EADDRINUSE, f"{path}: another daemon is listening on this socket")
        finally:
            probe.close()
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    # Bind under a restrictive umask so the socket is never briefly world-connectable.
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    if gid is not None:
        os.chown(path, 0, gid)
    os.chmod(path, mode)
    sock.listen(backlog)
    return sock


def bind_tcp(addr: str, backlog: int = 128) -> socket.socket:
    """'127.0.0.1:8080', '[::1]:8080' or ':8080' (loopback)."""
    host, _, port = addr.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(backlog)
    return sock


def peer_credentials(sock: socket.socket) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


# ---------------------------------------------------------------- connection I/O

class _Conn:
    def __init__(self, sock: socket.socket, unix: bool):
        self.sock = sock
        self.unix = unix
        self.buf = bytearray()
        self.fds: list[int] = []
        self.deadline = None

    def _recv(self, n: int = 65536) -> bytes:
        timeout = None
        if self.deadline is not None:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise socket.timeout("read deadline")
        self.sock.settimeout(timeout)
        if self.unix:
            fds = array.array("i")
            data, anc, flags, _ = self.sock.recvmsg(
                n, socket.CMSG_SPACE(MAX_FDS * fds.itemsize), socket.MSG_CMSG_CLOEXEC)
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    fds.frombytes(cdata[:len(cdata) - (len(cdata) % fds.itemsize)])
            self.fds.extend(fds)
            if flags & socket.MSG_CTRUNC:
                raise InvalidArgument(f"too many file descriptors (max {MAX_FDS})")
        else:
            data = self.sock.recv(n)
        return data

    def read_head(self) -> bytes | None:
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i])
                del self.buf[:i + 4]
                return head
            if len(self.buf) > MAX_HEADER_BYTES:
                raise HeadersTooLarge(f"request headers too large (max {MAX_HEADER_BYTES} bytes)")
            data = self._recv()
            if not data:
                if self.buf.strip():
                    raise ClientGone("client closed the connection mid-request")
                return None
            self.buf += data

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = self._recv(min(n - len(self.buf), 1 << 20) if n - len(self.buf) > 0 else 65536)
            if not data:
                raise ClientGone("client closed the connection mid-request")
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def send(self, data: bytes, fds: list[int] = ()) -> None:
        self.sock.settimeout(None)
        if fds:
            sent = socket.send_fds(self.sock, [data], list(fds))
            data = data[sent:]
        if data:
            self.sock.sendall(data)


def _close_fds(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class BodyReader:
    """read(n) over a request body of known length or in chunked transfer encoding, off the
    connection, each read bounded by the body timeout. read() returns b"" at its end."""

    def __init__(self, conn: "_Conn", length: int | None, timeout: float):
        self.conn, self.left, self.timeout = conn, length, timeout
        self.chunked = length is None
        self.chunk_left = 0
        self.done = length == 0

    def _line(self) -> bytes:
        conn = self.conn
        while b"\r\n" not in conn.buf:
            if len(conn.buf) > MAX_HEADER_BYTES:
                raise InvalidArgument("malformed chunked body")
            conn.deadline = time.monotonic() + self.timeout
            data = conn._recv()
            if not data:
                raise ClientGone("client closed the connection mid-body")
            conn.buf += data
        i = conn.buf.find(b"\r\n")
        line = bytes(conn.buf[:i])
        del conn.buf[:i + 2]
        return line

    def _take(self, n: int) -> bytes:
        conn = self.conn
        if not conn.buf:
            conn.deadline = time.monotonic() + self.timeout
            data = conn._recv(min(n, 1 << 20))
            if not data:
                raise ClientGone("client closed the connection mid-body")
            conn.buf += data
        out = bytes(conn.buf[:n])
        del conn.buf[:len(out)]
        return out

    def read(self, n: int = 1 << 16) -> bytes:
        if self.done:
            return b""
        if not self.chunked:
            out = self._take(min(n, self.left))
            self.left -= len(out)
            self.done = self.left == 0
            return out
        if self.chunk_left == 0:
            size = self._line().split(b";")[0].strip()
            try:
                self.chunk_left = int(size, 16)
            except ValueError:
                raise InvalidArgument("malformed chunked body") from None
            if self.chunk_left == 0:
                while self._line():         # trailers, up to the empty line
                    pass
                self.done = True
                return b""
        out = self._take(min(n, self.chunk_left))
        self.chunk_left -= len(out)
        if self.chunk_left == 0:
            if self._line() != b"":
                raise InvalidArgument("malformed chunked body")
        return out


class HTTPServer:
    def __init__(self, sock: socket.socket, handler: Callable[[Request], Response], *,
                 authorize: Callable[[Peer | None], bool] | None = None,
                 max_body: int = 1 << 20, header_timeout: float = 10.0,
                 body_timeout: float = 30.0, idle_timeout: float = 120.0, name: str = "http",
                 max_connections: int = 1024,
                 error_body: Callable[[MCError], bytes] | None = None,
                 stream_body: Callable[[str, str], bool] | None = None):
        self.sock = sock
        # The body of an error the server answers itself (403, 408, 413, 503...): mcd's
        # shape unless the listener speaks another API's (the Docker socket's).
        self.error_body = error_body or (lambda err: (json.dumps(err.to_wire()) + "\n").encode())
        # stream_body(method, path): routes whose handler reads the body itself (any size,
        # chunked too) from Request.body_stream; the connection closes after the answer.
        self.stream_body = stream_body
        self.handler = handler
        self.authorize = authorize
        self.max_body = max_body
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.idle_timeout = idle_timeout
        self.name = name
        self.max_connections = max_connections
        self.unix = sock.family == socket.AF_UNIX
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    # -- lifecycle
    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.serve_forever, name=f"{self.name}-accept", daemon=True)
        self._thread.start()
        return self._thread

    def serve_forever(self) -> None:
        p = select.poll()
        p.register(self.sock, select.POLLIN)
        p.register(self._wake_r, select.POLLIN)
        while not self._stopping:
            events = p.poll()       # no timeout: an idle server never wakes up
            if any(fd == self._wake_r for fd, _ in events):
                break
            try:
                conn, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as err:
                if self._stopping:
                    break
                log.warning("%s: accept failed: %s", self.name, err)
                continue
            with self._conns_lock:
                busy = len(self._conns) >= self.max_connections
            if busy:
                # One thread per connection: a flood must not grow threads without end.
                self._send_simple(_Conn(conn, False), Unavailable(
                    f"too many connections (max {self.max_connections})"))
                conn.close()
                continue
            threading.Thread(target=self._serve_conn, args=(conn,), daemon=True,
                             name=f"{self.name}-conn").start()

    def shutdown(self) -> None:
        """Stop accepting; connections in progress finish on their own."""
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(5)
        self.sock.close()

    # -- one connection
    def _serve_conn(self, sock: socket.socket) -> None:
        conn = _Conn(sock, self.unix)
        with self._conns_lock:
            self._conns.add(sock)
        try:
            peer = peer_credentials(sock) if self.unix else None
            if self.authorize is not None and not self.authorize(peer):
                who = f"uid {peer.uid}" if peer else "client"
                self._send_simple(conn, PermissionDenied(
                    f"{who} may not use this socket (needs root or group mcd)"))
                return
            while not self._stopping:
                if not self._serve_one(conn, peer):
                    break
        except (ClientGone, ConnectionError, BrokenPipeError):
            pass
        except Exception:   # a bug must not take the daemon down; it is logged with its traceback
            log.exception("%s: connection failed", self.name)
        finally:
            _close_fds(conn.fds)
            with self._conns_lock:
                self._conns.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def _send_simple(self, conn: _Conn, err: MCError) -> None:
        """An error answer outside any handler (the request could not be read): then close."""
        status, body = err.http_status, self.error_body(err)
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode()
        try:
            conn.send(head + body)
        except OSError:
            pass

    def _serve_one(self, conn: _Conn, peer: Peer | None) -> bool:
        """Read, handle and answer one request; False when the connection should close."""
        conn.deadline = None if not conn.buf else time.monotonic() + self.header_timeout
        # Between requests a keep-alive client may idle; once bytes arrive the header deadline runs.
        if not conn.buf:
            conn.sock.settimeout(self.idle_timeout)
            try:
                p = select.poll()
                p.register(conn.sock, select.POLLIN)
                if not p.poll(int(self.idle_timeout * 1000)):
                    return False
            except OSError:
                return False
            conn.deadline = time.monotonic() + self.header_timeout
        try:
            req = self._read_request(conn, peer)
        except MCError as err:        # the request cannot be read: answered, then closed
            self._send_simple(conn, err)
            return False
        except socket.timeout:
            self._send_simple(conn, RequestTimeout("request not received in time"))
            return False
        if req is None:
            return False
        keep_alive = req.headers.get("connection", "").lower() != "close"
        t0 = time.monotonic()
        try:
            try:
                resp = self.handler(req)
            except Exception:
                log.exception("%s: handler failed for %s %s", self.name, req.method, req.path)
                resp = Response.error(MCError("internal error (see the daemon log)"))
            t1 = time.monotonic()
            ok = self._write_response(conn, req, resp)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s -> %d in %.1f ms%s", req.method, req.target, resp.status,
                          (t1 - t0) * 1e3,
                          f" (stream {(time.monotonic() - t1) * 1e3:.1f} ms)" if resp.stream else "")
            return ok and keep_alive
        finally:
            _close_fds(req.fds)

    def _read_request(self, conn: _Conn, peer: Peer | None) -> Request | None:
        head = conn.read_head()
        if head is None:
            return None
        received_ns = time.perf_counter_ns()
        try:
            text = head.decode("latin-1")
            line, *hlines = text.split("\r\n")
            method, target, version = line.split(" ")
        except ValueError:
            raise InvalidArgument("malformed request line") from None
        if not version.startswith("HTTP/1."):
            raise InvalidArgument(f"unsupported protocol {version!r}")
        headers = {}
        for h in hlines:
            k, sep, v = h.partition(":")
            if not sep:
                raise InvalidArgument("malformed header line")
            headers[k.strip().lower()] = v.strip()
        parsed = urllib.parse.urlsplit(target)
        streamed = self.stream_body is not None and \
            self.stream_body(method.upper(), urllib.parse.unquote(parsed.path))
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if chunked and not streamed:
            raise LengthRequired("chunked request bodies are not supported; send Content-Length")
        try:
            length = int(headers.get("content-length", "0"))
            if length < 0:
                raise ValueError
        except ValueError:
            raise InvalidArgument("invalid Content-Length") from None
        if length > self.max_body and not streamed:
            raise PayloadTooLarge(f"request body of {length} bytes exceeds the limit of {self.max_body}")
        body = b""
        body_stream = None
        if streamed:
            body_stream = BodyReader(conn, None if chunked else length, self.body_timeout)
            headers["connection"] = "close"     # the handler may leave some of it unread
        elif length:
            conn.deadline = time.monotonic() + self.body_timeout
            body = conn.read_exact(length)
        if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
            headers["connection"] = "close"
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        fds, conn.fds = conn.fds, []
        return Request(method=method.upper(), target=target, path=urllib.parse.unquote(parsed.path),
                       query=query, headers=headers, body=body, fds=fds, peer=peer, sock=conn.sock,
                       received_ns=received_ns, body_stream=body_stream)

    def _write_response(self, conn: _Conn, req: Request, resp: Response) -> bool:
        status_line = f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Status')}\r\n"
        headers = {"Content-Type": resp.content_type, **resp.headers}
        try:
            if resp.hijack is not None:
                head = status_line + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
                conn.send(head.encode(), resp.fds)
                leftover, conn.buf = bytes(conn.buf), bytearray()
                resp.hijack(conn.sock, leftover)
                return False
            if resp.stream is None:
                headers["Content-Length"] = str(len(resp.body))
                head = status_line + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
                data = head.encode() + (resp.body if req.method != "HEAD" else b"")
                conn.send(data, resp.fds)
                return True
            headers["Transfer-Encoding"] = "chunked"
            headers.setdefault("Cache-Control", "no-cache")
            head = status_line + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            conn.send(head.encode(), resp.fds)
            _close_fds(resp.fds)
            resp.fds = []
            it: Iterator[bytes] = iter(resp.stream)
            try:
                for chunk in it:
                    if chunk:
                        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                conn.send(b"0\r\n\r\n")
            finally:
                close = getattr(it, "close", None)
                if close:
                    close()
            return True
        except OSError:
            return False
        finally:
            _close_fds(resp.fds)
