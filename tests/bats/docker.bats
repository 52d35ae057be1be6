#!/usr/bin/env bats
# The real docker CLI against a private mcd's Docker API socket (mcd --docker-socket).
# No dockerd is involved: DOCKER_HOST points at mcd, and the CLI is the machine's own or
# Debian's, unpacked by docker-cli.sh.

load helpers

setup_file() {
    export DOCKER="$(bash "$BATS_TEST_DIRNAME/docker-cli.sh")"
    export DOCKER_DIR="$(mktemp -d /tmp/mcd-bats-docker.XXXXXX)"
    export DOCKER_HOST="unix://$DOCKER_DIR/docker.sock"
    export DOCKER_CONFIG="$DOCKER_DIR/config"     # the CLI's own files stay private
    export MCD_EXTRA_ARGS="--docker-socket $DOCKER_DIR/docker.sock"
    start_daemon
}

teardown_file() {
    stop_daemon
    rm -rf "$DOCKER_DIR"
}

# -k: the CLI forwards the TERM of a plain timeout to the container (sig-proxy) and may
# then wait on; the KILL after it ends a hang for sure.
dk() { timeout -k 5 60 "$DOCKER" "$@"; }

@test "docker version negotiates with mcd's API" {
    run dk version --format '{{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Server.Platform.Name}}'
    [ "$status" -eq 0 ]
    [ "$output" = "1.45 1.41 mini-container" ]
}

@test "docker run --rm minimal echo hi prints hi; an exit code propagates" {
    run dk run --rm minimal echo hi
    [ "$status" -eq 0 ]
    [ "$output" = "hi" ]
    run dk run --rm minimal sh -c 'echo to-err >&2; exit 3'
    [ "$status" -eq 3 ]
    [[ "$output" == *"to-err"* ]]
    # --rm removed them both.
    [ -z "$(dk ps -aq)" ]
}

@test "docker run -i: stdin reaches the container and its end closes the container's stdin" {
    run bash -c "printf 'one\ntwo\n' | timeout 60 '$DOCKER' run --rm -i minimal sh -c 'wc -l; echo after-eof'"
    [ "$status" -eq 0 ]
    [[ "$output" == *"2"* ]]
    [[ "$output" == *"after-eof"* ]]
}

@test "run -d, ps, logs -f, exec, inspect, top, stats, wait, stop, rm -f" {
    id="$(dk run -d --name web -l tier=front minimal sh -c 'echo started; while :; do sleep 0.2; done')"
    [ "${#id}" -eq 64 ]
    run dk ps --format '{{.Names}} {{.Image}} {{.State}}' --filter label=tier=front
    [ "$output" = "web minimal running" ]
    run dk ps -q --filter status=exited
    [ -z "$output" ]
    # logs -f of a container that exits ends by itself, with everything it wrote.
    dk run -d --name lines minimal sh -c 'for i in 1 2 3; do echo line$i; sleep 0.2; done; echo oops >&2' >/dev/null
    run dk logs -f lines
    [ "$status" -eq 0 ]
    [[ "$output" == *"line1"*"line2"*"line3"*"oops"* ]]
    run dk logs --tail 1 lines
    [ "$output" = "oops" ]
    run dk wait lines
    [ "$output" = "0" ]
    run dk exec web sh -c 'echo in-exec; exit 4'
    [ "$status" -eq 4 ]
    [ "$output" = "in-exec" ]
    run dk exec -e X=42 -w /tmp web sh -c 'echo $X $(pwd)'
    [ "$output" = "42 /tmp" ]
    run dk inspect -f '{{.Name}} {{.State.Status}} {{.State.Running}} {{.Config.Image}} {{index .Config.Labels "tier"}}' web
    [ "$output" = "/web running true minimal front" ]
    run dk top web
    [ "$status" -eq 0 ]
    [[ "$output" == *"PID"*"sleep"* ]]
    run dk stats --no-stream --format '{{.Name}} {{.PIDs}}' web
    [ "$status" -eq 0 ]
    [[ "$output" == "web "[1-9]* ]]
    run dk stop -t 1 web
    [ "$status" -eq 0 ]
    run dk inspect -f '{{.State.Status}} {{.State.ExitCode}}' web
    [ "$output" = "exited 137" ]
    dk start web >/dev/null
    run dk rm web
    [ "$status" -ne 0 ]
    [[ "$output" == *"running"* ]]
    run dk rm -f web lines
    [ "$status" -eq 0 ]
    [ -z "$(dk ps -aq)" ]
}

