#!/usr/bin/env bash
# Boot-check the .deb under a real systemd, in seconds: a Debian 12 rootfs (debootstrap,
# cached under /var/cache/mini-container) gets the package installed with apt, is booted
# with systemd-nspawn --boot, and a oneshot unit inside reports: mcd.service active
# (Type=notify readiness reached), the socket's group, man page, completion file, then
# restart of mcd keeps a container's monitor alive, then `apt remove` and `apt purge`.
# The container gets a pure cgroup2 tree (SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1, as on most
# hosts today) but without controllers on this hybrid host, so containers run without
# limits; the VM lane (tests/vm) is the full check. Takes about a minute once the base exists.
# Usage: packaging/nspawn-check.sh [dist/mini-container_*.deb]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
deb="${1:-$(ls -t "$repo"/dist/mini-container_*.deb | head -n1)}"
cache="${MC_CACHE:-/var/cache/mini-container}"
deps="$(dpkg-deb -f "$deb" Depends | sed -E 's/\([^)]*\)//g; s/ //g')"
# One base per Depends list, so apt inside (no network) finds everything installed.
base="$cache/nspawn-bookworm-$(echo "$deps" | sha256sum | cut -c1-12)"
[ "$(id -u)" = 0 ] || { echo "nspawn-check: needs root" >&2; exit 1; }
command -v systemd-nspawn >/dev/null || { echo "nspawn-check: systemd-nspawn missing (apt install systemd-container)" >&2; exit 1; }

# The base: minbase + systemd + what the package depends on, made once (flock, rename).
mkdir -p "$cache"
exec 9>"$cache/.nspawn-bookworm.lock"; flock 9
if [ ! -x "$base/lib/systemd/systemd" ]; then
    tmp="$base.tmp.$$"; rm -rf "$tmp"
    debootstrap --variant=minbase --include="systemd,systemd-sysv,dbus,man-db,bash-completion,$deps" \
        bookworm "$tmp" http://deb.debian.org/debian >&2
    mv "$tmp" "$base"
    # Older bases (other Depends lists) go.
    for old in "$cache"/nspawn-bookworm*; do
        [ "$old" = "$base" ] || [ ! -d "$old" ] || rm -rf --one-file-system "$old"
    done
fi
flock -u 9

work="$(mktemp -d /var/tmp/mc-nspawn.XXXXXX)"
# nspawn --keep-unit makes its payload/ and supervisor/ cgroups beside itself: give it a
# private parent at the root of the systemd-named and cgroup2 hierarchies (never in a
# cgroup the host made) and remove it, with what nspawn left inside, afterwards.
cgroups=()
while read -r _ mnt fstype opts _; do
    case "$fstype:$opts" in cgroup2:*|cgroup:*name=systemd*) cgroups+=("$mnt/mctest-nspawn-$$") ;; esac
