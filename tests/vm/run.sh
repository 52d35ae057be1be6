#!/usr/bin/env bash
# The VM lane: boot a Debian 12 VM (systemd PID 1, pure cgroup v2, no network) under qemu/TCG,
# run tests/vm/in-vm.sh inside it as a oneshot unit, bring its output and exit code back, and
# exit non-zero when any in-VM check failed or the VM did not come back.
#
# The repo's files (tracked and untracked, not ignored) and dist/mini-container_*.deb are
# copied to a 9p share; nothing in the VM writes to the work tree. Artefacts, kept for
# debugging: test-artifacts/vm/{console.log,qemu.log,output.log,rc,...} (see docs/vm-lane.md).
#
# Environment: MC_VM_TIMEOUT (s, default 600) hard limit on the VM's life, after which qemu is
# killed by pid; MC_VM_SCRIPT (path inside the repo, default tests/vm/in-vm.sh) what to run;
# MC_VM_CACHE where build-image.sh keeps the image.
# The body is one { } block so bash parses all of it before running any: an edit to this file
# (or a git checkout) during a build cannot change what a running build executes.
{
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"
art="$repo/test-artifacts/vm"
timeout_s="${MC_VM_TIMEOUT:-600}"
script="${MC_VM_SCRIPT:-tests/vm/in-vm.sh}"

die() { echo "vm lane: $*" >&2; echo "0 passed, 1 failed"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (image build, 9p share owned by root)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (make apt-vm)"

t0=$SECONDS
img="$(bash tests/vm/build-image.sh)" || die "could not build the VM image (see above)"
t_image=$((SECONDS - t0))
echo "vm lane: image $img ($(cat "$img/image.info" 2>/dev/null | grep -E '^(key|built)=' | tr '\n' ' '))"

# --- the share: a copy of the repo as it is in the work tree, plus the package --------------
mkdir -p "$art"
# One run per work tree at a time: they would share test-artifacts/vm/ (the image build has its
# own lock, in the cache).
exec 8>"$art/.run.lock"
if ! flock -n 8; then echo "vm lane: another run in this work tree holds $art/.run.lock: waiting"; flock 8; fi
rm -rf --one-file-system "$art/share"
mkdir -p "$art/share/repo" "$art/share/out"
rm -f "$art"/console.log "$art"/qemu.log "$art"/output.log "$art"/rc "$art"/*.log
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z -c -o --exclude-standard | tar --null -T - -cf - --ignore-failed-read 2>/dev/null \
        | tar -xf - -C "$art/share/repo"
else
    tar -cf - --exclude=./.venv --exclude=./test-artifacts --exclude=./.git --exclude=./build . \
        | tar -xf - -C "$art/share/repo"
fi
shopt -s nullglob
debs=(dist/mini-container_*.deb)
shopt -u nullglob
if [ ${#debs[@]} -gt 0 ]; then
    mkdir -p "$art/share/repo/dist"
    cp "${debs[@]}" "$art/share/repo/dist/"
    echo "vm lane: package(s) on the share: ${debs[*]}"
else
    echo "vm lane: no dist/mini-container_*.deb: the package checks will be skipped"
fi
# The upgrade check's older build (tests/vm/build-older-deb.sh), when there is one.
shopt -s nullglob
older=(dist/older/mini-container_*.deb)
shopt -u nullglob
if [ ${#older[@]} -gt 0 ]; then
    mkdir -p "$art/share/repo/dist/older"
    cp "${older[@]}" "$art/share/repo/dist/older/"
    echo "vm lane: older package for the upgrade check: ${older[*]}"
fi
[ -f "$art/share/repo/$script" ] || die "no $script in the repo copy"
printf '#!/bin/bash\nexec bash /share/repo/%s\n' "$script" > "$art/share/run"

# --- boot ------------------------------------------------------------------------------------
# KVM is not available here: TCG, multi-threaded. -snapshot keeps the cached image pristine.
# panic=1 with -no-reboot turns a kernel panic into a prompt qemu exit instead of a hang.
qemu=(qemu-system-x86_64 -machine q35,accel=tcg -cpu max -smp 2 -m 2048
      -display none -monitor none -serial "file:$art/console.log" -no-reboot -nic none
      -kernel "$img/vmlinuz" -initrd "$img/initrd.img"
      -append "root=/dev/vda rw console=ttyS0 quiet panic=1 mitigations=off fsck.mode=skip mc.vmtest=1"
      -drive "file=$img/root.img,format=raw,if=virtio" -snapshot
      -virtfs "local,path=$art/share,mount_tag=share,security_model=none")
echo "vm lane: booting (timeout ${timeout_s} s): ${qemu[*]}" > "$art/qemu.log"
t1=$SECONDS
"${qemu[@]}" < /dev/null >> "$art/qemu.log" 2>&1 &
qpid=$!
# However run.sh ends (Ctrl-C, CI's own timeout), the VM it started ends with it: by its pid.
stop_qemu() {
    kill -0 "$qpid" 2>/dev/null || return 0
    kill -TERM "$qpid" 2>/dev/null || true
    for _ in 1 2 3 4 5; do kill -0 "$qpid" 2>/dev/null || return 0; sleep 1; done
    kill -KILL "$qpid" 2>/dev/null || true
}
trap stop_qemu EXIT
trap 'stop_qemu; exit 130' INT TERM
echo "vm lane: qemu pid $qpid, console in $art/console.log"

# Show the in-VM output as it comes (the runner tees it to the serial console).
shown=0
show_progress() {
    [ -f "$art/console.log" ] || return 0
    local total; total="$(wc -l < "$art/console.log")"
    if [ "$total" -gt "$shown" ]; then
        sed -n "$((shown + 1)),${total}p" "$art/console.log" | tr -d '\r' | sed 's/^/vm| /'
        shown="$total"
    fi
}
timed_out=0
while kill -0 "$qpid" 2>/dev/null; do
    if [ $((SECONDS - t1)) -ge "$timeout_s" ]; then
        timed_out=1
        echo "vm lane: the VM did not finish within ${timeout_s} s: killing qemu (pid $qpid)"
        stop_qemu
        break
    fi
    show_progress
    sleep 2
done
wait "$qpid" 2>/dev/null; qrc=$?
show_progress
t_vm=$((SECONDS - t1))

# --- results ---------------------------------------------------------------------------------
cp "$art/share/out/"* "$art/" 2>/dev/null || true
echo "vm lane: image ${t_image} s, VM round trip ${t_vm} s (qemu exit $qrc), total $((SECONDS - t0)) s"
if [ ! -f "$art/share/out/rc" ]; then
    [ "$timed_out" = 1 ] || echo "vm lane: qemu exited ($qrc) without the test's exit code"
    echo "vm lane: last lines of the serial console ($art/console.log):"
    tail -n 40 "$art/console.log" 2>/dev/null | tr -d '\r' | sed 's/^/vm| /'
    tail -n 5 "$art/qemu.log" | sed 's/^/qemu| /'
    die "the VM did not come back with a result"
fi
rc="$(cat "$art/share/out/rc")"
summary="$(tr -d '\r' < "$art/share/out/output.log" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n1 || true)"
[ -n "$summary" ] || die "the in-VM script (exit $rc) printed no summary line: see $art/output.log"
if [ "$rc" != 0 ]; then
    echo "vm lane: FAILED (in-VM exit $rc); failing checks:"
    grep -E '^not ok' "$art/share/out/output.log" | sed 's/^/  /' || true
fi
echo "$summary"
[ "$rc" = 0 ]
exit
}
