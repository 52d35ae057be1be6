"""An image's config applied to a container spec, as Docker applies it.

The create request names what to run from in ``spec.root.image`` (a reference or an
ID) and carries only what the user said: ``process.args`` (the CMD part),
``process.entrypoint`` (--entrypoint), ``process.env`` (-e only), ``cwd``, ``user``,
``stop_signal``, ``labels``. ``prepare`` turns that into a full spec:

    entrypoint  --entrypoint, else the image's Entrypoint
    args        the user's CMD, else the image's Cmd -- unless --entrypoint was given,
                which drops the image's Cmd, as in Docker; entrypoint + args is run
    env         the image's Env, then -e by key; PATH added when neither has one
    cwd         -w, else WorkingDir, else /
    user        -u, else User (a name is looked up in the image's /etc/passwd, /etc/group)
    stop_signal --stop-signal, else StopSignal
    labels      the image's Labels, then -l by key

A name that is an existing template (``minimal``, imported ones) and no image's tag
runs from that template as before, with the template defaults (sh, PATH).

Returns the spec and the provenance recorded in the container's config (``image``):
the image ID and the reference asked for, which fields came from the image, and the
image's ExposedPorts (for -P).
"""

from __future__ import annotations

import os
import signal
import stat

from mcd.errors import InvalidArgument, NotFound
from mcd.images import reference
from mcwire.spec import NAME_RE
from mcwire.units import DEFAULT_ENV

TEMPLATE_LABEL = "org.minicontainer.template"      # mcd.images.templates.LABEL


def _env_merge(base: list[str], over: list[str]) -> list[str]:
    out: dict[str, str] = {}
    for item in list(base) + list(over):
        k, _, _ = item.partition("=")
        out.pop(k, None)            # the later one wins, at its own position
        out[k] = item
    return list(out.values())


def is_template(name: str, templates) -> bool:
    """A bare name that is a template (minimal, or one imported or created) names that
    template, even when an image is tagged the same: templates came first, and an image
    loaded or tagged 'minimal' must not change what `run minimal` runs."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or templates is None:
        return False
    return name == "minimal" or templates.exists(name)


def _template_image(name, templates) -> str | None:
    """The image a template name runs when templates are images (``minimal`` built on
    first use); None for an old template tree not migrated (it runs as before) or when
    ``templates`` is the bare tree store."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) \
            or not hasattr(templates, "image_id") or templates.unmigrated(name):
        return None
    return templates.image_id(name)


def prepare(spec_data: dict, templates, images) -> tuple[dict, dict | None]:
    """(spec for ContainerSpec.from_dict, image provenance or None). Raises NotFound
    for an unknown image, InvalidArgument when no command results."""
    root = spec_data.get("root")
    if not isinstance(root, dict) or not root.get("image"):
        proc = spec_data.get("process")
        if isinstance(proc, dict) and "entrypoint" in proc:
            proc = dict(proc)
            ep = proc.pop("entrypoint") or []
            proc["args"] = list(ep) + list(proc.get("args") or [])
            spec_data = dict(spec_data, process=proc)
        # root.template (or none: minimal): the template's image, when templates are
        # images (mcd.images.templates); the process stays as given.
        name = root.get("template", "minimal") if isinstance(root, dict) else "minimal"
        if root is None or isinstance(root, dict):
            image_id = _template_image(name, templates)
            if image_id is not None:
                root = dict(root or {})
                root.pop("template", None)
                root["image"] = image_id
                return dict(spec_data, root=root), {"id": image_id, "ref": name,
                                                    "from_image": [], "exposed_ports": []}
        return spec_data, None
    ref = root["image"]
    if not isinstance(ref, str):
        raise InvalidArgument("root.image: expected an image reference or id")
    if not isinstance(spec_data.get("process", {}), dict):
        raise InvalidArgument("ContainerSpec.process: expected an object")
    spec_data = dict(spec_data)
    root = dict(root)
    proc = dict(spec_data.get("process") or {})
    entrypoint = proc.pop("entrypoint", None)
    if entrypoint is not None and (not isinstance(entrypoint, list)
                                   or not all(isinstance(a, str) for a in entrypoint)):
        raise InvalidArgument("process.entrypoint: expected a list of strings")
    user_env = proc.get("env") or []
    image_id = None
    if images is not None and not is_template(ref, templates):
        try:
            image_id = images.resolve(ref)
        except NotFound as err:
            if not is_template(ref, templates):
                if NAME_RE.fullmatch(ref):
                    raise NotFound(f"{err} (and no template {ref!r})") from None
                raise
        except InvalidArgument:
            if not is_template(ref, templates):
                raise
    elif is_template(ref, templates):
        # Templates are images (mcd.images.templates): the template's own image, built
        # first for minimal; None for an old tree not migrated (it runs as below).
        image_id = _template_image(ref, templates)
    if image_id is None:
        if not is_template(ref, templates):
            raise NotFound(f"no such image or template: {ref}")
        # A template, with the defaults templates always had.
        root.pop("image")
        root["template"] = ref
        args = (entrypoint or []) + list(proc.get("args") or ([] if entrypoint else ["sh"]))
        proc["args"] = args
        proc["env"] = _env_merge(DEFAULT_ENV, user_env)
        spec_data.update(root=root, process=proc)
        return spec_data, None

    cfg = images.config(image_id).get("config") or {}
    from_image = []
    img_ep = _str_list(cfg.get("Entrypoint"), "Entrypoint", ref)
    img_cmd = _str_list(cfg.get("Cmd"), "Cmd", ref)
    if entrypoint is not None:
        ep = entrypoint
        cmd = list(proc.get("args") or [])
    else:
        ep = list(img_ep)
        if ep:
            from_image.append("entrypoint")
        cmd = list(proc.get("args") or [])
        if not cmd and img_cmd:
            cmd = list(img_cmd)
            from_image.append("cmd")
    args = ep + cmd
    if not args:
        raise InvalidArgument(f"image {ref}: no command given and the image has no "
                              f"Entrypoint or Cmd")
    proc["args"] = args
    img_env = [e for e in (cfg.get("Env") or []) if isinstance(e, str) and "=" in e]
    env = _env_merge(img_env, user_env)
    if img_env:
        from_image.append("env")
    if not any(e.startswith("PATH=") for e in env):
        env = DEFAULT_ENV + env
    proc["env"] = env
    if not proc.get("cwd") and cfg.get("WorkingDir"):
        wd = cfg["WorkingDir"]
        proc["cwd"] = wd if wd.startswith("/") else "/" + wd
        from_image.append("workdir")
    if "user" not in proc and cfg.get("User"):
        proc["user"] = resolve_user(cfg["User"], images.lowers(image_id), ref)
        from_image.append("user")
    if not spec_data.get("stop_signal") and cfg.get("StopSignal"):
        spec_data["stop_signal"] = _signal_name(cfg["StopSignal"], ref)
        from_image.append("stop_signal")
    labels = cfg.get("Labels") or {}
    is_template_image = labels.get(TEMPLATE_LABEL) == ref
    # The template label marks the image, not its containers (a template's containers had
    # no labels but their own, and a root.template request gets none either).
    labels = {k: v for k, v in labels.items() if k != TEMPLATE_LABEL}
    if labels:
        spec_data["labels"] = {**{str(k): str(v) for k, v in labels.items()},
                               **(spec_data.get("labels") or {})}
        from_image.append("labels")
    root.pop("template", None)
    root["image"] = image_id
    spec_data.update(root=root, process=proc)
    parsed = reference.parse(ref) if _parses(ref) and not ref.startswith("sha256:") else None
    name = parsed.familiar() if parsed and not reference.looks_like_id(ref) else ref
    if parsed and reference.looks_like_id(ref):
        tags = images.tags_of(image_id)
        name = parsed.familiar() if parsed.familiar() in tags else image_id[7:19]
    if is_template_image:
        name = ref          # a template runs under its name, as before (ps: minimal)
    meta = {"id": image_id, "ref": name, "from_image": from_image,
            "exposed_ports": sorted((cfg.get("ExposedPorts") or {}).keys())}
    return spec_data, meta


