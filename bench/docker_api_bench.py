"""`docker run --rm minimal /bin/true`, the same docker CLI, against mcd's Docker API and
against a private dockerd, interleaved in one run.

    python bench/docker_api_bench.py [--rounds 10 --block 3 --warmup 3] [--out FILE]

Needs root. Everything is private and removed at the end (also on error or ^C):

- mcd: `mcd --docker-socket` on a temp socket, temp root, cgroup parent mcbench-dockerapi,
  --default-network none, in a network namespace of its own (`unshare --net`).
- dockerd: Debian's docker.io package (20.10, API 1.41) is fetched with `apt-get download`
  and unpacked into .cache/dockerd/ -- never installed, so no service is set up. It runs in
  a network namespace of its own (`unshare --net`), with --bridge=none, --iptables=false
  and --ip-forward=false, a temp --data-root/--exec-root, its own containerd (started by
  dockerd under the exec root), cgroup parent mcbench-dockerd; the image `minimal` is a
  `docker import` of mcd's own minimal template (static busybox), so both run the same
  tree. Both containers have no network (mcd's default; --network none for dockerd).

The CLI is the machine's docker (28.x, negotiates down to each server's API version).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstat  # noqa: E402
from timing import Tool, base_env, interleaved  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "dockerd"
MCD = REPO / ".venv" / "bin" / "mcd"
MCD_PARENT = "mcbench-dockerapi"
DOCKERD_PARENT = "mcbench-dockerd"


def log(msg: str) -> None:
    print(f"docker-bench: {msg}", file=sys.stderr, flush=True)


def docker_cli() -> str:
    return subprocess.run(["bash", str(REPO / "tests/bats/docker-cli.sh")], check=True,
                          capture_output=True, text=True).stdout.strip()


def fetch_dockerd() -> Path:
    dockerd = CACHE / "usr/sbin/dockerd"
    if dockerd.exists():
        return dockerd
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "-q", "docker.io"], cwd=CACHE, check=True,
                   capture_output=True)
    deb = next(CACHE.glob("docker.io_*.deb"))
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(CACHE), "./usr/sbin/dockerd", "./usr/bin/docker"],
                   stdin=tar.stdout, check=True)
    tar.wait()
    deb.unlink()
    return dockerd


def wait_socket(path: str, cli: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    env = base_env({"DOCKER_HOST": f"unix://{path}"})
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        if os.path.exists(path) and subprocess.run([cli, "version"], env=env,
                                                   capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer on {path} in {timeout:.0f} s")


def stop(proc: subprocess.Popen | None, what: str) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        log(f"{what} did not stop in 30 s: SIGKILL")
        proc.kill()
        proc.wait(10)


def remove_cgroups(parent: str) -> list[str]:
    left = []
    for ctrl in Path("/sys/fs/cgroup").iterdir():
        d = ctrl / parent
        if ctrl.is_symlink() or not d.is_dir():
            continue
        for sub, _dirs, _files in sorted(os.walk(d), key=lambda t: -len(t[0])):
            try:
                os.rmdir(sub)
            except OSError:
                left.append(sub)
    return left


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if path in line.split()[4]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("MCBENCH_ROUNDS", 10)))
    ap.add_argument("--block", type=int, default=int(os.environ.get("MCBENCH_BLOCK", 3)))
    ap.add_argument("--warmup", type=int, default=int(os.environ.get("MCBENCH_WARMUP", 3)))
    ap.add_argument("--out", default=None, help="results JSON (default bench/results/docker-api-TS.json)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        log("must run as root")
        return 2
    cli = docker_cli()
    work = Path(tempfile.mkdtemp(prefix="mcbench-docker-"))
    mcd_proc = dockerd_proc = None
    results: dict = {"meta": {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "kernel": platform.release(), "cpus": os.cpu_count(),
                              "cli": subprocess.run([cli, "--version"], capture_output=True,
                                                    text=True).stdout.strip(),
                              "rounds": args.rounds, "block": args.block},
                     "tools": {}, "not_measured": {}}
    try:
        # mcd with its Docker API
        msock = str(work / "mcd-docker.sock")
        cfg = work / "none.toml"
        cfg.write_text("")
        mcd_proc = subprocess.Popen(
            [str(MCD), "--socket", str(work / "mcd.sock"), "--docker-socket", msock,
             "--root", str(work / "mcd-root"), "--cgroup-parent", MCD_PARENT,
             "--web-listen", "off", "--log-level", "warning", "--config", str(cfg),
             "--default-network", "none"],
            stdout=open(work / "mcd.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_socket(msock, cli, mcd_proc, "mcd")
        tools = [Tool("mcd", "mcd Docker API: docker run --rm minimal /bin/true",
                      lambda n: [cli, "run", "--rm", "minimal", "/bin/true"],
                      env=base_env({"DOCKER_HOST": f"unix://{msock}"}))]

        # a private dockerd
        try:
            dockerd = fetch_dockerd()
            results["meta"]["dockerd"] = subprocess.run([str(dockerd), "--version"],
                                                        capture_output=True, text=True).stdout.strip()
            dsock = str(work / "dockerd.sock")
            (work / "daemon.json").write_text("{}")
            env = dict(os.environ, PATH=f"{dockerd.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}")
            dockerd_proc = subprocess.Popen(
                ["unshare", "--net", "--", str(dockerd), "--config-file", str(work / "daemon.json"),
                 "--data-root", str(work / "dockerd-data"), "--exec-root", str(work / "dockerd-exec"),
                 "--pidfile", str(work / "dockerd.pid"), "-H", f"unix://{dsock}",
                 "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
                 "--ip-masq=false", "--userland-proxy=false", "--cgroup-parent", DOCKERD_PARENT,
                 "--storage-driver", "overlay2", "--log-level", "warn"],
                env=env, stdout=open(work / "dockerd.log", "wb"), stderr=subprocess.STDOUT,
                start_new_session=True)
            wait_socket(dsock, cli, dockerd_proc, "dockerd")
            denv = base_env({"DOCKER_HOST": f"unix://{dsock}"})
            template = work / "mcd-root" / "templates" / "minimal" / "rootfs"
            subprocess.run([cli, "run", "--rm", "minimal", "true"], check=True, capture_output=True,
                           env=base_env({"DOCKER_HOST": f"unix://{msock}"}))   # builds it
            subprocess.run(["tar", "-C", str(template), "-cf", str(work / "minimal.tar"), "."], check=True)
            subprocess.run([cli, "import", str(work / "minimal.tar"), "minimal:latest"], env=denv,
                           check=True, capture_output=True)
            tools.append(Tool("dockerd", "dockerd 20.10: docker run --rm --network none minimal /bin/true",
                              lambda n: [cli, "run", "--rm", "--network", "none", "minimal", "/bin/true"],
                              env=denv))
        except (OSError, RuntimeError, subprocess.CalledProcessError, StopIteration) as err:
            results["not_measured"]["dockerd"] = f"private dockerd not available: {err}"
            log(results["not_measured"]["dockerd"])

        samples = interleaved(tools, args.rounds, args.block, args.warmup, log=log)
        for key, s in samples.items():
            results["tools"][key] = s.summary()
        m, d = results["tools"].get("mcd", {}), results["tools"].get("dockerd", {})
        if m.get("median") and d.get("median"):
            results["speedup_median"] = round(d["median"] / m["median"], 2)
    finally:
        stop(dockerd_proc, "dockerd")
        stop(mcd_proc, "mcd")
        procstat.stop_supervisor(work / "mcd-root")   # it outlives mcd by design
        left = {"mounts": mounts_under(str(work)),
                "cgroups": remove_cgroups(MCD_PARENT) + remove_cgroups(DOCKERD_PARENT)}
        for mnt in reversed(left["mounts"]):
            subprocess.run(["umount", "-l", mnt], check=False)
        if any(left.values()):
            log(f"left behind (removed where possible): {left}")
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out) if args.out else REPO / "bench" / "results" / \
        f"docker-api-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: results[k] for k in ("tools", "not_measured") if results[k]} |
                     {"speedup_median": results.get("speedup_median")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
