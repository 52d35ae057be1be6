"""config.json: read, checked field by field before anything is created.

Every field podman, containerd and CRI-O generate is either honoured or refused with
an error naming it (``config.json: linux.intelRdt: not supported by mcrt``). A field
whose value is empty (null, {}, [], "") asks for nothing and passes."""

from __future__ import annotations

import json
import os
import resource

from mcrt.errors import McrtError

# mount option -> (set, clear) flags, from linux/mount.h
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_SYNCHRONOUS, MS_REMOUNT, MS_MANDLOCK, MS_DIRSYNC = 16, 32, 64, 128
MS_NOSYMFOLLOW = 256
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 1024, 2048, 4096, 16384
MS_SILENT, MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 32768, 1 << 17, 1 << 18, 1 << 19, 1 << 20
MS_RELATIME, MS_I_VERSION, MS_STRICTATIME, MS_LAZYTIME = 1 << 21, 1 << 23, 1 << 24, 1 << 25

FLAGS = {
    "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY), "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV), "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0), "async": (0, MS_SYNCHRONOUS), "dirsync": (MS_DIRSYNC, 0),
    "remount": (MS_REMOUNT, 0), "mand": (MS_MANDLOCK, 0), "nomand": (0, MS_MANDLOCK),
    "atime": (0, MS_NOATIME), "noatime": (MS_NOATIME, 0), "diratime": (0, MS_NODIRATIME),
    "nodiratime": (MS_NODIRATIME, 0), "relatime": (MS_RELATIME, 0), "norelatime": (0, MS_RELATIME),
    "strictatime": (MS_STRICTATIME, 0), "nostrictatime": (0, MS_STRICTATIME),
    "lazytime": (MS_LAZYTIME, 0), "nolazytime": (0, MS_LAZYTIME), "iversion": (MS_I_VERSION, 0),
    "noiversion": (0, MS_I_VERSION), "silent": (MS_SILENT, 0), "loud": (0, MS_SILENT),
    "nosymfollow": (MS_NOSYMFOLLOW, 0), "symfollow": (0, MS_NOSYMFOLLOW),
    "bind": (MS_BIND, 0), "rbind": (MS_BIND | MS_REC, 0), "defaults": (0, 0),
}
PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC, "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}
# Options that need kernel features mcrt does not drive (recursive attributes, idmapped
# mounts, copy-up): refused by name rather than passed to the filesystem as data.
REFUSED_OPTIONS = {"rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec",
                   "rnoatime", "ratime", "rnodiratime", "rdiratime", "rrelatime", "rnorelatime",
                   "rstrictatime", "rnostrictatime", "rnosymfollow", "rsymfollow", "tmpcopyup",
                   "idmap", "ridmap"}

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup")
CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")
RLIMITS = {n: getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_")}

# What mcrt reads, per object. A key outside these is refused (when its value asks for
# something), so nothing is dropped in silence.
KNOWN = {
    "": {"ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks",
         "annotations", "linux"},
    "process": {"terminal", "consoleSize", "user", "args", "env", "cwd", "capabilities",
                "rlimits", "noNewPrivileges", "oomScoreAdj", "apparmorProfile", "selinuxLabel",
                "commandLine", "scheduler", "ioPriority", "execCPUAffinity"},
    "process.user": {"uid", "gid", "umask", "additionalGids", "username"},
    "root": {"path", "readonly"},
    "linux": {"namespaces", "uidMappings", "gidMappings", "devices", "resources",
              "cgroupsPath", "seccomp", "maskedPaths", "readonlyPaths", "sysctl",
              "rootfsPropagation", "mountLabel", "intelRdt", "personality", "timeOffsets"},
    "linux.resources": {"devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits",
                        "network", "rdma", "unified"},
    "linux.resources.memory": {"limit", "swap", "reservation", "kernel", "kernelTCP",
                               "swappiness", "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"},
    "linux.resources.cpu": {"shares", "quota", "period", "realtimeRuntime", "realtimePeriod",
                            "cpus", "mems", "idle", "burst"},
    "linux.resources.pids": {"limit"},
    "linux.seccomp": {"defaultAction", "defaultErrnoRet", "architectures", "flags", "syscalls",
                      "listenerPath", "listenerMetadata"},
}
# Known keys mcrt cannot honour: refused when they ask for something.
UNSUPPORTED = {
    "process": {"apparmorProfile", "selinuxLabel", "commandLine", "scheduler", "ioPriority",
                "execCPUAffinity"},
    "process.user": {"username"},
    "linux": {"mountLabel", "intelRdt", "personality", "timeOffsets"},
    "linux.resources": {"blockIO", "hugepageLimits", "network", "rdma", "unified"},
    "linux.resources.memory": {"reservation", "kernel", "kernelTCP", "swappiness",
                               "disableOOMKiller", "checkBeforeUpdate"},
    "linux.resources.cpu": {"realtimeRuntime", "realtimePeriod", "mems", "idle", "burst"},
    "linux.seccomp": {"listenerPath", "listenerMetadata"},
}


def empty(v) -> bool:
    return v is None or v == {} or v == [] or v == ""


def refuse(field: str, why: str = "not supported by mcrt") -> McrtError:
    return McrtError(f"config.json: {field}: {why}")


def _check_keys(obj, where: str) -> None:
    if obj is None:
        return
    if not isinstance(obj, dict):
        raise refuse(where or "(top level)", f"expected an object, got {type(obj).__name__}")
    known, unsup = KNOWN[where], UNSUPPORTED.get(where, set())
    for key, value in obj.items():
        field = f"{where}.{key}" if where else key
        if key not in known:
            if not empty(value):
                raise refuse(field, "unknown field (not in the runtime-spec fields mcrt reads)")
        elif key in unsup and not empty(value):
            if key == "useHierarchy" or (key == "swappiness" and value in (None, -1)):
                continue
            raise refuse(field)


def _typed(value, kind, field: str):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise refuse(field, f"expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def load(bundle: str) -> dict:
    """Read and check BUNDLE/config.json; returns it with root.path made absolute."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if not os.path.isdir(bundle):
            raise McrtError(f"bundle {bundle}: no such directory") from None
        raise McrtError(f"bundle {bundle}: no config.json in it") from None
    except OSError as err:
        raise McrtError(f"read {path}: {os.strerror(err.errno)}") from None
    try:
        cfg = json.loads(raw)
    except ValueError as err:
        raise McrtError(f"{path}: malformed JSON: {err}") from None
    check(cfg, bundle)
    return cfg


def check(cfg: dict, bundle: str) -> None:
    _check_keys(cfg, "")
    if not isinstance(cfg.get("ociVersion", ""), str) or not cfg.get("ociVersion", "1").startswith("1"):
        raise refuse("ociVersion", f"{cfg.get('ociVersion')!r} is not a 1.x runtime-spec version")
    proc = cfg.get("process")
    if not isinstance(proc, dict):
        raise refuse("process", "required (mcrt creates containers with a process)")
    check_process(proc, "process")
    root = cfg.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("path"), str) or not root["path"]:
        raise refuse("root.path", "required")
    _check_keys(root, "root")
    rp = root["path"] if os.path.isabs(root["path"]) else os.path.join(bundle, root["path"])
    if not os.path.isdir(rp):
        raise refuse("root.path", f"{rp} is not a directory")
    root["path"] = os.path.abspath(rp)
    for key in ("hostname", "domainname"):
        if key in cfg and not isinstance(cfg[key], str):
            raise refuse(key, "expected a string")
    for i, m in enumerate(cfg.get("mounts") or []):
        check_mount(m, f"mounts[{i}]")
    hooks = cfg.get("hooks") or {}
    if not isinstance(hooks, dict):
        raise refuse("hooks", "expected an object")
    for kind, lst in hooks.items():
        if kind not in HOOK_KINDS:
            if not empty(lst):
                raise refuse(f"hooks.{kind}", "unknown hook kind")
            continue
        for i, h in enumerate(lst or []):
            f = f"hooks.{kind}[{i}]"
            if not isinstance(h, dict) or not isinstance(h.get("path"), str) \
                    or not os.path.isabs(h["path"]):
                raise refuse(f + ".path", "an absolute path is required")
            for k in ("args", "env"):
                if not all(isinstance(a, str) for a in h.get(k) or []):
                    raise refuse(f"{f}.{k}", "expected a list of strings")
            if "timeout" in h and (not isinstance(h["timeout"], int) or h["timeout"] <= 0):
                raise refuse(f + ".timeout", "must be a positive integer")
    ann = cfg.get("annotations") or {}
    if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
        raise refuse("annotations", "expected an object of strings")
    check_linux(cfg.setdefault("linux", {}) or {})


def check_process(proc: dict, where: str) -> None:
    _check_keys(proc, "process")
    args = proc.get("args")
    if not args or not all(isinstance(a, str) and "\0" not in a for a in args):
        raise refuse(f"{where}.args", "a non-empty list of strings is required")
    if not all(isinstance(e, str) and "=" in e for e in proc.get("env") or []):
        raise refuse(f"{where}.env", "expected a list of KEY=VALUE strings")
    cwd = proc.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise refuse(f"{where}.cwd", "must be an absolute path")
    user = proc.get("user") or {}
    _check_keys(user, "process.user")
    for k in ("uid", "gid"):
        _typed(user.get(k, 0), int, f"{where}.user.{k}")
    if "umask" in user and user["umask"] is not None:
        _typed(user["umask"], int, f"{where}.user.umask")
    for g in user.get("additionalGids") or []:
        _typed(g, int, f"{where}.user.additionalGids")
    from mcwire.units import CAPABILITIES
    caps = proc.get("capabilities") or {}
    if not isinstance(caps, dict):
        raise refuse(f"{where}.capabilities", "expected an object")
    for key, names in caps.items():
        if key not in CAP_SETS:
            raise refuse(f"{where}.capabilities.{key}", "unknown capability set")
        for n in names or []:
            if n not in CAPABILITIES:
                raise refuse(f"{where}.capabilities.{key}", f"unknown capability {n!r}")
    for i, rl in enumerate(proc.get("rlimits") or []):
        if not isinstance(rl, dict) or rl.get("type") not in RLIMITS:
            raise refuse(f"{where}.rlimits[{i}].type", f"unknown rlimit {rl.get('type') if isinstance(rl, dict) else rl!r}")
        for k in ("soft", "hard"):
            _typed(rl.get(k), int, f"{where}.rlimits[{i}].{k}")
    if "oomScoreAdj" in proc and proc["oomScoreAdj"] is not None:
        v = _typed(proc["oomScoreAdj"], int, f"{where}.oomScoreAdj")
        if not -1000 <= v <= 1000:
            raise refuse(f"{where}.oomScoreAdj", f"{v} is out of range [-1000, 1000]")
    cs = proc.get("consoleSize")
    if cs is not None and not (isinstance(cs, dict) and isinstance(cs.get("height", 0), int)
                               and isinstance(cs.get("width", 0), int)):
        raise refuse(f"{where}.consoleSize", "expected {height, width}")


def parse_mount_options(options, field: str) -> tuple[int, int, list[str], set[str]]:
    """-> (flags, propagation flags, data options, names seen)."""
    flags, prop, data, seen = 0, 0, [], set()
    for opt in options or []:
        if not isinstance(opt, str):
            raise refuse(field, f"option {opt!r} is not a string")
        if opt in FLAGS:
            s, c = FLAGS[opt]
            flags = (flags | s) & ~c
        elif opt in PROPAGATION:
            prop |= PROPAGATION[opt]
        elif opt in REFUSED_OPTIONS:
            raise refuse(field, f"mount option {opt!r} is not supported by mcrt")
        else:
            data.append(opt)
        seen.add(opt)
    return flags, prop, data, seen


def check_mount(m, field: str) -> None:
    if not isinstance(m, dict):
        raise refuse(field, "expected an object")
    for key, value in m.items():
        if key not in ("destination", "type", "source", "options") and not empty(value):
            raise refuse(f"{field}.{key}", "not supported by mcrt")
    dest = m.get("destination")
    if not isinstance(dest, str) or not dest.startswith("/"):
        raise refuse(f"{field}.destination", f"{dest!r} is not an absolute path")
    if ".." in dest.split("/"):
        raise refuse(f"{field}.destination", f"{dest!r} contains '..'")
    flags, _prop, _data, seen = parse_mount_options(m.get("options"), f"{field}.options")
    kind = m.get("type") or ("bind" if flags & MS_BIND else "")
    if not kind:
        raise refuse(f"{field}.type", "required (or a bind/rbind option)")
    dest_norm = os.path.normpath(dest)
    # proc@/proc, sysfs@/sys and tmpfs@/dev are the container's own three filesystems (as
    # in every runc-spec config); every other mount goes through the project's one rule
    # for what may land on or under them (mcwire.mountdest).
    if (dest_norm, kind) not in (("/proc", "proc"), ("/sys", "sysfs"), ("/dev", "tmpfs")):
        from mcwire.errors import InvalidArgument
        from mcwire.mountdest import check_mount_destination
        try:
            check_mount_destination(dest, "bind" if (kind in ("bind", "none") or flags & MS_BIND)
                                    else kind)
        except InvalidArgument as err:
            raise refuse(f"{field}.destination", str(err)) from None
    if kind == "bind" or flags & MS_BIND:
        src = m.get("source")
        if not isinstance(src, str) or not src.startswith("/"):
            raise refuse(f"{field}.source", f"{src!r}: a bind mount needs an absolute host path")


def check_linux(lin: dict) -> None:
    _check_keys(lin, "linux")
    seen = set()
    for i, ns in enumerate(lin.get("namespaces") or []):
        t = ns.get("type") if isinstance(ns, dict) else None
        if t not in NAMESPACE_TYPES:
            raise refuse(f"linux.namespaces[{i}].type", f"unknown namespace type {t!r} "
                         f"(one of {', '.join(NAMESPACE_TYPES)})")
        if t in seen:
            raise refuse(f"linux.namespaces[{i}].type", f"namespace {t} given twice")
        seen.add(t)
        p = ns.get("path") or ""
        if p:
            if not os.path.isabs(p):
                raise refuse(f"linux.namespaces[{i}].path", f"{p!r} is not an absolute path")
            if not os.path.exists(p):
                raise refuse(f"linux.namespaces[{i}].path", f"{p}: no such file")
    for key in ("uidMappings", "gidMappings"):
        for i, mp in enumerate(lin.get(key) or []):
            for k in ("containerID", "hostID", "size"):
                _typed((mp or {}).get(k), int, f"linux.{key}[{i}].{k}")
    if (lin.get("uidMappings") or lin.get("gidMappings")) and "user" not in seen:
        raise refuse("linux.uidMappings", "given without a user namespace")
    if "user" in seen and not any(n.get("path") for n in lin["namespaces"] if n["type"] == "user") \
            and not (lin.get("uidMappings") and lin.get("gidMappings")):
        raise refuse("linux.uidMappings", "a new user namespace needs uid and gid mappings")
    for i, d in enumerate(lin.get("devices") or []):
        f = f"linux.devices[{i}]"
        if not isinstance(d, dict) or not isinstance(d.get("path"), str) \
                or not d["path"].startswith("/dev/"):
            raise refuse(f + ".path", "must be a path under /dev/")
        if d.get("type") not in ("c", "b", "u", "p"):
            raise refuse(f + ".type", f"{d.get('type')!r}: one of c, b, u, p")
        if d["type"] != "p":
            for k in ("major", "minor"):
                _typed(d.get(k), int, f"{f}.{k}")
    res = lin.get("resources") or {}
    _check_keys(res, "linux.resources")
    for sub in ("memory", "cpu", "pids"):
        _check_keys(res.get(sub), f"linux.resources.{sub}")
    for i, rule in enumerate(res.get("devices") or []):
        if not isinstance(rule, dict) or not isinstance(rule.get("allow"), bool):
            raise refuse(f"linux.resources.devices[{i}].allow", "required (true or false)")
        if rule.get("type", "a") not in ("a", "b", "c"):
            raise refuse(f"linux.resources.devices[{i}].type", f"{rule.get('type')!r}")
        if not set(rule.get("access") or "rwm") <= set("rwm"):
            raise refuse(f"linux.resources.devices[{i}].access", f"{rule.get('access')!r}")
    cp = lin.get("cgroupsPath", "")
    if not isinstance(cp, str) or ".." in cp.split("/"):
        raise refuse("linux.cgroupsPath", f"{cp!r}")
    sec = lin.get("seccomp")
    if sec:
        _check_keys(sec, "linux.seccomp")
    for key in ("maskedPaths", "readonlyPaths"):
        for p in lin.get(key) or []:
            if not isinstance(p, str) or not p.startswith("/"):
                raise refuse(f"linux.{key}", f"{p!r} is not an absolute path")
    for k, v in (lin.get("sysctl") or {}).items():
        if not isinstance(v, str) or not k or "/" in k or ".." in k.split("."):
            raise refuse(f"linux.sysctl.{k}", "expected a key and a string value")
        need = sysctl_namespace(k)
        if need is None:
            raise refuse(f"linux.sysctl.{k}", "not a namespaced sysctl (it would change the host)")
        if need not in seen:
            raise refuse(f"linux.sysctl.{k}", f"needs a {need} namespace of the container's own")
    rp = lin.get("rootfsPropagation") or ""
    if rp and rp not in PROPAGATION:
        raise refuse("linux.rootfsPropagation", f"{rp!r}: one of {', '.join(PROPAGATION)}")


IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def sysctl_namespace(key: str) -> str | None:
    """The namespace a sysctl belongs to (as runc's list), None when it is host-wide."""
    if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return "ipc"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    if key.startswith("net."):
        return "network"
    return None
