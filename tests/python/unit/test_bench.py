"""Unit tests of the benchmark harness's pure parts: /proc parsing on fake trees, statistics,
the interleaving schedule, the strace phase parser and the report renderer.

The measurements themselves need root and real runtimes; they run in `make bench`.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

import procstat  # noqa: E402
import report  # noqa: E402
import timing  # noqa: E402
from mcapi import _dechunk  # noqa: E402


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fake_proc(tmp_path: Path, pid: int, pss: int, rss: int, threads: dict[int, tuple[int, int, int]]) -> Path:
    d = tmp_path / str(pid)
    (d / "task").mkdir(parents=True)
    (d / "smaps_rollup").write_text(f"00400000-7fff [rollup]\nRss:  {rss} kB\nPss:  {pss} kB\n"
                                    f"Pss_Anon:  {pss // 2} kB\n")
    (d / "status").write_text(f"Name:\tmcd\nVmRSS:\t   {rss} kB\nThreads:\t{len(threads)}\n")
    for tid, (ns, vol, invol) in threads.items():
        t = d / "task" / str(tid)
        t.mkdir()
        (t / "schedstat").write_text(f"{ns} 0 0\n")
        (t / "status").write_text(f"voluntary_ctxt_switches:\t{vol}\nnonvoluntary_ctxt_switches:\t{invol}\n")
    return tmp_path


def test_pss_and_memory_read_the_right_fields(tmp_path):
    proc = fake_proc(tmp_path, 10, pss=300, rss=900, threads={10: (5, 1, 2), 11: (7, 3, 4)})
    fake_proc(tmp_path, 11, pss=100, rss=200, threads={11: (0, 0, 0)})
    assert procstat.pss_kib(10, proc) == 300
    assert procstat.memory(10, proc) == {"rss_kib": 900, "pss_kib": 300, "threads": 2}
    got = procstat.pss_sum([10, 11, 99], proc)      # 99 is gone: skipped, not counted
    assert got == {"processes": 2, "pss_kib": 400, "pss_per_process_kib": 200}


def test_process_cpu_counts_children(tmp_path):
    d = tmp_path / "7"
    d.mkdir()
    # pid (comm with a ") " inside) state ppid ... utime=10 stime=20 cutime=30 cstime=40
    (d / "stat").write_text("7 (a) b) S 1 7 7 0 -1 4194560 0 0 0 0 10 20 30 40 20 0 1 0 99 0 0\n")
    tck = __import__("os").sysconf("SC_CLK_TCK")
    assert procstat.process_cpu_ms(7, tmp_path) == pytest.approx(100 * 1000 / tck)


def test_cpu_and_switches_sum_over_threads(tmp_path):
    proc = fake_proc(tmp_path, 10, pss=1, rss=1, threads={10: (5_000, 1, 2), 11: (7_000, 3, 4)})
    assert procstat.cpu_and_switches(10, proc) == (12_000, 10)


def test_monitor_pids_only_live_ints(tmp_path, monkeypatch):
    root = tmp_path / "root"
    for cid, data in {"a": {"monitor_pid": 1234}, "b": {"monitor_pid": None}, "c": {"monitor_pid": 4321}}.items():
        (root / "containers" / cid).mkdir(parents=True)
        (root / "containers" / cid / "state.json").write_text(json.dumps(data))
    (root / "containers" / "d").mkdir()
    (root / "containers" / "d" / "state.json").write_text("{not json")
    proc = tmp_path / "proc"
    (proc / "1234").mkdir(parents=True)
    monkeypatch.setattr(procstat, "PROC", proc)
    assert procstat.monitor_pids(root) == [1234]


def test_summary_median_quartiles_and_empty():
    s = timing.Samples("k", "label", [5.0, 1.0, 3.0, 2.0, 4.0])
    got = s.summary()
    assert (got["median"], got["min"], got["max"], got["n"]) == (3.0, 1.0, 5.0, 5)
    assert got["q1"] <= got["median"] <= got["q3"]
    assert timing.Samples("k", "l", error="boom").summary() == {
        "key": "k", "label": "l", "n": 0, "error": "boom", "note": ""}


def test_interleaved_blocks_lead_in_and_failures(monkeypatch):
    calls: list[str] = []

    def fake_time_and_cpu(argv, env):
        calls.append(argv[0])
        if argv[0] == "bad" and calls.count("bad") > 3:      # warm-up, lead-in, 1 sample
            raise timing.CommandFailed("bad exited 1")
        return 1.0, 0.5
    monkeypatch.setattr(timing, "time_and_cpu", fake_time_and_cpu)
    tools = [timing.Tool("a", "A", lambda n: ["a"]), timing.Tool("b", "B", lambda n: ["b"]),
             timing.Tool("bad", "Bad", lambda n: ["bad"])]
    out = timing.interleaved(tools, rounds=3, block=2, warmup=1, seed=1, log=lambda m: None)
    # per good tool: 1 warm-up + 3 rounds * (1 lead-in + 2 measured)
    assert calls.count("a") == calls.count("b") == 10
    assert len(out["a"].ms) == len(out["b"].ms) == 6
    assert out["a"].summary()["cpu_median"] == 0.5
    # blocks are contiguous: each good tool's 3 calls in a round come together
    runs = [c for c in calls[3:] if c != "bad"]
    assert all(len(set(runs[i:i + 3])) == 1 for i in range(0, len(runs), 3))
    assert out["bad"].error == "bad exited 1" and len(out["bad"].ms) == 1


def test_time_once_raises_on_failure_and_times_success():
    wall, cpu = timing.time_and_cpu(["/usr/bin/python3", "-I", "-S", "-c", "sum(range(10**6))"], timing.base_env())
    assert wall > 0 and 0 < cpu <= wall * 1.5 + 5
    with pytest.raises(timing.CommandFailed):
        timing.time_once(["/bin/false"], timing.base_env())


def test_base_env_has_no_pyenv_shims():
    assert "pyenv" not in timing.base_env()["PATH"]


def test_dechunk():
    assert _dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") == b"hello world"


def test_strace_timeline_markers(tmp_path):
    prof = _load("profile_start")
    trace = tmp_path / "t"
    lines = [
        '100 10.000000 accept4(6, {sa_family=AF_UNIX}, [110 => 2], SOCK_CLOEXEC) = 11',
        '101 10.001000 recvmsg(11, {msg_iov=[{iov_base="POST /v1/containers HTTP/1.1\\r\\n"...',
        '101 10.002000 mkdir("/sys/fs/cgroup/cpu/mcbench/abc", 0755) = 0',
        '101 10.003000 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD) = 102',
        '103 10.010000 execve("/bin/true", ["/bin/true"], 0x7f) = 0',
        '101 10.020000 rename("/var/lib/x/containers/abc", "/var/lib/x/containers/.abc.del") = 0',
        '101 10.030000 rmdir("/var/lib/x/containers/.abc.del") = 0',
        '101 10.031000 sendto(11, "HTTP/1.1 200 OK"..., 217, 0, NULL, 0) = 217',
    ]
    trace.write_text("\n".join(lines) + "\n")
    runs = prof.strace_timeline(trace)
    assert len(runs) == 1
    got = dict(runs[0])
    assert got["request read"] == pytest.approx(1.0)
    assert got["pid 1: execve"] == pytest.approx(10.0)
    assert got["response sent"] == pytest.approx(31.0)
    table = prof.timeline_table(runs)
    assert "pid 1: execve" in table and "+   7.0" in table     # exec at 10.0, 7.0 after the fork


def test_report_marks_missing_rows_and_keeps_prose(tmp_path):
    res = {
        "meta": {"date": "D", "machine": {}, "versions": {"runc": "1.1"}, "params": {}},
        "not_measured": {"mcctl-dist": "dist/mcctl does not exist"},
        "start": {"runc": {"key": "runc", "label": "runc run", "n": 2, "median": 20.0, "min": 19.0,
                           "max": 21.0, "q1": 19.5, "q3": 20.5, "samples": [19.0, 21.0],
                           "ratio_to_runc": 1.0, "error": None, "note": ""}},
    }
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# B\n\nhand-written\n\n{report.BEGIN}\nold\n{report.END}\n\ntail prose\n")
    report.update_doc(doc, report.render(res, tmp_path))
    text = doc.read_text()
    assert "hand-written" in text and "tail prose" in text and "old" not in text
    assert "| runc run | 20.0 | 19.0 | 21.0 | 2 | 1.00 | – |" in text
    assert "**not measured**: dist/mcctl does not exist" in text


def test_report_plots(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need the bench extra: pip install -e '.[bench]'")
    res = {"start": {"runc": {"key": "runc", "label": "runc run", "n": 2, "median": 20.0, "min": 19.0,
                              "max": 21.0, "samples": [19.0, 21.0]}}}
    made = report.plots(res, tmp_path / "bench")
    assert [p.name for p in made] == ["start-latency.png"] and made[0].stat().st_size > 1000
