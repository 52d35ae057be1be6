"""Container log format, rotation and reading (plain files, no root)."""

from __future__ import annotations

import json
import threading

from mcd.runtime import logs


def test_lines_streams_and_partial(tmp_path):
    path = str(tmp_path / "container.log")
    w = logs.LogWriter(path)
    w.write("stdout", b"one\ntw")
    w.write("stderr", b"err\n")
    w.write("stdout", b"o\nthree")
    w.close()
    entries = logs.read(path)
    assert [(e["stream"], e["log"]) for e in entries] == [
        ("stdout", "one\n"), ("stderr", "err\n"), ("stdout", "two\n"), ("stdout", "three")]
    for e in entries:
        assert e["time"].endswith("Z") and "T" in e["time"]
    # each line is one JSON object
    with open(path) as f:
        assert all(json.loads(line) for line in f)


def test_long_lines_are_split_but_lossless(tmp_path):
    path = str(tmp_path / "c.log")
    w = logs.LogWriter(path)
    data = b"x" * (logs.MAX_LINE * 2 + 10) + b"\n"
    w.write("stdout", data)
    w.close()
    entries = logs.read(path)
    assert len(entries) == 3
    assert "".join(e["log"] for e in entries).encode() == data


def test_invalid_utf8_is_replaced_not_fatal(tmp_path):
    path = str(tmp_path / "c.log")
    w = logs.LogWriter(path)
    w.write("stdout", b"\xff\xfe ok\n")
    w.close()
    assert logs.read(path)[0]["log"].endswith(" ok\n")


def test_rotation_keeps_three_files(tmp_path):
    path = str(tmp_path / "c.log")
    w = logs.LogWriter(path, max_size=1000, max_files=3)
    for i in range(200):
        w.write("stdout", b"line %04d\n" % i)
    w.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c.log", "c.log.1", "c.log.2"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 1000
    entries = logs.read(path)
    nums = [int(e["log"].split()[1]) for e in entries]
    assert nums == sorted(nums) and nums[-1] == 199     # oldest first, newest last
    assert [int(e["log"].split()[1]) for e in logs.read(path, tail=5)] == [195, 196, 197, 198, 199]
    assert logs.read(path, tail=0) == []


def test_read_missing_file(tmp_path):
    assert logs.read(str(tmp_path / "nope.log")) == []


def _wait_for(pred, what):
    import time
    for _ in range(1000):
        if pred():
            return
        time.sleep(0.005)
    raise AssertionError(f"follow never produced {what}")


def test_follow_sees_new_lines_and_rotation(tmp_path):
    path = str(tmp_path / "c.log")
    w = logs.LogWriter(path, max_size=300, max_files=3)
    w.write("stdout", b"old 1\nold 2\n")
    done = threading.Event()
    got = []

    def reader():
        for e in logs.follow(path, tail=1, poll_interval=0.005, stop=done.is_set):
            got.append(e["log"])

    t = threading.Thread(target=reader)
    t.start()
    _wait_for(lambda: got == ["old 2\n"], "the tail")
    for i in range(20):          # 20 lines of ~80 bytes rotate the 300-byte file often
        line = "new %02d\n" % i
        w.write("stdout", line.encode())
        _wait_for(lambda: got and got[-1] == line, line)
    w.close()
    done.set()
    t.join(5)
    assert not t.is_alive()
    assert got == ["old 2\n"] + ["new %02d\n" % i for i in range(20)]


def test_follow_stops_at_end_when_told(tmp_path):
    path = str(tmp_path / "c.log")
    w = logs.LogWriter(path)
    w.write("stderr", b"a\nb\n")
    w.close()
    assert [e["log"] for e in logs.follow(path, stop=lambda: True)] == ["a\n", "b\n"]
    assert [e["log"] for e in logs.follow(path, tail=1, stop=lambda: True)] == ["b\n"]
