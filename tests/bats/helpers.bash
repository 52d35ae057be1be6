# Shared setup for the bats suite: one real mcd per file, on a private socket, root
# and cgroup parent; teardown stops it by pid and proves nothing is left behind.

mc() { "$MCCTL" "$@"; }

start_daemon() {
    export BATS_MC_TMP="$(mktemp -d /tmp/mcd-bats.XXXXXX)"
    export MCD_SOCKET="$BATS_MC_TMP/mcd.sock"
    export BATS_MC_TAG="mctest-bats$$$RANDOM"
    : > "$BATS_MC_TMP/none.toml"
    # Without MCD_NETNS the daemon runs in the machine's own network namespace: no default
    # network there (no bridge, no rules). network.bats runs it in a namespace it made.
    ${MCD_NETNS:+nsenter --net="$MCD_NETNS"} \
    "$MCD" --socket "$MCD_SOCKET" --root "$BATS_MC_TMP/root" --cgroup-parent "$BATS_MC_TAG" \
        --web-listen off --config "$BATS_MC_TMP/none.toml" \
        --default-network "${MCD_DEFAULT_NETWORK:-none}" ${MCD_EXTRA_ARGS:-} \
        >"$BATS_MC_TMP/mcd.log" 2>&1 &
    echo $! > "$BATS_MC_TMP/mcd.pid"
    for _ in $(seq 1 300); do
        "$MCCTL" version >/dev/null 2>&1 && return 0
        kill -0 "$(cat "$BATS_MC_TMP/mcd.pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "mcd did not come up:" >&2; cat "$BATS_MC_TMP/mcd.log" >&2
    return 1
}

# The daemon's one supervisor (the default) outlives the daemon by design: stop the one
# this file's daemon started, by its pid (its command line names our private socket).
stop_supervisor() {
    local p sock="$BATS_MC_TMP/root/run/supervisor.sock"
    for p in /proc/[0-9]*; do
        tr '\0' '\n' 2>/dev/null < "$p/cmdline" | grep -qxF -- "$sock" || continue
        kill -TERM "${p#/proc/}" 2>/dev/null
        for _ in $(seq 1 100); do
            [ -d "$p" ] && [ "$(awk '{print $3}' "$p/stat" 2>/dev/null)" != Z ] || break
            sleep 0.1
        done
    done
}

stop_daemon() {
    local pid leftovers=""
    for id in $("$MCCTL" ps -aq --no-trunc 2>/dev/null); do "$MCCTL" rm -f "$id" >/dev/null 2>&1; done
    pid="$(cat "$BATS_MC_TMP/mcd.pid")"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    stop_supervisor
    # No process of ours left (the daemon and its monitors carry the root on their command line).
    for p in /proc/[0-9]*; do
        if tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -qF -- "$BATS_MC_TMP/root"; then
            leftovers="$leftovers process:${p#/proc/}"; kill -9 "${p#/proc/}" 2>/dev/null
        fi
    done
    for d in /sys/fs/cgroup/*/"$BATS_MC_TAG"; do
        [ -d "$d" ] || continue
        if [ -n "$(find "$d" -mindepth 1 -type d)" ]; then leftovers="$leftovers cgroup:$d"; fi
        find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    if grep -qF "$BATS_MC_TMP" /proc/self/mountinfo; then leftovers="$leftovers mounts"; fi
    mkdir -p test-artifacts && cp "$BATS_MC_TMP/mcd.log" test-artifacts/bats-mcd.log 2>/dev/null
    rm -rf "$BATS_MC_TMP"
    if [ -n "$leftovers" ]; then echo "left behind:$leftovers" >&2; return 1; fi
}

# wait_status NAME STATUS: a bound that turns a hang into a named failure.
wait_status() {
    for _ in $(seq 1 300); do
        [ "$("$MCCTL" inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["status"])')" = "$2" ] && return 0
        sleep 0.1
    done
    echo "container $1 never reached $2" >&2; return 1
}

json_field() {  # json_field EXPR  (reads JSON on stdin; EXPR in python over `d`)
    python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"
}

# On failure bats shows what a test printed: show the last command's status and output.
teardown() { echo "last run: status=${status:-} output=${output:-}"; }
