"""Shared by the .spec files (PyInstaller executes them with this directory on hand)."""

import os

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Never used by mcctl or mcd; keeping them out makes the bundles smaller and the
# one-file binary faster to unpack on every call.
EXCLUDES = [
    "tkinter", "_tkinter", "turtle", "idlelib", "lib2to3", "pydoc_data", "test",
    "unittest", "distutils", "setuptools", "pkg_resources", "pip", "ensurepip",
    "venv", "sqlite3", "_sqlite3", "curses", "_curses", "readline", "xmlrpc",
    "multiprocessing", "concurrent", "asyncio", "ftplib", "imaplib", "poplib",
    "smtplib", "nntplib", "telnetlib", "mailbox", "pytest", "_pytest",
    "playwright", "matplotlib", "numpy", "PyInstaller",
]


def package_data(package: str) -> list[tuple[str, str]]:
    """Every non-Python file under a package (web static files, openapi.json), so a
    file the web engineer adds is bundled without touching the spec."""
    out = []
    root = os.path.join(REPO, package)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith((".py", ".pyc")):
                continue
            src = os.path.join(dirpath, name)
            out.append((src, os.path.relpath(dirpath, REPO)))
    return sorted(out)
