"""The CNI caller against the specification's execution protocol.

The plugins here are small recording executables written by the test (the real ones
need root and a netns: tests/python/network runs those). Each records its environment
and stdin and answers like a plugin: a result that grows along the chain, or the error
JSON of the specification when its config says so.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

from mcd.network.cni import ADD, CHECK, DEL, Attachment, Caller, CNIError, ConfList, plugin_config

PLUGIN = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    conf = json.load(sys.stdin)
    rec = {{"type": os.path.basename(sys.argv[0]), "conf": conf,
           "env": {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}}}
    with open({log!r}, "a") as f:
        f.write(json.dumps(rec) + "\\n")
    if conf.get("fail_on") == os.environ["CNI_COMMAND"]:
        print(json.dumps({{"cniVersion": conf["cniVersion"], "code": conf.get("code", 999),
                          "msg": "it broke", "details": "on purpose\\n  really"}}))
        sys.exit(1)
    if os.environ["CNI_COMMAND"] == "ADD":
        prev = conf.get("prevResult") or {{"cniVersion": conf["cniVersion"], "interfaces": []}}
        prev["interfaces"] = prev["interfaces"] + [{{"name": rec["type"]}}]
        print(json.dumps(prev))
    """)


@pytest.fixture
def plugins(tmp_path):
    log = tmp_path / "calls.jsonl"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("alpha", "beta", "gamma"):
        p = bindir / name
        p.write_text(PLUGIN.format(python=sys.executable, log=str(log)))
        p.chmod(0o755)

    def calls():
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]
    return Caller([str(tmp_path / "empty"), str(bindir)]), calls, str(bindir)


def conflist(**extra):
    return ConfList.parse({"cniVersion": "1.0.0", "name": "testnet", "plugins": [
        {"type": "alpha", "capabilities": {"portMappings": True}, **extra.get("alpha", {})},
        {"type": "beta", **extra.get("beta", {})},
        {"type": "gamma", "capabilities": {"ips": True, "mac": False}, **extra.get("gamma", {})},
    ]})


ATT = Attachment("c0ffee", "/run/netns/x", "eth0",
                 capability_args={"portMappings": [{"hostPort": 80, "containerPort": 8080,
                                                    "protocol": "tcp"}],
                                  "ips": ["10.0.0.5/24"], "mac": "aa:bb:cc:dd:ee:ff"})


def test_add_runs_in_order_with_env_name_version_and_prev_result(plugins):
    caller, calls, bindir = plugins
    seen = []
    result = caller.add(conflist(), ATT, checkpoint=seen.append)
    c = calls()
    assert [x["type"] for x in c] == ["alpha", "beta", "gamma"]
    for x in c:
        assert x["env"]["CNI_COMMAND"] == ADD
        assert x["env"]["CNI_CONTAINERID"] == "c0ffee"
        assert x["env"]["CNI_NETNS"] == "/run/netns/x"
        assert x["env"]["CNI_IFNAME"] == "eth0"
        assert bindir in x["env"]["CNI_PATH"].split(":")
        assert x["conf"]["name"] == "testnet" and x["conf"]["cniVersion"] == "1.0.0"
    assert "prevResult" not in c[0]["conf"]
    assert [i["name"] for i in c[1]["conf"]["prevResult"]["interfaces"]] == ["alpha"]
    assert [i["name"] for i in c[2]["conf"]["prevResult"]["interfaces"]] == ["alpha", "beta"]
    assert [i["name"] for i in result["interfaces"]] == ["alpha", "beta", "gamma"]
    assert len(seen) == 3 and seen[-1] == result


def test_runtime_config_holds_only_the_declared_capabilities(plugins):
    caller, calls, _ = plugins
    caller.add(conflist(), ATT)
    alpha, beta, gamma = (x["conf"] for x in calls())
    assert alpha["runtimeConfig"] == {"portMappings": ATT.capability_args["portMappings"]}
    assert "runtimeConfig" not in beta
    assert gamma["runtimeConfig"] == {"ips": ["10.0.0.5/24"]}     # mac: declared false


def test_del_runs_in_reverse_with_the_stored_result(plugins):
    caller, calls, _ = plugins
    stored = caller.add(conflist(), ATT)
    n = len(calls())
    caller.delete(conflist(), ATT, stored)
    dels = calls()[n:]
    assert [x["type"] for x in dels] == ["gamma", "beta", "alpha"]
    assert all(x["env"]["CNI_COMMAND"] == DEL and x["conf"]["prevResult"] == stored for x in dels)
    # DEL keeps the runtime config too (portmap needs its mappings to find its rules).
    assert dels[-1]["conf"]["runtimeConfig"]["portMappings"]


