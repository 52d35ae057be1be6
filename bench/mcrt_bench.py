"""mcrt against runc and crun, under the same callers, in ONE interleaved run.

    mcrt_bench.py [--out DIR] [--rounds N] [--block N] [--warmup N] [--docs docs] [--before MCRT]

What is timed (wall clock of the caller's command, /bin/true as the container's process):
  podman --runtime {mcrt, runc, crun} run --rm IMAGE /bin/true   (conmon; private podman root)
  ctr run --rm [--runc-binary mcrt] --rootfs DIR ID /bin/true     (runc v2 shim; private containerd)
  {mcrt, runc, crun} run --bundle B ID                            (the runtime alone)
Every sample of every tool is taken in the same shuffled rounds (bench/timing.interleaved),
so a busy moment on the shared machine hits all of them alike. mcrt is the packaged one-dir
dist/mcrt/mcrt when built, else the venv's entry point (the label says which).

Everything lives under a temp dir and a private cgroup parent, removed at the end; the
containerd this starts is stopped by pid.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "python"))

from timing import Tool, base_env, interleaved  # noqa: E402

BEGIN, END = "<!-- mcrt-bench:begin -->", "<!-- mcrt-bench:end -->"


def mcrt_path() -> tuple[str, str]:
    frozen = REPO / "dist/mcrt/mcrt"
    if frozen.exists():
        return str(frozen), "dist/mcrt/mcrt (one-dir, as packaged)"
    return str(REPO / ".venv/bin/mcrt"), ".venv/bin/mcrt (entry point)"


class Setup:
    def __init__(self):
        from mcrtlib import busybox_rootfs
        self.dir = Path(tempfile.mkdtemp(prefix="mctest-mcrtbench-"))
        self.parent = f"mctest-{uuid.uuid4().hex[:8]}"
        self.rootfs = busybox_rootfs(str(self.dir / "rootfs"), str(self.dir / "cache"))
        self.mcrt, self.mcrt_label = mcrt_path()
        self.containerd = None
        self.podman = []
        try:
            self._podman()
            self._containerd()
            self._bundle()
        except BaseException:
            self.close()
            raise

    # podman: private storage, cgroupfs, no network, ulimits this sandbox allows
    def _podman(self):
        d = self.dir / "podman"
        d.mkdir()
        conf = d / "containers.conf"
        conf.write_text('[containers]\nnetns = "none"\n'
                        'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                        '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\n')
        self.podman_env = base_env({"CONTAINERS_CONF": str(conf)})
        self.podman = [shutil.which("podman"), "--root", f"{d}/root", "--runroot", f"{d}/runroot",
                       "--tmpdir", f"{d}/tmp", "--storage-driver", "vfs",
                       "--cgroup-manager", "cgroupfs"]
        self.podman_dir = d
        tar = d / "bb.tar"
        with tarfile.open(tar, "w") as t:
            t.add(self.rootfs, arcname=".")
        subprocess.run(self.podman + ["import", str(tar), "localhost/mcrt-bench:latest"],
                       env=self.podman_env, check=True, capture_output=True)

    def podman_run(self, runtime: str, name: str = ""):
        # The runtime's state under our dir through a wrapper (the same exec for every runtime),
        # not --runtime-flag root=...: conmon's exit command does not carry runtime flags.
        wrapper = self.podman_dir / "rt" / (name or os.path.basename(runtime))
        wrapper.parent.mkdir(exist_ok=True)
        wrapper.write_text(f'#!/bin/sh\nexec "{runtime}" --root "{self.podman_dir}/rt-state" "$@"\n')
        wrapper.chmod(0o755)
        runtime = str(wrapper)
        return lambda n: self.podman + ["--runtime", runtime, "run", "--rm", "--cgroup-parent",
                                        f"/{self.parent}", "localhost/mcrt-bench", "/bin/true"]

    def _containerd(self):
        from mcrtlib import CONTAINERD_CONFIG    # the integration tier's private containerd
        d = self.dir / "containerd"
        d.mkdir()
        cfg = d / "config.toml"
        cfg.write_text(CONTAINERD_CONFIG.format(d=d, mcrt=self.mcrt, mcrt_root=d / "mcrt-state"))
        self.ctr_sock = str(d / "c.sock")
        self.ctr_log = open(d / "containerd.log", "w")
        self.containerd = subprocess.Popen(["containerd", "--config", str(cfg)],
                                           stdout=self.ctr_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while subprocess.run(["ctr", "--address", self.ctr_sock, "version"],
                             capture_output=True).returncode != 0:
            if self.containerd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("containerd did not start")
            time.sleep(0.1)

    def ctr_run(self, binary: str | None, tag: str):
        def argv(n):
            cid = f"b{tag}{n}"
            extra = ["--runc-binary", binary] if binary else []
            return [shutil.which("ctr"), "--address", self.ctr_sock, "run", "--rm", *extra,
                    "--runc-root", str(self.dir / "containerd/runc-root"),
                    "--fifo-dir", str(self.dir / "containerd/fifo"), "--env", "PATH=/bin",
                    "--cgroup", f"/{self.parent}/{cid}", "--rootfs", self.rootfs, cid, "/bin/true"]
        return argv

    def _bundle(self):
        b = self.dir / "bundle"
        b.mkdir()
        os.symlink(self.rootfs, b / "rootfs")
        subprocess.run(["runc", "spec", "--bundle", str(b)], check=True)
        cfg = json.loads((b / "config.json").read_text())
        cfg["process"].update(terminal=False, args=["/bin/true"])
        cfg["root"]["path"] = self.rootfs
        self.bundle_cfg = cfg
        self.bundle = b

    def runtime_run(self, binary: str, tag: str):
        root = self.dir / f"state-{tag}"

        def argv(n):
            cid = f"r{tag}{n}"
            cfg = dict(self.bundle_cfg)
            cfg["linux"] = dict(cfg["linux"], cgroupsPath=f"/{self.parent}/{cid}")
            (self.bundle / "config.json").write_text(json.dumps(cfg))
            return [shutil.which(binary) or binary, "--root", str(root), "run", "--bundle", str(self.bundle), cid]
        return argv

    def close(self):
        if self.podman:
            subprocess.run(self.podman + ["rm", "-af", "-t", "0"], env=self.podman_env,
                           capture_output=True)
            subprocess.run(self.podman + ["rmi", "-af"], env=self.podman_env, capture_output=True)
        if self.containerd is not None:
            self.containerd.send_signal(signal.SIGTERM)
            try:
                self.containerd.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.containerd.kill()
                self.containerd.wait()
            self.ctr_log.close()
        from mcrtlib import remove_cgroup_parent
        left = remove_cgroup_parent(self.parent)
        shutil.rmtree(self.dir, ignore_errors=True)
        if left:
            print(f"mcrt_bench: cgroups left behind: {left}", file=sys.stderr)


def table(results: dict) -> str:
    rows = ["| caller | runtime | median ms | q1–q3 ms | caller CPU ms (median) | n |",
            "|---|---|---:|---:|---:|---:|"]
    for group, keys in (("podman run --rm", ("podman-before", "podman-mcrt", "podman-runc", "podman-crun")),
                        ("ctr run --rm (shim)", ("ctr-before", "ctr-mcrt", "ctr-runc")),
                        ("runtime `run` alone", ("rt-before", "rt-mcrt", "rt-runc", "rt-crun"))):
        for k in keys:
            s = results.get(k)
            if not s:
                continue
            if not s.get("n"):
                err = (s.get("error") or "").rsplit(" ", 2)[-2:]     # "exited N"
                rows.append(f"| {group} | {s['label']} | does not run here ({' '.join(err)}) | | | 0 |")
                continue
            cpu = f"{s['cpu_median']:.0f}" if s.get("cpu_median") is not None else ""
            rows.append(f"| {group} | {s['label']} | {s['median']:.0f} | {s['q1']:.0f}–{s['q3']:.0f} "
                        f"| {cpu} | {s['n']} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "bench/results" /
                                         datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--block", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--docs", default="", help="rewrite the table in DOCS/mcrt.md")
    ap.add_argument("--before", default="", metavar="MCRT",
                    help="another mcrt binary (e.g. main's dist/mcrt/mcrt before a change) timed "
                         "in the same rounds, as 'mcrt before'")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("mcrt_bench: needs root", file=sys.stderr)
        return 2
    s = Setup()
    try:
        m = s.mcrt
        tools = [
            Tool("podman-mcrt", f"mcrt ({s.mcrt_label})", s.podman_run(m), env=s.podman_env),
            Tool("podman-runc", "runc", s.podman_run("runc"), env=s.podman_env),
            Tool("podman-crun", "crun", s.podman_run("crun"), env=s.podman_env),
            Tool("ctr-mcrt", f"mcrt ({s.mcrt_label})", s.ctr_run(m, "m")),
            Tool("ctr-runc", "runc", s.ctr_run(None, "r")),
            Tool("rt-mcrt", f"mcrt ({s.mcrt_label})", s.runtime_run(m, "m")),
            Tool("rt-runc", "runc", s.runtime_run("runc", "r")),
            Tool("rt-crun", "crun", s.runtime_run("crun", "c")),
        ]
        if args.before:
            b = os.path.abspath(args.before)
            tools += [Tool("podman-before", f"mcrt before ({args.before})",
                           s.podman_run(b, "mcrt-before"), env=s.podman_env),
                      Tool("ctr-before", f"mcrt before ({args.before})", s.ctr_run(b, "b")),
                      Tool("rt-before", f"mcrt before ({args.before})", s.runtime_run(b, "b"))]
        samples = interleaved(tools, args.rounds, args.block, args.warmup, seed=1)
    finally:
        s.close()
    results = {k: v.summary() for k, v in samples.items()}
    meta = {"when": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z",
            "rounds": args.rounds, "block": args.block, "warmup": args.warmup,
            "nproc": os.cpu_count(), "load": os.getloadavg()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mcrt.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    text = table(results)
    print(text)
    if args.docs:
        page = Path(args.docs) / "mcrt.md"
        doc = page.read_text()
        i, j = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        stamp = (f"\n\nOne interleaved run, {meta['when']}, {args.rounds} rounds × {args.block} "
                 f"samples per tool (+{args.warmup} warm-up), load average at the end "
                 f"{meta['load'][0]:.2f} on {meta['nproc']} cores shared with other work.\n\n")
        page.write_text(doc[:i] + stamp + text + "\n\n" + doc[j:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
