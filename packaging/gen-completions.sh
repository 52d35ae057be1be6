#!/usr/bin/env bash
# make completions: completions/mcctl.bash and completions/_mcctl (zsh) from mcctl's parser (shtab).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
exec "${PY:-$repo/.venv/bin/python}" packaging/gen_docs.py completions "$repo/completions"
