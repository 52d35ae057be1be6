"""The one description of the mcctl command line.

``build_parser()`` feeds --help, the man page (argparse-manpage) and the bash/zsh
completions (shtab). It imports nothing but argparse and mcwire (the version; the exit
statuses for the full --help), so packaging can load it without the daemon.
"""

from __future__ import annotations

import argparse
import os
import sys

from mcctl import DEFAULT_SOCKET  # noqa: F401 (re-exported)
from mcwire import __version__ as VERSION

# shtab reads an argument's ``complete`` attribute (a dict of shell -> function name), so
# marking arguments needs no import of shtab: importing it would cost ~80 ms per call.
CONTAINER_COMPLETE = {
    "bash": "_mcctl_containers",
    "zsh": "_mcctl_containers",
}
TEMPLATE_COMPLETE = {
    "bash": "_mcctl_templates",
    "zsh": "_mcctl_templates",
}


_columns = None


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns, without importing shutil (~3 ms)."""
    global _columns
    if _columns is None:
        try:
            _columns = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            _columns = 0
        if _columns <= 0:
            try:
                _columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
            except (AttributeError, ValueError, OSError):
                _columns = 0
        _columns = _columns or 80
    return _columns


class _Formatter(argparse.HelpFormatter):
    """argparse makes a formatter for every add_argument (to check the metavar), and
    HelpFormatter imports shutil for the terminal width. Same width, same wrapping."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        super().__init__(prog, indent_increment, max_help_position,
                         _terminal_columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """Passes _Formatter down: subparsers are made with the parent's class."""

    def __init__(self, *args, formatter_class=_Formatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


class _Version(argparse._VersionAction):
    """Prints the version line as it is. argparse's own action passes it through a
    HelpFormatter, which imports shutil and textwrap (~3 ms, more frozen) to wrap one
    short line. A subclass, so shtab still treats it as the version flag."""

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(self.version + "\n")
        parser.exit()


def _container(arg):
    arg.complete = CONTAINER_COMPLETE
    return arg


def _template(arg):
    arg.complete = TEMPLATE_COMPLETE
    return arg


def _add_run_flags(p: argparse.ArgumentParser, *, run: bool) -> None:
    if run:
        p.add_argument("-d", "--detach", action="store_true",
                       help="run in the background and print the container id")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin attached")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--name", metavar="NAME", help="container name (default: generated)")
    p.add_argument("-h", "--hostname", metavar="HOST", dest="hostname",
                   help="hostname inside the container (default: the name)")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE",
                   help="set an environment variable (repeatable; KEY alone takes it from here)")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE",
                   help="read KEY=VALUE lines from a file")
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    p.add_argument("-u", "--user", metavar="UID[:GID]", help="numeric user and group")
    p.add_argument("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro]",
                   help="bind mount a host path (DST not /proc, /sys, /dev nor inside /proc, "
                        "but for the lxcfs files such as /proc/meminfo)")
    p.add_argument("--tmpfs", action="append", default=[], metavar="DST[:OPTS]",
                   help="mount a tmpfs (DST not /proc, /sys, /dev nor inside /proc)")
    p.add_argument("--read-only", action="store_true", help="read-only root filesystem")
    p.add_argument("--network", "--net", metavar="NETWORK", default=None,
                   help="a network's name, bridge (the default network), none (loopback only) "
                        "or host (default: the daemon's default network)")
    p.add_argument("-p", "--publish", action="append", default=[],
                   metavar="[HOSTIP:][HOSTPORT:]PORT[/PROTO]",
                   help="publish a container port on the host (repeatable; tcp or udp)")
    p.add_argument("-P", "--publish-all", action="store_true",
                   help="publish every port the image exposes, each on a free host port")
    p.add_argument("--ip", metavar="IPv4", help="the container's address on its network")
    p.add_argument("--dns", action="append", default=[], metavar="IP",
                   help="a nameserver for /etc/resolv.conf (repeatable)")
    p.add_argument("--add-host", action="append", default=[], metavar="NAME:IP",
                   help="a line for /etc/hosts (repeatable)")
    p.add_argument("--network-alias", action="append", default=[], metavar="NAME",
                   help="another name peers on the network reach the container by")
    p.add_argument("--userns", action="store_true",
                   help="run in a user namespace (root inside maps to an unprivileged range)")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP", help="add a capability")
    p.add_argument("--cap-drop", action="append", default=[], metavar="CAP", help="drop a capability")
    p.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                   help="seccomp=unconfined turns the default seccomp filter off")
    p.add_argument("--restart", metavar="POLICY", default="no",
                   help="no, on-failure[:N], always, unless-stopped")
    p.add_argument("--stop-timeout", type=int, metavar="S", help="seconds before SIGKILL on stop")
    p.add_argument("--stop-signal", metavar="SIG", help="signal for stop (default SIGTERM)")
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE", help="a label")
    _add_limit_flags(p)
    p.add_argument("--pull", choices=("missing", "always", "never"), default=None,
                   help="pull the image first: always, never, or when missing (the default, "
                        "for a reference that names a registry, or when --pull is given)")
    p.add_argument("--entrypoint", metavar="CMD",
                   help="run CMD instead of the image's entrypoint (the image's Cmd is dropped)")
    _template(p.add_argument("template", metavar="IMAGE",
                             help="image (name[:tag], name@digest, id) or template (e.g. minimal)"))
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD",
                   help="command and arguments (default: the image's, sh for a template)")


