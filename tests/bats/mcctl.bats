#!/usr/bin/env bats
# The real mcctl binary ($MCCTL) against a real mcd: every command, formats, exit codes,
# one-line errors, and -it through a real pty (script).

bats_require_minimum_version 1.5.0
load helpers

setup_file() { start_daemon; }
teardown_file() { stop_daemon; }

@test "version and --version" {
    run mc --version
    [ "$status" -eq 0 ]
    [[ "$output" == "mcctl "* ]]
    run mc version
    [ "$status" -eq 0 ]
    [[ "$output" == *"Client:"*"Server:"*"Api version: v1"* ]]
    run mc version --format json
    [ "$(echo "$output" | json_field 'd["server"]["api_version"]')" = v1 ]
}

@test "info shows counts, cgroup mode and drivers" {
    run mc info
    [ "$status" -eq 0 ]
    [[ "$output" == *"Containers:"* ]]
    [[ "$output" == *"Cgroup Mode:"* ]]
    [[ "$output" == *"Storage Driver: overlay"* ]]
    run mc info --format json
    [ "$(echo "$output" | json_field 'd["cgroup_parent"]')" = "$BATS_MC_TAG" ]
}

@test "run prints, isolates and exits with the container's status" {
    run mc run --rm --name iso --hostname boxy minimal sh -c 'echo pid=$$; hostname; exit 3'
    [ "$status" -eq 3 ]
    [[ "$output" == *"pid=1"* ]]
    [[ "$output" == *"boxy"* ]]
    run mc inspect iso
    [ "$status" -eq 125 ]
}

@test "run: command not found is 127, not executable is 126, one line each" {
    run -127 mc run --rm minimal /no/such/thing
    [ "$status" -eq 127 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == "mcctl: "*'exec "/no/such/thing": No such file or directory' ]]
    run mc run --rm minimal /etc/passwd
    [ "$status" -eq 126 ]
    [[ "$output" == "mcctl: "*"Permission denied" ]]
}

@test "run passes stdin with -i and env with -e / --env-file" {
    echo "B=2" > "$BATS_TEST_TMPDIR/envf"
    run bash -c "echo piped | $MCCTL run --rm -i -e A=1 --env-file $BATS_TEST_TMPDIR/envf minimal sh -c 'cat; echo \$A\$B'"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "piped" ]
    [ "${lines[1]}" = "12" ]
}

@test "run -d, ps in table, quiet and json formats" {
    run mc run -d --name bg minimal sleep 1000
    [ "$status" -eq 0 ]
    [[ "$output" =~ ^[0-9a-f]{64}$ ]]
    id="$output"
    run mc ps
    [[ "${lines[0]}" == "CONTAINER ID"*"STATUS"*"NAME" ]]
    [[ "$output" == *"${id:0:12}"*"Up "*"bg"* ]]
    run mc ps -q
    [[ "$output" == *"${id:0:12}"* ]]
    run mc ps -q --no-trunc
    [[ "$output" == *"$id"* ]]
    run mc ps --format json
    [ "$(echo "$output" | json_field '[c["name"] for c in d if c["status"]=="running"].count("bg")')" = 1 ]
    run mc rm -f bg
    [ "$status" -eq 0 ]
}

@test "create, start -a with exit code, wait, logs with tail and timestamps" {
    run mc create --name cr minimal sh -c 'echo one; echo two; echo err >&2; exit 4'
    [ "$status" -eq 0 ]
    run mc ps -a
    [[ "$output" == *"Created"*"cr"* ]]
    run mc start -a cr
    [ "$status" -eq 4 ]
    [[ "$output" == *"one"*"two"* ]]
    run mc wait cr
    [ "$output" = 4 ]
    run mc logs cr
    [[ "$output" == *"one"*"two"*"err"* ]]
    run mc logs --tail 1 cr
    [ "${#lines[@]}" -eq 1 ]
    run mc logs -t cr
    [[ "${lines[0]}" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T ]]
    run mc rm cr
    [ "$status" -eq 0 ]
}

@test "logs -f follows until the container exits" {
    mc run -d --name fol minimal sh -c 'for i in 1 2 3; do echo line$i; sleep 0.2; done' >/dev/null
    run timeout 30 "$MCCTL" logs -f fol
    [ "$status" -eq 0 ]
    [[ "$output" == *"line1"*"line2"*"line3"* ]]
    mc rm -f fol >/dev/null
}

