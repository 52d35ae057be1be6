"""mcctl image ... / images / system df: the image commands (parsers and handlers).

Kept out of mcctl/__main__.py and mcctl/parser.py, which only hook these in.
"""

from __future__ import annotations

import os

IMAGE_ACTIONS = ("ls", "load", "inspect", "rm", "tag", "history", "prune", "save")


def add_image_parser(sub_add) -> None:
    """sub_add(name, help) -> the action's parser (image's own subparsers)."""
    p = sub_add("ls", "List images")
    _ls_flags(p)
    p = sub_add("load", "Load images from a docker-save archive or an OCI layout (dir or tar)")
    p.add_argument("-i", "--input", metavar="FILE", default="-",
                   help="archive file or OCI layout directory (default: stdin)")
    p.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    p = sub_add("inspect", "Show images as JSON")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p = sub_add("rm", "Remove images (a name:tag untags; the image goes with its last tag)")
    p.add_argument("-f", "--force", action="store_true",
                   help="remove an image with several tags; untag one containers use")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p = sub_add("tag", "Give an image another name")
    p.add_argument("source", metavar="IMAGE")
    p.add_argument("target", metavar="NAME[:TAG]")
    p = sub_add("history", "Show the steps an image was built in")
    p.add_argument("--no-trunc", action="store_true", help="full commands")
    p.add_argument("image", metavar="IMAGE")
    p = sub_add("prune", "Remove untagged images no container uses")
    p.add_argument("-a", "--all", action="store_true", help="every image no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (accepted)")
    p = sub_add("save", "Write images to an archive (OCI layout and docker-save in one)")
    p.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout)")
    p.add_argument("--format", choices=("both", "oci", "docker"), default="both",
                   help="index files to write (default both: every loader reads it)")
    p.add_argument("images", nargs="+", metavar="IMAGE")


def _ls_flags(p) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.add_argument("--no-trunc", action="store_true", help="full ids")


def add_images_parser(p) -> None:
    _ls_flags(p)


def add_system_parser(p) -> None:
    ssub = p.add_subparsers(dest="system_cmd", metavar="ACTION")
    ssub.required = True
    sp = ssub.add_parser("df", help="Disk usage of images, layers and containers",
                         description="Disk usage of images, layers and containers")
    sp.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def cmd_images(args, env, client):
    return _ls(args, env, client)


def _ls(args, env, client):
    from mcctl import output
    items = client.get("/v1/images")
    if args.quiet:
        seen = []
        for i in items:
            iid = i["id"] if args.no_trunc else i["short_id"]
            if iid not in seen:
                seen.append(iid)
                env.stdout.write(iid + "\n")
        return 0
    if args.format == "json":
        output.dump_json(items, env.stdout)
        return 0
    rows = []
    for i in items:
        iid = i["id"] if args.no_trunc else i["short_id"]
        created = (output.ago(i.get("created")) + " ago") if i.get("created") else ""
        names = i.get("tags") or ["<none>:<none>"]
        for t in names:
            repo, _, tag = t.rpartition(":")
            if "/" in tag:          # a registry port, not a tag
                repo, tag = t, "<none>"
            rows.append([repo, tag, iid, created, str(i.get("layers")),
                         output.size(i.get("size"))])
    output.table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "LAYERS", "SIZE"], rows,
                 env.stdout)
    return 0


