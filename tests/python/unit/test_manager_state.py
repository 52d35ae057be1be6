"""The manager's state machine, driven through its operations with a fake runtime (see
manager_fakes.py for what is faked and why): every allowed and refused transition, what
reaches state.json and the event bus, and state.json's format across an upgrade."""

from __future__ import annotations

import os

import pytest

from manager_fakes import FakeRuntime, make_manager, on_disk, spec
from mcd import errors
from mcd.manager.state import State, Status, check_transition
from mcd.runtime.interface import SIGKILL, SIGTERM

S = Status
# The state machine as the design says it (docs/design.md, mcd/manager/state.py), written
# out here on its own so that a change to the code's table shows up as a failure.
EXPECTED = {
    (S.CREATED, S.STARTING), (S.STOPPED, S.STARTING),
    (S.STARTING, S.RUNNING), (S.STARTING, S.CREATED), (S.STARTING, S.STOPPED),
    (S.RUNNING, S.PAUSED), (S.PAUSED, S.RUNNING),
    (S.RUNNING, S.STOPPED), (S.PAUSED, S.STOPPED),
}


@pytest.mark.parametrize("frm", list(Status))
@pytest.mark.parametrize("to", list(Status))
def test_every_transition_is_allowed_or_refused(frm, to):
    if (frm, to) in EXPECTED:
        check_transition(frm, to, "c")
    else:
        with pytest.raises(errors.Conflict, match=f"cannot go from {frm} to {to}"):
            check_transition(frm, to, "c")


@pytest.fixture
def m(tmp_path):
    m = make_manager(str(tmp_path))
    yield m
    m.close()


def events(m):
    return [e["type"] for e in m.events.recent()]


def test_create_start_exit_persists_and_publishes_each_step(m):
    c = m.create(spec("web"))
    assert c.status == S.CREATED and on_disk(m, c.id)["status"] == "created"
    launched = m.start(c)
    assert c.status == S.RUNNING
    disk = on_disk(m, c.id)
    assert disk["status"] == "running" and disk["pid"] == launched.pid
    assert disk["monitor_pid"] == launched.monitor_pid and "previous_status" not in disk
    assert m.runtime.starts[-1][2] == [f"/fake/cgroup/{c.id}/cgroup.procs"]
    m.runtime.exit(launched.pid, 3)
    assert c.status == S.STOPPED and on_disk(m, c.id)["exit_code"] == 3
    assert m.wait(c)["exit_code"] == 3
    assert c.id not in m.cgroups.groups, "the cgroup goes with the exit"
    assert events(m) == ["created", "started", "died"]
    assert m.events.recent()[1]["pid"] == launched.pid
    assert m.events.recent()[2]["exit_code"] == 3
    m.start(c)      # stopped -> starting -> running again
    assert c.status == S.RUNNING and events(m)[-1] == "started"


def test_pause_and_unpause_freeze_the_cgroup(m):
    c = m.create(spec())
    m.start(c)
    m.pause(c.id)
    assert c.status == S.PAUSED and c.cgroup.frozen and on_disk(m, c.id)["status"] == "paused"
    m.unpause(c.id)
    assert c.status == S.RUNNING and not c.cgroup.frozen
    assert events(m)[-2:] == ["paused", "unpaused"]
    m.pause(c.id)
    m.stop(c.id)        # a paused container stops too: thawed, then it exits
    assert c.status == S.STOPPED and events(m)[-1] == "died"


def test_refused_operations_change_nothing(m):
    c = m.create(spec("web"))
    before = on_disk(m, c.id)
    for op, exc in [(lambda: m.pause(c.id), errors.NotRunning),
                    (lambda: m.unpause(c.id), errors.Conflict),
                    (lambda: m.kill(c.id), errors.NotRunning),
                    (lambda: m.top(c.id), errors.NotRunning),
                    (lambda: m.exec(c.id, {"args": ["true"]}, detach=True), errors.NotRunning)]:
        with pytest.raises(exc):
            op()
    assert on_disk(m, c.id) == before and c.status == S.CREATED
    m.start(c)
    with pytest.raises(errors.Conflict, match="already running"):
        m.start(c.id)
    with pytest.raises(errors.Conflict, match="not paused"):
        m.unpause(c.id)
    with pytest.raises(errors.Conflict, match="stop it first"):
        m.destroy(c.id)
    m.pause(c.id)
    with pytest.raises(errors.Conflict, match="already paused"):
        m.pause(c.id)
    with pytest.raises(errors.NotRunning):
        m.exec(c.id, {"args": ["true"]}, detach=True)
    assert c.status == S.PAUSED


def test_a_failed_start_goes_back_to_where_it_came_from(m):
    c = m.create(spec())
    m.runtime.fail_next_start = errors.CommandNotFound("exec /nope: No such file or directory")
    with pytest.raises(errors.CommandNotFound) as exc:
        m.start(c)
    assert exc.value.container == c.name and exc.value.message.startswith(f'container "{c.name}"')
    disk = on_disk(m, c.id)
    assert disk["status"] == "created" and disk["exit_code"] == 127
    assert "No such file" in disk["error"] and "previous_status" not in disk
    assert c.id not in m.cgroups.groups
    launched = m.start(c)
    m.runtime.exit(launched.pid, 0)
    m.runtime.fail_next_start = errors.SetupError("mount: Permission denied")
    with pytest.raises(errors.SetupError):
        m.start(c)
    assert c.status == S.STOPPED and on_disk(m, c.id)["status"] == "stopped"
    assert "started" not in events(m)[-1:]


