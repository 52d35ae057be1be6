"""Wall-clock timing of whole commands, interleaved across tools.

Every sample is one posix_spawn + waitpid of a real binary with stdio on /dev/null, so
each tool pays the same launch cost (about what `/bin/true` costs, which is measured as a
reference row). Tools run in short blocks with one discarded lead-in run, in a random
order each round: strict A-B alternation (or an idle pause before each run) lets the
previous container's asynchronous teardown land on the next start and made crun ~10 ms
slower on this machine.
"""

from __future__ import annotations

import dataclasses
import os
import random
import statistics
import time
from typing import Callable, Sequence

# argv may depend on the run number (unique container ids).
ArgvFactory = Callable[[int], Sequence[str]]


class CommandFailed(RuntimeError):
    """A benchmarked command exited non-zero: its numbers would be meaningless."""


@dataclasses.dataclass
class Tool:
    key: str                      # stable id used in results JSON and plots
    label: str                    # what the table shows
    argv: ArgvFactory
    env: dict[str, str] | None = None
    note: str = ""


def _devnull_actions() -> list:
    return [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0),
    ]


_DEVNULL = _devnull_actions()


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A fixed environment without pyenv shims or user site dirs on it."""
    env = {
        "PATH": "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
    }
    if extra:
        env.update(extra)
    return env


def time_once(argv: Sequence[str], env: dict[str, str]) -> float:
    """Run argv to completion; return wall time in milliseconds. Raises on non-zero exit."""
    return time_and_cpu(argv, env)[0]


def time_and_cpu(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms of the command and the children it waited for).

    On a shared, busy machine wall time includes waiting for a core; the CPU time of the
    client side does not. Work done in daemons (mcd, dockerd, containerd) is not in it.
    """
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], list(argv), env, file_actions=_DEVNULL)
    _, status, ru = os.wait4(pid, 0)
    t1 = time.perf_counter_ns()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise CommandFailed(f"{' '.join(argv)} exited {code}")
    return (t1 - t0) / 1e6, (ru.ru_utime + ru.ru_stime) * 1000


def run_checked(argv: Sequence[str], env: dict[str, str]) -> None:
    time_once(argv, env)


@dataclasses.dataclass
class Samples:
    key: str
    label: str
    ms: list[float] = dataclasses.field(default_factory=list)
    error: str | None = None
    cpu_ms: list[float] = dataclasses.field(default_factory=list)
    note: str = ""

    def summary(self) -> dict:
        if not self.ms:
            return {"key": self.key, "label": self.label, "n": 0, "error": self.error,
                    "note": self.note}
        qs = statistics.quantiles(self.ms, n=4) if len(self.ms) > 1 else [self.ms[0]] * 3
        return {
            "key": self.key, "label": self.label, "n": len(self.ms),
            "median": statistics.median(self.ms), "min": min(self.ms), "max": max(self.ms),
            "q1": qs[0], "q3": qs[2], "error": self.error, "note": self.note,
            "cpu_median": statistics.median(self.cpu_ms) if self.cpu_ms else None,
        }


def interleaved(tools: Sequence[Tool], rounds: int, block: int, warmup: int,
                seed: int | None = None, log: Callable[[str], None] = print) -> dict[str, Samples]:
    """Measure every tool `rounds * block` times, shuffled per round, blocks with a lead-in.

    A tool that fails is dropped from later rounds and keeps its error text, so one
    broken tool never hides the others' numbers.
    """
    rng = random.Random(seed)
    counters = {t.key: 0 for t in tools}
    out = {t.key: Samples(t.key, t.label, note=t.note) for t in tools}

    def one(tool: Tool) -> tuple[float, float]:
        counters[tool.key] += 1
        return time_and_cpu(tool.argv(counters[tool.key]), tool.env or base_env())

    for tool in tools:
        try:
            for _ in range(warmup):
                one(tool)
        except (CommandFailed, OSError) as err:
            out[tool.key].error = str(err)
            log(f"  {tool.label}: FAILED in warm-up: {err}")

    order = [t for t in tools if out[t.key].error is None]
    for r in range(rounds):
        rng.shuffle(order)
        for tool in order:
            s = out[tool.key]
            if s.error:
                continue
            try:
                one(tool)                     # lead-in, discarded
                for _ in range(block):
                    wall, cpu = one(tool)
                    s.ms.append(wall)
                    s.cpu_ms.append(cpu)
            except (CommandFailed, OSError) as err:
                s.error = str(err)
                log(f"  {tool.label}: FAILED in round {r}: {err}")
        log(f"  round {r + 1}/{rounds} done")
    return out
