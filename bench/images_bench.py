"""Images, measured beside the standard tools in one run:

    load    `mcctl image load -i five.tar`  vs  `podman load -i five.tar`  vs
            `skopeo copy docker-archive:five.tar oci:DIR` (a conversion, no unpack)
    pull    `mcctl pull HOST/bench/five:1`  vs  `podman pull`  vs  `skopeo copy docker://...`
            from Debian's docker-registry on 127.0.0.1
    start   `mcctl run --rm IMAGE /bin/true` from the 5-layer image vs a 1-layer image of
            the same tree (goal: no measurable difference)

    python bench/images_bench.py [--rounds 5] [--start-rounds 20] [--out FILE]

Needs root, umoci, skopeo, podman, docker-registry. Everything is private and removed at
the end: mcd on a temp socket and root (cgroup parent mcbench-images, no network),
podman with its own --root/--runroot, the registry with a temp config and storage.
The image: the busybox tree + four layers of real files (Python's standard library,
zoneinfo), ~50 MB unpacked, gzip layers as umoci writes them. Every tool starts each
load/pull from an empty store (the cleanup between samples is not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "python"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstat  # noqa: E402
from timing import base_env, time_once  # noqa: E402

import imagefixtures as fx  # noqa: E402

MCD = REPO / ".venv" / "bin" / "mcd"
MCCTL = REPO / "dist" / "mcctl" if (REPO / "dist" / "mcctl").exists() else REPO / ".venv" / "bin" / "mcctl"
PARENT = "mcbench-images"
CONTENT = ["/usr/share/zoneinfo", "/usr/lib/python3.11/email:/usr/lib/python3.11/json",
           "/usr/lib/python3.11", "/usr/lib/python3.11/asyncio:/usr/lib/python3.11/xml"]


def log(msg: str) -> None:
    print(f"images-bench: {msg}", file=sys.stderr, flush=True)


def build(work: Path) -> dict:
    """five: busybox + 4 layers; one: the same tree as a single layer."""
    five = str(work / "five")
    fx.build_oci(five, str(work / "w5"), tag="base")
    image = f"{five}:base"
    for i, srcs in enumerate(CONTENT, 2):
        bundle = work / f"b{i}"
        fx.run("umoci", "unpack", "--image", image, str(bundle))
        for src in srcs.split(":"):
            dest = bundle / "rootfs" / src.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        fx.run("umoci", "repack", "--image", image, str(bundle))
        shutil.rmtree(bundle)
    fx.run("umoci", "config", "--image", image, "--tag", "five", "--config.user", "0",
           "--config.workingdir", "/")
    flat = work / "flat"
    fx.run("umoci", "unpack", "--image", f"{five}:five", str(flat))
    one = str(work / "one")
    fx.run("umoci", "init", "--layout", one)
    fx.run("umoci", "new", "--image", f"{one}:one")
    fx.run("umoci", "unpack", "--image", f"{one}:one", str(work / "oneb"))
    shutil.rmtree(work / "oneb" / "rootfs")
    shutil.copytree(flat / "rootfs", work / "oneb" / "rootfs", symlinks=True)
    fx.run("umoci", "repack", "--image", f"{one}:one", str(work / "oneb"))
    fx.run("umoci", "config", "--image", f"{one}:one", "--config.user", "0")
    archive = str(work / "five.tar")
    fx.skopeo_copy(f"oci:{five}:five", f"docker-archive:{archive}:bench/five:1")
    fx.skopeo_copy(f"oci:{one}:one", f"docker-archive:{work / 'one.tar'}:bench/one:1")
    size = int(subprocess.run(["du", "-sk", str(flat / "rootfs")], capture_output=True,
                              text=True).stdout.split()[0])
    return {"five": five, "archive": archive, "one_archive": str(work / "one.tar"),
            "unpacked_kib": size}


def wait_socket(sock: str, proc: subprocess.Popen) -> None:
    env = base_env({"MCD_SOCKET": sock})
    for _ in range(300):
        if subprocess.run([str(MCCTL), "version"], env=env, capture_output=True).returncode == 0:
            return
        if proc.poll() is not None:
            raise SystemExit("mcd exited during start-up")
        time.sleep(0.1)
    raise SystemExit("mcd did not come up")


def median(xs):
    return round(statistics.median(xs), 1) if xs else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--start-rounds", type=int, default=20)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("images-bench: needs root")
    work = Path(tempfile.mkdtemp(prefix="mcbench-images-"))
    mcd = reg = None
    results: dict = {"host": platform.node(), "kernel": platform.release(),
                     "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tools": {}}
    try:
        log("building the images (umoci, skopeo)")
        img = build(work)
        results["image"] = {"layers": 5, "unpacked_kib": img["unpacked_kib"],
                            "archive_bytes": os.path.getsize(img["archive"])}
        sock = str(work / "mcd.sock")
        mcd = subprocess.Popen([str(MCD), "--socket", sock, "--root", str(work / "root"),
                                "--cgroup-parent", PARENT, "--web-listen", "off",
                                "--default-network", "none",
                                "--config", "/dev/null"],
                               stdout=open(work / "mcd.log", "wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
        wait_socket(sock, mcd)
        env = base_env({"MCD_SOCKET": sock})
        mc = [str(MCCTL)]
        podman = [shutil.which("podman") or "/usr/bin/podman", "--root", str(work / "podman-root"), "--runroot",
                  str(work / "podman-run"), "--storage-driver", "overlay"]
        quiet = {"capture_output": True, "env": env}

        def clean_mcd():
            subprocess.run(mc + ["image", "prune", "-a"], check=True, **quiet)

        def clean_podman():
            subprocess.run(podman + ["rmi", "-a", "-f"], capture_output=True)

        def clean_dir(d):
            shutil.rmtree(d, ignore_errors=True)

        reg = fx.LocalRegistry(str(work / "registry")).start()
        reg.push(f"oci:{img['five']}:five", "bench/five:1")
        ref = f"{reg.host}/bench/five:1"
        oci_out = str(work / "skopeo-out")
        cases = {
            "load": [
                ("mcctl", mc + ["image", "load", "-i", img["archive"]], clean_mcd),
                ("podman", podman + ["load", "-q", "-i", img["archive"]], clean_podman),
                ("skopeo", [shutil.which("skopeo"), "copy", "-q", f"docker-archive:{img['archive']}",
                            f"oci:{oci_out}:x"], lambda: clean_dir(oci_out)),
            ],
            "pull": [
                ("mcctl", mc + ["pull", "-q", ref], clean_mcd),
                ("podman", podman + ["pull", "-q", "--tls-verify=false", ref], clean_podman),
                ("skopeo", [shutil.which("skopeo"), "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                            f"oci:{oci_out}:x"], lambda: clean_dir(oci_out)),
            ],
        }
        for case, tools in cases.items():
            samples: dict[str, list] = {name: [] for name, _, _ in tools}
            for r in range(args.rounds):
                for name, argv_, clean in (tools if r % 2 == 0 else list(reversed(tools))):
                    clean()
                    samples[name].append(time_once(argv_, env))
            for name, xs in samples.items():
                results["tools"][f"{case}:{name}"] = {"median_ms": median(xs),
                                                     "min_ms": round(min(xs), 1), "n": len(xs)}
                log(f"{case:5} {name:7} median {median(xs)} ms (n={len(xs)})")
        # start: 5 layers vs 1 layer, interleaved
        clean_mcd()
        subprocess.run(mc + ["image", "load", "-i", img["archive"]], check=True, **quiet)
        subprocess.run(mc + ["image", "load", "-i", img["one_archive"]], check=True, **quiet)
        starts: dict[str, list] = {"five": [], "one": []}
        order = ["five", "one"]
        def run_true(name):
            return mc + ["run", "--rm", "--entrypoint", "/bin/true", f"bench/{name}:1"]
        for name in order:      # warm-up
            time_once(run_true(name), env)
        for r in range(args.start_rounds):
            for name in (order if r % 2 == 0 else order[::-1]):
                starts[name].append(time_once(run_true(name), env))
        for name, xs in starts.items():
            results["tools"][f"start:{name}-layer"] = {
                "median_ms": median(xs), "min_ms": round(min(xs), 1), "n": len(xs),
                "stdev_ms": round(statistics.stdev(xs), 1)}
            log(f"start {name}-layer median {median(xs)} ms stdev "
                f"{statistics.stdev(xs):.1f} (n={len(xs)})")
        clean_mcd()
        clean_podman()
    finally:
        if reg is not None:
            reg.stop()
        if mcd is not None and mcd.poll() is None:
            mcd.terminate()
            try:
                mcd.wait(20)
            except subprocess.TimeoutExpired:
                mcd.kill()
        procstat.stop_supervisor(work / "root")    # it outlives mcd by design
        for base in Path("/sys/fs/cgroup").iterdir():
            d = base / PARENT
            if d.is_dir() and not base.is_symlink():
                for sub in sorted(d.rglob("*"), key=lambda p: -len(str(p))):
                    if sub.is_dir():
                        try:
                            sub.rmdir()
                        except OSError:
                            pass
                try:
                    d.rmdir()
                except OSError:
                    pass
        subprocess.run(["podman", "--root", str(work / "podman-root"), "--runroot",
                        str(work / "podman-run"), "system", "reset", "-f"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    out = json.dumps(results, indent=1)
    if args.out:
        Path(args.out).write_text(out + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
