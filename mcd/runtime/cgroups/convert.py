"""Pure conversions and parsers for cgroup files (no I/O).

Units at this boundary: Resources speaks Docker's units (cpu shares, µs quota
and period, bytes, memory+swap); the v2 files speak their own (cpu.weight,
"QUOTA PERIOD" in cpu.max, swap alone in memory.swap.max). Everything that
converts between the two lives here so it can be tested without a kernel.
"""

from __future__ import annotations

import os

SHARES_MIN, SHARES_MAX, SHARES_DEFAULT = 2, 262144, 1024
WEIGHT_MIN, WEIGHT_MAX, WEIGHT_DEFAULT = 1, 10000, 100
PERIOD_DEFAULT = 100000

# A v1 limit file reads back PAGE_COUNTER_MAX * PAGE_SIZE (9223372036854771712 on
# x86_64) when unlimited; anything this large is "no limit".
_V1_UNLIMITED_FLOOR = 2 ** 62


def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000].

    The linear map crun and systemd use: 1 + ((shares - 2) * 9999) / 262142,
    integer division. 2 -> 1, 262144 -> 10000, 1024 -> 39 (so the Docker
    default of 1024 shares is *not* the v2 default weight of 100; the map keeps
    the two ends of the ranges aligned, which is what a relative weight needs).
    """
    if not SHARES_MIN <= shares <= SHARES_MAX:
        raise ValueError(f"cpu shares {shares} out of range [{SHARES_MIN}, {SHARES_MAX}]")
    return 1 + ((shares - 2) * 9999) // 262142


def weight_to_shares(weight: int) -> int:
    """The inverse map, for reading cpu.weight back as shares: 2 + ((w - 1) * 262142) / 9999.

    Not exact: shares_to_weight loses up to 26 shares of resolution, so
    weight_to_shares(shares_to_weight(s)) is within 27 of s.
    """
    if not WEIGHT_MIN <= weight <= WEIGHT_MAX:
        raise ValueError(f"cpu weight {weight} out of range [{WEIGHT_MIN}, {WEIGHT_MAX}]")
    return 2 + ((weight - 1) * 262142) // 9999


def format_cpu_max(quota: int | None, period: int | None) -> str:
    """(50000, 100000) -> '50000 100000'; no quota (None or -1) -> 'max PERIOD'."""
    period = period or PERIOD_DEFAULT
    if quota is None or quota == -1:
        return f"max {period}"
    return f"{quota} {period}"


def parse_cpu_max(text: str) -> tuple[int | None, int]:
    """'max 100000' -> (None, 100000); '50000 100000' -> (50000, 100000)."""
    parts = text.split()
    if not parts:
        raise ValueError("empty cpu.max")
    quota = None if parts[0] == "max" else int(parts[0])
    period = int(parts[1]) if len(parts) > 1 else PERIOD_DEFAULT
    return quota, period


def v2_swap_max(memory: int | None, memory_swap: int | None) -> str | None:
    """Docker's --memory-swap is memory + swap; v2's memory.swap.max is swap alone.

    None (not asked) -> None (leave the file alone); -1 -> 'max'; else the
    difference, which validate_resources guarantees is >= 0.
    """
    if memory_swap is None:
        return None
    if memory_swap == -1:
        return "max"
    if memory is None or memory == -1:
        raise ValueError("--memory-swap needs --memory")
    return str(memory_swap - memory)


def parse_limit(text: str) -> int | None:
    """A limit file's value: 'max', '-1' or a v1 near-2^63 number mean no limit (None)."""
    text = text.strip()
    if text in ("max", "-1", ""):
        return None
    value = int(text)
    if value < 0 or value >= _V1_UNLIMITED_FLOOR:
        return None
    return value


def format_limit(value: int | None, v1: bool) -> str:
    """Bytes or a count for a limit file; None or -1 is 'no limit'."""
    if value is None or value == -1:
        return "-1" if v1 else "max"
    return str(value)


def parse_flat_keyed(text: str) -> dict[str, int]:
    """'key value' lines (cpu.stat, memory.events, memory.oom_control, cpuacct.stat)."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        value = value.strip()
        if key and value:
            try:
                out[key] = int(value)
            except ValueError:
                continue
    return out


def parse_pids(text: str) -> list[int]:
    """cgroup.procs / tasks: one pid per line."""
    return [int(x) for x in text.split()]


def parse_cpu_list(text: str) -> set[int]:
    """'0-2,5' -> {0, 1, 2, 5}; '' -> set()."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        lo_i = int(lo)
        hi_i = int(hi) if hi else lo_i
        if hi_i < lo_i:
            raise ValueError(f"bad CPU range {part!r}")
        cpus.update(range(lo_i, hi_i + 1))
    return cpus


def clock_ticks() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):
        return 100


def ticks_to_ns(ticks: int, hz: int | None = None) -> int:
    """cpuacct.stat counts USER_HZ ticks."""
    hz = hz or clock_ticks()
    return ticks * (1_000_000_000 // hz)
