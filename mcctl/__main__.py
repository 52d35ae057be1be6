"""mcctl: main(argv, env) -> exit status.

The environment (streams, variables) is an argument, so tests run the CLI in-process.
Errors are one line on stderr, ``mcctl: ...``; --debug adds the traceback. Exit status:
the container's own for run / start -a / exec, 125 when mcd or the request failed,
126/127 when the command cannot be run / is not found.
"""

from __future__ import annotations

import os
import sys

from mcctl import DEFAULT_SOCKET
from mcwire import __version__ as VERSION

# mcctl.parser (argparse, and with it re, gettext, locale: ~9 ms) is imported only when
# mcctl.fastparse cannot read the command line itself (--help, usage errors, template and
# image subcommands...): see mcctl/fastparse.py.

# The HTTP client (sockets, io) and the error classes (mcwire.errors: ~0.35 ms) are
# imported only once a command needs the daemon, so `mcctl --version` does not pay for them.
Client = ref_path = None
MCError = DaemonUnavailable = PermissionDenied = ExitStatus = EXIT_FAILED = None
EXIT_OK = 0


def _load_client() -> None:
    global Client, ref_path, MCError, DaemonUnavailable, PermissionDenied, ExitStatus, EXIT_FAILED
    if Client is None:
        from mcctl import client as _client
        from mcwire import errors
        Client, ref_path = _client.Client, _client.ref_path
        MCError, DaemonUnavailable, PermissionDenied = (errors.MCError, errors.DaemonUnavailable,
                                                        errors.PermissionDenied)
        ExitStatus, EXIT_FAILED = errors.ExitStatus, errors.ExitStatus.FAILED


class Environment:
    def __init__(self, environ=None, stdin=None, stdout=None, stderr=None):
        self.environ = os.environ if environ is None else environ
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def fd(self, stream, default: int) -> int:
        try:
            return stream.fileno()
        except (AttributeError, ValueError, OSError):
            return default


class UsageError(Exception):
    pass


# ---------------------------------------------------------------- spec from flags

def _env_list(items: list[str], files: list[str], environ) -> list[str]:
    out = []
    for f in files:
        try:
            with open(f) as fh:
                lines = fh.read().splitlines()
        except OSError as err:
            raise UsageError(f"--env-file {f}: {err.strerror}") from None
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line if "=" in line else f"{line}={environ.get(line, '')}")
    for e in items:
        if "=" not in e:
            if e in environ:
                out.append(f"{e}={environ[e]}")
            continue
        out.append(e)
    return out


def _resources(args) -> dict:
    from mcwire.units import cpus_to_quota, parse_size
    r = {}
    if args.memory is not None:
        r["memory"] = -1 if args.memory == "-1" else parse_size(args.memory, "--memory")
    if args.memory_swap is not None:
        r["memory_swap"] = -1 if args.memory_swap == "-1" else parse_size(args.memory_swap, "--memory-swap")
    if args.cpu_shares is not None:
        r["cpu_shares"] = args.cpu_shares
    if args.cpus is not None:
        if args.cpu_quota is not None:
            raise UsageError("--cpus and --cpu-quota cannot be used together")
        r["cpu_quota"], r["cpu_period"] = cpus_to_quota(args.cpus, args.cpu_period or 100000)
    if args.cpu_quota is not None:
        r["cpu_quota"] = args.cpu_quota
    if args.cpu_period is not None:
        r["cpu_period"] = args.cpu_period
    if args.cpuset_cpus is not None:
        r["cpuset_cpus"] = args.cpuset_cpus
    if args.pids_limit is not None:
        r["pids_limit"] = args.pids_limit
    return r


def _networking(args) -> dict:
    """--network and friends; each value checked here, before anything is sent."""
    from mcwire.units import _ipv4, parse_add_host, parse_publish
    out = {}
    if args.network:
        out["mode"] = args.network
    if args.publish:
        out["ports"] = [parse_publish(p) for p in args.publish]
    if getattr(args, "publish_all", False):
        out["publish_all"] = True
    if args.ip:
        out["ip"] = _ipv4(args.ip, "--ip")
    if args.dns:
        out["dns"] = [_ipv4(d, "--dns") for d in args.dns]
    if args.add_host:
        out["extra_hosts"] = [parse_add_host(h) for h in args.add_host]
    if args.network_alias:
        out["aliases"] = list(args.network_alias)
    return out


