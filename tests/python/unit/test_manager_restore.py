"""Live restore of each situation a daemon can leave on disk, over a fake runtime whose
"running" processes stand for what survived the daemon (manager_fakes.py says what is
faked and why). The first manager makes the situation; a second one, on the same root,
restores it."""

from __future__ import annotations

import json
import os

import pytest

from manager_fakes import FakeCgroups, FakeRuntime, FakeTimers, make_manager, on_disk, spec
from mcd import errors
from mcd.manager.state import Status


@pytest.fixture
def world(tmp_path):
    """(first manager, restore()) sharing the runtime, cgroups and root: the processes and
    cgroups outlive the first manager as they outlive a daemon."""
    rt, cgs, timers = FakeRuntime(), FakeCgroups(), FakeTimers()
    first = make_manager(str(tmp_path), rt, cgs, timers)
    made = []

    def restore():
        rt.watches.clear()      # the old daemon's watches died with it
        m = make_manager(str(tmp_path), rt, cgs, timers)
        made.append(m)
        return m, m.restore()

    yield first, restore
    for m in [first, *made]:
        m.close()


def test_running_with_its_monitor_alive_is_adopted(world):
    first, restore = world
    c = first.create(spec("web"))
    launched = first.start(c)
    m, report = restore()
    assert report["adopted"] == [c.id]
    c2 = m.get("web")
    assert c2.status == Status.RUNNING and c2.monitor.pid == launched.monitor_pid
    assert c2.init.pid == launched.pid and c2.cgroup is not None
    m.runtime.exit(launched.pid, 7)         # and its exit is heard by the new daemon
    assert c2.status == Status.STOPPED and on_disk(m, c.id)["exit_code"] == 7


def test_running_whose_monitor_ended_while_away_is_recorded(world):
    first, restore = world
    c = first.create(spec("web"))
    launched = first.start(c)
    first.runtime.watches.clear()
    first.runtime.exit(launched.pid, 3)     # no daemon listened
    m, report = restore()
    assert report["exited"] == [c.id] and report["restarting"] == []
    c2 = m.get("web")
    assert c2.status == Status.STOPPED and c2.state.exit_code == 3
    assert on_disk(m, c.id)["status"] == "stopped" and c.id not in m.cgroups.groups


def test_a_zombie_monitor_counts_as_ended(world):
    first, restore = world
    c = first.create(spec("web"))
    launched = first.start(c)
    first.runtime.exits[first.store.container_dir(c.id)] = {"exit_code": 0, "signal": None}
    first.runtime.zombies.add(launched.monitor_pid)
    m, report = restore()
    assert report["exited"] == [c.id] and m.get("web").status == Status.STOPPED


def test_an_exit_status_lost_is_said_so(world):
    first, restore = world
    c = first.create(spec("web"))
    launched = first.start(c)
    first.runtime.running.pop(launched.monitor_pid)     # gone without exit.json
    m, _ = restore()
    c2 = m.get("web")
    assert c2.state.exit_code == 255 and "exit status lost" in c2.state.error


def test_a_reused_monitor_pid_is_not_adopted(world):
    first, restore = world
    c = first.create(spec("web"))
    launched = first.start(c)
    first.runtime.running[launched.monitor_pid] += 1    # same pid, another process
    m, report = restore()
    assert report["adopted"] == [] and report["exited"] == [c.id]


@pytest.mark.parametrize("previous, expected", [(None, Status.CREATED),
                                                ("created", Status.CREATED),
                                                ("stopped", Status.STOPPED)])
def test_a_half_made_start_is_undone(world, previous, expected):
    first, restore = world
    c = first.create(spec("web"))
    # A daemon that died between writing "starting" and hearing from the monitor: its
    # cgroup may hold a half-set-up PID 1.
    first.cgroups.create(c.id, None)
    state = {**on_disk(first, c.id), "status": "starting"}
    if previous:
        state["previous_status"] = previous
    first.store.write_state(c.id, state)
    m, report = restore()
    assert report["cleaned"] == [c.id]
    assert m.get("web").status == expected and on_disk(m, c.id)["status"] == str(expected)
    assert "previous_status" not in on_disk(m, c.id)
    assert c.id not in m.cgroups.groups, "what the half-made start left is killed and removed"


