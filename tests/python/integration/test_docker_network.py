"""The Docker API's networking: docker-py against a private mcd in the network namespaces
of test_network.py's world (an outer namespace standing for the host, another for the
internet); the machine's own namespace is never touched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import docker
import pytest
from conftest import wait_for
from test_network import NetDaemon, leaks, world  # noqa: F401 - world is a fixture

pytestmark = pytest.mark.integration


class DockerNetDaemon(NetDaemon):
    @property
    def docker_socket(self):
        return os.path.join(self.base, "docker.sock")

    def argv(self):
        return super().argv() + ["--docker-socket", self.docker_socket]


@pytest.fixture
def dnet(world, tmpbase):  # noqa: F811
    d = DockerNetDaemon(tmpbase, world).start()
    d.docker = docker.DockerClient(base_url=f"unix://{d.docker_socket}", timeout=60)
    yield d
    d.docker.close()
    left = d.cleanup()
    assert not left, f"left behind: {json.dumps(left)}\n{d.log()}"
    assert not leaks(d), leaks(d)


def test_published_port_networks_and_network_settings(dnet, world):  # noqa: F811
    names = {n.name: n.attrs["Driver"] for n in dnet.docker.networks.list()}
    assert names == {"mcnet": "bridge", "host": "host", "none": "null"}
    net = dnet.docker.networks.create("dnet1", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.78.5.0/24")]))
    assert net.attrs["IPAM"]["Config"][0]["Subnet"] == "10.78.5.0/24"
    c = dnet.docker.containers.run("minimal", ["httpd", "-f", "-p", "8080"], detach=True,
                                   name="web", ports={"8080/tcp": 18081})
    wait_for(lambda: world.curl("http://127.0.0.1:18081/etc/hostname").stdout == "web\n", 20,
             "the published port")
    c.reload()
    ns = c.attrs["NetworkSettings"]
    assert ns["Ports"] == {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18081"}]}
    assert ns["Networks"]["mcnet"]["IPAddress"].startswith("10.77.")
    assert ns["Networks"]["mcnet"]["IPPrefixLen"] == ns["IPPrefixLen"] == 16
    assert c.attrs["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "", "HostPort": "18081"}]}
    assert dnet.docker.api.containers()[0]["Ports"] == [
        {"IP": "0.0.0.0", "PrivatePort": 8080, "PublicPort": 18081, "Type": "tcp"}]
    # A second container on the user network, by name; inspect shows it attached.
    d = dnet.docker.containers.run("minimal", ["sleep", "60"], detach=True, name="peer",
                                   network="dnet1")
    d.reload()
    assert d.attrs["NetworkSettings"]["Networks"]["dnet1"]["IPAddress"].startswith("10.78.5.")
    net.reload()
    assert [v["Name"] for v in net.attrs["Containers"].values()] == ["peer"]
    with pytest.raises(docker.errors.APIError) as e:
        net.connect(c)
    assert e.value.status_code == 400 and "not supported" in str(e.value)
    with pytest.raises(docker.errors.APIError) as e:
        net.remove()
    assert e.value.status_code == 409
    d.remove(force=True)
    c.remove(force=True)
    net.remove()
    assert dnet.docker.networks.prune() == {"NetworksDeleted": None}
    with pytest.raises(docker.errors.NotFound):
        dnet.docker.networks.get("dnet1")


def _docker_cli(d, *args, timeout=30):
    """The real docker CLI against the private daemon (never a dockerd)."""
    cli = shutil.which("docker")
    if cli is None:
        pytest.skip("the docker CLI is not installed (make test-bats installs it)")
    return subprocess.run([cli, *args], env=dict(os.environ, DOCKER_HOST=f"unix://{d.docker_socket}"),
                          capture_output=True, text=True, timeout=timeout)


def test_docker_cli_run_rm_whose_start_fails_returns_and_leaves_nothing(dnet, world):  # noqa: F811
    # docker run --rm creates, waits for "removed", then starts: a start refused (the host
    # port is taken) must remove the container, or the CLI waits for ever.
    dnet.docker.containers.run("minimal", ["sleep", "60"], detach=True, name="holder",
                               ports={"8080/tcp": 18085})
    r = _docker_cli(dnet, "run", "--rm", "-p", "18085:8080", "minimal", "true")
    assert r.returncode == 125, r
    assert 'already published by container "holder"' in r.stderr
    assert [c.name for c in dnet.docker.containers.list(all=True)] == ["holder"]


def test_docker_cli_run_on_a_missing_network_is_not_an_image_pull(dnet, world):  # noqa: F811
    # The CLI pulls after any 404 from create ("Unable to find image"): a missing network
    # must not look like a missing image.
    r = _docker_cli(dnet, "run", "--rm", "--network", "nosuch", "minimal", "true")
    assert r.returncode == 125
    assert "Unable to find image" not in r.stderr and "pull" not in r.stderr, r.stderr
    assert 'no such network: "nosuch"' in r.stderr
    assert dnet.docker.containers.list(all=True) == []


def test_docker_cli_expose_with_publish_all_publishes_the_port(dnet, world):  # noqa: F811
    r = _docker_cli(dnet, "run", "-d", "--name", "ex", "--expose", "8080", "-P", "minimal",
                    "httpd", "-f", "-p", "8080")
    assert r.returncode == 0, r.stderr
    line = _docker_cli(dnet, "port", "ex").stdout.strip()
    assert line.startswith("8080/tcp -> 0.0.0.0:"), line
    port = line.rsplit(":", 1)[1]
    wait_for(lambda: world.curl(f"http://127.0.0.1:{port}/etc/hostname").stdout == "ex\n", 20,
             "the --expose -P port")
    dnet.docker.containers.get("ex").remove(force=True)


def test_docker_cli_exit_status_of_a_command_not_found_or_not_executable(dnet, world):  # noqa: F811
    # The CLI derives 127/126 from the daemon's words, as with dockerd.
    assert _docker_cli(dnet, "run", "--rm", "minimal", "nosuchcmd").returncode == 127
    assert _docker_cli(dnet, "run", "--rm", "minimal", "/etc/passwd").returncode == 126
    assert _docker_cli(dnet, "run", "--rm", "minimal", "sh", "-c", "exit 3").returncode == 3
    assert dnet.docker.containers.list(all=True) == []