@test "docker run -it: a real terminal, typed input, Ctrl-C, exit status" {
    run timeout 60 script -qec "stty rows 41 cols 101; '$DOCKER' run -it --rm minimal sh -c 'tty; stty size; exit 5'" /dev/null
    [ "$status" -eq 5 ]
    [[ "$output" == *"/dev/pts/"* ]]
    # The size from the first instruction needs ConsoleSize in create (API 1.42): an older
    # client (Debian's docker.io 20.10 speaks 1.41) resizes only after the start, with
    # dockerd as here.
    if [ "$(dk version --format '{{.Client.APIVersion}}' | tr -d .)" -ge 142 ]; then
        [[ "$output" == *"41 101"* ]]
    fi
    run python3 "$BATS_TEST_DIRNAME/pty_drive.py" --expect armed --send '\x03' -- \
        "$DOCKER" run -it --rm minimal sh -c 'trap "echo got-INT; exit 9" INT; echo armed; while :; do sleep 0.1; done'
    [ "$status" -eq 9 ]
    [[ "$output" == *"got-INT"* ]]
    # Without a TTY the CLI's signal proxy turns its own SIGINT into a kill request.
    run python3 "$BATS_TEST_DIRNAME/pty_drive.py" --expect armed --signal INT -- \
        "$DOCKER" run --rm minimal sh -c 'trap "echo got-INT; exit 9" INT; echo armed; while :; do sleep 0.1; done'
    [ "$status" -eq 9 ]
    [[ "$output" == *"got-INT"* ]]
}

@test "docker exec -it through a pty; detach keys leave the container running" {
    dk run -d --name tt minimal sleep 1000 >/dev/null
    run python3 "$BATS_TEST_DIRNAME/pty_drive.py" --expect '#' --send 'echo typed-$((6*7)); exit 7\r' -- \
        "$DOCKER" exec -it tt sh
    [ "$status" -eq 7 ]
    [[ "$output" == *"typed-42"* ]]
    run python3 "$BATS_TEST_DIRNAME/pty_drive.py" --expect '#' --send '\x10\x11' -- \
        "$DOCKER" run -it --name det minimal sh
    [ "$status" -eq 0 ]
    run dk inspect -f '{{.State.Status}}' det
    [ "$output" = "running" ]
    # What the terminal showed is in the log, as dockerd keeps it.
    run dk logs det
    [[ "$output" == *"BusyBox"* ]]
    dk rm -f tt det >/dev/null
}

@test "what mcd cannot do is refused in one clear line; unknown endpoints are Docker 404s" {
    run dk run --rm --privileged minimal true
    [ "$status" -eq 125 ]
    [[ "$output" == *"HostConfig.Privileged=true: not supported by mini-container"* ]]
    run dk run --rm no-such-image true
    [ "$status" -eq 125 ]
    [[ "$output" == *"pull access denied"* ]]
    run dk volume ls
    [ "$status" -ne 0 ]
    [[ "$output" == *"page not found"* ]]
    # This daemon has no default network (--default-network none): -p has nothing to use.
    run dk run --rm -p 8080:80 minimal true
    [ "$status" -eq 125 ]
    [[ "$output" == *"has no default network"* ]]
    run dk network ls --format '{{.Name}} {{.Driver}}'
    [ "$output" = "$(printf 'host host\nnone null')" ]
    run dk rm no-such-container
    [ "$status" -ne 0 ]
    [[ "$output" == *[Nn]"o such container"*"no-such-container"* ]]
    [ -z "$(dk ps -aq)" ]
}

@test "create + start -a, attach, pause, rename, update, restart, exec -d, prune, images, info, system df" {
    dk create --name sa minimal sh -c 'echo from-sa; exit 2' >/dev/null
    run dk start -a sa
    [ "$status" -eq 2 ]
    [ "$output" = "from-sa" ]
    dk run -d --name live minimal sh -c 'while [ ! -e /tmp/stop ]; do sleep 0.1; done; echo stopping' >/dev/null
    dk pause live
    run dk ps --format '{{.Status}}' --filter name=live
    [[ "$output" == *"(Paused)"* ]]
    dk unpause live
    dk rename live alive
    dk update --memory 64m --memory-swap 128m alive >/dev/null
    run dk inspect -f '{{.Name}} {{.HostConfig.Memory}}' alive
    [ "$output" = "/alive 67108864" ]
    dk exec -d alive sh -c 'echo detached > /tmp/mark'
    for _ in $(seq 1 100); do dk exec alive test -e /tmp/mark && break; sleep 0.1; done
    run dk exec alive cat /tmp/mark
    [ "$output" = "detached" ]
    dk restart -t 0 alive >/dev/null
    run dk inspect -f '{{.State.Status}} {{.RestartCount}}' alive
    [[ "$output" == "running "* ]]
    # attach: the running container's output from now on
    dk exec -d alive sh -c 'sleep 1; echo to-attached > /proc/1/fd/1; touch /tmp/stop'
    run dk attach --no-stdin --sig-proxy=false alive
    [ "$status" -eq 0 ]
    [[ "$output" == *"to-attached"*"stopping"* ]]
    dk rm -f alive >/dev/null
    run dk container prune -f
    [[ "$output" == *"Deleted Containers"* ]]
    [ -z "$(dk ps -aq)" ]
    run dk images --format '{{.Repository}}:{{.Tag}}'
    [[ "$output" == *"minimal:latest"* ]]
    run dk info --format '{{.OSType}} {{.Driver}} {{.LoggingDriver}}'
    [ "$output" = "linux overlay json-file" ]
    run dk system df
    [ "$status" -eq 0 ]
    dk create --name leftover minimal true >/dev/null
    run dk system prune -f
    [ "$status" -eq 0 ]
    [[ "$output" == *"Deleted Containers"* ]]
    [ -z "$(dk ps -aq)" ]
}