def build_spec(args, environ) -> dict:
    """The ContainerSpec (as a dict) for run/create. Each flag is checked as it is read;
    the whole spec is checked by the daemon (see validate_spec for when there is none)."""
    from mcwire.units import (DEFAULT_NAMESPACES, parse_tmpfs, parse_user,
                           parse_volume, resolve_capabilities)
    # Only what the user said: the daemon fills in the image's defaults (or a template's:
    # sh and PATH), see mcd.images.config.
    process = {"env": _env_list(args.env, args.env_file, environ),
               "terminal": bool(args.tty),
               "capabilities": resolve_capabilities(args.cap_add, args.cap_drop)}
    if args.command:
        process["args"] = args.command
    if args.entrypoint is not None:
        process["entrypoint"] = [args.entrypoint] if args.entrypoint else []
    if args.workdir:
        process["cwd"] = args.workdir
    if args.user:
        process["user"] = parse_user(args.user)
    namespaces = list(DEFAULT_NAMESPACES)
    networking = _networking(args)
    if networking.get("mode") == "host":
        namespaces.remove("network")
    linux = {"namespaces": namespaces, "resources": _resources(args)}
    if args.userns:
        namespaces.append("user")
        linux["uid_mappings"] = [{"container_id": 0, "host_id": 100000, "size": 65536}]
        linux["gid_mappings"] = [{"container_id": 0, "host_id": 100000, "size": 65536}]
    for opt in args.security_opt:
        if opt in ("seccomp=unconfined", "seccomp:unconfined"):
            linux["seccomp"] = "unconfined"
        elif opt in ("no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"):
            process["no_new_privileges"] = True
        else:
            raise UsageError(f"--security-opt: unsupported option {opt!r} (seccomp=unconfined)")
    mounts = [parse_volume(v) for v in args.volume] + [parse_tmpfs(t) for t in args.tmpfs]
    labels = {}
    for lab in args.label:
        k, _, v = lab.partition("=")
        labels[k] = v
    spec = {"process": process, "root": {"image": args.template, "readonly": bool(args.read_only)},
            "mounts": mounts, "linux": linux, "restart_policy": args.restart, "labels": labels}
    if networking:
        spec["networking"] = networking
    if args.name:
        spec["name"] = args.name
    if args.hostname:
        spec["hostname"] = args.hostname
    if args.stop_timeout is not None:
        spec["stop_timeout"] = args.stop_timeout
    if args.stop_signal:
        spec["stop_signal"] = args.stop_signal
    return spec


def validate_spec(spec: dict) -> None:
    """The daemon's own rules (mcwire.spec, the spec both sides share), raising InvalidArgument.

    The daemon applies them to every create before it changes anything, and its error
    message is the same text, so `run` does not pay ~25 ms importing them on every call:
    they run here only when the daemon cannot be reached, so that bad input is still
    named first, as it would be with the daemon up."""
    from mcwire.spec import ContainerSpec
    process = {k: v for k, v in spec.get("process", {}).items() if k != "entrypoint"}
    process.setdefault("args", ["sh"])      # the image's command is not known here
    root = {k: v for k, v in spec.get("root", {}).items() if k != "image"}
    ContainerSpec.from_dict({**spec, "process": process, "root": root,
                             "name": spec.get("name", "x"), "hostname": spec.get("hostname", "x")})


def _sending(spec: dict, send):
    try:
        return send()
    except (DaemonUnavailable, PermissionDenied) as err:
        if not err.received:        # not the daemon's answer: it could not be reached
            validate_spec(spec)
        raise


# ---------------------------------------------------------------- attach