def cmd_image(args, env, client):
    from mcctl import output
    act = args.image_cmd
    if act == "ls":
        return _ls(args, env, client)
    if act == "load":
        return _load(args, env, client)
    if act == "inspect":
        out = []
        for ref in args.images:
            out.append(client.get("/v1/images/inspect", ref=ref))
        output.dump_json(out, env.stdout)
        return 0
    if act == "rm":
        from mcwire.errors import MCError
        rc = 0
        for ref in args.images:
            try:
                res = client.post("/v1/images/remove", {"ref": ref, "force": bool(args.force)})
            except MCError as err:
                env.stderr.write(f"mcctl: {err}\n")
                rc = err.exit_code
                continue
            for t in res.get("untagged", []):
                env.stdout.write(f"Untagged: {t}\n")
            for d in res.get("deleted", []):
                env.stdout.write(f"Deleted: {d}\n")
        return rc
    if act == "tag":
        client.post("/v1/images/tag", {"ref": args.source, "tag": args.target})
        return 0
    if act == "history":
        rows = []
        for h in client.get("/v1/images/history", ref=args.image):
            by = h.get("created_by") or ""
            if not args.no_trunc and len(by) > 45:
                by = by[:44] + "…"
            rows.append([(h.get("layer") or "<missing>")[7:19] if h.get("layer") else "<missing>",
                         (output.ago(h.get("created")) + " ago") if h.get("created") else "",
                         by, output.size(h.get("size") or 0), h.get("comment") or ""])
        output.table(["LAYER", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows, env.stdout)
        return 0
    if act == "prune":
        res = client.post("/v1/images/prune", {"all": bool(args.all)})
        for d in res.get("deleted", []):
            env.stdout.write(f"Deleted: {d}\n")
        return 0
    if act == "save":
        return _save(args, env, client)
    raise AssertionError(f"image action {act}")


def _load(args, env, client):
    from mcctl.__main__ import UsageError
    path = args.input
    if path == "-":
        fd = os.dup(env.fd(env.stdin, 0))
        if os.isatty(fd):
            os.close(fd)
            raise UsageError("image load: stdin is a terminal; give -i FILE or pipe an archive")
    else:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise UsageError(f"image load: {path}: {err.strerror}") from None
    try:
        res = client.call("POST", "/v1/images/load", {}, fds=[fd])
    finally:
        os.close(fd)
    for n in res.get("notices", []):
        env.stderr.write(f"mcctl: notice: {n}\n")
    for img in res.get("images", []):
        if args.quiet:
            env.stdout.write(img["id"] + "\n")
        elif img.get("tags"):
            for t in img["tags"]:
                env.stdout.write(f"Loaded image: {t}\n")
        else:
            env.stdout.write(f"Loaded image ID: {img['id']}\n")
    return 0


def _save(args, env, client):
    from mcctl.__main__ import UsageError
    if args.output:
        tmp = args.output + ".mcctl-partial"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise UsageError(f"image save: {args.output}: {err.strerror}") from None
    else:
        fd = os.dup(env.fd(env.stdout, 1))
        if os.isatty(fd):
            os.close(fd)
            raise UsageError("image save: refusing to write an archive to a terminal; give -o FILE")
        tmp = None
    ok = False
    try:
        client.call("POST", "/v1/images/save", {"refs": list(args.images),
                                                "format": args.format}, fds=[fd])
        ok = True
    finally:
        os.close(fd)
        if tmp:
            if ok:
                os.rename(tmp, args.output)
            else:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
    return 0


def cmd_system(args, env, client):
    from mcctl import output
    res = client.get("/v1/system/df")
    if args.format == "json":
        output.dump_json(res, env.stdout)
        return 0
    im, ct = res.get("images", {}), res.get("containers", {})
    output.table(["TYPE", "TOTAL", "SIZE", "NOTE"], [
        ["Images", str(im.get("images", 0)), output.size(im.get("layers_size", 0)),
         f"{im.get('layers', 0)} layers, {im.get('shared_layers', 0)} shared by several images"],
        ["Layer blobs", str(im.get("layers", 0)), output.size(im.get("blobs_size", 0)),
         "kept for image save"],
        ["Containers", str(ct.get("count", 0)), output.size(ct.get("size", 0)),
         "upper dirs (what containers wrote)"],
    ], env.stdout)
    return 0


# ---------------------------------------------------------------- registries

def add_pull_parser(p) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="only the image id")
    p.add_argument("ref", metavar="NAME[:TAG|@DIGEST]")