def _add_limit_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--memory", metavar="SIZE", help="memory limit (e.g. 64m)")
    p.add_argument("--memory-swap", metavar="SIZE", help="memory + swap limit; -1 unlimited")
    p.add_argument("--cpu-shares", type=int, metavar="N", help="relative CPU weight (default 1024)")
    p.add_argument("--cpus", type=float, metavar="F", help="number of CPUs (e.g. 0.5)")
    p.add_argument("--cpu-quota", type=int, metavar="US", help="CPU time per period, in µs")
    p.add_argument("--cpu-period", type=int, metavar="US", help="CPU period, in µs")
    p.add_argument("--cpuset-cpus", metavar="LIST", help="CPUs allowed (e.g. 0-1,3)")
    p.add_argument("--pids-limit", type=int, metavar="N", help="maximum number of processes; -1 none")


# Every subcommand, in --help order (a unit test checks this against the full parser).
COMMANDS = ("run", "create", "start", "stop", "restart", "kill", "rm", "destroy", "ps",
            "inspect", "logs", "exec", "wait", "stats", "top", "update", "pause", "unpause",
            "rename", "prune", "port", "network", "template", "image", "images", "pull", "login",
            "logout", "system", "dashboard", "info", "version")


def command_in(argv: list[str]) -> str | None:
    """The subcommand named in argv (skipping the global options), or None."""
    it = iter(argv)
    for tok in it:
        if tok == "--socket":
            next(it, None)
        elif tok.startswith("-"):
            continue
        else:
            return tok
    return None


