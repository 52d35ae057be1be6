"""mcd.docker: Docker request/response shapes, version negotiation, stream framing, and
the route table's answers that need no kernel (pure logic and a fake manager)."""

import json
import os
import socket
import struct
import threading

import pytest

from mcd.docker import MAX_API, MIN_API, streams
from mcd.docker import translate as tr
from mcd.errors import Conflict, InvalidArgument, NotFound, Unsupported
from mcwire.spec import ContainerSpec

# What docker CLI 28.2 sends for `docker run --rm -i minimal echo hi` (captured).
CLI_BODY = json.loads("""{"Hostname":"","Domainname":"","User":"","AttachStdin":true,
"AttachStdout":true,"AttachStderr":true,"Tty":false,"OpenStdin":true,"StdinOnce":true,
"Env":null,"Cmd":["echo","hi"],"Image":"minimal","Volumes":{},"WorkingDir":"",
"Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"",
"LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},
"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":true,"VolumeDriver":"",
"VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"",
"Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"",
"Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,
"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"",
"UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,
"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],
"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,
"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"",
"Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,
"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],
"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,
"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,
"Links":null,"Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"",
"EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"",
"GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}""")


def with_host(**host):
    body = json.loads(json.dumps(CLI_BODY))
    body["HostConfig"].update(host)
    return body


# ---------------------------------------------------------------- versions

@pytest.mark.parametrize("path,want", [
    ("/_ping", (None, "/_ping")),
    ("/v1.45/containers/json", ("1.45", "/containers/json")),
    (f"/v{MIN_API}/info", (MIN_API, "/info")),
    ("/v1.43/exec/abc/json", ("1.43", "/exec/abc/json")),
])
def test_version_prefix_is_optional(path, want):
    assert tr.split_version(path) == want


@pytest.mark.parametrize("path,needle", [("/v1.50/info", "too new"), ("/v1.24/info", "too old")])
def test_versions_outside_the_range_are_refused_like_dockerd(path, needle):
    with pytest.raises(InvalidArgument) as e:
        tr.split_version(path)
    assert needle in str(e.value) and (MAX_API in str(e.value) or MIN_API in str(e.value))


# ---------------------------------------------------------------- create

def test_the_cli_default_body_maps_onto_a_valid_spec():
    spec, auto_remove = tr.create_to_spec(CLI_BODY, "web")
    assert auto_remove is True
    assert spec["process"]["args"] == ["echo", "hi"] and spec["process"]["terminal"] is False
    assert spec["root"] == {"template": "minimal"} and spec["name"] == "web"
    assert spec["restart_policy"] == "no"
    ContainerSpec.from_dict(spec)        # the manager's own validation accepts it


def test_fields_map_onto_the_spec():
    body = with_host(Memory=64 << 20, MemorySwap=128 << 20, NanoCpus=500_000_000, CpuShares=512,
                     CpusetCpus="0", PidsLimit=50, Binds=["/tmp:/data:ro"],
                     Tmpfs={"/run": "size=64m"}, ReadonlyRootfs=True, CapDrop=["NET_RAW"],
                     SecurityOpt=["no-new-privileges:true"],
                     RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 3},
                     AutoRemove=False, NetworkMode="host")
    body.update(Entrypoint=["/bin/sh", "-c"], Cmd=["echo $A"], Env=["A=1"], WorkingDir="/tmp",
                User="1000:1000", Tty=True, Labels={"k": "v"}, StopSignal="INT", StopTimeout=3)
    body["HostConfig"]["ConsoleSize"] = [24, 80]
    spec, auto_remove = tr.create_to_spec(body, None)
    s = ContainerSpec.from_dict(dict(spec, name="x"))
    assert s.process.args == ["/bin/sh", "-c", "echo $A"]
    assert "A=1" in s.process.env and any(e.startswith("PATH=") for e in s.process.env)
    assert s.process.cwd == "/tmp" and (s.process.user.uid, s.process.user.gid) == (1000, 1000)
    assert s.process.terminal and s.process.console_size == [24, 80]
    assert "CAP_NET_RAW" not in s.process.capabilities
    r = s.linux.resources
    assert (r.memory, r.memory_swap, r.cpu_shares, r.cpuset_cpus, r.pids_limit) == \
        (64 << 20, 128 << 20, 512, "0", 50)
    assert (r.cpu_quota, r.cpu_period) == (50000, 100000)
    assert [(m.type, m.destination) for m in s.mounts] == [("bind", "/data"), ("tmpfs", "/run")]
    assert s.root.readonly and s.restart_policy == "on-failure:3"
    assert "network" not in s.linux.namespaces
    assert s.labels == {"k": "v"} and s.stop_signal == "SIGINT" and s.stop_timeout == 3
    assert auto_remove is False


