"""mcctl's start-up against a real daemon: the common commands load only what they need,
and moving the spec check to the daemon changed no error a user sees.

No timings here (those are in bench/ and docs/benchmarks.md): what makes a call slow is
which modules it imports, and that is checked exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

# As in tests/python/unit/test_cli.py; datetime is allowed where a row shows a time.
SLOW_MODULES = {"mcwire.spec", "dataclasses", "inspect", "typing", "urllib.parse", "threading",
                "shutil", "datetime", "email", "http.client", "ssl", "textwrap", "ipaddress"}


def imports_of(daemon, *argv) -> tuple[int, set[str]]:
    """Run one mcctl call in a fresh interpreter; its exit code and every module it loaded."""
    out = os.path.join(daemon.base, "imports.json")
    code = ("import json, os, sys\n"
            "from mcctl.__main__ import main\n"
            "rc = main(sys.argv[1:])\n"
            "with open(os.environ['MC_IMPORTS_OUT'], 'w') as f:\n"
            "    json.dump([rc, sorted(sys.modules)], f)\n")
    r = subprocess.run([sys.executable, "-c", code, "--socket", daemon.socket, *argv], cwd=REPO,
                       env=dict(os.environ, MC_IMPORTS_OUT=out), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"mcctl {' '.join(argv)}: {r.stderr}"
    with open(out) as f:
        rc, mods = json.load(f)
    os.unlink(out)
    return rc, set(mods)


def test_common_commands_import_nothing_slow(daemon):
    steps = [
        (["run", "--rm", "minimal", "/bin/true"], set()),
        (["run", "-d", "--name", "fast", "minimal", "sleep", "1000"], set()),
        (["ps"], {"datetime"}),
        (["inspect", "fast"], set()),
        (["exec", "fast", "true"], set()),
        (["logs", "fast"], set()),
        (["stop", "-t", "0", "fast"], set()),
        (["start", "fast"], set()),
        (["kill", "fast"], set()),
        (["rm", "-f", "fast"], set()),
        (["create", "--name", "made", "minimal"], set()),
        (["rm", "made"], set()),
    ]
    for argv, allowed in steps:
        rc, loaded = imports_of(daemon, *argv)
        assert rc == 0, argv
        assert not loaded & (SLOW_MODULES - allowed), argv
    assert daemon.client.get("/v1/containers", all=True) == []


BAD_RUNS = [
    ["--restart", "sometimes"], ["-e", "1A=b"], ["-w", "relative"], ["-v", "rel:/x"],
    ["-u", "99999999999"], ["--name", "bad/name"], ["--memory", "1k"],
    ["--stop-timeout", "99999"], ["-v", "/tmp:/x", "-v", "/tmp:/x"], ["--memory-swap", "10m"],
    ["--cpuset-cpus", "3-1"], ["--hostname", "x_y"], ["--cap-add", "NOPE"],
]


@pytest.mark.parametrize("mode", [["-d"], [], ["--rm"]])
def test_bad_spec_reads_the_same_with_or_without_the_daemon(daemon, mode):
    # With a daemon the daemon refuses the spec; without one mcctl checks it with the same
    # rules (mcwire.spec). The user must not be able to tell, and nothing may be created.
    for flags in BAD_RUNS:
        argv = ["run", *mode, *flags, "minimal", "true"]
        up = daemon.mcctl(*argv)
        down = daemon.mcctl("--socket", daemon.socket + ".absent", *argv)
        assert up.returncode == down.returncode == 125, (argv, up.stderr, down.stderr)
        assert up.stderr == down.stderr and up.stderr.count("\n") == 1, (argv, up.stderr, down.stderr)
        assert "cannot connect" not in down.stderr
    assert daemon.client.get("/v1/containers", all=True) == []


FROZEN = [os.path.join(REPO, "dist", "mcctl"), os.path.join(REPO, "dist", "mcctl-dir", "mcctl")]


@pytest.mark.parametrize("binary", FROZEN, ids=["one-file", "one-dir"])
def test_frozen_mcctl_runs_every_path_its_spec_trims(daemon, binary):
    # mcctl.spec drops PyInstaller's inspect hook and ships the one-dir modules as plain
    # .pyc files: prove the frozen CLI still parses, talks to a real daemon, and can load
    # mcwire.spec (dataclasses, inspect) for the no-daemon check.
    if not os.access(binary, os.X_OK):
        if os.environ.get("MC_REQUIRE_DIST") == "1":    # make test builds dist first
            pytest.fail(f"{binary} not built, and make test needs it")
        pytest.skip(f"{binary} not built (make dist)")

    def run(*argv):
        return subprocess.run([binary, *argv], capture_output=True, text=True, timeout=60)

    import mcwire
    assert run("--version").stdout == f"mcctl {mcwire.__version__}\n"
    r = run("--help")
    assert r.returncode == 0 and "COMMAND" in r.stdout and "ps" in r.stdout
    r = run("--socket", daemon.socket, "run", "--rm", "minimal", "sh", "-c", "echo hi; exit 3")
    assert (r.returncode, r.stdout) == (3, "hi\n"), r.stderr
    r = run("--socket", daemon.socket, "ps", "-a")
    assert r.returncode == 0 and r.stdout.startswith("CONTAINER ID"), r.stderr
    r = run("--socket", daemon.socket + ".absent", "run", "-w", "relative", "minimal")
    assert (r.returncode, r.stderr) == (125, "mcctl: workdir: 'relative' is not an absolute path\n")
