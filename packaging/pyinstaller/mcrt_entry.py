# PyInstaller needs a script; the console entry point stays the one in pyproject.toml.
from mcrt.__main__ import entry

entry()
