"""`run --rm minimal /bin/true` with a bridge network: mcd's default network against
podman's (netavark), each beside its own --network none, interleaved in one run; and
the network's own share of an mcd start, from the daemon's Server-Timing header: the
"network" phase and its parts (net-record, net-netns, net-add-PLUGIN, net-names), back
to back and with a pause before each start.

    python bench/network_bench.py [--rounds 10 --block 3 --warmup 3] [--out FILE]

Needs root. Everything runs inside a network namespace this script makes (standing for
the host): mcd (private socket, root, cgroup parent mcbench-net) and podman (private
storage and network config, cgroupfs, runc) both make their bridge and rules there, so
the machine's own links and firewall never change. Removed at the end, also on error.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures as fx  # noqa: E402
import mcapi  # noqa: E402
import procstat  # noqa: E402
from timing import Tool, base_env, interleaved  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MCD = REPO / ".venv" / "bin" / "mcd"
# The CLI as packaged (.deb/.rpm install the one-dir build), else the source tree's.
MCCTL = REPO / "dist" / "mcctl-dir" / "mcctl"
PARENT = "mcbench-net"
PAUSE = 0.4     # s before each request of the "bridge-paused" Server-Timing series


def log(msg: str) -> None:
    print(f"network-bench: {msg}", file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--block", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args()
    if os.geteuid() != 0:
        log("needs root")
        return 2
    mcctl = str(MCCTL if MCCTL.exists() else REPO / ".venv" / "bin" / "mcctl")
    work = Path(tempfile.mkdtemp(prefix="mcbench-net-"))
    outer = work / "outer"
    outer.touch()
    subprocess.run(["unshare", f"--net={outer}", "true"], check=True)
    subprocess.run(["nsenter", f"--net={outer}", "ip", "link", "set", "lo", "up"], check=True)
    ns = ["nsenter", f"--net={outer}"]
    sock = work / "mcd.sock"
    (work / "none.toml").write_text("")
    mcd_proc = subprocess.Popen(
        [*ns, str(MCD), "--socket", str(sock), "--root", str(work / "root"),
         "--cgroup-parent", PARENT, "--web-listen", "off", "--log-level", "warning",
         "--config", str(work / "none.toml"), "--network-config-dir", str(work / "net.d")],
        stdout=open(work / "mcd.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    podman = fx.Podman(work)
    results: dict = {}
    try:
        for _ in range(300):
            if sock.exists() and subprocess.run([mcctl, "--socket", str(sock), "version"],
                                                capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        podman.configure()
        rootfs = work / "rootfs"
        fx.build_rootfs(rootfs)
        fx.make_tarball(rootfs, work / "rootfs.tar")
        podman.import_image(work / "rootfs.tar")
        penv = base_env(podman.env)
        mc = [mcctl, "--socket", str(sock)]
        prun = [fx.NSENTER, f"--net={outer}", fx.PODMAN, "run", "--runtime", "runc", "--cgroup-parent", f"/{fx.OCI_CGROUP_PARENT}",
                "--rm"]
        tools = [
            Tool("mcd-bridge", "mcctl run --rm (default network mcnet)",
                 lambda n: [*mc, "run", "--rm", "minimal", "/bin/true"]),
            Tool("mcd-none", "mcctl run --rm --network none",
                 lambda n: [*mc, "run", "--rm", "--network", "none", "minimal", "/bin/true"]),
            Tool("podman-bridge", "podman run --rm (default network, netavark)",
                 lambda n: [*prun, fx.PODMAN_IMAGE, "/bin/true"], env=penv),
            Tool("podman-none", "podman run --rm --network none",
                 lambda n: [*prun, "--network", "none", fx.PODMAN_IMAGE, "/bin/true"], env=penv),
        ]
        log(f"timing {len(tools)} tools, {a.rounds} rounds x {a.block}")
        samples = interleaved(tools, a.rounds, a.block, a.warmup, log=log)
        results["start"] = {k: s.summary() for k, s in samples.items()}
        # The daemon's own clock: the network phase of a start (netns + CNI ADD) and the total.
        from mcctl.__main__ import build_spec
        from mcctl.parser import build_parser
        null = os.open("/dev/null", os.O_RDWR)
        phases: dict[str, list[float]] = {}
        # Back to back (a start's ADD overlaps the previous container's DEL, which runs
        # after the exit is reported), and with a pause of PAUSE s before each request
        # (the ADD alone): iptables-nft deletions are slow and serialize with the ADD.
        for key, netargs, pause in (("bridge", [], 0.0), ("bridge-paused", [], PAUSE),
                                    ("none", ["--network", "none"], 0.0)):
            spec = build_spec(build_parser().parse_args(["run", "--rm", *netargs, "minimal", "/bin/true"]), {})
            for i in range(a.warmup + a.rounds * a.block):
                time.sleep(pause)
                marks = mcapi.timed_attach(str(sock), {"spec": spec, "attach": True, "rm": True,
                                                       "stdin": False}, [null, null, null])
                if i >= a.warmup:
                    for k, v in marks.items():
                        if k.startswith("daemon_"):
                            phases.setdefault(f"{key}:{k[7:]}", []).append(v)
        os.close(null)
        results["server_timing_median_ms"] = {k: round(statistics.median(v), 2) for k, v in phases.items()}
        results["meta"] = {"kernel": platform.release(), "cpus": os.cpu_count(),
                           "podman": subprocess.run([fx.PODMAN, "--version"], capture_output=True,
                                                    text=True).stdout.strip(),
                           "mcctl": mcctl, "rounds": a.rounds, "block": a.block, "warmup": a.warmup,
                           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    finally:
        try:
            mcapi.remove_all(str(sock))
        except Exception as err:  # noqa: BLE001 - teardown goes on
            log(f"removing mcd containers: {err}")
        mcd_proc.terminate()
        try:
            mcd_proc.wait(30)
        except subprocess.TimeoutExpired:
            mcd_proc.kill()
        procstat.stop_supervisor(work / "root")    # it outlives mcd by design
        podman.teardown(log)
        with open("/proc/self/mountinfo") as f:
            mounts = [ln.split()[4] for ln in f if str(work) in ln.split()[4]]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        for parent in (PARENT, fx.OCI_CGROUP_PARENT):
            for top in fx.cgroup_dirs(parent):
                fx.remove_cgroup_tree(top, log)
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(results, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