@test "stop, start, restart, kill, pause, unpause, rename, update" {
    mc run -d --name life -m 64m minimal sleep 1000 >/dev/null
    run mc pause life
    [ "$status" -eq 0 ]
    run mc ps
    [[ "$output" == *"(Paused)"* ]]
    run mc unpause life
    [ "$status" -eq 0 ]
    run mc update -m 128m life
    [ "$status" -eq 0 ]
    [ "$(mc inspect life | json_field 'd[0]["spec"]["linux"]["resources"]["memory"]')" = 134217728 ]
    [ "$(mc inspect life | json_field 'd[0]["limits"]["memory"]')" = 134217728 ]
    run mc update --restart unless-stopped life
    [ "$status" -eq 0 ]
    [ "$(mc inspect life | json_field 'd[0]["spec"]["restart_policy"]')" = unless-stopped ]
    run mc stop -t 1 life
    [ "$status" -eq 0 ]
    run mc ps -a
    [[ "$output" == *"Exited (137)"* ]]
    run mc start life
    wait_status life running
    run mc restart -t 1 life
    [ "$status" -eq 0 ]
    wait_status life running
    run mc kill -s KILL life
    [ "$status" -eq 0 ]
    wait_status life stopped
    run mc rename life life2
    [ "$status" -eq 0 ]
    run mc inspect life2
    [ "$status" -eq 0 ]
    run mc destroy life2
    [ "$status" -eq 0 ]
}

@test "inspect, top, stats and exec on a running container" {
    mc run -d --name obs --cpus 0.5 minimal sleep 1000 >/dev/null
    run mc inspect obs
    [ "$(echo "$output" | json_field 'd[0]["spec"]["linux"]["resources"]["cpu_quota"]')" = 50000 ]
    run mc top obs
    [[ "${lines[0]}" == "PID"* ]]
    [[ "$output" == *"sleep 1000"* ]]
    run mc stats --no-stream obs
    [[ "${lines[0]}" == "CONTAINER ID"*"MEM USAGE / LIMIT"* ]]
    [[ "$output" == *"obs"* ]]
    run mc exec obs sh -c 'echo in=$(hostname); exit 6'
    [ "$status" -eq 6 ]
    [ "$output" = "in=obs" ]
    run bash -c "echo hello | $MCCTL exec -i obs cat"
    [ "$output" = hello ]
    run -127 mc exec obs /nonexistent
    [ "$status" -eq 127 ]
    run mc exec -d obs sleep 1
    [ "$status" -eq 0 ]
    mc rm -f obs >/dev/null
}

@test "-it gives a real terminal through a pty and restores it" {
    run timeout 60 script -qec "$MCCTL run -it --rm minimal sh -c 'tty; exit 5'" /dev/null
    [ "$status" -eq 5 ]
    [[ "$output" == *"/dev/pts/"* ]]
    mc run -d --name tt minimal sleep 1000 >/dev/null
    run timeout 60 script -qec "$MCCTL exec -it tt sh -c 'test -t 0 && echo isatty'" /dev/null
    [ "$status" -eq 0 ]
    [[ "$output" == *"isatty"* ]]
    mc rm -f tt >/dev/null
}

@test "-it: the container's terminal has our window size from its first instruction" {
    run timeout 60 script -qec "stty rows 41 cols 101; $MCCTL run -it --rm minimal stty size" /dev/null
    [ "$status" -eq 0 ]
    [[ "$output" == *"41 101"* ]]
    mc run -d --name tsz minimal sleep 1000 >/dev/null
    run timeout 60 script -qec "stty rows 42 cols 102; $MCCTL exec -it tsz stty size" /dev/null
    mc rm -f tsz >/dev/null
    [ "$status" -eq 0 ]
    [[ "$output" == *"42 102"* ]]
}

@test "-it: typed input reaches the container and Ctrl-C is delivered to it" {
    run timeout 60 script -qec "$MCCTL run -it --rm minimal sh" /dev/null <<'IN'
echo typed-$((6*7))
exit 8
IN
    [ "$status" -eq 8 ]
    [[ "$output" == *"typed-42"* ]]
    # Ctrl-C (0x03) typed at our raw terminal becomes SIGINT in the container: typed once
    # the container says its trap is set (a python pty stands in for the user).
    run python3 "$BATS_TEST_DIRNAME/pty_drive.py" --expect armed --send '\x03' -- \
        "$MCCTL" run -it --rm minimal sh -c 'trap "echo got-INT; exit 9" INT; echo armed; while :; do sleep 0.1; done'
    [ "$status" -eq 9 ]
    [[ "$output" == *"got-INT"* ]]
}

