"""Image references (Docker's grammar) and an image config applied to a spec: pure logic."""

from __future__ import annotations

import pytest

from mcd.errors import InvalidArgument, NotFound
from mcd.images import config, reference
from mcwire.spec import ContainerSpec


@pytest.mark.parametrize("text,full,familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("me/app:1.0", "docker.io/me/app:1.0", "me/app:1.0"),
    ("localhost:5000/app", "localhost:5000/app:latest", "localhost:5000/app:latest"),
    ("127.0.0.1:5000/a/b:x", "127.0.0.1:5000/a/b:x", "127.0.0.1:5000/a/b:x"),
    ("quay.io/org/app", "quay.io/org/app:latest", "quay.io/org/app:latest"),
    ("index.docker.io/library/debian:12", "docker.io/library/debian:12", "debian:12"),
    ("alpine@sha256:" + "a" * 64, "docker.io/library/alpine@sha256:" + "a" * 64,
     "alpine@sha256:" + "a" * 64),
])
def test_references_normalize_like_docker(text, full, familiar):
    r = reference.parse(text)
    assert str(r) == full and r.familiar() == familiar


@pytest.mark.parametrize("bad", ["", "UPPER", "a//b", "app:", "app@sha256:12", "a:b:c",
                                 " busybox", "x" * 600])
def test_bad_references_are_refused(bad):
    with pytest.raises(InvalidArgument):
        reference.parse(bad)


class FakeImages:
    """Stands in for the image store (a real one is in the integration tier)."""

    def __init__(self, cfg, lowers=()):
        self.cfg, self._lowers = cfg, list(lowers)

    def resolve(self, ref):
        if ref in ("img", "img:latest", "sha256:" + "1" * 64):
            return "sha256:" + "1" * 64
        raise NotFound(f"no such image: {ref}")

    def config(self, image_id):
        return {"config": self.cfg}

    def lowers(self, image_id):
        return self._lowers

    def tags_of(self, image_id):
        return ["img:latest"]


class FakeTemplates:
    def exists(self, name):
        return name == "tpl"


CFG = {"Entrypoint": ["/bin/ep"], "Cmd": ["a", "b"], "Env": ["PATH=/x", "K=image"],
       "WorkingDir": "/w", "StopSignal": "SIGQUIT", "Labels": {"l": "image", "m": "1"},
       "ExposedPorts": {"80/tcp": {}, "53/udp": {}}}


def prep(process, **spec):
    data = {"root": {"image": spec.pop("image", "img")}, "process": process, **spec}
    out, meta = config.prepare(data, FakeTemplates(), FakeImages(CFG))
    return ContainerSpec.from_dict(dict(out, name="x")), meta


def test_image_defaults_fill_what_the_user_left_out():
    s, meta = prep({})
    assert s.process.args == ["/bin/ep", "a", "b"]
    assert s.process.env == ["PATH=/x", "K=image"] and s.process.cwd == "/w"
    assert s.stop_signal == "SIGQUIT" and s.labels == {"l": "image", "m": "1"}
    assert s.root.image == "sha256:" + "1" * 64 and s.root.template == ""
    assert meta["exposed_ports"] == ["53/udp", "80/tcp"] and meta["ref"] == "img:latest"
    assert set(meta["from_image"]) == {"entrypoint", "cmd", "env", "workdir", "stop_signal",
                                       "labels"}


def test_user_values_win_as_in_docker():
    s, meta = prep({"args": ["c"], "env": ["K=user"], "cwd": "/u"}, stop_signal="SIGINT",
                   labels={"l": "user"})
    assert s.process.args == ["/bin/ep", "c"]          # args replace Cmd only
    assert s.process.env == ["PATH=/x", "K=user"] and s.process.cwd == "/u"
    assert s.stop_signal == "SIGINT" and s.labels == {"l": "user", "m": "1"}
    s, _ = prep({"entrypoint": ["sh"], "args": []})     # --entrypoint drops Cmd
    assert s.process.args == ["sh"]
    s, _ = prep({"entrypoint": [], "args": ["ls"]})     # --entrypoint "" clears it
    assert s.process.args == ["ls"]


