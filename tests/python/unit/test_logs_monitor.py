"""Monitor pieces that need no kernel features: exit records, atomic writes, copying."""

from __future__ import annotations

import fcntl
import json
import os
import threading

from mcd.runtime import monitor


def test_exit_record_for_exit_and_signal():
    rec = monitor.exit_record(3 << 8)
    assert rec["exit_code"] == 3 and rec["signal"] is None
    rec = monitor.exit_record(9)       # killed by SIGKILL
    assert rec["exit_code"] == 137 and rec["signal"] == 9
    assert rec["finished_at"].endswith("Z")


def test_write_json_atomic(tmp_path):
    path = str(tmp_path / "exit.json")
    monitor.write_json_atomic(path, {"exit_code": 0})
    monitor.write_json_atomic(path, {"exit_code": 1})
    assert json.loads(open(path).read()) == {"exit_code": 1}
    assert os.listdir(tmp_path) == ["exit.json"]


def test_copy_output_to_log_and_a_nonblocking_slow_client(tmp_path):
    """The client's fd is O_NONBLOCK and read slowly: nothing may be dropped."""
    src_r, src_w = os.pipe()
    cli_r, cli_w = os.pipe()
    fcntl.fcntl(cli_w, fcntl.F_SETFL, fcntl.fcntl(cli_w, fcntl.F_GETFL) | os.O_NONBLOCK)
    payload = b"".join(b"line %06d\n" % i for i in range(30000))    # > a pipe buffer
    got = bytearray()

    def client():
        while True:
            data = os.read(cli_r, 4096)
            if not data:
                return
            got.extend(data)

    def producer():
        os.write(src_w, payload)
        os.close(src_w)

    t1 = threading.Thread(target=client)
    t2 = threading.Thread(target=producer)
    t1.start()
    t2.start()
    log = monitor.LogWriter(str(tmp_path / "c.log"))
    monitor.copy_output({src_r: "stdout"}, log, {"stdout": cli_w})
    log.close()
    os.close(cli_w)
    t1.join(10)
    t2.join(10)
    assert bytes(got) == payload


def test_copy_output_survives_a_client_that_left(tmp_path):
    src_r, src_w = os.pipe()
    cli_r, cli_w = os.pipe()
    os.close(cli_r)                       # EPIPE on the first write
    os.write(src_w, b"a\nb\n")
    os.close(src_w)
    log = monitor.LogWriter(str(tmp_path / "c.log"))
    monitor.copy_output({src_r: "stdout"}, log, {"stdout": cli_w})
    log.close()
    from mcd.runtime import logs
    assert [e["log"] for e in logs.read(str(tmp_path / "c.log"))] == ["a\n", "b\n"]
