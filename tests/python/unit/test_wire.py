"""The wire vocabulary (mcwire): one package both sides import, that imports neither.

Its error codes are a closed set, each with one HTTP status and one exit status; the
client raises the very class the daemon raised; the version has one source.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import pkgutil
import subprocess
import sys

import pytest

import mcwire
from mcwire import errors
from mcwire.errors import CODES, ExitStatus, MCError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _imports(package: str) -> dict[str, set[str]]:
    """Every module each .py file of a package imports (at any depth: lazy imports too)."""
    out = {}
    for dirpath, _dirs, files in os.walk(os.path.join(REPO, package)):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(dirpath, name)
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            mods = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    mods.add(node.module)
            out[os.path.relpath(path, REPO)] = mods
    return out


def _top(mod: str) -> str:
    return mod.split(".")[0]


def test_mcwire_imports_neither_side_and_only_the_stdlib():
    for path, mods in _imports("mcwire").items():
        tops = {_top(m) for m in mods}
        assert not tops & {"mcd", "mcctl"}, path
        assert tops <= set(sys.stdlib_module_names) | {"mcwire", "__future__"}, (path, tops)


def test_mcctl_imports_no_mcd_module():
    for path, mods in _imports("mcctl").items():
        assert not {m for m in mods if _top(m) == "mcd"}, path


def test_mcctl_loads_no_mcd_module_at_run_time():
    # Every subcommand's parser, spec building and the offline spec check: nothing of mcd.
    code = ("import sys\n"
            "from mcctl.__main__ import build_spec, validate_spec\n"
            "from mcctl.parser import build_parser\n"
            "args = build_parser().parse_args(['run', '-m', '64m', '--cpus', '1', '-u', '1:1',\n"
            "    '-v', '/a:/b:ro', '--tmpfs', '/t:size=1m', '--restart', 'always', 'minimal'])\n"
            "validate_spec(build_spec(args, {}))\n"
            "import mcctl.client, mcctl.output, mcctl.tty\n"
            "print(sorted(m for m in sys.modules if m == 'mcd' or m.startswith('mcd.')))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[]\n"


def test_codes_are_a_closed_set_with_one_status_each():
    from mcd.httpserver import REASONS
    assert len(CODES) == len(set(CODES.values()))
    for code, klass in CODES.items():
        assert klass.code == code
        assert klass.http_status in REASONS, code
        assert isinstance(klass.exit_code, ExitStatus), code
    # The statuses the HTTP layer itself answers with, each with its own code.
    by_status = {k.http_status: k.code for k in CODES.values()}
    for status, code in ((405, "METHOD_NOT_ALLOWED"), (408, "REQUEST_TIMEOUT"),
                         (411, "LENGTH_REQUIRED"), (413, "PAYLOAD_TOO_LARGE"),
                         (431, "HEADERS_TOO_LARGE"), (503, by_status[503])):
        assert by_status[status] == code
    assert CODES["UNAVAILABLE"].http_status == 503


def _all_mcd_modules():
    import mcd
    for info in pkgutil.walk_packages(mcd.__path__, "mcd."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)


def _subclasses(klass):
    for sub in klass.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_the_daemon_defines_no_code_outside_the_set():
    _all_mcd_modules()
    for klass in _subclasses(MCError):
        assert CODES.get(klass.code) is klass, \
            f"{klass.__module__}.{klass.__name__}: code {klass.code} is not in mcwire.errors.CODES"


def test_the_daemon_builds_no_error_body_by_hand():
    # Error answers come from an MCError (Response.error), so code and status agree: no
    # {"error": {"code": ...}} literal anywhere in the daemon.
    for dirpath, _dirs, files in os.walk(os.path.join(REPO, "mcd")):
        for name in files:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(dirpath, name)) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Dict):
                    keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
                    assert "error" not in keys or not any(
                        isinstance(v, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "code"
                                                        for k in v.keys)
                        for v in node.values), f"{name}:{node.lineno}"


@pytest.mark.parametrize("klass", list(CODES.values()), ids=list(CODES))
def test_every_code_round_trips_as_its_class(klass):
    err = klass("boom", container="web", step="mount", path="/proc", errno=13)
    back = MCError.from_wire(json.loads(json.dumps(err.to_wire())), klass.http_status)
    assert type(back) is klass and back.received and not err.received
    assert (back.code, back.http_status, back.exit_code) == (klass.code, klass.http_status,
                                                             klass.exit_code)
    assert (back.message, back.container, back.step, back.path, back.errno) == \
        ("boom", "web", "mount", "/proc", 13)


@pytest.mark.parametrize("payload", [None, [], "x", {"error": "x"}, {"error": {"code": 5}},
                                     {"error": {"message": ["x"], "errno": "13"}}])
def test_any_shape_of_error_body_becomes_one_error(payload):
    err = MCError.from_wire(payload, 500)
    assert type(err) is MCError and err.code == "INTERNAL" and err.message == "HTTP 500"
    assert err.errno is None and err.exit_code == ExitStatus.FAILED


def test_exit_statuses_are_dockers():
    assert (ExitStatus.FAILED, ExitStatus.CANNOT_INVOKE, ExitStatus.NOT_FOUND) == (125, 126, 127)
    assert errors.CommandNotFound.exit_code == 127
    assert errors.CommandNotExecutable.exit_code == 126
    assert {k.exit_code for k in CODES.values()} == {125, 126, 127}


def test_the_cli_writes_its_exit_statuses_once():
    # 125/126/127 are ExitStatus members in mcwire.errors; the CLI (its epilog too) and the
    # rest of the wire package use the names.
    for package in ("mcctl", "mcwire"):
        for dirpath, _dirs, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if not name.endswith(".py") or name == "errors.py" and package == "mcwire":
                    continue
                with open(os.path.join(dirpath, name)) as f:
                    tree = ast.parse(f.read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.Constant) and type(node.value) is int:
                        assert node.value not in (125, 126, 127, 130), f"{package}/{name}:{node.lineno}"


def test_the_version_has_one_source():
    from importlib.metadata import version

    import mcrt
    from mcctl.parser import VERSION
    assert VERSION == mcrt.VERSION == mcwire.__version__
    # Nowhere else in the product code: no version literal beside mcwire's.
    for package in ("mcctl", "mcd", "mcrt"):
        for dirpath, _dirs, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if name.endswith(".py"):
                    with open(os.path.join(dirpath, name)) as f:
                        assert f'"{mcwire.__version__}"' not in f.read(), f"{dirpath}/{name}"
    assert version("mini-container") == mcwire.__version__
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        text = f.read()
    assert 'dynamic = ["version"]' in text and 'attr = "mcwire.__version__"' in text
    for argv in (["-m", "mcctl", "--version"], ["-m", "mcd", "--version"]):
        r = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True,
                           timeout=60)
        assert r.stdout.split() == [argv[1], mcwire.__version__], r
