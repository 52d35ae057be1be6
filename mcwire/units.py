"""Units both sides read and write: sizes, CPUs, durations; and the spec's flag-level rules.

Sizes are bytes on the wire and ``64m`` (powers of 1024) on the command line; CPUs are a
CFS quota and period in µs on the wire and ``--cpus 0.5`` on the command line; durations
are whole seconds on the wire and "5 minutes" in a table. The ``parse_*`` helpers turn a
CLI string into the plain dict the spec's own class takes (``mcwire.spec`` uses the same
rules, so a flag and an API body are checked alike).

Stdlib only, and not even ``typing`` (~5 ms) or ``dataclasses`` (~25 ms with ``inspect``):
mcctl imports this on every `run`. No I/O.
"""

from __future__ import annotations


from mcwire.errors import InvalidArgument

DEFAULT_NAMESPACES = ["pid", "mount", "uts", "ipc", "network", "cgroup"]

# Docker's default capability set (14): enough for a normal root-ish userland,
# nothing that reaches the host (no SYS_ADMIN, SYS_MODULE, SYS_PTRACE, NET_ADMIN...).
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]

# Capability numbers from linux/capability.h.
CAPABILITIES = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

DEFAULT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
_size_re = None      # compiled on first use: `re` stays off mcctl's common paths (~4 ms)


def _size_pattern():
    global _size_re
    if _size_re is None:
        import re
        _size_re = re.compile(r"([0-9]+)(?:\.([0-9]+))?\s*([bkmgt]?)(?:i?b)?", re.IGNORECASE)
    return _size_re
_TMPFS_FLAGS = ("ro", "rw", "noexec", "exec", "nosuid", "suid", "nodev", "dev")