done < /proc/mounts
cleanup() {
    for cg in "${cgroups[@]}"; do
        [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
for cg in "${cgroups[@]}"; do mkdir "$cg"; done
root="$work/root"
cp -a "$base" "$root"
cp "$deb" "$root/root/pkg.deb"
cat > "$root/root/check.sh" <<'SH'
#!/bin/bash
# Runs inside the booted container; every line of /root/result is "ok ..." or "FAIL ...".
exec >/root/result 2>&1
ok() { echo "ok $*"; }
fail() { echo "FAIL $*"; }
t() { local what="$1"; shift; if "$@" >/root/last 2>&1; then ok "$what"; else fail "$what: $(tr '\n' ' ' </root/last)"; fi; }
export DEBIAN_FRONTEND=noninteractive
t "apt install ./pkg.deb" apt-get install -y /root/pkg.deb
t "mcd.service is-active" systemctl is-active mcd.service
t "mcd.service is-enabled" systemctl is-enabled mcd.service
t "group mcd exists" getent group mcd
t "socket owned by group mcd" test "$(stat -c %G /run/mcd/mcd.sock)" = mcd
t "mcctl info" mcctl info
t "man mcctl renders" bash -c 'man -P cat mcctl | grep -q "mcctl run"'
t "user in group mcd may use mcctl" bash -c 'useradd -m -G mcd alice && su alice -c "mcctl ps"'
t "user not in group mcd is refused in one line" bash -c 'useradd -m bob; out="$(su bob -c "mcctl ps" 2>&1)"; rc=$?; echo "$out"; [ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" = 1 ]'
wd1="$(systemctl show -p WatchdogTimestampMonotonic --value mcd.service)"; sleep 16
t "watchdog pinged (WatchdogSec=30s, mcd pings every 15 s)" bash -c "[ \"\$(systemctl show -p WatchdogTimestampMonotonic --value mcd.service)\" != '$wd1' ] && systemctl is-active mcd.service"
t "bash completion file loads" bash -c 'source /usr/share/bash-completion/completions/mcctl && complete -p mcctl'
# The nspawn container gets a cgroup2 tree without controllers here: no limits (-1).
t "mcctl run --rm minimal echo hello" bash -c 'test "$(mcctl run --pids-limit -1 --rm minimal echo hello)" = hello'
t "mcctl run -d" mcctl run --pids-limit -1 -d --name keeper minimal sleep 1000
cpid="$(mcctl inspect keeper 2>/dev/null | sed -n 's/^ *"pid": \([0-9]*\).*/\1/p' | head -n1)"
pid="$(systemctl show -p MainPID --value mcd.service)"
t "systemctl restart mcd" systemctl restart mcd.service
t "new daemon pid after restart" test "$(systemctl show -p MainPID --value mcd.service)" != "$pid"
t "mcd.service active after restart" systemctl is-active mcd.service
t "container survived the restart (pid $cpid)" bash -c "[ -n '$cpid' ] && kill -0 '$cpid' && mcctl ps | grep -q keeper"
t "apt remove" apt-get remove -y mini-container
t "container stopped by remove" bash -c "! kill -0 '$cpid' 2>/dev/null"
t "no unit file left after remove" bash -c '! systemctl cat mcd.service 2>/dev/null'
t "no unit known after remove" bash -c 'systemctl daemon-reload; out="$(systemctl list-units --all --plain --no-legend "mcd*")"; echo "$out"; [ -z "$out" ] && [ "$(systemctl show -p LoadState --value mcd)" = not-found ]'
t "no mcd process after remove" bash -c '! pgrep -x mcd'
t "state kept after remove" test -d /var/lib/mcd
t "no program files left after remove" test ! -e /usr/lib/mini-container
t "apt purge" apt-get purge -y mini-container
t "state gone after purge" test ! -e /var/lib/mcd
t "nothing of the unit left after purge" bash -c 'systemctl daemon-reload; out="$(systemctl list-units --all --no-legend mcd.service; ls /etc/systemd/system/*/mcd.service 2>/dev/null)"; echo "$out"; [ -z "$out" ]'
echo done
systemctl poweroff
SH
chmod +x "$root/root/check.sh"
cat > "$root/etc/systemd/system/mc-check.service" <<'UNIT'
[Unit]
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/root/check.sh
[Install]
WantedBy=multi-user.target
UNIT
ln -s /etc/systemd/system/mc-check.service "$root/etc/systemd/system/multi-user.target.wants/mc-check.service"
# No apt downloads inside: everything the package needs is in the base already.
(
    for cg in "${cgroups[@]}"; do echo "$BASHPID" > "$cg/cgroup.procs"; done
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="${SYSTEMD_NSPAWN_UNIFIED_HIERARCHY:-1}" exec timeout 300 \
        systemd-nspawn --quiet --boot --directory="$root" --machine="mc-check-$$" \
        --private-network --register=no --keep-unit >"$work/console.log" 2>&1 </dev/null
) || true
if [ ! -s "$root/root/result" ]; then
    echo "nspawn-check: no result; console:" >&2; tail -40 "$work/console.log" >&2; exit 1
fi
cat "$root/root/result"
! grep -q '^FAIL' "$root/root/result" && grep -q '^done' "$root/root/result"
