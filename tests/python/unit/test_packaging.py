"""Packaging stays true to the code: the committed man pages and completions are what the
parsers generate today, completion of names really runs in bash, the systemd unit passes
`systemd-analyze verify` with empty output, tmpfiles/sysusers snippets really apply, the
default config is one the daemon accepts, and the maintainer scripts only use mcctl
commands that exist. (Building the frozen binaries and packages is `make deb` / `make rpm`,
which verify their own output: too slow for this tier.)"""

from __future__ import annotations

import configparser
import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "packaging"))

import gen_docs  # noqa: E402

from mcctl.parser import build_parser  # noqa: E402

PKG = os.path.join(REPO, "packaging")
UNIT = os.path.join(PKG, "systemd", "mcd.service")


def read(path):
    with open(path) as f:
        return f.read()


# ------------------------------------------------------------------ generated files

@pytest.mark.parametrize("name", sorted(gen_docs.MAN_PAGES))
def test_committed_man_page_matches_the_parser(name):
    committed = read(os.path.join(REPO, "man", name))
    generated = gen_docs.render_man(name)
    assert gen_docs.strip_date(committed) == gen_docs.strip_date(generated), \
        f"man/{name} is stale: run `make man` and commit it"


@pytest.mark.parametrize("name", sorted(gen_docs.COMPLETIONS))
def test_committed_completion_matches_the_parser(name):
    committed = read(os.path.join(REPO, "completions", name))
    assert committed == gen_docs.render_completion(gen_docs.COMPLETIONS[name]), \
        f"completions/{name} is stale: run `make completions` and commit it"


def test_man_page_has_a_section_per_subcommand():
    page = read(os.path.join(REPO, "man", "mcctl.1"))
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [c for c in sub.choices if f"mcctl {c}'" not in page]
    assert not missing, f"no section for: {missing}"