def parse_size(value: object, flag: str = "size") -> int:
    """'64m' -> 67108864. Units b, k, m, g, t (powers of 1024), case-insensitive."""
    if isinstance(value, bool):
        raise InvalidArgument(f"{flag}: expected a size like 64m, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidArgument(f"{flag}: must not be negative, got {value}")
        return value
    if not isinstance(value, str):
        raise InvalidArgument(f"{flag}: expected a size like 64m, got {value!r}")
    m = _size_pattern().fullmatch(value.strip())
    if not m:
        raise InvalidArgument(
            f"{flag}: invalid size {value!r} (use a number with an optional unit b, k, m, g, t)")
    whole, frac, unit = m.group(1), m.group(2) or "", m.group(3).lower()
    mult = _UNITS[unit]
    num = int(whole) * mult + (int(frac) * mult // (10 ** len(frac)) if frac else 0)
    if num > 2 ** 62:
        raise InvalidArgument(f"{flag}: size {value!r} is too large")
    return num


def format_size(n: int | None, none: str = "-") -> str:
    """67108864 -> '64.0MiB' (powers of 1024, one decimal), as tables show sizes."""
    if n is None:
        return none
    for unit, div in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n}B"


def human_duration(secs: int) -> str:
    """Whole seconds as Docker's tables say them: '2 minutes', '3 hours', '4 days'."""
    secs = max(secs, 0)
    if secs < 1:
        return "Less than a second"
    if secs < 60:
        return f"{secs} second{'s' if secs != 1 else ''}"
    m = secs // 60
    if m < 60:
        return f"{m} minute{'s' if m != 1 else ''}"
    h = m // 60
    if h < 48:
        return f"{h} hour{'s' if h != 1 else ''}"
    d = h // 24
    return f"{d} days"


def cpus_to_quota(cpus: float, period: int = 100000) -> tuple[int, int]:
    """--cpus 0.5 -> (50000, 100000)."""
    if not isinstance(cpus, (int, float)) or cpus <= 0 or cpus > 1024:
        raise InvalidArgument(f"--cpus: {cpus!r} is out of range (0, 1024]")
    quota = int(round(cpus * period))
    if quota < 1000:
        raise InvalidArgument(f"--cpus: {cpus} gives a quota under 1000 µs per {period} µs period")
    return quota, period


def normalize_capability(cap: object) -> str:
    if not isinstance(cap, str):
        raise InvalidArgument(f"capability: expected a name, got {cap!r}")
    name = cap.upper()
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    if name not in CAPABILITIES:
        raise InvalidArgument(f"unknown capability {cap!r}")
    return name


def resolve_capabilities(add: list[str] = (), drop: list[str] = ()) -> list[str]:
    """Docker's rules: start from the default set, drop, then add; 'ALL' works in both."""
    add = [c.upper() for c in add]
    drop = [c.upper() for c in drop]
    caps = list(DEFAULT_CAPABILITIES)
    if "ALL" in drop:
        caps = []
    else:
        dropped = {normalize_capability(c) for c in drop}
        caps = [c for c in caps if c not in dropped]
    if "ALL" in add:
        caps = sorted(CAPABILITIES, key=CAPABILITIES.get)
    else:
        for c in add:
            n = normalize_capability(c)
            if n not in caps:
                caps.append(n)
    return caps


def parse_restart_policy(value: object) -> tuple[str, int]:
    """'no' | 'always' | 'unless-stopped' | 'on-failure[:N]' -> (name, max_retries)."""
    if not isinstance(value, str):
        raise InvalidArgument(f"restart: expected a policy name, got {value!r}")
    name, _, count = value.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise InvalidArgument(
            f"restart: unknown policy {value!r} (no, on-failure[:N], always, unless-stopped)")
    if count:
        if name != "on-failure" or not count.isdigit() or int(count) < 1:
            raise InvalidArgument(f"restart: invalid retry count in {value!r}")
        return name, int(count)
    return name, 0


def parse_user(text: str) -> dict:
    """'UID[:GID]', numeric (names are looked up in the rootfs by the runtime) ->
    the fields of spec.User."""
    uid, _, gid = str(text).partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise InvalidArgument(f"user: {text!r} is not UID[:GID] (numeric ids)")
    ids = {"uid": int(uid), "gid": int(gid) if gid else int(uid) if uid != "0" else 0}
    for v in ids.values():
        if not v < 2 ** 32 - 1:
            raise InvalidArgument(f"user: invalid id {v!r}")     # as spec.User says it
    return ids


def parse_volume(text: str) -> dict:
    """-v SRC:DST[:ro|rw] -> the fields of a bind spec.Mount (paths checked by Mount)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(f"volume: {text!r} is not SRC:DST[:ro]")
    opts = []
    if len(parts) == 3:
        if parts[2] not in ("ro", "rw"):
            raise InvalidArgument(f"volume: unknown mode {parts[2]!r} in {text!r} (ro or rw)")
        if parts[2] == "ro":
            opts.append("ro")
    return {"destination": parts[1], "type": "bind", "source": parts[0], "options": opts}


def parse_tmpfs(text: str) -> dict:
    """--tmpfs DST[:size=64m,mode=1777] -> the fields of a tmpfs spec.Mount."""
    dst, _, opts = text.partition(":")
    options = [o for o in opts.split(",") if o] if opts else []
    for o in options:
        k, _, v = o.partition("=")
        if k == "size":
            parse_size(v, "tmpfs size")
        elif k == "mode":
            if not (3 <= len(v) <= 4 and all(c in "01234567" for c in v)):
                raise InvalidArgument(f"tmpfs: invalid mode {v!r}")
        elif k not in _TMPFS_FLAGS:
            raise InvalidArgument(f"tmpfs: unknown option {o!r}")
    return {"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": options}


# ---------------------------------------------------------------- networking flags

def _port(text: str, what: str, flag: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidArgument(f"{flag}: {what} {text!r} is not a port number (1-65535)")
    return int(text)


def _ipv4(text: str, flag: str) -> str:
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) <= 255 and (p == "0" or not p.startswith("0"))
                                  for p in parts):
        raise InvalidArgument(f"{flag}: {text!r} is not an IPv4 address")
    return text


def parse_publish(text: object) -> dict:
    """-p [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp] -> host_ip, host_port (0 = any
    free one), container_port, protocol. host_ip "" means the daemon's default."""
    flag = "-p/--publish"
    if not isinstance(text, str) or not text:
        raise InvalidArgument(f"{flag}: expected [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO]")
    body, _, proto = text.partition("/")
    proto = proto.lower() if proto else "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"{flag}: {text!r}: protocol must be tcp or udp, not {proto!r}")
    if body.startswith("["):
        raise InvalidArgument(f"{flag}: {text!r}: IPv6 host addresses are not supported")
    parts = body.split(":")
    if len(parts) > 3:
        raise InvalidArgument(f"{flag}: {text!r} is not [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO]")
    host_ip = parts[0] if len(parts) == 3 else ""
    host_port = parts[-2] if len(parts) >= 2 else ""
    if "-" in body:
        raise InvalidArgument(f"{flag}: {text!r}: port ranges are not supported")
    if host_ip:
        _ipv4(host_ip, flag)
    return {"host_ip": host_ip,
            "host_port": _port(host_port, "host port", flag) if host_port else 0,
            "container_port": _port(parts[-1], "container port", flag),
            "protocol": proto}


def parse_add_host(text: object) -> dict:
    """--add-host NAME:IP"""
    flag = "--add-host"
    if not isinstance(text, str) or ":" not in text:
        raise InvalidArgument(f"{flag}: {text!r} is not NAME:IP")
    name, _, ip = text.partition(":")
    import re       # here, not at the top: `re` stays off mcctl's common paths
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", name):
        raise InvalidArgument(f"{flag}: {name!r} is not a host name")
    return {"name": name, "ip": _ipv4(ip, flag)}
