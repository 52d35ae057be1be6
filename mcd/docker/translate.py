"""Docker's request and response shapes <-> mcd's spec and views. Pure: no I/O.

Create requests are mapped field by field onto ContainerSpec. dockerd's clients send
every field of Config and HostConfig, most at their zero value; a field mcd has no
equivalent for is accepted only at that zero value and refused otherwise, naming
the field, so nothing a user asked for is silently dropped.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import time

from mcd.docker import MAX_API, MIN_API
from mcd.errors import CommandNotExecutable, CommandNotFound, InvalidArgument, MCError, NotFound
from mcwire.units import (DEFAULT_ENV, parse_restart_policy, parse_tmpfs, parse_volume,
                       resolve_capabilities)

ZERO_TIME = "0001-01-01T00:00:00Z"
_VERSION_RE = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


# ---------------------------------------------------------------- versions

def _vt(v: str) -> tuple[int, int]:
    major, _, minor = v.partition(".")
    return int(major), int(minor)


def split_version(path: str) -> tuple[str | None, str]:
    """'/v1.45/containers/json' -> ('1.45', '/containers/json'); no prefix -> (None, path).
    A version outside MIN_API..MAX_API is refused as dockerd refuses it (400)."""
    m = _VERSION_RE.match(path)
    if not m:
        return None, path
    version = f"{int(m.group(1))}.{int(m.group(2))}"
    if _vt(version) > _vt(MAX_API):
        raise InvalidArgument(f"client version {version} is too new. "
                              f"Maximum supported API version is {MAX_API}")
    if _vt(version) < _vt(MIN_API):
        raise InvalidArgument(f"client version {version} is too old. Minimum supported API "
                              f"version is {MIN_API}, please upgrade your client to a newer version")
    return version, m.group(3)


def go_arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)


# ---------------------------------------------------------------- errors

# mcd's statuses that dockerd does not use, as dockerd would answer them.
_STATUS = {422: 400, 503: 500}


def error_status(err: MCError) -> int:
    return _STATUS.get(err.http_status, err.http_status)


def error_message(err: MCError) -> str:
    """The message Docker clients get. The docker CLI reads a failed start's exit status
    from the message's words, in dockerd's lower case: "executable file not found" is
    127, "permission denied" or "is a directory" 126, anything else 125."""
    if isinstance(err, (CommandNotFound, CommandNotExecutable)) and err.errno:
        text = os.strerror(err.errno)
        words = "executable file not found" if isinstance(err, CommandNotFound) else text.lower()
        if err.message.endswith(text):
            return err.message[: -len(text)] + words
        return f"{err.message}: {words}"
    return err.message


def error_body(message: str) -> bytes:
    return (json.dumps({"message": message}) + "\n").encode()


# ---------------------------------------------------------------- images

def image_to_template(image) -> str:
    """'minimal', 'minimal:latest', 'docker.io/library/minimal:latest' -> 'minimal'.
    Templates have no tags: any tag but latest, or a digest, names no template."""
    if not isinstance(image, str) or not image:
        raise InvalidArgument("Image: an image name is required")
    name = image
    for prefix in ("docker.io/library/", "index.docker.io/library/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if "@" in name:
        raise NotFound(f"No such image: {image}")
    base, sep, tag = name.rpartition(":")
    if sep and "/" not in tag:
        if tag != "latest":
            raise NotFound(f"No such image: {image}")
        name = base
    return name


# ---------------------------------------------------------------- create

def _zero(v) -> bool:
    """dockerd's zero value of a field, as clients send for 'not set'."""
    if v is None or v is False or v == 0 or v == "" or v == [] or v == {}:
        return True
    if isinstance(v, dict):
        return all(_zero(x) for x in v.values())
    if isinstance(v, list):
        return all(_zero(x) for x in v)
    return False


