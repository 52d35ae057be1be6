"""The common command lines, parsed without building (or importing) argparse.

argparse stays the one description of the CLI: help, usage errors, the man page and the
completions all come from ``mcctl.parser.build_parser()``. Importing argparse costs
``re`` (with enum, functools, sre), gettext and locale: about 9 ms of every short call
(docs/benchmarks.md, "CLI start-up, third pass"). So ``describe()`` turns the parser into a
plain table (``mcctl/argtable.py``, generated from it and checked against it by a unit
test), and ``parse()`` reads argv with that table for the forms whose meaning is plain:
exact option names, ``--opt=value``, bundled short flags (``-it``), one run of positionals
(and, for ``run``/``exec``, everything after the image or container as the command, as
argparse's REMAINDER does). Anything else - ``--help``, an abbreviation, ``--``, a bad
value, a missing argument, a template/image subcommand - returns None and the caller
builds the argparse parser, which then gives the answer, or the error, it always gave.

The test suite parses a corpus of command lines both ways and requires the same
namespace whenever this module answers at all.

Regenerate the table after changing mcctl/parser.py (`make man` does it too):
    python -m mcctl.fastparse > mcctl/argtable.py
"""

from __future__ import annotations

REMAINDER = "..."       # argparse.REMAINDER, without importing argparse


