"""The network service: the engine's one door to networks, called by the manager.

For a container on a network, in the order that leaves nothing behind:

1. prepare (at create): the network exists, -p/--ip fit it; "" becomes the default network.
2. attach (at start, before PID 1 exists): the host ports are free; a netns is made and
   held under RUN_DIR/netns; the attachment record (network, conflist, runtime args) is
   written under ROOT/networks/attachments BEFORE the plugins run, and again with each
   plugin's result; CNI ADD. The runtime then only receives the netns path and the
   hosts/resolv.conf contents.
3. detach (at exit, on a failed start, on rm, and on restore for every record whose
   container is not running): CNI DEL in reverse with the stored result, unmount the
   netns, remove the record, and take the container out of its peers' /etc/hosts.

Names: the daemon keeps each container's /etc/hosts (a file in its directory, bind
mounted over /etc/hosts) listing every peer on its network, rewritten in place (same
inode, so the bind mount sees it) as peers attach and detach. See docs/networking.md.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import subprocess
import threading
import time

from mcd.errors import Conflict, InvalidArgument, KernelError, MCError
from mcd.network import netns
from mcd.network.cni import Attachment, Caller, CNIError, ConfList
from mcd.network.networks import Network, Networks
from mcd.store import atomic_write_json, read_json

log = logging.getLogger("mcd.network")

IFNAME = "eth0"


class NetInfo:
    """What the runtime receives: a ready netns and the files it binds."""

    def __init__(self, netns_path: str, hosts: str, resolv_conf: str):
        self.netns = netns_path
        self.etc = {"hosts": hosts, "resolv.conf": resolv_conf}


def _host_resolv(path: str = "/etc/resolv.conf") -> tuple[list[str], list[str]]:
    """The host's nameservers a container can reach (not the host's loopback ones), and
    its other lines (search, options)."""
    servers, other = [], []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return [], []
    for line in lines:
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            try:
                ip = ipaddress.ip_address(words[1].split("%")[0])
            except ValueError:
                continue
            if not ip.is_loopback:
                servers.append(words[1])
        elif words[0] in ("search", "domain", "options"):
            other.append(line.strip())
    return servers, other


def _routes(proc: str = "/proc") -> list[ipaddress.IPv4Network]:
    """The IPv4 routes of the daemon's netns, so a new network does not shadow one."""
    out = []
    try:
        with open(f"{proc}/net/route") as f:
            next(f, None)
            for line in f:
                p = line.split()
                if len(p) < 8 or p[1] == "00000000":
                    continue
                dst = ipaddress.IPv4Address(int(p[1], 16).to_bytes(4, "little"))
                mask = ipaddress.IPv4Address(int(p[7], 16).to_bytes(4, "little"))
                try:
                    out.append(ipaddress.ip_network(f"{dst}/{mask}", strict=False))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


