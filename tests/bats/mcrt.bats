#!/usr/bin/env bats
# mcrt (the OCI runtime) under its real clients: podman with conmon and containerd with
# the runc v2 shim. Private everything: podman's root/runroot/tmpdir and containers.conf,
# a containerd started here and stopped by pid, cgroups under mctest-<random>.
# MCRT picks the binary: dist/mcrt/mcrt when `make dist` built it, else .venv/bin/mcrt.

setup_file() {
    repo="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    if [ -z "${MCRT:-}" ]; then
        if [ -x "$repo/dist/mcrt/mcrt" ]; then MCRT="$repo/dist/mcrt/mcrt"; else MCRT="$repo/.venv/bin/mcrt"; fi
    fi
    export MCRT
    export T="$(mktemp -d /tmp/mctest-mcrtbats.XXXXXX)"
    export CG="mctest-$$$RANDOM"
    # The busybox tree (the minimal template's builder), imported offline into podman.
    "$repo/.venv/bin/python" - "$T/rootfs" <<'PY'
import sys, os
sys.path.insert(0, os.path.join(os.environ.get("PWD", "."), "tests/python"))
from mcrtlib import busybox_rootfs
busybox_rootfs(sys.argv[1], sys.argv[1] + "-cache")
PY
    cat > "$T/containers.conf" <<'CONF'
[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
CONF
    export CONTAINERS_CONF="$T/containers.conf"
    tar -C "$T/rootfs" -cf "$T/bb.tar" .
    pm import "$T/bb.tar" localhost/mcrt-bats:latest >/dev/null
    mkdir -p "$T/ctd"
    "$repo/.venv/bin/python" -c "
import sys; sys.path.insert(0, 'tests/python')
from mcrtlib import CONTAINERD_CONFIG
print(CONTAINERD_CONFIG.format(d='$T/ctd', mcrt='$MCRT', mcrt_root='$T/ctd/mcrt'))" > "$T/ctd/config.toml"
    containerd --config "$T/ctd/config.toml" >"$T/ctd/log" 2>&1 &
    echo $! > "$T/ctd/pid"
    for _ in $(seq 1 300); do ctr --address "$T/ctd/c.sock" version >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "containerd did not come up" >&2; cat "$T/ctd/log" >&2; return 1
}

teardown_file() {
    pm rm -af -t 0 >/dev/null 2>&1 || true
    pm rmi -af >/dev/null 2>&1 || true
    for c in $(ctr --address "$T/ctd/c.sock" c ls -q 2>/dev/null); do
        ctr --address "$T/ctd/c.sock" t kill -s SIGKILL "$c" >/dev/null 2>&1; sleep 0.2
        ctr --address "$T/ctd/c.sock" t rm -f "$c" >/dev/null 2>&1; ctr --address "$T/ctd/c.sock" c rm "$c" >/dev/null 2>&1
    done
    kill "$(cat "$T/ctd/pid")"; for _ in $(seq 1 100); do kill -0 "$(cat "$T/ctd/pid")" 2>/dev/null || break; sleep 0.1; done
    for d in /sys/fs/cgroup/*/"$CG"; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; ; done
    left="$(ls -d /sys/fs/cgroup/*/"$CG" 2>/dev/null || true)"
    # containerd, its shims and conmon carry our temp dir on their command line.
    procs="$(pgrep -f "$T/(ctd/c.sock|pm/)" || true)"
    rm -rf "$T"
    [ -z "$left" ] || { echo "cgroups left: $left" >&2; return 1; }
    [ -z "$procs" ] || { echo "processes left: $procs" >&2; return 1; }
}

# The runtime's state under our temp dir through a wrapper, not podman's --runtime-flag: the
# exit command conmon runs (podman container cleanup) does not carry runtime flags, so its
# delete looked in /run/mcrt and left the container's cgroups behind.
pm() {
    if [ ! -x "$T/pm/rt/mcrt" ]; then
        mkdir -p "$T/pm/rt"
        printf '#!/bin/sh\nexec "%s" --root "%s" "$@"\n' "$MCRT" "$T/pm/rt-state" > "$T/pm/rt/mcrt"
        chmod 755 "$T/pm/rt/mcrt"
    fi
    podman --root "$T/pm/root" --runroot "$T/pm/runroot" --tmpdir "$T/pm/tmp" --storage-driver vfs \
        --cgroup-manager cgroupfs --runtime "$T/pm/rt/mcrt" "$@"
}
c() { ctr --address "$T/ctd/c.sock" "$@"; }
# ctr run with the runtime's state and ctr's fifos under our temp dir (not /run/containerd/...).
crun_() { c run --runc-root "$T/ctd/runc-root" --fifo-dir "$T/ctd/fifo" "$@"; }

@test "podman --runtime mcrt run --rm: output and exit code" {
    run pm run --rm --cgroup-parent "/$CG" localhost/mcrt-bats sh -c 'echo hello; exit 3'
    [ "$status" -eq 3 ]
    [ "$output" = "hello" ]
}

@test "podman: exec, memory limit in the cgroup, kill, stop, rm" {
    id="$(pm run -d --memory 32m --cgroup-parent "/$CG" localhost/mcrt-bats sh -c "trap 'exit 9' TERM; while :; do sleep 0.1; done")"
    run pm exec "$id" sh -c 'echo in-exec; exit 4'
    [ "$status" -eq 4 ]
    [ "$output" = "in-exec" ]
    [ "$(cat /sys/fs/cgroup/memory/$CG/libpod-$id/memory.limit_in_bytes)" = "33554432" ]
    pm pause "$id"
    [ "$(cat /sys/fs/cgroup/freezer/$CG/libpod-$id/freezer.state)" = "FROZEN" ]
    pm unpause "$id"
    pm stop -t 10 "$id"
    [ "$(pm inspect -f '{{.State.ExitCode}}' "$id")" = "9" ]
    pm rm "$id"
    [ ! -d "/sys/fs/cgroup/memory/$CG/libpod-$id" ]
    id="$(pm run -d --cgroup-parent "/$CG" localhost/mcrt-bats sleep 100)"
    pm kill "$id"
    [ "$(pm wait "$id")" = "137" ]
    pm rm "$id"
}

@test "ctr run --runc-binary mcrt (runc v2 shim): output and exit code" {
    run crun_ --rm --runc-binary "$MCRT" --env PATH=/bin --cgroup "/$CG/b1" --rootfs "$T/rootfs" b1 sh -c 'echo via-shim; exit 6'
    [ "$status" -eq 6 ]
    [ "$output" = "via-shim" ]
}

@test "ctr: exec, kill, memory limit; a failing create says why" {
    crun_ -d --runc-binary "$MCRT" --env PATH=/bin --memory-limit 50331648 --cgroup "/$CG/b2" --rootfs "$T/rootfs" b2 sleep 100
    run c t exec --fifo-dir "$T/ctd/fifo" --exec-id e1 b2 sh -c 'echo e; exit 5'
    [ "$status" -eq 5 ]
    [ "$(cat /sys/fs/cgroup/memory/$CG/b2/memory.limit_in_bytes)" = "50331648" ]
    c t kill -s SIGKILL b2
    for _ in $(seq 1 100); do c t ls | grep -q "b2.*STOPPED" && break; sleep 0.05; done
    c t rm b2
    c c rm b2
    run crun_ --rm --runc-binary "$MCRT" --cgroup "/$CG/b3" --rootfs "$T/rootfs" b3 /no/such/program
    [ "$status" -ne 0 ]
    [[ "$output" == *"/no/such/program"* ]]
}
