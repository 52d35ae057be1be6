"""mcd: the mini-container daemon."""

from __future__ import annotations

import argparse
import logging
import sys

from mcd.config import DEFAULT_CONFIG_FILE, LOG_LEVELS
from mcwire import __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mcd", description="The mini-container daemon: runs containers and serves the "
                                "mcctl API on a Unix socket.",
        epilog="Flags override the configuration file. Containers keep running when mcd stops.")
    p.add_argument("--config", metavar="FILE", default=None,
                   help=f"configuration file (TOML; default {DEFAULT_CONFIG_FILE} if it exists)")
    p.add_argument("--socket", metavar="PATH", help="API socket (default /run/mcd/mcd.sock)")
    p.add_argument("--root", metavar="DIR", help="state, templates and logs (default /var/lib/mcd)")
    p.add_argument("--cgroup-parent", metavar="NAME", help="parent cgroup (default mini_container)")
    p.add_argument("--web-listen", metavar="ADDR:PORT|off",
                   help="dashboard address (default 127.0.0.1:7070), or off")
    p.add_argument("--web-allow-remote", action="store_true", default=None,
                   help="allow a non-loopback --web-listen address (logged as a warning)")
    p.add_argument("--docker-socket", metavar="PATH|off",
                   help="also serve the Docker Engine API on this socket (default off)")
    p.add_argument("--log-level", choices=LOG_LEVELS, help="default info")
    p.add_argument("--run-dir", metavar="DIR",
                   help="held network namespaces (default /run/mcd, or ROOT/run with --root)")
    p.add_argument("--network-config-dir", metavar="DIR",
                   help="CNI configuration lists an administrator adds (default /etc/mcd/net.d)")
    p.add_argument("--default-network", metavar="NAME|none",
                   help="network of a container without --network (default mcnet)")
    p.add_argument("--supervisor", action=argparse.BooleanOptionalAction, default=None,
                   help="one supervisor process for all containers (default); "
                        "--no-supervisor: a monitor process per container")
    p.add_argument("--version", action="version", version=f"mcd {__version__}")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["supervisor"]:      # started by mcd itself (mcd.supervisor.handle)
        from mcd.supervisor.server import main as supervisor_main
        return supervisor_main(argv[1:])
    args = build_parser().parse_args(argv)
    from mcd import config as config_mod
    from mcd.errors import MCError
    try:
        cfg = config_mod.load(args.config or DEFAULT_CONFIG_FILE, {
            "socket": args.socket, "root": args.root, "cgroup_parent": args.cgroup_parent,
            "web_listen": args.web_listen, "log_level": args.log_level,
            "web_allow_remote": args.web_allow_remote,
            "docker_socket": args.docker_socket, "run_dir": args.run_dir,
            "network_config_dir": args.network_config_dir,
            "default_network": args.default_network, "supervisor": args.supervisor},
            required=args.config is not None)
    except MCError as err:
        print(f"mcd: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=cfg.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s mcd[%(process)d] %(levelname)s %(name)s: %(message)s")
    from mcd.daemon import Daemon
    try:
        return Daemon(cfg).run()
    except MCError as err:
        logging.getLogger("mcd").error("%s", err)
        print(f"mcd: {err}", file=sys.stderr)
        return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
