"""mcrt entry point: parse, run one command, turn any failure into one line.

Errors go to stderr and, with --log, to that file too (with --log-format json as
{"level":"error","msg":...,"time":...} lines, which the containerd shim and conmon read
back to tell their caller why a runtime call failed). Exit status 1; a traceback only
with --debug."""

from __future__ import annotations

import json
import os
import sys
import time


class Log:
    def __init__(self, path: str = "", fmt: str = "text", debug: bool = False):
        self.path, self.fmt, self.debug_on = path, fmt, debug

    def _line(self, level: str, msg: str) -> str:
        t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.fmt == "json":
            return json.dumps({"level": level, "msg": msg, "time": t}) + "\n"
        return f'time="{t}" level={level} msg="{msg}"\n'

    def write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, self._line(level, msg).encode())
            finally:
                os.close(fd)
        except OSError:
            pass

    def debug(self, msg: str) -> None:
        if self.debug_on:
            self.write("debug", msg)
            sys.stderr.write(f"mcrt: debug: {msg}\n")

    def warn(self, msg: str) -> None:
        self.write("warning", msg)
        sys.stderr.write(f"mcrt: warning: {msg}\n")


def main(argv: list[str] | None = None) -> int:
    from mcrt.errors import McrtError
    from mcrt.parser import build_parser, command_of

    argv = sys.argv[1:] if argv is None else argv
    log = Log()
    debug = "--debug" in argv
    try:
        # The global flags first, so an error in the rest still reaches --log.
        wanted = command_of(argv)
        full = wanted is None or "-h" in argv or "--help" in argv
        ns = build_parser(None if full else wanted).parse_args(argv)
        log = Log(ns.log, ns.log_format, ns.debug)
        if ns.version:
            from mcrt.parser import version_text
            from mcrt.seccomp import libseccomp_version
            sys.stdout.write(version_text(libseccomp_version()))
            return 0
        if not ns.command:
            raise McrtError("mcrt: a command is required (mcrt --help lists them)")
        from mcrt import commands
        return getattr(commands, "cmd_" + ns.command)(ns, log) or 0
    except McrtError as err:
        msg = str(err)
    except KeyboardInterrupt:
        msg = "interrupted"
    except Exception as err:    # noqa: BLE001 - the one-line contract
        if type(err).__module__ in ("mcd.errors", "mcwire.errors"):    # mcd's runtime code: already one line
            msg = str(err)
        elif debug:
            raise
        else:
            msg = f"internal error: {type(err).__name__}: {err}"
    except SystemExit as err:      # --help
        return err.code if isinstance(err.code, int) else 0
    if debug:
        import traceback
        traceback.print_exc()
    log.write("error", msg)
    sys.stderr.write(f"mcrt: {msg}\n" if not msg.startswith("mcrt") else f"{msg}\n")
    return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
