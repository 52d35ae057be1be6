#!/bin/bash
# Runs inside the VM as a transient service with Delegate=yes (see in-vm.sh): proves the kernel
# and systemd give the lane what the project's v2 driver relies on, independently of the
# project's code. Prints one "RESULT ok|not ok <what>" line per fact; in-vm.sh turns them into
# TAP lines. It never touches a cgroup outside its own delegated subtree.
set -uo pipefail
result() { echo "RESULT $1 - $2"; }

own="$(sed -n 's/^0:://p' /proc/self/cgroup)"
cg="/sys/fs/cgroup$own"
echo "# own cgroup: $own"
if [ -z "$own" ] || [ ! -f "$cg/cgroup.subtree_control" ]; then
    result "not ok" "the service's own cgroup is a v2 cgroup ($own)"; exit 1
fi
result ok "the service's own cgroup is a v2 cgroup ($own)"

# Delegation: the subtree is ours to write, but no process may stay in an inner node
# ("no internal processes"), so the service moves itself into a leaf first.
mkdir "$cg/supervisor" "$cg/child" || { result "not ok" "create sub-cgroups in the delegated subtree"; exit 1; }
cleanup() {
    # The child's processes are gone by now; move back out so both leaves can be removed.
    echo $$ > "$cg/cgroup.procs" 2>/dev/null
    rmdir "$cg/child" "$cg/supervisor" 2>/dev/null
}
trap cleanup EXIT
if echo $$ > "$cg/supervisor/cgroup.procs" && echo "+memory +pids" > "$cg/cgroup.subtree_control"; then
    result ok "moved into a supervisor leaf and enabled +memory +pids ($(cat "$cg/cgroup.subtree_control"))"
else
    result "not ok" "move into a supervisor leaf and enable +memory +pids"; exit 1
fi

# memory.max: a 64 MiB buffer (dd touches every page of it) in a 32 MiB cgroup, no swap.
echo 32M > "$cg/child/memory.max"
[ -f "$cg/child/memory.swap.max" ] && echo 0 > "$cg/child/memory.swap.max"
sh -c 'echo $$ > "$1/cgroup.procs" && exec busybox dd if=/dev/zero of=/dev/null bs=64M count=1' sh "$cg/child" 2>/dev/null
rc=$?
oom="$(awk '$1 == "oom_kill" {print $2}' "$cg/child/memory.events")"
echo "# hog exit code $rc; memory.events: $(tr '\n' ' ' < "$cg/child/memory.events")"
if [ "$rc" = 137 ] && [ "${oom:-0}" -ge 1 ]; then
    result ok "a 64 MiB hog under memory.max=32M is OOM-killed (exit 137, oom_kill $oom)"
else
    result "not ok" "a 64 MiB hog under memory.max=32M is OOM-killed (got exit $rc, oom_kill ${oom:-?})"
fi

# pids.max: with 8 allowed, 20 background sleeps cannot all start.
echo 8 > "$cg/child/pids.max"
sh -c 'echo $$ > "$1/cgroup.procs"; n=0; for i in $(seq 20); do sleep 3 2>/dev/null & done; wait' sh "$cg/child" 2>/dev/null
peak="$(cat "$cg/child/pids.peak" 2>/dev/null || echo n/a)"
maxev="$(awk '$1 == "max" {print $2}' "$cg/child/pids.events")"
if [ "${maxev:-0}" -ge 1 ]; then
    result ok "pids.max=8 refuses forks past the limit (pids.events max $maxev)"
else
    result "not ok" "pids.max=8 refuses forks past the limit (pids.events max ${maxev:-?}, peak $peak)"
fi
