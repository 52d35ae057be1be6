"""Daemon configuration (TOML + flags), the sd_notify wrapper, and peer authorization."""

import os
import socket

import pytest

from mcd.config import Config, load
from mcd.daemon import make_authorize
from mcd.errors import InvalidArgument
from mcd.httpserver import Peer
from mcd.notify import Notifier


def test_defaults_file_then_flags(tmp_path):
    f = tmp_path / "mcd.toml"
    f.write_text('socket = "/run/x.sock"\ncgroup-parent = "mine"\nweb_listen = "off"\n')
    cfg = load(str(f), {"socket": None, "root": "/srv/mcd", "log_level": "debug"})
    assert cfg.socket == "/run/x.sock" and cfg.cgroup_parent == "mine"
    assert cfg.root == "/srv/mcd" and cfg.log_level == "debug" and cfg.web_listen == "off"
    assert load(str(tmp_path / "absent.toml"), {}) == Config()


@pytest.mark.parametrize("text,needle", [
    ('sockett = "/x"', "unknown key 'sockett'"),
    ("socket = 5", "socket must be a str"),
    ('socket = "relative.sock"', "must be an absolute path"),
    ('log_level = "loud"', "log_level"),
    ('web_listen = "nowhere"', "ADDR:PORT or off"),
    ('cgroup_parent = "../escape"', "cgroup_parent"),
    ("web_allow_remote = 1", "web_allow_remote must be a bool"),
    ("socket = ", "config file"),
    ('docker_socket = "docker.sock"', "docker_socket"),
    ('docker_socket = "/run/mcd/mcd.sock"', "must differ from socket"),
])
def test_bad_config_is_one_clear_error(tmp_path, text, needle):
    f = tmp_path / "mcd.toml"
    f.write_text(text + "\n")
    with pytest.raises(InvalidArgument) as e:
        load(str(f), {})
    assert needle in str(e.value)


def test_explicit_config_must_exist(tmp_path):
    with pytest.raises(InvalidArgument):
        load(str(tmp_path / "nope.toml"), {}, required=True)


def test_notifier_scrubs_environment_and_speaks_the_protocol(tmp_path):
    path = str(tmp_path / "notify.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(5)
    env = {"NOTIFY_SOCKET": path, "LISTEN_FDS": "1", "LISTEN_PID": "1", "HOME": "/root"}
    old = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = path      # sdnotify reads the process environment
    try:
        n = Notifier(env)
    finally:
        if old is None:
            os.environ.pop("NOTIFY_SOCKET", None)
        else:
            os.environ["NOTIFY_SOCKET"] = old
    assert env == {"HOME": "/root"}
    n.ready("1 running")
    assert rx.recv(100) == b"READY=1\nSTATUS=1 running"
    assert n._timer is None            # no watchdog asked: no timer thread at all
    n.stopping()
    assert rx.recv(100) == b"STOPPING=1"
    rx.close()


def test_watchdog_only_when_asked(tmp_path):
    path = str(tmp_path / "wd.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(10)
    os.environ["NOTIFY_SOCKET"] = path
    try:
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())})
    finally:
        os.environ.pop("NOTIFY_SOCKET", None)
    n.ready()
    assert rx.recv(100) == b"READY=1"
    assert rx.recv(100) == b"WATCHDOG=1"
    n.stopping()
    rx.close()


def test_watchdog_stops_when_the_health_check_fails(tmp_path):
    path = str(tmp_path / "wd2.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(10)
    os.environ["NOTIFY_SOCKET"] = path
    try:
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    finally:
        os.environ.pop("NOTIFY_SOCKET", None)
    healthy = [True, True, False]
    checks = []

    def health():
        checks.append(1)
        return healthy[min(len(checks) - 1, 2)]

    n.ready(health=health)
    assert rx.recv(100) == b"READY=1"
    assert rx.recv(100) == b"WATCHDOG=1"
    assert rx.recv(100) == b"WATCHDOG=1"
    rx.settimeout(0.5)
    with pytest.raises(socket.timeout):
        rx.recv(100)       # unhealthy from the third check on: silence, so systemd acts
    n.stopping()
    rx.close()


def test_authorize_root_group_member_and_others(tmp_path):
    proc = tmp_path / "proc"
    (proc / "77").mkdir(parents=True)
    (proc / "77" / "status").write_text("Name:\tx\nGroups:\t10 4242\n")
    (proc / "78").mkdir()
    (proc / "78" / "status").write_text("Name:\ty\nGroups:\t10\n")
    auth = make_authorize(4242, str(proc))
    assert auth(Peer(1, 0, 0))
    assert auth(Peer(5, 1000, 4242))            # primary group
    assert auth(Peer(77, 1000, 1000))           # supplementary group
    assert not auth(Peer(78, 1000, 1000))
    assert not auth(None)
    assert not make_authorize(None, str(proc))(Peer(77, 1000, 1000))


def test_the_supervisor_is_the_default_and_can_be_switched_off(tmp_path):
    # Issue 17: one supervisor for all containers replaced the monitor per container.
    from mcd.__main__ import build_parser
    assert Config().supervisor is True
    absent = str(tmp_path / "absent.toml")
    assert build_parser().parse_args([]).supervisor is None         # the file decides
    off = build_parser().parse_args(["--no-supervisor"]).supervisor
    assert off is False and load(absent, {"supervisor": off}).supervisor is False
    f = tmp_path / "mcd.toml"
    f.write_text("supervisor = false\n")
    assert load(str(f), {"supervisor": None}).supervisor is False
    assert load(str(f), {"supervisor": True}).supervisor is True     # the flag wins
