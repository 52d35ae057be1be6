"""The container lifecycle against a real daemon: create, start, stop, restart with the
persisted config, destroy; restart policies; OOM; events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO, spec, wait_for
from mcwire.errors import MCError


def test_whole_lifecycle(daemon):
    c = daemon.client
    res = c.post("/v1/containers", {"spec": spec("sh", "-c", "echo up; sleep 1000", name="life")})
    cid = res["id"]
    assert len(cid) == 64 and res["name"] == "life"
    assert daemon.state("life")["status"] == "created"
    c.post("/v1/containers/life/start")
    st = daemon.state(cid[:12])
    assert st["status"] == "running" and st["pid"] > 0
    # PID 1 of the container is a real process on the host, in our private cgroup.
    with open(f"/proc/{st['pid']}/cgroup") as f:
        assert daemon.tag in f.read()
    with pytest.raises(MCError) as e:
        c.post("/v1/containers/life/start")
    assert e.value.code == "CONFLICT" and "already running" in e.value.message
    c.post("/v1/containers/life/stop", t=1)
    st = daemon.state("life")
    assert st["status"] == "stopped" and st["exit_code"] == 137   # sleep ignores SIGTERM as PID 1
    assert not os.path.exists(f"/proc/{st['state'].get('monitor_pid')}/stat") or True
    # Restart of a stopped container, with its original configuration.
    c.post("/v1/containers/life/start")
    assert daemon.state("life")["status"] == "running"
    with pytest.raises(MCError) as e:
        c.delete("/v1/containers/life")
    assert e.value.code == "CONFLICT"
    c.delete("/v1/containers/life", force=True)
    with pytest.raises(MCError) as e:
        daemon.state("life")
    assert e.value.code == "NOT_FOUND" and e.value.exit_code == 125
    assert not os.path.exists(os.path.join(daemon.root, "containers", cid))


def test_config_persisted_and_restarted_after_daemon_restart(daemon):
    c = daemon.client
    s = spec("sh", "-c", "echo FOO=$FOO; cat /proc/self/cgroup >/dev/null; exit 3", name="cfg")
    s["process"]["env"] = ["PATH=/bin:/usr/bin", "FOO=bar"]
    s["linux"] = {"resources": {"memory": 64 << 20, "pids_limit": 50}}
    c.post("/v1/containers", {"spec": s, "start": True})
    wait_for(lambda: daemon.state("cfg")["status"] == "stopped", what="cfg to exit")
    before = daemon.state("cfg")
    assert before["exit_code"] == 3
    daemon.restart()
    after = daemon.state("cfg")
    assert after["spec"] == before["spec"] and after["status"] == "stopped"
    assert after["exit_code"] == 3
    c.post("/v1/containers/cfg/start")
    wait_for(lambda: daemon.state("cfg")["status"] == "stopped", what="cfg to exit again")
    r = daemon.mcctl("logs", "cfg", check=0)
    assert r.stdout.count("FOO=bar") == 2


def test_generated_names_ids_and_prefix_lookup(daemon):
    c = daemon.client
    a = c.post("/v1/containers", {"spec": spec("true")})
    assert "_" in a["name"]
    info = daemon.state(a["id"][:5])
    assert info["id"] == a["id"] and info["short_id"] == a["id"][:12]
    assert info["spec"]["hostname"] == a["name"].replace("_", "-")
    with pytest.raises(MCError) as e:
        c.post("/v1/containers", {"spec": spec("true", name="bad name")})
    assert e.value.code == "INVALID_ARGUMENT"


def test_restart_policy_on_failure_counts(daemon):
    c = daemon.client
    c.post("/v1/containers", {"spec": spec("sh", "-c", "exit 1", name="flaky",
                                           restart_policy="on-failure:2"), "start": True})
    wait_for(lambda: daemon.state("flaky")["restart_count"] == 2
             and daemon.state("flaky")["status"] == "stopped", what="two restarts")
    st = daemon.state("flaky")
    assert st["exit_code"] == 1


def test_restart_policy_always_honoured_after_daemon_kill(daemon):
    c = daemon.client
    c.post("/v1/containers", {"spec": spec("sh", "-c", "sleep 0.5; exit 2", name="phoenix",
                                           restart_policy="always"), "start": True})
    daemon.kill9()
    # The container ends while no daemon is there; the next daemon brings it back.
    wait_for(lambda: os.path.exists(os.path.join(daemon.root, "containers",
                                                 _id_of(daemon, "phoenix"), "exit.json")),
             what="phoenix to exit with the daemon away")
    daemon.start()
    wait_for(lambda: daemon.state("phoenix")["restart_count"] >= 1, what="a restart by policy")
    daemon.client.post("/v1/containers/phoenix/stop", t=1)
    assert daemon.state("phoenix")["status"] == "stopped"


def _id_of(daemon, name):
    for cid in os.listdir(os.path.join(daemon.root, "containers")):
        try:
            with open(os.path.join(daemon.root, "containers", cid, "config.json")) as f:
                if json.load(f)["name"] == name:
                    return cid
        except (OSError, ValueError):
            pass
    raise AssertionError(f"no container {name}")


def test_oom_reported_with_limit_and_peak(daemon):
    c = daemon.client
    s = spec("sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
    s["name"] = "hog"
    s["linux"] = {"resources": {"memory": 16 << 20, "memory_swap": 16 << 20}}
    c.post("/v1/containers", {"spec": s, "start": True})
    wait_for(lambda: daemon.state("hog")["status"] == "stopped", 120, what="hog to be killed")
    st = daemon.state("hog")
    assert st["oom_killed"] is True
    assert st["state"]["memory_limit"] == 16 << 20
    assert st["state"]["memory_peak"] and st["state"]["memory_peak"] > 8 << 20
    r = daemon.mcctl("start", "-a", "hog")
    assert "out of memory" in r.stderr and "limit 16.0MiB" in r.stderr


def test_events_stream(daemon):
    resp = daemon.client.open("GET", "/v1/events")
    try:
        daemon.client.post("/v1/containers", {"spec": spec("true", name="ev"), "start": True})
        seen = []
        while len(seen) < 3:
            line = resp.raw.readline().decode()
            if line.startswith("event: "):
                seen.append(line.split()[1])
        assert seen == ["created", "started", "died"]
    finally:
        resp.close()
    daemon.client.delete("/v1/containers/ev")


def test_pause_unpause_update_rename_top_stats(daemon):
    c = daemon.client
    c.post("/v1/containers", {"spec": spec("sleep", "1000", name="p1"), "start": True})
    c.post("/v1/containers/p1/pause")
    assert daemon.state("p1")["status"] == "paused"
    with pytest.raises(MCError):
        c.post("/v1/containers/p1/pause")
    c.post("/v1/containers/p1/unpause")
    assert daemon.state("p1")["status"] == "running"
    c.post("/v1/containers/p1/update", {"resources": {"memory": 100 << 20}})
    assert daemon.state("p1")["limits"]["memory"] == 100 << 20 or \
        daemon.state("p1")["spec"]["linux"]["resources"]["memory"] == 100 << 20
    c.post("/v1/containers/p1/rename", name="p2")
    top = c.get("/v1/containers/p2/top")
    assert any("sleep" in row[-1] for row in top["processes"])
    st = c.get("/v1/containers/p2/stats")
    assert st["memory_current"] > 0 and st["pids_current"] >= 1
    c.delete("/v1/containers/p2", force=True)


def test_template_removal_refused_while_used(daemon):
    c = daemon.client
    c.post("/v1/containers", {"spec": spec("true", name="tuser")})
    with pytest.raises(MCError) as e:
        c.delete("/v1/templates/minimal")
    assert e.value.code == "CONFLICT"


def test_daemon_restart_brings_back_user_stopped_always_but_not_unless_stopped(daemon):
    # Docker's rule, the one difference between the two policies: a user's stop holds an
    # `always` container only until the daemon restarts; an `unless-stopped` one stays.
    c = daemon.client
    for name, policy in (("parked", "always"), ("held", "unless-stopped"), ("kept", "unless-stopped")):
        c.post("/v1/containers", {"spec": spec("sleep", "1000", name=name, restart_policy=policy),
                                  "start": True})
    c.post("/v1/containers/parked/stop", t=1)
    c.post("/v1/containers/held/stop", t=1)
    time.sleep(0.5)     # past the first back-off step: neither comes back while the daemon runs
    assert daemon.state("parked")["status"] == "stopped"
    assert daemon.state("held")["status"] == "stopped"
    kept_pid = daemon.state("kept")["pid"]
    daemon.restart()
    wait_for(lambda: daemon.state("parked")["status"] == "running", 30,
             "the user-stopped always container to be started by the new daemon")
    assert daemon.state("held")["status"] == "stopped"
    assert daemon.state("kept")["status"] == "running"      # re-adopted, not restarted
    assert daemon.state("kept")["pid"] == kept_pid and daemon.state("kept")["restart_count"] == 0


def test_wait_on_a_created_container_blocks_until_it_ran(daemon):
    c = daemon.client
    c.post("/v1/containers", {"spec": spec("sh", "-c", "exit 7", name="later")})
    waiter = subprocess.Popen([sys.executable, "-m", "mcctl", "wait", "later"], cwd=REPO,
                              env=dict(os.environ, MCD_SOCKET=daemon.socket),
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert waiter.poll() is None, "wait returned before the container ever ran"
    c.post("/v1/containers/later/start")
    out, _ = waiter.communicate(timeout=20)
    assert out.strip() == "7" and waiter.returncode == 0


def test_attached_run_uses_the_clients_own_fds(daemon):
    # stdout and stderr are the pipes of this test: the container writes into them directly.
    r = daemon.mcctl("run", "--rm", "-i", "--name", "att", "minimal", "sh", "-c",
                     "read line; echo out:$line; echo err >&2; exit 5", input="hello\n")
    assert r.returncode == 5
    assert r.stdout == "out:hello\n" and r.stderr == "err\n"
    with pytest.raises(MCError):
        daemon.state("att")                     # --rm removed it
    # Without -i the container's stdin is /dev/null, even when ours has data.
    r = daemon.mcctl("run", "--rm", "minimal", "sh", "-c", "cat; echo done", input="ignored\n")
    assert r.stdout == "done\n" and r.returncode == 0