@test "restart policy and prune" {
    run mc run -d --name pol --restart on-failure:1 minimal sh -c 'exit 1'
    [ "$status" -eq 0 ]
    for _ in $(seq 1 100); do
        [ "$(mc inspect pol | json_field 'd[0]["restart_count"]')" = 1 ] && \
          [ "$(mc inspect pol | json_field 'd[0]["status"]')" = stopped ] && break
        sleep 0.1
    done
    [ "$(mc inspect pol | json_field 'd[0]["restart_count"]')" = 1 ]
    mc create --name pr minimal true >/dev/null
    run mc prune
    [ "$status" -eq 0 ]
    [[ "$output" == *"Removed"* ]]
    run mc ps -aq
    [ -z "$output" ]
}

@test "templates: ls, create from a dir, import a tar, run from it, rm" {
    run mc template ls
    [[ "$output" == *"minimal"* ]]
    d="$BATS_TEST_TMPDIR/tree"
    mkdir -p "$d/bin" "$d/etc"
    cp /bin/busybox "$d/bin/busybox"
    ln -s busybox "$d/bin/sh"; ln -s busybox "$d/bin/cat"
    echo "from-dir" > "$d/etc/marker"
    run mc template create "$d" fromdir
    [ "$status" -eq 0 ]
    run mc run --rm fromdir cat /etc/marker
    [ "$output" = "from-dir" ]
    tar -C "$d" -cf "$BATS_TEST_TMPDIR/t.tar" .
    run mc template import "$BATS_TEST_TMPDIR/t.tar" fromtar
    [ "$status" -eq 0 ]
    run mc template ls -q
    [[ "$output" == *"fromtar"* ]]
    run bash -c "$MCCTL template import - fromstdin < $BATS_TEST_TMPDIR/t.tar"
    [ "$status" -eq 0 ]
    run mc run --rm fromstdin cat /etc/marker
    [ "$output" = "from-dir" ]
    run mc template rm fromdir fromtar fromstdin
    [ "$status" -eq 0 ]
    run mc template ls --format json
    [[ "$output" != *"fromtar"* ]]
}

@test "errors are one line, exit 125, traceback only with --debug" {
    run mc inspect nope
    [ "$status" -eq 125 ]
    [[ "$output" == *'mcctl: no such container: "nope"'* ]]
    run mc stop nope
    [ "$status" -eq 125 ]
    [ "${lines[-1]}" = 'mcctl: no such container: "nope"' ]
    [[ "$output" != *"Traceback"* ]]
    run mc --debug start nope
    [ "$status" -eq 125 ]
    [[ "$output" == *"Traceback"* ]]
    run mc run --rm -m 12q minimal true
    [ "$status" -eq 125 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == "mcctl: --memory: invalid size '12q'"* ]]
    mc create --name dup minimal true >/dev/null
    run mc create --name dup minimal true
    [ "$status" -eq 125 ]
    [[ "$output" == 'mcctl: container name "dup" is already in use'* ]]
    mc rm dup >/dev/null
    run mc kill dupe-none
    [ "$status" -eq 125 ]
    run mc run --rm nosuchtemplate true
    [ "$status" -eq 125 ]
    # run takes an image or a template: neither exists.
    [[ "$output" == *"no such image: nosuchtemplate"*"no template 'nosuchtemplate'"* ]]
}

@test "dashboard prints the address with the token" {
    run mc dashboard
    [ "$status" -eq 125 ]
    [ "$output" = "mcctl: the dashboard is off (mcd --web-listen ADDR:PORT)" ]
}

@test "a daemon that is not there: one line, 125" {
    run env MCD_SOCKET=/nonexistent/mcd.sock "$MCCTL" ps
    [ "$status" -eq 125 ]
    [ "$output" = "mcctl: cannot connect to mcd at /nonexistent/mcd.sock: no such socket (is mcd running? see --socket or MCD_SOCKET)" ]
    run "$MCCTL" --socket /nonexistent/x.sock ps
    [ "$status" -eq 125 ]
}

@test "-it: the terminal is restored when mcctl is killed" {
    mc run -d --name rawt minimal sleep 1000 >/dev/null
    # mcctl makes the terminal raw; once the container prints, mcctl gets SIGTERM; the
    # terminal's mode must be back to what it was.
    run python3 "$BATS_TEST_DIRNAME/pty_drive.py" --expect ready --signal TERM -- \
        "$MCCTL" exec -it rawt sh -c 'echo ready; sleep 100'
    [ "$status" -eq 143 ]
    [[ "$output" == *"pty_drive: terminal restored"* ]]
    # Normal exit restores it too.
    run python3 "$BATS_TEST_DIRNAME/pty_drive.py" -- "$MCCTL" exec -it rawt sh -c 'exit 3'
    [ "$status" -eq 3 ]
    [[ "$output" == *"pty_drive: terminal restored"* ]]
    mc rm -f rawt >/dev/null
}