def test_man_date_is_only_metadata(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    a = gen_docs.render_man("mcd.8")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    b = gen_docs.render_man("mcd.8")
    assert a != b and gen_docs.strip_date(a) == gen_docs.strip_date(b)
    assert r'"1970\-01\-01"' in a   # the date really comes from SOURCE_DATE_EPOCH


def test_write_if_changed_keeps_a_page_whose_content_did_not_change(tmp_path):
    path = tmp_path / "x.1"
    assert gen_docs.write_if_changed(str(path), '.TH X 1 "2020-01-01"\nbody\n', ignore_date=True)
    assert not gen_docs.write_if_changed(str(path), '.TH X 1 "2030-01-01"\nbody\n', ignore_date=True)
    assert "2020-01-01" in path.read_text()
    assert gen_docs.write_if_changed(str(path), '.TH X 1 "2030-01-01"\nchanged\n', ignore_date=True)


# ------------------------------------------------------------------ completion behaviour

FAKE_MCCTL = """#!{python}
# Stands in for the daemon: prints what the real mcctl prints, through mcctl.output.
import sys
sys.path.insert(0, {repo!r})
from mcctl import output
args = sys.argv[1:]
if args == ["ps", "-a", "--format", "json"]:
    output.dump_json([{{"id": "a" * 64, "short_id": "a" * 12, "name": "web", "template": "minimal",
                       "labels": {{"name": "not-a-container"}}}},
                      {{"id": "b" * 64, "short_id": "b" * 12, "name": "worker", "template": "minimal"}}],
                     sys.stdout)
elif args == ["template", "ls", "-q"]:
    print("minimal")
    print("alpine")
else:
    sys.exit(125)
"""


@pytest.fixture
def fake_mcctl(tmp_path):
    path = tmp_path / "mcctl"
    path.write_text(FAKE_MCCTL.format(python=sys.executable, repo=REPO))
    path.chmod(0o755)
    return str(path)


def bash_complete(fake, *words):
    """What bash offers for the last word, with the committed completion file loaded."""
    script = textwrap.dedent(f"""
        source {os.path.join(REPO, 'completions', 'mcctl.bash')}
        COMP_WORDS=({' '.join(repr(w) for w in (fake,) + words)})
        COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
        COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}
        _shtab_mcctl "${{COMP_WORDS[0]}}" "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """)
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                         text=True, check=True)
    return sorted(filter(None, out.stdout.splitlines()))


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("words, expected", [
    (("ru",), ["run"]),
    (("template", "r"), ["rm"]),
    (("rm", "w"), ["web", "worker"]),
    (("stop", ""), ["web", "worker"]),
    (("logs", "-f", "we"), ["web"]),
    (("run", ""), ["alpine", "minimal"]),
    (("run", "-d", "--name", "x", "m"), ["minimal"]),
    (("template", "rm", "a"), ["alpine"]),
    (("run", "--memory-s"), ["--memory-swap"]),
])
def test_bash_completes_subcommands_flags_and_names_from_the_daemon(fake_mcctl, words, expected):
    assert bash_complete(fake_mcctl, *words) == expected


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_name_functions_list_what_the_daemon_answers(fake_mcctl):
    # compadd only exists inside zsh's completion system: a stand-in prints what it is given.
    path = os.path.join(REPO, "completions", "_mcctl")
    subprocess.run(["zsh", "-n", path], check=True)
    script = textwrap.dedent(f"""
        autoload -U compinit; compinit -u -D
        source {path} 2>/dev/null
        compadd() {{ [[ $1 == -a ]] && print -l -- ${{(P)2}}; }}
        words=({fake_mcctl} rm "")
        _mcctl_containers; print -- --; _mcctl_templates
    """)
    out = subprocess.run(["zsh", "-f", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split("--\n") == ["web\nworker\n", "minimal\nalpine\n"]
    text = read(path)
    assert ":_mcctl_containers" in text and ":_mcctl_templates" in text


def test_completion_is_silent_when_the_daemon_cannot_answer(tmp_path):
    broken = tmp_path / "mcctl"
    broken.write_text("#!/bin/sh\necho 'mcctl: cannot connect to /run/mcd/mcd.sock' >&2\nexit 125\n")
    broken.chmod(0o755)
    assert bash_complete(str(broken), "rm", "") == []


def test_name_listing_commands_exist_in_the_parser():
    # The completion functions and the maintainer scripts call these; they must parse.
    p = build_parser()
    assert p.parse_args(["ps", "-a", "--format", "json"]).format == "json"
    assert p.parse_args(["template", "ls", "-q"]).quiet
    assert p.parse_args(["ps", "-q"]).quiet
    assert p.parse_args(["stop", "a", "b"]).containers == ["a", "b"]
    for script in ("prerm",):
        assert "mcctl ps -q" in read(os.path.join(PKG, "deb", "scripts", script))
    assert "mcctl ps -q" in read(os.path.join(PKG, "rpm", "mini-container.spec"))


# ------------------------------------------------------------------ systemd

def unit_settings():
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read(UNIT)
    return cp


def test_unit_has_the_settings_live_restore_and_readiness_need():
    s = unit_settings()["Service"]
    assert s["Type"] == "notify"
    assert s["NotifyAccess"] == "main"          # one-dir mcd: Python runs in the main pid
    assert s["ExecStart"] == "/usr/bin/mcd"    # reads /etc/mcd/mcd.toml by default
    assert s["Delegate"] == "yes"
    assert s["KillMode"] == "process"          # containers survive `systemctl restart mcd`
    assert s["Restart"] == "on-failure"
    assert s["OOMScoreAdjust"] == "-500"
    assert int(s["LimitNOFILE"]) >= 65536
    assert s["WatchdogSec"].endswith("s")
    assert unit_settings()["Install"]["WantedBy"] == "multi-user.target"


def test_daemon_pings_the_watchdog_the_unit_asks_for():
    # WatchdogSec= without WATCHDOG=1 pings would get a healthy daemon killed.
    assert "WATCHDOG=1" in read(os.path.join(REPO, "mcd", "notify.py"))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_prints_nothing(tmp_path):
    """`systemd-analyze verify` exits 0 even on unknown keys: any output is a failure.
    It runs against a root holding the host's units, ours, an executable /usr/bin/mcd and
    our man pages (Documentation=man:... is checked too)."""
    root = tmp_path / "root"
    units = root / "usr/lib/systemd/system"
    shutil.copytree("/usr/lib/systemd/system", units, symlinks=True)
    shutil.copy(UNIT, units / "mcd.service")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/mcd").write_text("#!/bin/sh\n")
    (root / "usr/bin/mcd").chmod(0o755)
    man = tmp_path / "man"
    for page, section in (("mcctl.1", "man1"), ("mcd.8", "man8")):
        (man / section).mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(REPO, "man", page), man / section / page)
    env = dict(os.environ, MANPATH=str(man), SYSTEMD_LOG_COLOR="0")
    has_man = shutil.which("man") is not None
    out = subprocess.run(["systemd-analyze", "verify", f"--root={root}", f"--man={'yes' if has_man else 'no'}",
                          "mcd.service"], capture_output=True, text=True, env=env)
    assert (out.returncode, out.stdout + out.stderr) == (0, "")

    # ...and the check is real: a typo is reported.
    (units / "mcd.service").write_text(read(UNIT).replace("TasksMax=", "TaskMax="))
    out = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "--man=no", "mcd.service"],
                         capture_output=True, text=True, env=env)
    assert "TaskMax" in out.stdout + out.stderr


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
                    reason="systemd-sysusers/systemd-tmpfiles not installed")