class NetworkService:
    def __init__(self, root: str, run_dir: str, *, config_dir: str | None = None,
                 default_network: str = "none", default_bridge: str = "mcbr0",
                 default_subnet: str | None = None, publish_ip: str = "0.0.0.0",
                 cni_path=None, users=None):
        from mcd.network.networks import DEFAULT_SUBNET
        self.root = root
        self.run_dir = run_dir
        self.netns_dir = os.path.join(run_dir, "netns")
        self.att_dir = os.path.join(root, "networks", "attachments")
        self.networks = Networks(root, config_dir, default_name=default_network,
                                 default_bridge=default_bridge,
                                 default_subnet=default_subnet or DEFAULT_SUBNET)
        self.default_network = default_network
        self.publish_ip = publish_ip
        self.caller = Caller(cni_path) if cni_path else Caller()
        self.users = users or (lambda name: [])
        self._lock = threading.RLock()
        self._att: dict[str, dict] = {}        # container id -> record
        self._loaded = False
        # One lock per container: attach, detach and a held release never overlap for it.
        # Taken after the manager's container lock, never before it.
        self._cid_locks: dict[str, threading.Lock] = {}
        # Every rewrite of a hosts file: two at once on one file would mix their texts.
        self._hosts_lock = threading.Lock()
        # container id -> where its last attach spent its time (ns), for Server-Timing.
        self._timing: dict[str, dict[str, int]] = {}

    def _cid_lock(self, cid: str) -> threading.Lock:
        with self._lock:
            return self._cid_locks.setdefault(cid, threading.Lock())

    def hold(self, cid: str):
        """Take the container's network lock now; returns a callable that detaches and lets
        go (None when it has no attachment). For the exit path: the exit is made visible
        between the two, and everyone else who touches the attachment waits for the call."""
        with self._lock:
            has = cid in self._att
        if not has and not os.path.exists(self._record_path(cid)):
            return None
        lock = self._cid_lock(cid)
        lock.acquire()

        def release():
            try:
                self._detach_locked(cid)
            finally:
                lock.release()
        return release

    def timing(self, cid: str) -> dict[str, int]:
        """The last attach's phases in ns (taken once): ``net-record`` (the attachment
        record written and synced), ``net-netns`` (the namespace made and held),
        ``net-add-TYPE`` per plugin run, ``net-names`` (hosts files). For Server-Timing."""
        with self._lock:
            return self._timing.pop(cid, {})

    def settled(self, cid: str) -> None:
        """Wait for a release in flight (stop returns once the network is gone)."""
        with self._cid_lock(cid):
            pass

    # -- setup
    def load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self.networks.load()
            os.makedirs(self.att_dir, mode=0o700, exist_ok=True)
            self._loaded = True

    # -- networks as objects
    def list(self) -> list[dict]:
        self.load()
        out = []
        for n in self.networks.list():
            d = n.summary()
            d["containers"] = self.users(n.name)
            out.append(d)
        return out

    def inspect_network(self, ref: str) -> dict:
        self.load()
        n = self.networks.get(ref)
        d = n.inspect()
        d["containers"] = self.users(n.name)
        with self._lock:
            d["attachments"] = {r["name"]: {"ip": r.get("ip"), "mac": r.get("mac")}
                                for r in self._att.values() if r["network"] == n.name}
        return d

    def create_network(self, name, subnet=None, gateway=None, internal=False, labels=None) -> dict:
        self.load()
        return self.networks.create(name, subnet, gateway, internal, labels,
                                    routes=_routes()).summary()

    def remove_network(self, ref: str) -> dict:
        self.load()
        n = self.networks.get(ref)
        users = self.users(n.name)
        if users:
            more = f" and {len(users) - 5} more" if len(users) > 5 else ""
            raise Conflict(f'network "{n.name}" is used by {len(users)} container(s): '
                           f'{", ".join(users[:5])}{more}; remove them first')
        gone = self.networks.remove(n.name)
        _delete_bridge(gone)
        return gone.summary()

    def prune(self) -> list[str]:
        self.load()
        gone = []
        for n in self.networks.list():
            if n.source == "user" and not self.users(n.name):
                try:
                    _delete_bridge(self.networks.remove(n.name))
                    gone.append(n.name)
                except MCError:
                    pass
        return gone

    # -- create
    def prepare(self, spec, exposed=()) -> None:
        """At create: the default network for "", -p/--ip checked against the network, and
        -P turned into mappings of the image's exposed ports ("80/tcp") to free host ports."""
        self.load()
        nw = spec.networking
        if nw.publish_all:
            from mcwire.spec import PortMapping
            have = {(p.container_port, p.protocol) for p in nw.ports}
            for item in exposed:
                num, _, proto = str(item).partition("/")
                if not num.isdigit() or (int(num), proto or "tcp") in have:
                    continue
                nw.ports.append(PortMapping(container_port=int(num), protocol=proto or "tcp"))
                have.add((int(num), proto or "tcp"))
        if not nw.mode:
            nw.mode = self.networks.resolve_name(self.default_network) \
                if self.default_network != "none" else "none"
            if nw.mode == "none" and (nw.ports or nw.ip or nw.aliases):
                raise InvalidArgument("-p/--publish, --ip, --network-alias: this daemon has no "
                                      "default network (default_network = none): give --network")
        if nw.mode in ("none", "host"):
            return
        net = self.networks.get(nw.mode)
        nw.mode = net.name
        if nw.ip:
            if not net.subnet:
                raise InvalidArgument(f'--ip: network "{net.name}" has no known subnet')
            subnet = ipaddress.ip_network(net.subnet, strict=False)
            ip = ipaddress.ip_address(nw.ip)
            if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address) \
                    or (net.gateway and str(ip) == net.gateway):
                raise InvalidArgument(f'--ip: {ip} is not a free host address of network '
                                      f'"{net.name}" ({net.subnet})')
        if nw.ports:
            if net.internal:
                raise InvalidArgument(f'-p/--publish: network "{net.name}" is internal: it '
                                      f'has no way in or out')
            if not any(p.get("capabilities", {}).get("portMappings")
                       for p in net.conflist.get("plugins", []) if isinstance(p, dict)):
                raise InvalidArgument(f'-p/--publish: network "{net.name}" has no plugin with '
                                      f'the portMappings capability (portmap)')

    # -- attach
    def _record_path(self, cid: str) -> str:
        return os.path.join(self.att_dir, cid + ".json")

    def _save(self, rec: dict, durable: bool = False) -> None:
        """Atomic always (a temp file renamed over). Synced only for the record written
        before ADD: a daemon killed later loses nothing of the page cache, and after a
        host crash that first record is all a DEL needs (the container id releases the
        leases; veths, namespaces and rules did not survive the reboot). ~7 ms a sync."""
        atomic_write_json(self._record_path(rec["id"]), rec, durable=durable)

    def _ports(self, cid: str, name: str, spec) -> list[dict]:
        """Host ports: free ones picked for 0, every one checked against our other
        containers and against the host's sockets (bind, then close)."""
        mappings = []
        with self._lock:
            taken = [(r["name"], m) for r in self._att.values() if r["id"] != cid
                     for m in r.get("ports", [])]
        for p in spec.networking.ports:
            host_ip = p.host_ip or self.publish_ip
            port = p.host_port or _free_port(host_ip, p.protocol)
            for other, m in taken:
                if m["hostPort"] == port and m["protocol"] == p.protocol and \
                        (m["hostIP"] == host_ip or "0.0.0.0" in (m["hostIP"], host_ip)):
                    raise Conflict(f'container "{name}": port {host_ip}:{port}/{p.protocol} is '
                                   f'already published by container "{other}"', container=name)
            _check_free(name, host_ip, port, p.protocol)
            mappings.append({"hostPort": port, "containerPort": p.container_port,
                             "protocol": p.protocol, "hostIP": host_ip})
        return mappings

    def attach(self, cid: str, name: str, spec, hosts_path: str) -> NetInfo | None:
        """CNI ADD into a new held netns. None for none/host (the runtime's own way)."""
        mode = spec.network
        if mode in ("none", "host"):
            return None
        self.load()
        with self._cid_lock(cid):
            self._detach_locked(cid)        # whatever a crashed start left
            return self._attach_locked(cid, name, spec, hosts_path)

    def _attach_locked(self, cid: str, name: str, spec, hosts_path: str) -> NetInfo:
        net = self.networks.get(spec.network)
        conf = self.networks.conflist(net)
        if net.source != "file" and not spec.networking.ports:
            # A list we generated runs without portmap when nothing is published: it would
            # only look for rules to add and (at DEL) to remove, ~30 + ~70 ms of iptables
            # here. The list used is the one recorded, so DEL matches ADD. Lists an
            # administrator wrote run as written.
            conf = ConfList.parse({**conf.to_dict(), "plugins": [
                p for p in conf.plugins if p.get("type") != "portmap"]}, f"network {net.name}")
        with self._lock:
            if spec.networking.ip:
                for r in self._att.values():
                    if r["network"] == net.name and r.get("ip") == spec.networking.ip:
                        raise Conflict(f'container "{name}": --ip {spec.networking.ip} is '
                                       f'already used by container "{r["name"]}" on network '
                                       f'"{net.name}"', container=name)
            ports = self._ports(cid, name, spec)
            caps = {}
            if ports:
                caps["portMappings"] = [{k: v for k, v in m.items()
                                         if not (k == "hostIP" and v == "0.0.0.0")} for m in ports]
            if spec.networking.ip and net.subnet:
                prefix = ipaddress.ip_network(net.subnet, strict=False).prefixlen
                caps["ips"] = [f"{spec.networking.ip}/{prefix}"]
            path = os.path.join(self.netns_dir, cid)
            rec = {"id": cid, "name": name, "network": net.name, "netns": path,
                   "ifname": IFNAME, "conflist": conf.to_dict(), "capability_args": caps,
                   "ports": ports, "result": None, "hosts_path": hosts_path,
                   "hostname": spec.hostname, "aliases": list(spec.networking.aliases),
                   "extra_hosts": list(spec.networking.extra_hosts)}
            # The record first: a daemon killed from here on finds it and cleans up.
            t0 = time.perf_counter_ns()
            self._save(rec, durable=True)
            self._att[cid] = rec
        phases = {"net-record": time.perf_counter_ns() - t0}
        try:
            t0 = time.perf_counter_ns()
            netns.create(path)
            phases["net-netns"] = time.perf_counter_ns() - t0
            att = self._attachment(rec)
            ran = iter(conf.plugins)
            t0 = time.perf_counter_ns()

            def checkpoint(result):
                nonlocal t0
                now = time.perf_counter_ns()
                key = f"net-add-{next(ran, {}).get('type', 'plugin')}"
                phases[key] = phases.get(key, 0) + now - t0
                rec["result"] = result
                self._save(rec)
                t0 = time.perf_counter_ns()
            result = self.caller.add(conf, att, checkpoint)
        except BaseException as err:
            self._forget(rec)
            if isinstance(err, CNIError):
                if err.container is None:
                    err.container = name
                err.message = f'container "{name}": {err.message}'
                ip = spec.networking.ip
                if ip and "not available" in err.message:
                    raise Conflict(f'container "{name}": --ip {ip} is already in use on network '
                                   f'"{net.name}"', container=name) from err
            raise
        ip, gw, mac = _summarize(result, IFNAME)
        with self._lock:
            rec.update(result=result, ip=ip, gateway=gw, mac=mac)
            self._save(rec)
        t0 = time.perf_counter_ns()
        hosts = self._hosts_text(rec)
        self._refresh_peers(net.name, cid)
        info = NetInfo(path, hosts, self._resolv_text(spec))
        phases["net-names"] = time.perf_counter_ns() - t0
        with self._lock:
            self._timing[cid] = phases
        return info

    def _attachment(self, rec: dict) -> Attachment:
        return Attachment(container_id=rec["id"], netns=rec["netns"], ifname=rec["ifname"],
                          capability_args=rec.get("capability_args") or {})

    def _forget(self, rec: dict) -> None:
        """DEL (the plugins already run) and drop the netns and the record."""
        self._teardown(rec)

    def _teardown(self, rec: dict) -> bool:
        ok = True
        try:
            conf = ConfList.parse(rec["conflist"], f"attachment {rec['id'][:12]}")
            self.caller.delete(conf, self._attachment(rec), rec.get("result"))
        except MCError as err:
            ok = False
            log.error('container "%s": network %s: DEL: %s', rec.get("name"), rec.get("network"), err)
        try:
            netns.remove(rec["netns"])
        except MCError as err:
            ok = False
            log.error('container "%s": removing its netns: %s', rec.get("name"), err)
        with self._lock:
            self._att.pop(rec["id"], None)
            self._timing.pop(rec["id"], None)
            if ok:
                try:
                    os.unlink(self._record_path(rec["id"]))
                except FileNotFoundError:
                    pass
                except OSError as err:
                    log.error("removing %s: %s", self._record_path(rec["id"]), err)
        return ok

    def detach(self, cid: str) -> None:
        """Idempotent: nothing to do for a container with no attachment."""
        with self._cid_lock(cid):
            self._detach_locked(cid)

    def _detach_locked(self, cid: str) -> None:
        with self._lock:
            rec = self._att.get(cid)
        if rec is None:
            try:
                rec = read_json(self._record_path(cid))
            except Exception as err:   # noqa: BLE001 - a corrupt record: say so, drop it
                log.error("attachment record of %s unreadable: %s", cid[:12], err)
                rec = None
            if not isinstance(rec, dict):
                return
        self._teardown(rec)
        self._refresh_peers(rec.get("network"), cid)

    def info(self, cid: str) -> dict | None:
        """For inspect and ps: the attachment as the user sees it."""
        with self._lock:
            rec = self._att.get(cid)
            if rec is None:
                return None
            return {"network": rec["network"], "ip": rec.get("ip"), "gateway": rec.get("gateway"),
                    "prefix_len": _prefix_len(rec.get("result"), rec.get("ip")),
                    "mac": rec.get("mac"), "netns": rec["netns"],
                    "ports": [dict(m) for m in rec.get("ports", [])],
                    "aliases": list(rec.get("aliases", []))}

    # -- restore
    def restore(self, active: set[str]) -> dict:
        """At daemon start: records of containers that are not running are torn down
        (DEL, netns, record); the others are taken back, and CHECKed."""
        self.load()
        report = {"kept": [], "cleaned": [], "check_failed": []}
        for fn in sorted(os.listdir(self.att_dir)):
            if not fn.endswith(".json"):
                if ".json." in fn and fn.startswith("."):
                    try:
                        os.unlink(os.path.join(self.att_dir, fn))   # a temp of a cut write
                    except OSError:
                        pass
                continue
            cid = fn[:-5]
            try:
                rec = read_json(self._record_path(cid))
            except Exception as err:   # noqa: BLE001
                log.error("attachment record %s unreadable, removed: %s", fn, err)
                os.unlink(self._record_path(cid))
                continue
            if not isinstance(rec, dict):
                continue
            if cid in active and netns.is_held(rec["netns"]) and rec.get("result"):
                with self._lock:
                    self._att[cid] = rec
                try:
                    conf = ConfList.parse(rec["conflist"], fn)
                    self.caller.check(conf, self._attachment(rec), rec["result"])
                except MCError as err:
                    report["check_failed"].append(cid)
                    log.error('container "%s": network %s: CHECK: %s', rec.get("name"),
                              rec.get("network"), err)
                report["kept"].append(cid)
            else:
                self._teardown(rec)
                report["cleaned"].append(cid)
        # netns files with no record (a crash between netns.create and the first save
        # cannot happen, the record comes first; this is for hand-made leftovers)
        if os.path.isdir(self.netns_dir):
            with self._lock:
                known = {r["netns"] for r in self._att.values()}
            for fn in os.listdir(self.netns_dir):
                path = os.path.join(self.netns_dir, fn)
                if path not in known:
                    try:
                        netns.remove(path)
                        report["cleaned"].append(fn)
                    except MCError as err:
                        log.error("stray netns %s: %s", path, err)
        for name in {r["network"] for r in self._att.values()}:
            self._refresh_peers(name, None)
        return report

    # -- names
    def _hosts_text(self, rec: dict) -> str:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        with self._lock:
            peers = [r for r in self._att.values()
                     if r["network"] == rec["network"] and r.get("ip")]
        peers.sort(key=lambda r: (r["id"] != rec["id"], r["name"]))
        for r in peers:
            names = [r["hostname"], r["name"].replace("_", "-") if r["name"] != r["hostname"]
                     else None, *r.get("aliases", [])]
            if r["name"] not in names:
                names.append(r["name"])
            lines.append(f"{r['ip']}\t" + " ".join(dict.fromkeys(n for n in names if n)))
        for h in rec.get("extra_hosts", []):
            lines.append(f"{h['ip']}\t{h['name']}")
        return "\n".join(lines) + "\n"

    def _resolv_text(self, spec) -> str:
        servers, other = _host_resolv()
        if spec.networking.dns:
            servers = list(spec.networking.dns)
        lines = ["# written by mcd: the host's nameservers (not its loopback ones) or --dns"]
        lines += [f"nameserver {s}" for s in servers] + other
        return "\n".join(lines) + "\n"

    def _refresh_peers(self, network: str | None, skip: str | None) -> None:
        """Rewrite every attached container's hosts file on the network, in place."""
        if not network:
            return
        with self._hosts_lock:
            with self._lock:
                recs = [r for r in self._att.values() if r["network"] == network
                        and r["id"] != skip and r.get("ip")]
            for r in recs:
                _rewrite_in_place(r["hosts_path"], self._hosts_text(r))

    def renamed(self, cid: str, name: str) -> None:
        """A running container's new name: in its record, and in every hosts file on its
        network (its peers reach it by the new name, as Docker's DNS answers it)."""
        with self._lock:
            rec = self._att.get(cid)
            if rec is None:
                return
            rec["name"] = name
            self._save(rec)
        self._refresh_peers(rec["network"], None)

    def started(self, cid: str) -> None:
        """After the runtime wrote the container's files: its /etc/hosts once more, as of
        now. A peer that attached between our ADD and that write was written over."""
        with self._hosts_lock:
            with self._lock:
                rec = self._att.get(cid)
            if rec is not None and rec.get("ip"):
                _rewrite_in_place(rec["hosts_path"], self._hosts_text(rec))


