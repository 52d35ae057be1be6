"""mcctl's parser, spec building, output and error paths (no daemon needed)."""

import io
import subprocess
import sys

import pytest

from mcctl.__main__ import Environment, build_spec, main, validate_spec
from mcctl.output import human_duration, size, status_text
from mcctl.parser import build_parser

ISSUE_COMMANDS = ("run create start stop restart kill rm destroy ps inspect logs exec wait stats "
                  "top update pause unpause rename prune template info version").split()


def test_every_command_of_the_issue_exists():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "cmd")
    assert set(ISSUE_COMMANDS) <= set(sub.choices)
    tsub = next(a for a in sub.choices["template"]._actions if a.dest == "template_cmd")
    assert set(tsub.choices) == {"ls", "import", "create", "rm"}


def test_command_list_matches_the_full_parser_and_partial_parsers_agree():
    from mcctl.parser import COMMANDS, command_in
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "cmd")
    assert tuple(sub.choices) == COMMANDS
    for argv in (["ps", "-a"], ["--socket", "/x", "run", "-d", "minimal", "ls", "-l"],
                 ["--debug", "template", "import", "-", "t"], ["stats", "--no-stream"]):
        assert command_in(argv) in COMMANDS
        assert vars(build_parser(command_in(argv)).parse_args(argv)) == vars(parser.parse_args(argv))
    assert command_in(["--socket", "ps"]) is None


