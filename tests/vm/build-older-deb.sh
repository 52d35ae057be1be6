#!/usr/bin/env bash
# The VM lane's upgrade check (issue 17: "apt install of a newer build over an older one with
# containers running") needs an OLDER package than dist/mini-container_<v>_<arch>.deb. This
# builds the same tree once more with the version lowered to <v>~vmolder (dpkg sorts it
# before <v>), so the frozen binaries really differ in version: the supervisor of the older
# build must re-execute itself as the newer one. Output: dist/older/mini-container_<v>~vmolder_<arch>.deb.
# The build runs in a copy of the tree (build/vm-older/src), never in the work tree itself.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
py="${PY:-$repo/.venv/bin/python}"
[ -x "$py" ] || { echo "build-older-deb: $py missing (run: make dev)" >&2; exit 1; }
version="$(/usr/bin/python3 -c 'import mcwire; print(mcwire.__version__)')"
older="${version}~vmolder"
dpkg --compare-versions "$older" lt "$version"
work="$repo/build/vm-older"
rm -rf --one-file-system "$work/src"
mkdir -p "$work/src"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
git ls-files -z -c -o --exclude-standard | tar --null -T - -cf - --ignore-failed-read 2>/dev/null \
    | tar -xf - -C "$work/src"
sed -i "s/^__version__ = \".*\"\$/__version__ = \"$older\"/" "$work/src/mcwire/__init__.py"
grep -qx "__version__ = \"$older\"" "$work/src/mcwire/__init__.py" \
    || { echo "build-older-deb: could not set the version in mcwire/__init__.py" >&2; exit 1; }
# The copy's packages first (the venv's editable install points at the work tree).
(cd "$work/src" && PY="$py" PYTHONPATH="$work/src" bash packaging/build-dist.sh \
    && PYTHONPATH="$work/src" bash packaging/deb/build.sh)
mkdir -p dist/older
rm -f dist/older/mini-container_*.deb
cp "$work/src"/dist/mini-container_"${older}"_*.deb dist/older/
echo "build-older-deb: $(ls dist/older/mini-container_*.deb)"
