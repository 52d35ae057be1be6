"""The Docker Engine API socket (mcd --docker-socket) driven by docker-py, the Docker SDK
for Python, against a real private mcd: the client decides what counts as success, so
these are the shapes and statuses dockerd's clients rely on."""

from __future__ import annotations

import json
import os
import socket
import shutil
import threading
import time

import docker
import pytest
from conftest import Daemon, wait_for  # noqa: E402



class DockerDaemon(Daemon):
    def argv(self):
        return super().argv() + ["--docker-socket", self.docker_socket]

    @property
    def docker_socket(self):
        return os.path.join(self.base, "docker.sock")


@pytest.fixture
def dd(tmpbase):
    d = DockerDaemon(tmpbase).start()
    client = docker.DockerClient(base_url=f"unix://{d.docker_socket}", timeout=60)
    d.docker = client
    yield d
    client.close()
    leftovers = d.cleanup()
    assert not leftovers, f"left behind: {json.dumps(leftovers)}\n{d.log()}"


def raw(path: str, request: bytes) -> tuple[str, dict, bytes]:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(path)
    s.sendall(request)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return lines[0], headers, body


def test_ping_version_negotiation_and_docker_errors(dd):
    status, headers, body = raw(dd.docker_socket, b"HEAD /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert status.startswith("HTTP/1.1 200") and body == b""
    assert headers["api-version"] == "1.45" and headers["ostype"] == "linux"
    assert headers["docker-experimental"] == "false"
    v = dd.docker.version()
    assert (v["ApiVersion"], v["MinAPIVersion"], v["Os"]) == ("1.45", "1.41", "linux")
    assert dd.docker.api.api_version == "1.45"
    for path in (b"/version", b"/v1.41/version", b"/v1.45/version"):
        status, _h, body = raw(dd.docker_socket, b"GET " + path + b" HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        assert status.startswith("HTTP/1.1 200"), path
    status, _h, body = raw(dd.docker_socket, b"GET /v1.99/info HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert status.startswith("HTTP/1.1 400") and b"too new" in json.loads(body)["message"].encode()
    status, _h, body = raw(dd.docker_socket, b"GET /v1.45/swarm HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert status.startswith("HTTP/1.1 404") and "page not found" in json.loads(body)["message"]
    # The mcd API is not served here, and this API is not served on mcd's socket.
    status, _h, _b = raw(dd.docker_socket, b"GET /v1/containers HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert status.startswith("HTTP/1.1 404")


def test_run_attached_and_exit_codes(dd):
    assert dd.docker.containers.run("minimal", ["sh", "-c", "echo hello; echo e >&2"],
                                    remove=True) == b"hello\n"
    with pytest.raises(docker.errors.ContainerError) as e:
        dd.docker.containers.run("minimal", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert e.value.exit_status == 3 and b"bad" in e.value.stderr
    assert dd.docker.containers.list(all=True) == []


def test_detached_logs_exec_stats_kill_wait_remove(dd):
    c = dd.docker.containers.run(
        "minimal", ["sh", "-c", "for i in 1 2 3; do echo l$i; sleep 0.1; done; exec sleep 1000"],
        detach=True, name="py1", labels={"app": "t"}, mem_limit="64m")
    c.reload()
    assert c.status == "running" and c.name == "py1" and c.labels == {"app": "t"}
    assert c.attrs["HostConfig"]["Memory"] == 64 << 20
    lines = []
    for line in c.logs(stream=True, follow=True):
        lines.append(line)
        if b"l3" in line:
            break
    assert b"".join(lines) == b"l1\nl2\nl3\n"
    assert c.exec_run(["sh", "-c", "echo ex; exit 2"]) == (2, b"ex\n")
    assert c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True) == (0, (b"o\n", b"e\n"))
    s = c.stats(stream=False)
    assert s["memory_stats"]["usage"] > 0 and s["memory_stats"]["limit"] == 64 << 20
    assert s["cpu_stats"]["cpu_usage"]["total_usage"] > 0 and s["pids_stats"]["current"] >= 1
    top = c.top()
    assert "PID" in top["Titles"] and any("sleep" in p[-1] for p in top["Processes"])
    assert [x.name for x in dd.docker.containers.list(filters={"label": "app=t"})] == ["py1"]
    assert dd.docker.containers.list(filters={"status": "exited"}) == []
    c.kill()
    assert c.wait(timeout=30) == {"StatusCode": 137, "Error": None}
    c.reload()
    assert c.status == "exited"
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        dd.docker.containers.get("py1")


def test_events_while_a_container_runs(dd):
    seen = []
    events = dd.docker.events(decode=True)

    def read():
        for ev in events:
            seen.append((ev["Type"], ev["Action"], ev["Actor"]["Attributes"].get("name")))
            if ev["Action"] == "destroy":
                return

    t = threading.Thread(target=read, daemon=True)
    t.start()
    dd.docker.containers.run("minimal", ["true"], name="evt", remove=True)
    t.join(30)
    events.close()
    actions = [a for typ, a, name in seen if name == "evt" and typ == "container"]
    assert actions[:3] == ["create", "start", "die"] and actions[-1] == "destroy", seen


def test_images_are_templates_and_errors_map_like_dockerds(dd):
    assert [i.tags for i in dd.docker.images.list()] == [["minimal:latest"]]
    assert dd.docker.images.get("minimal").attrs["Os"] == "linux"
    with pytest.raises(docker.errors.ImageNotFound):
        dd.docker.containers.run("no-such-image", ["true"])
    with pytest.raises(docker.errors.APIError) as e:
        dd.docker.containers.run("minimal", ["true"], privileged=True)
    assert e.value.status_code == 400 and "Privileged" in str(e.value)
    with pytest.raises(docker.errors.NotFound):
        dd.docker.containers.get("nope")
    c = dd.docker.containers.create("minimal", ["true"], name="dup")
    with pytest.raises(docker.errors.APIError) as e:
        dd.docker.containers.create("minimal", ["true"], name="dup")
    assert e.value.status_code == 409
    with pytest.raises(docker.errors.APIError) as e:
        c.exec_run(["true"])
    assert e.value.status_code == 409 and "not running" in str(e.value)
    c.remove()
    assert dd.docker.containers.list(all=True) == []


def test_docker_socket_has_the_main_sockets_mode_and_goes_away_with_the_daemon(dd):
    st = os.stat(dd.docker_socket)
    assert oct(st.st_mode & 0o777) in ("0o660", "0o600")
    assert oct(st.st_mode & 0o777) == oct(os.stat(dd.socket).st_mode & 0o777)
    dd.stop()
    wait_for(lambda: not os.path.exists(dd.docker_socket), 10, "the docker socket to be removed")


@pytest.mark.skipif(not shutil.which("umoci"), reason="umoci builds the test image")
def test_a_loaded_image_runs_with_its_config_and_is_listed_tagged_and_removed(dd, tmp_path):
    import imagefixtures as fx
    layout = fx.build_oci(str(tmp_path / "layout"), str(tmp_path / "work"))
    r = dd.mcctl("image", "load", "-i", layout, check=0)
    image_id = r.stdout.split()[-1]
    listed = {i.id: i.tags for i in dd.docker.images.list()}
    assert listed[image_id] == [] and ["minimal:latest"] in listed.values(), listed
    img = dd.docker.images.get(image_id)
    assert img.id == image_id and img.attrs["Config"]["WorkingDir"] == "/srv/app"
    assert img.tag("three", "layers") is True      # POST /images/{id}/tag
    tag = "three:layers"
    assert dd.docker.images.get(tag).id == image_id
    # The image's Entrypoint, Cmd, Env, WorkingDir and User apply, as dockerd applies them.
    out = dd.docker.containers.run(tag, remove=True)
    assert out == b"default cmd\n1000\n/srv/app\n"
    out = dd.docker.containers.run(tag, ["echo $GREETING"], environment={"X": "1"}, remove=True)
    assert out == b"image\n"
    c = dd.docker.containers.create(tag, ["true"], name="uses")
    assert c.attrs["Image"] == image_id
    assert img.tag("mine", "v1") is True
    assert dd.docker.images.get("mine:v1").id == image_id
    with pytest.raises(docker.errors.APIError) as e:
        dd.docker.images.remove(image_id)     # two tags, and a container uses it
    assert e.value.status_code == 409
    dd.docker.images.remove("mine:v1")
    c.remove()
    dd.docker.images.remove(tag)
    with pytest.raises(docker.errors.ImageNotFound):
        dd.docker.images.get(image_id)


def test_wait_conditions_lifecycle_verbs_logs_options_exec_detach_attach_and_prune(dd):
    api = dd.docker.api
    # wait next-exit registered before the start; removed for an auto-remove container.
    # As the docker CLI does: the wait's response head arrives before the start is sent.
    c = api.create_container("minimal", ["sh", "-c", "exit 4"])["Id"]
    w = socket.socket(socket.AF_UNIX)
    w.settimeout(30)
    w.connect(dd.docker_socket)
    w.sendall(f"POST /v1.45/containers/{c}/wait?condition=next-exit HTTP/1.1\r\nHost: d\r\n"
              "Content-Length: 0\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += w.recv(1)
    assert head.startswith(b"HTTP/1.1 200")
    api.start(c)
    body = b""
    while not body.endswith(b"\r\n0\r\n\r\n"):      # the chunked body's end
        body += w.recv(4096)
    w.close()
    assert json.loads(body.split(b"\r\n")[1]) == {"StatusCode": 4, "Error": None}
    assert api.wait(c, condition="not-running", timeout=10)["StatusCode"] == 4   # at once
    r = api.create_container("minimal", ["sh", "-c", "exit 5"],
                             host_config=api.create_host_config(auto_remove=True))["Id"]
    got2 = {}
    t = threading.Thread(target=lambda: got2.update(api.wait(r, condition="removed", timeout=30)))
    t.start()
    api.start(r)
    t.join(30)
    assert got2["StatusCode"] == 5
    wait_for(lambda: r not in [x["Id"] for x in api.containers(all=True)], 10, "auto-remove")

    # pause / unpause / rename / update / restart
    s = dd.docker.containers.run("minimal", ["sh", "-c", "echo one; sleep 0.2; echo two >&2; exec sleep 1000"],
                                 detach=True, name="verbs")
    wait_for(lambda: b"two" in s.logs(), 10, "both lines")
    s.pause()
    s.reload()
    assert s.status == "paused"
    with pytest.raises(docker.errors.APIError) as e:
        s.exec_run(["true"])
    assert e.value.status_code == 409 and "paused" in str(e.value)
    s.unpause()
    s.rename("verbs2")
    s.reload()
    assert s.name == "verbs2"
    s.update(mem_limit="32m", memswap_limit="64m")
    s.reload()
    assert s.attrs["HostConfig"]["Memory"] == 32 << 20
    with pytest.raises(docker.errors.APIError) as e:
        s.update(blkio_weight=100)
    assert e.value.status_code == 400 and "BlkioWeight" in str(e.value)
    # logs: streams, tail, timestamps, since/until
    assert s.logs(stdout=True, stderr=False) == b"one\n"
    assert s.logs(stdout=False, stderr=True) == b"two\n"
    assert s.logs(tail=1) == b"two\n"
    ts = s.logs(timestamps=True).decode().splitlines()
    assert ts[0].endswith(" one") and ts[0][:4].isdigit() and "T" in ts[0].split()[0]
    assert s.logs(since=int(time.time()) + 60) == b""
    # exec detached, then its record
    eid = api.exec_create(s.id, ["sh", "-c", "exit 6"])["Id"]
    api.exec_start(eid, detach=True)
    wait_for(lambda: api.exec_inspect(eid)["Running"] is False, 10, "exec to end")
    assert api.exec_inspect(eid)["ExitCode"] == 6
    # attach to the running container: its output from now on
    eid = api.exec_create(s.id, ["sh", "-c", "sleep 1; echo later > /proc/1/fd/1"])["Id"]
    stream = api.attach(s.id, stream=True, logs=False, stdout=True, stderr=True)
    api.exec_start(eid, detach=True)
    first = next(iter(stream))
    assert first == b"later\n"
    stream.close()
    # stats: streamed samples carry precpu from the previous one
    gen = api.stats(s.id, stream=True, decode=True)
    a, b = next(gen), next(gen)
    assert b["precpu_stats"]["cpu_usage"]["total_usage"] == a["cpu_stats"]["cpu_usage"]["total_usage"]
    gen.close()
    s.restart(timeout=0)
    s.reload()
    assert s.status == "running"
    info = dd.docker.info()
    assert info["ContainersRunning"] == 1 and info["OSType"] == "linux"
    df = dd.docker.df()
    assert len(df["Containers"]) == 2 and df["Images"]
    s.kill()
    s.wait(timeout=30)
    pruned = dd.docker.containers.prune()
    assert sorted(pruned["ContainersDeleted"]) == sorted([c, s.id])
    assert dd.docker.containers.list(all=True) == []
    since = int(time.time()) - 60
    history = [e["Action"] for e in dd.docker.events(since=since, until=int(time.time()) + 1,
                                                      decode=True, filters={"container": c})]
    assert history[:3] == ["create", "start", "die"] and history[-1] == "destroy", history


@pytest.mark.skipif(not all(shutil.which(t) for t in ("umoci", "skopeo", "docker-registry")),
                    reason="umoci, skopeo and docker-registry make the test registry")
def test_pull_from_a_registry_named_in_the_reference_then_run(dd, tmp_path):
    """Debian's docker-registry on 127.0.0.1 (imagefixtures.LocalRegistry); a Docker Hub
    short name is not pulled at all, so nothing leaves the machine."""
    import imagefixtures as fx
    layout = fx.build_oci(str(tmp_path / "layout"), str(tmp_path / "work"))
    reg = fx.LocalRegistry(str(tmp_path / "registry")).start()
    try:
        reg.push(f"oci:{layout}:t", "demo/three:v1")
        ref = f"{reg.host}/demo/three"
        lines = list(dd.docker.api.pull(ref, tag="v1", stream=True, decode=True))
        assert lines[-1]["status"] == f"Status: Downloaded newer image for {ref}:v1", lines
        assert any(m.get("status") == "Pull complete" for m in lines)
        assert dd.docker.containers.run(f"{ref}:v1", ["cat", "/etc/new"], entrypoint=[],
                                        user="0", remove=True) == b"added in layer 2\n"
        # docker-py's run pulls a missing image itself, after create's 404
        reg.push(f"oci:{layout}:t", "auto/pull:1")
        out = dd.docker.containers.run(f"{reg.host}/auto/pull:1", ["true"], entrypoint=[],
                                       user="0", remove=True)
        assert out == b""
        for hub in ("alpine", "docker.io/library/alpine"):
            with pytest.raises(docker.errors.NotFound) as e:
                dd.docker.images.pull(hub, tag="3.19")
            assert "not from Docker Hub" in str(e.value)
        with pytest.raises(docker.errors.APIError) as e:
            dd.docker.images.pull(f"{reg.host}/demo/absent", tag="v1")
        assert "absent" in str(e.value)
    finally:
        reg.stop()


def test_an_attached_client_that_goes_away_does_not_block_the_container(dd):
    """Far more output than a pipe holds, and the attached client hangs up after the first
    bytes: the container still runs to its end and its log has everything."""
    api = dd.docker.api
    cid = api.create_container("minimal", ["sh", "-c", "seq 1 200000; echo end"])["Id"]
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(dd.docker_socket)
    s.sendall(f"POST /v1.45/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
              "Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101") and b"multiplexed-stream" in head
    api.start(cid)
    first = s.recv(8)
    assert first[:1] == b"\x01"                       # a stdout frame
    s.close()
    assert api.wait(cid, timeout=60)["StatusCode"] == 0
    assert api.logs(cid, tail=1) == b"end\n"
    api.remove_container(cid)


@pytest.mark.skipif(not (shutil.which("umoci") and shutil.which("skopeo")),
                    reason="umoci and skopeo build the test archive")
def test_docker_load_streams_a_chunked_archive_in(dd, tmp_path):
    """docker load -i: the CLI sends the archive with chunked transfer encoding; docker-py
    with a Content-Length beyond the API's 1 MiB body limit. Both load whole."""
    import subprocess

    import imagefixtures as fx
    from conftest import REPO
    layout = fx.build_oci(str(tmp_path / "layout"), str(tmp_path / "work"))
    arch = str(tmp_path / "img.tar")
    subprocess.run(["skopeo", "copy", f"oci:{layout}:t", f"docker-archive:{arch}:loaded/img:v1"],
                   check=True, capture_output=True)
    assert os.path.getsize(arch) > 1 << 20
    cli = subprocess.run(["bash", os.path.join(REPO, "tests/bats/docker-cli.sh")], check=True,
                         capture_output=True, text=True).stdout.strip()
    env = dict(os.environ, DOCKER_HOST=f"unix://{dd.docker_socket}",
               DOCKER_CONFIG=str(tmp_path / "dockercfg"))
    r = subprocess.run([cli, "load", "-i", arch], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "Loaded image: loaded/img:v1", r.stderr
    assert dd.docker.containers.run("loaded/img:v1", ["cat", "/etc/new"], entrypoint=[],
                                    user="0", remove=True) == b"added in layer 2\n"
    dd.docker.images.remove("loaded/img:v1")
    with open(arch, "rb") as f:
        loaded = dd.docker.images.load(f.read())
    assert [i.tags for i in loaded] == [["loaded/img:v1"]]
    # A truncated archive loads nothing, in one line.
    with open(arch, "rb") as f:
        half = f.read(os.path.getsize(arch) // 2)
    dd.docker.images.remove("loaded/img:v1")
    with pytest.raises(docker.errors.APIError):
        dd.docker.images.load(half)
    assert "loaded/img:v1" not in {t for i in dd.docker.images.list() for t in i.tags}


def test_docker_save_round_trips_through_docker_load(dd, tmp_path):
    """docker save (GET /images/get?names=..., docker-py's GET /images/{name}/get): the
    archive loads back; an unknown name is a 404 before any byte, and leaves no spool."""
    import subprocess

    import imagefixtures as fx
    from conftest import REPO
    layout = fx.build_oci(str(tmp_path / "layout"), str(tmp_path / "work"))
    arch = str(tmp_path / "img.tar")
    subprocess.run(["skopeo", "copy", f"oci:{layout}:t", f"docker-archive:{arch}:saved/img:v1"],
                   check=True, capture_output=True)
    cli = subprocess.run(["bash", os.path.join(REPO, "tests/bats/docker-cli.sh")], check=True,
                         capture_output=True, text=True).stdout.strip()
    env = dict(os.environ, DOCKER_HOST=f"unix://{dd.docker_socket}",
               DOCKER_CONFIG=str(tmp_path / "dockercfg"))
    assert subprocess.run([cli, "load", "-i", arch], env=env, capture_output=True).returncode == 0
    out = str(tmp_path / "saved.tar")
    r = subprocess.run([cli, "save", "-o", out, "saved/img:v1"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    dd.docker.images.remove("saved/img:v1")
    r = subprocess.run([cli, "load", "-i", out], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "Loaded image: saved/img:v1", r.stderr
    data = b"".join(dd.docker.images.get("saved/img:v1").save())
    assert data[257:262] == b"ustar"                  # a tar, streamed
    r = subprocess.run([cli, "save", "-o", str(tmp_path / "x.tar"), "nosuch:1"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no such image: nosuch:1" in r.stderr
    assert os.listdir(os.path.join(dd.root, "images", "tmp")) == []
