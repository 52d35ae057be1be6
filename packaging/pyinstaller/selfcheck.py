"""Runs inside the frozen mcd bundle (dist/mcd/mcd-selfcheck) at build time, to prove
what only the frozen environment can get wrong: every mcd and mcwire module imports, the package
data is there, pyseccomp finds libseccomp through ctypes and a filter really loads, and
zstandard's extension (image layers) decompresses.
Not installed by the packages."""

import importlib
import os
import pkgutil
import sys


def main() -> int:
    import mcd
    import mcwire

    failures = []
    mods = [*pkgutil.walk_packages(mcd.__path__, "mcd."),
            *pkgutil.walk_packages(mcwire.__path__, "mcwire.")]
    for mod in mods:
        if mod.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(mod.name)
        except Exception as err:  # report every broken module, not just the first
            failures.append(f"import {mod.name}: {type(err).__name__}: {err}")

    base = os.path.join(sys._MEIPASS, "mcd")
    for rel in sys.argv[1:]:
        if not os.path.exists(os.path.join(base, rel)):
            failures.append(f"package data missing: mcd/{rel}")

    import pyseccomp

    # Load a filter in a child: a real seccomp(2) through the bundled ctypes binding.
    pid = os.fork()
    if pid == 0:
        try:
            f = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
            f.add_rule(pyseccomp.ERRNO(1), "swapon")
            f.load()
            with open("/proc/self/status") as status:
                mode = [l.split()[1] for l in status if l.startswith("Seccomp:")]
            os._exit(0 if mode == ["2"] else 3)
        except BaseException as err:
            print(f"seccomp: {type(err).__name__}: {err}", file=sys.stderr)
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        failures.append(f"seccomp filter did not load in the frozen bundle (child exit {os.waitstatus_to_exitcode(status)})")

    # zstd-compressed image layers: the bundled zstandard extension round-trips a frame.
    try:
        import zstandard
        data = b"mcd-selfcheck " * 100
        frame = zstandard.ZstdCompressor().compress(data)
        if zstandard.ZstdDecompressor().stream_reader(frame).read() != data:
            failures.append("zstandard: a round trip changed the data")
    except Exception as err:
        failures.append(f"zstandard: {type(err).__name__}: {err}")

    for line in failures:
        print(f"mcd-selfcheck: {line}", file=sys.stderr)
    print(f"mcd-selfcheck: {'FAILED' if failures else 'ok'} (libseccomp via {pyseccomp._libseccomp_path})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