def _exit_message(res: dict, name: str, env: Environment) -> int:
    from mcctl.output import size
    code = res.get("exit_code")
    if res.get("oom_killed"):
        env.stderr.write(f'mcctl: container "{name}" was killed: out of memory '
                         f"(limit {size(res.get('memory_limit'))}, peak {size(res.get('memory_peak'))})\n")
        env.stderr.flush()
        return 137 if code is None else code
    if code is None:
        if res.get("error"):
            env.stderr.write(f'mcctl: container "{name}": {res["error"]}\n')
        return EXIT_FAILED
    return code


def _attach(client: Client, method: str, path: str, body, query, env: Environment, *,
            tty: bool, interactive: bool, sig_proxy_ref: str | None = None) -> int:
    fds = [] if tty else [env.fd(env.stdin, 0), env.fd(env.stdout, 1), env.fd(env.stderr, 2)]
    for s in (env.stdout, env.stderr):
        try:
            s.flush()
        except (AttributeError, ValueError):
            pass
    resp = client.open(method, path, body, query, fds=fds)
    try:
        lines = resp.lines()
        first = next(lines, None)
        if first is None or first.get("type") != "attached":
            raise MCError("the daemon ended the attach stream early")
        name = first.get("name") or sig_proxy_ref or ""
        received = list(resp.fds)

        def finished():
            for msg in lines:
                if msg.get("type") == "exit":
                    return msg
            raise MCError(f'container "{name}": the daemon closed the stream before the exit status')

        if received:
            from mcctl import tty as ttymod
            master = received[0]
            for extra in received[1:]:
                os.close(extra)
            try:
                res = ttymod.interact(master, finished, stdin_fd=env.fd(env.stdin, 0),
                                      stdout_fd=env.fd(env.stdout, 1), interactive=interactive)
            finally:
                os.close(master)
        else:
            import _signal as signal      # signal.py's enums cost ~1.5 ms; ints do here
            old = {}
            target = first.get("id") or sig_proxy_ref
            if target:
                # Like docker's --sig-proxy: signals to the client go to the container.
                def proxy(signum, _frame):
                    try:
                        client.post(ref_path(target) + "/kill", signal=str(signum))
                    except MCError:
                        pass
                try:
                    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                        old[s] = signal.signal(s, proxy)
                except ValueError:
                    pass     # not the main thread (main() run in-process by a test)
            try:
                res = finished()
            finally:
                for s, h in old.items():
                    signal.signal(s, h)
        return _exit_message(res, name, env)
    finally:
        resp.close()


# ---------------------------------------------------------------- commands

def _console_size(env) -> list:
    """[rows, cols] of our terminal, for -t: the container's pty gets it before exec."""
    import fcntl
    import struct
    import termios
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(env.fd(env.stdin, 0), termios.TIOCGWINSZ,
                                                             b"\0" * 8))
    except OSError:
        return []
    return [rows, cols] if rows and cols else []


def cmd_run(args, env, client, *, create_only=False):
    spec = build_spec(args, env.environ)
    if args.tty:
        size = _console_size(env)
        if size:
            spec["process"]["console_size"] = size
    if create_only or args.detach:
        body = {"spec": spec, "rm": bool(args.rm)}
        if not create_only:
            body["start"] = True
        res = _pulling(args, env, client,
                       lambda: _sending(spec, lambda: client.post("/v1/containers", body)))
        env.stdout.write(res["id"] + "\n")
        return EXIT_OK
    if args.tty and not os.isatty(env.fd(env.stdin, 0)):
        env.stderr.write("mcctl: warning: -t given but stdin is not a terminal\n")
    body = {"spec": spec, "attach": True, "rm": bool(args.rm), "stdin": bool(args.interactive)}
    return _pulling(args, env, client, lambda: _sending(
        spec, lambda: _attach(client, "POST", "/v1/containers", body, None, env,
                              tty=bool(args.tty), interactive=bool(args.interactive))))


def _pulling(args, env, client, send):
    """--pull: always pulls first; missing (Docker's default) pulls when the daemon has no
    such image and the reference names a registry (or --pull was given); never does not."""
    images = _images()
    mode = args.pull
    if mode == "always":
        images.pull(client, env, args.template)
        return send()
    try:
        return send()
    except MCError as err:
        if (err.code != "NOT_FOUND" or not str(err).startswith("no such image")
                or mode == "never" or not (mode == "missing" or images.has_registry(args.template))):
            raise
    images.pull(client, env, args.template)
    return send()


