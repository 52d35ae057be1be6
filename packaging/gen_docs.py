"""Man pages and shell completions generated from the argparse parsers, the only
description of the CLI. Used by gen-man.sh, gen-completions.sh and the unit test that
checks the committed files match the parsers.

    python packaging/gen_docs.py man DIR          -> DIR/mcctl.1, DIR/mcd.8, DIR/mcrt.8
    python packaging/gen_docs.py completions DIR  -> DIR/mcctl.bash, DIR/_mcctl, DIR/mcrt.bash, DIR/_mcrt
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(REPO, "packaging")

# mcctl/parser.py marks the positionals that take container or template names with
# shtab's `.complete = {"bash": "_mcctl_containers", "zsh": "_mcctl_containers"}` (and
# _mcctl_templates); these are those functions. They ask the daemon at TAB time, through
# the same binary the user typed, and complete nothing (silently) when the daemon is down
# or the user may not use its socket. Containers: the names from `ps -a --format json`
# (indent=2, one key per line); templates: `template ls -q` (one name per line).
COMPLETION_PREAMBLE = {
    "bash": r'''
# Container and template names, asked of the daemon through the mcctl being completed.
_mcctl_ask() {
  "${COMP_WORDS[0]:-mcctl}" "$@" 2>/dev/null
}
_mcctl_containers() {
  compgen -W "$(_mcctl_ask ps -a --format json | sed -n 's/^    "name": "\([^"]*\)".*/\1/p')" -- "$1"
}
_mcctl_templates() {
  compgen -W "$(_mcctl_ask template ls -q)" -- "$1"
}
''',
    "zsh": r'''
# Container and template names, asked of the daemon through the mcctl being completed.
_mcctl_containers() {
  local -a names
  names=(${(f)"$("${words[1]:-mcctl}" ps -a --format json 2>/dev/null | sed -n 's/^    "name": "\([^"]*\)".*/\1/p')"})
  compadd -a names
}
_mcctl_templates() {
  local -a names
  names=(${(f)"$("${words[1]:-mcctl}" template ls -q 2>/dev/null)"})
  compadd -a names
}
''',
}


def project_version() -> str:
    """mcwire.__version__, the one source (pyproject.toml reads it too)."""
    import mcwire
    return mcwire.__version__


def mcctl_parser() -> argparse.ArgumentParser:
    return importlib.import_module("mcctl.parser").build_parser()


def mcrt_parser() -> argparse.ArgumentParser:
    return importlib.import_module("mcrt.parser").build_parser()


def mcd_parser() -> argparse.ArgumentParser:
    for name in ("mcd.__main__", "mcd.config"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "build_parser"):
            return module.build_parser()
    raise ImportError("no build_parser() in mcd.__main__ or mcd.config")


# ------------------------------------------------------------------------ man pages

MAN_PAGES = {
    # file: (parser factory, prog, section, one-line description)
    "mcctl.1": (mcctl_parser, "mcctl", "1", "control mini-container containers and templates"),
    "mcd.8": (mcd_parser, "mcd", "8", "the mini-container daemon"),
    "mcrt.8": (mcrt_parser, "mcrt", "8", "run OCI bundles with runc's command line"),
}
# The .TH line carries the date; it is metadata, not content (see write_if_changed).
_TH = re.compile(r'^\.TH .*$', re.M)


def render_man(filename: str) -> str:
    from argparse_manpage.manpage import Manpage

    factory, prog, section, description = MAN_PAGES[filename]
    parser = factory()
    parser.prog = prog
    data = {
        "project_name": "mini-container",
        "prog": prog,
        "version": project_version(),
        "description": description,
        "manual_section": section,
        "manual_title": "mini-container manual",
        "include": os.path.join(HERE, "man", f"{prog}.include"),
        "format": "pretty",
        "url": None, "authors": None, "long_description": None, "manfile": None,
    }
    return str(Manpage(parser, format="pretty", _data=data))


def strip_date(text: str) -> str:
    return _TH.sub(".TH", text)


# ------------------------------------------------------------------------ completions

def render_completion(what) -> str:
    """what: a shell (mcctl's completion) or (prog, shell) for another command's."""
    import shtab

    prog, shell = ("mcctl", what) if isinstance(what, str) else what
    if prog == "mcctl":
        parser = mcctl_parser()
        preamble = COMPLETION_PREAMBLE[shell]
    else:
        parser = mcrt_parser()
        preamble = ""
    parser.prog = prog
    return shtab.complete(parser, shell=shell, preamble=preamble)


COMPLETIONS = {"mcctl.bash": "bash", "_mcctl": "zsh",
               "mcrt.bash": ("mcrt", "bash"), "_mcrt": ("mcrt", "zsh")}


# ------------------------------------------------------------------------ files

def generate(kind: str) -> dict[str, str]:
    if kind == "man":
        return {name: render_man(name) for name in MAN_PAGES}
    if kind == "completions":
        return {name: render_completion(shell) for name, shell in COMPLETIONS.items()}
    raise ValueError(kind)


def write_if_changed(path: str, text: str, *, ignore_date: bool) -> bool:
    """Rewrite only when the content changed, so regenerating after an unrelated commit
    (a new SOURCE_DATE_EPOCH) leaves the committed man page alone."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = None
    if old is not None and (strip_date(old) == strip_date(text) if ignore_date else old == text):
        return False
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return True


def main(argv: list[str]) -> int:
    kind, outdir = argv
    os.makedirs(outdir, exist_ok=True)
    for name, text in generate(kind).items():
        path = os.path.join(outdir, name)
        changed = write_if_changed(path, text, ignore_date=(kind == "man"))
        print(f"{path}: {'written' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
