#!/usr/bin/env bash
# A real Debian image archive, made offline from Debian's own packages (no image registry):
#   debootstrap --variant=minbase bookworm -> podman import -> podman save (docker-archive)
#
#   sudo bash scripts/make-debian-image.sh OUT.tar [TAG]     (TAG: debian:12-mc)
#
# Then: mcctl image load -i OUT.tar && mcctl run --rm debian:12-mc cat /etc/os-release
# podman runs on a private --root/--runroot, removed at the end (the host's podman storage
# is not touched). Needs debootstrap (the Makefile's APT_VM) and podman (APT_BENCH).
set -euo pipefail
out="${1:?usage: make-debian-image.sh OUT.tar [TAG]}"
tag="${2:-debian:12-mc}"
# podman would file a bare name under localhost/; Docker (and mcctl) read "debian:12-mc" as
# docker.io/library/debian:12-mc, so the archive gets that full name.
case "${tag%%/*}" in
    *.*|*:*|localhost) [[ "$tag" == */* ]] || tag="docker.io/library/$tag" ;;
    *) [[ "$tag" == */* ]] && tag="docker.io/$tag" || tag="docker.io/library/$tag" ;;
esac
[ "$(id -u)" = 0 ] || { echo "make-debian-image: needs root (debootstrap)" >&2; exit 1; }
for tool in debootstrap podman; do
    command -v "$tool" >/dev/null || { echo "make-debian-image: missing $tool" >&2; exit 1; }
done
mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
work="$(mktemp -d /tmp/mc-debian-image.XXXXXX)"
pm=(podman --root "$work/podman-root" --runroot "$work/podman-run" --storage-driver vfs)
cleanup() {
    "${pm[@]}" system reset -f >/dev/null 2>&1 || true
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
t0=$SECONDS
debootstrap --variant=minbase bookworm "$work/root" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
echo "make-debian-image: debootstrap done in $((SECONDS - t0)) s" >&2
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
tar -C "$work/root" --numeric-owner -cf - . \
    | "${pm[@]}" import -q --change 'CMD ["bash"]' - "$tag" >/dev/null
"${pm[@]}" save -q --format docker-archive -o "$work/image.tar" "$tag"
mv -f "$work/image.tar" "$out"
echo "make-debian-image: $out ($(du -h "$out" | cut -f1)) holds $tag" >&2
