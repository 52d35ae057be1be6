"""Networks for real: CNI bridge, portmap, firewall, NAT, names, and nothing leaked.

Every test here runs its daemon inside network namespaces the test makes, never in the
machine's own: an "outer" namespace stands for the host (the bridge, the iptables
rules and ip_forward live there), an "internet" namespace beside it holds a small HTTP
server on 203.0.113.2 (TEST-NET-3), reached only through the outer namespace's
masquerade. The daemon is started with ``nsenter --net=OUTER``; tests look inside with
nsenter too. The machine's own iptables and links are compared before and after.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import REPO, Daemon, wait_for


OUTER_IP, INET_IP = "203.0.113.1", "203.0.113.2"
MARKERS = ("10.77.", "10.78.", "mcbr", "203.0.113.")


def sh(*args, check=True, timeout=60, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def host_snapshot() -> list[str]:
    """The machine's own rules and links that would be ours if anything leaked out."""
    out = []
    for cmd in (["iptables-save"], ["ip", "-o", "link"], ["ip", "-o", "-4", "addr"]):
        r = sh(*cmd, check=False)
        out += [ln for ln in r.stdout.splitlines() if any(m in ln for m in MARKERS)]
    return out


class World:
    """The outer ("host") and internet namespaces, a veth between them, the server."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mcd-networld-")
        self.outer = os.path.join(self.dir, "outer")
        self.inet = os.path.join(self.dir, "internet")
        self.procs: list[subprocess.Popen] = []
        for ns in (self.outer, self.inet):
            open(ns, "w").close()
            sh("unshare", f"--net={ns}", "true")
        self.o("ip", "link", "set", "lo", "up")
        holder = subprocess.Popen(["nsenter", f"--net={self.inet}", "sleep", "600"])
        self.procs.append(holder)
        self.o("ip", "link", "add", "to-inet", "type", "veth", "peer", "name", "uplink")
        self.o("ip", "link", "set", "uplink", "netns", str(holder.pid))
        self.o("ip", "addr", "add", f"{OUTER_IP}/24", "dev", "to-inet")
        self.o("ip", "link", "set", "to-inet", "up")
        for cmd in (("ip", "link", "set", "lo", "up"), ("ip", "addr", "add", f"{INET_IP}/24", "dev", "uplink"),
                    ("ip", "link", "set", "uplink", "up")):
            self.i(*cmd)
        www = os.path.join(self.dir, "www")
        os.mkdir(www)
        with open(os.path.join(www, "hello"), "w") as f:
            f.write("hello from the internet\n")
        self.server_log = os.path.join(self.dir, "server.log")
        log = open(self.server_log, "w")
        self.procs.append(subprocess.Popen(
            ["nsenter", f"--net={self.inet}", sys.executable, "-m", "http.server", "8000",
             "--bind", INET_IP, "--directory", www], stdout=log, stderr=log))
        log.close()
        self.nettools = nettools_dir(self.dir)
        wait_for(lambda: self.i("sh", "-c", f"exec 3<>/dev/tcp/{INET_IP}/8000", check=False)
                 .returncode == 0, 20, "the internet server")

    def o(self, *args, check=True, timeout=60):
        return sh("nsenter", f"--net={self.outer}", *args, check=check, timeout=timeout)

    def i(self, *args, check=True):
        return sh("nsenter", f"--net={self.inet}", "bash", "-c", args[-1], check=check) \
            if args[:2] == ("sh", "-c") else sh("nsenter", f"--net={self.inet}", *args, check=check)

    def curl(self, url, timeout=5):
        return self.o("curl", "-sS", "-m", str(timeout), url, check=False, timeout=timeout + 10)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for ns in (self.outer, self.inet):
            subprocess.run(["umount", ns], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def nettools_dir(base: str) -> str:
    """A template with getent (busybox has no such applet): the host's dynamically linked
    getent (+ libc and the loader), beside busybox for the shell and nc, so a test can
    print what libc resolves a name to. (busybox itself resolves names through /etc/hosts
    fine: test_minimal_reaches_peers_by_name.)"""
    root = os.path.join(base, "nettools")
    for d in ("bin", "usr/bin", "lib/x86_64-linux-gnu", "lib64", "etc", "tmp", "proc", "sys",
              "dev", "root"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2("/bin/busybox", os.path.join(root, "bin/busybox"))
    for applet in ("sh", "cat", "cut", "sleep", "httpd", "ip", "echo", "nc", "sed", "printf",
                   "ping"):
        os.symlink("busybox", os.path.join(root, "bin", applet))
    shutil.copy2("/usr/bin/getent", os.path.join(root, "usr/bin/getent"))
    for line in sh("ldd", "/usr/bin/getent").stdout.splitlines():
        m = re.search(r"(/\S+\.so[.\d]*)", line)
        if m:
            dest = os.path.join(root, m.group(1).lstrip("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(os.path.realpath(m.group(1)), dest)
    with open(os.path.join(root, "etc/nsswitch.conf"), "w") as f:
        f.write("hosts: files dns\n")
    return root


class NetDaemon(Daemon):
    """A private mcd inside the outer namespace, with the default network on."""

    def __init__(self, base, world: World, toml: str = ""):
        super().__init__(base)
        self.world = world
        self.net_d = os.path.join(base, "net.d")
        os.makedirs(self.net_d, exist_ok=True)
        self.toml = os.path.join(base, "net.toml")
        with open(self.toml, "w") as f:
            f.write(toml)

    def argv(self):
        argv = super().argv()
        argv[argv.index("--default-network") + 1] = "mcnet"
        argv[argv.index("--config") + 1] = self.toml
        return ["nsenter", f"--net={self.world.outer}", *argv,
                "--network-config-dir", self.net_d]

    def run(self, *args, check=0, timeout=60):
        return self.mcctl("run", *args, check=check, timeout=timeout)

    def nettools(self):
        self.mcctl("template", "create", self.world.nettools, "nettools", check=0)


@pytest.fixture(scope="module")
def world():
    if not os.path.exists("/usr/lib/cni/bridge"):
        pytest.fail("containernetworking-plugins is not installed (make dev installs it)")
    before = host_snapshot()
    w = World()
    yield w
    w.close()
    after = host_snapshot()
    assert after == before, f"the machine's own tables changed:\n{before}\n->\n{after}"


def leaks(d: NetDaemon, live_ids=()) -> dict:
    """Everything a container's network leaves, minus what belongs to live_ids:
    veths in the outer namespace, host-local leases, iptables rules naming a container
    (portmap and bridge comment theirs with the id; firewall's name the address), held
    netns mounts."""
    w = d.world
    out = {}
    veths = [ln.split(":")[1].strip().split("@")[0] for ln in
             w.o("ip", "-o", "link", "show", "type", "veth").stdout.splitlines()]
    veths = [v for v in veths if v != "to-inet"]
    if len(veths) > len(live_ids):
        out["veths"] = veths
    ipam = os.path.join(d.root, "networks", "ipam")
    leases = []
    for dirpath, _dirs, files in os.walk(ipam):
        for f in files:
            if f != "lock" and not f.startswith("last_reserved_ip"):
                with open(os.path.join(dirpath, f)) as fh:
                    owner = fh.read().split()[0] if os.path.getsize(os.path.join(dirpath, f)) else ""
                if owner not in live_ids:
                    leases.append(f"{f}={owner[:12]}")
    if leases:
        out["leases"] = leases
    live_ips = set()
    for cid in live_ids:
        ns = (d.state(cid).get("network_settings") or {})
        if ns.get("ip"):
            live_ips.add(ns["ip"])
    rules = []
    for ln in w.o("iptables-save").stdout.splitlines():
        if ln.startswith("#"):
            continue
        ids = re.findall(r'id: \\?"([0-9a-f]{64})', ln)
        ips = re.findall(r"(10\.7[78]\.\d+\.\d+)/32", ln)
        if any(i not in live_ids for i in ids) or any(ip not in live_ips for ip in ips):
            rules.append(ln)
    if rules:
        out["rules"] = rules
    netns_dir = os.path.join(d.root, "run", "netns")
    held = sorted(set(os.listdir(netns_dir)) - set(live_ids)) if os.path.isdir(netns_dir) else []
    with open("/proc/self/mountinfo") as f:
        mounts = [ln.split()[4] for ln in f if netns_dir in ln]
    mounts = [m for m in mounts if os.path.basename(m) not in live_ids]
    if held or mounts:
        out["netns"] = held + mounts
    return out


def no_leaks(d: NetDaemon, live_ids=(), timeout: float = 20) -> None:
    """For exits nobody waited on (kill, a container's own death, run --rm): the exit is
    reported first and the CNI DEL follows, so give it until timeout. stop and rm are
    synchronous, and their tests assert leaks() at once."""
    end = time.monotonic() + timeout
    while True:
        left = leaks(d, live_ids)
        if not left or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert left == {}, left


@pytest.fixture
def netd(world, tmpbase):
    d = NetDaemon(tmpbase, world).start()
    yield d
    left = d.cleanup()
    assert not left, f"left behind: {json.dumps(left)}\n{d.log()}"
    assert not leaks(d), leaks(d)


# An HTTP GET from inside a container through nc, with a bound on the wait (nc -w): Debian's
# busybox wget crashes (SIGSEGV) on its -T option, whatever the address. Prints the body.
HGET = ('hget() { printf "GET $3 HTTP/1.0\\r\\n\\r\\n" | nc -w 3 "$1" "$2" '
        '| sed "1,/^\\r\\$/d"; }; ')


def byname(name: str) -> str:
    return f"$(getent hosts {name} | cut -d' ' -f1)"


def cid_of(r) -> str:
    return r.stdout.strip().splitlines()[-1]


def test_published_port_on_localhost_and_the_outer_address(netd, world):
    r = netd.run("-d", "--name", "web", "-p", "18080:8080", "minimal", "httpd", "-f", "-p", "8080")
    cid = cid_of(r)
    wait_for(lambda: world.curl("http://127.0.0.1:18080/etc/hostname").stdout == "web\n", 20,
             "the published port on 127.0.0.1")
    assert world.curl(f"http://{OUTER_IP}:18080/etc/hostname").stdout == "web\n"
    # port, ps, inspect
    assert netd.mcctl("port", "web", check=0).stdout == "8080/tcp -> 0.0.0.0:18080\n"
    assert netd.mcctl("port", "web", "8080", check=0).stdout == "0.0.0.0:18080\n"
    assert "0.0.0.0:18080->8080/tcp" in netd.mcctl("ps", check=0).stdout
    ns = netd.state("web")["network_settings"]
    assert ns["network"] == "mcnet" and ns["gateway"] == "10.77.0.1"
    assert ns["ip"].startswith("10.77.") and re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", ns["mac"])
    # The same host port again: refused, naming the container that has it; nothing made.
    r = netd.run("-d", "--name", "web2", "-p", "18080:80", "minimal", "sleep", "60", check=None)
    assert r.returncode == 125
    assert 'port 0.0.0.0:18080/tcp is already published by container "web"' in r.stderr
    assert "\n" not in r.stderr.strip()
    assert leaks(netd, {cid}) == {}
    netd.mcctl("rm", "-f", "web2", check=0)
    netd.mcctl("rm", "-f", "web", check=0)
    assert leaks(netd) == {}
    assert world.curl("http://127.0.0.1:18080/").returncode != 0


def test_bad_network_flags_refused_before_anything_exists(netd, world):
    for args, why in ((["-p", "80/sctp"], "protocol must be tcp or udp"),
                      (["-p", "1.2.3:80:80"], "not an IPv4 address"),
                      (["--network", "nope"], 'no such network: "nope"'),
                      (["--ip", "10.99.0.5"], "is not a free host address"),
                      (["--network", "none", "-p", "80"], "needs a network"),
                      (["--add-host", "x"], "--add-host")):
        r = netd.run(*args, "minimal", "true", check=None)
        assert r.returncode == 125 and why in r.stderr, (args, r.stderr)
    assert netd.client.get("/v1/containers", all=True) == []
    assert leaks(netd) == {}
    # A port a host process listens on is refused at start, naming it; nothing is left.
    listener = subprocess.Popen(["nsenter", f"--net={world.outer}", sys.executable, "-c",
                                 "import socket,time; s=socket.socket(); "
                                 "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                                 "s.bind(('0.0.0.0', 18085)); s.listen(); time.sleep(600)"])
    try:
        wait_for(lambda: "0.0.0.0:18085" in world.o("ss", "-ltn").stdout, 20, "the listener")
        r = netd.run("-d", "--name", "busyport", "-p", "18085:80", "minimal", "sleep", "60",
                     check=125)
        assert r.stderr.strip() == ('mcctl: container "busyport": port 0.0.0.0:18085/tcp is '
                                    'already in use on the host'), r.stderr
        assert netd.state("busyport")["status"] == "created"
        assert leaks(netd) == {}
    finally:
        listener.kill()
        listener.wait(10)
    netd.mcctl("rm", "busyport", check=0)


def test_names_on_a_user_network_from_the_first_instruction(netd, world):
    netd.nettools()
    netd.mcctl("network", "create", "appnet", check=0)
    a = cid_of(netd.run("-d", "--name", "alpha", "--network", "appnet", "minimal",
                        "httpd", "-f", "-p", "8080"))
    # The first instruction of a new container already has its address, route and names;
    # it reaches its peer by name (resolved by libc through /etc/hosts).
    r = netd.run("--rm", "--name", "beta", "--network", "appnet", "--network-alias", "db",
                 "--add-host", "extra.example:192.0.2.7", "--dns", "192.0.2.53", "nettools", "sh", "-c",
                 "cat /etc/resolv.conf; "
                 "ip -4 -o addr show eth0; ip route; cat /etc/hosts; cat /etc/hostname; "
                 "getent hosts db; " + HGET + f"hget {byname('alpha')} 8080 /etc/hostname")
    out = r.stdout
    assert re.search(r"eth0\s+inet 10\.78\.\d+\.\d+/24", out), out
    assert "default via 10.78." in out
    assert re.search(r"10\.78\.\d+\.\d+\tbeta db", out) and re.search(r"10\.78\.\d+\.\d+\talpha", out)
    assert "192.0.2.7\textra.example" in out
    assert re.findall(r"^nameserver .*$", out, re.M) == ["nameserver 192.0.2.53"]
    assert re.search(r"^10\.78\.\d+\.\d+\s+beta db$", out, re.M), out     # getent hosts db
    assert out.rstrip().endswith("alpha")
    # Peers come and go: alpha's /etc/hosts gains gamma while it runs, loses it after.
    g = cid_of(netd.run("-d", "--name", "gamma", "--network", "appnet", "--network-alias",
                        "cache", "nettools", "sleep", "600"))
    hosts = netd.mcctl("exec", "alpha", "cat", "/etc/hosts", check=0).stdout
    assert re.search(r"\tgamma cache\n", hosts), hosts
    assert netd.mcctl("exec", "gamma", "sh", "-c", HGET + f"hget {byname('alpha')} 8080 /etc/hostname",
                      check=0).stdout == "alpha\n"
    no_leaks(netd, {a, g})              # beta (run --rm) is released after its exit line
    netd.mcctl("stop", "-t", "0", "gamma", check=0)
    hosts = netd.mcctl("exec", "alpha", "cat", "/etc/hosts", check=0).stdout
    assert "gamma" not in hosts and "beta" not in hosts
    assert leaks(netd, {a}) == {}
    # An address in use is refused, naming who has it; a free one is taken as asked.
    ip_a = netd.state("alpha")["network_settings"]["ip"]
    r = netd.run("-d", "--name", "clash", "--network", "appnet", "--ip", ip_a, "minimal",
                 "sleep", "60", check=125)
    assert f'--ip {ip_a} is already used by container "alpha" on network "appnet"' in r.stderr
    netd.mcctl("rm", "clash", check=0)
    fixed = netd.run("--rm", "--network", "appnet", "--ip", "10.78.0.77", "minimal", "sh", "-c",
                     "ip -4 -o addr show eth0")
    assert "inet 10.78.0.77/24" in fixed.stdout
    no_leaks(netd, {a})
    # Used networks cannot go; unused ones can.
    r = netd.mcctl("network", "rm", "appnet", check=125)
    assert 'network "appnet" is used by 2 container(s): alpha, gamma' in r.stderr
    netd.mcctl("rm", "-f", "alpha", "gamma", check=0)
    assert netd.mcctl("network", "rm", "appnet", check=0).stdout == "appnet\n"
    assert leaks(netd) == {}


def test_minimal_reaches_peers_by_name(netd, world):
    # The minimal template's static busybox resolves a peer's name through /etc/hosts
    # (glibc's built-in files lookup) with ping, nc and wget alike. Only wget's -T option
    # crashes (a defect of Debian's busybox build, not of name lookup): bound the wait
    # with timeout instead.
    netd.mcctl("network", "create", "--subnet", "10.78.40.0/24", "namenet", check=0)
    p = cid_of(netd.run("-d", "--name", "peer", "--network", "namenet", "minimal",
                        "httpd", "-f", "-p", "8080"))
    wait_for(lambda: ":8080" in netd.mcctl("exec", "peer", "netstat", "-ltn").stdout, 10,
             "the peer's httpd to listen")
    r = netd.run("--rm", "--network", "namenet", "minimal", "sh", "-c",
                 "ping -c1 -W2 peer >/dev/null && echo ping ok; "
                 "echo hi | nc -w2 peer 8080 >/dev/null && echo nc ok; "
                 "timeout 10 wget -qO- http://peer:8080/etc/hostname")
    assert r.stdout == "ping ok\nnc ok\npeer\n", r
    # A rename reaches the peers: the new name resolves (in running peers' files too).
    w = cid_of(netd.run("-d", "--name", "watcher", "--network", "namenet", "minimal",
                        "sleep", "60"))
    netd.mcctl("rename", "peer", "server", check=0)
    r = netd.mcctl("exec", "watcher", "ping", "-c1", "-W2", "server")
    assert r.returncode == 0, (r.stderr, netd.mcctl("exec", "watcher", "cat", "/etc/hosts").stdout)
    netd.mcctl("rm", "-f", p, w, check=0)
    bridge = json.loads(netd.mcctl("network", "inspect", "namenet", check=0).stdout)[0]["bridge"]
    assert world.o("ip", "link", "show", bridge).returncode == 0
    netd.mcctl("network", "rm", "namenet", check=0)
    assert leaks(netd) == {}
    # The bridge goes with its network (with its address and its route to the subnet).
    assert world.o("ip", "link", "show", bridge, check=False).returncode != 0


def test_nat_to_the_internet_and_isolation_between_networks(netd, world):
    r = netd.run("--rm", "minimal", "sh", "-c", HGET + f"hget {INET_IP} 8000 /hello")
    assert r.stdout == "hello from the internet\n"
    with open(world.server_log) as f:
        # The internet saw the outer namespace's address (masquerade), never a 10.77 one.
        assert f"{OUTER_IP} - -" in f.read()
    netd.mcctl("network", "create", "red", check=0)
    netd.mcctl("network", "create", "blue", check=0)
    red = cid_of(netd.run("-d", "--name", "redweb", "--network", "red", "minimal",
                          "httpd", "-f", "-p", "8080"))
    ip = netd.state("redweb")["network_settings"]["ip"]
    get = HGET + f"hget {ip} 8080 /etc/hostname"
    same = netd.run("--rm", "--network", "red", "minimal", "sh", "-c", get, check=None)
    assert same.stdout == "redweb\n", same.stderr        # the control: reachable on its network
    other = netd.run("--rm", "--network", "blue", "minimal", "sh", "-c", get, check=None)
    assert other.stdout == "", other.stdout
    default = netd.run("--rm", "minimal", "sh", "-c", get, check=None)
    assert default.stdout == ""
    netd.mcctl("rm", "-f", red, check=0)
    no_leaks(netd)                      # the run --rm ones
    assert netd.mcctl("network", "prune", check=0).stdout.split() == ["blue", "red"]
    assert leaks(netd) == {}


def test_internal_network_has_no_way_out(netd, world):
    netd.mcctl("network", "create", "--internal", "vault", check=0)
    inspect = json.loads(netd.mcctl("network", "inspect", "vault", check=0).stdout)[0]
    assert inspect["internal"] is True
    keep = cid_of(netd.run("-d", "--name", "safe", "--network", "vault", "minimal",
                           "httpd", "-f", "-p", "8080"))
    netd.nettools()
    r = netd.run("--rm", "--network", "vault", "nettools", "sh", "-c",
                 HGET + f"hget {byname('safe')} 8080 /etc/hostname; ip route; "
                 f"hget {INET_IP} 8000 /hello; ping -c1 -W2 {INET_IP} && echo OUT-INTERNET; "
                 f"ping -c1 -W2 {OUTER_IP} && echo OUT-HOST",
                 check=None)
    assert r.stdout.startswith("safe\n"), r.stdout + r.stderr
    assert "default" not in r.stdout and "OUT-" not in r.stdout and "internet" not in r.stdout
    r = netd.run("-d", "--network", "vault", "-p", "18081:80", "minimal", "true", check=None)
    assert r.returncode == 125 and 'network "vault" is internal' in r.stderr
    netd.mcctl("rm", "-f", keep, check=0)
    no_leaks(netd)


def test_nothing_leaks_after_stop_kill_death_restart_policy(netd, world):
    c = cid_of(netd.run("-d", "--name", "svc", "-p", "18082:8080", "minimal",
                        "httpd", "-f", "-p", "8080"))
    assert leaks(netd, {c}) == {}
    netd.mcctl("stop", "-t", "1", "svc", check=0)
    assert leaks(netd) == {}
    netd.mcctl("start", "svc", check=0)
    wait_for(lambda: world.curl("http://127.0.0.1:18082/etc/hostname").stdout == "svc\n", 20,
             "svc again after start")
    netd.mcctl("kill", "svc", check=0)
    wait_for(lambda: netd.state("svc")["status"] == "stopped", 20, "svc killed")
    no_leaks(netd)
    # A container that dies by itself, and one a restart policy brings back.
    netd.run("--name", "dies", "minimal", "sh", "-c", "exit 3", check=3)
    no_leaks(netd)
    r = cid_of(netd.run("-d", "--name", "again", "--restart", "on-failure:2", "minimal", "sh", "-c",
                        "ip -4 -o addr show eth0 >> /tmp/seen; sleep 0.3; exit 1"))
    wait_for(lambda: netd.state("again")["status"] == "stopped"
             and netd.state("again")["restart_count"] == 2, 30, "two restarts")
    seen = netd.mcctl("start", "-a", "again", check=None)
    assert seen.returncode == 1
    no_leaks(netd)
    netd.mcctl("rm", "-f", "svc", "dies", r, check=0)
    assert leaks(netd) == {}


SLOW_PLUGIN = """#!/bin/sh
# A pass-through CNI plugin that takes its time on ADD: the daemon is killed meanwhile.
conf=$(cat)
if [ "$CNI_COMMAND" = ADD ]; then touch {mark}; sleep 3; fi
printf '%s' "$conf" | {python} -c 'import json,sys; c=json.load(sys.stdin); print(json.dumps(c.get("prevResult") or {{"cniVersion": c["cniVersion"]}}))'
"""


def test_daemon_sigkilled_mid_start_then_restarted_leaves_nothing(world, tmpbase):
    bindir = os.path.join(tmpbase, "cni-bin")
    os.makedirs(bindir)
    mark = os.path.join(tmpbase, "slow-started")
    with open(os.path.join(bindir, "slow"), "w") as f:
        f.write(SLOW_PLUGIN.format(mark=mark, python=sys.executable))
    os.chmod(os.path.join(bindir, "slow"), 0o755)
    d = NetDaemon(tmpbase, world, toml=f'cni_path = "/usr/lib/cni:{bindir}"\n')
    # An administrator's list: bridge, portmap and a plugin that is slow on ADD.
    with open(os.path.join(d.net_d, "50-slow.conflist"), "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": "slownet", "plugins": [
            {"type": "bridge", "bridge": "mcbr-slow", "isGateway": True, "ipMasq": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.78.200.0/24"}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "slow"}]}, f)
    d.start()
    try:
        survivor = cid_of(d.run("-d", "--name", "survivor", "-p", "18083:8080", "minimal",
                                "httpd", "-f", "-p", "8080"))
        proc = subprocess.Popen([sys.executable, "-m", "mcctl", "run", "-d", "--name", "halfway",
                                 "--network", "slownet", "-p", "18084:80", "minimal", "sleep", "60"],
                                cwd=REPO, env=dict(os.environ, MCD_SOCKET=d.socket),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: os.path.exists(mark), 30, "the slow plugin to run")
        # Mid-start: the veth, the lease and the port rules exist, the container does not.
        assert leaks(d, {survivor}), "the start was not caught half-way"
        d.kill9()
        proc.wait(30)
        time.sleep(3.5)       # the orphaned plugin finishes its ADD meanwhile
        d.start()
        assert d.state("halfway")["status"] == "created"
        assert leaks(d, {survivor}) == {}
        # The survivor kept running, reachable, through the daemon's death.
        wait_for(lambda: world.curl("http://127.0.0.1:18083/etc/hostname").stdout == "survivor\n",
                 10, "the survivor's published port")
        # A container that dies while the daemon is away is cleaned at the next start.
        d.stop()
        pid = json.load(open(os.path.join(d.root, "containers", survivor, "state.json")))["pid"]
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        d.start()
        assert d.state("survivor")["status"] == "stopped"
        assert leaks(d) == {}
        d.mcctl("rm", "-f", "halfway", "survivor", check=0)
    finally:
        left = d.cleanup()
    assert not left, f"left behind: {json.dumps(left)}\n{d.log()}"
    assert leaks(d) == {}


def test_restart_checks_a_container_with_published_ports_cleanly(netd, world):
    # The restore CHECKs every kept attachment: a container publishing a port must pass
    # (Debian's portmap 1.1.1 fails its CHECK on any IPv4-only container, which the CNI
    # caller knows and says why; an error line at every restart would teach people to
    # ignore the real ones).
    c = cid_of(netd.run("-d", "--name", "pub", "-p", "18086:8080", "minimal",
                        "httpd", "-f", "-p", "8080"))
    netd.stop()
    netd.start()
    errors = [ln for ln in netd.log().splitlines() if " ERROR " in ln]
    assert errors == []
    wait_for(lambda: world.curl("http://127.0.0.1:18086/etc/hostname").stdout == "pub\n", 20,
             "the published port after a restart")
    netd.mcctl("rm", "-f", c, check=0)
    assert leaks(netd) == {}


@pytest.mark.skipif(not (shutil.which("umoci") and shutil.which("skopeo")),
                    reason="umoci and skopeo build the test image")
def test_publish_all_maps_the_image_exposed_ports(netd, world, tmp_path):
    import imagefixtures as fx
    layout = fx.build_oci(str(tmp_path / "layout"), str(tmp_path / "work"))   # EXPOSE 8080/tcp
    netd.mcctl("image", "load", "-i", layout, check=0)
    iid = json.loads(netd.mcctl("images", "--format", "json", check=0).stdout)[0]["id"]
    c = cid_of(netd.run("-d", "--name", "pall", "-P", iid, "httpd -f -p 8080 -h /srv/app"))
    line = netd.mcctl("port", "pall", check=0).stdout.strip()
    m = re.fullmatch(r"8080/tcp -> 0\.0\.0\.0:(\d+)", line)
    assert m, line
    wait_for(lambda: "hello from" in world.curl(f"http://127.0.0.1:{m.group(1)}/hello.sh").stdout,
             20, "the -P port")
    netd.mcctl("rm", "-f", c, check=0)
    assert leaks(netd) == {}


def test_concurrent_starts_on_one_network_all_know_each_other(netd, world):
    netd.mcctl("network", "create", "crowd", check=0)
    names = [f"peer{i}" for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-m", "mcctl", "run", "-d", "--name", n,
                              "--network", "crowd", "minimal", "sleep", "600"],
                             cwd=REPO, env=dict(os.environ, MCD_SOCKET=netd.socket),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in names]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    ips = {n: netd.state(n)["network_settings"]["ip"] for n in names}
    assert len(set(ips.values())) == 4
    for n in names:
        hosts = netd.mcctl("exec", n, "cat", "/etc/hosts", check=0).stdout
        for other, ip in ips.items():
            assert re.search(rf"^{re.escape(ip)}\t{other}$", hosts, re.M), (n, hosts)
    netd.mcctl("rm", "-f", *names, check=0)
    assert leaks(netd) == {}


def test_server_timing_splits_the_network_phase(netd, world):
    """A start's Server-Timing header names where the network phase went: the record,
    the netns, each plugin's ADD (portmap only when a port is published), the hosts
    files; the parts fit inside the phase. (bench/network_bench.py reports them.)"""
    from conftest import raw_request
    for publish, plugins in (((), ("bridge", "firewall")),
                             (("-p", "18087:8080"), ("bridge", "portmap", "firewall"))):
        cid = cid_of(netd.mcctl("create", *publish, "minimal", "sleep", "30", check=0))
        out = raw_request(netd.socket, f"POST /v1/containers/{cid}/start HTTP/1.1\r\n"
                          f"Host: x\r\nContent-Length: 0\r\n\r\n".encode())
        head = out.split(b"\r\n\r\n", 1)[0].decode()
        assert head.startswith("HTTP/1.1 200"), out[:300]
        line = next(ln for ln in head.split("\r\n") if ln.lower().startswith("server-timing:"))
        parts = {k.strip(): float(v) for k, _, v in
                 (p.partition(";dur=") for p in line.split(":", 1)[1].split(","))}
        want = {"net-record", "net-netns", "net-names", *(f"net-add-{p}" for p in plugins)}
        assert want == {k for k in parts if k.startswith("net-")}, parts
        assert sum(v for k, v in parts.items() if k.startswith("net-")) <= parts["network"] + 0.01
        netd.mcctl("rm", "-f", cid, check=0)
        assert leaks(netd) == {}
