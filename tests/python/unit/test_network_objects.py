"""Networks as objects, flag parsing, the spec's networking part: pure logic, no kernel."""

from __future__ import annotations

import json
import os

import pytest

from mcd.errors import Conflict, InvalidArgument, NotFound
from mcd.network.networks import Networks
from mcd.network.service import NetworkService, _host_resolv, _summarize
from mcwire.spec import ContainerSpec
from mcwire.units import parse_add_host, parse_publish


def test_parse_publish_forms():
    assert parse_publish("8080") == {"host_ip": "", "host_port": 0, "container_port": 8080,
                                     "protocol": "tcp"}
    assert parse_publish("18080:8080") == {"host_ip": "", "host_port": 18080,
                                           "container_port": 8080, "protocol": "tcp"}
    assert parse_publish("127.0.0.1:53:53/UDP") == {"host_ip": "127.0.0.1", "host_port": 53,
                                                    "container_port": 53, "protocol": "udp"}
    assert parse_publish("127.0.0.1::80")["host_port"] == 0


@pytest.mark.parametrize("text,why", [
    ("", "expected"), ("0", "container port '0'"), ("70000", "container port '70000'"),
    ("x:80", "host port 'x'"), ("80/sctp", "tcp or udp"), ("1:2:3:4", "is not"),
    ("300.1.1.1:80:80", "not an IPv4"), ("[::1]:80:80", "IPv6"), ("8000-8010:80", "ranges"),
    ("0:80", "host port '0'"),
])
def test_parse_publish_refuses(text, why):
    with pytest.raises(InvalidArgument, match=why) as ei:
        parse_publish(text)
    assert str(ei.value).startswith("-p/--publish: ")


def test_parse_add_host():
    assert parse_add_host("db:10.1.2.3") == {"name": "db", "ip": "10.1.2.3"}
    for bad in ("db", "db:x", "-x:1.2.3.4", ":1.2.3.4"):
        with pytest.raises(InvalidArgument, match="--add-host"):
            parse_add_host(bad)


def spec(**networking):
    return ContainerSpec.from_dict({"name": "c", "process": {"args": ["sh"]},
                                    "networking": networking})


def test_spec_networking_round_trip_and_host_rules():
    s = spec(mode="appnet", ports=[{"container_port": 80, "host_port": 8080}],
             ip="10.78.0.9", aliases=["db"], dns=["1.1.1.1"],
             extra_hosts=[{"name": "x", "ip": "1.2.3.4"}])
    assert ContainerSpec.from_dict(s.to_dict()) == s
    assert s.network == "appnet"
    h = spec(mode="host")
    assert "network" not in h.linux.namespaces and h.network == "host"
    with pytest.raises(InvalidArgument, match="needs a network"):
        spec(mode="host", ports=[{"container_port": 80}])
    with pytest.raises(InvalidArgument, match="given twice"):
        spec(mode="n", ports=[{"container_port": 80, "host_port": 1},
                              {"container_port": 81, "host_port": 1}])
    # A spec stored before networks existed: its namespaces say none or host.
    old = ContainerSpec.from_dict({"name": "c", "process": {"args": ["sh"]}})
    assert old.network == "none"
    old_host = ContainerSpec.from_dict({"name": "c", "process": {"args": ["sh"]}, "linux": {
        "namespaces": ["pid", "mount", "uts", "ipc", "cgroup"]}})
    assert old_host.network == "host"


def test_default_and_created_networks(tmp_path):
    nets = Networks(str(tmp_path), str(tmp_path / "net.d"))
    nets.load()
    (default,) = nets.list()
    assert default.name == "mcnet" and default.subnet == "10.77.0.0/16"
    assert default.gateway == "10.77.0.1" and default.source == "default"
    assert nets.get("bridge") is default
    a = nets.create("appnet")
    b = nets.create("other", internal=True)
    assert (a.subnet, b.subnet) == ("10.78.0.0/24", "10.78.1.0/24")
    with pytest.raises(Conflict, match="already exists"):
        nets.create("appnet")
    with pytest.raises(Conflict, match='overlaps network "appnet"'):
        nets.create("x", subnet="10.78.0.128/25")
    with pytest.raises(InvalidArgument, match="reserved"):
        nets.create("host")
    with pytest.raises(InvalidArgument, match="not a CIDR"):
        nets.create("x", subnet="10.1.2.3/24")          # host bits set
    with pytest.raises(InvalidArgument, match="not a host address"):
        nets.create("x", subnet="10.90.0.0/24", gateway="10.91.0.1")
    c = nets.create("c", subnet="10.90.0.0/24", gateway="10.90.0.254")
    assert c.gateway == "10.90.0.254"
    # Every created network survives a reload (a daemon restart) with its identity.
    again = Networks(str(tmp_path), str(tmp_path / "net.d"))
    again.load()
    assert again.get("appnet").id == a.id and again.get("other").internal
    # internal: no gateway on the bridge, no masquerade, no default route, no portmap.
    plugins = {p["type"]: p for p in b.conflist["plugins"]}
    assert plugins["bridge"]["isGateway"] is False and plugins["bridge"]["ipMasq"] is False
    assert "routes" not in plugins["bridge"]["ipam"] and "portmap" not in plugins
    assert plugins["firewall"]["ingressPolicy"] == "same-bridge"
    # host-local's leases live under our root unless the list says otherwise.
    conf = again.conflist(again.get("appnet"))
    assert conf.plugins[0]["ipam"]["dataDir"] == str(tmp_path / "networks" / "ipam")
    with pytest.raises(Conflict, match="default network"):
        again.remove("mcnet")
    again.remove("appnet")
    with pytest.raises(NotFound):
        again.get("appnet")


