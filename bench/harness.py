"""mini-container benchmarks, side by side with runc, crun, podman, bwrap and unshare.

    harness.py run [--out DIR] [options]     measure everything, write DIR/results.json
    harness.py cleanup                       remove whatever a previous run left behind

Run as root (bench/run.sh does the whole `make bench` sequence). Every process, container,
bundle, image, cgroup and mount this makes is removed at the end, also on error or ^C.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import fixtures as fx
import mcapi
import procstat
from timing import CommandFailed, Tool, base_env, interleaved, time_once

REPO = Path(__file__).resolve().parent.parent
VENV_MCD = REPO / ".venv/bin/mcd"
VENV_MCCTL = REPO / ".venv/bin/mcctl"
DIST_MCCTL = REPO / "dist/mcctl"               # PyInstaller one-file
DIR_MCCTL = REPO / "dist/mcctl-dir/mcctl"      # one-dir: what the .deb/.rpm install
MCCTL_LABELS = {"mcctl-dist": "one-file dist/mcctl", "mcctl-dir": "one-dir dist/mcctl-dir, as packaged",
                "mcctl-venv": ".venv entry point"}
SLEEP = ["/bin/sleep", "1000000"]


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.logf = open(self.out / "harness.log", "a")
        self.results: dict = {"meta": {}, "not_measured": {}}
        self.work = fx.WORK
        self.rootfs = self.work / "rootfs"
        self.holder = fx.MountNsHolder(self.work)
        self.podman = fx.Podman(self.work)
        self.docker: fx.Docker | None = None
        self.daemon: fx.Daemon | None = None
        self.mcctls: dict[str, Path] = {}          # key -> binary that works
        self.rng = random.Random(args.seed)

    # --- plumbing -------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        line = f"[{datetime.datetime.utcnow():%H:%M:%S}] {msg}"
        print(line, flush=True)
        self.logf.write(line + "\n")
        self.logf.flush()

    def not_measured(self, key: str, reason: str) -> None:
        self.results["not_measured"][key] = " ".join(reason.split())
        self.log(f"NOT MEASURED {key}: {reason}")

    def save(self) -> None:
        tmp = self.out / "results.json.tmp"
        tmp.write_text(json.dumps(self.results, indent=1))
        tmp.replace(self.out / "results.json")

    def runc(self, *args: str) -> list[str]:
        return [fx.RUNC, "--root", str(fx.oci_root(self.work, "runc")), *args]

    def crun(self, *args: str) -> list[str]:
        return [*self.holder.nsenter(), fx.CRUN, "--root", str(fx.oci_root(self.work, "crun")),
                *args]

    def podman_env(self) -> dict:
        return base_env(self.podman.env)

    def mcctl(self, key: str, *args: str) -> list[str]:
        return [str(self.mcctls[key]), "--socket", str(self.daemon.socket), *args]

    # --- setup ---------------------------------------------------------------------------------
    def setup(self) -> None:
        self.log("setup: removing leftovers of earlier runs")
        left = fx.teardown_all(self.work, fx.MCD_ROOT, self.log)
        if left:
            raise RuntimeError(f"leftovers from an earlier run could not be removed: {left}")
        self.work.mkdir(parents=True)
        self.log("setup: busybox rootfs, tarball, OCI bundles, podman image")
        fx.build_rootfs(self.rootfs)
        fx.make_tarball(self.rootfs, self.work / "rootfs.tar")
        for rt in ("runc", "crun"):
            fx.oci_root(self.work, rt).mkdir()
            fx.write_bundle(self.work, f"{rt}-true", ["/bin/true"], self.rootfs)
        self.holder.start()
        self.podman.configure()
        self.podman.import_image(self.work / "rootfs.tar")
        self.setup_docker()
        self.setup_mcd()
        self.results["meta"] = self.meta()
        self.save()

    def setup_docker(self) -> None:
        why = fx.Docker.available()
        if why:
            self.not_measured("docker", why)
            return
        d = fx.Docker(self.work)
        try:
            pid = d.start(self.out / "dockerd.log")
            d.call("import", str(self.work / "rootfs.tar"), fx.PODMAN_IMAGE)
        except (RuntimeError, OSError, subprocess.SubprocessError) as err:
            self.not_measured("docker", f"private dockerd did not start: {err}")
            d.teardown(self.log)
            return
        self.docker = d
        self.log(f"setup: private dockerd pid {pid} on {d.socket}")

    def docker_env(self) -> dict:
        return base_env(self.docker.env)

    def setup_mcd(self) -> None:
        if not VENV_MCD.exists():
            self.not_measured("mcd", f"{VENV_MCD} does not exist (daemon not built yet)")
            return
        self.daemon = fx.Daemon(self.work, fx.MCD_ROOT, str(VENV_MCD), self.out / "mcd.log")
        try:
            pid = self.daemon.start()
        except (RuntimeError, OSError) as err:
            self.not_measured("mcd", f"private daemon did not start: {err}")
            self.daemon.stop()
            self.daemon = None
            return
        self.log(f"setup: private mcd pid {pid} on {self.daemon.socket}")
        # The packaged one-dir build first: population/throughput use the first that works.
        for key, path in (("mcctl-dir", DIR_MCCTL), ("mcctl-dist", DIST_MCCTL), ("mcctl-venv", VENV_MCCTL)):
            if not path.exists():
                self.not_measured(key, f"{path} does not exist")
                continue
            if key != "mcctl-venv":
                # A private copy: dist/ is rebuilt by others while a run is going on.
                snap = self.work / "bin" / key
                snap.parent.mkdir(exist_ok=True)
                if path.parent.name == "mcctl-dir":
                    shutil.copytree(path.parent, snap)
                    path = snap / "mcctl"
                else:
                    shutil.copy2(path, snap)
                    path = snap
            self.mcctls[key] = path
            try:
                r = fx.sh(self.mcctl(key, "run", "--rm", "minimal", "/bin/true"), check=False,
                          env=base_env())
            except subprocess.TimeoutExpired:
                r = None
            if r is None or r.returncode != 0:
                why = "timed out" if r is None else (r.stderr.strip().splitlines() or ["?"])[-1]
                del self.mcctls[key]
                self.not_measured(key, f"`mcctl run --rm minimal /bin/true` failed: {why}")

    def meta(self) -> dict:
        def ver(argv: list[str]) -> str:
            try:
                out = fx.sh(argv, check=False).stdout or ""
                return out.strip().splitlines()[0] if out.strip() else "?"
            except (OSError, subprocess.SubprocessError):
                return "not installed"
        cpu = "?"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
        git = fx.sh(["git", "-C", str(REPO), "log", "-1", "--format=%h %cI"], check=False).stdout
        return {
            "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
            "machine": {"kernel": platform.release(), "cpu": cpu, "cores": os.cpu_count(),
                        "mem_gib": round(mem_kib / 2**20, 1),
                        "os": _os_release(), "cgroups": "hybrid (v1 controllers + empty v2)"
                        if Path("/sys/fs/cgroup/unified").is_dir() else "?"},
            "versions": {
                "runc": ver([fx.RUNC, "--version"]), "crun": ver([fx.CRUN, "--version"]),
                "podman": ver([fx.PODMAN, "--version"]), "conmon": ver(["/usr/bin/conmon", "--version"]),
                "bwrap": ver(["/usr/bin/bwrap", "--version"]),
                "busybox": ver([fx.BUSYBOX]).split("(")[0].strip(),
                "python": sys.version.split()[0], "mini-container": git.strip(),
                "docker": "client only, no dockerd" if not shutil.which("dockerd") else ver(["dockerd", "--version"]),
            },
            "loadavg_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
            "params": {k: v for k, v in vars(self.args).items() if k not in ("func",)},
            "mcctl": {k: str(v) for k, v in self.mcctls.items()},
        }

    # --- start latency ---------------------------------------------------------------------------
    def start_tools(self) -> list[Tool]:
        r = str(self.rootfs)
        runc_b = str(self.work / "bundles/runc-true")
        crun_b = str(self.work / "bundles/crun-true")
        tools = [
            Tool("true", "/bin/true", lambda n: ["/bin/true"], note="reference: one fork+exec"),
            Tool("python", "python3 -I -S -c pass", lambda n: ["/usr/bin/python3", "-I", "-S", "-c", "pass"],
                 note="reference: bare interpreter start"),
            Tool("nsenter-true", "nsenter --mount /bin/true",
                 lambda n: [*self.holder.nsenter(), "/bin/true"],
                 note="reference: what crun's hybrid-cgroup workaround adds"),
            Tool("unshare", "unshare+chroot", lambda n: [fx.UNSHARE, "--fork", "--pid", "--mount", "--ipc",
                                                        "--uts", "--net", "/usr/sbin/chroot", r, "/bin/true"],
                 note="the floor: same namespaces, no cgroup, no pivot_root"),
            Tool("bwrap", "bwrap", lambda n: ["/usr/bin/bwrap", "--unshare-pid", "--unshare-net",
                                              "--unshare-ipc", "--unshare-uts", "--ro-bind", r, "/",
                                              "--proc", "/proc", "--dev", "/dev", "/bin/true"]),
            Tool("runc", "runc run", lambda n: self.runc("run", "--bundle", runc_b, f"mcb-runc-{n}")),
            Tool("crun", "crun run (via nsenter)", lambda n: self.crun("run", "--bundle", crun_b, f"mcb-crun-{n}"),
                 note="includes nsenter into a mount ns without /sys/fs/cgroup/unified"),
            Tool("podman", "podman run --rm --network none",
                 lambda n: self.podman.run_argv("--rm", fx.PODMAN_IMAGE, "/bin/true"),
                 env=self.podman_env(), note="runtime runc, cgroupfs"),
        ]
        if self.docker:
            tools.append(Tool("docker", "docker run --rm --network none",
                              lambda n: self.docker.argv("run", "--rm", "--network", "none", fx.PODMAN_IMAGE, "/bin/true"),
                              env=self.docker_env(), note="private dockerd, containerd shim, runc, cgroupfs"))
        for key in self.mcctls:
            tools.append(Tool(key, f"mcctl run --rm ({MCCTL_LABELS[key]})",
                              lambda n, key=key: self.mcctl(key, "run", "--rm", "minimal", "/bin/true")))
            tools.append(Tool(f"{key}-version", f"mcctl --version ({MCCTL_LABELS[key]})",
                              lambda n, key=key: [str(self.mcctls[key]), "--version"],
                              note="reference: the CLI's own start-up, no daemon"))
        return tools

    def section_start(self) -> None:
        a = self.args
        self.log(f"start latency: {a.rounds} rounds x {a.block} runs, warm-up {a.warmup}")
        samples = interleaved(self.start_tools(), a.rounds, a.block, a.warmup, seed=a.seed, log=self.log)
        self.results["start"] = _with_ratios(samples)
        self.save()

    # --- the daemon's own share ------------------------------------------------------------------------
    def section_daemon_share(self) -> None:
        """The API call `mcctl run --rm` makes, timed without the CLI in front of it.

        Measured from the outside (the body is the one mcctl builds with its own build_spec,
        the stages are the response lines) and from the inside: mcd's Server-Timing header
        gives request read -> exec and the manager's phases.
        """
        if self.daemon is None or not self.mcctls:
            self.not_measured("daemon-share", self.results["not_measured"].get("mcd", "mcctl does not work"))
            return
        try:
            from mcctl.__main__ import build_spec
            from mcctl.parser import build_parser
            spec = build_spec(build_parser().parse_args(["run", "--rm", "minimal", "/bin/true"]), {})
        except Exception as err:                  # noqa: BLE001 - the CLI is another team's code
            self.not_measured("daemon-share", f"could not build mcctl's spec in-process: {err}")
            return
        body = {"spec": spec, "attach": True, "rm": True, "stdin": False}
        null = os.open("/dev/null", os.O_RDWR)
        stages: dict[str, list[float]] = {"attached": [], "exit": [], "closed": []}
        a = self.args
        dpid = self.daemon.pid()
        try:
            for i in range(a.warmup + a.rounds * a.block):
                if i == a.warmup:
                    cpu0 = procstat.process_cpu_ms(dpid)
                marks = mcapi.timed_attach(str(self.daemon.socket), body, [null, null, null])
                if i >= a.warmup:
                    for k, v in marks.items():
                        stages.setdefault(k, []).append(v)
            daemon_cpu = (procstat.process_cpu_ms(dpid) - cpu0) / (a.rounds * a.block)
        except (OSError, mcapi.ApiError, ValueError) as err:
            self.not_measured("daemon-share", f"POST /v1/containers failed: {err}")
            return
        finally:
            os.close(null)
        self.results["daemon_share"] = {
            "attached": _summ("attached", "request sent -> command exec'd (attached line)", stages["attached"]),
            "exit": _summ("exit", "request sent -> exit line", stages["exit"]),
            "closed": _summ("closed", "request sent -> connection closed (removed)", stages["closed"]),
            # The daemon's own clock (Server-Timing): request read -> PID 1 exec'd, and its phases.
            "daemon": {k[len("daemon_"):]: _summ(k, f"daemon's own timing: {k[len('daemon_'):]}", v)
                       for k, v in stages.items() if k.startswith("daemon_")},
            "daemon_cpu_ms_per_start": daemon_cpu,
        }
        self.save()

    # --- exec latency ---------------------------------------------------------------------------------
    def section_exec(self) -> None:
        self.log("exec latency")
        fx.write_bundle(self.work, "runc-exec", SLEEP, self.rootfs)
        fx.write_bundle(self.work, "crun-exec", SLEEP, self.rootfs)
        env = base_env()
        time_once(self.runc("run", "-d", "--bundle", str(self.work / "bundles/runc-exec"), "mcb-exec-runc"), env)
        time_once(self.crun("run", "-d", "--bundle", str(self.work / "bundles/crun-exec"), "mcb-exec-crun"), env)
        time_once(self.podman.run_argv("-d", "--name", "mcb-exec-podman", fx.PODMAN_IMAGE, *SLEEP), self.podman_env())
        if self.docker:
            time_once(self.docker.argv("run", "-d", "--network", "none", "--name", "mcb-exec-docker",
                                       fx.PODMAN_IMAGE, *SLEEP), self.docker_env())
        state = json.loads(fx.sh(self.runc("state", "mcb-exec-runc")).stdout)
        init = str(state["pid"])
        tools = [
            Tool("nsenter", "nsenter -t PID -m -u -i -n -p", lambda n: [fx.NSENTER, "-t", init, "-m", "-u", "-i",
                                                                     "-n", "-p", "/bin/true"],
                 note="joins the runc container's namespaces; no cgroup, no caps/seccomp"),
            Tool("runc", "runc exec", lambda n: self.runc("exec", "mcb-exec-runc", "/bin/true")),
            Tool("crun", "crun exec (via nsenter)", lambda n: self.crun("exec", "mcb-exec-crun", "/bin/true")),
            Tool("podman", "podman exec", lambda n: self.podman.argv("exec", "mcb-exec-podman", "/bin/true"),
                 env=self.podman_env()),
        ]
        if self.docker:
            tools.append(Tool("docker", "docker exec", lambda n: self.docker.argv("exec", "mcb-exec-docker", "/bin/true"),
                              env=self.docker_env()))
        if self.mcctls:
            key = next(iter(self.mcctls))
            r = fx.sh(self.mcctl(key, "run", "-d", "--name", "mcb-exec", "minimal", *SLEEP), check=False, env=env)
            if r.returncode == 0:
                for key in self.mcctls:
                    tools.append(Tool(key, f"mcctl exec ({MCCTL_LABELS[key]})",
                                      lambda n, key=key: self.mcctl(key, "exec", "mcb-exec", "/bin/true")))
            else:
                self.not_measured("exec-mcctl", f"`mcctl run -d` failed: {r.stderr.strip()[-200:]}")
        a = self.args
        samples = interleaved(tools, a.rounds, a.block, a.warmup, seed=a.seed, log=self.log)
        self.results["exec"] = _with_ratios(samples)
        fx.sh(self.runc("delete", "--force", "mcb-exec-runc"), check=False)
        fx.sh(self.crun("delete", "--force", "mcb-exec-crun"), check=False)
        self.podman.call("rm", "-f", "-t", "0", "mcb-exec-podman", check=False)
        if self.docker:
            self.docker.call("rm", "-f", "mcb-exec-docker", check=False)
        if self.mcctls:
            fx.sh(self.mcctl(next(iter(self.mcctls)), "rm", "-f", "mcb-exec"), check=False, env=env)
        self.save()

    # --- population: throughput, CLI latency, memory, idle cost ----------------------------------------
    def detached_argv(self, tool: str, i: int) -> tuple[list[str], dict]:
        name = f"mcb-tp-{i}"
        if tool == "runc":
            b = fx.write_bundle(self.work, f"runc-{name}", SLEEP, self.rootfs)
            return self.runc("run", "-d", "--bundle", str(b), name), base_env()
        if tool == "crun":
            b = fx.write_bundle(self.work, f"crun-{name}", SLEEP, self.rootfs)
            return self.crun("run", "-d", "--bundle", str(b), name), base_env()
        if tool == "podman":
            return self.podman.run_argv("-d", "--name", name, fx.PODMAN_IMAGE, *SLEEP), self.podman_env()
        if tool == "docker":
            return (self.docker.argv("run", "-d", "--network", "none", "--name", name, fx.PODMAN_IMAGE, *SLEEP),
                    self.docker_env())
        return self.mcctl(tool, "run", "-d", "--name", name, "minimal", *SLEEP), base_env()

    def start_many(self, tool: str, first: int, n: int, concurrent: bool) -> dict:
        argvs = [self.detached_argv(tool, i) for i in range(first, first + n)]
        failures: list[str] = []
        t0 = time.perf_counter()
        if concurrent:
            # stderr goes to files, not pipes: a detached container inherits the runtime's
            # stdio and would hold a pipe open for as long as it runs.
            errdir = self.out / "stderr"
            errdir.mkdir(exist_ok=True)
            pids = []
            for i, (a, e) in enumerate(argvs):
                errf = errdir / f"{tool}-{first + i}.txt"
                pids.append((os.posix_spawn(a[0], a, e, file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, str(errf), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]),
                    errf))
            for pid, errf in pids:
                _, status = os.waitpid(pid, 0)
                if os.waitstatus_to_exitcode(status) != 0:
                    failures.append(errf.read_text(errors="replace").strip()[-200:])
        else:
            for a, e in argvs:
                try:
                    time_once(a, e)
                except (CommandFailed, OSError) as err:
                    failures.append(str(err))
        secs = time.perf_counter() - t0
        return {"n": n, "seconds": secs, "per_second": (n - len(failures)) / secs,
                "failures": len(failures), "first_failure": failures[0] if failures else None}

    def cli_level(self, count: int) -> dict:
        target = "mcb-tp-0"
        tools = [Tool("podman-ps", "podman ps", lambda n: self.podman.argv("ps"), env=self.podman_env())]
        if count:
            tools.append(Tool("podman-inspect", "podman inspect", lambda n: self.podman.argv("inspect", target),
                              env=self.podman_env()))
        if self.docker:
            tools.append(Tool("docker-ps", "docker ps", lambda n: self.docker.argv("ps"), env=self.docker_env()))
            if count:
                tools.append(Tool("docker-inspect", "docker inspect",
                                  lambda n: self.docker.argv("inspect", target), env=self.docker_env()))
        for key in self.mcctls:
            tools.append(Tool(f"{key}-ps", f"mcctl ps ({MCCTL_LABELS[key]})", lambda n, key=key: self.mcctl(key, "ps")))
            if count:
                tools.append(Tool(f"{key}-inspect", f"mcctl inspect ({MCCTL_LABELS[key]})",
                                  lambda n, key=key: self.mcctl(key, "inspect", target)))
        a = self.args
        samples = interleaved(tools, max(2, a.rounds // 3), a.block, 1, seed=a.seed, log=lambda m: None)
        out = {k: s.summary() | {"samples": s.ms} for k, s in samples.items()}
        if self.daemon is not None:
            # The same questions asked of the socket directly: what the daemon itself costs.
            sock = str(self.daemon.socket)
            queries = [("api-ps", "GET /v1/containers (API, no CLI)", "/v1/containers")]
            if count:
                queries.append(("api-inspect", f"GET /v1/containers/{target} (API, no CLI)",
                                f"/v1/containers/{target}"))
            for key, label, path in queries:
                ms = []
                try:
                    for i in range(1 + max(2, a.rounds // 3) * a.block):
                        t0 = time.perf_counter_ns()
                        mcapi.request(sock, "GET", path)
                        if i:
                            ms.append((time.perf_counter_ns() - t0) / 1e6)
                    out[key] = _summ(key, label, ms)
                except (OSError, ValueError, mcapi.ApiError) as err:
                    out[key] = {"key": key, "label": label, "n": 0, "error": str(err)}
        return out

    def population(self) -> dict[str, int]:
        pop = {"podman": len(self.podman.call("ps", "-q").split())}
        if self.docker:
            pop["docker"] = len(self.docker.call("ps", "-q").split())
        if self.daemon is not None:
            pop["mcd"] = len(mcapi.list_ids(str(self.daemon.socket)))
        return pop

    def section_population(self) -> None:
        a = self.args
        n = a.throughput_n
        mc_tools = list(self.mcctls)[:1]     # starts go through the installed CLI when it works
        tools = ["runc", "crun", "podman", *(["docker"] if self.docker else []), *mc_tools]
        res = {"cli": [], "throughput": {}, "memory": {}, "daemon_mem": [], "idle": {}}
        self.results["population"] = res
        next_index = {t: 0 for t in tools}

        def level() -> None:
            pop = self.population()
            count = max(pop.values())
            self.log(f"CLI latency at {pop}")
            entry = {"count": count, "population": pop, "tools": self.cli_level(count)}
            res["cli"].append(entry)
            if self.daemon is not None:
                dpid = self.daemon.pid()
                # mcd's fork server is its one long-lived child: counted with the daemon.
                kids = [procstat.memory(k) for k in procstat.children(dpid)]
                res["daemon_mem"].append({"count": pop.get("mcd", 0), **procstat.memory(dpid),
                                          "forkserver_rss_kib": sum(k["rss_kib"] for k in kids),
                                          "forkserver_pss_kib": sum(k["pss_kib"] for k in kids)})
            if self.docker:
                dm = [procstat.memory(self.docker.pid())] + [procstat.memory(p) for p in self.docker.containerd_pids()]
                res.setdefault("docker_daemon_mem", []).append(
                    {"count": pop.get("docker", 0), "rss_kib": sum(m["rss_kib"] for m in dm),
                     "pss_kib": sum(m["pss_kib"] for m in dm), "processes": len(dm)})
            self.save()

        level()
        for mode in ("sequential", "concurrent"):
            order = tools[:]
            self.rng.shuffle(order)
            for tool in order:
                self.log(f"throughput: {n} {mode} detached starts with {tool}")
                r = self.start_many(tool, next_index[tool], n, mode == "concurrent")
                next_index[tool] += n
                res["throughput"].setdefault(tool, {})[mode] = r
                self.log(f"  {r['per_second']:.1f}/s, {r['failures']} failures")
                self.save()
            if mode == "sequential":
                self.measure_memory_and_idle(res, n)
                if n in a.counts:
                    level()
        for rt in ("runc", "crun"):
            fx.oci_teardown(self.work, rt, [] if rt == "runc" else self.holder.nsenter(), self.log)
        # Higher counts only for mcd and podman (the comparison); docker's 3 MiB shims
        # and slow starts would cost minutes here for a row nobody asked for.
        for count in sorted(c for c in a.counts if c > n):
            for tool in ["podman", *mc_tools]:
                have = self.population()[tool if tool == "podman" else "mcd"]
                if have < count:
                    self.log(f"top-up: {count - have} more {tool} containers, 10 at a time")
                    while have < count:
                        k = min(10, count - have)
                        r = self.start_many(tool, next_index[tool], k, concurrent=True)
                        next_index[tool] += k
                        have += k
                        if r["failures"]:
                            self.log(f"  top-up failures: {r['first_failure']}")
                            break
            level()

    def measure_memory_and_idle(self, res: dict, n: int) -> None:
        per_tool: dict[str, list[int]] = {"podman": self.conmon_pids()}
        if self.docker:
            per_tool["docker"] = self.docker.shim_pids()
        if self.daemon is not None:
            per_tool["mcd"] = procstat.monitor_pids(fx.MCD_ROOT)
        for tool, pids in per_tool.items():
            res["memory"][tool] = procstat.pss_sum(pids) | {"containers": self.population().get(tool, 0)}
        res["memory"]["runc"] = {"processes": procstat.count_runtime_leftovers("runc"), "pss_kib": 0,
                                 "note": "runc run -d leaves no host-side process"}
        res["memory"]["crun"] = {"processes": procstat.count_runtime_leftovers("crun"), "pss_kib": 0,
                                 "note": "crun run -d leaves no host-side process"}
        secs = self.args.idle_seconds
        self.log(f"idle cost over {secs} s")
        groups = {"conmon": per_tool["podman"]}
        if self.docker:
            groups["containerd-shim-runc-v2"] = per_tool["docker"]
            groups["dockerd"] = [self.docker.pid()]
        if self.daemon is not None:
            groups["mcd daemon"] = [self.daemon.pid()]
            groups["mcd monitors"] = per_tool["mcd"]
        res["idle"] = procstat.idle_cost(groups, secs) | {"containers": n}
        self.save()

    def conmon_pids(self) -> list[int]:
        ids = self.podman.call("ps", "-q").split()
        if not ids:
            return []
        out = self.podman.call("inspect", "--format", "{{.State.ConmonPid}}", *ids)
        return [int(x) for x in out.split() if x.isdigit() and int(x) > 0]

    # --- teardown -------------------------------------------------------------------------------------
    def teardown(self) -> None:
        self.log("teardown")
        t0 = time.perf_counter()
        left = fx.teardown_all(self.work, fx.MCD_ROOT, self.log)
        self.log(f"teardown took {time.perf_counter() - t0:.1f} s")
        if left:
            self.log(f"LEFT BEHIND: {left}")
        self.results["leftovers"] = left
        self.results["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        self.save()


def _summ(key: str, label: str, ms: list[float]) -> dict:
    from timing import Samples
    s = Samples(key, label, ms)
    return s.summary() | {"samples": ms}


def _with_ratios(samples: dict) -> dict:
    out = {k: s.summary() | {"samples": s.ms} for k, s in samples.items()}
    base = out.get("runc", {}).get("median")
    for v in out.values():
        if base and v.get("median"):
            v["ratio_to_runc"] = v["median"] / base
    return out


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "?"


def cmd_run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("harness: must run as root (namespaces, cgroups, runc)", file=sys.stderr)
        return 2
    bench = Bench(args)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    rc = 0
    try:
        bench.setup()
        sections = {"start": bench.section_start, "daemon-share": bench.section_daemon_share,
                    "exec": bench.section_exec, "population": bench.section_population}
        for name, fn in sections.items():
            if name in args.skip:
                bench.not_measured(name, "skipped by --skip")
                continue
            fn()
    except KeyboardInterrupt as err:
        bench.log(f"interrupted: {err}")
        rc = 130
    except Exception as err:                      # noqa: BLE001 - report, then still clean up
        bench.log(f"FAILED: {type(err).__name__}: {err}")
        import traceback
        bench.logf.write(traceback.format_exc())
        rc = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        bench.teardown()
    if bench.results.get("leftovers"):
        rc = rc or 1
    return rc


def cmd_cleanup(_args: argparse.Namespace) -> int:
    left = fx.teardown_all(fx.WORK, fx.MCD_ROOT)
    if left:
        print(f"harness cleanup: could not remove {left}", file=sys.stderr)
        return 1
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="harness.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", default=str(REPO / "bench/results" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())))
    r.add_argument("--rounds", type=int, default=int(os.environ.get("MCBENCH_ROUNDS", 10)))
    r.add_argument("--block", type=int, default=int(os.environ.get("MCBENCH_BLOCK", 3)))
    r.add_argument("--warmup", type=int, default=int(os.environ.get("MCBENCH_WARMUP", 3)))
    r.add_argument("--throughput-n", type=int, default=int(os.environ.get("MCBENCH_THROUGHPUT_N", 100)))
    r.add_argument("--counts", type=lambda s: [int(x) for x in s.split(",")],
                   default=[int(x) for x in os.environ.get("MCBENCH_COUNTS", "0,100,500").split(",")])
    r.add_argument("--idle-seconds", type=float, default=float(os.environ.get("MCBENCH_IDLE_SECONDS", 10)))
    r.add_argument("--seed", type=int, default=None)
    r.add_argument("--skip", default=os.environ.get("MCBENCH_SKIP", ""),
                   type=lambda s: [x for x in s.split(",") if x],
                   help="comma-separated sections to skip: start,daemon-share,exec,population")
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("cleanup")
    c.set_defaults(func=cmd_cleanup)
    return p.parse_args(argv)


if __name__ == "__main__":
    ns = parse(sys.argv[1:])
    sys.exit(ns.func(ns))