def _each(args, env, fn, print_name=True):
    rc = EXIT_OK
    for ref in args.containers:
        try:
            fn(ref)
            if print_name:
                env.stdout.write(ref + "\n")
        except MCError as err:
            if getattr(args, "debug", False):
                import traceback
                traceback.print_exc(file=env.stderr)
            env.stderr.write(f"mcctl: {err}\n")
            rc = err.exit_code
    return rc


def cmd_start(args, env, client):
    if args.attach:
        if len(args.containers) != 1:
            raise UsageError("start -a takes exactly one container")
        ref = args.containers[0]
        info = client.get(ref_path(ref))
        tty = bool((info.get("spec") or {}).get("process", {}).get("terminal"))
        return _attach(client, "POST", ref_path(ref) + "/start",
                       None, {"attach": True, "stdin": bool(args.interactive)}, env,
                       tty=tty, interactive=bool(args.interactive) or tty, sig_proxy_ref=ref)
    return _each(args, env, lambda r: client.post(ref_path(r) + "/start"))


def cmd_stop(args, env, client):
    return _each(args, env, lambda r: client.post(ref_path(r) + "/stop", t=args.time))


def cmd_restart(args, env, client):
    return _each(args, env, lambda r: client.post(ref_path(r) + "/restart", t=args.time))


def cmd_kill(args, env, client):
    return _each(args, env, lambda r: client.post(ref_path(r) + "/kill", signal=args.signal))


def cmd_rm(args, env, client):
    return _each(args, env, lambda r: client.delete(ref_path(r), force=bool(args.force)))


def cmd_pause(args, env, client):
    return _each(args, env, lambda r: client.post(ref_path(r) + "/pause"))


def cmd_unpause(args, env, client):
    return _each(args, env, lambda r: client.post(ref_path(r) + "/unpause"))


def cmd_ps(args, env, client):
    from mcctl import output
    items = client.get("/v1/containers", all=bool(args.all))
    if args.quiet:
        for c in items:
            env.stdout.write((c["id"] if args.no_trunc else c["short_id"]) + "\n")
        return EXIT_OK
    if args.format == "json":
        output.dump_json(items, env.stdout)
        return EXIT_OK
    rows = []
    now = output.utc_now() if items else None
    for c in items:
        cmd = c.get("command") or ""
        rows.append([c["id"] if args.no_trunc else c["short_id"], c.get("template") or "-",
                     cmd if args.no_trunc else output.truncate(cmd, 24),
                     (output.ago(c.get("created_at"), now) + " ago") if c.get("created_at") else "",
                     output.status_text(c, now),
                     ", ".join(_port_text(m) for m in c.get("ports") or []), c["name"]])
    output.table(["CONTAINER ID", "TEMPLATE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAME"],
                 rows, env.stdout)
    return EXIT_OK


def _port_text(m: dict) -> str:
    return f"{m.get('hostIP', '0.0.0.0')}:{m['hostPort']}->{m['containerPort']}/{m['protocol']}"


def cmd_port(args, env, client):
    info = client.get(ref_path(args.container))
    ports = (info.get("network_settings") or {}).get("ports") or []
    want = None
    if args.private_port:
        num, _, proto = args.private_port.partition("/")
        if not num.isdigit():
            raise UsageError(f"port: {args.private_port!r} is not PORT[/PROTO]")
        want = (int(num), proto or "tcp")
    shown = 0
    for m in ports:
        if want is not None:
            if (m["containerPort"], m["protocol"]) == want:
                env.stdout.write(f"{m.get('hostIP', '0.0.0.0')}:{m['hostPort']}\n")
                shown += 1
            continue
        env.stdout.write(f"{m['containerPort']}/{m['protocol']} -> "
                         f"{m.get('hostIP', '0.0.0.0')}:{m['hostPort']}\n")
    if want is not None and not shown:
        raise UsageError(f'container "{args.container}": no public port {want[0]}/{want[1]} '
                         f'published')
    return EXIT_OK