def test_admin_conflists_are_networks_and_cannot_be_removed_through_the_api(tmp_path):
    d = tmp_path / "net.d"
    d.mkdir()
    (d / "10-mac.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "lan", "plugins": [
            {"type": "macvlan", "master": "eth0",
             "ipam": {"type": "host-local", "subnet": "192.0.2.0/24"}},
            {"type": "bandwidth", "capabilities": {"bandwidth": True}}]}))
    (d / "20-broken.conflist").write_text("{not json")
    (d / "30-taken.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "host", "plugins": [{"type": "x"}]}))
    nets = Networks(str(tmp_path), str(d))
    nets.load()
    assert sorted(n.name for n in nets.list()) == ["lan", "mcnet"]
    lan = nets.get("lan")
    assert (lan.driver, lan.subnet, lan.source) == ("macvlan", "192.0.2.0/24", "file")
    with pytest.raises(Conflict, match="10-mac.conflist"):
        nets.remove("lan")


def test_default_network_none_and_prepare(tmp_path):
    svc = NetworkService(str(tmp_path), str(tmp_path / "run"), default_network="none")
    s = spec()
    svc.prepare(s)
    assert s.network == "none"
    with pytest.raises(InvalidArgument, match="no default network"):
        svc.prepare(spec(ports=[{"container_port": 80}]))
    svc = NetworkService(str(tmp_path / "2"), str(tmp_path / "run2"), default_network="mcnet")
    s = spec()
    svc.prepare(s)
    assert s.network == "mcnet"
    s = spec(mode="bridge")
    svc.prepare(s)
    assert s.network == "mcnet"
    with pytest.raises(NotFound, match='no such network: "nope"'):
        svc.prepare(spec(mode="nope"))
    with pytest.raises(InvalidArgument, match="--ip: 10.9.0.2 is not a free host address"):
        svc.prepare(spec(mode="mcnet", ip="10.9.0.2"))
    with pytest.raises(InvalidArgument, match="--ip: 10.77.0.1"):
        svc.prepare(spec(mode="mcnet", ip="10.77.0.1"))      # the gateway
    svc.create_network("inside", internal=True)
    with pytest.raises(InvalidArgument, match='network "inside" is internal'):
        svc.prepare(spec(mode="inside", ports=[{"container_port": 80}]))


def test_network_rm_in_use_says_how_many_it_does_not_name(tmp_path):
    users = [f"c{i}" for i in range(7)]
    svc = NetworkService(str(tmp_path), str(tmp_path / "run"), default_network="none",
                         users=lambda name: users)
    svc.create_network("busy")
    with pytest.raises(Conflict) as ei:
        svc.remove_network("busy")
    assert ei.value.message == ('network "busy" is used by 7 container(s): c0, c1, c2, c3, c4 '
                                'and 2 more; remove them first')


def test_result_summary_and_resolv(tmp_path):
    result = {"cniVersion": "1.0.0",
              "interfaces": [{"name": "mcbr0", "mac": "aa"}, {"name": "veth1", "mac": "bb"},
                             {"name": "eth0", "mac": "cc", "sandbox": "/x"}],
              "ips": [{"address": "10.77.0.5/16", "gateway": "10.77.0.1", "interface": 2}]}
    assert _summarize(result, "eth0") == ("10.77.0.5", "10.77.0.1", "cc")
    rc = tmp_path / "resolv.conf"
    rc.write_text("# c\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example.org\n"
                  "options edns0\n")
    assert _host_resolv(str(rc)) == (["192.0.2.1"], ["search example.org", "options edns0"])
    assert os.path.exists(str(rc))
