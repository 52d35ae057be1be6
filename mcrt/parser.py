"""mcrt's command line: runc's commands and flags (the contract conmon, the containerd
shim and CRI-O rely on). Also the source of the man page and the completions
(packaging/gen_docs.py)."""

from __future__ import annotations

import argparse

from mcrt import SPEC_VERSION, VERSION

DEFAULT_ROOT = "/run/mcrt"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        from mcrt.errors import McrtError
        raise McrtError(f"{self.prog}: {message}")


def _id(p, help_="the container id"):
    p.add_argument("id", metavar="ID", help=help_)


# Global options that take a value: main() skips them when it looks for the command.
GLOBAL_WITH_VALUE = ("--root", "--log", "--log-format", "--rootless", "--criu")
COMMANDS = ("create", "run", "start", "state", "kill", "delete", "exec", "ps", "pause", "resume",
            "update", "list", "features", "spec")


def command_of(argv: list[str]) -> str | None:
    """The command word in argv (after the global options), or None."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in GLOBAL_WITH_VALUE:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return a if a in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser (man page, completions, --help), or with ``only`` just that
    command's subparser: podman and the shim call mcrt several times per container, and
    building all fourteen subparsers is a good part of a call's start-up."""
    p = _Parser(prog="mcrt", description=(
        "mcrt runs OCI bundles with mini-container's runtime, with runc's command line: "
        "podman (--runtime), containerd (BinaryName / ctr --runc-binary) and CRI-O can use it."))
    p.add_argument("--version", "-v", action="store_true", help="print the version (runc's format)")
    p.add_argument("--root", default=DEFAULT_ROOT,
                   help=f"directory for the containers' state (default {DEFAULT_ROOT})")
    p.add_argument("--log", default="", help="write log lines (and errors) to this file too")
    p.add_argument("--log-format", default="text", choices=("text", "json"),
                   help="format of --log lines: text, or json ({\"level\",\"msg\",\"time\"})")
    p.add_argument("--debug", action="store_true", help="debug log lines; tracebacks on error")
    p.add_argument("--systemd-cgroup", action="store_true",
                   help="cgroupsPath is slice:prefix:name (mapped onto cgroupfs)")
    p.add_argument("--rootless", default="auto", help="accepted for runc compatibility: only 'auto' "
                   "or 'false' (mcrt runs as root)")
    p.add_argument("--criu", default="", help=argparse.SUPPRESS)
    real = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    class _Sub:
        def add_parser(self, name, **kw):
            if only is not None and name != only:
                return _Skip()
            return real.add_parser(name, **kw)
    sub = _Sub()

    c = sub.add_parser("create", help="create a container: its init waits before the user process")
    _create_flags(c)
    _id(c)

    c = sub.add_parser("run", help="create and start a container, wait for it unless --detach")
    _create_flags(c)
    c.add_argument("--detach", "-d", action="store_true", help="do not wait for the container")
    c.add_argument("--keep", action="store_true", help="do not delete the container after it exits")
    _id(c)

    c = sub.add_parser("start", help="let a created container's init run the user process")
    _id(c)

    c = sub.add_parser("state", help="print the state of a container as runtime-spec JSON")
    _id(c)

    c = sub.add_parser("kill", help="send a signal (default SIGTERM) to the container's init")
    c.add_argument("--all", "-a", action="store_true", help="signal every process in the container")
    _id(c)
    c.add_argument("signal", nargs="?", default="SIGTERM", metavar="SIGNAL",
                   help="name (TERM, SIGKILL) or number (default SIGTERM)")

    c = sub.add_parser("delete", help="delete a container's resources (cgroup, state)")
    c.add_argument("--force", "-f", action="store_true", help="kill it first if it still runs")
    _id(c)

    c = sub.add_parser("exec", help="run a new process inside a container")
    c.add_argument("--process", "-p", default="", help="a JSON file with the runtime-spec process")
    c.add_argument("--detach", "-d", action="store_true", help="do not wait for the process")
    c.add_argument("--pid-file", default="", help="write the process's host pid here")
    c.add_argument("--console-socket", default="",
                   help="unix socket that receives the pty master (with --tty)")
    c.add_argument("--tty", "-t", action="store_true", help="allocate a pty")
    c.add_argument("--cwd", default="", help="working directory in the container")
    c.add_argument("--env", "-e", action="append", default=[], help="KEY=VALUE (repeatable)")
    c.add_argument("--user", "-u", default="", help="UID[:GID]")
    c.add_argument("--additional-gids", "-g", action="append", type=int, default=[],
                   help="supplementary group (repeatable)")
    c.add_argument("--cap", "-c", action="append", default=[], help="add a capability (repeatable)")
    c.add_argument("--no-new-privs", action="store_true", help="set no_new_privs")
    c.add_argument("--preserve-fds", type=int, default=0, help="pass fds 3..3+N-1 on")
    c.add_argument("--process-label", default="", help="SELinux label (refused when set)")
    c.add_argument("--apparmor", default="", help="AppArmor profile (refused when set)")
    c.add_argument("--ignore-paused", action="store_true", help=argparse.SUPPRESS)
    _id(c)
    c.add_argument("args", nargs=argparse.REMAINDER, metavar="COMMAND", help="command and arguments")

    c = sub.add_parser("ps", help="list the processes of a container")
    c.add_argument("--format", "-f", default="table", choices=("table", "json"),
                   help="table (ps output) or json (a list of pids)")
    _id(c)
    c.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="PS_ARGS",
                   help="arguments for ps (default -ef)")

    c = sub.add_parser("pause", help="freeze every process of a container")
    _id(c)
    c = sub.add_parser("resume", help="thaw a paused container")
    _id(c)

    c = sub.add_parser("update", help="change a running container's resource limits")
    c.add_argument("--resources", "-r", default="",
                   help="a runtime-spec linux.resources JSON file, or - for stdin")
    for flag, help_ in (("--memory", "memory limit in bytes"),
                        ("--memory-swap", "memory+swap limit in bytes (-1: unlimited)"),
                        ("--cpu-shares", "cpu shares"), ("--cpu-quota", "cpu quota in µs"),
                        ("--cpu-period", "cpu period in µs"), ("--pids-limit", "max pids")):
        c.add_argument(flag, type=int, default=None, help=help_)
    c.add_argument("--cpuset-cpus", default=None, help="cpus, e.g. 0-1")
    _id(c)

    c = sub.add_parser("list", help="list the containers under --root")
    c.add_argument("--format", "-f", default="table", choices=("table", "json"))
    c.add_argument("--quiet", "-q", action="store_true", help="ids only")

    sub.add_parser("features", help="print what this runtime supports (runc's features JSON)")

    c = sub.add_parser("spec", help="write a starting config.json (as runc spec does)")
    c.add_argument("--bundle", "-b", default="", help="bundle directory (default: here)")
    c.add_argument("--rootless", action="store_true", help="refused: mcrt runs as root")
    return p


def _create_flags(c) -> None:
    c.add_argument("--bundle", "-b", default="", help="bundle directory (default: here)")
    c.add_argument("--pid-file", default="", help="write the init's host pid here")
    c.add_argument("--console-socket", default="",
                   help="unix socket that receives the pty master when process.terminal is set")
    c.add_argument("--preserve-fds", type=int, default=0,
                   help="pass fds 3..3+N-1 on to the container's process")
    c.add_argument("--no-pivot", action="store_true",
                   help="move the rootfs over / and chroot instead of pivot_root")
    c.add_argument("--no-new-keyring", action="store_true",
                   help="accepted: mcrt never creates a session keyring")
    c.add_argument("--no-subreaper", action="store_true", help=argparse.SUPPRESS)
    c.add_argument("--pidfd-socket", default="", help=argparse.SUPPRESS)


def version_text(libseccomp: str) -> str:
    return (f"mcrt version {VERSION}\ncommit: mini-container {VERSION}\nspec: {SPEC_VERSION}\n"
            f"python: mcd.runtime\nlibseccomp: {libseccomp}\n")


class _Skip:
    """Stands in for a subparser that this call does not need."""

    def add_argument(self, *a, **kw):
        return None
