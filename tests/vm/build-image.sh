#!/usr/bin/env bash
# Build (once) the Debian 12 VM image the VM lane boots: systemd as PID 1, pure cgroup v2,
# everything the in-VM tests need (the VM has no network). Prints the directory that holds
# root.img, vmlinuz and initrd.img.
#
# The image is cached OUTSIDE the repo under $MC_VM_CACHE (default /var/cache/mini-container/vm),
# keyed by a hash of what decides its content: this script, tests/vm/image/* and the project's
# Python dependencies. A change to any of them builds a new image; older ones are removed.
# The VM is offline, so the image must also hold every Depends of dist/mini-container_*.deb:
# a cached image that lacks one (the package gained a dependency) is rebuilt with it.
# flock keeps two runs from building at once; the finished image appears by rename, never half-made.
#
# Usage: tests/vm/build-image.sh [--print-key]
# The body is one { } block so bash parses all of it before running any: an edit to this file
# (or a git checkout) during a build cannot change what a running build executes.
{
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${MC_VM_CACHE:-/var/cache/mini-container/vm}"
suite=bookworm   # `stable` is Debian 13 now; the lane is Debian 12, so name the suite

# Packages installed in the image. debootstrap's --include gets what the first boot needs;
# the rest goes in with apt inside the chroot, whose resolver is the one that handles Recommends.
boot_pkgs="systemd,systemd-sysv,dbus,udev,kmod,iproute2,python3"
image_pkgs=(linux-image-amd64 e2fsprogs python3-venv busybox-static libseccomp2 bats man-db
            bash-completion procps util-linux passwd adduser less psmisc)

log() { echo "build-image: $*" >&2; }
die() { echo "build-image: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"
for tool in debootstrap mkfs.ext4 chroot flock sha256sum; do
    command -v "$tool" >/dev/null || die "missing $tool (make apt-vm installs it)"
done

# The project's Python dependencies, plus pytest for the in-VM tests (no playwright: no browser in the VM).
python_deps() {
    /usr/bin/python3 - "$repo/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
deps = list(project.get("dependencies", []))
deps += [d for d in project.get("optional-dependencies", {}).get("test", []) if d.startswith("pytest")]
print("\n".join(sorted(deps)))
PY
}

# Names (first alternative, no version) of the Depends/Pre-Depends of the newest dist/*.deb.
deb_deps() {
    local deb
    deb="$(ls -t "$repo"/dist/*.deb 2>/dev/null | head -n1 || true)"
    [ -n "$deb" ] || return 0
    { dpkg-deb -f "$deb" Depends; dpkg-deb -f "$deb" Pre-Depends; } 2>/dev/null \
        | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/:any//; s/[[:space:]]//g' | grep -v '^$' | sort -u
}

pydeps="$(python_deps)"
debdeps="$(deb_deps)"
key="$( { cat "$0"; cat "$here"/image/*; echo "$pydeps"; } | sha256sum | cut -c1-16)"
if [ "${1:-}" = --print-key ]; then echo "$key"; exit 0; fi
out="$cache/$key"

# packages.txt lists the image's installed packages and what they provide.
have_image() {
    [ -f "$out/root.img" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ] && [ -f "$out/packages.txt" ] || return 1
    local p missing=""
    for p in $debdeps; do grep -qx "$p" "$out/packages.txt" || missing="$missing $p"; done
    [ -z "$missing" ] && return 0
    log "cached image $key lacks the package's Depends:$missing: rebuilding"
    return 1
}

mkdir -p "$cache"
if have_image; then echo "$out"; exit 0; fi
exec 9>"$cache/.lock"
if ! flock -n 9; then log "another run is building an image: waiting for $cache/.lock"; flock 9; fi
if have_image; then echo "$out"; exit 0; fi   # built by the run that held the lock

mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
[ -n "$mirror" ] || mirror="$(awk '$1 == "deb" && $2 ~ /^http/ && $3 == "'$suite'" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

work="$cache/$key.tmp.$$"
root="$work/root"
cleanup() {
    # Unmount before deleting: rm must never walk into the host's /proc.
    if mountpoint -q "$root/proc" 2>/dev/null; then umount -l "$root/proc" || true; fi
    if [ -d "$work" ] && ! findmnt -rn -o TARGET | grep -q "^$work"; then rm -rf --one-file-system "$work"; fi
}
trap cleanup EXIT
mkdir -p "$work"
t0=$SECONDS
log "image $key: debootstrap $suite from $mirror"
debootstrap --variant=minbase --include="$boot_pkgs" "$suite" "$root" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
log "debootstrap done in $((SECONDS - t0)) s"

in_root() { LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"; }
mount -t proc proc "$root/proc"
# No service may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The host's archive may be a dated snapshot: do not reject its Release files as expired.
printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' > "$root/etc/apt/apt.conf.d/99mc-vm"
# linux-image's postinst builds the initrd. MODULES=list keeps it to what this VM's root needs
# (virtio disk, ext4) instead of "most" of the kernel: under TCG that saves ~40 s of every boot.
mkdir -p "$root/etc/initramfs-tools/conf.d"
printf 'virtio_pci\nvirtio_blk\next4\n' >> "$root/etc/initramfs-tools/modules"
printf 'MODULES=list\n' > "$root/etc/initramfs-tools/conf.d/mc-vm"

extra=()
while read -r p; do [ -n "$p" ] && extra+=("$p"); done <<< "$debdeps"
t1=$SECONDS
log "apt-get install ${image_pkgs[*]} ${extra[*]:-}"
in_root apt-get update -qq > "$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; die "apt-get update in the chroot failed"; }
in_root apt-get install -y -qq --no-install-recommends "${image_pkgs[@]}" "${extra[@]}" >> "$work/apt.log" 2>&1 \
    || { tail -n 30 "$work/apt.log" >&2; die "apt-get install in the chroot failed (log above)"; }
log "packages done in $((SECONDS - t1)) s"

# The project's Python deps, installed by the HOST's pip (it has the host's index configuration;
# the chroot does not) into a directory the VM puts on PYTHONPATH. Same Debian, same CPython 3.11.
t2=$SECONDS
pip_python=""
for cand in "$repo/.venv/bin/python" /usr/bin/python3; do
    if [ -x "$cand" ] && "$cand" -m pip --version >/dev/null 2>&1; then pip_python="$cand"; break; fi
done
[ -n "$pip_python" ] || die "no pip on the host to install the VM's Python deps (run make dev)"
host_abi="$("$pip_python" -c 'import sys; print(sys.version_info[:2])')"
vm_abi="$(in_root python3 -c 'import sys; print(sys.version_info[:2])')"
[ "$host_abi" = "$vm_abi" ] || die "host python $host_abi differs from the VM's $vm_abi: wheels would not match"
mapfile -t pyreqs <<< "$pydeps"
"$pip_python" -m pip install -q --no-compile --target "$root/opt/mc-python" "${pyreqs[@]}" > "$work/pip.log" 2>&1 \
    || { cat "$work/pip.log" >&2; die "pip install of the VM's Python deps failed"; }
rm -rf "$root/opt/mc-python/bin"   # console scripts with the host's shebang; the VM uses python3 -m
log "python deps ($(echo $pydeps)) done in $((SECONDS - t2)) s"

# System configuration for a fast, quiet, offline test boot.
echo mc-vm > "$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 mc-vm\n' > "$root/etc/hosts"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > "$root/etc/fstab"
install -m 0644 "$here/image/mc-vm-test.service" "$root/etc/systemd/system/mc-vm-test.service"
install -m 0755 "$here/image/mc-vm-runner" "$root/usr/local/sbin/mc-vm-runner"
in_root systemctl enable mc-vm-test.service >/dev/null 2>&1
# Timers that would run apt, man-db or fs scrubs mid-test (and hold the dpkg lock) are masked.
# Units a headless test VM has no use for are masked too: every unit costs seconds under TCG.
for u in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer \
         systemd-tmpfiles-clean.timer dpkg-db-backup.timer e2scrub_reap.service getty@tty1.service; do
    in_root systemctl mask "$u" >/dev/null 2>&1 || true
done
in_root passwd -d root >/dev/null   # a root shell on the serial console when debugging by hand
# man-db's trigger would rebuild its index on every package install (~10 s under TCG); man
# reads pages without the index.
echo "man-db man-db/auto-update boolean false" | in_root debconf-set-selections
rm -f "$root/var/lib/man-db/auto-update"
rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
# No archive lists: the VM is offline anyway, and parsing them cost apt ~50 s per call under
# TCG. `apt-get install ./x.deb` resolves Depends against the installed packages alone.
in_root apt-get clean
rm -rf "$root"/var/lib/apt/lists/*
in_root dpkg-query -W -f='${Package}\n${Provides}\n' | tr ',' '\n' \
    | sed -E 's/\(.*\)//; s/[[:space:]]//g' | grep -v '^$' | sort -u > "$work/packages.txt"
umount "$root/proc"

cp "$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)" "$work/vmlinuz"
cp "$(ls "$root"/boot/initrd.img-* | sort -V | tail -n1)" "$work/initrd.img"
t3=$SECONDS
truncate -s 4G "$work/root.img"
mkfs.ext4 -q -L mc-vm-root -d "$root" "$work/root.img" || die "mkfs.ext4 -d failed"
log "filesystem image done in $((SECONDS - t3)) s"
rm -rf --one-file-system "$root"
{ echo "key=$key"; echo "suite=$suite"; echo "mirror=$mirror"; echo "built=$(date -u +%FT%TZ)";
  echo "build_seconds=$((SECONDS - t0))"; echo "python_deps=$(echo $pydeps)"; echo "deb_deps=$(echo $debdeps)"; } > "$work/image.info"
rm -f "$work"/*.log
# A stale image of the same key (missing a Depends) steps aside; a qemu still running on it
# keeps its open file.
[ -d "$out" ] && mv "$out" "$out.old.$$"
mv "$work" "$out"
trap - EXIT
# Older images (other keys) and leftovers of killed builds are of no further use (up to 4 GB each).
# The lock is still held, so no other build is writing here.
for old in "$cache"/*; do
    [ -d "$old" ] && [ "$old" != "$out" ] || continue
    findmnt -rn -o TARGET | grep -q "^$old" && continue
    rm -rf --one-file-system "$old"
done
log "image $key built in $((SECONDS - t0)) s: $out"
echo "$out"
exit
}
