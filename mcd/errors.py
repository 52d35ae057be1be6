"""One exception tree for the whole project.

Every error carries a symbolic code that travels over the API
(``{"error": {"code": ..., "message": ...}}``), an HTTP status for the daemon
and an exit code for the CLI (Docker's convention: 125 the engine or the
request failed, 126 the command cannot be invoked, 127 it was not found).

``OSError`` is translated into these only at the kernel boundary
(``mcd.runtime.syscalls`` and the cgroup drivers), keeping errno, the call and
the path, so a user reads ``mount /proc: Permission denied`` and not a
traceback.
"""

from __future__ import annotations

import errno as _errno
import os


class MCError(Exception):
    code = "INTERNAL"
    http_status = 500
    exit_code = 125

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
    def from_wire(cls, payload: dict, http_status: int | None = None) -> "MCError":
        body = payload.get("error", {}) if isinstance(payload, dict) else {}
        code = body.get("code", "INTERNAL")
        klass = _BY_CODE.get(code, MCError)
        err = klass(body.get("message", "unknown error"),
                    container=body.get("container"), step=body.get("step"),
                    path=body.get("path"), errno=body.get("errno"),
                    details=body.get("details"))
        if klass is MCError:
            err.code = code
            if http_status:
                err.http_status = http_status
        return err


class InvalidArgument(MCError):
    code = "INVALID_ARGUMENT"
    http_status = 400


class NotFound(MCError):
    code = "NOT_FOUND"
    http_status = 404


class Conflict(MCError):
    """Name already taken, or the container is in the wrong state."""
    code = "CONFLICT"
    http_status = 409


class NotRunning(Conflict):
    code = "NOT_RUNNING"


class Unsupported(MCError):
    """The kernel here cannot enforce what was asked (missing controller...)."""
    code = "UNSUPPORTED"
    http_status = 422


class PermissionDenied(MCError):
    code = "PERMISSION_DENIED"
    http_status = 403


class DaemonUnavailable(MCError):
    code = "DAEMON_UNAVAILABLE"
    http_status = 503


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
    code = "COMMAND_NOT_FOUND"
    exit_code = 127


class CommandNotExecutable(SetupError):
    code = "COMMAND_NOT_EXECUTABLE"
    exit_code = 126


_BY_CODE = {k.code: k for k in (
    MCError, InvalidArgument, NotFound, Conflict, NotRunning, Unsupported,
    PermissionDenied, DaemonUnavailable, KernelError, SetupError,
    CommandNotFound, CommandNotExecutable)}


def setup_error(step: str, err_no: int, path: str | None = None,
                container: str | None = None) -> SetupError:
    """The error a failed container setup step turns into (exec maps to 126/127)."""
    text = os.strerror(err_no)
    where = f"{step} {path}" if path else step
    if step == "exec":
        where = f'exec "{path}"' if path else "exec"
    klass = SetupError
    if step == "exec":
        if err_no == _errno.ENOENT:
            klass = CommandNotFound
        elif err_no in (_errno.EACCES, _errno.ENOEXEC, _errno.EPERM, _errno.EISDIR):
            klass = CommandNotExecutable
    msg = f"{where}: {text}"
    if container:
        msg = f"container {container}: {msg}"
    return klass(msg, container=container, step=step, path=path, errno=err_no)
