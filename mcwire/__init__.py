"""The wire vocabulary that mcctl and mcd share, and that imports neither of them.

What both sides of the API must agree on lives here once: the version, the closed set of
error codes (each with its HTTP status and CLI exit status: ``mcwire.errors``), the units
of sizes, CPUs and durations and the spec's flag-level rules (``mcwire.units``), and the
container spec itself, the body of ``POST /v1/containers`` (``mcwire.spec``).

Stdlib only. mcctl imports it on every call, so each module keeps its own imports lean
(see docs/benchmarks.md, "CLI start-up"): this file imports nothing at all.
"""

# The one source of the version: pyproject.toml reads it ([tool.setuptools.dynamic]),
# `mcctl --version`, `mcd --version` and GET /v1/version print it.
__version__ = "0.1.0"

# The API's path prefix and version (/v1/...).
API_VERSION = "v1"