class Namespace:
    """What argparse.Namespace is for the commands: attributes, compared by vars()."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return f"Namespace({self.__dict__!r})"


# ---------------------------------------------------------------- the table, from argparse

def _kind(action) -> tuple | None:
    import argparse
    if isinstance(action, argparse._HelpAction):
        return ("help",)
    if isinstance(action, argparse._VersionAction):
        return ("version",)
    if isinstance(action, argparse._StoreTrueAction):
        return ("true",)
    if isinstance(action, (argparse._StoreAction, argparse._AppendAction)):
        if action.nargs is not None or action.const is not None:
            return None
        types = {None: None, int: "int", float: "float"}
        if action.type not in types:
            return None
        if isinstance(action.default, str) and action.type is not None:
            return None     # argparse would convert a string default: not modelled here
        kind = "append" if isinstance(action, argparse._AppendAction) else "store"
        return (kind, types[action.type], tuple(action.choices) if action.choices else None)
    return None


def _describe_parser(parser) -> dict | None:
    """{"options": {string: (dest, kind...)}, "positionals": [(dest, nargs)],
    "defaults": {dest: value}}; None when the parser has something not modelled here."""
    import argparse
    options, positionals, defaults = {}, [], {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return None
        if action.option_strings:
            kind = _kind(action)
            if kind is None:
                return None
            for s in action.option_strings:
                if _is_negative_number(s):
                    return None     # argparse would then read -1 as an option
                options[s] = (action.dest, *kind)
        else:
            if action.nargs not in (None, "+", "*", argparse.REMAINDER) or action.type is not None \
                    or action.choices:
                return None
            positionals.append((action.dest, REMAINDER if action.nargs == argparse.REMAINDER
                                else action.nargs))
        if action.dest != argparse.SUPPRESS and action.default is not argparse.SUPPRESS:
            defaults[action.dest] = action.default
    defaults.update(parser._defaults)
    variadic = [n for _, n in positionals if n in ("+", "*", REMAINDER)]
    if len(variadic) > 1 or (REMAINDER in variadic and positionals[-1][1] != REMAINDER):
        return None
    return {"options": options, "positionals": positionals, "defaults": defaults}


def describe(parser) -> dict:
    """The table for a full parser (build_parser()): its global options and every
    subcommand this module can parse."""
    import argparse
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    top = dict(_describe_parser(_without(parser, sub)), cmd_dest=sub.dest)
    commands = {}
    for name, p in sub.choices.items():
        d = _describe_parser(p)
        if d is not None:
            commands[name] = d
    return {"global": top, "commands": commands}


def _without(parser, sub):
    """A shallow view of the top parser without its subparsers action."""
    class View:
        _actions = [a for a in parser._actions if a is not sub]
        _defaults = parser._defaults
    return View


# ---------------------------------------------------------------- parsing argv with it

def _is_negative_number(tok: str) -> bool:
    """argparse's '^-\\d+$|^-\\d*\\.\\d+$' (such a token is a value, not an option, when no
    option looks like a negative number - true of mcctl)."""
    body = tok[1:]
    if body.isdigit() and body.isascii():
        return True
    whole, dot, frac = body.partition(".")
    return bool(dot) and frac.isdigit() and frac.isascii() and (whole == "" or (whole.isdigit() and whole.isascii()))


def _is_value(tok: str) -> bool:
    """argparse's classification of a token as an argument ('A'), for the tokens this
    module handles; options are looked up by the caller. ('-x y', which argparse may read
    as an option or a value, is neither here: the caller falls back.)"""
    return not tok.startswith("-") or tok == "-" or _is_negative_number(tok)


class _Fallback(Exception):
    """Not a form this module reads: let argparse answer."""


def _convert(kind: tuple, value: str):
    _, typ, choices = kind
    if typ == "int":
        try:
            value = int(value)
        except ValueError:
            raise _Fallback from None
    elif typ == "float":
        try:
            value = float(value)
        except ValueError:
            raise _Fallback from None
    if choices is not None and value not in choices:
        raise _Fallback
    return value


def _apply(ns: dict, entry: tuple, value) -> None:
    dest, kind = entry[0], entry[1]
    if kind == "true":
        ns[dest] = True
    elif kind == "store":
        ns[dest] = _convert(entry[1:], value)
    elif kind == "append":
        ns[dest] = [*(ns.get(dest) or []), _convert(entry[1:], value)]
    else:
        raise _Fallback     # help, version


def _options(tokens: list[str], i: int, options: dict, ns: dict) -> int:
    """Read the option at tokens[i] (and its value); the index after it."""
    tok = tokens[i]
    if tok in options:
        entry = options[tok]
        if entry[1] == "true" or entry[1] in ("help", "version"):
            _apply(ns, entry, None)
            return i + 1
        if i + 1 >= len(tokens) or not _is_value(tokens[i + 1]):
            raise _Fallback
        _apply(ns, entry, tokens[i + 1])
        return i + 2
    if tok.startswith("--"):
        name, eq, value = tok.partition("=")
        # argparse drops a value of exactly '--' (3.11: to []): left to it
        if eq and value != "--" and name in options and options[name][1] in ("store", "append"):
            _apply(ns, options[name], value)
            return i + 1
        raise _Fallback
    # -it: bundled short flags that take no value
    entries = [options.get("-" + c) for c in tok[1:]]
    if len(tok) > 2 and all(e is not None and e[1] == "true" for e in entries):
        for e in entries:
            _apply(ns, e, None)
        return i + 1
    raise _Fallback


def _parse_command(tokens: list[str], spec: dict, ns: dict) -> None:
    options, positionals = spec["options"], spec["positionals"]
    values: list[str] = []
    i, runs, remainder = 0, 0, None
    has_remainder = bool(positionals) and positionals[-1][1] == REMAINDER
    fixed = len(positionals) - 1 if has_remainder else len(positionals)
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--":
            raise _Fallback
        if tok not in options and _is_value(tok):
            if runs:
                raise _Fallback       # a second run of positionals: argparse's own rules
            runs = 1
            while i < len(tokens) and (tokens[i] not in options and _is_value(tokens[i])):
                if has_remainder and len(values) == fixed:
                    break
                values.append(tokens[i])
                i += 1
            if has_remainder and len(values) == fixed:
                remainder = tokens[i:]
                if "--" in remainder:
                    raise _Fallback
                i = len(tokens)
            continue
        i = _options(tokens, i, options, ns)
    if has_remainder:
        if len(values) != fixed:
            raise _Fallback
        ns[positionals[-1][0]] = remainder if remainder is not None else []
        positionals = positionals[:-1]
    # values over the positionals: each fixed one takes one, the variadic one the rest
    n_fixed = sum(1 for _, n in positionals if n is None)
    var = [(d, n) for d, n in positionals if n is not None]
    if len(values) < n_fixed or (not var and len(values) != n_fixed):
        raise _Fallback
    extra = len(values) - n_fixed
    if var and var[0][1] == "+" and extra < 1:
        raise _Fallback
    k = 0
    for dest, nargs in positionals:
        if nargs is None:
            ns[dest] = values[k]
            k += 1
        else:
            got = values[k:k + extra]
            k += extra
            if not got and nargs == "*" and ns.get(dest) is not None:
                continue        # argparse keeps a '*' positional's default when none is given
            ns[dest] = got


def parse(argv: list[str], table: dict | None = None) -> Namespace | None:
    """argv read as build_parser().parse_args(argv) would, or None to ask argparse."""
    if table is None:
        from mcctl.argtable import TABLE as table
    top = table["global"]
    ns = {k: (list(v) if isinstance(v, list) else v) for k, v in top["defaults"].items()}
    try:
        i = 0
        while i < len(argv) and argv[i].startswith("-"):
            if argv[i] == "--":
                raise _Fallback
            i = _options(argv, i, top["options"], ns)
        if i >= len(argv):
            raise _Fallback
        spec = table["commands"].get(argv[i])
        if spec is None:
            raise _Fallback
        ns[top["cmd_dest"]] = argv[i]
        for k, v in spec["defaults"].items():
            ns[k] = list(v) if isinstance(v, list) else v
        _parse_command(argv[i + 1:], spec, ns)
    except _Fallback:
        return None
    return Namespace(**ns)


def generate() -> str:
    from mcctl.parser import build_parser
    import pprint
    return ('"""Generated from mcctl/parser.py by `python -m mcctl.fastparse > mcctl/argtable.py`;\n'
            'a unit test checks it matches the parser. See mcctl/fastparse.py."""\n\n'
            f"TABLE = {pprint.pformat(describe(build_parser()), width=100, sort_dicts=True)}\n")


if __name__ == "__main__":
    import sys
    sys.stdout.write(generate())
