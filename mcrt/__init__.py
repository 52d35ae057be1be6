"""mcrt: a daemonless, runc-compatible OCI runtime on mini-container's runtime code.

podman (through conmon), containerd (through its runc v2 shim) and CRI-O call an OCI
runtime binary with runc's command line: ``create``, ``start``, ``state``, ``kill``,
``delete`` and the rest. mcrt answers that contract with the same kernel-facing code
the mcd daemon uses (mcd.runtime: syscalls, rootfs, security, cgroups). Each command
is a short-lived process: imports stay lean, state lives in ROOT/ID/state.json.
"""

from mcwire import __version__ as VERSION  # noqa: E402 - the one source of the version
SPEC_VERSION = "1.0.2"
