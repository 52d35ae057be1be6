"""Conversions and file parsers (pure logic) and the resource validation messages."""

import pytest

from mcd.errors import InvalidArgument
from mcd.runtime.cgroups import convert
from mcwire.spec import Resources, cpus_to_quota

MiB = 1024 * 1024


@pytest.mark.parametrize("shares, weight", [(2, 1), (262144, 10000), (1024, 39), (512, 20),
                                            (128, 5), (131073, 5000)])
def test_shares_to_weight_known_points(shares, weight):
    # The crun/systemd formula 1 + ((shares - 2) * 9999) // 262142.
    assert convert.shares_to_weight(shares) == weight


def test_shares_to_weight_is_monotonic_and_in_range():
    prev = 0
    for s in range(2, 262145, 97):
        w = convert.shares_to_weight(s)
        assert 1 <= w <= 10000 and w >= prev
        prev = w


@pytest.mark.parametrize("shares", [2, 3, 100, 1024, 5000, 99999, 262143, 262144])
def test_weight_back_to_shares_is_close(shares):
    back = convert.weight_to_shares(convert.shares_to_weight(shares))
    assert back <= shares and shares - back <= 27


def test_weight_ends():
    assert convert.weight_to_shares(1) == 2
    assert convert.weight_to_shares(10000) == 262144


@pytest.mark.parametrize("bad", [0, 1, 262145, -5])
def test_shares_out_of_range(bad):
    with pytest.raises(ValueError):
        convert.shares_to_weight(bad)


@pytest.mark.parametrize("bad", [0, 10001])
def test_weight_out_of_range(bad):
    with pytest.raises(ValueError):
        convert.weight_to_shares(bad)


def test_cpu_max_format_and_parse():
    assert convert.format_cpu_max(50000, 100000) == "50000 100000"
    assert convert.format_cpu_max(None, None) == "max 100000"
    assert convert.format_cpu_max(-1, 20000) == "max 20000"
    assert convert.parse_cpu_max("max 100000\n") == (None, 100000)
    assert convert.parse_cpu_max("150000 100000") == (150000, 100000)


def test_cpus_to_quota_feeds_cpu_max():
    q, p = cpus_to_quota(0.5)
    assert convert.format_cpu_max(q, p) == "50000 100000"
    q, p = cpus_to_quota(1.5, 50000)
    assert (q, p) == (75000, 50000)


def test_v2_swap_is_memory_swap_minus_memory():
    assert convert.v2_swap_max(64 * MiB, 96 * MiB) == str(32 * MiB)
    assert convert.v2_swap_max(64 * MiB, 64 * MiB) == "0"
    assert convert.v2_swap_max(64 * MiB, -1) == "max"
    assert convert.v2_swap_max(64 * MiB, None) is None
    with pytest.raises(ValueError):
        convert.v2_swap_max(None, 96 * MiB)


@pytest.mark.parametrize("text, value", [("max\n", None), ("-1", None), ("9223372036854771712\n", None),
                                         ("33554432\n", 33554432), ("0", 0), ("", None)])
def test_parse_limit(text, value):
    assert convert.parse_limit(text) == value


def test_format_limit():
    assert convert.format_limit(None, v1=True) == "-1"
    assert convert.format_limit(-1, v1=False) == "max"
    assert convert.format_limit(32, v1=True) == "32"


def test_parse_flat_keyed():
    text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\nbogus\nname text\n"
    assert convert.parse_flat_keyed(text) == {"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 3}


def test_parse_pids_and_cpu_list():
    assert convert.parse_pids("12\n13\n") == [12, 13]
    assert convert.parse_pids("") == []
    assert convert.parse_cpu_list("0-2,5\n") == {0, 1, 2, 5}
    assert convert.parse_cpu_list("") == set()
    with pytest.raises(ValueError):
        convert.parse_cpu_list("3-1")


def test_ticks_to_ns():
    assert convert.ticks_to_ns(3, 100) == 30_000_000


# ---------------------------------------------------------------- bad input names flag and range

@pytest.mark.parametrize("kw, flag, rng", [
    (dict(cpu_shares=1), "--cpu-shares", "[2, 262144]"),
    (dict(cpu_shares=262145), "--cpu-shares", "[2, 262144]"),
    (dict(cpu_quota=999), "--cpu-quota", "[1000"),
    (dict(cpu_quota=-5), "--cpu-quota", "[1000"),
    (dict(cpu_period=999), "--cpu-period", "[1000, 1000000]"),
    (dict(memory=0), "--memory", "6m"),
    (dict(memory=-2), "--memory", "6m"),
    (dict(memory=5 * MiB), "--memory", "6m"),
    (dict(memory=2 ** 70), "--memory", "2^62"),
    (dict(memory=64 * MiB, memory_swap=32 * MiB), "--memory-swap", "at least --memory"),
    (dict(memory_swap=64 * MiB), "--memory-swap", "needs --memory"),
    (dict(memory=64 * MiB, memory_swap=2 ** 70), "--memory-swap", "2^62"),
    (dict(pids_limit=0), "--pids-limit", "[1, 4194304]"),
    (dict(pids_limit=-7), "--pids-limit", "[1, 4194304]"),
    (dict(cpu_shares="many"), "--cpu-shares", "integer"),
    (dict(cpuset_cpus="a-b"), "--cpuset-cpus", "0-1,3"),
    (dict(cpuset_cpus="3-1"), "--cpuset-cpus", "0-1,3"),
])
def test_bad_resources_name_flag_and_range(kw, flag, rng):
    with pytest.raises(InvalidArgument) as ei:
        Resources(**kw)
    assert flag in str(ei.value) and rng in str(ei.value)


def test_resources_defaults_have_a_pids_limit():
    assert Resources().pids_limit == 4096
