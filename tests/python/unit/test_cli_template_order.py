"""`template import FILE NAME` and `template create DIR NAME`: one order (source first, as
`docker import`), and a swapped pair is named as such (issue 11 item 4). No daemon needed:
the source is opened before the daemon is asked."""

from __future__ import annotations

import io

from mcctl.__main__ import Environment, main
from mcctl.parser import build_parser


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    env = Environment(environ={"MCD_SOCKET": "/nonexistent/mcd.sock"},
                      stdin=io.StringIO(), stdout=out, stderr=err)
    return main(list(argv), env), out.getvalue(), err.getvalue()


def test_both_take_the_source_first():
    p = build_parser()
    a = p.parse_args(["template", "import", "x.tar", "t"])
    assert (a.file, a.name) == ("x.tar", "t")
    a = p.parse_args(["template", "create", "./tree", "t"])
    assert (a.directory, a.name) == ("./tree", "t")
    sub = next(a for a in p._actions if a.dest == "cmd").choices["template"]
    tsub = next(a for a in sub._actions if a.dest == "template_cmd")
    usage = {c: tsub.choices[c].format_usage() for c in ("import", "create")}
    assert usage["import"].rstrip().endswith("FILE NAME")
    assert usage["create"].rstrip().endswith("DIR NAME")


def test_swapped_import_says_the_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "alpine-rootfs.tar.gz").write_bytes(b"")
    rc, out, err = run_cli("template", "import", "alpine", "./alpine-rootfs.tar.gz")
    assert rc == 125 and out == ""
    assert err == ("mcctl: template import: alpine: No such file or directory; the order is "
                   "FILE NAME: mcctl template import ./alpine-rootfs.tar.gz alpine\n")


def test_swapped_create_says_the_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my tree").mkdir()
    rc, _, err = run_cli("template", "create", "mine", "my tree")
    assert rc == 125
    assert err == ("mcctl: template create: mine: No such file or directory; the order is "
                   "DIR NAME: mcctl template create 'my tree' mine\n")


def test_a_plain_missing_source_gets_no_hint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_cli("template", "import", "nope.tar", "t")
    assert rc == 125 and err == "mcctl: template import: nope.tar: No such file or directory\n"
    rc, _, err = run_cli("template", "create", "nodir", "t")
    assert err == "mcctl: template create: nodir: No such file or directory\n"
