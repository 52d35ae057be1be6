"""HTTP/1.1 over the daemon's Unix socket, with file descriptors riding along.

A deliberately small client: one request per connection (``Connection: close``), the
request sent in one ``sendmsg`` that carries our fds (SCM_RIGHTS), every read a
``recvmsg`` that collects fds the daemon sends back (the tty master of ``run -it``),
bodies with Content-Length, chunked or close-delimited. Why not http.client: it
imports the email package and ssl, ~25 ms on every mcctl call, for features a Unix
socket to our own daemon never needs. Not urllib.parse either (~3 ms: it imports
ipaddress): ``quote`` below is all of it we need. Stdlib only (see the socket import),
and mcwire. An error answer raises the very class the daemon raised (``mcwire.errors``);
failing to reach the daemon raises DaemonUnavailable (or PermissionDenied for the socket).
"""

from __future__ import annotations

import array
import io
# The C module under `socket`: socket.py itself costs ~3 ms per call (selectors, and
# enums built from every constant of _socket) for nothing this client uses.
import _socket as socket

from mcctl import wirejson as json
from mcwire.errors import DaemonUnavailable, MCError, PermissionDenied

MAX_LINE = 65536


class _RawFdReader(io.RawIOBase):
    """Socket reads through recvmsg, keeping any fds that arrive."""

    def __init__(self, sock: socket.socket, received: list):
        self.sock = sock
        self.received = received

    def readable(self):
        return True

    def readinto(self, b):
        fds = array.array("i")
        data, anc, _flags, _ = self.sock.recvmsg(len(b), socket.CMSG_SPACE(8 * fds.itemsize),
                                                 socket.MSG_CMSG_CLOEXEC)
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.frombytes(cdata[:len(cdata) - len(cdata) % fds.itemsize])
        self.received.extend(fds)
        n = len(data)
        b[:n] = data
        return n


def _connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
    except FileNotFoundError:
        s.close()
        raise DaemonUnavailable(f"cannot connect to mcd at {path}: no such socket "
                                "(is mcd running? see --socket or MCD_SOCKET)")
    except ConnectionRefusedError:
        s.close()
        raise DaemonUnavailable(f"cannot connect to mcd at {path}: connection refused "
                                "(mcd is not running)")
    except PermissionError:
        s.close()
        raise PermissionDenied(f"cannot connect to mcd at {path}: permission denied "
                               "(needs root or membership of group mcd)")
    except OSError as err:
        s.close()
        raise DaemonUnavailable(f"cannot connect to mcd at {path}: {err.strerror}")
    return s


class _Body:
    """The response body as a stream: read() or readline(), whatever its framing."""

    def __init__(self, fp, headers: dict, empty: bool):
        self.fp = fp
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.remaining = None
        if not self.chunked and "content-length" in headers:
            try:
                self.remaining = int(headers["content-length"])
            except ValueError:
                raise MCError("daemon sent an invalid Content-Length") from None
        self.buf = b""
        self.eof = empty

    def _short(self):
        raise DaemonUnavailable("the daemon closed the connection in the middle of its answer")

    def _fill(self) -> bool:
        if self.eof:
            return False
        if self.chunked:
            line = self.fp.readline(MAX_LINE)
            if not line:
                self._short()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise MCError("daemon sent an invalid chunk header") from None
            if size == 0:
                while self.fp.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass        # trailers
                self.eof = True
                return False
            data = self.fp.read(size)
            if len(data) < size:
                self._short()
            self.fp.readline(MAX_LINE)
            self.buf += data
            return True
        if self.remaining is not None:
            if self.remaining == 0:
                self.eof = True
                return False
            data = self.fp.read1(min(self.remaining, 1 << 16))
            if not data:
                self._short()
            self.remaining -= len(data)
            self.buf += data
            return True
        data = self.fp.read1(1 << 16)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read(self) -> bytes:
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    def readline(self) -> bytes:
        while b"\n" not in self.buf and self._fill():
            pass
        i = self.buf.find(b"\n")
        if i < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:i + 1], self.buf[i + 1:]
        return out


