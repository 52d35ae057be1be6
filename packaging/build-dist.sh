#!/usr/bin/env bash
# make dist: frozen binaries in dist/ with the venv's python (Debian's /usr/bin/python3 under it).
#   dist/mcctl            one-file mcctl (the single shell-friendly binary)
#   dist/mcctl-dir/mcctl  one-dir mcctl (what the packages install)
#   dist/mcd/mcd          one-dir daemon (+ mcd-selfcheck, run here, not packaged)
#   dist/mcrt/mcrt        one-dir OCI runtime (runc's command line)
# Reproducible-ish: SOURCE_DATE_EPOCH and a fixed hash seed; the work dirs in build/ are
# PyInstaller's cache, so a rebuild after a code change takes seconds, not a minute.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
py="${PY:-$repo/.venv/bin/python}"
[ -x "$py" ] || { echo "build-dist: $py missing (run: make dev)" >&2; exit 1; }
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
export PYTHONHASHSEED=0
export PYTHONDONTWRITEBYTECODE=1

for mod in mcctl.__main__ mcd.__main__ mcrt.__main__; do
    "$py" -c "import $mod" || { echo "build-dist: cannot import $mod" >&2; exit 1; }
done

pyi() {  # spec, name
    local t0=$SECONDS
    "$py" -m PyInstaller --noconfirm --log-level WARN \
        --distpath "$repo/dist" --workpath "$repo/build/pyinstaller/$2" "$repo/packaging/pyinstaller/$1"
    echo "build-dist: $2 frozen in $((SECONDS - t0)) s"
}

rm -rf dist/mcctl dist/mcctl-dir dist/mcd dist/mcrt
pyi mcctl.spec mcctl
# PyInstaller wants distinct executable names within one spec; the bundle's binary is mcctl.
mv dist/mcctl-dir/mcctl-onedir dist/mcctl-dir/mcctl
pyi mcd.spec mcd
pyi mcrt.spec mcrt

# What only a frozen bundle can get wrong: imports by name, package data, libseccomp via ctypes.
data_args=()
while IFS= read -r f; do data_args+=("${f#mcd/}"); done < <(cd "$repo" && find mcd -type f ! -name '*.py' ! -name '*.pyc' ! -path '*/__pycache__/*' | sort)
dist/mcd/mcd-selfcheck "${data_args[@]}"

# mcrt's lazy imports, frozen: features loads the seccomp tables and mcwire's capabilities.
dist/mcrt/mcrt features >/dev/null || { echo "build-dist: dist/mcrt/mcrt features failed" >&2; exit 1; }
for bin in dist/mcctl dist/mcctl-dir/mcctl dist/mcd/mcd dist/mcrt/mcrt; do
    out="$("$bin" --version)" || { echo "build-dist: $bin --version failed" >&2; exit 1; }
    echo "build-dist: $bin --version: $out"
done