def test_parser_imports_no_daemon_module():
    code = ("import sys, mcctl.parser; mcctl.parser.build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith('mcd')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_plain_commands_import_no_daemon_module():
    # ps/version must stay fast: only the stdlib client, never mcd.*
    code = ("import sys; from mcctl.__main__ import main; "
            "main(['--socket', '/nonexistent', 'ps']); "
            "print(sorted(m for m in sys.modules if m.startswith('mcd')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# Modules that cost milliseconds on every call and that the common commands do not need
# (see docs/benchmarks.md, "CLI start-up"). mcwire.spec is the daemon's validation: ~25 ms.
SLOW_MODULES = {"mcwire.spec", "dataclasses", "inspect", "typing", "urllib.parse", "threading",
                "shutil", "datetime", "email", "http.client", "ssl", "textwrap", "ipaddress"}


@pytest.mark.parametrize("argv", [["--version"], ["ps"], ["inspect", "x"], ["stop", "x"],
                                  ["start", "x"], ["rm", "-f", "x"], ["logs", "x"],
                                  ["exec", "x", "true"], ["kill", "x"]])
def test_common_commands_import_nothing_slow(argv):
    # Without a daemon these stop at the connection, after every import they need; the
    # happy paths (and run) are checked against a real daemon in tests/python/integration.
    code = ("import sys; from mcctl.__main__ import main; "
            f"main(['--socket', '/nonexistent', *{argv!r}]); "
            "print(sorted(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    loaded = set(eval(out.stdout.strip().splitlines()[-1]))
    assert not loaded & SLOW_MODULES


def test_run_without_a_daemon_still_names_bad_input_first():
    # The daemon validates each spec; the CLI only does when it cannot reach one.
    rc, _, err = run_cli("run", "-w", "relative", "minimal")
    assert rc == 125 and err == "mcctl: workdir: 'relative' is not an absolute path\n"
    rc, _, err = run_cli("run", "minimal")
    assert rc == 125 and "cannot connect to mcd" in err


def test_quote_is_urllib_quote():
    import urllib.parse

    from mcctl.client import quote
    for text in ("web", "a b", "a/b", "é ü", "%x?&=#+", "~_.-", "", "\x00\x7f"):
        assert quote(text) == urllib.parse.quote(text, safe="")
        assert quote(text, True) == urllib.parse.quote_plus(text, safe="")


def test_flag_parsers_give_what_the_spec_classes_parse():
    from mcwire import units
    from mcwire.spec import Mount, User
    for text in ("0", "1000", "1000:100", "0:5"):
        assert User.from_dict(units.parse_user(text)) == User.parse(text)
    for text in ("/srv:/data", "/srv:/data:ro", "/a/:/b/:rw"):
        assert Mount.from_dict(units.parse_volume(text)) == Mount.parse_volume(text)
    for text in ("/run", "/run:size=1m,mode=1777,noexec"):
        assert Mount.from_dict(units.parse_tmpfs(text)) == Mount.parse_tmpfs(text)


def parse(*argv):
    return build_parser().parse_args(list(argv))


def test_run_flags_become_a_valid_spec():
    args = parse("run", "-d", "--rm", "--name", "web", "-h", "box", "-e", "A=1", "-w", "/tmp",
                 "-u", "1000:1000", "-v", "/srv:/data:ro", "--tmpfs", "/run:size=1m",
                 "--read-only", "--network", "host", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE",
                 "--security-opt", "seccomp=unconfined", "--restart", "on-failure:3",
                 "--stop-timeout", "3", "-m", "64m", "--memory-swap", "128m", "--cpu-shares", "512",
                 "--cpus", "0.5", "--cpuset-cpus", "0", "--pids-limit", "20",
                 "minimal", "sh", "-c", "echo hi")
    s = build_spec(args, {})
    validate_spec(s)        # what the daemon checks before it creates anything
    assert s["name"] == "web" and s["hostname"] == "box"
    assert s["process"]["args"] == ["sh", "-c", "echo hi"]
    assert "A=1" in s["process"]["env"] and s["process"]["cwd"] == "/tmp"
    assert s["process"]["user"]["uid"] == 1000
    assert s["process"]["capabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert s["mounts"][0] == {"destination": "/data", "type": "bind", "source": "/srv", "options": ["ro"]}
    assert s["mounts"][1]["type"] == "tmpfs"
    # The daemon tells an image from a template (mcd.images.config), so run sends the name.
    assert s["root"] == {"image": "minimal", "readonly": True}
    assert "network" not in s["linux"]["namespaces"]
    assert s["linux"]["seccomp"] == "unconfined"
    r = s["linux"]["resources"]
    assert r["memory"] == 64 << 20 and r["memory_swap"] == 128 << 20
    assert (r["cpu_quota"], r["cpu_period"]) == (50000, 100000)
    assert r["pids_limit"] == 20 and r["cpu_shares"] == 512
    assert s["restart_policy"] == "on-failure:3" and s["stop_timeout"] == 3


def test_flags_after_template_belong_to_the_command():
    args = parse("run", "minimal", "ls", "-la", "--rm")
    assert args.command == ["ls", "-la", "--rm"] and not args.rm


def test_default_command_and_userns():
    s = build_spec(parse("run", "--userns", "minimal"), {})
    assert "args" not in s["process"]   # the daemon fills in the image's command (sh for a template)
    assert "user" in s["linux"]["namespaces"] and s["linux"]["uid_mappings"]


def run_cli(*argv, environ=None):
    out, err = io.StringIO(), io.StringIO()
    env = Environment(environ=environ or {"MCD_SOCKET": "/nonexistent/mcd.sock"},
                      stdin=io.StringIO(), stdout=out, stderr=err)
    return main(list(argv), env), out.getvalue(), err.getvalue()


def test_bad_flags_are_one_line_and_125():
    rc, _, err = run_cli("run", "-m", "lots", "minimal")
    assert rc == 125 and err.count("\n") == 1 and err.startswith("mcctl: --memory: invalid size")
    rc, _, err = run_cli("run", "--restart", "sometimes", "minimal")
    assert rc == 125 and "restart: unknown policy" in err
    rc, _, err = run_cli("run", "--cpus", "0.5", "--cpu-quota", "1000", "minimal")
    assert rc == 125 and "cannot be used together" in err


def test_no_daemon_is_one_line_125():
    rc, _, err = run_cli("ps")
    assert rc == 125
    assert err == ("mcctl: cannot connect to mcd at /nonexistent/mcd.sock: no such socket "
                   "(is mcd running? see --socket or MCD_SOCKET)\n")
    rc, _, err = run_cli("--debug", "ps")
    assert "Traceback" in err


def test_socket_flag_beats_environment():
    rc, _, err = run_cli("--socket", "/other/x.sock", "ps")
    assert "/other/x.sock" in err


def test_output_helpers():
    assert size(64 << 20) == "64.0MiB" and size(None) == "--"
    assert human_duration(0) == "Less than a second" and human_duration(120) == "2 minutes"
    assert status_text({"status": "created"}) == "Created"
    assert status_text({"status": "stopped", "exit_code": 137, "oom_killed": True,
                        "finished_at": None}).startswith("Exited (137) OOMKilled")


def test_version_flag():
    rc, out, _ = run_cli("--version")
    assert rc == 0