@pytest.mark.parametrize("host,needle", [
    ({"Privileged": True}, "HostConfig.Privileged"),
    ({"Devices": [{"PathOnHost": "/dev/kvm"}]}, "HostConfig.Devices"),
    ({"PortBindings": {"80/tcp": [{"HostPort": "8080-8090"}]}}, "host port ranges"),
    ({"NetworkMode": "container:web"}, "NetworkMode"),
    ({"Links": ["db:db"]}, "HostConfig.Links"),
    ({"DnsSearch": ["example.org"]}, "HostConfig.DnsSearch"),
    ({"LogConfig": {"Type": "syslog", "Config": {}}}, "LogConfig"),
    ({"SecurityOpt": ["apparmor=x"]}, "SecurityOpt"),
    ({"Binds": ["myvolume:/data"]}, "named volumes"),
    ({"MemorySwappiness": 10}, "MemorySwappiness"),
    ({"RestartPolicy": {"Name": "always"}}, "AutoRemove"),
])
def test_what_mcd_cannot_honour_is_refused_naming_the_field(host, needle):
    with pytest.raises(InvalidArgument) as e:
        tr.create_to_spec(with_host(**host), None)
    assert needle in str(e.value)


def test_unknown_config_fields_and_missing_command_are_refused():
    with pytest.raises(InvalidArgument, match="Healthcheck"):
        tr.create_to_spec(dict(CLI_BODY, Healthcheck={"Test": ["CMD", "true"]}), None)
    with pytest.raises(InvalidArgument, match="no command"):
        tr.create_to_spec(dict(CLI_BODY, Cmd=None), None)


@pytest.mark.parametrize("image,template", [
    ("minimal", "minimal"), ("minimal:latest", "minimal"),
    ("docker.io/library/minimal:latest", "minimal"), ("library/alpine", "alpine"),
    ("localhost:5000/x", "localhost:5000/x"),
])
def test_image_names_resolve_to_templates(image, template):
    assert tr.image_to_template(image) == template


@pytest.mark.parametrize("image", ["minimal:3.19", "minimal@sha256:abcd"])
def test_tags_and_digests_name_no_template(image):
    with pytest.raises(NotFound, match="No such image"):
        tr.image_to_template(image)


# ---------------------------------------------------------------- views

SUMMARY = {"id": "a" * 64, "name": "web", "network": "host", "ports": [], "template": "minimal", "command": "sleep 9",
           "status": "running", "exit_code": None, "created_at": "2026-01-01T00:00:00.000000Z",
           "started_at": "2026-01-01T00:00:01.000000Z", "finished_at": None, "restart_count": 0,
           "pid": 42, "oom_killed": False}


def test_list_entry_and_filters():
    spec = {"labels": {"tier": "front"}, "linux": {"namespaces": ["pid", "mount"]}}
    e = tr.list_entry(SUMMARY, spec)
    assert e["Names"] == ["/web"] and e["State"] == "running" and e["Status"].startswith("Up ")
    assert e["HostConfig"] == {"NetworkMode": "host"} and e["Created"] == 1767225600
    assert tr.matches_filters(SUMMARY, spec, {"status": ["running"], "label": ["tier=front"]})
    assert tr.matches_filters(SUMMARY, spec, {"name": ["we"], "id": ["aaa"], "label": ["tier"]})
    assert not tr.matches_filters(SUMMARY, spec, {"status": ["exited"]})
    assert not tr.matches_filters(SUMMARY, spec, {"label": ["tier=back"]})
    with pytest.raises(InvalidArgument, match="invalid filter"):
        tr.matches_filters(SUMMARY, spec, {"ancestor": ["x"]})
    assert tr.parse_filters('{"status":{"running":true}}') == {"status": ["running"]}
    stopped = dict(SUMMARY, status="stopped", exit_code=3, finished_at="2026-01-01T00:00:02Z")
    assert tr.status_text(stopped, now=1767225602 + 120) == "Exited (3) 2 minutes ago"


