"""A minimal HTTP/1.1 client for mcd's Unix socket (docs/design.md, "HTTP API").

The bench talks to the daemon directly for setup and teardown, and to time the daemon
without any CLI start-up in front of it.
"""

from __future__ import annotations

import array
import json
import socket


class ApiError(RuntimeError):
    def __init__(self, status: int, body: bytes):
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {body[:300].decode(errors='replace')}")


def request(sock_path: str, method: str, path: str, body: dict | None = None,
            fds: list[int] | None = None, timeout: float = 120) -> tuple[int, dict | list | None]:
    payload = b"" if body is None else json.dumps(body).encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: mcd\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        if fds:
            s.sendmsg([head + payload],
                      [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            s.sendall(head + payload)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    finally:
        s.close()
    raw = b"".join(chunks)
    header, _, rest = raw.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        rest = _dechunk(rest)
    data = json.loads(rest) if rest.strip() else None
    if status >= 400:
        raise ApiError(status, rest)
    return status, data


def _dechunk(b: bytes) -> bytes:
    out = []
    while b:
        size_line, _, b = b.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(b[:size])
        b = b[size + 2:]
    return b"".join(out)


def list_ids(sock_path: str) -> list[str]:
    _, data = request(sock_path, "GET", "/v1/containers?all=1")
    items = data.get("containers", data) if isinstance(data, dict) else data
    return [c["id"] for c in items or []]


def remove_all(sock_path: str) -> int:
    ids = list_ids(sock_path)
    for cid in ids:
        try:
            request(sock_path, "DELETE", f"/v1/containers/{cid}?force=1")
        except ApiError:
            pass
    return len(ids)


def timed_attach(sock_path: str, body: dict, fds: list[int], timeout: float = 120) -> dict:
    """POST an attached request and time its stages as seen by the client, in ms.

    The daemon sends an `attached` line once the container's command has been exec'd
    (the launcher reports exec over its sync pipe), an `exit` line when it has ended,
    and closes the connection after that (and after removing it, with rm).
    """
    import time
    payload = json.dumps(body).encode()
    head = (f"POST /v1/containers HTTP/1.1\r\nHost: mcd\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    marks: dict[str, float] = {}
    buf = b""
    t0 = time.perf_counter_ns()
    try:
        s.connect(sock_path)
        s.sendmsg([head + payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        while True:
            b = s.recv(65536)
            now = time.perf_counter_ns()
            if not b:
                marks["closed"] = now
                break
            buf += b
            if "attached" not in marks and b'"attached"' in buf:
                marks["attached"] = now
            if "exit" not in marks and b'"exit' in buf:
                marks["exit"] = now
    finally:
        s.close()
    if not buf.startswith(b"HTTP/1.1 200") or "attached" not in marks or "exit" not in marks:
        raise ApiError(int(buf.split()[1]) if buf[:5] == b"HTTP/" else 0, buf)
    out = {k: (v - t0) / 1e6 for k, v in marks.items()}
    out.update({f"daemon_{k}": v for k, v in server_timing(buf).items()})
    return out


def server_timing(response: bytes) -> dict[str, float]:
    """The daemon's own timing of a start (its Server-Timing header), name -> ms."""
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "server-timing":
            out = {}
            for part in value.split(","):
                metric, _, dur = part.strip().partition(";dur=")
                if dur:
                    out[metric] = float(dur)
            return out
    return {}
