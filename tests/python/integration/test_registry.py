"""Pull from a real registry: Debian's docker-registry on 127.0.0.1 (a random port, a temp
config and storage, with and without htpasswd auth), filled by skopeo from an image
umoci built here. Nothing leaves the machine."""

from __future__ import annotations

import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import threading

import pytest

import imagefixtures as fx
from conftest import REPO

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("umoci", "skopeo", "docker-registry")),
    reason="umoci, skopeo and docker-registry make the test registry")


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    base = tmp_path_factory.mktemp("reg-oci")
    path = fx.build_oci(str(base / "layout"), str(base / "work"))
    if platform.machine() == "x86_64":
        fx.add_multiarch(path)
    return path


@pytest.fixture
def registry(tmp_path):
    reg = fx.LocalRegistry(str(tmp_path / "registry")).start()
    yield reg
    reg.stop()


@pytest.fixture
def auth_registry(tmp_path):
    reg = fx.LocalRegistry(str(tmp_path / "auth-registry"), "alice", "s3cret-pw").start()
    yield reg
    reg.stop()


def test_pull_by_tag_and_by_digest_then_run(daemon, registry, layout):
    digest = registry.push(f"oci:{layout}:t", "demo/three:v1")
    ref = f"{registry.host}/demo/three:v1"
    r = daemon.mcctl("pull", ref, check=0)
    lines = r.stderr.splitlines()
    # Not a terminal: plain lines, one per layer, no escape sequences.
    assert sum(1 for ln in lines if ln.endswith(": pull complete")) == 3
    assert "\x1b" not in r.stderr
    assert f"Digest: {digest}" in r.stdout
    image_id = r.stdout.split()[-1]
    out = daemon.mcctl("run", "--rm", ref, check=0).stdout
    assert out.split() == ["default", "cmd", "1000", "/srv/app"]
    # By digest: the same image, found again without a second download.
    by_digest = f"{registry.host}/demo/three@{digest}"
    r = daemon.mcctl("pull", by_digest, check=0)
    assert r.stdout.split()[-1] == image_id
    assert r.stderr.count("already exists") == 3
    info = daemon.client.get("/v1/images/inspect", ref=by_digest)
    assert info["id"] == image_id and f"{registry.host}/demo/three@{digest}" in info["repo_digests"]


def test_run_pulls_a_missing_image_that_names_a_registry(daemon, registry, layout):
    registry.push(f"oci:{layout}:t", "auto/pull:1")
    ref = f"{registry.host}/auto/pull:1"
    r = daemon.mcctl("run", "--rm", "--pull", "never", ref)
    assert r.returncode == 125 and "no such image" in r.stderr
    r = daemon.mcctl("run", "--rm", "--entrypoint", "cat", ref, "/etc/new", check=0)
    assert r.stdout == "added in layer 2\n" and "pull complete" in r.stderr
    r = daemon.mcctl("run", "--rm", "--pull", "always", "--entrypoint", "true", ref, check=0)
    assert r.stderr.count("already exists") == 3


def test_basic_auth_login_and_logout(daemon, auth_registry, layout):
    auth_registry.push(f"oci:{layout}:t", "private/img:1")
    ref = f"{auth_registry.host}/private/img:1"
    r = daemon.mcctl("pull", ref)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("mcctl:")]
    assert r.returncode == 125 and len(errors) == 1    # after the "Pulling ..." status line
    assert f"requires a login (mcctl login {auth_registry.host})" in errors[0]
    r = daemon.mcctl("login", "-u", "alice", "--password-stdin", auth_registry.host,
                     input="wrong\n")
    assert r.returncode == 125 and ("denied" in r.stderr or "refused" in r.stderr), r.stderr
    r = daemon.mcctl("login", "-u", "alice", "--password-stdin", auth_registry.host,
                     input="s3cret-pw\n", check=0)
    assert "Login Succeeded" in r.stdout
    auth = os.path.join(daemon.root, "auth.json")
    assert stat.S_IMODE(os.stat(auth).st_mode) == 0o600
    daemon.mcctl("pull", ref, check=0)
    assert "s3cret-pw" not in daemon.log()
    r = daemon.mcctl("logout", auth_registry.host, check=0)
    assert "Removed" in r.stdout
    assert auth_registry.host not in json.load(open(auth))


