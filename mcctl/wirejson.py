"""JSON for mcctl's requests and answers, through CPython's own accelerator (``_json``).

The ``json`` package builds its pure-Python fallbacks at import time, and those compile
regular expressions: importing it brings ``re`` (with sre's compiler and parser) onto every
mcctl call, ~2.5 ms of ~40. ``json`` itself hands all real work to ``_json``'s scanner and
encoder; this module calls the same two functions with json's default settings, so the
bytes and objects are json.dumps()/json.loads()'s own (a unit test compares them).
Errors are ValueError, as json.JSONDecodeError is one.
"""

from __future__ import annotations

import _json

_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}
_WS = " \t\n\r"


class _Context:
    """The attributes _json.make_scanner reads from a json.JSONDecoder."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict = {}


_scan = _json.make_scanner(_Context())


def loads(data: bytes | str):
    """json.loads for UTF-8 (what mcd sends)."""
    s = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    i = len(s) - len(s.lstrip(_WS))
    try:
        obj, end = _scan(s, i)
    except StopIteration as err:
        raise ValueError(f"Expecting value: char {err.value}") from None
    if end != len(s) and s[end:].strip(_WS):
        raise ValueError(f"Extra data: char {end}")
    return obj


def _default(o):
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


# json.dumps(obj) with its defaults: ensure_ascii, check_circular, allow_nan, ", " ": ".
_encode = _json.make_encoder({}, _default, _json.encode_basestring_ascii, None, ": ", ", ",
                             False, False, True)


def dumps(obj) -> str:
    if isinstance(obj, (dict, list, tuple)):
        return "".join(_encode(obj, 0))
    import json
    return json.dumps(obj)
