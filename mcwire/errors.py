"""The closed set of error codes, one exception class per code, and the CLI's exit statuses.

An error travels over the API as ``{"error": {"code", "message", ...}}`` with the HTTP
status of its code; the client turns it back into the same class (``MCError.from_wire``),
and the CLI exits with that class's exit status (Docker's convention: 125 the engine or
the request failed, 126 the command cannot be invoked, 127 it was not found).

The set is closed: every code the daemon sends is a class in ``CODES`` below, with one
HTTP status and one exit status (the daemon's HTTP layer builds its error answers from
these classes, so a status and a code cannot disagree). A code this client does not know
(a newer daemon) is kept as it came, with its HTTP status, and exits 125.

``OSError`` is translated into these only at the kernel boundary (``KernelError
.from_oserror``), keeping errno, the call and the path, so a user reads
``mount /proc: Permission denied`` and not a traceback.

Stdlib only, and cheap to import: mcctl loads this module on every call that talks to
the daemon (``enum`` is already loaded by ``re``, which argparse needs).
"""

from __future__ import annotations

import os
from enum import IntEnum


class ExitStatus(IntEnum):
    """mcctl's own exit statuses; run, start -a and exec otherwise exit with the container's."""
    OK = 0
    FAILED = 125            # mcd or the request failed, or the command line is wrong
    CANNOT_INVOKE = 126     # the container's command cannot be run (not executable)
    NOT_FOUND = 127         # the container's command was not found
    INTERRUPTED = 130       # Ctrl-C (128 + SIGINT), as a shell reports it


class MCError(Exception):
    """Something failed; ``code`` says what kind, for the API and for the CLI."""
    code = "INTERNAL"
    http_status = 500
    exit_code = ExitStatus.FAILED
    # True when this error came over the wire from the daemon (MCError.from_wire), False
    # when it was raised here (in the daemon, or by the client that could not reach it).
    received = False

    def __init__(self, message: str, *, container: str | None = None,
                 step: str | None = None, path: str | None = None,
                 errno: int | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.container = container
        self.step = step
        self.path = path
        self.errno = errno
        self.details = details or {}

    def __str__(self) -> str:
        return self.message

    def to_wire(self) -> dict:
        body = {"code": self.code, "message": self.message}
        for key in ("container", "step", "path", "errno"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        if self.details:
            body["details"] = self.details
        return {"error": body}

    @classmethod
    def from_wire(cls, payload, http_status: int | None = None) -> "MCError":
        """The error the daemon sent, as the class of its code (any shape is tolerated)."""
        body = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(body, dict):
            body = {}

        def text(key):
            v = body.get(key)
            return v if isinstance(v, str) else None

        code = text("code") or "INTERNAL"
        klass = CODES.get(code, MCError)
        errno = body.get("errno")
        details = body.get("details")
        err = klass(text("message") or (f"HTTP {http_status}" if http_status else "unknown error"),
                    container=text("container"), step=text("step"), path=text("path"),
                    errno=errno if isinstance(errno, int) and not isinstance(errno, bool) else None,
                    details=details if isinstance(details, dict) else None)
        err.received = True
        if klass is MCError:
            err.code = code
            if http_status:
                err.http_status = http_status
        return err


# ---------------------------------------------------------------- the request was wrong

class InvalidArgument(MCError):
    """Bad input: refused before anything changed."""
    code = "INVALID_ARGUMENT"
    http_status = 400


class UnsafeArchive(InvalidArgument):
    """A template archive with a member that would escape its directory."""
    code = "UNSAFE_ARCHIVE"


class BadImage(InvalidArgument):
    """An image or layer that fails a check: a digest, a truncated or missing blob, an
    unsafe member; the message names the image and the layer."""
    code = "BAD_IMAGE"


class PermissionDenied(MCError):
    code = "PERMISSION_DENIED"
    http_status = 403


class NotFound(MCError):
    """No such container, template, or endpoint."""
    code = "NOT_FOUND"
    http_status = 404


class MethodNotAllowed(MCError):
    """The path exists, but not for this method (the answer carries ``Allow``)."""
    code = "METHOD_NOT_ALLOWED"
    http_status = 405


class RequestTimeout(MCError):
    """The request's head or body did not arrive within the server's deadline."""
    code = "REQUEST_TIMEOUT"
    http_status = 408


class Conflict(MCError):
    """Name already taken, or the container is in the wrong state."""
    code = "CONFLICT"
    http_status = 409


class NotRunning(Conflict):
    code = "NOT_RUNNING"


class LengthRequired(MCError):
    """A request body without Content-Length (chunked request bodies are not read)."""
    code = "LENGTH_REQUIRED"
    http_status = 411


class PayloadTooLarge(MCError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class Unsupported(MCError):
    """The kernel here cannot enforce what was asked (missing controller...)."""
    code = "UNSUPPORTED"
    http_status = 422


class HeadersTooLarge(MCError):
    code = "HEADERS_TOO_LARGE"
    http_status = 431


# ---------------------------------------------------------------- the daemon or the kernel failed

class KernelError(MCError):
    """A system call failed: names the call, the path and the errno text."""
    code = "KERNEL_ERROR"

    @classmethod
    def from_oserror(cls, call: str, err: OSError, path: str | None = None,
                     **kw) -> "KernelError":
        path = path or err.filename
        where = f"{call} {path}" if path else call
        text = os.strerror(err.errno) if err.errno else str(err)
        return cls(f"{where}: {text}", path=path, errno=err.errno, step=kw.pop("step", call), **kw)


class SetupError(MCError):
    """A container failed while being set up; step says where."""
    code = "SETUP_FAILED"


class CommandNotFound(SetupError):
    """The container's command is not in its rootfs: the request named it, so 400 (as
    dockerd answers a start whose executable is not found), and the CLI exits 127."""
    code = "COMMAND_NOT_FOUND"
    http_status = 400
    exit_code = ExitStatus.NOT_FOUND


class CommandNotExecutable(SetupError):
    """The container's command cannot be executed (permissions, format): 400, exit 126."""
    code = "COMMAND_NOT_EXECUTABLE"
    http_status = 400
    exit_code = ExitStatus.CANNOT_INVOKE


class Unavailable(MCError):
    """The daemon is up but cannot take this request now (too many connections...)."""
    code = "UNAVAILABLE"
    http_status = 503


class DaemonUnavailable(MCError):
    """The client could not reach the daemon, or lost it mid-answer (never sent by mcd)."""
    code = "DAEMON_UNAVAILABLE"
    http_status = 503


# The closed set: code -> class. A test checks that the daemon sends no other code, that
# each code has one class, and that the published schema lists exactly these.
CODES: dict[str, type[MCError]] = {k.code: k for k in (
    MCError, InvalidArgument, UnsafeArchive, BadImage, PermissionDenied, NotFound, MethodNotAllowed,
    RequestTimeout, Conflict, NotRunning, LengthRequired, PayloadTooLarge, Unsupported,
    HeadersTooLarge, KernelError, SetupError, CommandNotFound, CommandNotExecutable,
    Unavailable, DaemonUnavailable)}
