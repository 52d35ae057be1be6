"""The manager's rules: restart policy and back-off, --rm, as pure functions and carried out
by the manager over a fake runtime (manager_fakes.py says what is faked and why)."""

from __future__ import annotations

import os

import pytest

from manager_fakes import FakeTimers, make_manager, spec
from mcd import errors
from mcd.manager import policy
from mcd.manager.policy import AfterExit, AtStart, Found
from mcd.manager.state import State, Status


@pytest.mark.parametrize("restart_policy, exit_code, count, manual, expected", [
    ("no", 1, 0, False, False),
    ("always", 0, 50, False, True),
    ("always", 1, 0, True, False),              # a user's stop holds every policy
    ("unless-stopped", 0, 0, False, True),
    ("unless-stopped", 0, 0, True, False),
    ("on-failure", 0, 0, False, False),         # success is not a failure
    ("on-failure", 1, 99, False, True),         # no limit
    ("on-failure:3", 1, 2, False, True),
    ("on-failure:3", 1, 3, False, False),       # the limit reached
    ("on-failure:3", 137, 0, False, True),
])
def test_should_restart(restart_policy, exit_code, count, manual, expected):
    st = State(status=Status.STOPPED, exit_code=exit_code, restart_count=count,
               manually_stopped=manual)
    assert policy.should_restart(restart_policy, st) is expected


def test_restart_back_off_doubles_from_a_tenth_of_a_second_up_to_ten():
    assert [policy.restart_delay(n) for n in range(9)] == \
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0]
    assert policy.restart_delay(1000) == 10.0


@pytest.mark.parametrize("auto_remove, restart, expected", [
    (False, False, AfterExit.KEEP), (True, False, AfterExit.REMOVE),
    (False, True, AfterExit.RESTART), (True, True, AfterExit.RESTART)])
def test_after_exit(auto_remove, restart, expected):
    assert policy.after_exit(auto_remove, restart) == expected


@pytest.mark.parametrize("status, alive, expected", [
    (Status.RUNNING, True, Found.ADOPT), (Status.PAUSED, True, Found.ADOPT),
    (Status.RUNNING, False, Found.RECORD_EXIT), (Status.PAUSED, False, Found.RECORD_EXIT),
    (Status.STARTING, False, Found.UNDO_START), (Status.STARTING, True, Found.UNDO_START),
    (Status.CREATED, False, Found.LEAVE), (Status.STOPPED, False, Found.LEAVE),
    (Status.BROKEN, False, Found.LEAVE)])
def test_restore_action(status, alive, expected):
    assert policy.restore_action(status, alive) == expected


@pytest.mark.parametrize("restart_policy, st, rm, away, expected", [
    ("no", dict(status=Status.STOPPED), True, False, (AtStart.REMOVE, False)),
    (None, dict(status=Status.BROKEN), True, False, (AtStart.REMOVE, False)),
    (None, dict(status=Status.BROKEN), False, False, (AtStart.KEEP, False)),
    ("always", dict(status=Status.STOPPED), True, False, (AtStart.RESTART, False)),
    ("always", dict(status=Status.RUNNING), False, False, (AtStart.KEEP, False)),
    ("always", dict(status=Status.STOPPED, manually_stopped=True), False, False,
     (AtStart.RESTART, True)),
    ("unless-stopped", dict(status=Status.STOPPED, manually_stopped=True), False, False,
     (AtStart.KEEP, False)),
    ("unless-stopped", dict(status=Status.STOPPED), False, False, (AtStart.RESTART, False)),
    ("on-failure", dict(status=Status.STOPPED, exit_code=1), False, True, (AtStart.RESTART, False)),
    ("on-failure", dict(status=Status.STOPPED, exit_code=1), False, False, (AtStart.KEEP, False)),
    ("on-failure", dict(status=Status.STOPPED, exit_code=0), False, True, (AtStart.KEEP, False)),
    ("no", dict(status=Status.STOPPED, exit_code=1), False, True, (AtStart.KEEP, False)),
])
def test_at_daemon_start(restart_policy, st, rm, away, expected):
    assert policy.at_daemon_start(restart_policy, State(**st), rm, away) == expected


# ------------------------------------------------------------------ carried out by the manager

@pytest.fixture
def timers():
    return FakeTimers()


@pytest.fixture
def m(tmp_path, timers):
    m = make_manager(str(tmp_path), timers=timers)
    yield m
    m.close()


