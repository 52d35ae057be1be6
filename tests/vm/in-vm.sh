#!/bin/bash
# The VM lane's tests, run INSIDE the VM (root, systemd PID 1, pure cgroup v2, no network) by
# the image's mc-vm-test.service via tests/vm/run.sh. Prints one TAP-like line per check and
# ends with the plain line "N passed, N failed, N skipped". Exit status: 0 only if nothing failed.
#
# Sections: (0) the VM is what the lane promises, (1) the kernel/systemd v2 delegation facts,
# (2) the project's real-kernel cgroup tests, directly and under Delegate=yes, (3) the installed
# .deb for real, (4) an upgrade from an older build with containers running. A section whose subject has not landed yet is reported as skipped, with why.
set -uo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
out="${MC_VM_OUT:-/share/out}"
mkdir -p "$out"
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="/opt/mc-python:$repo"
pyenv=(PYTHONPATH="$PYTHONPATH" PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8)

n=0 passed=0 failed=0 skipped=0
ok()     { n=$((n+1)); passed=$((passed+1)); echo "ok $n - $1"; }
not_ok() { n=$((n+1)); failed=$((failed+1)); echo "not ok $n - $1"; }
skip()   { n=$((n+1)); skipped=$((skipped+1)); echo "ok $n - $1 # SKIP $2"; }
# Progress meters (dpkg's "Reading database ... 5%\r...") keep only their last state.
indent() { sed -E -e 's/\r$//' -e 's/^.*\r(.)/\1/' -e 's/^/#   /'; }
# check DESC CMD...: ok when CMD exits 0; otherwise not ok. CMD's output follows as comments:
# its first lines as evidence of a pass, its last lines to explain a failure.
check() {
    local desc="$1" log; shift
    log="$(mktemp)"
    if "$@" > "$log" 2>&1; then ok "$desc"; indent < "$log" | head -n 6
    else not_ok "$desc"; indent < "$log" | tail -n 40; fi
    rm -f "$log"
}
section() { echo "# --- $* ---"; }

# ------------------------------------------------------------------------------------------
section "0. the VM"
check "PID 1 is systemd" test "$(cat /proc/1/comm)" = systemd
check "/sys/fs/cgroup is the cgroup v2 unified hierarchy" test "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs
echo "# controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
check "memory, pids, cpu, cpuset and io controllers are available" \
    bash -c 'for c in memory pids cpu cpuset io; do grep -qw $c /sys/fs/cgroup/cgroup.controllers || { echo "missing $c"; exit 1; }; done'

# ------------------------------------------------------------------------------------------
section "1. kernel and systemd: a Delegate=yes service manages its own subtree"
v2log="$(mktemp)"
systemd-run --quiet --wait --pipe --collect -p Delegate=yes --unit=mc-vm-v2check \
    bash "$repo/tests/vm/v2-delegate-check.sh" > "$v2log" 2>&1
v2rc=$?
grep -v '^RESULT ' "$v2log" | grep '^#' || true
if grep -q '^RESULT ' "$v2log"; then
    while read -r _ verdict rest; do
        case "$verdict" in
            ok) ok "${rest#- }" ;;
            not) not_ok "${rest#ok - }" ;;
        esac
    done < <(grep '^RESULT ' "$v2log")
else
    not_ok "the Delegate=yes check service ran (systemd-run exit $v2rc)"; indent < "$v2log"
fi
rm -f "$v2log"

