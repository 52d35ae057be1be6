"""Container log files: JSON lines, rotated, read back by the daemon.

One line per output line: ``{"log": "text\\n", "stream": "stdout", "time": "RFC3339"}``
(Docker's json-file shape). A chunk longer than MAX_LINE without a newline is
written as its own entry, so concatenating ``log`` fields gives back the exact
stream. ``container.log`` is the newest file, ``.1`` and ``.2`` older ones.

The writer runs inside the per-container monitor, so it is deliberately plain:
bytes in, bytes out, no logging framework, few objects per line.
"""

from __future__ import annotations

import errno
import json
import os
import time
from typing import Iterator

DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 3
MAX_LINE = 16 * 1024


def _timestamp() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + \
        ".%09dZ" % (ns % 1_000_000_000)


class LogWriter:
    def __init__(self, path: str, max_size: int = DEFAULT_MAX_SIZE,
                 max_files: int = DEFAULT_MAX_FILES):
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.fd = -1
        self.partial = {}
        self._open()

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def _rotate(self) -> None:
        os.close(self.fd)
        self.fd = -1        # until reopened: a failed open must not leave a stale fd number
        for i in range(self.max_files - 1, 0, -1):
            src = self.path if i == 1 else f"{self.path}.{i - 1}"
            try:
                os.replace(src, f"{self.path}.{i}")
            except FileNotFoundError:
                pass
        if self.max_files == 1:
            os.unlink(self.path)
        self._open()

    def _emit(self, stream: str, text: bytes) -> None:
        line = ('{"log":%s,"stream":"%s","time":"%s"}\n' % (
            json.dumps(text.decode("utf-8", "replace")), stream, _timestamp())).encode()
        if self.fd < 0:
            self._open()            # a rotation that could not reopen (full disk): retry
        if self.size and self.size + len(line) > self.max_size:
            self._rotate()
        try:
            if os.write(self.fd, line) != len(line):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
        except OSError:
            # A line is written whole or not at all: a torn one would also swallow the
            # next entry for the reader. Truncating needs no free space.
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                pass
            raise
        self.size += len(line)

    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial.pop(stream, b"") + data
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            while nl + 1 - start > MAX_LINE:
                self._emit(stream, buf[start:start + MAX_LINE])
                start += MAX_LINE
            self._emit(stream, buf[start:nl + 1])
            start = nl + 1
        rest = buf[start:]
        while len(rest) >= MAX_LINE:
            self._emit(stream, rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        if rest:
            self.partial[stream] = rest

    def flush(self) -> None:
        """End of stream: write what is left of unterminated lines."""
        for stream, rest in list(self.partial.items()):
            self._emit(stream, rest)
        self.partial.clear()

    def close(self) -> None:
        """Flush what it can (a full disk loses the unterminated rest, never raises) and
        close: the monitor still has PID 1 to reap and exit.json to write."""
        try:
            self.flush()
        except OSError:
            self.partial.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _files(path: str, max_files: int = DEFAULT_MAX_FILES) -> list[str]:
    """Oldest first."""
    names = [f"{path}.{i}" for i in range(max_files - 1, 0, -1)] + [path]
    return [n for n in names if os.path.exists(n)]


def _parse(raw: bytes) -> dict | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None     # a torn last line while the writer is mid-write
    return entry if isinstance(entry, dict) else None


def read(path: str, tail: int | None = None, max_files: int = DEFAULT_MAX_FILES) -> list[dict]:
    """All entries (or the last ``tail``), oldest first, across rotated files."""
    if tail is not None and tail <= 0:
        return []
    entries: list[dict] = []
    for name in reversed(_files(path, max_files)):
        try:
            with open(name, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            continue
        chunk = [e for e in map(_parse, lines) if e is not None]
        entries = chunk + entries
        if tail is not None and len(entries) >= tail:
            break
    return entries[-tail:] if tail is not None else entries


def follow(path: str, tail: int | None = None, *, poll_interval: float = 0.1,
           stop=lambda: False, max_files: int = DEFAULT_MAX_FILES) -> Iterator[dict]:
    """Entries as they come: the last ``tail`` first, then new ones, across rotations.

    Stops when ``stop()`` returns true and the file has been read to its end (the
    daemon passes "the container has exited").
    """
    f = None
    pending = b""
    try:
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            pass
        # History from the open file itself, so nothing written meanwhile is lost or doubled.
        current = []
        if f is not None:
            data = f.read()
            cut = data.rfind(b"\n") + 1
            pending = data[cut:]
            current = [e for e in map(_parse, data[:cut].splitlines()) if e is not None]
        if tail is None or len(current) < tail:
            older = read(f"{path}.1", None, 1) if max_files > 1 else []
            for i in range(2, max_files):
                if tail is not None and len(older) + len(current) >= tail:
                    break
                older = read(f"{path}.{i}", None, 1) + older
            current = older + current
        for entry in (current[-tail:] if tail is not None else current) if tail != 0 else []:
            yield entry
        while True:
            if f is None:
                try:
                    f = open(path, "rb")
                except FileNotFoundError:
                    if stop():
                        return
                    time.sleep(poll_interval)
                    continue
            chunk = f.read()
            if chunk:
                data = pending + chunk
                cut = data.rfind(b"\n") + 1
                pending = data[cut:]
                for raw in data[:cut].splitlines():
                    entry = _parse(raw)
                    if entry is not None:
                        yield entry
                continue
            try:
                rotated = os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                rotated = True
            if rotated:
                # The old file is drained (read above returned nothing): move to the new one.
                f.close()
                f = None
                pending = b""
                continue
            if stop():
                return
            time.sleep(poll_interval)
    finally:
        if f is not None:
            f.close()