def test_on_failure_restarts_with_back_off_until_its_limit(m, timers):
    c = m.create(spec(restart_policy="on-failure:2"))
    m.start(c)
    for n, delay in enumerate([0.1, 0.2]):
        m.runtime.exit(c.state.pid, 1)
        assert c.status == Status.STOPPED and timers.delays[-1] == delay
        timers.made[-1].fire()
        assert c.status == Status.RUNNING and c.state.restart_count == n + 1
    m.runtime.exit(c.state.pid, 1)
    assert len(timers.made) == 2 and c.status == Status.STOPPED    # the limit: no third
    m.start(c)      # a user's start counts afresh
    assert c.state.restart_count == 0


def test_no_restart_after_success_or_a_users_stop(m, timers):
    ok = m.create(spec(restart_policy="on-failure"))
    m.start(ok)
    m.runtime.exit(ok.state.pid, 0)
    always = m.create(spec(restart_policy="always"))
    m.start(always)
    m.stop(always.id)
    assert timers.made == [] and ok.status == always.status == Status.STOPPED


def test_a_stop_cancels_a_pending_restart(m, timers):
    c = m.create(spec(restart_policy="always"))
    m.start(c)
    m.runtime.exit(c.state.pid, 0)
    pending = timers.made[-1]
    m.stop(c.id)
    assert pending.cancelled and c.restart_timer is None


def test_a_failed_restart_by_policy_is_recorded(m, timers):
    c = m.create(spec(restart_policy="always"))
    m.start(c)
    m.runtime.exit(c.state.pid, 1)
    m.runtime.fail_next_start = errors.SetupError("mount: no space")
    timers.made[-1].fire()
    assert c.status == Status.STOPPED and "no space" in c.state.error


def test_rm_removes_the_container_when_it_exits(m):
    c = m.create(spec(), auto_remove=True)
    m.start(c)
    m.runtime.exit(c.state.pid, 0)
    assert c.destroyed and m.list() == []
    m.store.wait_purged()
    assert not os.path.exists(m.store.container_dir(c.id))
    assert [e["type"] for e in m.events.recent()][-2:] == ["died", "destroyed"]


def test_rm_with_a_restart_policy_restarts_first(m, timers):
    c = m.create(spec(restart_policy="on-failure:1"), auto_remove=True)
    m.start(c)
    m.runtime.exit(c.state.pid, 1)
    assert not c.destroyed and timers.delays == [0.1]
    timers.made[-1].fire()
    m.runtime.exit(c.state.pid, 1)     # the limit reached: now it goes
    assert c.destroyed


def test_rm_container_whose_start_fails_is_removed(m):
    m.runtime.fail_next_start = errors.CommandNotFound("exec nope: No such file or directory")
    with pytest.raises(errors.CommandNotFound):
        m.run(spec("gone"), auto_remove=True)
    assert m.list() == []
    m.runtime.fail_next_start = errors.CommandNotFound("exec nope: No such file or directory")
    with pytest.raises(errors.CommandNotFound):
        m.run(spec("kept"))
    assert [c["name"] for c in m.list()] == ["kept"]


def test_rm_container_whose_separate_start_fails_is_removed(m):
    # The Docker API creates, then starts (docker run --rm): the rule is the start's, as in
    # dockerd, not only run's. A client waiting for "removed" would otherwise wait for ever.
    c = m.create(spec("later"), auto_remove=True)
    m.runtime.fail_next_start = errors.Conflict("port 0.0.0.0:80/tcp is already published")
    with pytest.raises(errors.Conflict):
        m.start(c)
    assert c.destroyed and m.list() == []
    assert [e["type"] for e in m.events.recent()][-1] == "destroyed"
    m.runtime.fail_next_start = errors.Conflict("port 0.0.0.0:80/tcp is already published")
    kept = m.create(spec("kept"))
    with pytest.raises(errors.Conflict):
        m.start(kept)
    assert [x["name"] for x in m.list()] == ["kept"]


def test_rm_container_already_running_is_not_removed_by_a_second_start(m):
    c = m.create(spec(), auto_remove=True)
    m.start(c)
    with pytest.raises(errors.Conflict):
        m.start(c)
    assert not c.destroyed


def test_rm_container_state_writes_are_not_synced(m, monkeypatch):
    synced = []
    import mcd.store as store_mod
    real = store_mod.atomic_write_json
    monkeypatch.setattr(store_mod, "atomic_write_json",
                        lambda path, obj, mode=0o600, durable=True: (
                            synced.append((os.path.basename(path), durable)),
                            real(path, obj, mode, durable))[1])
    c = m.create(spec(), auto_remove=True)
    m.start(c)
    assert synced and all(name == "state.json" and not durable for name, durable in synced)
