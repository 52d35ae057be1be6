"""The one typed spec: validation on construction, JSON round trip (pure logic)."""

from __future__ import annotations

import json

import pytest

from mcd.errors import InvalidArgument
from mcwire.spec import (DEFAULT_CAPABILITIES, ContainerSpec, IDMapping, Linux, Mount, Process,
                      Resources, Root, User, parse_size, resolve_capabilities, validate_name)


def spec(**kw):
    kw.setdefault("name", "web")
    kw.setdefault("process", Process(args=["sh"]))
    return ContainerSpec(**kw)


@pytest.mark.parametrize("name", ["a", "web-1", "A.b_c", "x" * 63, "9lives"])
def test_good_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", ".x", "_x", "x" * 64, "a b", "a/b", "web\n",
                                  "\nweb", "wé", None, 3])
def test_bad_names(name):
    with pytest.raises(InvalidArgument):
        validate_name(name)


def test_round_trip_is_exact():
    s = spec(hostname="h1", mounts=[Mount.parse_volume("/srv:/data:ro"),
                                    Mount.parse_tmpfs("/run:size=64m,mode=1777")],
             linux=Linux(namespaces=["pid", "mount", "uts", "ipc", "cgroup", "user"],
                         uid_mappings=[IDMapping(0, 100000, 65536)],
                         gid_mappings=[IDMapping(0, 100000, 65536)],
                         resources=Resources(memory=parse_size("64m"), pids_limit=10),
                         seccomp="unconfined"),
             root=Root(template="minimal", readonly=True), labels={"a": "b"})
    wire = json.loads(json.dumps(s.to_dict()))
    assert ContainerSpec.from_dict(wire) == s
    assert ContainerSpec.from_dict(wire).to_dict() == s.to_dict()


def test_defaults_are_the_secure_ones():
    s = spec()
    assert s.process.capabilities == DEFAULT_CAPABILITIES
    assert len(DEFAULT_CAPABILITIES) == 14
    assert "CAP_SYS_ADMIN" not in DEFAULT_CAPABILITIES
    assert s.process.no_new_privileges is True
    assert s.linux.seccomp == "default"
    assert "/proc/kcore" in s.linux.masked_paths and "/proc/sys" in s.linux.readonly_paths
    assert s.hostname == "web" and s.network == "none"


def test_unknown_fields_and_wrong_types_are_refused():
    d = spec().to_dict()
    with pytest.raises(InvalidArgument, match="unknown field"):
        ContainerSpec.from_dict({**d, "bogus": 1})
    with pytest.raises(InvalidArgument, match="process.args"):
        ContainerSpec.from_dict({**d, "process": {**d["process"], "args": "sh"}})
    with pytest.raises(InvalidArgument):
        ContainerSpec.from_dict({**d, "stop_timeout": True})


@pytest.mark.parametrize("build", [
    lambda: Process(args=[]),
    lambda: Process(args=["a\0b"]),
    lambda: Process(args=["sh"], env=["NOEQUALS"]),
    lambda: Process(args=["sh"], env=["1BAD=x"]),
    lambda: Process(args=["sh"], cwd="relative"),
    lambda: Process(args=["sh"], cwd="/a/../b"),
    lambda: Process(args=["sh"], capabilities=["CAP_BOGUS"]),
    lambda: User(uid=-1),
    lambda: User.parse("root"),
    lambda: Mount(destination="/", source="/x"),
    lambda: Mount(destination="/data", source="rel"),
    lambda: Mount.parse_volume("/a"),
    lambda: Mount.parse_volume("/a:/b:rx"),
    lambda: Mount.parse_tmpfs("/t:size=lots"),
    lambda: Linux(namespaces=["mount"]),
    lambda: Linux(namespaces=["pid", "mount", "bogus"]),
    lambda: Linux(namespaces=["pid", "mount", "user"]),      # no mappings
    lambda: Linux(seccomp="loose"),
    lambda: IDMapping(0, 2 ** 32 - 10, 65536),
    lambda: spec(hostname="bad_host!"),
    lambda: spec(mounts=[Mount.parse_volume("/a:/d"), Mount.parse_volume("/b:/d")]),
    lambda: spec(restart_policy="sometimes"),
])
def test_bad_input_is_refused(build):
    with pytest.raises(InvalidArgument):
        build()


def test_capability_rules():
    caps = resolve_capabilities(add=["sys_time"], drop=["CHOWN"])
    assert "CAP_SYS_TIME" in caps and "CAP_CHOWN" not in caps
    assert resolve_capabilities(drop=["ALL"]) == []
    assert resolve_capabilities(drop=["ALL"], add=["NET_RAW"]) == ["CAP_NET_RAW"]
    with pytest.raises(InvalidArgument):
        resolve_capabilities(add=["NOPE"])


def test_user_parse():
    assert User.parse("1000") == User(1000, 1000)
    assert User.parse("1000:50") == User(1000, 50)
    assert User.parse("0") == User(0, 0)