def test_sysusers_and_tmpfiles_snippets_apply(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run(["systemd-sysusers", f"--root={root}", os.path.join(PKG, "systemd", "mcd.sysusers")],
                   check=True, capture_output=True)
    groups = {line.split(":")[0]: int(line.split(":")[2]) for line in (root / "etc/group").read_text().splitlines()}
    assert "mcd" in groups
    subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create", os.path.join(PKG, "systemd", "mcd.tmpfiles")],
                   check=True, capture_output=True)
    run = os.stat(root / "run/mcd")
    assert oct(run.st_mode & 0o7777) == "0o750"
    if os.geteuid() == 0:
        assert (run.st_uid, run.st_gid) == (0, groups["mcd"])
    assert oct(os.stat(root / "var/lib/mcd").st_mode & 0o7777) == "0o711"


# ------------------------------------------------------------------ config and scripts

def test_default_config_is_accepted_by_the_daemon_and_documents_its_defaults():
    from mcd import config

    shipped = config.load(os.path.join(PKG, "mcd.toml"), {}, required=True)
    # The one deliberate difference: the packaged service serves the Docker API, a bare
    # `mcd` (tests, development) does not.
    assert shipped.docker_socket == "/run/mcd/docker.sock"
    assert dataclasses.replace(shipped, docker_socket="off") == config.Config()


@pytest.mark.parametrize("script", ["postinst", "prerm", "postrm"])
def test_maintainer_scripts_are_posix_sh(script):
    path = os.path.join(PKG, "deb", "scripts", script)
    assert os.access(path, os.X_OK)
    assert read(path).startswith("#!/bin/sh\n")
    sh = shutil.which("dash") or "sh"
    subprocess.run([sh, "-n", path], check=True)


@pytest.mark.parametrize("script", ["build-dist.sh", "gen-man.sh", "gen-completions.sh", "stage.sh",
                                    "measure-dist.sh", "nspawn-check.sh", "deb/build.sh", "rpm/build.sh"])
def test_build_scripts_parse(script):
    subprocess.run(["bash", "-n", os.path.join(PKG, script)], check=True)


def test_frozen_entry_scripts_call_the_console_entry_points():
    import tomllib

    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    for name in ("mcctl", "mcd"):
        module, func = scripts[name].split(":")
        entry = read(os.path.join(PKG, "pyinstaller", f"{name}_entry.py"))
        assert f"from {module} import {func}" in entry
        mod = __import__(module, fromlist=[func])
        assert callable(getattr(mod, func))


def test_mcd_group_is_the_one_the_daemon_uses():
    from mcd import daemon

    # The daemon gives its socket to this group (0660) when it exists; the packages make it.
    assert daemon.SOCKET_GROUP == "mcd"
    assert "g mcd -" in read(os.path.join(PKG, "systemd", "mcd.sysusers"))
    assert "groupadd --system mcd" in read(os.path.join(PKG, "deb", "scripts", "postinst"))
    assert "groupadd -r mcd" in read(os.path.join(PKG, "rpm", "mini-container.spec"))


def test_binaries_report_the_package_version(capsys):
    # The .deb/.rpm version is mcwire.__version__; `mcctl --version` must agree with it.
    import mcd.__main__

    version = gen_docs.project_version()
    for parser in (build_parser(), mcd.__main__.build_parser()):
        with pytest.raises(SystemExit):
            parser.parse_args(["--version"])
        assert capsys.readouterr().out.split()[-1] == version


def test_debs_mcctl_needs_only_the_standard_library(tmp_path):
    # The .deb runs mcctl on Debian's python3 -I -B -S: any third-party import would fail there.
    out = subprocess.run(["/usr/bin/python3", os.path.join(PKG, "mcctl_python_tree.py"), str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    files = set(out.stdout.split())
    assert {"mcctl/__main__.py", "mcctl/parser.py", "mcwire/spec.py", "mcwire/errors.py"} <= files
    assert not any(f.startswith("mcd/") for f in files)      # the CLI needs nothing of the daemon
    run = subprocess.run(["/usr/bin/python3", "-IBS", "-c",
                          "import sys; sys.path.insert(0, sys.argv[1]); sys.argv[1:] = ['--version']\n"
                          "from mcctl.__main__ import entry; entry()", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.stdout.strip() == f"mcctl {gen_docs.project_version()}"
