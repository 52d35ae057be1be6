"""Where a mount may go inside a container: the rule for /proc, /sys and /dev.

The runtime builds three filesystems itself and the container's isolation rests on
them: a fresh procfs at /proc (with masked and read-only paths on top), a fresh
read-only sysfs at /sys, and a tmpfs at /dev holding only the vetted device nodes
(there is no devices cgroup here, so that list *is* the device policy). A user
mount that replaces one of them, or that lands inside procfs, is refused:

- ``/proc``: only a fresh ``proc`` filesystem. Below it, only a bind onto one of the
  files runc allows (the ones lxcfs emulates so that ``top``/``free`` see the
  container's limits); anything else would shadow a piece of procfs, the masks with it.
- ``/sys``: only a fresh ``sysfs``. Below it, anything (``-v
  /sys/fs/cgroup:/sys/fs/cgroup:ro`` is an everyday Docker idiom); masked paths under
  /sys are applied after user mounts and stay masked.
- ``/dev``: no mount at all on /dev itself (a bind would bring host device nodes, a
  tmpfs would hide the ones the runtime made). Below it, anything (``--tmpfs
  /dev/shm``, ``-v /dev/log:/dev/log``).

A caller translating an OCI config.json (whose proc@/proc, sysfs@/sys and tmpfs@/dev
describe the runtime's own three) maps those onto the runtime's and checks the rest.

Pure logic on the normalized destination string: no I/O, no kernel.
"""

from __future__ import annotations

import posixpath

from mcwire.errors import InvalidArgument

# runc's list (libcontainer/rootfs_linux.go, checkProcMount): files under /proc that may be
# bind-mounted over, for lxcfs-style emulation.
PROC_BIND_ALLOWED = (
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid", "/proc/sys/crypto/fips_enabled",
)

# The runtime's own filesystems, and the one mount type that may stand in their place.
SYSTEM_MOUNTS = {"/proc": "proc", "/sys": "sysfs", "/dev": None}


def _under(path: str, top: str) -> bool:
    return path.startswith(top + "/")


def check_mount_destination(destination: str, mount_type: str) -> None:
    """Refuse (InvalidArgument, one line naming the destination) a mount of
    ``mount_type`` (bind, tmpfs, or an OCI type such as proc) at ``destination`` that
    would replace or shadow the container's /proc, /sys or /dev. ``destination`` is
    absolute; it is normalized here, so ``/proc/./x`` and ``//proc`` count as /proc."""
    dest = posixpath.normpath(destination)
    if dest.startswith("//"):
        dest = "/" + dest.lstrip("/")
    if dest in SYSTEM_MOUNTS:
        allowed = SYSTEM_MOUNTS[dest]
        if mount_type == allowed:
            return
        kind = {"/proc": "procfs", "/sys": "sysfs", "/dev": "device directory"}[dest]
        raise InvalidArgument(
            f"mount destination {dest}: a {mount_type} mount cannot replace the container's "
            f"{kind} (the runtime mounts {dest} itself)")
    if _under(dest, "/proc"):
        if mount_type == "bind" and dest in PROC_BIND_ALLOWED:
            return
        raise InvalidArgument(
            f"mount destination {dest}: inside /proc; only binds onto "
            f"{', '.join(p[len('/proc/'):] for p in PROC_BIND_ALLOWED)} are allowed there")