def _rewrite_in_place(path: str, text: str) -> None:
    """Same inode (a bind mount points at it). Written over the old text, then cut to
    length: a reader in between sees whole new lines first, never an empty file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as err:
        log.error("hosts file %s: %s", path, err)
        return
    try:
        data = text.encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    except OSError as err:
        log.error("hosts file %s: %s", path, err)
    finally:
        os.close(fd)


def _summarize(result: dict, ifname: str) -> tuple[str | None, str | None, str | None]:
    """The container interface's IPv4 address, gateway and MAC from a CNI result."""
    ifaces = result.get("interfaces") or []
    mac = None
    idx = None
    for i, itf in enumerate(ifaces):
        if isinstance(itf, dict) and itf.get("sandbox") and itf.get("name") == ifname:
            mac, idx = itf.get("mac"), i
    for ipc in result.get("ips") or []:
        if not isinstance(ipc, dict):
            continue
        if idx is not None and ipc.get("interface") not in (None, idx):
            continue
        addr = ipc.get("address", "")
        if ":" in addr:
            continue
        return addr.split("/")[0] or None, ipc.get("gateway"), mac
    return None, None, mac


def _delete_bridge(net) -> None:
    """The bridge device of a removed network the daemon made (the bridge plugin makes it
    at the first ADD and never deletes it): with it go its gateway address and the route
    to the subnet, which a later network on the same subnet would otherwise meet."""
    bridge = getattr(net, "bridge", None)
    if net.source != "user" or not bridge:
        return
    r = subprocess.run(["ip", "link", "del", "dev", bridge], capture_output=True, text=True)
    if r.returncode != 0 and "Cannot find device" not in r.stderr:
        log.warning('network "%s": bridge %s not removed: %s', net.name, bridge,
                    r.stderr.strip() or f"ip exited {r.returncode}")


def _prefix_len(result, ip: str | None) -> int | None:
    """The prefix length of the container's address in a CNI result ("10.77.0.5/16")."""
    for ipc in (result or {}).get("ips") or []:
        addr = ipc.get("address", "") if isinstance(ipc, dict) else ""
        if ip and addr.split("/")[0] == ip and "/" in addr:
            try:
                return int(addr.split("/")[1])
            except ValueError:
                return None
    return None


def _free_port(host_ip: str, proto: str) -> int:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host_ip, 0))
        return s.getsockname()[1]


def _check_free(name: str, host_ip: str, port: int, proto: str) -> None:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    try:
        if proto == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host_ip, port))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise Conflict(f'container "{name}": port {host_ip}:{port}/{proto} is already in use '
                           f'on the host', container=name) from None
        if err.errno == errno.EADDRNOTAVAIL:
            raise InvalidArgument(f'container "{name}": -p: {host_ip} is not an address of '
                                  f'this host', container=name) from None
        raise KernelError.from_oserror("bind", err, f"{host_ip}:{port}/{proto}",
                                       container=name, step="network") from err
    finally:
        s.close()
