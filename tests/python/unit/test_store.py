"""mcd.store: atomic files and whole-directory creates, on a real temp filesystem."""

import json
import os

import pytest

from mcd.store import CorruptState, Store, atomic_write_json, read_json


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "state.json"
    atomic_write_json(str(p), {"a": 1})
    atomic_write_json(str(p), {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert os.listdir(tmp_path) == ["state.json"]
    assert (p.stat().st_mode & 0o777) == 0o600


def test_read_json_missing_and_corrupt(tmp_path):
    assert read_json(str(tmp_path / "nope.json")) is None
    bad = tmp_path / "bad.json"
    bad.write_text("{half")
    with pytest.raises(CorruptState) as e:
        read_json(str(bad))
    assert "bad.json" in str(e.value) and "not valid JSON" in e.value.why


def test_create_appears_complete_and_half_made_are_cleaned(tmp_path):
    s = Store(str(tmp_path))
    s.create("abc", {"id": "abc"}, {"status": "created"})
    assert s.list_ids() == ["abc"]
    assert s.read_config("abc") == {"id": "abc"}
    assert s.read_state("abc") == {"status": "created"}
    os.mkdir(tmp_path / "containers" / ".def.new")       # a create that crashed half-way
    assert s.list_ids() == ["abc"]
    assert s.clean_half_made() == [".def.new"]
    assert sorted(os.listdir(tmp_path / "containers")) == ["abc"]


def test_create_refuses_an_existing_id_and_cleans_its_temp(tmp_path):
    s = Store(str(tmp_path))
    s.create("abc", {}, {})
    os.makedirs(tmp_path / "containers" / "abc" / "upper" / "x")    # rename onto non-empty dir fails
    with pytest.raises(Exception):
        s.create("abc", {"id": "other"}, {})
    assert sorted(os.listdir(tmp_path / "containers")) == ["abc"]


def test_remove_is_rename_then_delete(tmp_path):
    s = Store(str(tmp_path))
    s.create("abc", {}, {})
    (tmp_path / "containers" / "abc" / "container.log").write_text("x")
    s.remove("abc")
    assert os.listdir(tmp_path / "containers") == []
    s.remove("abc")     # idempotent


def test_write_state_updates(tmp_path):
    s = Store(str(tmp_path))
    s.create("abc", {}, {"status": "created"})
    s.write_state("abc", {"status": "running", "pid": 5})
    assert s.read_state("abc")["pid"] == 5


def _count_fsyncs(monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    return calls


def test_durable_create_syncs_files_and_both_dirs(tmp_path, monkeypatch):
    s = Store(str(tmp_path))
    calls = _count_fsyncs(monkeypatch)
    s.create("abc", {"id": "abc"}, {"status": "created"})
    assert len(calls) == 4          # config, state, the new dir, containers/
    assert sorted(os.listdir(tmp_path / "containers" / "abc")) == ["config.json", "state.json"]


def test_auto_remove_container_syncs_only_its_config(tmp_path, monkeypatch):
    # config.json must survive a host crash so restore can tell the leftover is --rm.
    s = Store(str(tmp_path))
    calls = _count_fsyncs(monkeypatch)
    s.create("abc", {"id": "abc", "auto_remove": True}, {"status": "created"}, durable=False)
    assert len(calls) == 2          # config and the new dir, never state.json
    s.write_state("abc", {"status": "running"}, durable=False)
    s.remove("abc", durable=False)
    assert len(calls) == 2
    assert os.listdir(tmp_path / "containers") == []


def test_background_remove_hides_at_once_and_trash_is_cleaned(tmp_path):
    s = Store(str(tmp_path))
    s.create("abc", {}, {})
    s.remove("abc", background=True)
    assert s.list_ids() == [] and not os.path.exists(s.container_dir("abc"))
    s.wait_purged()
    assert os.listdir(tmp_path / "containers") == []
    os.makedirs(tmp_path / "containers" / ".dead.del" / "x")     # a delete a crash cut short
    s.clean_trash()
    assert os.listdir(tmp_path / "containers") == []