def test_a_template_name_runs_the_template_with_its_defaults():
    out, meta = config.prepare({"root": {"image": "tpl"}, "process": {"env": ["A=1"]}},
                               FakeTemplates(), FakeImages(CFG))
    assert meta is None and out["root"] == {"template": "tpl"}
    assert out["process"]["args"] == ["sh"]
    assert out["process"]["env"][-1] == "A=1" and out["process"]["env"][0].startswith("PATH=")
    with pytest.raises(NotFound):
        config.prepare({"root": {"image": "nope"}, "process": {}}, FakeTemplates(),
                       FakeImages(CFG))


def test_no_command_at_all_is_refused():
    with pytest.raises(InvalidArgument, match="no command"):
        config.prepare({"root": {"image": "img"}, "process": {}}, FakeTemplates(),
                       FakeImages({}))


def test_user_names_resolve_through_the_image_passwd(tmp_path):
    top, base = tmp_path / "top", tmp_path / "base"
    (base / "etc").mkdir(parents=True)
    (top / "etc").mkdir(parents=True)
    (base / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\nold:x:5:5::/:/bin/sh\n")
    (top / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\napp:x:1001:1002::/:/bin/sh\n")
    (top / "etc/group").write_text("staff:x:50:\n")
    lowers = [str(top), str(base)]
    assert config.resolve_user("app", lowers, "i") == {"uid": 1001, "gid": 1002}
    assert config.resolve_user("app:staff", lowers, "i") == {"uid": 1001, "gid": 50}
    assert config.resolve_user("4242", lowers, "i") == {"uid": 4242, "gid": 0}
    with pytest.raises(InvalidArgument, match="not in the image's /etc/passwd"):
        config.resolve_user("old", lowers, "i")      # the top layer's passwd hides the base's


def test_registry_scheme_and_challenge_parsing():
    from mcd.images import registry
    assert registry.Registry("quay.io").scheme == "https"
    assert registry.Registry("docker.io").host == "registry-1.docker.io"
    for local in ("localhost:5000", "127.0.0.1:5000", "[::1]:5000", "127.3.4.5"):
        assert registry.Registry(local).scheme == "http", local
    assert registry.Registry("reg.lan:5000", insecure=True).scheme == "http"
    scheme, params = registry.parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull"')
    assert scheme == "bearer" and params == {"realm": "https://auth.example/token",
                                             "service": "registry.example",
                                             "scope": "repository:a/b:pull"}
    assert registry.parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_insecure_registries_in_the_config_file(tmp_path):
    from mcd.config import load
    p = tmp_path / "mcd.toml"
    p.write_text('insecure_registries = ["reg.lan:5000"]\n')
    assert load(str(p), {}).insecure_registries == ["reg.lan:5000"]
    p.write_text('insecure-registries = "reg.lan"\n')
    with pytest.raises(InvalidArgument, match="must be a list"):
        load(str(p), {})
    p.write_text('insecure_registries = ["http://x/y"]\n')
    with pytest.raises(InvalidArgument, match="host\\[:port\\]"):
        load(str(p), {})


def test_a_template_name_wins_over_an_image_tagged_the_same():
    # An image tagged "tpl" (or "minimal") must not change what `run tpl` runs (docs/images.md);
    # "tpl:latest" or the image ID still reach the image.
    class Shadowing(FakeImages):
        def resolve(self, ref):
            if ref in ("tpl", "tpl:latest", "minimal"):
                return "sha256:" + "1" * 64
            return super().resolve(ref)
    for name in ("tpl", "minimal"):
        out, meta = config.prepare({"root": {"image": name}, "process": {}}, FakeTemplates(),
                                   Shadowing(CFG))
        assert meta is None and out["root"] == {"template": name}
    out, meta = config.prepare({"root": {"image": "tpl:latest"}, "process": {}}, FakeTemplates(),
                               Shadowing(CFG))
    assert meta is not None and out["root"].get("image") == "sha256:" + "1" * 64
    assert config.is_template(None, FakeTemplates()) is False
