"""The caller's side of the supervisor's protocol (mcd/supervisor/__init__.py)."""

from __future__ import annotations

import json
import os
import socket

from mcd.supervisor.server import MAX_FDS, MAX_MSG


class SupervisorError(Exception):
    pass


class SupervisorClient:
    def __init__(self, path: str, timeout: float | None = 10.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise

    def call(self, op: str, fds: list[int] = (), **fields) -> tuple[dict, list[int]]:
        """One request; the answer and the fds that came with it (the caller's to close).
        A refused request raises SupervisorError with the supervisor's message."""
        msg = json.dumps({"op": op, **fields}).encode()
        if fds:
            socket.send_fds(self.sock, [msg], list(fds))
        else:
            self.sock.send(msg)
        data, got, _flags, _ = socket.recv_fds(self.sock, MAX_MSG, MAX_FDS)
        if not data:
            for fd in got:
                os.close(fd)
            raise SupervisorError(f"supervisor at {self.path} closed the connection")
        answer = json.loads(data)
        if not answer.get("ok"):
            for fd in got:
                os.close(fd)
            raise SupervisorError(answer.get("error", "refused"))
        return answer, got

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
