#!/usr/bin/env bash
# `sudo make demo`: a real container in a few seconds, offline.
# Uses the mcd on the default socket when one runs; otherwise starts a private one on
# /run/mcd-demo/mcd.sock (state in /var/lib/mcd-demo) and leaves it running for the
# dashboard, printing how to stop it.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
MCCTL="${MCCTL:-$repo/.venv/bin/mcctl}"
MCD="${MCD:-$repo/.venv/bin/mcd}"
bold() { if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() { echo; bold "==> $*"; }

if [ "$(id -u)" != 0 ]; then
    echo "demo: containers need root: run  sudo make demo" >&2
    exit 1
fi

if "$MCCTL" --socket /run/mcd/mcd.sock version >/dev/null 2>&1; then
    export MCD_SOCKET=/run/mcd/mcd.sock
    started=""
    step "Using the mcd already running on $MCD_SOCKET"
else
    export MCD_SOCKET=/run/mcd-demo/mcd.sock
    demo_root=/var/lib/mcd-demo
    mkdir -p /run/mcd-demo
    if "$MCCTL" version >/dev/null 2>&1; then
        started=""
        step "Using the demo mcd already running on $MCD_SOCKET"
    else
        step "Starting a private mcd on $MCD_SOCKET (state in $demo_root, log /run/mcd-demo/mcd.log)"
        # setsid: the daemon outlives this script (and keeps the dashboard up).
        setsid "$MCD" --socket "$MCD_SOCKET" --root "$demo_root" --web-listen 127.0.0.1:7070 \
            --config /dev/null --default-network none </dev/null >>/run/mcd-demo/mcd.log 2>&1 &
        # (--default-network none: the demo leaves this machine's links and firewall alone;
        # docs/networking.md shows networks.)
        echo $! > /run/mcd-demo/mcd.pid
        for _ in $(seq 1 100); do
            "$MCCTL" version >/dev/null 2>&1 && break
            if ! kill -0 "$(cat /run/mcd-demo/mcd.pid)" 2>/dev/null; then
                echo "demo: mcd did not start:" >&2; tail -5 /run/mcd-demo/mcd.log >&2; exit 1
            fi
            sleep 0.1
        done
        started=yes
    fi
fi

step "A container sees only itself: its own PID 1, hostname, processes and root"
"$MCCTL" run --rm --hostname demo-box -m 64m --cpus 0.5 --pids-limit 64 minimal sh -c '
  echo "my PID:       $$"
  echo "my hostname:  $(hostname)"
  echo "my processes:"; ps -o pid,comm
  echo "my root:      "$(ls /)'

step "Templates (the 'minimal' busybox template was built offline on first use)"
"$MCCTL" template ls

step "Limits are enforced by cgroups: -m 64m --cpus 0.5 --pids-limit 64"
name="demo-$$"
"$MCCTL" run -d --name "$name" --hostname demo-box -m 64m --cpus 0.5 --pids-limit 64 minimal sleep 120 >/dev/null
"$MCCTL" inspect "$name" | python3 -c '
import json, sys
c = json.load(sys.stdin)[0]
lim = c.get("limits") or {}
mem = lim.get("memory")
q, p = lim.get("cpu_quota"), lim.get("cpu_period")
print("memory limit:", f"{mem // 2**20} MiB" if mem else "none")
print("cpu:         ", f"{q / p:.2f} CPUs ({q} us per {p} us)" if q and p and q > 0 else "unlimited")
print("pids limit:  ", lim.get("pids_limit"))'
"$MCCTL" stats --no-stream "$name"
"$MCCTL" rm -f "$name" >/dev/null

step "Out of memory is reported, not hidden"
set +e
"$MCCTL" run --rm -m 16m --memory-swap 16m minimal sh -c 'x=$(head -c 100000000 /dev/zero | tr "\0" a)'
echo "(exit status $?)"
set -e

step "Dashboard"
if url="$("$MCCTL" dashboard 2>&1)"; then
    echo "open $url"
else
    echo "$url"
fi

echo
if [ -n "$started" ]; then
    bold "The demo daemon keeps running (containers and dashboard). Try:"
    echo "  sudo MCD_SOCKET=$MCD_SOCKET $MCCTL run -it --rm minimal sh"
    echo "Stop it cleanly with:  sudo kill \$(cat /run/mcd-demo/mcd.pid)"
else
    bold "Try:  sudo mcctl run -it --rm minimal sh"
fi