# Config fields that are mapped, or that only steer the API (attach flags), or that
# describe an image (dockerd keeps them as metadata too).
_CONFIG_HANDLED = {"Hostname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty",
                   "OpenStdin", "StdinOnce", "Env", "Cmd", "Image", "WorkingDir", "Entrypoint",
                   "Labels", "StopSignal", "StopTimeout", "ExposedPorts", "ArgsEscaped",
                   "HostConfig", "NetworkingConfig", "Platform", "OnBuild", "Shell"}
_HOST_HANDLED = {"Binds", "Tmpfs", "Memory", "MemorySwap", "NanoCpus", "CpuShares", "CpuQuota",
                 "CpuPeriod", "CpusetCpus", "PidsLimit", "ReadonlyRootfs", "CapAdd", "CapDrop",
                 "SecurityOpt", "RestartPolicy", "AutoRemove", "NetworkMode", "PortBindings",
                 "LogConfig", "ConsoleSize", "Init", "ContainerIDFile", "MemorySwappiness",
                 "PublishAllPorts", "Dns", "ExtraHosts"}
_ENDPOINT_HANDLED = {"Aliases", "IPAMConfig", "DNSNames"}


def _refuse(field: str, value, why: str = "") -> None:
    shown = json.dumps(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise InvalidArgument(f"{field}={shown}: not supported by mini-container"
                          + (f" ({why})" if why else ""))


def _typed(where: str, value, typ):
    if value is None:
        return None
    if (typ is int and isinstance(value, bool)) or not isinstance(value, typ):
        tname = {dict: "an object", str: "a string", bool: "a boolean", int: "an integer",
                 list: "a list"}.get(typ, str(typ))
        raise InvalidArgument(f"{where}: expected {tname}, got {json.dumps(value)[:40]}")
    return value


def _merge_env(env: list[str]) -> list[str]:
    keys = {e.split("=", 1)[0] for e in env if isinstance(e, str)}
    return [e for e in DEFAULT_ENV if e.split("=", 1)[0] not in keys] + list(env)


def create_to_spec(body, name: str | None, image: bool = False) -> tuple[dict, bool]:
    """A Docker create body -> (mcd spec dict, auto_remove). Raises InvalidArgument for
    anything refused, before anything is created.

    ``image``: Image names an image of the image store. Then the spec carries
    ``root.image`` and only what the request set (Cmd as args, Entrypoint, Env, ...), and
    the daemon fills the rest from the image's config as dockerd does; otherwise Image
    names a template and the command must be given."""
    if not isinstance(body, dict):
        raise InvalidArgument("request body: expected a JSON object")
    host = _typed("HostConfig", body.get("HostConfig"), dict) or {}
    for k, v in body.items():
        if k not in _CONFIG_HANDLED and not _zero(v):
            _refuse(k, v)
    for k, v in host.items():
        if k not in _HOST_HANDLED and not _zero(v):
            why = {"Privileged": "containers always run with a bounded capability set",
                   "Devices": "no device nodes are passed into containers"}.get(k, "")
            _refuse(f"HostConfig.{k}", v, why)
    if not _zero(body.get("OnBuild")) or not _zero(body.get("Shell")):
        _refuse("OnBuild/Shell", body.get("OnBuild") or body.get("Shell"), "build-only fields")

    given_entry = _typed("Entrypoint", body.get("Entrypoint"), (list, str))
    entry = given_entry or []
    cmd = _typed("Cmd", body.get("Cmd"), (list, str)) or []
    if isinstance(entry, str):
        entry = ["/bin/sh", "-c", entry]
    if isinstance(cmd, str):
        cmd = ["/bin/sh", "-c", cmd]
    env = _typed("Env", body.get("Env"), list)
    if image:
        if not isinstance(body.get("Image"), str) or not body["Image"]:
            raise InvalidArgument("Image: an image name is required")
        root: dict = {"image": body["Image"]}
        process: dict = {"args": list(cmd), "terminal": bool(body.get("Tty"))}
        if given_entry is not None:
            process["entrypoint"] = list(entry)
        if env:
            process["env"] = list(env)
    else:
        root = {"template": image_to_template(body.get("Image"))}
        args = list(entry) + list(cmd)
        if not args:
            raise InvalidArgument("no command specified (templates carry no default command: "
                                  "give Cmd or Entrypoint)")
        process = {"args": args, "terminal": bool(body.get("Tty"))}
        if env:
            process["env"] = _merge_env(env)
    if body.get("WorkingDir"):
        process["cwd"] = _typed("WorkingDir", body["WorkingDir"], str)
    if body.get("User"):
        from mcwire.units import parse_user
        try:
            process["user"] = parse_user(_typed("User", body["User"], str))
        except InvalidArgument as err:
            raise InvalidArgument(f"User: {err} (user names are not resolved; give UID[:GID])") from None
    console = host.get("ConsoleSize")
    if process["terminal"] and isinstance(console, list) and len(console) == 2 and all(console):
        process["console_size"] = [int(console[0]), int(console[1])]

    spec: dict = {"process": process, "root": root}
    if name:
        spec["name"] = name
    if body.get("Hostname"):
        spec["hostname"] = _typed("Hostname", body["Hostname"], str)
    labels = _typed("Labels", body.get("Labels"), dict)
    if labels:
        spec["labels"] = labels
    if body.get("StopSignal"):
        sig = _typed("StopSignal", body["StopSignal"], str)
        spec["stop_signal"] = sig if sig.isdigit() or sig.startswith("SIG") else "SIG" + sig
    if body.get("StopTimeout") is not None:
        spec["stop_timeout"] = _typed("StopTimeout", body["StopTimeout"], int)

    # Resources
    res: dict = {}
    for dk, mk in (("Memory", "memory"), ("MemorySwap", "memory_swap"), ("CpuShares", "cpu_shares"),
                   ("CpuQuota", "cpu_quota"), ("CpuPeriod", "cpu_period")):
        v = _typed(f"HostConfig.{dk}", host.get(dk), int)
        if v:
            res[mk] = v
    if host.get("CpusetCpus"):
        res["cpuset_cpus"] = _typed("HostConfig.CpusetCpus", host["CpusetCpus"], str)
    nano = _typed("HostConfig.NanoCpus", host.get("NanoCpus"), int)
    if nano:
        if res.get("cpu_quota") or res.get("cpu_period"):
            raise InvalidArgument("conflicting options: NanoCpus and CpuPeriod/CpuQuota cannot "
                                  "both be set")
        res["cpu_period"] = 100000
        res["cpu_quota"] = max(1000, nano * 100000 // 1_000_000_000)
    pids = _typed("HostConfig.PidsLimit", host.get("PidsLimit"), int)
    if pids:
        res["pids_limit"] = -1 if pids < 0 else pids
    swappiness = host.get("MemorySwappiness")
    if swappiness not in (None, -1):
        _refuse("HostConfig.MemorySwappiness", swappiness)

    linux: dict = {}
    if res:
        linux["resources"] = res
    # Mounts
    mounts = []
    for b in _typed("HostConfig.Binds", host.get("Binds"), list) or []:
        if not isinstance(b, str) or not b.startswith("/"):
            raise InvalidArgument(f"HostConfig.Binds: {b!r}: named volumes are not supported; "
                                  "give an absolute host path")
        try:
            mounts.append(parse_volume(b))
        except InvalidArgument as err:
            raise InvalidArgument(f"HostConfig.Binds: {err}") from None
    for dest, opts in (_typed("HostConfig.Tmpfs", host.get("Tmpfs"), dict) or {}).items():
        mounts.append(parse_tmpfs(f"{dest}:{opts}" if opts else dest))
    if mounts:
        spec["mounts"] = mounts
    if host.get("ReadonlyRootfs"):
        spec["root"]["readonly"] = True
    # Security
    add = _typed("HostConfig.CapAdd", host.get("CapAdd"), list) or []
    drop = _typed("HostConfig.CapDrop", host.get("CapDrop"), list) or []
    if add or drop:
        process["capabilities"] = resolve_capabilities(add, drop)
    for opt in _typed("HostConfig.SecurityOpt", host.get("SecurityOpt"), list) or []:
        key, sep, val = str(opt).replace("=", ":", 1).partition(":")
        if key == "no-new-privileges" and val in ("", "true"):
            process["no_new_privileges"] = True
        elif key == "no-new-privileges" and val == "false":
            process["no_new_privileges"] = False
        elif key == "seccomp" and val == "unconfined":
            linux["seccomp"] = "unconfined"
        else:
            _refuse("HostConfig.SecurityOpt", opt, "only no-new-privileges and seccomp=unconfined")
    # Restart, removal
    rp = _typed("HostConfig.RestartPolicy", host.get("RestartPolicy"), dict) or {}
    pname = rp.get("Name") or "no"
    retries = rp.get("MaximumRetryCount") or 0
    policy = f"{pname}:{retries}" if pname == "on-failure" and retries else pname
    parse_restart_policy(policy)
    spec["restart_policy"] = policy
    auto_remove = bool(host.get("AutoRemove"))
    if auto_remove and policy != "no":
        raise InvalidArgument("conflicting options: cannot combine AutoRemove with a restart policy")
    # Network: "default" is the daemon's default network (mcd's --default-network);
    # "bridge" is Docker's name for it, which mcd resolves the same way.
    spec["networking"] = networking(host, body.get("NetworkingConfig"),
                                    _typed("ExposedPorts", body.get("ExposedPorts"), dict))
    log_type = ((host.get("LogConfig") or {}).get("Type")) or "json-file"
    if log_type != "json-file" or not _zero((host.get("LogConfig") or {}).get("Config")):
        _refuse("HostConfig.LogConfig", host.get("LogConfig"), "logging driver json-file only")
    if host.get("Init"):
        _refuse("HostConfig.Init", True)
    if linux:
        spec["linux"] = linux
    return spec, auto_remove


def networking(host: dict, netconf, exposed: dict | None = None) -> dict:
    """HostConfig's NetworkMode, PortBindings, PublishAllPorts, Dns, ExtraHosts and the
    endpoint settings of NetworkingConfig -> mcd's spec.networking. With PublishAllPorts,
    the request's own ExposedPorts (docker run --expose) are published too, each on a free
    host port, as dockerd does (the image's are added by the daemon)."""
    mode = host.get("NetworkMode") or "default"
    if not isinstance(mode, str) or mode.startswith("container:") or ":" in mode:
        _refuse("HostConfig.NetworkMode", mode, "a container joins one network: default, "
                "bridge, none, host or a network's name")
    out: dict = {"mode": "" if mode == "default" else mode}
    ports = []
    for key, binds in (_typed("HostConfig.PortBindings", host.get("PortBindings"), dict) or {}).items():
        cport, _, proto = str(key).partition("/")
        if not cport.isdigit():
            raise InvalidArgument(f"HostConfig.PortBindings: {key!r} is not PORT[/tcp|/udp]")
        if "-" in cport:
            _refuse("HostConfig.PortBindings", key, "port ranges")
        for b in binds or [{}]:
            b = b or {}
            hport = str(b.get("HostPort") or "0")
            if not hport.isdigit():
                _refuse("HostConfig.PortBindings", key, "host port ranges")
            ports.append({"container_port": int(cport), "host_port": int(hport),
                          "host_ip": b.get("HostIp") or "", "protocol": proto or "tcp"})
    if host.get("PublishAllPorts"):
        out["publish_all"] = True
        bound = {(p["container_port"], p["protocol"]) for p in ports}
        for key in sorted(exposed or {}):
            cport, _, proto = str(key).partition("/")
            if not cport.isdigit() or proto not in ("", "tcp", "udp"):
                raise InvalidArgument(f"ExposedPorts: {key!r} is not PORT[/tcp|/udp]")
            if (int(cport), proto or "tcp") not in bound:
                bound.add((int(cport), proto or "tcp"))
                ports.append({"container_port": int(cport), "host_port": 0, "host_ip": "",
                              "protocol": proto or "tcp"})
    if ports:
        out["ports"] = ports
    dns = _typed("HostConfig.Dns", host.get("Dns"), list)
    if dns:
        out["dns"] = dns
    extra = _typed("HostConfig.ExtraHosts", host.get("ExtraHosts"), list) or []
    if extra:
        from mcwire.units import parse_add_host
        out["extra_hosts"] = [parse_add_host(h if h.count(":") == 1 else h.replace("=", ":", 1))
                              for h in extra]
    eps = (netconf or {}).get("EndpointsConfig") or {} if isinstance(netconf, dict) else {}
    for net, ep in eps.items():
        ep = ep or {}
        if _zero(ep):
            continue        # clients send an empty endpoint for the network they name
        if net not in (mode, out["mode"]) and not (mode == "default" and net in ("bridge", "default")):
            _refuse("NetworkingConfig.EndpointsConfig", net, f"a container joins one network "
                    f"(NetworkMode {mode}); connect is not supported")
        for k, v in ep.items():
            if k not in _ENDPOINT_HANDLED and not _zero(v):
                _refuse(f"NetworkingConfig.EndpointsConfig.{net}.{k}", v)
        if ep.get("Aliases"):
            out["aliases"] = list(ep["Aliases"])
        ipam = ep.get("IPAMConfig") or {}
        for k, v in ipam.items():
            if k != "IPv4Address" and not _zero(v):
                _refuse(f"NetworkingConfig.EndpointsConfig.{net}.IPAMConfig.{k}", v)
        if ipam.get("IPv4Address"):
            out["ip"] = ipam["IPv4Address"]
    return out


def ports_view(mappings) -> dict:
    """The network service's port mappings -> NetworkSettings.Ports."""
    out: dict = {}
    for m in mappings or []:
        out.setdefault(f"{m['containerPort']}/{m['protocol']}", []).append(
            {"HostIp": m.get("hostIP") or "0.0.0.0", "HostPort": str(m["hostPort"])})
    return out


def network_settings(view: dict) -> dict:
    ns = view.get("network_settings") or {}
    spec = view.get("spec") or {}
    mode = ((spec.get("networking") or {}).get("mode")) or ns.get("network") or ""
    nets = {}
    if ns.get("network"):
        nets[ns["network"]] = {"IPAMConfig": None, "Links": None,
                               "Aliases": ns.get("aliases") or None,
                               "MacAddress": ns.get("mac") or "", "NetworkID": "",
                               "EndpointID": "", "Gateway": ns.get("gateway") or "",
                               "IPAddress": ns.get("ip") or "", "IPPrefixLen": ns.get("prefix_len") or 0,
                               "IPv6Gateway": "", "GlobalIPv6Address": "",
                               "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": None}
    elif mode in ("none", "host"):
        nets[mode] = {"IPAddress": "", "Gateway": "", "MacAddress": ""}
    return {"Bridge": "", "SandboxID": "", "SandboxKey": ns.get("netns") or "",
            "Ports": ports_view(ns.get("ports")), "Networks": nets,
            "IPAddress": ns.get("ip") or "", "Gateway": ns.get("gateway") or "",
            "MacAddress": ns.get("mac") or "", "IPPrefixLen": ns.get("prefix_len") or 0}


# ---------------------------------------------------------------- views

def _epoch(iso: str | None) -> int:
    if not iso:
        return 0
    try:
        return calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0


def docker_state(status: str) -> str:
    """mcd's status -> Docker's State.Status."""
    return {"created": "created", "starting": "created", "running": "running",
            "paused": "paused", "stopped": "exited", "broken": "dead"}.get(status, status)


def _human_ago(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 1:
        return "Less than a second"
    if s < 60:
        return f"{s} seconds"
    if s < 3600:
        m = s // 60
        return "About a minute" if m == 1 else f"{m} minutes"
    if s < 48 * 3600:
        h = s // 3600
        return "About an hour" if h == 1 else f"{h} hours"
    return f"{s // 86400} days"


def status_text(summary: dict, now: float | None = None) -> str:
    now = now or time.time()
    st = summary["status"]
    if st in ("running", "paused"):
        text = f"Up {_human_ago(now - _epoch(summary.get('started_at')))}"
        return text + " (Paused)" if st == "paused" else text
    if st == "stopped":
        return (f"Exited ({summary.get('exit_code')}) "
                f"{_human_ago(now - _epoch(summary.get('finished_at')))} ago")
    if st == "broken":
        return "Dead"
    return "Created"


def list_entry(summary: dict, spec: dict | None) -> dict:
    """One element of GET /containers/json."""
    spec = spec or {}
    template = summary.get("template") or ""
    image_id = summary.get("image") or template
    network = summary.get("network") or ((spec.get("networking") or {}).get("mode")) or "none"
    return {
        "Id": summary["id"], "Names": ["/" + summary["name"]], "Image": template,
        "ImageID": image_id, "Command": summary.get("command") or "",
        "Created": _epoch(summary.get("created_at")),
        "Ports": [{"IP": m.get("hostIP") or "0.0.0.0", "PrivatePort": m["containerPort"],
                   "PublicPort": m["hostPort"], "Type": m["protocol"]}
                  for m in summary.get("ports") or []],
        "Labels": spec.get("labels") or {}, "State": docker_state(summary["status"]),
        "Status": status_text(summary), "HostConfig": {"NetworkMode": network},
        "NetworkSettings": {"Networks": {network: {}} if network else {}},
        "Mounts": _mounts(spec),
    }


def _mounts(spec: dict) -> list[dict]:
    out = []
    for m in spec.get("mounts") or []:
        rw = "ro" not in (m.get("options") or [])
        out.append({"Type": m.get("type"), "Source": m.get("source") or "",
                    "Destination": m["destination"], "Mode": "" if rw else "ro", "RW": rw,
                    "Propagation": "rprivate" if m.get("type") == "bind" else ""})
    return out


def matches_filters(summary: dict, spec: dict | None, filters: dict) -> bool:
    """Docker's list filters: status, name (substring), id (prefix), label (key or key=value)."""
    spec = spec or {}
    for key, values in filters.items():
        if not values:
            continue
        if key == "status":
            if docker_state(summary["status"]) not in values:
                return False
        elif key == "name":
            if not any(re.search(v, summary["name"]) for v in values):
                return False
        elif key == "id":
            if not any(summary["id"].startswith(v) for v in values):
                return False
        elif key == "label":
            labels = spec.get("labels") or {}
            for v in values:
                k, sep, val = v.partition("=")
                if k not in labels or (sep and labels[k] != val):
                    return False
        else:
            raise InvalidArgument(f"invalid filter '{key}' (supported: status, name, id, label)")
    return True


def parse_filters(raw: str | None) -> dict:
    """?filters= is JSON: {"key": ["v", ...]} or the older {"key": {"v": true}}."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid filters: {raw[:60]!r} is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidArgument("invalid filters: expected a JSON object")
    out = {}
    for k, v in data.items():
        if isinstance(v, dict):
            v = [x for x, on in v.items() if on]
        if not isinstance(v, list):
            raise InvalidArgument(f"invalid filters: {k} expects a list")
        out[k] = [str(x) for x in v]
    return out


def _or_zero(t: str | None) -> str:
    return t or ZERO_TIME


def inspect(view: dict, exec_ids: list[str] = ()) -> dict:
    """mcd's inspect view -> Docker's GET /containers/{id}/json."""
    spec = view.get("spec") or {}
    proc = spec.get("process") or {}
    state = view.get("state") or {}
    res = ((spec.get("linux") or {}).get("resources")) or {}
    status = view["status"]
    args = proc.get("args") or []
    user = proc.get("user") or {}
    ns = (spec.get("linux") or {}).get("namespaces") or []
    policy, retries = parse_restart_policy(spec.get("restart_policy") or "no")
    return {
        "Id": view["id"], "Created": view.get("created_at"),
        "Path": args[0] if args else "", "Args": args[1:],
        "State": {
            "Status": docker_state(status), "Running": status in ("running", "paused"),
            "Paused": status == "paused", "Restarting": False,
            "OOMKilled": bool(view.get("oom_killed")), "Dead": status == "broken",
            "Pid": view.get("pid") or 0, "ExitCode": view.get("exit_code") or 0,
            "Error": state.get("error") or "",
            "StartedAt": _or_zero(view.get("started_at")),
            "FinishedAt": _or_zero(view.get("finished_at")),
        },
        "Image": view.get("image") or view.get("template") or "", "ResolvConfPath": "", "HostnamePath": "",
        "HostsPath": "", "LogPath": (view.get("dir") or "") + "/container.log",
        "Name": "/" + view["name"], "RestartCount": view.get("restart_count") or 0,
        "Driver": "overlay", "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
        "AppArmorProfile": "", "ExecIDs": list(exec_ids) or None,
        "HostConfig": {
            "Binds": [f"{m['source']}:{m['destination']}" + (":ro" if "ro" in (m.get("options") or []) else "")
                      for m in spec.get("mounts") or [] if m.get("type") == "bind"] or None,
            "Tmpfs": {m["destination"]: ",".join(m.get("options") or [])
                      for m in spec.get("mounts") or [] if m.get("type") == "tmpfs"} or None,
            "LogConfig": {"Type": "json-file", "Config": {}},
            "NetworkMode": ((spec.get("networking") or {}).get("mode")) or
            ("host" if "network" not in ns else "default"),
            "PortBindings": {f"{p['container_port']}/{p.get('protocol', 'tcp')}":
                             [{"HostIp": p.get("host_ip") or "",
                               "HostPort": str(p["host_port"]) if p.get("host_port") else ""}]
                             for p in (spec.get("networking") or {}).get("ports") or []},
            "PublishAllPorts": bool((spec.get("networking") or {}).get("publish_all")),
            "Dns": (spec.get("networking") or {}).get("dns") or [],
            "RestartPolicy": {"Name": policy, "MaximumRetryCount": retries},
            "AutoRemove": bool(view.get("auto_remove")),
            "ReadonlyRootfs": bool((spec.get("root") or {}).get("readonly")),
            "Memory": res.get("memory") or 0, "MemorySwap": res.get("memory_swap") or 0,
            "NanoCpus": 0, "CpuShares": res.get("cpu_shares") or 0,
            "CpuQuota": res.get("cpu_quota") or 0, "CpuPeriod": res.get("cpu_period") or 0,
            "CpusetCpus": res.get("cpuset_cpus") or "", "PidsLimit": res.get("pids_limit"),
            "CapAdd": None, "CapDrop": None, "Privileged": False,
            "SecurityOpt": ["no-new-privileges"] if proc.get("no_new_privileges") else None,
            "ConsoleSize": proc.get("console_size") or [0, 0],
        },
        "GraphDriver": {"Name": "overlay", "Data": None},
        "Mounts": _mounts(spec),
        "Config": {
            "Hostname": spec.get("hostname") or "", "Domainname": "",
            "User": f"{user.get('uid', 0)}:{user.get('gid', 0)}" if user.get("uid") or user.get("gid") else "",
            "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
            "Tty": bool(proc.get("terminal")), "OpenStdin": False, "StdinOnce": False,
            "Env": proc.get("env") or [], "Cmd": args, "Image": view.get("template") or "",
            "Volumes": None, "WorkingDir": proc.get("cwd") or "/", "Entrypoint": None,
            "OnBuild": None, "Labels": spec.get("labels") or {},
            "StopSignal": spec.get("stop_signal") or "SIGTERM",
            "StopTimeout": spec.get("stop_timeout"),
        },
        "NetworkSettings": network_settings(view),
    }


def stats(view: dict, prev: dict | None, online_cpus: int, read: str, preread: str,
          system_ns: int, presystem_ns: int) -> dict:
    """mcd's stats of one container -> Docker's stats JSON (cgroup v1 field names where
    Docker has them). ``prev`` is the previous sample (for precpu_stats)."""
    def cpu(s, system):
        s = s or {}
        total = s.get("cpu_usage_ns") or 0
        return {"cpu_usage": {"total_usage": total,
                              "usage_in_kernelmode": s.get("cpu_system_ns") or 0,
                              "usage_in_usermode": s.get("cpu_user_ns") or 0},
                "system_cpu_usage": system, "online_cpus": online_cpus,
                "throttling_data": {"periods": s.get("cpu_periods") or 0,
                                    "throttled_periods": s.get("throttled_periods") or 0,
                                    "throttled_time": s.get("throttled_ns") or 0}}
    running = view.get("status") in ("running", "paused")
    mem = {}
    if running:
        limit = view.get("memory_limit")
        mem = {"usage": view.get("memory_current") or 0,
               "max_usage": view.get("memory_peak") or 0,
               "limit": limit if limit and limit < 2 ** 62 else _host_memory(),
               "stats": {}, "failcnt": view.get("oom_kills") or 0}
    return {
        "read": read, "preread": preread,
        "pids_stats": {"current": view.get("pids_current") or 0,
                       **({"limit": view["pids_limit"]} if view.get("pids_limit") else {})},
        "blkio_stats": {"io_service_bytes_recursive": None, "io_serviced_recursive": None,
                        "io_queue_recursive": None, "io_service_time_recursive": None,
                        "io_wait_time_recursive": None, "io_merged_recursive": None,
                        "io_time_recursive": None, "sectors_recursive": None},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": cpu(view if running else None, system_ns if running else 0),
        "precpu_stats": cpu(prev, presystem_ns if prev else 0),
        "memory_stats": mem,
        "name": "/" + view.get("name", ""), "id": view.get("id", ""),
    }


def _host_memory() -> int:
    try:
        import os
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def event(ev: dict) -> dict | None:
    """An mcd event -> Docker's events message (Type container), or None if Docker has
    no such action."""
    action = {"created": "create", "started": "start", "died": "die", "oom": "oom",
              "destroyed": "destroy", "paused": "pause", "unpaused": "unpause",
              "renamed": "rename", "exec": "exec_start", "stopped": "stop",
              "killed": "kill", "restarted": "restart"}.get(ev.get("type"))
    if action is None:
        return None
    if action == "exec_start" and ev.get("command"):
        action = f"exec_start: {ev['command']}"
    t = ev.get("time") or ""
    secs = _epoch(t)
    frac = re.search(r"\.(\d+)", t)
    nanos = secs * 1_000_000_000 + (int((frac.group(1) + "000000000")[:9]) if frac else 0)
    attrs = {"name": ev.get("name", "")}
    if ev.get("exit_code") is not None:
        attrs["exitCode"] = str(ev["exit_code"])
    if ev.get("old_name"):
        attrs["oldName"] = "/" + ev["old_name"]
    return {"status": action, "id": ev.get("id"), "from": "", "Type": "container",
            "Action": action, "Actor": {"ID": ev.get("id"), "Attributes": attrs},
            "scope": "local", "time": secs, "timeNano": nanos}


def parse_signal(sig) -> str | int:
    """Docker sends 'SIGINT', 'INT', '2' or 'KILL'."""
    if sig is None or sig == "":
        return "SIGKILL"
    s = str(sig)
    if s.isdigit():
        return int(s)
    return s.upper() if s.upper().startswith("SIG") else "SIG" + s.upper()