def cmd_network(args, env, client):
    from mcctl import output
    from mcctl.client import quote
    sub = args.network_cmd
    if sub == "create":
        labels = {}
        for lab in args.label:
            k, _, v = lab.partition("=")
            labels[k] = v
        body = {"name": args.name, "internal": bool(args.internal)}
        if args.subnet:
            body["subnet"] = args.subnet
        if args.gateway:
            body["gateway"] = args.gateway
        if labels:
            body["labels"] = labels
        res = client.post("/v1/networks", body)
        env.stdout.write(res.get("id", args.name) + "\n")
        return EXIT_OK
    if sub == "ls":
        items = client.get("/v1/networks")
        if args.quiet:
            for n in items:
                env.stdout.write(n["name"] + "\n")
        elif args.format == "json":
            output.dump_json(items, env.stdout)
        else:
            output.table(["NETWORK ID", "NAME", "DRIVER", "SUBNET", "GATEWAY", "INTERNAL",
                          "CONTAINERS", "SOURCE"],
                         [[n["id"][:12], n["name"], n.get("driver") or "-", n.get("subnet") or "-",
                           n.get("gateway") or "-", "yes" if n.get("internal") else "no",
                           len(n.get("containers") or []), n.get("source", "")] for n in items],
                         env.stdout)
        return EXIT_OK
    rc, out = EXIT_OK, []
    if sub == "prune":
        res = client.post("/v1/networks/prune")
        for name in res.get("removed", []):
            env.stdout.write(name + "\n")
        return EXIT_OK
    for name in args.names:
        try:
            if sub == "inspect":
                out.append(client.get("/v1/networks/" + quote(name)))
            else:
                client.delete("/v1/networks/" + quote(name))
                env.stdout.write(name + "\n")
        except MCError as err:
            env.stderr.write(f"mcctl: {err}\n")
            rc = err.exit_code
    if sub == "inspect":
        output.dump_json(out, env.stdout)
    return rc


def cmd_inspect(args, env, client):
    from mcctl import output
    out, rc = [], EXIT_OK
    for ref in args.containers:
        try:
            out.append(client.get(ref_path(ref)))
        except MCError as err:
            env.stderr.write(f"mcctl: {err}\n")
            rc = err.exit_code
    output.dump_json(out, env.stdout)
    return rc


def cmd_logs(args, env, client):
    resp = client.open("GET", ref_path(args.container) + "/logs",
                       query={"follow": bool(args.follow), "tail": args.tail,
                              "timestamps": bool(args.timestamps)})
    try:
        for e in resp.lines():
            text = e.get("log", "")
            if args.timestamps and e.get("time"):
                text = f"{e['time']} {text}"
            stream = env.stderr if e.get("stream") == "stderr" else env.stdout
            stream.write(text)
            stream.flush()
    finally:
        resp.close()
    return EXIT_OK


def cmd_exec(args, env, client):
    if not args.command:
        raise UsageError("exec needs a command")
    from mcwire.units import parse_user
    process = {"args": args.command, "terminal": bool(args.tty)}
    if args.env:
        process["env"] = _env_list(args.env, [], env.environ)
    if args.workdir:
        process["cwd"] = args.workdir
    if args.user:
        process["user"] = parse_user(args.user)
    if args.tty:
        size = _console_size(env)
        if size:
            process["console_size"] = size
    path = ref_path(args.container) + "/exec"
    if args.detach:
        res = client.post(path, {"process": process, "detach": True})
        env.stdout.write(f"{res.get('pid')}\n")
        return EXIT_OK
    return _attach(client, "POST", path, {"process": process, "stdin": bool(args.interactive)},
                   None, env, tty=bool(args.tty), interactive=bool(args.interactive) or bool(args.tty))


def cmd_wait(args, env, client):
    rc = EXIT_OK
    for ref in args.containers:
        try:
            res = client.post(ref_path(ref) + "/wait")
            env.stdout.write(f"{res.get('exit_code')}\n")
        except MCError as err:
            env.stderr.write(f"mcctl: {err}\n")
            rc = err.exit_code
    return rc