def test_inspect_shape_has_what_clients_read():
    view = dict(SUMMARY, spec={"process": {"args": ["sleep", "9"], "terminal": True,
                                            "env": ["A=1"], "cwd": "/"},
                               "hostname": "web", "restart_policy": "on-failure:2",
                               "linux": {"namespaces": ["pid", "mount", "network"],
                                         "resources": {"memory": 1 << 26}}},
                state={}, auto_remove=True, dir="/var/lib/mcd/containers/x")
    d = tr.inspect(view)
    assert d["Name"] == "/web" and d["Path"] == "sleep" and d["Args"] == ["9"]
    assert d["State"]["Running"] and d["State"]["Pid"] == 42
    assert d["State"]["FinishedAt"] == tr.ZERO_TIME
    assert d["Config"]["Tty"] is True and d["Config"]["Image"] == "minimal"
    assert d["HostConfig"]["LogConfig"]["Type"] == "json-file"     # docker-py reads it
    assert d["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert d["HostConfig"]["AutoRemove"] and d["HostConfig"]["Memory"] == 1 << 26


def test_stats_shape_gives_the_cli_its_cpu_and_memory():
    cur = {"id": "a", "name": "web", "status": "running", "cpu_usage_ns": 2_000_000_000,
           "memory_current": 10 << 20, "memory_limit": 64 << 20, "pids_current": 3}
    prev = dict(cur, cpu_usage_ns=1_000_000_000)
    s = tr.stats(cur, prev, 2, "r", "p", 20_000_000_000, 18_000_000_000)
    cpu_delta = s["cpu_stats"]["cpu_usage"]["total_usage"] - s["precpu_stats"]["cpu_usage"]["total_usage"]
    sys_delta = s["cpu_stats"]["system_cpu_usage"] - s["precpu_stats"]["system_cpu_usage"]
    assert cpu_delta / sys_delta * s["cpu_stats"]["online_cpus"] * 100 == 100.0
    assert s["memory_stats"]["usage"] == 10 << 20 and s["memory_stats"]["limit"] == 64 << 20
    assert s["pids_stats"]["current"] == 3 and s["name"] == "/web"


def test_events_translate_to_docker_actions():
    m = tr.event({"type": "died", "id": "abc", "name": "web", "exit_code": 3,
                  "time": "2026-01-01T00:00:00.500000Z"})
    assert (m["Type"], m["Action"], m["Actor"]["Attributes"]) == \
        ("container", "die", {"name": "web", "exitCode": "3"})
    assert m["timeNano"] == 1767225600_500000000
    assert tr.event({"type": "no-such", "id": "x", "name": "y"}) is None


def test_error_statuses_are_dockerds():
    assert tr.error_status(Unsupported("x")) == 400
    assert tr.error_status(Conflict("x")) == 409 and tr.error_status(NotFound("x")) == 404


@pytest.mark.parametrize("sig,want", [(None, "SIGKILL"), ("INT", "SIGINT"), ("SIGTERM", "SIGTERM"),
                                      ("9", 9), ("kill", "SIGKILL")])
def test_signals(sig, want):
    assert tr.parse_signal(sig) == want


# ---------------------------------------------------------------- streams

def test_frame_is_docker_stdcopy():
    assert streams.frame(streams.STDERR, b"hi") == b"\x02\x00\x00\x00\x00\x00\x00\x02hi"
    assert struct.unpack(">BxxxL", streams.frame(1, b"x" * 70000)[:8]) == (1, 70000)


def test_detach_keys_parse_and_are_found_across_chunks():
    assert streams.parse_detach_keys(None) == b"\x10\x11"
    assert streams.parse_detach_keys("ctrl-a,x") == b"\x01x"
    with pytest.raises(InvalidArgument):
        streams.parse_detach_keys("ctrl-1")
    s = streams.DetachScanner(b"\x10\x11")
    assert s.feed(b"ab\x10") == (b"ab", False)     # held back: may start the sequence
    assert s.feed(b"c") == (b"\x10c", False)       # it did not
    assert s.feed(b"x\x10") == (b"x", False)
    assert s.feed(b"\x11rest") == (b"", True)


def test_session_frames_output_and_closes_stdin_on_half_close():
    """Pipes stand in for the process (no kernel needed beyond pipes and a socketpair)."""
    sess = streams.Session(tty=False, stdin=True, stdout=True, stderr=True)
    (proc_in, proc_out, proc_err), to_caller = sess.child_fds()
    assert not to_caller
    ours, theirs = socket.socketpair()
    sess.ready()
    t = threading.Thread(target=sess.run, args=(ours, b"lef"), daemon=True)
    t.start()
    theirs.sendall(b"tover")
    theirs.shutdown(socket.SHUT_WR)                 # the client's CloseWrite
    got = b""
    while True:
        chunk = os.read(proc_in, 100)
        if not chunk:
            break
        got += chunk
    assert got == b"leftover"                       # bytes read before the hijack come first
    os.write(proc_out, b"out")
    os.write(proc_err, b"err")
    for fd in (proc_in, proc_out, proc_err):
        os.close(fd)
    data = b""
    theirs.settimeout(10)
    while True:
        chunk = theirs.recv(100)
        if not chunk:
            break
        data += chunk
    t.join(10)
    frames = {}
    while data:
        kind, n = struct.unpack(">BxxxL", data[:8])
        frames[kind] = frames.get(kind, b"") + data[8:8 + n]
        data = data[8 + n:]
    assert frames == {1: b"out", 2: b"err"}
    theirs.close()


def test_networking_maps_onto_the_spec_and_back():
    body = with_host(NetworkMode="mynet", PortBindings={"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                                                        "53/udp": [{"HostPort": ""}]},
                     PublishAllPorts=True, Dns=["10.0.0.2"], ExtraHosts=["db:10.0.0.9"])
    body["NetworkingConfig"] = {"EndpointsConfig": {"mynet": {"Aliases": ["www"],
                                                              "IPAMConfig": {"IPv4Address": "10.77.0.9"}}}}
    spec, _ = tr.create_to_spec(body, "x")
    s = ContainerSpec.from_dict(spec)
    nw = s.networking
    assert nw.mode == "mynet" and nw.publish_all and nw.dns == ["10.0.0.2"]
    assert [(p.container_port, p.host_port, p.protocol) for p in nw.ports] == [(80, 8080, "tcp"), (53, 0, "udp")]
    assert nw.aliases == ["www"] and nw.ip == "10.77.0.9"
    assert nw.extra_hosts == [{"name": "db", "ip": "10.0.0.9"}]
    assert tr.create_to_spec(CLI_BODY, None)[0]["networking"] == {"mode": ""}   # the default
    with pytest.raises(InvalidArgument, match="connect is not supported"):
        b = with_host(NetworkMode="a")
        b["NetworkingConfig"] = {"EndpointsConfig": {"b": {"Aliases": ["x"]}}}
        tr.create_to_spec(b, None)
    view = {"spec": spec, "network_settings": {
        "network": "mynet", "ip": "10.77.0.9", "gateway": "10.77.0.1", "mac": "aa", "netns": "/n",
        "prefix_len": 16, "aliases": ["www"], "ports": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp",
                                       "hostIP": "0.0.0.0"}]}}
    ns = tr.network_settings(view)
    assert ns["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
    assert ns["Networks"]["mynet"]["IPAddress"] == "10.77.0.9" and ns["IPAddress"] == "10.77.0.9"
    assert ns["Networks"]["mynet"]["IPPrefixLen"] == ns["IPPrefixLen"] == 16


def test_an_image_gets_only_what_the_request_set_and_the_daemon_fills_the_rest():
    body = dict(CLI_BODY, Image="busybox:1.36", Cmd=None, Env=["A=1"], Entrypoint=None)
    spec, _ = tr.create_to_spec(body, None, image=True)
    assert spec["root"] == {"image": "busybox:1.36"}
    assert spec["process"] == {"args": [], "terminal": False, "env": ["A=1"]}
    spec, _ = tr.create_to_spec(dict(body, Entrypoint=["/bin/echo"], Cmd=["x"]), None, image=True)
    assert spec["process"]["entrypoint"] == ["/bin/echo"] and spec["process"]["args"] == ["x"]


def test_errors_the_server_answers_itself_are_in_dockers_shape_on_the_docker_socket(tmp_path):
    """A refused peer (the SO_PEERCRED rule) and an unreadable request, on a real socket."""
    from mcd.docker.api import DockerApi, server_error_body
    from mcd.httpserver import HTTPServer, bind_unix
    path = str(tmp_path / "d.sock")
    srv = HTTPServer(bind_unix(path), DockerApi(manager=None), authorize=lambda peer: False,
                     error_body=server_error_body, name="docker-test")
    srv.start()
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(path)     # the server answers a refused peer at once, before any request
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
    finally:
        srv.shutdown()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403")
    assert set(json.loads(body)) == {"message"} and "may not use this socket" in json.loads(body)["message"]


def test_routes_answer_without_a_manager_where_none_is_needed():
    from mcd.docker.api import DockerApi
    from mcd.httpserver import Request
    api = DockerApi(manager=None)

    def call(method, path):
        return api(Request(method=method, target=path, path=path, query={}, headers={}, body=b""))

    r = call("HEAD", "/_ping")
    assert r.status == 200 and r.headers["API-Version"] == MAX_API
    r = call("GET", "/v1.44/version")
    assert json.loads(r.body)["MinAPIVersion"] == MIN_API
    r = call("GET", "/v1.45/plugins")
    assert r.status == 404 and set(json.loads(r.body)) == {"message"}
    r = call("PUT", "/containers/create")
    assert r.status == 405
    # Under /images, DELETE's name takes any path: that is no reason to answer 405 for
    # what is not served at all (docker search, push): 404, as docs/api.md says.
    for method, path in (("GET", "/v1.45/images/search"), ("POST", "/images/x/push")):
        r = call(method, path)
        assert r.status == 404 and "page not found" in json.loads(r.body)["message"]
    r = call("GET", "/v1.40/version")
    assert r.status == 400 and "too old" in json.loads(r.body)["message"]


def test_a_streamed_body_reads_chunked_and_sized_uploads_and_other_routes_keep_the_limit(tmp_path):
    from mcd.httpserver import HTTPServer, Response, bind_unix
    got = []

    def handler(req):
        if req.body_stream is None:
            return Response(200, body=b"plain:%d" % len(req.body), content_type="text/plain")
        data = b""
        while True:
            chunk = req.body_stream.read(7)
            if not chunk:
                break
            data += chunk
        got.append(data)
        return Response(200, body=b"streamed:%d" % len(data), content_type="text/plain")

    path = str(tmp_path / "s.sock")
    srv = HTTPServer(bind_unix(path), handler, max_body=16, name="stream-test",
                     stream_body=lambda method, p: p == "/images/load")
    srv.start()

    def send(raw: bytes) -> bytes:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(path)
        s.sendall(raw)
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        s.close()
        return out

    try:
        r = send(b"POST /images/load HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n1a;ext=1\r\n" + b"z" * 26 + b"\r\n0\r\nTrailer: t\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 200") and r.endswith(b"streamed:31")
        assert got[-1] == b"hello" + b"z" * 26
        r = send(b"POST /images/load HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n" + b"y" * 40)
        assert r.endswith(b"streamed:40")
        r = send(b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n" + b"y" * 40)
        assert r.startswith(b"HTTP/1.1 413")
        r = send(b"POST /other HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 411")
    finally:
        srv.shutdown()


def test_publish_all_publishes_the_requests_exposed_ports_too():
    # docker run --expose 90 -p 8080:80 -P: 80 is bound as asked, 90 gets a free host port
    # (the daemon adds the image's ExposedPorts); without -P, ExposedPorts publishes nothing.
    body = dict(CLI_BODY, ExposedPorts={"90/tcp": {}, "80/tcp": {}, "53/udp": {}})
    body["HostConfig"] = dict(CLI_BODY["HostConfig"], PublishAllPorts=True,
                              PortBindings={"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
    ports = tr.create_to_spec(body, None)[0]["networking"]["ports"]
    assert sorted((p["container_port"], p["protocol"], p["host_port"]) for p in ports) == [
        (53, "udp", 0), (80, "tcp", 8080), (90, "tcp", 0)]
    body["HostConfig"] = dict(body["HostConfig"], PublishAllPorts=False)
    assert [p["container_port"] for p in tr.create_to_spec(body, None)[0]["networking"]["ports"]] == [80]
    body["HostConfig"] = dict(body["HostConfig"], PublishAllPorts=True)
    with pytest.raises(InvalidArgument, match="ExposedPorts: '9x/tcp'"):
        tr.create_to_spec(dict(body, ExposedPorts={"9x/tcp": {}}), None)


def test_failed_exec_messages_carry_the_words_the_docker_cli_reads_its_exit_status_from():
    import errno

    from mcd.errors import setup_error
    cases = {errno.ENOENT: 'exec "/x": executable file not found',        # CLI: 127
             errno.EACCES: 'exec "/x": permission denied',                 # 126
             errno.EISDIR: 'exec "/x": is a directory',                    # 126
             errno.ENOEXEC: 'exec "/x": exec format error'}                # 125, as dockerd
    for err_no, text in cases.items():
        assert tr.error_message(setup_error("exec", err_no, "/x", "c")) == f"container c: {text}"
    assert tr.error_message(InvalidArgument("bad")) == "bad"