def _exit_statuses() -> str:
    """The epilog of the full parser (--help, the man page), from mcwire's ExitStatus: only
    the full parser shows it, so one subcommand's call does not import mcwire.errors for it."""
    from mcwire.errors import ExitStatus
    return (f"Exit status: the container's own for run, start -a and exec; "
            f"{ExitStatus.FAILED:d} when mcd or the request failed; "
            f"{ExitStatus.CANNOT_INVOKE:d} command not executable; "
            f"{ExitStatus.NOT_FOUND:d} command not found.")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI. With ``only`` (a name from COMMANDS), just that subcommand: argparse
    objects are slow to build (an empty subparser alone costs ~0.35 ms here, the whole tree
    ~13 ms) and one call of mcctl parses one subcommand. Man pages, completions and
    `mcctl --help` use the full parser."""
    parser = _Parser(
        prog="mcctl",
        description="Control mini-container: run and manage containers through the mcd daemon.",
        epilog=_exit_statuses() if only is None else None)
    parser.add_argument("--socket", metavar="PATH",
                        help=f"daemon socket (env MCD_SOCKET, default {DEFAULT_SOCKET})")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action=_Version, version=f"mcctl {VERSION}")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    class _Stub:
        """Stands in for a subparser that is not the one being parsed."""
        def add_argument(self, *a, **kw):
            return argparse.Action(option_strings=[], dest="_")

        def add_subparsers(self, *a, **kw):
            return self

        def add_parser(self, *a, **kw):
            return self

    def cmd(name, help, **kw):
        if only is not None and only != name:
            return _Stub()
        return sub.add_parser(name, help=help, description=help, **kw)

    p = cmd("run", "Create and start a container; without -d, wait and exit with its status",
            add_help=False)
    p.add_argument("--help", action="help", help="show this help message and exit")
    _add_run_flags(p, run=True)

    p = cmd("create", "Create a container without starting it", add_help=False)
    p.add_argument("--help", action="help", help="show this help message and exit")
    _add_run_flags(p, run=False)

    p = cmd("start", "Start created or stopped containers")
    p.add_argument("-a", "--attach", action="store_true", help="attach output and wait for the exit")
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin (with -a)")
    _container(p.add_argument("containers", nargs="+", metavar="NAME"))

    p = cmd("stop", "Stop running containers (stop signal, then SIGKILL)")
    p.add_argument("-t", "--time", type=int, metavar="S", help="seconds to wait before SIGKILL")
    _container(p.add_argument("containers", nargs="+", metavar="NAME"))

    p = cmd("restart", "Stop then start containers")
    p.add_argument("-t", "--time", type=int, metavar="S", help="seconds to wait before SIGKILL")
    _container(p.add_argument("containers", nargs="+", metavar="NAME"))

    p = cmd("kill", "Send a signal to containers' PID 1")
    p.add_argument("-s", "--signal", default="SIGKILL", metavar="SIG", help="signal (default SIGKILL)")
    _container(p.add_argument("containers", nargs="+", metavar="NAME"))

    for name in ("rm", "destroy"):
        p = cmd(name, "Remove containers" + (" (alias of rm)" if name == "destroy" else ""))
        p.add_argument("-f", "--force", action="store_true", help="kill running containers first")
        _container(p.add_argument("containers", nargs="+", metavar="NAME"))

    p = cmd("ps", "List containers")
    p.add_argument("-a", "--all", action="store_true", help="include stopped containers")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.add_argument("--no-trunc", action="store_true", help="full ids and commands")

    p = cmd("inspect", "Show containers as JSON")
    _container(p.add_argument("containers", nargs="+", metavar="NAME"))

    p = cmd("logs", "Show a container's output")
    p.add_argument("-f", "--follow", action="store_true", help="keep following")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    _container(p.add_argument("container", metavar="NAME"))

    p = cmd("exec", "Run a command in a running container")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin attached")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE", help="environment")
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory")
    p.add_argument("-u", "--user", metavar="UID[:GID]", help="numeric user and group")
    _container(p.add_argument("container", metavar="NAME"))
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD", help="command and arguments")

    p = cmd("wait", "Wait for containers to exit and print their exit codes")
    _container(p.add_argument("containers", nargs="+", metavar="NAME"))

    p = cmd("stats", "Resource usage of running containers")
    p.add_argument("--no-stream", action="store_true", help="print once and exit")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    _container(p.add_argument("containers", nargs="*", metavar="NAME"))

    p = cmd("top", "Processes of a container")
    _container(p.add_argument("container", metavar="NAME"))

    p = cmd("update", "Change the resource limits of containers")
    _add_limit_flags(p)
    p.add_argument("--restart", metavar="POLICY", help="new restart policy")
    _container(p.add_argument("containers", nargs="+", metavar="NAME"))

    p = cmd("pause", "Freeze every process of containers")
    _container(p.add_argument("containers", nargs="+", metavar="NAME"))
    p = cmd("unpause", "Thaw paused containers")
    _container(p.add_argument("containers", nargs="+", metavar="NAME"))

    p = cmd("rename", "Rename a container")
    _container(p.add_argument("container", metavar="NAME"))
    p.add_argument("new_name", metavar="NEW_NAME")

    p = cmd("prune", "Remove every stopped container")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (accepted for Docker habits)")

    p = cmd("port", "List a container's published ports")
    _container(p.add_argument("container", metavar="NAME"))
    p.add_argument("private_port", nargs="?", metavar="PORT[/PROTO]",
                   help="only this container port")

    p = cmd("network", "Manage networks")
    nsub = p.add_subparsers(dest="network_cmd", metavar="ACTION")
    nsub.required = True
    np_ = nsub.add_parser("create", help="Create a bridge network",
                          description="Create a bridge network (with NAT, unless --internal)")
    np_.add_argument("--subnet", metavar="CIDR", help="e.g. 10.78.5.0/24 (default: a free /24)")
    np_.add_argument("--gateway", metavar="IP", help="default: the subnet's first address")
    np_.add_argument("--internal", action="store_true",
                     help="no way out: no gateway, no NAT, no published ports")
    np_.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE",
                     help="a label")
    np_.add_argument("name", metavar="NAME")
    np_ = nsub.add_parser("ls", help="List networks", description="List networks")
    np_.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    np_.add_argument("-q", "--quiet", action="store_true", help="only names")
    np_ = nsub.add_parser("inspect", help="Show networks as JSON",
                          description="Show networks as JSON")
    np_.add_argument("names", nargs="+", metavar="NAME")
    np_ = nsub.add_parser("rm", help="Remove networks (refused while a container uses one)",
                          description="Remove networks (refused while a container uses one)")
    np_.add_argument("names", nargs="+", metavar="NAME")
    np_ = nsub.add_parser("prune", help="Remove every network made by create that no "
                          "container uses", description="Remove every network made by create "
                          "that no container uses")
    np_.add_argument("-f", "--force", action="store_true",
                     help="do not ask (accepted for Docker habits)")

    p = cmd("template", "Manage rootfs templates")
    tsub = p.add_subparsers(dest="template_cmd", metavar="ACTION")
    tsub.required = True
    tp = tsub.add_parser("ls", help="List templates", description="List templates")
    tp.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    tp.add_argument("-q", "--quiet", action="store_true", help="only names")
    # Source first, then the new template's name, for both (as `docker import FILE NAME`).
    tp = tsub.add_parser("import", help="Import a template from a tar archive (- for stdin)",
                         description="Import a template from a tar archive: FILE, then NAME")
    tp.add_argument("file", metavar="FILE",
                    help="a .tar, .tar.gz, .tar.xz or .tar.bz2 (- for stdin); device nodes "
                         "and FIFOs in it are skipped")
    tp.add_argument("name", metavar="NAME", help="the new template")
    tp = tsub.add_parser("create", help="Create a template from a directory",
                         description="Create a template from a directory: DIR, then NAME")
    tp.add_argument("directory", metavar="DIR", help="the root filesystem tree to copy")
    tp.add_argument("name", metavar="NAME", help="the new template")
    tp = tsub.add_parser("rm", help="Remove templates", description="Remove templates")
    _template(tp.add_argument("names", nargs="+", metavar="NAME"))

    p = cmd("image", "Manage images: load, ls, inspect, rm, tag, history, prune, save")
    if not isinstance(p, _Stub):
        from mcctl.images import add_image_parser
        isub = p.add_subparsers(dest="image_cmd", metavar="ACTION")
        isub.required = True
        add_image_parser(lambda name, help: isub.add_parser(name, help=help, description=help))
    p = cmd("images", "List images (image ls)")
    if not isinstance(p, _Stub):
        from mcctl.images import add_images_parser
        add_images_parser(p)
    p = cmd("pull", "Pull an image from a registry")
    if not isinstance(p, _Stub):
        from mcctl.images import add_pull_parser
        add_pull_parser(p)
    p = cmd("login", "Store credentials for a registry (the daemon keeps them, mode 0600)")
    if not isinstance(p, _Stub):
        from mcctl.images import add_login_parser
        add_login_parser(p)
    p = cmd("logout", "Forget a registry's credentials")
    if not isinstance(p, _Stub):
        from mcctl.images import add_logout_parser
        add_logout_parser(p)
    p = cmd("system", "System-wide information: df (disk usage)")
    if not isinstance(p, _Stub):
        from mcctl.images import add_system_parser
        add_system_parser(p)

    p = cmd("dashboard", "Print the dashboard's address with its access token (root or group mcd)")

    p = cmd("info", "Daemon information: versions, cgroup mode, drivers, counts")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p = cmd("version", "Client and daemon versions")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    return parser
