"""The daemon's errors: the wire's closed set of codes, and how a failed setup step maps
onto it.

Every class is defined once, in ``mcwire.errors`` (the client raises the very same ones
from the answers it gets); this module is the daemon's name for them, so daemon code keeps
one import line, plus ``setup_error``: the daemon's rule for which error a failed
container setup step becomes (exec maps to Docker's 126/127).
"""

from __future__ import annotations

import errno as _errno
import os

from mcwire.errors import (CODES, BadImage, CommandNotExecutable, CommandNotFound,  # noqa: F401
                           Conflict, DaemonUnavailable, ExitStatus, HeadersTooLarge,
                           InvalidArgument, KernelError, LengthRequired, MCError,
                           MethodNotAllowed, NotFound, NotRunning, PayloadTooLarge,
                           PermissionDenied, RequestTimeout, SetupError, Unavailable,
                           UnsafeArchive, Unsupported)


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
