"""Test images built offline with real tools (umoci, skopeo), for every tier that needs one.

``build_oci(layout, work)`` makes a three-layer OCI image tagged ``t`` from the busybox
tree, with the changes the layer store must get right:

    layer 1  the busybox tree (umoci repack), /data/{a,b}, /etc/motd, /gone/x
    layer 2  /etc/motd deleted and /gone deleted (umoci writes .wh. whiteouts), /etc/new added
    layer 3  hand-made with `umoci raw add-layer`: /data opaque (.wh..wh..opq) holding only
             /data/c, a hard link pair, a symlink

and a config with Entrypoint, Cmd, Env, WorkingDir, User, StopSignal, Labels,
ExposedPorts. ``umoci_unpack`` gives the oracle tree for comparison.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile

from mcd.templates import TemplateStore

TAG = "t"


def run(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw)


def busybox_tree(dest: str) -> None:
    os.makedirs(dest, exist_ok=True)
    TemplateStore(os.path.dirname(dest))._fill_minimal(dest)


def _write(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _opaque_layer(path: str) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        def add(name, type=tarfile.REGTYPE, data=b"", mode=0o644, linkname=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.linkname, ti.mtime = type, mode, linkname, 1_700_000_000
            if type == tarfile.REGTYPE:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
        add("data", tarfile.DIRTYPE, mode=0o755)
        add("data/.wh..wh..opq")
        add("data/c", data=b"c from layer 3\n")
        add("data/hard1", data=b"linked\n")
        add("data/hard2", tarfile.LNKTYPE, linkname="data/hard1")
        add("data/sym", tarfile.SYMTYPE, linkname="c")


def build_oci(layout: str, work: str, tag: str = TAG) -> str:
    """The OCI layout dir with one image tagged ``tag``; returns the layout path."""
    os.makedirs(work, exist_ok=True)
    bundle = os.path.join(work, "bundle")
    image = f"{layout}:{tag}"
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", image)
    run("umoci", "unpack", "--image", image, bundle)
    rootfs = os.path.join(bundle, "rootfs")
    busybox_tree(rootfs)
    _write(os.path.join(rootfs, "data/a"), "a\n")
    _write(os.path.join(rootfs, "data/b"), "b\n")
    _write(os.path.join(rootfs, "etc/motd"), "to be deleted\n")
    _write(os.path.join(rootfs, "gone/x"), "the whole dir goes\n")
    _write(os.path.join(rootfs, "srv/app/hello.sh"), "#!/bin/sh\necho hello from $GREETING\n",
           0o755)
    run("umoci", "repack", "--image", image, bundle)
    shutil.rmtree(bundle)       # a repack builds on the manifest the bundle came from
    run("umoci", "unpack", "--image", image, bundle)
    os.unlink(os.path.join(rootfs, "etc/motd"))
    shutil.rmtree(os.path.join(rootfs, "gone"))
    _write(os.path.join(rootfs, "etc/new"), "added in layer 2\n")
    run("umoci", "repack", "--image", image, bundle)
    shutil.rmtree(bundle)
    layer3 = os.path.join(work, "layer3.tar")
    _opaque_layer(layer3)
    run("umoci", "raw", "add-layer", "--image", image, layer3)
    run("umoci", "config", "--image", image,
        "--config.entrypoint", "/bin/sh", "--config.entrypoint", "-c",
        "--config.cmd", "echo default cmd; id -u; pwd",
        "--config.env", "GREETING=image", "--config.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "--config.workingdir", "/srv/app", "--config.user", "1000:1000",
        "--config.stopsignal", "SIGUSR1", "--config.label", "org.example.k=v",
        "--config.exposedports", "8080/tcp")
    run("umoci", "gc", "--layout", layout)
    return layout


def umoci_unpack(layout: str, dest: str, tag: str = TAG) -> str:
    """The oracle: umoci's own unpack of the image; returns its rootfs path."""
    run("umoci", "unpack", "--image", f"{layout}:{tag}", dest)
    return os.path.join(dest, "rootfs")


def tree(root: str) -> dict:
    """path -> (type, mode, uid, gid, content or link target), for comparing two trees."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("l", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("d", st.st_mode & 0o7777, st.st_uid, st.st_gid)
            else:
                with open(p, "rb") as f:
                    data = f.read()
                out[rel] = ("f", st.st_mode & 0o7777, st.st_uid, st.st_gid, data)
    return out


def skopeo_copy(src: str, dst: str, *extra: str) -> None:
    run("skopeo", "copy", "--quiet", *extra, src, dst)