def test_check_in_order_with_the_stored_result_unless_disabled(plugins):
    caller, calls, _ = plugins
    stored = caller.add(conflist(), ATT)
    n = len(calls())
    caller.check(conflist(), ATT, stored)
    checks = calls()[n:]
    assert [x["type"] for x in checks] == ["alpha", "beta", "gamma"]
    assert all(x["env"]["CNI_COMMAND"] == CHECK and x["conf"]["prevResult"] == stored
               for x in checks)
    off = ConfList.parse({**conflist().to_dict(), "disableCheck": True})
    n = len(calls())
    caller.check(off, ATT, stored)
    assert len(calls()) == n


def test_a_failing_add_is_one_line_and_rolls_back_what_ran(plugins):
    caller, calls, _ = plugins
    with pytest.raises(CNIError) as ei:
        caller.add(conflist(beta={"fail_on": "ADD", "code": 7}), ATT)
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg == ("network testnet: plugin beta: ADD: it broke: on purpose really "
                   "(CNI error 7: invalid network config)")
    assert ei.value.details == {"network": "testnet", "plugin": "beta", "command": "ADD",
                                "cni_code": 7}
    assert ei.value.step == "network"
    c = calls()
    assert [(x["type"], x["env"]["CNI_COMMAND"]) for x in c] == [
        ("alpha", ADD), ("beta", ADD), ("gamma", DEL), ("beta", DEL), ("alpha", DEL)]
    # The rollback DEL carries what alpha returned: the most the caller knew.
    assert [i["name"] for i in c[-1]["conf"]["prevResult"]["interfaces"]] == ["alpha"]


def test_del_tries_every_plugin_and_reports_the_first_error(plugins):
    caller, calls, _ = plugins
    with pytest.raises(CNIError, match="plugin gamma: DEL: it broke"):
        caller.delete(conflist(gamma={"fail_on": "DEL"}), ATT, None)
    assert [x["type"] for x in calls()] == ["gamma", "beta", "alpha"]


def test_missing_plugin_and_bad_lists_are_clear(plugins, tmp_path):
    caller, _, _ = plugins
    conf = ConfList.parse({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "nope"}]})
    with pytest.raises(CNIError, match=r"network n: plugin nope: ADD: no such plugin in .*"
                                       r"containernetworking-plugins"):
        caller.add(conf, ATT)
    for bad, why in (({"name": "n", "plugins": [{"type": "a"}]}, "cniVersion"),
                     ({"cniVersion": "1.0.0", "plugins": [{"type": "a"}]}, "'name'"),
                     ({"cniVersion": "1.0.0", "name": "n", "plugins": []}, "non-empty"),
                     ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../x"}]}, "type")):
        with pytest.raises(Exception, match=why):
            ConfList.parse(bad)


def test_plugin_config_does_not_leak_stale_runtime_config_or_prev_result():
    conf = ConfList.parse({"cniVersion": "0.4.0", "name": "n", "plugins": [
        {"type": "a", "runtimeConfig": {"stale": 1}, "prevResult": {"stale": 1}}]})
    cfg = plugin_config(conf, conf.plugins[0], Attachment("id", "/ns"), None)
    assert "runtimeConfig" not in cfg and "prevResult" not in cfg
    assert cfg["cniVersion"] == "0.4.0" and cfg["name"] == "n"


@pytest.mark.skipif(not os.path.exists("/usr/lib/cni/bridge"), reason="no CNI plugins here")
def test_version_of_a_real_plugin():
    info = Caller().version("bridge")
    assert "1.0.0" in info["supportedVersions"]


def test_known_false_check_is_only_portmaps_ipv6_check_of_an_ipv4_container():
    from mcd.network.cni import known_false_check
    msg = ("network n: plugin portmap: CHECK: could not check ipv6 dnat: chain CNI-DN-x "
           "not found in iptables table nat (CNI error 999)")
    v4 = {"ips": [{"address": "10.77.0.2/16"}]}
    v6 = {"ips": [{"address": "10.77.0.2/16"}, {"address": "fd00::2/64"}]}
    assert known_false_check("portmap", msg, v4)
    assert not known_false_check("portmap", msg, v6)        # it had IPv6 rules to find
    assert not known_false_check("portmap", msg.replace("ipv6", "ipv4"), v4)
    assert not known_false_check("bridge", msg, v4)
