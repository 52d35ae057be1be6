"""Daemon configuration: defaults, then /etc/mcd/mcd.toml, then command-line flags."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields

from mcd.errors import InvalidArgument

DEFAULT_CONFIG_FILE = "/etc/mcd/mcd.toml"
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass
class Config:
    socket: str = "/run/mcd/mcd.sock"
    root: str = "/var/lib/mcd"
    cgroup_parent: str = "mini_container"
    web_listen: str = "127.0.0.1:7070"
    web_allow_remote: bool = False
    log_level: str = "info"
    max_body: int = 1 << 20
    docker_socket: str = "off"      # the Docker Engine API listener (mcd.docker), or off
    # Networks (docs/networking.md). run_dir "" = /run/mcd for the default root, else ROOT/run.
    run_dir: str = ""
    network_config_dir: str = "/etc/mcd/net.d"
    default_network: str = "mcnet"              # "none": containers get no network by default
    default_network_bridge: str = "mcbr0"
    default_network_subnet: str = "10.77.0.0/16"
    publish_ip: str = "0.0.0.0"                 # where -p binds when no host IP is given
    cni_path: str = "/usr/lib/cni:/usr/libexec/cni:/opt/cni/bin"   # Debian, Fedora, upstream
    # Registries pulled from over plain HTTP (besides localhost): "host[:port]" each.
    insecure_registries: list = field(default_factory=list)
    # One supervisor process for all containers (mcd.supervisor), the default since issue
    # 17; false: a monitor process per container, as before (docs/design.md, "One supervisor").
    supervisor: bool = True

    @property
    def effective_run_dir(self) -> str:
        if self.run_dir:
            return self.run_dir
        return "/run/mcd" if self.root == Config.root else self.root.rstrip("/") + "/run"

    def validate(self) -> "Config":
        if not self.socket.startswith("/"):
            raise InvalidArgument(f"socket: {self.socket!r} must be an absolute path")
        if not self.root.startswith("/"):
            raise InvalidArgument(f"root: {self.root!r} must be an absolute path")
        if self.docker_socket != "off" and not self.docker_socket.startswith("/"):
            raise InvalidArgument(f"docker_socket: {self.docker_socket!r} must be an absolute path or off")
        if self.docker_socket == self.socket:
            raise InvalidArgument("docker_socket: must differ from socket")
        if self.log_level not in LOG_LEVELS:
            raise InvalidArgument(f"log_level: {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*", self.cgroup_parent) \
                or ".." in self.cgroup_parent.split("/"):
            raise InvalidArgument(f"cgroup_parent: invalid {self.cgroup_parent!r}")
        for key in ("run_dir", "network_config_dir"):
            v = getattr(self, key)
            if v and not v.startswith("/"):
                raise InvalidArgument(f"{key}: {v!r} must be an absolute path")
        if self.default_network != "none":
            from mcd.network.networks import host_in, parse_subnet
            from mcwire.spec import validate_name
            validate_name(self.default_network, "default_network")
            net = parse_subnet(self.default_network_subnet, "default_network_subnet")
            host_in(net, net.network_address + 1, "default_network_subnet")
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", self.default_network_bridge):
                raise InvalidArgument(f"default_network_bridge: {self.default_network_bridge!r} "
                                      f"is not an interface name (at most 15 characters)")
        from mcwire.units import _ipv4
        _ipv4(self.publish_ip, "publish_ip")
        if self.web_listen != "off":
            _host, sep, port = self.web_listen.rpartition(":")
            if not sep or not port.isdigit() or not 0 < int(port) < 65536:
                raise InvalidArgument(f"web_listen: {self.web_listen!r} is not ADDR:PORT or off")
        return self


def load(path: str | None, overrides: dict, *, required: bool = False) -> Config:
    """Keys in the TOML file use underscores or dashes (cgroup_parent / cgroup-parent)."""
    cfg = Config()
    known = {f.name: f.type for f in fields(Config)}
    data = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            if required:
                raise InvalidArgument(f"config file {path}: not found") from None
        except tomllib.TOMLDecodeError as err:
            raise InvalidArgument(f"config file {path}: {err}") from None
    for key, value in data.items():
        k = key.replace("-", "_")
        if k not in known:
            raise InvalidArgument(f"config file {path}: unknown key {key!r}")
        expected = {"max_body": int, "web_allow_remote": bool, "supervisor": bool,
                    "insecure_registries": list}.get(k, str)
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise InvalidArgument(f"config file {path}: {key} must be a {expected.__name__}")
        if expected is list and not all(isinstance(v, str) and v and "/" not in v
                                        for v in value):
            raise InvalidArgument(f"config file {path}: {key} must list host[:port] names")
        setattr(cfg, k, value)
    for k, v in overrides.items():
        if v is not None:
            setattr(cfg, k, v)
    return cfg.validate()
