"""linux.seccomp (the OCI JSON profile podman and containerd send), compiled to BPF with
libseccomp (pyseccomp), the library mcd's default filter is built with. Loading reuses
mcd.runtime.security.load_seccomp. Syscall names libseccomp does not know on this
architecture are skipped, as runc skips them; anything else it cannot express is refused
naming the field."""

from __future__ import annotations

import errno
import os

from mcrt.errors import McrtError

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
OPS = {"SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ",
       "SCMP_CMP_GE": "GE", "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}
ARCHES = {"SCMP_ARCH_X86": "X86", "SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X32": "X32",
          "SCMP_ARCH_ARM": "ARM", "SCMP_ARCH_AARCH64": "AARCH64", "SCMP_ARCH_MIPS": "MIPS",
          "SCMP_ARCH_MIPS64": "MIPS64", "SCMP_ARCH_MIPS64N32": "MIPS64N32",
          "SCMP_ARCH_MIPSEL": "MIPSEL", "SCMP_ARCH_MIPSEL64": "MIPSEL64",
          "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32", "SCMP_ARCH_PPC": "PPC",
          "SCMP_ARCH_PPC64": "PPC64", "SCMP_ARCH_PPC64LE": "PPC64LE", "SCMP_ARCH_S390": "S390",
          "SCMP_ARCH_S390X": "S390X", "SCMP_ARCH_PARISC": "PARISC",
          "SCMP_ARCH_PARISC64": "PARISC64", "SCMP_ARCH_RISCV64": "RISCV64"}
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW"}


def _refuse(field: str, why: str) -> McrtError:
    return McrtError(f"config.json: {field}: {why}")


def _action(sc, name, errno_ret, field: str, default_errno: int):
    if name not in ACTIONS:
        raise _refuse(field, f"unknown action {name!r}")
    if name == "SCMP_ACT_ERRNO":
        return sc.ERRNO(errno_ret if errno_ret is not None else default_errno)
    if name == "SCMP_ACT_TRACE":
        return sc.TRACE(errno_ret if errno_ret is not None else errno.EPERM)
    return {"SCMP_ACT_KILL": sc.KILL, "SCMP_ACT_KILL_PROCESS": sc.KILL_PROCESS,
            "SCMP_ACT_KILL_THREAD": getattr(sc, "KILL_THREAD", sc.KILL), "SCMP_ACT_TRAP": sc.TRAP,
            "SCMP_ACT_ALLOW": sc.ALLOW, "SCMP_ACT_LOG": sc.LOG}[name]


def compile_profile(prof: dict) -> bytes:
    """-> the BPF program (what prctl(PR_SET_SECCOMP) loads)."""
    import pyseccomp as sc

    default = _action(sc, prof.get("defaultAction"), prof.get("defaultErrnoRet"),
                      "linux.seccomp.defaultAction", errno.EPERM)
    for fl in prof.get("flags") or []:
        if fl not in FLAGS:
            raise _refuse("linux.seccomp.flags", f"unknown flag {fl!r}")
    flt = sc.SyscallFilter(default)
    # A rule that equals the default action is refused by libseccomp; runc skips it too.
    default_name = prof.get("defaultAction")
    for arch in prof.get("architectures") or []:
        if arch not in ARCHES:
            raise _refuse("linux.seccomp.architectures", f"unknown architecture {arch!r}")
        try:
            flt.add_arch(getattr(sc.Arch, ARCHES[arch]))
        except Exception:
            pass    # the native one is there already; one the kernel lacks cannot run here anyway
    if "SECCOMP_FILTER_FLAG_LOG" in (prof.get("flags") or []):
        flt.set_attr(sc.Attr.CTL_LOG, 1)
    if "SECCOMP_FILTER_FLAG_SPEC_ALLOW" in (prof.get("flags") or []):
        flt.set_attr(sc.Attr.CTL_SSB, 1)
    for i, rule in enumerate(prof.get("syscalls") or []):
        field = f"linux.seccomp.syscalls[{i}]"
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        act_name = rule.get("action")
        action = _action(sc, act_name, rule.get("errnoRet"), field + ".action",
                         prof.get("defaultErrnoRet") or errno.EPERM)
        if act_name == default_name and act_name != "SCMP_ACT_ERRNO":
            continue
        args = []
        for j, a in enumerate(rule.get("args") or []):
            op = OPS.get(a.get("op"))
            if op is None:
                raise _refuse(f"{field}.args[{j}].op", f"unknown operator {a.get('op')!r}")
            args.append(sc.Arg(int(a.get("index", 0)), getattr(sc, op), int(a.get("value", 0)),
                               int(a.get("valueTwo", 0))))
        for name in names:
            try:
                flt.add_rule(action, name, *args)
            except ValueError:
                continue    # not a syscall libseccomp knows here
            except OSError as err:
                if err.errno in (errno.EEXIST, errno.EINVAL, errno.EDOM, errno.EFAULT):
                    continue    # duplicate or unresolvable on this arch: as runc, skip it
                raise _refuse(field, f"{name}: {os.strerror(err.errno)}") from None
            except RuntimeError:
                continue
    fd = os.memfd_create("mcrt-seccomp", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "wb") as out:
            flt.export_bpf(out)
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def libseccomp_version() -> str:
    import ctypes
    import ctypes.util

    class _V(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2")
        lib.seccomp_version.restype = ctypes.POINTER(_V)
        v = lib.seccomp_version().contents
        return f"{v.major}.{v.minor}.{v.micro}"
    except (OSError, AttributeError):
        return "unknown"
