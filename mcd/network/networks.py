"""Networks as objects: the default bridge, the ones `network create` makes, and the
configuration lists an administrator drops into the config directory.

Where each lives:
- the default network is described by mcd.toml (name, bridge, subnet) and made on start;
- `network create` writes ROOT/networks/NAME.json (atomically): our record plus the CNI
  configuration list generated from it;
- CONFIG_DIR/*.conflist (default /etc/mcd/net.d) are used as they are: any plugins the
  machine has (macvlan, ipvlan, bandwidth...). They cannot be removed through the API.

Every host-local IPAM section without a ``dataDir`` gets ROOT/networks/ipam, so two
daemons with different roots never share a lease.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import os
import secrets
import threading
from dataclasses import asdict, dataclass, field

from mcd.errors import Conflict, InvalidArgument, MCError, NotFound
from mcd.network.cni import ConfList

log = logging.getLogger("mcd.network")

CNI_VERSION = "1.0.0"
RESERVED = ("none", "host", "bridge", "default", "container")
# Docker uses 172.17.0.0/16 (and 172.18-31, 192.168/16 for its own networks), Podman
# 10.88.0.0/16 (and 10.89.x.0/24 for its own): ours come from 10.77/16 and 10.78/16.
DEFAULT_SUBNET = "10.77.0.0/16"
POOL = "10.78.0.0/16"
POOL_PREFIX = 24


def _now() -> str:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_subnet(text, what: str = "--subnet") -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except (ValueError, TypeError) as err:
        raise InvalidArgument(f"{what}: {text!r} is not a CIDR subnet ({err})") from None
    if net.version != 4:
        raise InvalidArgument(f"{what}: {text!r}: only IPv4 subnets are supported")
    if net.prefixlen > 30:
        raise InvalidArgument(f"{what}: {text!r} is too small (at most /30)")
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
        raise InvalidArgument(f"{what}: {text!r} is not a usable range")
    return net


def parse_ip(text, what: str) -> ipaddress.IPv4Address:
    try:
        ip = ipaddress.ip_address(text)
    except (ValueError, TypeError):
        raise InvalidArgument(f"{what}: {text!r} is not an IP address") from None
    if ip.version != 4:
        raise InvalidArgument(f"{what}: {text!r}: only IPv4 is supported")
    return ip


def host_in(subnet: ipaddress.IPv4Network, ip: ipaddress.IPv4Address, what: str) -> None:
    if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"{what}: {ip} is not a host address of {subnet}")


@dataclass
class Network:
    name: str
    id: str
    driver: str = "bridge"
    subnet: str | None = None
    gateway: str | None = None
    internal: bool = False
    bridge: str | None = None
    created: str = ""
    source: str = "user"           # default | user | file
    file: str | None = None
    labels: dict = field(default_factory=dict)
    conflist: dict = field(default_factory=dict)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("conflist")
        return d

    def inspect(self) -> dict:
        return asdict(self)


def bridge_conflist(name: str, bridge: str, subnet: str, gateway: str, internal: bool) -> dict:
    """bridge + host-local, then portmap (published ports) and firewall (isolation from
    other bridges: ``ingressPolicy: same-bridge``). An internal network has no gateway on
    the bridge, no default route, no masquerade and no port mappings: no way out."""
    ipam = {"type": "host-local", "ranges": [[{"subnet": subnet, "gateway": gateway}]]}
    if not internal:
        ipam["routes"] = [{"dst": "0.0.0.0/0"}]
    plugins = [{"type": "bridge", "bridge": bridge, "isGateway": not internal,
                "ipMasq": not internal, "hairpinMode": True, "promiscMode": False,
                "capabilities": {"ips": True}, "ipam": ipam}]
    if not internal:
        plugins.append({"type": "portmap", "capabilities": {"portMappings": True}})
    plugins.append({"type": "firewall", "backend": "iptables", "ingressPolicy": "same-bridge"})
    return {"cniVersion": CNI_VERSION, "name": name, "plugins": plugins}


def _ipam_subnet(conf: dict) -> tuple[str | None, str | None]:
    """The first range of the first IPAM section of an administrator's list, for display."""
    for p in conf.get("plugins", []):
        ipam = p.get("ipam") if isinstance(p, dict) else None
        if not isinstance(ipam, dict):
            continue
        if ipam.get("subnet"):
            return ipam.get("subnet"), ipam.get("gateway")
        for rs in ipam.get("ranges") or []:
            for r in rs or []:
                if isinstance(r, dict) and r.get("subnet"):
                    return r.get("subnet"), r.get("gateway")
    return None, None


