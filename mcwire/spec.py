"""The one typed container spec: the body of ``POST /v1/containers``, shared by both sides.

What the API accepts, what the store persists and what the runtime consumes; mcctl loads
it only to name bad input itself when the daemon cannot be reached.
Its shape follows the OCI runtime spec's config.json (process, root, hostname,
mounts, linux.namespaces, linux.resources, linux.maskedPaths...), with the few
things a daemon needs on top (name, restart policy, stop timeout, labels).

Every field is validated on construction; ``ContainerSpec.from_dict`` refuses
unknown fields and wrong types, and ``from_dict(spec.to_dict()) == spec``.
Pure logic: no I/O, no kernel.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from mcwire.errors import InvalidArgument
from mcwire.mountdest import check_mount_destination
# The flag-level rules live in mcwire.units so that mcctl can use them without importing
# dataclasses; they are part of this module's interface all the same.
from mcwire.units import (_UNITS, CAPABILITIES,  # noqa: F401
                          DEFAULT_CAPABILITIES, DEFAULT_ENV, DEFAULT_NAMESPACES, cpus_to_quota,
                          format_size, normalize_capability, parse_add_host, parse_publish,
                          parse_restart_policy, parse_size, parse_tmpfs, parse_user,
                          parse_volume, resolve_capabilities)

NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOSTNAME_RE = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*")

ALL_NAMESPACES = ("pid", "mount", "uts", "ipc", "network", "cgroup", "user")
DEFAULT_MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]
DEFAULT_READONLY_PATHS = [
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
]

DEFAULT_PIDS_LIMIT = 4096
DEFAULT_STOP_TIMEOUT = 10


# ---------------------------------------------------------------- validators

def validate_name(name: Any, what: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidArgument(
            f"invalid {what} {name!r}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]{{0,62}}")
    return name


def validate_abs_path(path: Any, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise InvalidArgument(f"{what}: {path!r} is not an absolute path")
    norm = posixpath.normpath(path)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if any(part == ".." for part in path.split("/")):
        raise InvalidArgument(f"{what}: {path!r} must not contain '..'")
    return norm


def validate_env(env: Any) -> list[str]:
    if not isinstance(env, list):
        raise InvalidArgument("env: expected a list of KEY=VALUE strings")
    for item in env:
        if not isinstance(item, str) or "=" not in item or "\0" in item:
            raise InvalidArgument(f"env: {item!r} is not KEY=VALUE")
        key = item.split("=", 1)[0]
        if not ENV_KEY_RE.fullmatch(key):
            raise InvalidArgument(f"env: invalid variable name {key!r}")
    return env


# ---------------------------------------------------------------- dataclasses

def _check_type(obj: str, key: str, value: Any, typ) -> None:
    if typ is int and isinstance(value, bool):
        raise InvalidArgument(f"{obj}.{key}: expected an integer, got {value!r}")
    if not isinstance(value, typ):
        tname = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise InvalidArgument(f"{obj}.{key}: expected {tname}, got {type(value).__name__}")


class _Strict:
    """from_dict that refuses unknown fields and wrong types."""

    _nested: dict = {}
    _types: dict = {}
    _nullable: frozenset = frozenset()     # fields where null means "not set"

    @classmethod
    def from_dict(cls, data: Any, where: str | None = None):
        where = where or cls.__name__
        if not isinstance(data, dict):
            raise InvalidArgument(f"{where}: expected an object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidArgument(f"{where}: unknown field(s) {', '.join(unknown)}")
        kwargs = {}
        for key, value in data.items():
            if value is None and key not in cls._nullable:
                raise InvalidArgument(f"{where}.{key}: must not be null")
            nested = cls._nested.get(key)
            if nested is not None and value is not None:
                if isinstance(nested, list):
                    if not isinstance(value, list):
                        raise InvalidArgument(f"{where}.{key}: expected a list")
                    value = [nested[0].from_dict(v, f"{where}.{key}[{i}]") for i, v in enumerate(value)]
                else:
                    value = nested.from_dict(value, f"{where}.{key}")
            elif key in cls._types and value is not None:
                _check_type(where, key, value, cls._types[key])
            kwargs[key] = value
        return cls(**kwargs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class User(_Strict):
    uid: int = 0
    gid: int = 0
    additional_gids: list = field(default_factory=list)
    _types = {"uid": int, "gid": int, "additional_gids": list}

    def __post_init__(self):
        for v in (self.uid, self.gid, *self.additional_gids):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2 ** 32 - 1:
                raise InvalidArgument(f"user: invalid id {v!r}")

    @classmethod
    def parse(cls, text: str) -> "User":
        """'UID[:GID]', numeric (names are looked up in the rootfs by the runtime)."""
        return cls(**parse_user(text))


@dataclass
class Process(_Strict):
    args: list = field(default_factory=list)
    env: list = field(default_factory=lambda: list(DEFAULT_ENV))
    cwd: str = "/"
    user: User = field(default_factory=User)
    terminal: bool = False
    capabilities: list = field(default_factory=lambda: list(DEFAULT_CAPABILITIES))
    no_new_privileges: bool = True
    console_size: list = field(default_factory=list)   # [rows, cols] of the caller's terminal
    _nested = {"user": User}
    _types = {"args": list, "env": list, "cwd": str, "terminal": bool,
              "capabilities": list, "no_new_privileges": bool, "console_size": list}

    def __post_init__(self):
        if not self.args:
            raise InvalidArgument("process.args: a command is required")
        if self.args[0] == "":
            raise InvalidArgument("process.args: the command (the first argument) is empty")
        for a in self.args:
            if not isinstance(a, str) or "\0" in a:
                raise InvalidArgument(f"process.args: invalid argument {a!r}")
        validate_env(self.env)
        self.cwd = validate_abs_path(self.cwd, "workdir")
        self.capabilities = [normalize_capability(c) for c in self.capabilities]
        if self.console_size and (
                len(self.console_size) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535
                       for v in self.console_size)):
            raise InvalidArgument(f"process.console_size: {self.console_size!r} is not [rows, cols]")


@dataclass
class Root(_Strict):
    """The rootfs: a template by name, or an image (its ID, sha256:<hex>, once the daemon
    resolved the reference a request gave; see mcd.images.config)."""
    template: str = "minimal"
    readonly: bool = False
    image: str = ""
    _types = {"template": str, "readonly": bool, "image": str}

    def __post_init__(self):
        if self.image:
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", self.image):
                raise InvalidArgument(f"root.image: {self.image!r} is not an image ID "
                                      f"(sha256:<64 hex>)")
            self.template = ""
            return
        validate_name(self.template, "template name")


@dataclass
class Mount(_Strict):
    destination: str = ""
    type: str = "bind"          # bind | tmpfs
    source: str = ""
    options: list = field(default_factory=list)   # ro, size=64m, mode=1777...
    _types = {"destination": str, "type": str, "source": str, "options": list}

    def __post_init__(self):
        self.destination = validate_abs_path(self.destination, "mount destination")
        if self.destination == "/":
            raise InvalidArgument("mount destination: cannot mount over /")
        if self.type not in ("bind", "tmpfs"):
            raise InvalidArgument(f"mount type: {self.type!r} is not bind or tmpfs")
        check_mount_destination(self.destination, self.type)
        if self.type == "bind":
            self.source = validate_abs_path(self.source, "bind mount source")
        for opt in self.options:
            if not isinstance(opt, str) or "," in opt or "\0" in opt:
                raise InvalidArgument(f"mount option: invalid {opt!r}")

    @classmethod
    def parse_volume(cls, text: str) -> "Mount":
        """-v SRC:DST[:ro|rw]"""
        return cls(**parse_volume(text))

    @classmethod
    def parse_tmpfs(cls, text: str) -> "Mount":
        """--tmpfs DST[:size=64m,mode=1777]"""
        return cls(**parse_tmpfs(text))


@dataclass
class IDMapping(_Strict):
    container_id: int = 0
    host_id: int = 0
    size: int = 65536
    _types = {"container_id": int, "host_id": int, "size": int}

    def __post_init__(self):
        if self.container_id < 0 or self.host_id < 0 or self.size < 1 \
                or self.host_id + self.size > 2 ** 32 - 1:
            raise InvalidArgument("user namespace: invalid id mapping")


@dataclass
class Resources(_Strict):
    """Limits as asked. None means 'not set' (kernel default)."""
    cpu_shares: int | None = None       # 2..262144, v1 cpu.shares, v2 cpu.weight (converted)
    cpu_quota: int | None = None        # µs per period, >= 1000
    cpu_period: int | None = None       # µs, 1000..1000000 (default 100000)
    cpuset_cpus: str | None = None      # "0-1,3"
    memory: int | None = None           # bytes
    memory_swap: int | None = None      # bytes, memory + swap; -1 unlimited swap
    pids_limit: int | None = DEFAULT_PIDS_LIMIT
    _types = {"cpu_shares": int, "cpu_quota": int, "cpu_period": int, "cpuset_cpus": str,
              "memory": int, "memory_swap": int, "pids_limit": int}
    _nullable = frozenset(_types)

    def __post_init__(self):
        validate_resources(self)


def validate_resources(r: Resources) -> None:
    """Ranges as the kernel accepts them; messages name the flag and the range."""
    def bad(flag, why):
        raise InvalidArgument(f"{flag}: {why}")
    for key in ("cpu_shares", "cpu_quota", "cpu_period", "memory", "memory_swap", "pids_limit"):
        v = getattr(r, key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            bad("--" + key.replace("_", "-"), f"expected an integer, got {v!r}")
    if r.cpu_shares is not None and not 2 <= r.cpu_shares <= 262144:
        bad("--cpu-shares", f"{r.cpu_shares} is out of range [2, 262144]")
    if r.cpu_period is not None and not 1000 <= r.cpu_period <= 1_000_000:
        bad("--cpu-period", f"{r.cpu_period} is out of range [1000, 1000000] µs")
    if r.cpu_quota is not None and r.cpu_quota != -1 and not 1000 <= r.cpu_quota <= 2 ** 44:
        bad("--cpu-quota", f"{r.cpu_quota} is out of range [1000, 2^44] µs (or -1 for none)")
    if r.memory is not None and r.memory != -1 and r.memory < 6 * 1024 * 1024:
        bad("--memory", f"{r.memory} bytes is below the minimum of 6m")
    for key in ("memory", "memory_swap"):
        v = getattr(r, key)
        if v is not None and v > 2 ** 62:
            bad("--" + key.replace("_", "-"), f"{v} bytes is out of range [6m, 2^62] (or -1 for none)")
    if r.memory_swap is not None and r.memory_swap != -1:
        if r.memory is None or r.memory == -1:
            bad("--memory-swap", "needs --memory as well")
        if r.memory_swap < r.memory:
            bad("--memory-swap", "must be at least --memory (it is memory + swap)")
    if r.pids_limit is not None and r.pids_limit != -1 and not 1 <= r.pids_limit <= 4194304:
        bad("--pids-limit", f"{r.pids_limit} is out of range [1, 4194304] (or -1 for none)")
    if r.cpuset_cpus is not None and not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", r.cpuset_cpus):
        bad("--cpuset-cpus", f"{r.cpuset_cpus!r} is not a CPU list like 0-1,3")
    if r.cpuset_cpus is not None:
        for part in r.cpuset_cpus.split(","):
            lo, _, hi = part.partition("-")
            if hi and int(hi) < int(lo):
                bad("--cpuset-cpus", f"range {part!r} in {r.cpuset_cpus!r} runs backwards "
                                     "(a CPU list like 0-1,3)")


@dataclass
class Linux(_Strict):
    namespaces: list = field(default_factory=lambda: list(DEFAULT_NAMESPACES))
    uid_mappings: list = field(default_factory=list)
    gid_mappings: list = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)
    masked_paths: list = field(default_factory=lambda: list(DEFAULT_MASKED_PATHS))
    readonly_paths: list = field(default_factory=lambda: list(DEFAULT_READONLY_PATHS))
    seccomp: str = "default"            # default | unconfined
    _nested = {"resources": Resources, "uid_mappings": [IDMapping], "gid_mappings": [IDMapping]}
    _types = {"namespaces": list, "masked_paths": list, "readonly_paths": list, "seccomp": str}

    def __post_init__(self):
        for ns in self.namespaces:
            if ns not in ALL_NAMESPACES:
                raise InvalidArgument(f"namespaces: unknown namespace {ns!r}")
        if len(set(self.namespaces)) != len(self.namespaces):
            raise InvalidArgument("namespaces: listed twice")
        if "pid" not in self.namespaces or "mount" not in self.namespaces:
            raise InvalidArgument("namespaces: pid and mount are required")
        if "user" in self.namespaces and not (self.uid_mappings and self.gid_mappings):
            raise InvalidArgument("user namespace: uid and gid mappings are required")
        if self.seccomp not in ("default", "unconfined"):
            raise InvalidArgument(f"seccomp: {self.seccomp!r} is not default or unconfined")
        self.masked_paths = [validate_abs_path(p, "masked path") for p in self.masked_paths]
        self.readonly_paths = [validate_abs_path(p, "readonly path") for p in self.readonly_paths]


@dataclass
class PortMapping(_Strict):
    """-p: host_port 0 = the daemon picks a free one; host_ip "" = its default (0.0.0.0)."""
    container_port: int = 0
    host_port: int = 0
    host_ip: str = ""
    protocol: str = "tcp"
    _types = {"container_port": int, "host_port": int, "host_ip": str, "protocol": str}

    def __post_init__(self):
        from mcwire.units import _ipv4
        flag = "-p/--publish"
        for what, v, lo in (("container port", self.container_port, 1),
                            ("host port", self.host_port, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= 65535:
                raise InvalidArgument(f"{flag}: {what} {v!r} is not a port number (1-65535)")
        if self.host_ip:
            _ipv4(self.host_ip, flag)
        if self.protocol not in ("tcp", "udp"):
            raise InvalidArgument(f"{flag}: protocol must be tcp or udp, not {self.protocol!r}")

    @classmethod
    def parse(cls, text: str) -> "PortMapping":
        return cls(**parse_publish(text))


@dataclass
class Networking(_Strict):
    """mode: "" (the daemon's default network, chosen at create), none, host, or the name
    of a network. The rest applies to a network attachment."""
    mode: str = ""
    ports: list = field(default_factory=list)
    ip: str = ""
    aliases: list = field(default_factory=list)
    dns: list = field(default_factory=list)
    extra_hosts: list = field(default_factory=list)     # [{"name", "ip"}]
    publish_all: bool = False       # -P: the image's exposed ports, each on a free host port
    _nested = {"ports": [PortMapping]}
    _types = {"mode": str, "ip": str, "aliases": list, "dns": list, "extra_hosts": list,
              "publish_all": bool}

    def __post_init__(self):
        if self.mode and self.mode not in ("none", "host"):
            validate_name(self.mode, "network name")
        if self.ip:
            from mcwire.units import _ipv4
            _ipv4(self.ip, "--ip")
        for a in self.aliases:
            if not isinstance(a, str) or not HOSTNAME_RE.fullmatch(a):
                raise InvalidArgument(f"--network-alias: {a!r} is not a valid name")
        for d in self.dns:
            from mcwire.units import _ipv4
            if not isinstance(d, str):
                raise InvalidArgument(f"--dns: {d!r} is not an IPv4 address")
            _ipv4(d, "--dns")
        for h in self.extra_hosts:
            if not isinstance(h, dict) or set(h) != {"name", "ip"}:
                raise InvalidArgument(f"--add-host: {h!r} is not {{name, ip}}")
            parse_add_host(f"{h['name']}:{h['ip']}")
        seen = set()
        for p in self.ports:
            key = (p.host_ip, p.host_port, p.protocol)
            if p.host_port and key in seen:
                raise InvalidArgument(f"-p/--publish: host port {p.host_port}/{p.protocol} "
                                      f"is given twice")
            seen.add(key)
        if self.mode in ("none", "host"):
            extra = [flag for flag, v in (("-p/--publish", self.ports), ("--ip", self.ip),
                                          ("--network-alias", self.aliases),
                                          ("-P/--publish-all", self.publish_all)) if v]
            if extra:
                raise InvalidArgument(f"{', '.join(extra)}: needs a network, not --network "
                                      f"{self.mode}")


@dataclass
class ContainerSpec(_Strict):
    name: str = ""
    process: Process = None
    root: Root = field(default_factory=Root)
    hostname: str = ""
    mounts: list = field(default_factory=list)
    linux: Linux = field(default_factory=Linux)
    restart_policy: str = "no"
    stop_timeout: int = DEFAULT_STOP_TIMEOUT
    stop_signal: str = "SIGTERM"
    labels: dict = field(default_factory=dict)
    networking: Networking = field(default_factory=Networking)
    _nested = {"process": Process, "root": Root, "mounts": [Mount], "linux": Linux,
               "networking": Networking}
    _types = {"name": str, "hostname": str, "restart_policy": str, "stop_timeout": int,
              "stop_signal": str, "labels": dict}

    def __post_init__(self):
        validate_name(self.name, "container name")
        if self.process is None:
            raise InvalidArgument("process: a command is required")
        if not self.hostname:
            self.hostname = self.name[:63]
        if not HOSTNAME_RE.fullmatch(self.hostname) or len(self.hostname) > 253:
            raise InvalidArgument(f"hostname: {self.hostname!r} is not a valid hostname")
        parse_restart_policy(self.restart_policy)
        if isinstance(self.stop_timeout, bool) or not isinstance(self.stop_timeout, int) \
                or not 0 <= self.stop_timeout <= 3600:
            raise InvalidArgument(f"--stop-timeout: {self.stop_timeout!r} is out of range [0, 3600] s")
        for k, v in self.labels.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise InvalidArgument("labels: keys and values must be strings")
        dests = [m.destination for m in self.mounts]
        if len(set(dests)) != len(dests):
            raise InvalidArgument("mounts: a destination is listed twice")
        # One truth for "host": no network namespace. A spec stored before networks existed
        # has no mode: it keeps what its namespaces say.
        if self.networking is None:
            self.networking = Networking()
        if self.networking.mode == "host":
            if "network" in self.linux.namespaces:
                self.linux.namespaces = [n for n in self.linux.namespaces if n != "network"]
        elif "network" not in self.linux.namespaces:
            if self.networking.mode:
                raise InvalidArgument(f"--network {self.networking.mode}: needs a network "
                                      f"namespace (the spec leaves it out)")
            self.networking.mode = "host"
            Networking.__post_init__(self.networking)   # -p, --ip... make no sense there

    @property
    def network(self) -> str:
        """none, host, or the network's name. A spec without a mode is one the daemon did
        not give its default network (one stored before networks existed): none."""
        return self.networking.mode or "none"
