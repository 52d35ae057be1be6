"""mcd.atomicfile: the one temp-and-rename writer; a failure at any step removes the temp
file (the full-disk cases run against a real tmpfs in tests/python/linux/test_full_disk.py)."""

from __future__ import annotations

import os
import stat

import pytest

from mcd import atomicfile
from mcd.atomicfile import write_atomic


def test_replaces_whole_file_with_mode(tmp_path):
    p = tmp_path / "f.json"
    write_atomic(str(p), b"one")
    write_atomic(str(p), b"two", mode=0o644, durable=False)
    assert p.read_bytes() == b"two"
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["f.json"]


def test_failed_rename_removes_the_temp_file(tmp_path):
    target = tmp_path / "dir"
    (target / "sub").mkdir(parents=True)      # rename of a file onto a non-empty dir fails
    with pytest.raises(IsADirectoryError):
        write_atomic(str(target), b"x")
    assert sorted(os.listdir(tmp_path)) == ["dir"]


def test_interrupted_write_removes_the_temp_file(tmp_path, monkeypatch):
    real_write = os.write

    def interrupted(fd, data):
        real_write(fd, bytes(data[:1]))
        raise KeyboardInterrupt
    monkeypatch.setattr(atomicfile.os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(str(tmp_path / "f"), b"abc")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_temp_names_are_hidden_and_unique(tmp_path):
    a, b = (atomicfile.temp_name(str(tmp_path / "state.json")) for _ in range(2))
    assert a != b
    for n in (a, b):
        base = os.path.basename(n)
        assert base.startswith(".state.json.") and base.endswith(".tmp")
