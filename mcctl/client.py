"""HTTP/1.1 over the daemon's Unix socket, with file descriptors riding along.

Plain http.client does the HTTP; the socket under it is wrapped so that the first
write carries our fds (SCM_RIGHTS) and every read collects fds the daemon sends back
(the tty master for ``run -it``). Stdlib only: this is on the path of every mcctl call.
"""

from __future__ import annotations

import array
import http.client
import io
import json
import socket
import urllib.parse

EXIT_DAEMON = 125
EXIT_CODES = {"COMMAND_NOT_FOUND": 127, "COMMAND_NOT_EXECUTABLE": 126}


class ClientError(Exception):
    """An error from the daemon (or from reaching it), with the CLI exit code it maps to."""

    def __init__(self, message: str, code: str = "INTERNAL", status: int | None = None,
                 details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details or {}
        self.exit_code = EXIT_CODES.get(code, EXIT_DAEMON)

    def __str__(self):
        return self.message


class _RawFdReader(io.RawIOBase):
    def __init__(self, owner: "_FdSocket"):
        self.owner = owner

    def readable(self):
        return True

    def readinto(self, b):
        sock = self.owner.sock
        fds = array.array("i")
        data, anc, _flags, _ = sock.recvmsg(len(b), socket.CMSG_SPACE(8 * fds.itemsize),
                                            socket.MSG_CMSG_CLOEXEC)
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.frombytes(cdata[:len(cdata) - len(cdata) % fds.itemsize])
        self.owner.received.extend(fds)
        n = len(data)
        b[:n] = data
        return n


class _FdSocket:
    """Enough of a socket for http.client: sendall/makefile/close/settimeout."""

    def __init__(self, sock: socket.socket, send_fds: list[int]):
        self.sock = sock
        self.send_fds = list(send_fds)
        self.received: list[int] = []

    def sendall(self, data):
        data = bytes(data)
        if self.send_fds:
            sent = socket.send_fds(self.sock, [data], self.send_fds)
            self.send_fds = []
            data = data[sent:]
        if data:
            self.sock.sendall(data)

    def makefile(self, mode="rb", *a, **kw):
        return io.BufferedReader(_RawFdReader(self))

    def settimeout(self, t):
        self.sock.settimeout(t)

    def fileno(self):
        return self.sock.fileno()

    def setsockopt(self, *a):
        pass

    def close(self):
        self.sock.close()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, fds=(), timeout=None):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path
        self.fds = list(fds)
        self.fdsock: _FdSocket | None = None

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            s.connect(self.unix_path)
        except FileNotFoundError:
            s.close()
            raise ClientError(f"cannot connect to mcd at {self.unix_path}: no such socket "
                              "(is mcd running? see --socket or MCD_SOCKET)", "DAEMON_UNAVAILABLE")
        except ConnectionRefusedError:
            s.close()
            raise ClientError(f"cannot connect to mcd at {self.unix_path}: connection refused "
                              "(mcd is not running)", "DAEMON_UNAVAILABLE")
        except PermissionError:
            s.close()
            raise ClientError(f"cannot connect to mcd at {self.unix_path}: permission denied "
                              "(needs root or membership of group mcd)", "PERMISSION_DENIED")
        except OSError as err:
            s.close()
            raise ClientError(f"cannot connect to mcd at {self.unix_path}: {err.strerror}",
                              "DAEMON_UNAVAILABLE")
        self.fdsock = _FdSocket(s, self.fds)
        self.sock = self.fdsock


class Response:
    def __init__(self, conn: _UnixConnection, resp: http.client.HTTPResponse):
        self.conn = conn
        self.raw = resp
        self.status = resp.status

    @property
    def fds(self) -> list[int]:
        return self.conn.fdsock.received if self.conn.fdsock else []

    def json(self):
        data = self.raw.read()
        try:
            return json.loads(data) if data.strip() else None
        except ValueError:
            raise ClientError(f"daemon answered with invalid JSON (HTTP {self.status})")

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
                    raise ClientError("daemon sent an invalid stream line") from None

    def close(self):
        self.conn.close()


class Client:
    def __init__(self, socket_path: str, timeout: float | None = None):
        self.socket_path = socket_path
        self.timeout = timeout

    def open(self, method: str, path: str, body=None, query: dict | None = None,
             fds=()) -> Response:
        """Send a request; error answers raise ClientError, others return the open Response."""
        if query:
            q = {k: ("1" if v is True else "0" if v is False else str(v))
                 for k, v in query.items() if v is not None}
            if q:
                path += "?" + urllib.parse.urlencode(q)
        conn = _UnixConnection(self.socket_path, fds, self.timeout)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            raw = conn.getresponse()
        except ClientError:
            conn.close()
            raise
        except (http.client.HTTPException, ConnectionError, OSError) as err:
            conn.close()
            raise ClientError(f"request {method} {path} to mcd failed: {err}",
                              "DAEMON_UNAVAILABLE") from err
        resp = Response(conn, raw)
        if resp.status >= 400:
            try:
                payload = resp.json() or {}
            except ClientError:
                payload = {}
            finally:
                conn.close()
            err = payload.get("error", {}) if isinstance(payload, dict) else {}
            raise ClientError(err.get("message") or f"HTTP {resp.status}",
                              err.get("code", "INTERNAL"), resp.status, err)
        return resp

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


def ref_path(ref: str) -> str:
    return "/v1/containers/" + urllib.parse.quote(ref, safe="")