def test_stop_sends_the_stop_signal_then_sigkill(m):
    c = m.create(spec(stop_signal="SIGTERM"))
    launched = m.start(c)
    m.runtime.ignore_signals = {SIGTERM}
    m.stop(c.id, timeout=0)
    assert m.runtime.signals == [(launched.pid, SIGTERM), (launched.pid, SIGKILL)]
    assert c.status == S.STOPPED and c.state.manually_stopped
    assert c.state.exit_code == 128 + SIGKILL


def test_broken_container_can_only_be_destroyed(tmp_path):
    m = make_manager(str(tmp_path))
    c = m.create(spec("ok"))
    with open(m.store.state_path(c.id), "w") as f:
        f.write("{not json")
    m2 = make_manager(str(tmp_path))
    m2.restore()
    b = m2.get("ok")
    assert b.status == S.BROKEN and "not valid JSON" in b.state.error
    with pytest.raises(errors.Conflict, match="broken"):
        m2.start(b)
    with pytest.raises(errors.Conflict, match="broken"):
        m2.update(b.id, {"memory": "64m"})
    m2.destroy(b.id)
    m2.store.wait_purged()
    assert not os.path.exists(m2.store.container_dir(b.id))


def test_attach_needs_the_callers_three_fds_before_anything_is_made(m):
    with pytest.raises(errors.InvalidArgument, match="3 fds"):
        m.run(spec("x"), attach=True, fds=[5, 6])
    assert m.list() == [] and m.store.list_ids() == []
    _c, _ = m.run(spec("t", process={"args": ["sh"], "terminal": True}), attach=True)
    assert m.runtime.starts[-1][3].tty_to_caller
    _c, _ = m.run(spec("a"), attach=True, fds=[5, 6, 7], stdin=False)
    st = m.runtime.starts[-1][3]
    assert (st.stdin, st.stdout, st.stderr) == (None, 6, 7)
    c = m.get("a")
    m.runtime.exit(c.state.pid, 0)
    m.start(c, attach=True, fds=[5, 6, 7], stdin=True)
    assert m.runtime.starts[-1][3].stdin == 5


def test_exec_builds_the_process_and_stdio_from_plain_fds(m):
    c = m.create(spec(process={"args": ["sh"], "env": ["A=1", "B=2"]}))
    m.start(c)
    with pytest.raises(errors.InvalidArgument, match="exec needs"):
        m.exec(c.id, {"args": ["true"]}, fds=[])
    h = m.exec(c.id, {"args": ["env"], "env": ["B=3"]}, fds=[3, 4, 5])
    pid, process, cg, stdio = m.runtime.execs[-1]
    assert pid == c.state.pid and process.env == ["A=1", "B=3"]
    assert (stdio.stdin, stdio.stdout, stdio.stderr) == (None, 4, 5)
    assert events(m)[-1] == "exec" and m.events.recent()[-1]["pid"] == h.pid


# ------------------------------------------------------------------ state.json across upgrades

OLD_CREATED = {"status": "created", "restart_count": 0, "exit_code": None, "oom_killed": False,
               "started_at": None, "finished_at": None, "pid": None, "monitor_pid": None}
OLD_RUNNING = {**OLD_CREATED, "status": "running", "pid": 4242, "pid_start_time": 99,
               "monitor_pid": 4241, "monitor_start_time": 98, "started_at": "2026-01-01T00:00:00Z",
               "error": None, "memory_peak": None, "manually_stopped": False}
OLD_STOPPED = {**OLD_RUNNING, "status": "stopped", "pid": None, "exit_code": 137, "signal": 9,
               "oom_killed": True, "memory_limit": 16777216, "memory_peak": 16000000,
               "finished_at": "2026-01-01T00:01:00Z", "manually_stopped": True,
               "restart_count": 2}
OLD_STARTING = {**OLD_CREATED, "status": "starting", "previous_status": "stopped"}


@pytest.mark.parametrize("old", [OLD_CREATED, OLD_RUNNING, OLD_STOPPED, OLD_STARTING],
                         ids=["created", "running", "stopped", "starting"])
def test_state_json_written_by_the_previous_daemon_reads_and_writes_back_the_same(old):
    assert State.from_dict(old).to_dict() == old


def test_state_json_keeps_keys_it_does_not_know_and_refuses_unknown_status():
    newer = {**OLD_CREATED, "network": {"ip": "10.0.0.2"}}
    assert State.from_dict(newer).to_dict() == newer
    with pytest.raises(ValueError):
        State.from_dict({**OLD_CREATED, "status": "exploded"})


def test_a_new_container_on_disk_has_the_first_daemons_keys(m):
    c = m.create(spec())
    assert on_disk(m, c.id) == OLD_CREATED


def test_fake_runtime_is_what_the_manager_talks_to(tmp_path):
    rt = FakeRuntime()
    m = make_manager(str(tmp_path), runtime=rt)
    assert m.runtime is rt
    m.close()
    assert rt.closed