def _stats_rows(items, prev, now):
    from mcctl import output
    rows = []
    for s in items:
        cpu = "--"
        p = prev.get(s["id"])
        if p and s.get("cpu_usage_ns") is not None and p[1].get("cpu_usage_ns") is not None:
            dt = now - p[0]
            if dt > 0:
                cpu = f"{(s['cpu_usage_ns'] - p[1]['cpu_usage_ns']) / (dt * 1e9) * 100:.2f}%"
        mem, lim = s.get("memory_current"), s.get("memory_limit")
        memp = f"{mem / lim * 100:.2f}%" if mem is not None and lim else "--"
        rows.append([s["id"][:12], s.get("name", ""), cpu,
                     f"{output.size(mem)} / {output.size(lim) if lim else 'unlimited'}", memp,
                     s.get("pids_current", "--")])
    return rows


def cmd_stats(args, env, client):
    import time
    from mcctl import output

    def sample():
        if args.containers:
            return [client.get(ref_path(r) + "/stats") for r in args.containers]
        return client.get("/v1/stats")

    heads = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"]
    first = sample()
    t0 = time.monotonic()
    if args.no_stream and args.format == "json":
        output.dump_json(first, env.stdout)
        return EXIT_OK
    time.sleep(0.5)      # CPU % needs two samples, as docker stats does
    prev = {s["id"]: (t0, s) for s in first}
    while True:
        cur = sample()
        now = time.monotonic()
        if args.format == "json":
            output.dump_json(cur, env.stdout)
        else:
            if not args.no_stream and hasattr(env.stdout, "isatty") and env.stdout.isatty():
                env.stdout.write("\x1b[2J\x1b[H")
            output.table(heads, _stats_rows(cur, prev, now), env.stdout)
        env.stdout.flush()
        if args.no_stream:
            return EXIT_OK
        prev = {s["id"]: (now, s) for s in cur}
        time.sleep(1)


def cmd_top(args, env, client):
    from mcctl import output
    res = client.get(ref_path(args.container) + "/top")
    output.table(res["titles"], res["processes"], env.stdout)
    return EXIT_OK


def cmd_update(args, env, client):
    res = _resources(args)
    if not res and not args.restart:
        raise UsageError("update: give at least one limit or --restart (e.g. -m 128m, --cpus 1)")
    body = {"resources": res}
    if args.restart:
        from mcwire.units import parse_restart_policy
        parse_restart_policy(args.restart)
        body["restart_policy"] = args.restart
    return _each(args, env, lambda r: client.post(ref_path(r) + "/update", body))


def cmd_rename(args, env, client):
    client.post(ref_path(args.container) + "/rename", name=args.new_name)
    return EXIT_OK


def cmd_prune(args, env, client):
    res = client.post("/v1/containers/prune")
    for cid in res.get("removed", []):
        env.stdout.write(cid + "\n")
    env.stdout.write(f"Removed {len(res.get('removed', []))} container(s)\n")
    return EXIT_OK


def _order_hint(action: str, order: str, first: str, second: str, is_source) -> str:
    """When the source cannot be opened but the second argument could be one, the
    arguments were most likely swapped: say which order the command takes."""
    if not is_source(second):
        return ""
    import shlex
    return f"; the order is {order}: mcctl template {action} {shlex.quote(second)} {shlex.quote(first)}"


def _template_notice(res: dict, action: str, env) -> None:
    """The daemon's one-line notice (e.g. the device nodes an import skipped), on stderr
    so that stdout stays the template's name."""
    if isinstance(res, dict) and res.get("notice"):
        env.stderr.write(f"mcctl: template {action} {res.get('name', '')}: {res['notice']}\n")