def add_login_parser(p) -> None:
    p.add_argument("-u", "--username", metavar="USER", help="user name")
    p.add_argument("-p", "--password", metavar="PASSWORD",
                   help="password (visible in ps: prefer --password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("server", nargs="?", default="docker.io", metavar="SERVER",
                   help="registry host[:port] (default docker.io)")


def add_logout_parser(p) -> None:
    p.add_argument("server", nargs="?", default="docker.io", metavar="SERVER")


class _Bars:
    """Per-layer progress on a terminal: one line per layer, redrawn in place."""

    def __init__(self, out):
        self.out, self.order, self.state, self.start = out, [], {}, {}
        self.drawn = 0

    def update(self, ev) -> None:
        import time
        from mcctl import output
        layer = ev["layer"]
        if layer not in self.state:
            self.order.append(layer)
            self.start[layer] = time.monotonic()
        st = ev["status"]
        if st == "downloading":
            cur, total = ev.get("current", 0), ev.get("total", 0)
            secs = max(time.monotonic() - self.start[layer], 1e-3)
            text = (f"Downloading {output.size(cur)}/{output.size(total)} "
                    f"{output.size(int(cur / secs))}/s")
        elif st == "done":
            text = "Pull complete"
        else:
            text = "Already exists"
        self.state[layer] = text
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}A")
        for name in self.order:
            self.out.write(f"\r\x1b[2K{name}: {self.state[name]}\n")
        self.drawn = len(self.order)
        self.out.flush()


def pull(client, env, ref: str, quiet: bool = False) -> dict:
    """Pull with progress (bars on a terminal, one line per layer event otherwise)."""
    from mcwire.errors import MCError
    tty = not quiet and os.isatty(env.fd(env.stderr, 2))
    bars = _Bars(env.stderr) if tty else None
    resp = client.open("POST", "/v1/images/pull", {"ref": ref})
    result = None
    try:
        for ev in resp.lines():
            kind = ev.get("type")
            if kind == "error":
                raise MCError.from_wire(ev)
            if kind == "done":
                result = ev
                break
            if quiet:
                continue
            if kind == "status":
                env.stderr.write(ev.get("message", "") + "\n")
            elif kind == "layer":
                if bars:
                    bars.update(ev)
                elif ev.get("status") != "downloading":
                    what = "pull complete" if ev["status"] == "done" else "already exists"
                    env.stderr.write(f"{ev['layer']}: {what}\n")
    finally:
        resp.close()
    if result is None:
        raise MCError(f"pull {ref}: the daemon ended the stream before the result")
    return result


def cmd_pull(args, env, client):
    res = pull(client, env, args.ref, args.quiet)
    if args.quiet:
        env.stdout.write(res["id"] + "\n")
    else:
        env.stdout.write(f"Digest: {res['digest']}\nStatus: pulled {res['ref']}\n{res['id']}\n")
    return 0


def cmd_login(args, env, client):
    from mcctl.__main__ import UsageError
    user = args.username
    if not user:
        raise UsageError("login: give --username")
    if args.password_stdin:
        if args.password:
            raise UsageError("login: --password and --password-stdin cannot be used together")
        password = env.stdin.read().rstrip("\r\n")
    elif args.password is not None:
        password = args.password
    else:
        import getpass
        try:
            password = getpass.getpass("Password: ")
        except (EOFError, OSError):
            raise UsageError("login: no password (use --password-stdin)") from None
    res = client.post("/v1/auth/login", {"registry": args.server, "username": user,
                                         "password": password})
    env.stdout.write(f"{res.get('status', 'Login Succeeded')}\n")
    return 0


def cmd_logout(args, env, client):
    res = client.post("/v1/auth/logout", {"registry": args.server})
    if res.get("removed"):
        env.stdout.write(f"Removed login credentials for {res['registry']}\n")
    else:
        env.stdout.write(f"Not logged in to {res['registry']}\n")
    return 0


def has_registry(ref: str) -> bool:
    """Docker's rule: a first component with '.', ':' or 'localhost' names a registry."""
    first, sep, _ = ref.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")