def _str_list(value, key: str, ref: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise InvalidArgument(f"image {ref}: config {key} is not a list of strings")
    return list(value)


def _parses(ref: str) -> bool:
    try:
        reference.parse(ref)
        return True
    except InvalidArgument:
        return False


def _signal_name(value, ref: str) -> str:
    text = str(value).strip().upper()
    if text.isdigit():
        try:
            return signal.Signals(int(text)).name
        except ValueError:
            raise InvalidArgument(f"image {ref}: StopSignal {value!r} is not a signal") from None
    if not text.startswith("SIG"):
        text = "SIG" + text
    if text not in signal.Signals.__members__:
        raise InvalidArgument(f"image {ref}: StopSignal {value!r} is not a signal")
    return text


def _read_from_layers(lowers: list[str], rel: str) -> str | None:
    """A file as overlayfs would show it from these lower dirs (top first)."""
    parts = rel.split("/")
    for lower in lowers:
        # A whiteout or an opaque dir on the way hides everything below.
        p = lower
        hidden = False
        for i, part in enumerate(parts):
            p = os.path.join(p, part)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                break
            except NotADirectoryError:
                break
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                hidden = True
                break
            if i == len(parts) - 1 and stat.S_ISREG(st.st_mode):
                with open(p, errors="replace") as f:
                    return f.read(1 << 20)
            if i < len(parts) - 1 and stat.S_ISDIR(st.st_mode):
                try:
                    if os.getxattr(p, "trusted.overlay.opaque") == b"y":
                        hidden = True     # checked after looking inside this layer
                except OSError:
                    pass
        if hidden:
            return None
    return None


def resolve_user(text: str, lowers: list[str], ref: str) -> dict:
    """User 'name', 'uid', 'name:group', 'uid:gid' -> {uid, gid} through the image's
    own /etc/passwd and /etc/group (Docker resolves the same way, at create here)."""
    user, _, group = str(text).partition(":")
    uid = gid = None
    if user.isdigit():
        uid = int(user)
    passwd = _read_from_layers(lowers, "etc/passwd") or ""
    for line in passwd.splitlines():
        f = line.split(":")
        if len(f) >= 4 and f[2].isdigit() and f[3].isdigit():
            if (uid is None and f[0] == user) or (uid is not None and int(f[2]) == uid):
                uid, gid = int(f[2]), int(f[3])
                break
    if uid is None:
        raise InvalidArgument(f"image {ref}: user {user!r} is not in the image's /etc/passwd")
    if gid is None:
        gid = 0         # a numeric uid the image does not list: group root, as in Docker
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            gid = None
            for line in (_read_from_layers(lowers, "etc/group") or "").splitlines():
                f = line.split(":")
                if len(f) >= 3 and f[0] == group and f[2].isdigit():
                    gid = int(f[2])
                    break
            if gid is None:
                raise InvalidArgument(f"image {ref}: group {group!r} is not in the image's "
                                      f"/etc/group")
    return {"uid": uid, "gid": gid}
