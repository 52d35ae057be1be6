"""Tables, sizes and Docker-like status words. Stdlib only (units from mcwire)."""

from __future__ import annotations

from mcwire.units import format_size, human_duration  # noqa: F401 (human_duration: ago)


_dt = None


def _datetime():
    """The datetime module, imported when a row first has a time: `ps` with nothing to
    list and every other command do not pay for it (datetime.py defines its pure-Python
    fallback before it loads the C one)."""
    global _dt
    if _dt is None:
        import datetime
        _dt = datetime
    return _dt


def utc_now():
    """The reference for ago(): taken once per table, not once per row."""
    dt = _datetime()
    return dt.datetime.now(dt.timezone.utc)


def parse_time(text: str | None):
    """An ISO 8601 time from the daemon as an aware datetime, or None."""
    if not text:
        return None
    try:
        return _datetime().datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def ago(text: str | None, now=None) -> str:
    t = parse_time(text)
    if t is None:
        return ""
    return human_duration(int(((now or utc_now()) - t).total_seconds()))


def status_text(c: dict, now=None) -> str:
    st = c.get("status")
    if st == "running":
        return f"Up {ago(c.get('started_at'), now)}"
    if st == "paused":
        return f"Up {ago(c.get('started_at'), now)} (Paused)"
    if st == "stopped":
        oom = " OOMKilled" if c.get("oom_killed") else ""
        return f"Exited ({c.get('exit_code')}){oom} {ago(c.get('finished_at'), now)} ago"
    if st == "created":
        return "Created"
    return (st or "unknown").capitalize()


def size(n) -> str:
    return format_size(n, "--")


def table(headers: list[str], rows: list[list], out) -> None:
    cells = [[str(x) for x in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        for i, x in enumerate(r):
            widths[i] = max(widths[i], len(x))
    fmt = lambda r: "   ".join(x.ljust(widths[i]) for i, x in enumerate(r)).rstrip()  # noqa: E731
    out.write(fmt(headers) + "\n")
    for r in cells:
        out.write(fmt(r) + "\n")


def truncate(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n - 1] + "…"


def dump_json(obj, out) -> None:
    import json     # only here: json imports re (see mcctl/wirejson.py)
    out.write(json.dumps(obj, indent=2) + "\n")
