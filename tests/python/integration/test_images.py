"""Images against a real daemon and real tools: umoci builds the image, skopeo converts
it, umoci's own unpack is the oracle for the tree a container sees.

Nothing is downloaded: every image is made here from the busybox tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import imagefixtures as fx
from conftest import REPO
from test_network import netd, world  # noqa: F401 - fixtures: a daemon in its own netns

pytestmark = pytest.mark.skipif(not (shutil.which("umoci") and shutil.which("skopeo")),
                                reason="umoci and skopeo build the test images")


@pytest.fixture(scope="module")
def oci_image(tmp_path_factory):
    """A three-layer OCI layout (a deleted file, a deleted dir, an opaque dir)."""
    base = tmp_path_factory.mktemp("oci")
    layout = fx.build_oci(str(base / "layout"), str(base / "work"))
    oracle = fx.umoci_unpack(layout, str(base / "oracle"))
    return {"layout": layout, "oracle": oracle, "base": str(base)}


def load(daemon, path, check=0):
    return daemon.mcctl("image", "load", "-i", path, check=check)


def test_oci_layout_loads_and_the_container_sees_what_umoci_unpacks(daemon, oci_image, tmp_path):
    r = load(daemon, oci_image["layout"])
    assert r.stdout.startswith("Loaded image ID: sha256:")
    image_id = r.stdout.split()[-1]
    daemon.mcctl("image", "tag", image_id, "three:layers", check=0)
    ls = json.loads(daemon.mcctl("image", "ls", "--format", "json", check=0).stdout)
    assert [i["tags"] for i in ls] == [["three:layers"]] and ls[0]["layers"] == 3
    # The whole tree, as the container sees it, through tar (no special files: /proc
    # /sys /dev are the runtime's mounts and are left out).
    out = tmp_path / "seen.tar"
    with open(out, "wb") as f:
        r = subprocess.run(
            [sys.executable, "-m", "mcctl", "run", "--rm", "-u", "0", "--entrypoint", "sh", "three:layers",
             "-c", "cd / && exec tar -cf - $(ls -A | grep -v -x -e proc -e sys -e dev)"],
            stdout=f, stderr=subprocess.PIPE, env=dict(os.environ, MCD_SOCKET=daemon.socket),
            cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    seen = tmp_path / "seen"
    seen.mkdir()
    subprocess.run(["tar", "-C", str(seen), "-xpf", str(out)], check=True)
    oracle = fx.tree(oci_image["oracle"])
    got = fx.tree(str(seen))
    # The runtime's own mounts (/proc, /sys, /dev) and the files it binds over the image's
    # (hostname, hosts, resolv.conf) are not the image's: left out on both sides.
    for tree in (oracle, got):
        for k in [k for k in tree if k.split("/")[0] in ("proc", "sys", "dev")
                  or k in ("etc/hostname", "etc/hosts", "etc/resolv.conf")]:
            del tree[k]
    assert "etc/motd" not in got and "gone" not in got            # whiteouts
    assert sorted(k for k in got if k.startswith("data/")) == \
        ["data/c", "data/hard1", "data/hard2", "data/sym"]          # the opaque dir
    assert got == oracle


def test_image_config_is_honoured_and_inspect_says_where_values_came_from(daemon, oci_image):
    load(daemon, oci_image["layout"])
    iid = json.loads(daemon.mcctl("images", "--format", "json", check=0).stdout)[0]["id"]
    r = daemon.mcctl("run", "--rm", iid, check=0)
    # Entrypoint ["/bin/sh", "-c"] + Cmd, as uid 1000 in WorkingDir /srv/app.
    assert r.stdout.split() == ["default", "cmd", "1000", "/srv/app"]
    # run IMAGE ARGS replaces Cmd only; -e overrides the image's Env by key.
    r = daemon.mcctl("run", "--rm", "-e", "GREETING=override", iid, "./hello.sh; echo $PATH",
                     check=0)
    assert r.stdout.splitlines() == ["hello from override", "/usr/sbin:/usr/bin:/sbin:/bin"]
    # --entrypoint drops the image's Cmd; -u and -w win over the image's.
    r = daemon.mcctl("run", "--rm", "-u", "0", "-w", "/", "--entrypoint", "id", iid, "-u",
                     check=0)
    assert r.stdout.strip() == "0"
    # In a user namespace each layer is attached idmapped on its own (root inside owns
    # the image's root-owned files); the deleted file stays deleted.
    r = daemon.mcctl("run", "--rm", "--userns", "-u", "0", "--entrypoint", "sh", iid, "-c",
                     "stat -c %u /bin/busybox; cat /data/c; ls /etc/motd 2>&1; touch /data/new",
                     check=0)
    assert r.stdout.splitlines()[:2] == ["0", "c from layer 3"]
    assert "No such file" in r.stdout
    cid = daemon.mcctl("create", "--name", "cfg", iid, check=0).stdout.strip()
    info = daemon.client.get(f"/v1/containers/{cid}")
    assert info["spec"]["stop_signal"] == "SIGUSR1"
    assert info["spec"]["labels"] == {"org.example.k": "v"}
    assert info["spec"]["root"]["image"] == iid
    src = info["image_config"]
    assert src["id"] == iid and src["exposed_ports"] == ["8080/tcp"]
    assert set(src["from_image"]) == {"entrypoint", "cmd", "env", "workdir", "user",
                                      "stop_signal", "labels"}
    # In use: rm is refused, -f untags but keeps it for the container.
    daemon.mcctl("image", "tag", iid, "inuse:1", check=0)
    r = daemon.mcctl("image", "rm", iid)
    assert r.returncode == 125 and "in use by container(s) cfg" in r.stderr
    assert r.stderr.count("\n") == 1
    r = daemon.mcctl("image", "rm", "-f", "inuse:1", check=0)
    assert "Untagged: inuse:1" in r.stdout and "Deleted" not in r.stdout
    daemon.mcctl("rm", "cfg", check=0)
    r = daemon.mcctl("image", "prune", check=0)
    assert f"Deleted: {iid}" in r.stdout
    assert daemon.mcctl("images", "-q", check=0).stdout == ""
    assert os.listdir(os.path.join(daemon.root, "images", "layers")) == []
    assert os.listdir(os.path.join(daemon.root, "images", "l")) == []


def test_docker_archive_from_skopeo_and_a_save_load_round_trip(daemon, oci_image, tmp_path):
    darch = str(tmp_path / "docker.tar")
    fx.skopeo_copy(f"oci:{oci_image['layout']}:t", f"docker-archive:{darch}:example/three:v1")
    r = load(daemon, darch)
    assert r.stdout.strip() == "Loaded image: example/three:v1"
    before = daemon.client.get("/v1/images/inspect", ref="example/three:v1")
    assert before["layers"] == 3
    # save -> a fresh store -> load: the same image ID, and skopeo reads what we wrote.
    saved = str(tmp_path / "saved.tar")
    daemon.mcctl("image", "save", "-o", saved, "example/three:v1", check=0)
    fx.skopeo_copy(f"oci-archive:{saved}", f"oci:{tmp_path / 'back'}:x")
    fx.skopeo_copy(f"docker-archive:{saved}", f"dir:{tmp_path / 'back-dir'}")
    r = daemon.mcctl("image", "rm", "example/three:v1", check=0)
    assert f"Deleted: {before['id']}" in r.stdout
    r = load(daemon, saved)
    assert r.stdout.strip() == "Loaded image: example/three:v1"
    assert daemon.client.get("/v1/images/inspect", ref="example/three:v1")["id"] == before["id"]
    # `docker save | gzip` loads too (the outer archive compressed).
    daemon.mcctl("image", "rm", "example/three:v1", check=0)
    subprocess.run(["gzip", "-k", saved], check=True)
    r = load(daemon, saved + ".gz")
    assert r.stdout.strip() == "Loaded image: example/three:v1"
    # And from stdin.
    daemon.mcctl("image", "rm", "example/three:v1", check=0)
    with open(saved, "rb") as f:
        r = subprocess.run([sys.executable, "-m", "mcctl", "image", "load"], stdin=f,
                           capture_output=True, text=True, cwd=REPO,
                           env=dict(os.environ, MCD_SOCKET=daemon.socket))
    assert r.returncode == 0 and r.stdout.strip() == "Loaded image: example/three:v1", r.stderr


def test_tampered_blob_is_refused_and_nothing_is_added(daemon, oci_image, tmp_path):
    bad = str(tmp_path / "bad")
    shutil.copytree(oci_image["layout"], bad)
    index = json.load(open(os.path.join(bad, "index.json")))
    manifest = json.load(open(os.path.join(bad, "blobs/sha256",
                                           index["manifests"][0]["digest"][7:])))
    layer = os.path.join(bad, "blobs/sha256", manifest["layers"][0]["digest"][7:])
    with open(layer, "r+b") as f:
        f.seek(os.path.getsize(layer) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    r = load(daemon, bad, check=None)
    assert r.returncode == 125 and r.stderr.count("\n") == 1, r.stderr
    assert "layer 1/3" in r.stderr and ("digest mismatch" in r.stderr or "corrupt" in r.stderr)
    store = os.path.join(daemon.root, "images")
    assert os.listdir(os.path.join(store, "layers")) == []
    assert os.listdir(os.path.join(store, "tmp")) == []
    assert daemon.mcctl("images", "-q", check=0).stdout == ""
    # A missing blob, named as such.
    os.unlink(layer)
    r = load(daemon, bad, check=None)
    assert r.returncode == 125 and "is missing from the archive" in r.stderr


def test_ten_containers_add_no_copy_of_the_layers(daemon, oci_image):
    load(daemon, oci_image["layout"])
    iid = json.loads(daemon.mcctl("images", "--format", "json", check=0).stdout)[0]["id"]

    def du(path):
        return int(subprocess.run(["du", "-sk", path], capture_output=True, text=True,
                                  check=True).stdout.split()[0])
    store = os.path.join(daemon.root, "images")
    before_store, before_all = du(store), du(daemon.root)
    ids = [daemon.mcctl("run", "-d", "--entrypoint", "sleep", iid, "100", check=0).stdout.strip()
           for _ in range(10)]
    after_store, after_all = du(store), du(daemon.root)
    assert after_store == before_store
    # Ten containers' dirs (upper, work, logs, state) stay tiny next to a 2 MiB image.
    assert after_all - before_all < 10 * 64, (before_all, after_all)
    for cid in ids:
        st = daemon.state(cid)
        assert st["status"] == "running"
    df = json.loads(daemon.mcctl("system", "df", "--format", "json", check=0).stdout)
    assert df["images"]["layers"] == 3 and df["containers"]["count"] == 10
    for cid in ids:
        daemon.mcctl("rm", "-f", cid, check=0)


def test_templates_keep_working(daemon):
    r = daemon.mcctl("run", "--rm", "minimal", "sh", "-c", "echo $PATH; id -u", check=0)
    assert r.stdout.split() == ["/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "0"]
    r = daemon.mcctl("run", "--rm", "nosuchimage")
    assert r.returncode == 125 and "no such image" in r.stderr


def test_zstd_and_uncompressed_layers_load_to_the_same_image(daemon, oci_image, tmp_path):
    """skopeo recompresses the same image: the layers' diff IDs, and so the image ID,
    do not depend on the compression (gzip from umoci, zstd, none)."""
    zst = str(tmp_path / "zstd")
    fx.skopeo_copy(f"oci:{oci_image['layout']}:t", f"oci:{zst}:z",
                   "--dest-compress-format", "zstd", "--dest-compress")
    index = json.load(open(os.path.join(zst, "index.json")))
    manifest = json.load(open(os.path.join(zst, "blobs/sha256",
                                           index["manifests"][0]["digest"][7:])))
    assert all(m["mediaType"].endswith("+zstd") for m in manifest["layers"])
    plain = str(tmp_path / "plain")
    fx.skopeo_copy(f"oci:{oci_image['layout']}:t", f"oci:{plain}:p", "--dest-decompress")
    ids = set()
    for path in (zst, plain, oci_image["layout"]):
        image_id = load(daemon, path).stdout.split()[-1]
        ids.add(image_id)
        layers = json.loads(daemon.mcctl("system", "df", "--format", "json",
                                         check=0).stdout)["images"]["layers"]
        assert layers == 3
        r = daemon.mcctl("run", "--rm", "--entrypoint", "cat", image_id, "/data/c", check=0)
        assert r.stdout == "c from layer 3\n"
        daemon.mcctl("image", "rm", image_id, check=0)     # the next load unpacks anew
    assert len(ids) == 1


def test_image_containers_survive_a_daemon_restart(daemon, oci_image):
    load(daemon, oci_image["layout"])
    iid = json.loads(daemon.mcctl("images", "--format", "json", check=0).stdout)[0]["id"]
    cid = daemon.mcctl("run", "-d", "--name", "keeps", "--entrypoint", "sleep", iid, "1000",
                       check=0).stdout.strip()
    pid = daemon.state(cid)["pid"]
    daemon.restart()
    st = daemon.state("keeps")
    assert st["status"] == "running" and st["pid"] == pid
    assert st["image_config"]["id"] == iid
    daemon.mcctl("stop", "-t", "1", "keeps", check=0)
    daemon.mcctl("start", "keeps", check=0)          # the layers are stacked again
    r = daemon.mcctl("exec", "keeps", "cat", "/data/c", check=0)
    assert r.stdout == "c from layer 3\n"
    daemon.mcctl("rm", "-f", "keeps", check=0)


def test_staging_a_killed_load_left_is_gone_once_the_daemon_is_up(daemon):
    # A daemon killed mid-load leaves its staging (the whole archive's layers) in
    # ROOT/images/tmp. The next daemon removes it before it serves, not at the first
    # image command: the space comes back, and no load can be running while it is removed.
    daemon.mcctl("images", check=0)
    daemon.stop()
    left = os.path.join(daemon.root, "images", "tmp", "load-killed")
    os.makedirs(os.path.join(left, "layer"))
    with open(os.path.join(left, "layer", "blob"), "wb") as f:
        f.write(b"x" * 4096)
    daemon.start()
    assert not os.path.exists(left)


def test_publish_all_publishes_the_image_exposed_ports(world, netd, oci_image):
    """-P: the image's ExposedPorts (8080/tcp) on a free host port, reachable from the
    namespace that stands for the host (test_network's world, never the machine's own)."""
    from conftest import wait_for
    netd.mcctl("image", "load", "-i", oci_image["layout"], check=0)
    iid = json.loads(netd.mcctl("images", "--format", "json", check=0).stdout)[0]["id"]
    netd.mcctl("run", "-d", "--name", "pub", "-P", "--entrypoint", "httpd", iid,
               "-f", "-p", "8080", "-h", "/", check=0)
    line = netd.mcctl("port", "pub", check=0).stdout.strip()
    assert line.startswith("8080/tcp -> 0.0.0.0:"), line
    host_port = int(line.rsplit(":", 1)[1])
    assert host_port > 0
    wait_for(lambda: world.curl(f"http://127.0.0.1:{host_port}/etc/new").stdout
             == "added in layer 2\n", 20, "the -P port answering")
    netd.mcctl("rm", "-f", "pub", check=0)


@pytest.mark.skipif(not shutil.which("podman"), reason="podman makes the archives")
def test_podman_save_archives_load(daemon, tmp_path):
    """What `podman save` writes (docker-archive and oci-archive) of a `podman import` of
    the busybox tree; podman on a private --root, removed at the end."""
    tree = tmp_path / "tree"
    fx.busybox_tree(str(tree))
    (tree / "etc/os-release").write_text('ID=mcbusybox\n')
    tarball = tmp_path / "tree.tar"
    subprocess.run(["tar", "-C", str(tree), "--numeric-owner", "-cf", str(tarball), "."],
                   check=True)
    import tempfile
    runroot = tempfile.mkdtemp(prefix="mc-pm-")     # podman wants a runroot under 50 chars
    pm = ["podman", "--root", str(tmp_path / "pm-root"), "--runroot", runroot,
          "--storage-driver", "vfs"]
    try:
        r = subprocess.run(pm + ["import", "-q", "--change", 'CMD ["cat", "/etc/os-release"]',
                                 str(tarball), "docker.io/library/podbox:1"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        for fmt in ("docker-archive", "oci-archive"):
            out = tmp_path / f"{fmt}.tar"
            subprocess.run(pm + ["save", "-q", "--format", fmt, "-o", str(out),
                                 "docker.io/library/podbox:1"], check=True, capture_output=True)
            r = load(daemon, str(out))
            if fmt == "docker-archive":
                assert r.stdout.strip() == "Loaded image: podbox:1"
                image = "podbox:1"
            else:       # an oci-archive's ref.name is the tag alone: loaded untagged
                image = r.stdout.split()[-1]
            r = daemon.mcctl("run", "--rm", image, check=0)
            assert r.stdout == "ID=mcbusybox\n"
            daemon.mcctl("image", "rm", "-f", image, check=0)
    finally:
        subprocess.run(pm + ["system", "reset", "-f"], capture_output=True)
        shutil.rmtree(runroot, ignore_errors=True)


def test_an_image_with_the_same_layer_twice_runs(daemon, oci_image, tmp_path):
    """Empty layers repeat in real images (one diff ID, several places); overlayfs refuses a
    lowerdir twice, so it is stacked once, where it is highest."""
    import tarfile
    layout = str(tmp_path / "dup")
    shutil.copytree(oci_image["layout"], layout)
    empty = str(tmp_path / "empty.tar")
    with tarfile.open(empty, "w") as tf:
        ti = tarfile.TarInfo("data/twice")
        ti.size = 0
        tf.addfile(ti)
    for _ in range(2):
        fx.run("umoci", "raw", "add-layer", "--image", f"{layout}:t", empty)
    image_id = load(daemon, layout).stdout.split()[-1]
    info = daemon.client.get("/v1/images/inspect", ref=image_id)
    assert info["layers"] == 5 and len(set(info["rootfs"]["diff_ids"])) == 4
    r = daemon.mcctl("run", "--rm", "--entrypoint", "ls", image_id, "/data", check=0)
    assert r.stdout.split() == ["c", "hard1", "hard2", "sym", "twice"]
