"""Copy the Python modules mcctl needs (mcctl/ and the mcwire modules it imports, found
by scanning bytecode, so a lazy import inside a function counts) into DEST, for the .deb's
mcctl that runs on Debian's python3. Fails when mcctl would need anything outside the
standard library and this repository: such a module would not be there at run time
(/usr/bin/mcctl runs python3 -I -S: no site-packages).

    /usr/bin/python3 packaging/mcctl_python_tree.py DEST
"""

import modulefinder
import os
import shutil
import sys
import sysconfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(dest: str) -> int:
    stdlib = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")}
    # shtab: imported by mcctl.parser only when present (completion generation at build time).
    finder = modulefinder.ModuleFinder(path=[REPO] + [p for p in sys.path if p and p != REPO],
                                       excludes=["shtab"])
    finder.run_script(os.path.join(REPO, "mcctl", "__main__.py"))
    ours, foreign = set(), set()
    for name, mod in finder.modules.items():
        path = getattr(mod, "__file__", None)
        if name == "__main__":
            path = os.path.join(REPO, "mcctl", "__main__.py")
        if not path:
            continue   # built in
        real = os.path.realpath(path)
        if real.startswith(REPO + os.sep):
            ours.add(os.path.relpath(real, REPO))
        elif not any(real.startswith(s + os.sep) for s in stdlib):
            foreign.add(f"{name} ({path})")
    # Optional imports guarded by try/except ImportError (e.g. shtab in mcctl.parser) are
    # reported missing by modulefinder and are absent at run time, which the code allows.
    if foreign:
        print("mcctl_python_tree: mcctl imports modules outside the standard library: "
              + ", ".join(sorted(foreign)), file=sys.stderr)
        return 1
    for rel in sorted(ours):
        os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(os.path.join(REPO, rel), os.path.join(dest, rel))
    for pkg in {rel.split(os.sep)[0] for rel in ours}:
        init = os.path.join(pkg, "__init__.py")
        if not os.path.exists(os.path.join(dest, init)):
            shutil.copy2(os.path.join(REPO, init), os.path.join(dest, init))
    print("\n".join(sorted(ours)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