# ------------------------------------------------------------------------------------------
section "2. the project's real-kernel cgroup tests on cgroup v2"
shopt -s nullglob
cgtests=("$repo"/tests/python/linux/test_cgroups*.py)
shopt -u nullglob
if [ ${#cgtests[@]} = 0 ]; then
    skip "pytest tests/python/linux/test_cgroups*.py as root" "not in the repo yet"
    skip "pytest tests/python/linux/test_cgroups*.py in a Delegate=yes service" "not in the repo yet"
else
    rel=("${cgtests[@]#$repo/}")
    # pytest exits 5 when it collected nothing: that proves nothing, so it fails here.
    pytest_cmd=(python3 -m pytest -p no:cacheprovider -q -rs "${rel[@]}")
    # Placement outside delegation: the oneshot unit's cgroup is not delegated, so the driver
    # must fall back to its own parent at the root of the hierarchy.
    log="$(mktemp)"
    (cd "$repo" && timeout 600 "${pytest_cmd[@]}") > "$log" 2>&1; rc=$?
    tail -n 30 "$log" | indent; cp "$log" "$out/pytest-cgroups-root.log"
    if [ "$rc" = 0 ]; then ok "pytest ${rel[*]} as root (not delegated)"
    else not_ok "pytest ${rel[*]} as root (not delegated): exit $rc"; fi
    # Placement inside systemd's delegation: the daemon's real situation under mcd.service.
    envargs=(); for e in "${pyenv[@]}"; do envargs+=(-E "$e"); done
    (timeout 600 systemd-run --quiet --wait --pipe --collect -p Delegate=yes --unit=mc-vm-pytest \
        -p WorkingDirectory="$repo" "${envargs[@]}" "${pytest_cmd[@]}") > "$log" 2>&1; rc=$?
    tail -n 30 "$log" | indent; cp "$log" "$out/pytest-cgroups-delegated.log"
    if [ "$rc" = 0 ]; then ok "pytest ${rel[*]} in a Delegate=yes service"
    else not_ok "pytest ${rel[*]} in a Delegate=yes service: exit $rc"; fi
    rm -f "$log"
fi

# ------------------------------------------------------------------------------------------
section "3. the installed package"
pkg_checks=(
    "apt install ./mini-container_*.deb (offline)"
    "systemctl is-active mcd (Type=notify readiness)"
    "mcctl run --rm minimal echo hello prints hello as root"
    "mcctl run works for a user in group mcd"
    "mcctl run is refused for a user not in group mcd"
    "a -d -m 64m container has its own v2 cgroup, placed as docs/design.md says, memory.max 64m"
    "a -d container survives systemctl restart mcd"
    "a memory hog under -m 32m is OOM-killed and reported (exit 137)"
    "man mcctl renders"
    "bash completion completes mcctl ru<TAB> to run"
    "systemd-analyze verify mcd.service prints nothing"
    "apt remove stops the daemon and leaves no unit behind"
    "apt purge removes /var/lib/mcd and /etc/mcd"
    "the default network: run -d -p 8080:80 httpd is reached on 127.0.0.1 and the host's bridge address"
    "the published port still answers after systemctl restart mcd"
)
skip_pkg() { local c; for c in "${pkg_checks[@]:$1}"; do skip "$c" "$2"; done; }

deb="$(ls -t "$repo"/dist/mini-container_*.deb 2>/dev/null | head -n1 || true)"
unit=/usr/lib/systemd/system/mcd.service
mc() { timeout 120 mcctl "$@"; }
as_user() { local u="$1"; shift; timeout 120 runuser -u "$u" -- "$@"; }

if [ -z "$deb" ]; then
    skip_pkg 0 "no dist/mini-container_*.deb yet (make deb has not produced one)"
else
    pkg="$(dpkg-deb -f "$deb" Package)"
    echo "# package: $(basename "$deb") ($pkg), Depends: $(dpkg-deb -f "$deb" Depends)"
    log="$(mktemp)"
    if (cd "$(dirname "$deb")" && timeout 300 apt-get install -y --no-install-recommends "./$(basename "$deb")") > "$log" 2>&1 \
       && dpkg-query -W -f='${Status}' "$pkg" | grep -q 'ok installed'; then
        ok "${pkg_checks[0]}"
        installed=1
    else
        not_ok "${pkg_checks[0]}"; indent < "$log" | tail -n 40
        installed=0
    fi
    rm -f "$log"
    if [ "$installed" = 0 ]; then
        skip_pkg 1 "the package did not install"
    else
        # Type=notify: postinst's `systemctl start` returns once READY=1 arrived; allow for a
        # postinst that uses --no-block.
        for _ in $(seq 60); do [ "$(systemctl is-active mcd)" = activating ] || break; sleep 1; done
        state="$(systemctl is-active mcd)"
        if [ "$state" = active ]; then ok "${pkg_checks[1]}"
        else not_ok "${pkg_checks[1]}: $state"; systemctl status mcd --no-pager 2>&1 | indent | tail -n 20; fi

        check_hello() {  # who cmd...
            local got; got="$("$@" 2>&1)"; local rc=$?
            echo "$got"
            [ "$rc" = 0 ] && [ "$(printf '%s' "$got" | tr -d '\r')" = hello ]
        }
        check "${pkg_checks[2]}" check_hello mc run --rm minimal echo hello

        useradd -m -G mcd mc-member 2>/dev/null || usermod -aG mcd mc-member
        useradd -m mc-outsider 2>/dev/null || true
        check "${pkg_checks[3]}" check_hello as_user mc-member mcctl run --rm minimal echo hello

        refused() {
            local got rc; got="$(as_user mc-outsider mcctl run --rm minimal echo hello 2>&1)"; rc=$?
            echo "exit $rc: $got"
            # Refused: non-zero, nothing ran, and one clear line rather than a traceback.
            [ "$rc" != 0 ] && ! grep -qx hello <<< "$got" && ! grep -q Traceback <<< "$got" \
                && [ "$(grep -c . <<< "$got")" -le 2 ]
        }
        check "${pkg_checks[4]}" refused

        # One -d container serves the placement check and the restart check.
        cid="$(mc run -d -m 64m minimal sleep 1000 2>&1 | tr -d '\r' | tail -n1)"; cid_rc=$?
        sleep 1
        # The container's PID 1 (busybox sleep), found by reading /proc, never signalled here.
        cpid="$(pgrep -f -x 'sleep 1000' | head -n1 || true)"
        placed() {
            echo "container: $cid (run -d exit $cid_rc), PID 1 on the host: ${cpid:-none}"
            [ "$cid_rc" = 0 ] && [ -n "$cpid" ] || return 1
            local cg daemon_cg unit_cg max
            cg="$(sed -n 's/^0:://p' "/proc/$cpid/cgroup")"
            daemon_cg="$(sed -n 's/^0:://p' "/proc/$(systemctl show -p MainPID --value mcd)/cgroup")"
            unit_cg="$(systemctl show -p ControlGroup --value mcd)"
            max="$(cat "/sys/fs/cgroup$cg/memory.max")"
            echo "mcd.service: $unit_cg; daemon: $daemon_cg; container: $cg; memory.max $max"
            # docs/design.md, Cgroups: containers go inside the Delegate=yes unit only when systemd
            # started the daemon in <unit>/supervisor (DelegateSubgroup=, systemd >= 254); else
            # (Debian 12's systemd 252) at /<parent>/<id> from the root, so restarts still work.
            local parent; parent="$(mc info 2>/dev/null | sed -n 's/^ *Cgroup Parent: *//p' | tr -d '\r')"
            if [ "$daemon_cg" = "$unit_cg/supervisor" ]; then
                case "$cg" in "$unit_cg"/*/"$cid") ;; *) echo "expected $unit_cg/<parent>/$cid"; return 1;; esac
            else
                [ "$cg" = "/${parent:-mini_container}/$cid" ] || { echo "expected /${parent:-mini_container}/$cid"; return 1; }
            fi
            [ "$max" = 67108864 ]
        }
        check "${pkg_checks[5]}" placed

        # docs/networking.md: the packaged default network (mcnet, bridge mcbr0, 10.77.0.1 on
        # the host side). Fetched with bash's /dev/tcp: the image need not have curl.
        http_get() {  # ADDR PORT PATH
            exec 3<>"/dev/tcp/$1/$2" || return 1
            printf 'GET %s HTTP/1.0\r\n\r\n' "$3" >&3
            timeout 10 cat <&3 | sed '1,/^\r$/d'
            exec 3<&-
        }
        webcid="$(mc run -d --name vmweb -p 8080:80 minimal httpd -f -p 80 2>&1 | tr -d '\r' | tail -n1)"
        served() {
            local addr got ok=1
            for addr in 127.0.0.1 10.77.0.1; do
                got=""
                for _ in $(seq 30); do got="$(http_get "$addr" 8080 /etc/hostname 2>/dev/null)"; [ "$got" = vmweb ] && break; sleep 0.5; done
                echo "$addr:8080 -> ${got:-nothing}"
                [ "$got" = vmweb ] || ok=0
            done
            mc port vmweb 2>&1; mc network ls 2>&1
            [ "$ok" = 1 ]
        }
        echo "# run -d -p 8080:80: $webcid"
        check "${pkg_checks[13]}" served

        survives() {
            local pid_after ps alive=1
            [ "$cid_rc" = 0 ] && [ -n "$cpid" ] || { echo "no running -d container (see above)"; return 1; }
            systemctl restart mcd || { echo "systemctl restart mcd failed"; return 1; }
            echo "mcd after restart: $(systemctl is-active mcd)"
            pid_after="$(pgrep -f -x 'sleep 1000' | head -n1)"
            echo "container PID 1 before: $cpid, after: ${pid_after:-none}"
            ps="$(mc ps 2>&1)"; echo "$ps"
            [ "$cpid" = "$pid_after" ] || alive=0
            grep "${cid:0:12}" <<< "$ps" | grep -qiE 'running|up' || alive=0
            [ "$alive" = 1 ] && [ "$(systemctl is-active mcd)" = active ]
        }
        check "${pkg_checks[6]}" survives
        check "${pkg_checks[14]}" served
        mc rm -f "$cid" vmweb >/dev/null 2>&1 || true

        oom() {
            local got rc
            got="$(mc run --rm -m 32m minimal dd if=/dev/zero of=/dev/null bs=64M count=1 2>&1)"; rc=$?
            echo "exit $rc: $got"
            [ "$rc" = 137 ] && grep -qiE 'oom|out of memory' <<< "$got"
        }
        check "${pkg_checks[7]}" oom

        check "${pkg_checks[8]}" bash -c 'set -o pipefail; page="$(MANWIDTH=80 man -P cat mcctl 2>&1)" || { echo "$page"; exit 1; };
            echo "$page" | head -n 5; grep -q "^NAME" <<< "$page" && grep -q mcctl <<< "$page"'

        completes() {
            bash -c '
                f=/usr/share/bash-completion/completions/mcctl
                [ -f "$f" ] || { echo "no $f"; exit 1; }
                source /usr/share/bash-completion/bash_completion 2>/dev/null
                source "$f"
                spec="$(complete -p mcctl)" || exit 1; echo "$spec"
                fn="$(sed -n "s/.*-F \([^ ]*\).*/\1/p" <<< "$spec")"
                [ -n "$fn" ] || { echo "no completion function"; exit 1; }
                COMP_WORDS=(mcctl ru); COMP_CWORD=1; COMP_LINE="mcctl ru"; COMP_POINT=${#COMP_LINE}
                COMPREPLY=()
                "$fn" mcctl ru mcctl
                echo "COMPREPLY: ${COMPREPLY[*]}"
                printf "%s\n" "${COMPREPLY[@]}" | grep -qx "run *"'
        }
        check "${pkg_checks[9]}" completes

        check "${pkg_checks[10]}" bash -c "got=\"\$(systemd-analyze verify $unit 2>&1)\"; rc=\$?; echo \"\$got\"; [ \$rc = 0 ] && [ -z \"\$got\" ]"

        removed() {
            local log; log="$(timeout 300 apt-get remove -y "$pkg" 2>&1)" || { echo "$log"; return 1; }
            systemctl daemon-reload
            local state load units
            state="$(systemctl is-active mcd)"; load="$(systemctl show -p LoadState --value mcd)"
            # Debian keeps an enabled unit's wants/ symlink until purge (deb-systemd-helper), so
            # systemd may still list mcd.service as "not-found inactive dead": a name, not a unit.
            # Anything else listed (loaded, active, failed, a leftover mcd.socket) is left behind.
            units="$(systemctl list-units --all --plain --no-legend 'mcd*' | awk '!($2 == "not-found" && $3 == "inactive")')"
            echo "is-active: $state; LoadState: $load; units left: ${units:-none}"
            # The daemon's process must be gone too (looked up, never signalled).
            local procs; procs="$(pgrep -x mcd || true)"; echo "mcd processes: ${procs:-none}"
            [ "$state" != active ] && [ "$state" != activating ] && [ "$load" = not-found ] \
                && [ -z "$units" ] && [ -z "$procs" ]
        }
        check "${pkg_checks[11]}" removed

        purged() {
            local log; log="$(timeout 300 apt-get purge -y "$pkg" 2>&1)" || { echo "$log"; return 1; }
            ls -d /var/lib/mcd /etc/mcd 2>&1
            [ ! -e /var/lib/mcd ] && [ ! -e /etc/mcd ]
        }
        check "${pkg_checks[12]}" purged
        journalctl -u mcd --no-pager > "$out/mcd-journal.log" 2>&1 || true
    fi
fi

# ------------------------------------------------------------------------------------------
section "4. upgrade: apt install of a newer build over an older one with containers running"
# Issue 17: the containers keep running under the one supervisor, their logs continue with
# no line lost, and one that ends after the upgrade still reports its exit code. The older
# package is the same tree built as <version>~vmolder (tests/vm/build-older-deb.sh), so the
# supervisor really runs older code and must re-execute itself as the newer build.
up_checks=(
    "apt install the older build, mcd active, containers held by the one supervisor (no monitor each)"
    "apt install the newer build over it: mcd active and reports the newer version"
    "the supervisor re-executed itself as the newer build (same pid, its executable the installed one)"
    "every container still runs with the same PID 1 after the upgrade"
    "their logs continue after the upgrade, no line lost"
    "a container that ends after the upgrade reports its exit code (7)"
)
older_deb="$(ls "$repo"/dist/older/mini-container_*.deb 2>/dev/null | head -n1 || true)"
if [ -z "$deb" ] || [ -z "$older_deb" ]; then
    for c in "${up_checks[@]}"; do skip "$c" "no dist/older/mini-container_*.deb or dist/mini-container_*.deb (make test-vm builds both)"; done
else
    new_version="$(dpkg-deb -f "$deb" Version)"; old_version="$(dpkg-deb -f "$older_deb" Version)"
    echo "# older: $(basename "$older_deb") ($old_version); newer: $(basename "$deb") ($new_version)"
    apt_install() {  # DEB: install it (offline), then wait out Type=notify activation
        local log; log="$(mktemp)"
        (cd "$(dirname "$1")" && timeout 300 apt-get install -y --no-install-recommends "./$(basename "$1")") > "$log" 2>&1 \
            || { tail -n 30 "$log"; rm -f "$log"; return 1; }
        rm -f "$log"
        for _ in $(seq 60); do [ "$(systemctl is-active mcd)" = activating ] || break; sleep 1; done
        [ "$(systemctl is-active mcd)" = active ] || { systemctl status mcd --no-pager 2>&1 | tail -n 20; return 1; }
    }
    field() {  # NAME KEY: one field of `mcctl inspect NAME`
        mc inspect "$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0].get(sys.argv[1]))' "$2"
    }
    ppid_of() { awk '{print $4}' "/proc/$1/stat" 2>/dev/null; }
    writer='i=0; while :; do echo line-$i; i=$((i+1)); sleep 0.2; done'
    up_names=(up0 up1 up2)
    declare -A up_pid=()
    sup_pid=""
    older_up() {
        apt_install "$older_deb" || return 1
        echo "mcd --version: $(mcd --version)"
        [ "$(mcd --version)" = "mcd $old_version" ] || return 1
        local n
        for n in "${up_names[@]}"; do mc run -d --name "$n" minimal sh -c "$writer" || return 1; done
        mc run -d --name upx minimal sh -c 'while [ ! -e /tmp/go ]; do sleep 0.2; done; exit 7' || return 1
        for n in "${up_names[@]}" upx; do
            up_pid[$n]="$(field "$n" pid)"
            [ -d "/proc/${up_pid[$n]}" ] || { echo "$n: no PID 1 (${up_pid[$n]})"; return 1; }
        done
        sup_pid="$(ppid_of "${up_pid[up0]}")"
        echo "PID 1s: ${up_pid[*]}; their parent: $sup_pid ($(tr '\0' ' ' < "/proc/$sup_pid/cmdline"))"
        for n in "${up_names[@]}" upx; do
            [ "$(ppid_of "${up_pid[$n]}")" = "$sup_pid" ] || { echo "$n: parent $(ppid_of "${up_pid[$n]}")"; return 1; }
        done
        tr '\0' '\n' < "/proc/$sup_pid/cmdline" | grep -qx supervisor || { echo "the parent is not the supervisor"; return 1; }
        [ -z "$(pgrep -x mcd-monitor)" ] || { echo "monitors: $(pgrep -x mcd-monitor)"; return 1; }
        sleep 2     # some lines before the upgrade
    }
    check "${up_checks[0]}" older_up
    if [ -z "$sup_pid" ]; then
        for c in "${up_checks[@]:1}"; do skip "$c" "the older build's containers did not start"; done
    else
        lines_before="$(mc logs up0 2>/dev/null | grep -c '^line-')"
        newer_up() {
            apt_install "$deb" || return 1
            echo "mcd --version: $(mcd --version); dpkg: $(dpkg-query -W -f='${Version}' mini-container)"
            [ "$(mcd --version)" = "mcd $new_version" ]
        }
        check "${up_checks[1]}" newer_up
        reexeced() {
            local exe=""
            for _ in $(seq 60); do
                exe="$(readlink "/proc/$sup_pid/exe" 2>/dev/null)"
                [ -n "$exe" ] && [ "${exe%(deleted)}" = "$exe" ] && break
                sleep 1
            done
            echo "supervisor pid $sup_pid: exe $exe; cmdline: $(tr '\0' ' ' < "/proc/$sup_pid/cmdline" 2>/dev/null)"
            [ "$exe" = /usr/lib/mini-container/mcd/mcd ] || return 1
            # the installed (newer) executable, not the older one's deleted inode
            [ "$(stat -L -c %i "/proc/$sup_pid/exe")" = "$(stat -c %i /usr/lib/mini-container/mcd/mcd)" ]
        }
        check "${up_checks[2]}" reexeced
        still_running() {
            local n st ok=1
            for n in "${up_names[@]}" upx; do
                st="$(field "$n" status)"
                echo "$n: status $st, PID 1 ${up_pid[$n]} -> $(field "$n" pid), alive: $([ -d "/proc/${up_pid[$n]}" ] && echo yes || echo no)"
                [ "$st" = running ] && [ "$(field "$n" pid)" = "${up_pid[$n]}" ] && [ -d "/proc/${up_pid[$n]}" ] || ok=0
            done
            [ "$ok" = 1 ]
        }
        check "${up_checks[3]}" still_running
        logs_continue() {
            local n got want count ok=1
            sleep 3     # lines written after the upgrade
            for n in "${up_names[@]}"; do
                got="$(mc logs "$n" 2>&1 | tr -d '\r')"
                count="$(grep -c '^line-' <<< "$got")"
                want="$(seq 0 $((count - 1)) | sed 's/^/line-/')"
                echo "$n: $count lines (up0 had $lines_before before the upgrade)"
                [ "$count" -gt "$lines_before" ] && [ "$(grep '^line-' <<< "$got")" = "$want" ] || ok=0
            done
            [ "$ok" = 1 ]
        }
        check "${up_checks[4]}" logs_continue
        exit_code() {
            mc exec upx touch /tmp/go || return 1
            local st=""
            for _ in $(seq 60); do st="$(field upx status)"; [ "$st" = running ] || break; sleep 0.5; done
            echo "upx: status $st, exit code $(field upx exit_code)"
            [ "$st" != running ] && [ "$(field upx exit_code)" = 7 ]
        }
        check "${up_checks[5]}" exit_code
    fi
    mc rm -f "${up_names[@]}" upx >/dev/null 2>&1 || true
    timeout 300 apt-get purge -y mini-container >/dev/null 2>&1 || true
    journalctl -u mcd --no-pager > "$out/mcd-journal-upgrade.log" 2>&1 || true
fi

journalctl -b -o short-monotonic --no-pager > "$out/journal.log" 2>&1 || true
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