def cmd_template(args, env, client):
    from mcctl import output
    from mcctl.client import quote
    if args.template_cmd == "ls":
        items = client.get("/v1/templates")
        if args.quiet:
            for t in items:
                env.stdout.write(t.get("name", "") + "\n")
        elif args.format == "json":
            output.dump_json(items, env.stdout)
        else:
            output.table(["NAME", "SIZE", "CREATED", "SOURCE"],
                         [[t.get("name"), output.size(t.get("size")),
                           (output.ago(t.get("created")) + " ago") if t.get("created") else "",
                           t.get("source", "")] for t in items], env.stdout)
        return EXIT_OK
    if args.template_cmd == "import":
        if args.file == "-":
            # The daemon needs a seekable file: spool stdin into an unlinked temp file.
            import shutil
            import tempfile
            tmp = tempfile.TemporaryFile()
            with os.fdopen(os.dup(env.fd(env.stdin, 0)), "rb") as src:
                shutil.copyfileobj(src, tmp)
            tmp.flush()
            fd = os.dup(tmp.fileno())
            tmp.close()
        else:
            try:
                fd = os.open(args.file, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as err:
                raise UsageError(f"template import: {args.file}: {err.strerror}"
                                 + _order_hint("import", "FILE NAME", args.file, args.name,
                                              os.path.isfile)) from None
        try:
            res = client.call("POST", "/v1/templates/import", {"name": args.name}, fds=[fd])
        finally:
            os.close(fd)
        _template_notice(res, "import", env)
        env.stdout.write(res.get("name", args.name) + "\n")
        return EXIT_OK
    if args.template_cmd == "create":
        try:
            fd = os.open(args.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise UsageError(f"template create: {args.directory}: {err.strerror}"
                             + _order_hint("create", "DIR NAME", args.directory, args.name,
                                          os.path.isdir)) from None
        try:
            res = client.call("POST", "/v1/templates",
                              {"name": args.name, "path": os.path.abspath(args.directory)}, fds=[fd])
        finally:
            os.close(fd)
        _template_notice(res, "create", env)
        env.stdout.write(res.get("name", args.name) + "\n")
        return EXIT_OK
    rc = EXIT_OK
    for n in args.names:
        try:
            client.delete("/v1/templates/" + quote(n))
            env.stdout.write(n + "\n")
        except MCError as err:
            env.stderr.write(f"mcctl: {err}\n")
            rc = err.exit_code
    return rc


def cmd_info(args, env, client):
    from mcctl import output
    info = client.get("/v1/info")
    if args.format == "json":
        output.dump_json(info, env.stdout)
        return EXIT_OK
    c = info.get("containers", {})
    cg = info.get("cgroup") or {}
    lines = [
        ("Server Version", info.get("version")), ("API Version", info.get("api_version")),
        ("Containers", c.get("total")), (" Running", c.get("running")),
        (" Paused", c.get("paused")), (" Stopped", c.get("stopped")), (" Created", c.get("created")),
        (" Broken", c.get("broken")), ("Templates", info.get("templates")),
        ("Cgroup Mode", cg.get("mode")), ("Cgroup Parent", info.get("cgroup_parent")),
        ("Controllers", ", ".join(cg.get("controllers", []) or []) if isinstance(cg.get("controllers"), list) else cg.get("controllers")),
        ("Storage Driver", (info.get("drivers") or {}).get("storage")),
        ("Logging Driver", (info.get("drivers") or {}).get("logging")),
        ("Kernel Version", info.get("kernel")), ("Python", info.get("python")),
        ("Root Dir", info.get("root")), ("Socket", info.get("socket")),
        ("Dashboard", info.get("web_listen")),
    ]
    for k, v in lines:
        env.stdout.write(f"{k}: {'' if v is None else v}\n")
    return EXIT_OK


def cmd_dashboard(args, env, client):
    """The token never crosses the API: read it from the daemon's root ourselves."""
    info = client.get("/v1/info")
    listen = info.get("web_listen")
    if not listen or listen == "off":
        raise UsageError("the dashboard is off (mcd --web-listen ADDR:PORT)")
    path = os.path.join(info.get("root") or "/var/lib/mcd", "dashboard.token")
    try:
        with open(path) as f:
            token = f.read().strip()
    except PermissionError:
        raise UsageError(f"reading {path}: permission denied (needs root or group mcd)") from None
    except OSError as err:
        raise UsageError(f"reading {path}: {err.strerror}") from None
    env.stdout.write(f"http://{listen}/#token={token}\n")
    return EXIT_OK


def cmd_version(args, env, client):
    from mcctl import output
    try:
        server = client.get("/v1/version")
    except MCError as err:
        server = {"error": str(err)}
    if args.format == "json":
        output.dump_json({"client": {"version": VERSION}, "server": server}, env.stdout)
    else:
        env.stdout.write(f"Client:\n Version: {VERSION}\nServer:\n")
        if "error" in server:
            env.stdout.write(f" Error: {server['error']}\n")
        else:
            for k in ("version", "api_version", "python", "kernel", "arch"):
                env.stdout.write(f" {k.replace('_', ' ').capitalize()}: {server.get(k)}\n")
    return EXIT_FAILED if "error" in server else EXIT_OK


def _images():
    from mcctl import images
    return images


COMMANDS = {
    "run": cmd_run, "create": lambda a, e, c: cmd_run(a, e, c, create_only=True),
    "start": cmd_start, "stop": cmd_stop, "restart": cmd_restart, "kill": cmd_kill,
    "rm": cmd_rm, "destroy": cmd_rm, "ps": cmd_ps, "inspect": cmd_inspect, "logs": cmd_logs,
    "exec": cmd_exec, "wait": cmd_wait, "stats": cmd_stats, "top": cmd_top, "update": cmd_update,
    "pause": cmd_pause, "unpause": cmd_unpause, "rename": cmd_rename, "prune": cmd_prune,
    "port": cmd_port, "network": cmd_network,
    "template": cmd_template, "image": lambda a, e, c: _images().cmd_image(a, e, c),
    "images": lambda a, e, c: _images().cmd_images(a, e, c),
    "system": lambda a, e, c: _images().cmd_system(a, e, c),
    "pull": lambda a, e, c: _images().cmd_pull(a, e, c),
    "login": lambda a, e, c: _images().cmd_login(a, e, c),
    "logout": lambda a, e, c: _images().cmd_logout(a, e, c), "info": cmd_info, "dashboard": cmd_dashboard, "version": cmd_version,
}


def main(argv=None, env: Environment | None = None) -> int:
    env = env or Environment()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:      # what argparse's --version (mcctl.parser._Version) prints
        env.stdout.write(f"mcctl {VERSION}\n")
        return EXIT_OK
    from mcctl.fastparse import parse
    args = parse(argv)
    if args is None:
        from mcctl.parser import build_parser, command_in
        only = command_in(argv)
        if only is None and "--version" in argv and not {"-h", "--help"} & set(argv):
            only = "version"     # --version needs no subcommand tree
        parser = build_parser(only if only in COMMANDS else None)
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:        # argparse: usage errors are exit 125 in Docker's convention
            if e.code == 0:
                return EXIT_OK         # --help, --version
            _load_client()
            return EXIT_FAILED
    _load_client()
    sock = args.socket or env.environ.get("MCD_SOCKET") or DEFAULT_SOCKET
    client = Client(sock)
    try:
        return COMMANDS[args.cmd](args, env, client)
    except MCError as err:
        # The daemon's error (its class and exit status come from its code), or ours.
        if args.debug:
            import traceback
            traceback.print_exc(file=env.stderr)
        env.stderr.write(f"mcctl: {err}\n")
        return err.exit_code
    except UsageError as err:
        env.stderr.write(f"mcctl: {err}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        env.stderr.write("\n")
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as err:
        # Anything unexpected: one line.
        if args.debug:
            import traceback
            traceback.print_exc(file=env.stderr)
        env.stderr.write(f"mcctl: {err}\n")
        return EXIT_FAILED


def entry() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        code = 0
    except KeyboardInterrupt:       # Ctrl-C before main() could catch it: no traceback
        from mcwire.errors import ExitStatus
        code = ExitStatus.INTERRUPTED
    try:
        sys.stderr.flush()
    except OSError:
        pass
    # Everything is written and every request closed: skip the interpreter's teardown
    # (freeing every module), 6-10 ms of each short mcctl call.
    os._exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    entry()
