"""The page's own files, loaded once from the package into memory.

A request path is only ever a key into this table: it is never joined onto a
directory, so no ``..``, symlink, NUL or percent-encoding trick can reach a
file that is not one of the shipped ones.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\.[a-z]{2,4}")


class StaticFile:
    __slots__ = ("name", "body", "gzipped", "content_type", "etag")

    def __init__(self, name: str, body: bytes):
        self.name = name
        self.body = body
        self.content_type = CONTENT_TYPES[os.path.splitext(name)[1]]
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        # mtime=0 keeps the bytes reproducible (SOURCE_DATE_EPOCH builds).
        self.gzipped = gzip.compress(body, mtime=0) if len(body) > 1024 else None


def load(directory: str = STATIC_DIR) -> dict[str, StaticFile]:
    """Every regular file directly in ``directory`` with a known type, by name."""
    files: dict[str, StaticFile] = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if (not _NAME_RE.fullmatch(name) or os.path.splitext(name)[1] not in CONTENT_TYPES
                or os.path.islink(path) or not os.path.isfile(path)):
            continue
        with open(path, "rb") as f:
            files[name] = StaticFile(name, f.read())
    return files


def lookup(files: dict[str, StaticFile], url_path: str) -> StaticFile | None:
    """'/' -> index.html, '/static/app.js' -> app.js, anything else -> None."""
    if url_path in ("/", "/index.html"):
        return files.get("index.html")
    if url_path == "/favicon.ico":
        return files.get("favicon.svg")
    prefix = "/static/"
    if not url_path.startswith(prefix):
        return None
    return files.get(url_path[len(prefix):])