class Networks:
    def __init__(self, root: str, config_dir: str | None, *, default_name: str = "mcnet",
                 default_bridge: str = "mcbr0", default_subnet: str = DEFAULT_SUBNET,
                 default_gateway: str | None = None):
        self.dir = os.path.join(root, "networks")
        self.ipam_dir = os.path.join(self.dir, "ipam")
        self.config_dir = config_dir
        self.default_name = default_name
        self._lock = threading.Lock()
        self._nets: dict[str, Network] = {}
        self._default = None
        if default_name != "none":
            subnet = parse_subnet(default_subnet, "default_network_subnet")
            gw = parse_ip(default_gateway, "default_network_gateway") if default_gateway \
                else subnet.network_address + 1
            host_in(subnet, gw, "default_network_gateway")
            self._default = Network(
                name=default_name, id=secrets.token_hex(32), subnet=str(subnet),
                gateway=str(gw), bridge=default_bridge, created=_now(), source="default",
                conflist=bridge_conflist(default_name, default_bridge, str(subnet), str(gw), False))

    # -- loading
    def load(self) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        nets: dict[str, Network] = {}
        if self._default is not None:
            nets[self._default.name] = self._default
        for fn in sorted(os.listdir(self.dir)):
            if not fn.endswith(".json"):
                continue
            path = os.path.join(self.dir, fn)
            try:
                with open(path) as f:
                    data = json.load(f)
                net = Network(**data)
                ConfList.parse(net.conflist, path)
            except (OSError, ValueError, TypeError, MCError) as err:
                log.error("network record %s is unreadable, skipped: %s", path, err)
                continue
            nets.setdefault(net.name, net)
        if self.config_dir and os.path.isdir(self.config_dir):
            for fn in sorted(os.listdir(self.config_dir)):
                if not fn.endswith((".conflist", ".json")):
                    continue
                path = os.path.join(self.config_dir, fn)
                try:
                    with open(path) as f:
                        data = json.load(f)
                    conf = ConfList.parse(data, path)
                except (OSError, ValueError, MCError) as err:
                    log.error("network config %s skipped: %s", path, err)
                    continue
                if conf.name in nets or conf.name in RESERVED:
                    log.error("network config %s skipped: the name %s is taken", path, conf.name)
                    continue
                subnet, gw = _ipam_subnet(data)
                first = data["plugins"][0]
                nets[conf.name] = Network(
                    name=conf.name, id=secrets.token_hex(32), driver=first["type"],
                    subnet=subnet, gateway=gw, bridge=first.get("bridge") or first.get("master"),
                    created=_now(), source="file", file=path, conflist=data)
        with self._lock:
            self._nets = nets

    # -- lookup
    def resolve_name(self, name: str) -> str:
        """``bridge`` (Docker's name) and ``default`` mean the default network."""
        if name in ("bridge", "default") and self._default is not None:
            return self._default.name
        return name

    def get(self, ref: str) -> Network:
        if not isinstance(ref, str) or not ref:
            raise InvalidArgument("a network name is required")
        name = self.resolve_name(ref)
        with self._lock:
            net = self._nets.get(name)
            if net is None and len(ref) >= 6 and all(c in "0123456789abcdef" for c in ref):
                hits = [n for n in self._nets.values() if n.id.startswith(ref)]
                net = hits[0] if len(hits) == 1 else None
        if net is None:
            raise NotFound(f'no such network: "{ref}"')
        return net

    def list(self) -> list[Network]:
        with self._lock:
            return sorted(self._nets.values(), key=lambda n: (n.source != "default", n.name))

    def conflist(self, net: Network) -> ConfList:
        """The list to run, with host-local's dataDir set under our root."""
        data = copy.deepcopy(net.conflist)
        for p in data.get("plugins", []):
            ipam = p.get("ipam") if isinstance(p, dict) else None
            if isinstance(ipam, dict) and ipam.get("type") == "host-local" and not ipam.get("dataDir"):
                ipam["dataDir"] = self.ipam_dir
        return ConfList.parse(data, f"network {net.name}")

    # -- create, remove
    def _overlaps(self, subnet: ipaddress.IPv4Network) -> Network | None:
        for n in self.list():
            if n.subnet:
                try:
                    if ipaddress.ip_network(n.subnet, strict=False).overlaps(subnet):
                        return n
                except ValueError:
                    continue
        return None

    def _free_subnet(self, routes) -> ipaddress.IPv4Network:
        for cand in ipaddress.ip_network(POOL).subnets(new_prefix=POOL_PREFIX):
            if self._overlaps(cand) is None and not any(cand.overlaps(r) for r in routes):
                return cand
        raise Conflict(f"no free /{POOL_PREFIX} left in {POOL}: give --subnet")

    def create(self, name: str, subnet: str | None = None, gateway: str | None = None,
               internal: bool = False, labels: dict | None = None, routes=()) -> Network:
        from mcwire.spec import validate_name
        validate_name(name, "network name")
        if name in RESERVED or name == self.default_name:
            raise InvalidArgument(f'network name "{name}" is reserved')
        if gateway and not subnet:
            raise InvalidArgument("--gateway needs --subnet")
        net_addr = parse_subnet(subnet) if subnet else None
        gw = parse_ip(gateway, "--gateway") if gateway else None
        if net_addr is not None:
            gw = gw or net_addr.network_address + 1
            host_in(net_addr, gw, "--gateway")
        with self._lock:
            if name in self._nets:
                raise Conflict(f'network "{name}" already exists')
        if net_addr is None:
            net_addr = self._free_subnet(routes)
            gw = net_addr.network_address + 1
        else:
            other = self._overlaps(net_addr)
            if other is not None:
                raise Conflict(f'--subnet {net_addr} overlaps network "{other.name}" ({other.subnet})')
        nid = secrets.token_hex(32)
        bridge = "mcbr-" + nid[:8]
        net = Network(name=name, id=nid, subnet=str(net_addr), gateway=str(gw),
                      internal=bool(internal), bridge=bridge, created=_now(), source="user",
                      labels=dict(labels or {}),
                      conflist=bridge_conflist(name, bridge, str(net_addr), str(gw), bool(internal)))
        with self._lock:
            if name in self._nets:
                raise Conflict(f'network "{name}" already exists')
            _write_json(os.path.join(self.dir, name + ".json"), asdict(net))
            self._nets[name] = net
        return net

    def remove(self, name: str) -> Network:
        net = self.get(name)
        if net.source == "default":
            raise Conflict(f'network "{net.name}" is the default network: it cannot be removed')
        if net.source == "file":
            raise Conflict(f'network "{net.name}" is defined by {net.file}: remove that file')
        with self._lock:
            try:
                os.unlink(os.path.join(self.dir, net.name + ".json"))
            except FileNotFoundError:
                pass
            self._nets.pop(net.name, None)
        return net



def _write_json(path: str, data) -> None:
    from mcd.store import atomic_write_json
    atomic_write_json(path, data)