class Response:
    def __init__(self, sock: socket.socket, received: list, status: int, headers: dict,
                 body: _Body):
        self.sock = sock
        self.fds = received          # fds the daemon sent (SCM_RIGHTS), ours to close
        self.status = status
        self.headers = headers
        self.raw = body

    def json(self):
        data = self.raw.read()
        try:
            return json.loads(data) if data.strip() else None
        except ValueError:
            raise MCError(f"daemon answered with invalid JSON (HTTP {self.status})") from None

    def lines(self):
        """JSON lines of a streamed answer, as they come."""
        while True:
            line = self.raw.readline()
            if not line:
                return
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    raise MCError("daemon sent an invalid stream line") from None

    def close(self):
        self.sock.close()


class Client:
    def __init__(self, socket_path: str, timeout: float | None = None):
        self.socket_path = socket_path
        self.timeout = timeout

    def open(self, method: str, path: str, body=None, query: dict | None = None,
             fds=()) -> Response:
        """Send a request; error answers raise their MCError, others return the open Response."""
        if query:
            q = {k: ("1" if v is True else "0" if v is False else str(v))
                 for k, v in query.items() if v is not None}
            if q:
                path += "?" + "&".join(f"{quote(k, True)}={quote(v, True)}" for k, v in q.items())
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", "Host: mcd", "Accept: application/json",
                "Connection: close"]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + data
        sock = _connect(self.socket_path)
        try:
            sock.settimeout(self.timeout)
            if fds:
                sent = sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                 array.array("i", fds))])
                request = request[sent:]
            if request:
                sock.sendall(request)
            received: list[int] = []
            fp = io.BufferedReader(_RawFdReader(sock, received))
            status, headers = self._read_head(fp, method, path)
        except MCError:
            sock.close()
            raise
        except OSError as err:
            sock.close()
            raise DaemonUnavailable(f"request {method} {path} to mcd failed: "
                                    f"{err.strerror or err}") from err
        resp = Response(sock, received, status, headers,
                        _Body(fp, headers, method == "HEAD" or status in (204, 304)))
        if status >= 400:
            try:
                payload = resp.json() or {}
            except (MCError, OSError):
                payload = {}
            finally:
                resp.close()
                for fd in received:
                    _close(fd)
            raise MCError.from_wire(payload, status)
        return resp

    @staticmethod
    def _read_head(fp, method, path):
        line = fp.readline(MAX_LINE)
        if not line:
            raise DaemonUnavailable(f"request {method} {path}: the daemon closed the connection "
                                    "without answering")
        parts = line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise MCError(f"request {method} {path}: the daemon sent a malformed status line")
        headers = {}
        while True:
            h = fp.readline(MAX_LINE)
            if h in (b"\r\n", b"\n"):
                break
            if not h:
                raise DaemonUnavailable(f"request {method} {path}: the daemon closed the "
                                        "connection in its headers")
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        return int(parts[1]), headers

    def call(self, method: str, path: str, body=None, query=None, fds=()):
        resp = self.open(method, path, body, query, fds)
        try:
            return resp.json()
        finally:
            resp.close()

    def get(self, path, **query):
        return self.call("GET", path, query=query)

    def post(self, path, body=None, **query):
        return self.call("POST", path, body, query)

    def delete(self, path, **query):
        return self.call("DELETE", path, query=query)


def _close(fd):
    import os
    try:
        os.close(fd)
    except OSError:
        pass


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str, plus: bool = False) -> str:
    """urllib.parse.quote(text, safe="") (quote_plus with ``plus``, as urlencode uses)."""
    out = []
    for b in text.encode():
        if b in _UNRESERVED:
            out.append(chr(b))
        elif plus and b == 0x20:
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def ref_path(ref: str) -> str:
    return "/v1/containers/" + quote(ref)
