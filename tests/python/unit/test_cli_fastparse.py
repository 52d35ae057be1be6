"""mcctl.fastparse reads the common command lines without argparse; argparse stays the
one description. These tests hold the two together: the table is the parser's, every
answer the fast path gives is argparse's own answer, and the per-command parser built for
a call gives the same help as the full parser (which the man page and completions use)."""

import contextlib
import io
import random
import subprocess
import sys

import pytest

from mcctl import fastparse, wirejson
from mcctl.argtable import TABLE
from mcctl.parser import COMMANDS, build_parser


@pytest.fixture(scope="module")
def full():
    return build_parser()


def argparse_answer(parser, argv):
    """The namespace as comparable text (repr: nan == nan), or None when argparse refuses
    the line (usage error)."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return answer(parser.parse_args(argv))
        except SystemExit:
            return None


def answer(ns):
    return repr(sorted(vars(ns).items()))


def test_the_table_is_the_parsers():
    assert fastparse.describe(build_parser()) == TABLE, \
        "mcctl/argtable.py is stale: run `make man` (or python -m mcctl.fastparse > mcctl/argtable.py)"


COMMON = [
    ["run", "--rm", "--network", "none", "minimal", "/bin/true"],
    ["run", "-it", "--rm", "minimal", "sh"],
    ["run", "-d", "--name", "web", "-e", "A=1", "-e", "B", "-m", "64m", "--cpus", "0.5",
     "-v", "/srv:/data:ro", "minimal", "sleep", "100"],
    ["run", "--name=web", "--memory-swap", "-1", "--pids-limit", "-1", "minimal"],
    ["run", "minimal", "ls", "-la", "--rm"],
    ["run", "-h", "box", "minimal"],
    ["--socket", "/tmp/x.sock", "--debug", "ps", "-a"],
    ["--socket=/tmp/x.sock", "ps", "-aq", "--no-trunc"],
    ["ps"], ["ps", "--format", "json"],
    ["exec", "web", "true"], ["exec", "-it", "web", "sh", "-c", "echo hi"],
    ["exec", "-e", "A=1", "-w", "/tmp", "-u", "1000:1000", "web", "id"],
    ["exec", "web", "-i", "ls"],
    ["exec", "web"],
    ["stop", "a", "b"], ["stop", "-t", "3", "a"], ["stop", "a", "-t", "3"],
    ["rm", "-f", "a", "b"], ["rm", "a", "-f"], ["destroy", "x"],
    ["start", "-a", "x"], ["kill", "-s", "SIGTERM", "x"], ["kill", "-s", "-9", "x"],
    ["logs", "-f", "--tail", "10", "x"], ["logs", "x", "-t"],
    ["inspect", "a", "b"], ["wait", "x"], ["stats"], ["stats", "--no-stream", "a"],
    ["top", "x"], ["update", "-m", "1g", "x"], ["rename", "a", "b"], ["prune", "-f"],
    ["info", "--format", "json"], ["version"], ["pause", "x"], ["unpause", "x"],
    ["create", "--name", "c", "minimal", "true"], ["images"], ["dashboard"],
]

ODD = [
    [], ["--help"], ["-h"], ["--version"], ["ps", "--help"], ["ps", "-h"], ["run", "--help"],
    ["run", "--det", "minimal"], ["run", "--rm"], ["ps", "--format", "yaml"],
    ["stop", "-t", "soon", "x"], ["stop"], ["rm", "a", "-f", "b"], ["exec"],
    ["run", "--", "minimal", "true"], ["run", "minimal", "--", "true"], ["ps", "--debug"],
    ["template", "ls"], ["image", "ls"], ["system", "df"], ["frobnicate"], ["--socket"],
    ["run", "-eA=1", "minimal"], ["run", "-e=A", "minimal"], ["run", "--name", "-d", "m"],
    ["rename", "a"], ["rename", "a", "b", "c"], ["stats", "a", "--no-stream", "b"],
    ["run", "-e", "-x y", "minimal"], ["logs", "--tail=5", "x"], ["logs", "--tail=", "x"],
    ["run", "-dit", "minimal"], ["run", "-dm", "64m", "minimal"], ["top"],
    ["update", "--cpus", "1e-1", "x"], ["update", "--cpus", "nan", "x"],
    ["kill", "-s", "-1.5", "x"], ["kill", "-s", "-.5", "x"], ["ps", "-"], ["inspect", "-"],
]


@pytest.mark.parametrize("argv", COMMON)
def test_common_lines_take_the_fast_path_with_argparse_answer(full, argv):
    fast = fastparse.parse(argv)
    assert fast is not None, "a common line fell back to argparse"
    assert answer(fast) == argparse_answer(full, argv)


@pytest.mark.parametrize("argv", ODD)
def test_odd_lines_are_argparse_answer_or_left_to_argparse(full, argv):
    fast = fastparse.parse(argv)
    if fast is not None:
        assert answer(fast) == argparse_answer(full, argv)


def _random_line(rng, name, spec):
    values = ["x", "-1", "5", "0.5", "a b", "-", "table", "json", "none", "host", "--rm",
              "-d", "--", "", "-x y", "=", "--name=x"]
    tokens = []
    opts = list(spec["options"])
    for _ in range(rng.randint(0, 5)):
        r = rng.random()
        if r < 0.55 and opts:
            o = rng.choice(opts)
            tokens.append(o)
            if spec["options"][o][1] in ("store", "append") and rng.random() < 0.9:
                tokens.append(rng.choice(values))
        elif r < 0.65 and opts:
            o = rng.choice([o for o in opts if o.startswith("--")] or opts)
            tokens.append(f"{o}={rng.choice(values)}")
        elif r < 0.75:
            shorts = [o[1] for o in opts if len(o) == 2]
            if shorts:
                tokens.append("-" + "".join(rng.sample(shorts, min(len(shorts), 2))))
        else:
            tokens.append(rng.choice(values))
    pre = rng.choice([[], ["--debug"], ["--socket", "/s"], ["--socket=/s"]])
    return pre + [name] + tokens


def test_random_lines_agree_with_argparse(full):
    rng = random.Random(17)
    answered = 0
    for _ in range(3000):
        name = rng.choice(sorted(TABLE["commands"]))
        argv = _random_line(rng, name, TABLE["commands"][name])
        fast = fastparse.parse(argv)
        if fast is not None:
            answered += 1
            assert answer(fast) == argparse_answer(full, argv), argv
    assert answered > 250      # the test exercises the fast path, not only the fallback


def _sub(parser, name):
    sub = next(a for a in parser._actions if a.dest == "cmd")
    return sub.choices[name]


@pytest.mark.parametrize("name", COMMANDS)
def test_per_command_parser_gives_the_full_parsers_help(full, name):
    # A call builds only its own subcommand (build_parser(only=...)); its --help and usage
    # errors must be those of the full parser, which the man page and completions use.
    part = build_parser(name)
    assert _sub(part, name).format_help() == _sub(full, name).format_help()
    assert _sub(part, name).format_usage() == _sub(full, name).format_usage()


def test_full_parser_unchanged_by_partial_builds(full):
    build_parser("run")
    assert build_parser().format_help() == full.format_help()


@pytest.mark.parametrize("argv", [["ps"], ["ps", "-a"], ["stop", "x"], ["rm", "-f", "x"],
                                  ["exec", "x", "true"], ["start", "x"], ["logs", "x"],
                                  ["kill", "x"]])
def test_common_paths_import_no_argparse_and_no_re(argv):
    # Without a daemon these stop at the connection, after every import they need; run's
    # happy path is checked against a real daemon in tests/python/integration.
    code = ("import sys; from mcctl.__main__ import main; "
            f"main(['--socket', '/nonexistent', *{argv!r}]); "
            "print(sorted(sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         cwd=str(__import__("pathlib").Path(__file__).parents[3]))
    loaded = set(eval(out.stdout.strip().splitlines()[-1]))
    assert not loaded & {"argparse", "re", "json", "gettext", "locale", "mcctl.parser"}


def test_run_flags_import_no_re():
    code = ("import sys; from mcctl.fastparse import parse; from mcctl.__main__ import build_spec; "
            "build_spec(parse(['run', '--rm', '-e', 'A=1', '-v', '/a:/b', '--tmpfs', '/t:mode=755',"
            " '-u', '1:1', '--network', 'none', 'minimal', 'true']), {}); print(sorted(sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         cwd=str(__import__("pathlib").Path(__file__).parents[3]))
    assert not set(eval(out.stdout.strip().splitlines()[-1])) & {"argparse", "re", "json"}


JSON_SAMPLES = [
    {}, [], {"a": 1, "b": [1, 2.5, None, True, False], "c": {"d": "é\u2028\x00\"\\/"}},
    {"spec": {"process": {"args": ["sh", "-c", "echo hi"], "env": ["A=1"]}}, "rm": True},
    [1e100, -0.0, 3.14159, 10 ** 30, -(10 ** 30)], {"emoji": "\U0001F600", "k": "v" * 1000},
    {"n": float("inf"), "m": float("-inf")},
]


@pytest.mark.parametrize("obj", JSON_SAMPLES)
def test_wirejson_is_jsons_encoding(obj):
    import json
    assert wirejson.dumps(obj) == json.dumps(obj)
    text = json.dumps(obj)
    assert repr(wirejson.loads(text.encode())) == repr(json.loads(text))
    assert repr(wirejson.loads(f" \n{text}\r\n")) == repr(json.loads(f" \n{text}\r\n"))


@pytest.mark.parametrize("bad", [b"", b"   ", b"{", b'{"a": 1} x', b"[1,]", b"nul", b'"\x01"'])
def test_wirejson_refuses_what_json_refuses(bad):
    import json
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError):
        wirejson.loads(bad)