def test_a_half_made_create_is_removed(world, tmp_path):
    first, restore = world
    half = tmp_path / "containers" / (".%s.new" % ("a" * 64))
    half.mkdir()
    (half / "config.json").write_text("{}")
    m, report = restore()
    assert report["cleaned"] == [half.name] and not half.exists() and m.list() == []


@pytest.mark.parametrize("damage, why", [
    (lambda st, cfg: open(st, "w").write("{half"), "not valid JSON"),
    (lambda st, cfg: os.unlink(st), "missing"),
    (lambda st, cfg: open(st, "w").write('{"status": "exploded"}'), "exploded"),
    (lambda st, cfg: open(st, "w").write("[]"), "not an object"),
    (lambda st, cfg: open(cfg, "w").write('{"spec": {"process": 1}}'), "process"),
])
def test_unreadable_files_make_a_broken_container(world, damage, why):
    first, restore = world
    c = first.create(spec("web"))
    damage(first.store.state_path(c.id), first.store.config_path(c.id))
    m, report = restore()
    assert report["broken"] == [c.id]
    b = m.list()[0]
    assert b["status"] == "broken" and why in m.get(c.id).state.error


def test_rm_containers_left_stopped_or_broken_are_removed(world):
    first, restore = world
    stopped = first.create(spec("s"), auto_remove=True)
    broken = first.create(spec("b"), auto_remove=True)
    kept = first.create(spec("k"))
    first.store.write_state(stopped.id, {**on_disk(first, stopped.id), "status": "stopped"})
    with open(first.store.state_path(broken.id), "w") as f:
        f.write("{cut short by a host crash")
    m, report = restore()
    assert sorted(report["removed"]) == sorted([stopped.id, broken.id])
    assert [c["name"] for c in m.list()] == ["k"] and kept.id in m.store.list_ids()


@pytest.mark.parametrize("restart_policy, manual, exit_code, away, restarts", [
    ("always", False, 0, False, True),
    ("always", True, 0, False, True),           # a user's stop holds only until restart
    ("unless-stopped", True, 0, False, False),
    ("unless-stopped", False, 0, False, True),
    ("on-failure", False, 1, True, True),       # failed while the daemon was away
    ("on-failure", False, 1, False, False),     # had failed for good before
    ("no", False, 1, True, False),
])
def test_restart_policies_at_daemon_start(world, restart_policy, manual, exit_code, away,
                                          restarts):
    first, restore = world
    c = first.create(spec("web", restart_policy=restart_policy))
    launched = first.start(c)
    first.runtime.watches.clear()
    first.runtime.exit(launched.pid, exit_code)     # PID 1 ended, no daemon listening...
    if not away:    # ... or one did, and recorded it before it went away
        first.store.write_state(c.id, {**on_disk(first, c.id), "status": "stopped",
                                       "exit_code": exit_code, "manually_stopped": manual,
                                       "pid": None})
        first.runtime.exits.clear()
    m, report = restore()
    assert (c.id in report["restarting"]) is restarts
    c2 = m.get("web")
    if restarts:
        assert not c2.state.manually_stopped
        m._timer.made[-1].fire()
        assert c2.status == Status.RUNNING


def test_template_in_use_is_the_managers_to_say(world):
    first, _restore = world
    c = first.create(spec("web"))
    with pytest.raises(errors.Conflict, match='template "minimal" is used by container.s. web'):
        first.remove_template("minimal")
    assert first.templates.exists("minimal")
    first.destroy(c.id)
    first.remove_template("minimal")
    assert not first.templates.exists("minimal")


def test_template_in_use_counts_broken_containers_by_their_config(world):
    first, restore = world
    c = first.create(spec("web"))
    with open(first.store.state_path(c.id), "w") as f:
        f.write("{")
    m, _ = restore()
    assert m.template_users("minimal") == ["web"]
    json.dumps(m.list())    # a broken one still lists
