"""Daemon configuration: defaults, then /etc/mcd/mcd.toml, then command-line flags."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields

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
        expected = {"max_body": int, "web_allow_remote": bool}.get(k, str)
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise InvalidArgument(f"config file {path}: {key} must be a {expected.__name__}")
        setattr(cfg, k, value)
    for k, v in overrides.items():
        if v is not None:
            setattr(cfg, k, v)
    return cfg.validate()
