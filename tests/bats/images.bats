#!/usr/bin/env bats
# Images through the real mcctl: load (OCI layout, docker-archive from stdin), ls, tag,
# run with the image's config, rm, save -> load round trip, pull from Debian's
# docker-registry on 127.0.0.1 (a random port, stopped by its pid), progress on a pty.
# The image is built here by umoci from the busybox tree (tests/python/imagefixtures.py).

bats_require_minimum_version 1.5.0
load helpers

setup_file() {
    export IMG_TMP="$(mktemp -d /tmp/mcd-bats-img.XXXXXX)"
    local repo; repo="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    export REPO_DIR="$repo"
    "$repo/.venv/bin/python" - "$IMG_TMP" <<'EOF'
import json, os, sys
sys.path.insert(0, os.path.join(os.environ["REPO_DIR"], "tests", "python"))
import imagefixtures as fx
base = sys.argv[1]
fx.build_oci(os.path.join(base, "layout"), os.path.join(base, "work"))
fx.skopeo_copy(f"oci:{base}/layout:t", f"docker-archive:{base}/docker.tar:bats/three:v1")
reg = fx.LocalRegistry(os.path.join(base, "registry")).start()
reg.push(f"oci:{base}/layout:t", "bats/pulled:1")
with open(os.path.join(base, "registry.env"), "w") as f:
    f.write(f"REG_HOST={reg.host}\nREG_PID={reg.proc.pid}\n")
os._exit(0)     # leave the registry running for the file's tests; teardown stops it by pid
EOF
    start_daemon
}

teardown_file() {
    stop_daemon
    local rc=$?
    # shellcheck disable=SC1091
    . "$IMG_TMP/registry.env" && kill "$REG_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$REG_PID" 2>/dev/null || break; sleep 0.1; done
    rm -rf "$IMG_TMP"
    return $rc
}

reg_host() { . "$IMG_TMP/registry.env"; echo "$REG_HOST"; }

@test "image load of an OCI layout, tag, ls" {
    run mc image load -i "$IMG_TMP/layout"
    [ "$status" -eq 0 ]
    [[ "$output" == "Loaded image ID: sha256:"* ]]
    id="${output##* }"
    run mc image tag "$id" bats/local:1
    [ "$status" -eq 0 ]
    run mc images
    [ "$status" -eq 0 ]
    [[ "$output" == *"REPOSITORY"*"bats/local"*"1"*"${id:7:12}"* ]]
    run mc image ls -q
    [ "$output" = "${id:7:12}" ]
    run mc image ls --format json
    [ "$(echo "$output" | json_field 'd[0]["layers"]')" = 3 ]
}

@test "run IMAGE runs the image's Entrypoint and Cmd as its User in its WorkingDir" {
    run mc run --rm bats/local:1
    [ "$status" -eq 0 ]
    [ "$(echo $output)" = "default cmd 1000 /srv/app" ]
    run mc run --rm --entrypoint cat bats/local:1 /etc/motd
    [ "$status" -ne 0 ]
    [[ "$output" == *"No such file"* ]]
}

@test "image rm is refused while a container uses the image; -f untags" {
    mc create --name user1 bats/local:1
    run mc image rm bats/local:1
    [ "$status" -eq 125 ]
    [[ "$output" == *"in use by container(s) user1"* ]]
    run mc image rm -f bats/local:1
    [ "$status" -eq 0 ]
    [ "$output" = "Untagged: bats/local:1" ]
    mc rm user1
    run mc image prune
    [ "$status" -eq 0 ]
    [[ "$output" == "Deleted: sha256:"* ]]
    run mc images -q
    [ -z "$output" ]
}

@test "a docker-archive loads from stdin with its tag" {
    run bash -c "'$MCCTL' image load < '$IMG_TMP/docker.tar'"
    [ "$status" -eq 0 ]
    [ "$output" = "Loaded image: bats/three:v1" ]
}

@test "image save -o, rm, load: the same image ID" {
    before="$(mc image inspect bats/three:v1 | json_field 'd[0]["id"]')"
    run mc image save -o "$IMG_TMP/saved.tar" bats/three:v1
    [ "$status" -eq 0 ]
    [ -s "$IMG_TMP/saved.tar" ] && [ ! -e "$IMG_TMP/saved.tar.mcctl-partial" ]
    run mc image rm bats/three:v1
    [[ "$output" == *"Deleted: $before"* ]]
    run mc image load -i "$IMG_TMP/saved.tar"
    [ "$output" = "Loaded image: bats/three:v1" ]
    [ "$(mc image inspect bats/three:v1 | json_field 'd[0]["id"]')" = "$before" ]
    run mc image history bats/three:v1
    [[ "$output" == *"umoci raw add-layer"* ]]
}

@test "pull from a local registry; plain lines when not a terminal" {
    host="$(reg_host)"
    run mc pull "$host/bats/pulled:1"
    [ "$status" -eq 0 ]
    [ "$(grep -c ': already exists\|: pull complete' <<<"$output")" = 3 ]
    [[ "$output" == *"Digest: sha256:"* ]]
    run mc system df
    [[ "$output" == *"Images"* && "$output" == *"shared"* ]]
}

@test "pull shows per-layer progress on a terminal" {
    host="$(reg_host)"
    mc image rm "$host/bats/pulled:1" >/dev/null 2>&1 || true
    mc image prune -a >/dev/null
    run python3 "$BATS_TEST_DIRNAME/pty_drive.py" -- "$MCCTL" pull "$host/bats/pulled:1"
    [ "$status" -eq 0 ]
    [[ "$output" == *"Pull complete"* ]]
    [[ "$output" == *$'\x1b[2K'* ]]
}

@test "a bad archive is one line and exit 125" {
    echo "not a tar" > "$IMG_TMP/junk.tar"
    run mc image load -i "$IMG_TMP/junk.tar"
    [ "$status" -eq 125 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == "mcctl: "* ]]
}

@test "a template is a one-layer image: image ls, rm refused in use, save -> load keeps it a template" {
    run mc run --rm minimal cat /etc/hostname
    [ "$status" -eq 0 ]
    run mc images
    [[ "$output" == *$'\n'"minimal "*"latest "*" 1 "* ]]
    id="$(mc image inspect minimal | json_field 'd[0]["id"]')"
    run mc template ls -q
    [ "$output" = "minimal" ]
    mc run -d --name tplheld minimal sleep 100
    run mc template rm minimal
    [ "$status" -eq 125 ]
    [ "$output" = 'mcctl: template "minimal" is used by container(s) tplheld' ]
    run mc image rm minimal
    [ "$status" -eq 125 ]
    [[ "$output" == *"in use by container(s) tplheld"* ]]
    run mc image save -o "$IMG_TMP/minimal.tar" minimal
    [ "$status" -eq 0 ]
    mc rm -f tplheld
    run mc template rm minimal
    [ "$status" -eq 0 ]
    run mc images -q
    [[ "$output" != *"${id:7:12}"* ]]
    # Loaded back (as on another host): the same image, a template again by its label.
    run mc image load -i "$IMG_TMP/minimal.tar"
    [ "$output" = "Loaded image: minimal:latest" ]
    [ "$(mc image inspect minimal | json_field 'd[0]["id"]')" = "$id" ]
    run mc template ls -q
    [ "$output" = "minimal" ]
    run mc run --rm minimal sh -c 'echo $PATH'
    [ "$output" = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" ]
}