def test_a_tampered_blob_in_the_registry_is_refused_and_nothing_is_added(daemon, registry,
                                                                        layout):
    registry.push(f"oci:{layout}:t", "bad/img:1")
    index = json.load(open(os.path.join(layout, "index.json")))
    desc = next(m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "t")
    manifest = json.load(open(os.path.join(layout, "blobs/sha256", desc["digest"][7:])))
    top = manifest["layers"][-1]["digest"]
    path = registry.blob_path(top)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    r = daemon.mcctl("pull", f"{registry.host}/bad/img:1")
    assert r.returncode == 125, r.stderr
    assert "layer 3/3" in r.stderr and ("digest mismatch" in r.stderr or "corrupt" in r.stderr)
    store = os.path.join(daemon.root, "images")
    assert daemon.mcctl("images", "-q", check=0).stdout == ""
    assert os.listdir(os.path.join(store, "tmp")) == []
    assert os.listdir(os.path.join(store, "layers")) == []


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the index pairs arm64 with amd64")
def test_an_index_chooses_the_host_platform(daemon, registry, layout):
    registry.push(f"oci:{layout}:multi", "multi/img:1")
    ref = f"{registry.host}/multi/img:1"
    daemon.mcctl("pull", ref, check=0)
    r = daemon.mcctl("run", "--rm", "-u", "0", "--entrypoint", "sh", ref, "-c",
                     "echo $GREETING", check=0)
    assert r.stdout == "image\n"        # the amd64 config, not the arm64 one listed first


def test_two_pulls_at_once_store_each_layer_once(daemon, registry, layout):
    registry.push(f"oci:{layout}:t", "twice/img:1")
    ref = f"{registry.host}/twice/img:1"
    results = []

    def pull():
        results.append(subprocess.run(
            [sys.executable, "-m", "mcctl", "pull", "-q", ref], capture_output=True, text=True,
            cwd=REPO, env=dict(os.environ, MCD_SOCKET=daemon.socket), timeout=120))
    threads = [threading.Thread(target=pull) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert len({r.stdout for r in results}) == 1
    store = os.path.join(daemon.root, "images")
    assert len(os.listdir(os.path.join(store, "layers"))) == 3
    assert os.listdir(os.path.join(store, "tmp")) == []


def test_progress_bars_on_a_terminal(daemon, registry, layout):
    """On a pty: one line per layer, redrawn in place (cursor up + clear line)."""
    registry.push(f"oci:{layout}:t", "tty/img:1")
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.environ["MCD_SOCKET"] = daemon.socket
        os.execv(sys.executable, [sys.executable, "-m", "mcctl", "pull",
                                  f"{registry.host}/tty/img:1"])
    out = b""
    while True:
        r, _, _ = select.select([fd], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = out.decode(errors="replace")
    assert os.WEXITSTATUS(status) == 0, text
    assert "\x1b[2K" in text and "Pull complete" in text and "\x1b[" in text


@pytest.fixture
def token_registry(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl signs the test tokens")
    tokens = fx.TokenServer(str(tmp_path / "tokens"), "bob", "tok-pw")
    reg = fx.LocalRegistry(str(tmp_path / "token-registry"), token=tokens).start()
    yield reg, tokens
    reg.stop()
    tokens.stop()


def test_bearer_token_challenge(daemon, token_registry, layout):
    """The registry answers 401 with a Bearer challenge; the token service wants the
    stored credentials; the registry checks the signed token's scope."""
    reg, tokens = token_registry
    reg.push(f"oci:{layout}:t", "tok/img:1", creds="bob:tok-pw")
    ref = f"{reg.host}/tok/img:1"
    r = daemon.mcctl("pull", ref)
    assert r.returncode == 125 and f"requires a login (mcctl login {reg.host})" in r.stderr
    daemon.mcctl("login", "-u", "bob", "--password-stdin", reg.host, input="tok-pw\n", check=0)
    tokens.requests.clear()
    daemon.mcctl("pull", ref, check=0)
    assert tokens.requests and all(q["authorized"] for q in tokens.requests)
    assert ["repository:tok/img:pull"] in [q["scope"] for q in tokens.requests]
    r = daemon.mcctl("run", "--rm", "--entrypoint", "cat", ref, "/data/c", check=0)
    assert r.stdout == "c from layer 3\n"


def test_an_unreachable_registry_and_an_unknown_image_are_one_line(daemon, registry):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]       # nothing listens here once closed
    r = daemon.mcctl("pull", f"127.0.0.1:{port}/x/y:1")
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("mcctl:")]
    assert r.returncode == 125 and len(errors) == 1
    assert f"cannot reach registry 127.0.0.1:{port}: " in errors[0] and "refused" in errors[0]
    r = daemon.mcctl("pull", f"{registry.host}/no/such:1")
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("mcctl:")]
    assert r.returncode == 125 and len(errors) == 1 and "not found" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
