"""The supervisor's log writer writes what the monitor's LogWriter writes (format, line
splitting, rotation), a chunk at a time."""

import os

import pytest

from mcd.runtime import logs
from mcd.runtime.logs import MAX_LINE, LogWriter
from mcd.supervisor.server import BatchLogWriter

CHUNKS = [b"one\ntwo\n", b"par", b"tial\n", b"x" * (MAX_LINE + 10) + b"\n", b"\xff\xfe bad utf8\n",
          b"y" * (2 * MAX_LINE + 3), b"end\n", b"\n\n", b"no newline at the end"]


def _entries(path):
    return [(e["stream"], e["log"]) for e in logs.read(path, max_files=5)]


@pytest.mark.parametrize("max_size", [10 << 20, 300, 40000])
def test_batch_writer_writes_the_monitors_entries(tmp_path, max_size):
    a, b = str(tmp_path / "a.log"), str(tmp_path / "b.log")
    wa, wb = LogWriter(a, max_size=max_size, max_files=5), BatchLogWriter(b, max_size=max_size,
                                                                            max_files=5)
    for i, chunk in enumerate(CHUNKS):
        stream = "stderr" if i % 3 == 2 else "stdout"
        wa.write(stream, chunk)
        wb.write(stream, chunk)
    wa.close()
    wb.close()
    assert _entries(b) == _entries(a)
    names = sorted(os.listdir(tmp_path))
    assert [n.replace("a.log", "b.log") for n in names if n.startswith("a")] == \
        [n for n in names if n.startswith("b")]
    for name in names:      # every file under the size limit (but a file of one entry)
        size = os.path.getsize(tmp_path / name)
        assert size <= max_size or len(open(tmp_path / name, "rb").read().splitlines()) == 1


def test_one_chunk_one_write(tmp_path, monkeypatch):
    w = BatchLogWriter(str(tmp_path / "c.log"))
    calls = []
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: calls.append(len(data)) or real(fd, data))
    w.write("stdout", b"y\n" * 5000)
    assert len(calls) == 1
    w.close()
