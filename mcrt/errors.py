"""The one error type a command raises: one line for the user, exit status 1."""

from __future__ import annotations

import os


class McrtError(Exception):
    """What failed, for which container, at which step (with the errno text)."""

    def __init__(self, msg: str, *, container: str | None = None):
        super().__init__(msg)
        self.container = container


def from_oserror(what: str, err: OSError, path: str | None = None) -> McrtError:
    text = os.strerror(err.errno) if err.errno else str(err)
    where = path if path is not None else err.filename
    return McrtError(f"{what} {where}: {text}" if where else f"{what}: {text}")
