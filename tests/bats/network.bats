#!/usr/bin/env bats
# Networks through the real mcctl: network create/ls/inspect/rm, port, -p parsing.
# The daemon runs inside a network namespace this file makes (standing for the host), so
# the machine's own links and firewall never change; curl looks in with nsenter.

bats_require_minimum_version 1.5.0
load helpers

setup_file() {
    export NET_TMP="$(mktemp -d /tmp/mcd-bats-net.XXXXXX)"
    export MCD_NETNS="$NET_TMP/outer"
    : > "$MCD_NETNS"
    unshare --net="$MCD_NETNS" true
    nsenter --net="$MCD_NETNS" ip link set lo up
    export MCD_DEFAULT_NETWORK=mcnet
    start_daemon
}

teardown_file() {
    stop_daemon
    local rc=$?
    # No rule naming a container is left in the namespace that stood for the host.
    if nsenter --net="$MCD_NETNS" iptables-save | grep -E 'id: "|CNI-DN-'; then rc=1; fi
    umount "$MCD_NETNS" && rm -rf "$NET_TMP"
    return $rc
}

in_host() { nsenter --net="$MCD_NETNS" "$@"; }

@test "network create, ls, inspect, rm" {
    run mc network create --subnet 10.78.50.0/24 appnet
    [ "$status" -eq 0 ]
    [[ "$output" =~ ^[0-9a-f]{64}$ ]]
    run mc network ls
    [ "$status" -eq 0 ]
    [[ "$output" == *"NETWORK ID"*"NAME"*"SUBNET"* ]]
    [[ "$output" == *"mcnet"*"10.77.0.0/16"*"default"* ]]
    [[ "$output" == *"appnet"*"10.78.50.0/24"*"10.78.50.1"* ]]
    run mc network ls -q
    [ "$output" = "$(printf 'mcnet\nappnet')" ]
    run mc network ls --format json
    [ "$(echo "$output" | json_field 'sorted(n["name"] for n in d)')" = "['appnet', 'mcnet']" ]
    run mc network inspect appnet
    [ "$(echo "$output" | json_field 'd[0]["gateway"], d[0]["internal"], d[0]["conflist"]["plugins"][0]["type"]')" = "10.78.50.1 False bridge" ]
    run mc network create --internal --subnet 10.78.51.0/24 --gateway 10.78.51.254 vault
    [ "$status" -eq 0 ]
    run mc network inspect vault
    [ "$(echo "$output" | json_field 'd[0]["internal"], d[0]["gateway"]')" = "True 10.78.51.254" ]
    run mc network rm appnet vault
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf 'appnet\nvault')" ]
    run mc network ls -q
    [ "$output" = "mcnet" ]
}

@test "network errors are one line, exit 125, and change nothing" {
    mc network create taken
    for args in "taken" "--subnet 10.1.2.3/24 x" "--subnet nonsense x" "--gateway 10.9.9.9 x" \
                "--subnet 10.78.60.0/24 --gateway 10.78.61.1 x" "host" "bad/name"; do
        run mc network create $args
        [ "$status" -eq 125 ]
        [ "${#lines[@]}" -eq 1 ]
        [[ "$output" == "mcctl: "* ]]
    done
    run mc network create taken
    [ "$output" = 'mcctl: network "taken" already exists' ]
    run mc network create --subnet 10.77.3.0/24 x
    [ "$output" = 'mcctl: --subnet 10.77.3.0/24 overlaps network "mcnet" (10.77.0.0/16)' ]
    run mc network rm mcnet
    [ "$status" -eq 125 ]
    [[ "$output" == *'"mcnet" is the default network'* ]]
    run mc network rm nosuch
    [ "$output" = 'mcctl: no such network: "nosuch"' ]
    # In use (even by a container never started): refused; once it is gone, removed.
    mc create --name user1 --network taken minimal true
    run mc network rm taken
    [ "$status" -eq 125 ]
    [ "$output" = 'mcctl: network "taken" is used by 1 container(s): user1; remove them first' ]
    mc rm user1
    run mc network prune
    [ "$output" = "taken" ]
    [ "$(mc network ls -q)" = "mcnet" ]
}

@test "-p parse errors name the flag and create nothing" {
    before="$(mc ps -aq | wc -l)"
    for p in "80/sctp" "0:80" "70000" "x:80" "1.2.3:80:80" "[::1]:80:80" "8000-8010:80" "1:2:3:4"; do
        run mc run -d -p "$p" minimal true
        [ "$status" -eq 125 ]
        [ "${#lines[@]}" -eq 1 ]
        [[ "$output" == "mcctl: -p/--publish: "* ]]
    done
    run mc run -d --network none -p 80 minimal true
    [ "$status" -eq 125 ]
    [[ "$output" == *"needs a network, not --network none"* ]]
    run mc run -d --ip 10.99.0.9 minimal true
    [[ "$output" == *'--ip: 10.99.0.9 is not a free host address of network "mcnet"'* ]]
    [ "$(mc ps -aq | wc -l)" = "$before" ]
}

@test "port lists published ports; ps shows them; the port answers on the host" {
    mc run -d --name web -p 18090:8080 -p 127.0.0.1::9090/udp minimal httpd -f -p 8080
    run mc port web
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "8080/tcp -> 0.0.0.0:18090" ]
    [[ "${lines[1]}" =~ ^9090/udp\ -\>\ 127\.0\.0\.1:[0-9]+$ ]]
    run mc port web 8080/tcp
    [ "$output" = "0.0.0.0:18090" ]
    run mc port web 1234
    [ "$status" -eq 125 ]
    [ "$output" = 'mcctl: container "web": no public port 1234/tcp published' ]
    run mc ps
    [[ "$output" == *"PORTS"*"0.0.0.0:18090->8080/tcp"*"web"* ]]
    for _ in $(seq 1 50); do
        in_host curl -sf -m 2 http://127.0.0.1:18090/etc/hostname >/dev/null && break
        sleep 0.1
    done
    [ "$(in_host curl -sS -m 5 http://127.0.0.1:18090/etc/hostname)" = "web" ]
    run mc inspect web
    [[ "$(echo "$output" | json_field 'd[0]["network_settings"]["ip"]')" == 10.77.* ]]
    mc rm -f web
    run mc port web
    [ "$status" -eq 125 ]
}
