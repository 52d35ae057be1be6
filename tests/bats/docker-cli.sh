#!/usr/bin/env bash
# Print the path of a docker CLI for the Docker API tests: $DOCKER, else the one on this
# machine (/usr/local/bin/docker, then PATH), else the client from Debian's docker.io
# package, fetched with `apt-get download` and unpacked into .cache/docker-cli/ -- never
# installed, so no dockerd is ever set up or started by the tests.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
for c in "${DOCKER:-}" /usr/local/bin/docker "$(command -v docker || true)" \
         "$repo/.cache/docker-cli/usr/bin/docker"; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; exit 0; fi
done
dir="$repo/.cache/docker-cli"
mkdir -p "$dir"
( cd "$dir" && rm -f docker.io_*.deb && apt-get download -q docker.io >&2 )
dpkg-deb --fsys-tarfile "$dir"/docker.io_*.deb | tar -x -C "$dir" ./usr/bin/docker
rm -f "$dir"/docker.io_*.deb
echo "$dir/usr/bin/docker"
