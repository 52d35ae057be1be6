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
import json
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


class LocalRegistry:
    """Debian's docker-registry (distribution 2.x) on 127.0.0.1 and a free port, with a
    temp config and storage; htpasswd (Basic) auth when ``user`` is given. Stopped by
    its pid."""

    def __init__(self, base: str, user: str | None = None, password: str | None = None,
                 token: "TokenServer | None" = None):
        import socket
        self.base = base
        os.makedirs(base, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.user, self.password = user, password
        self.data = os.path.join(base, "data")
        conf = ["version: 0.1", "log:", "  level: error", "storage:", "  filesystem:",
                f"    rootdirectory: {self.data}", "  delete:", "    enabled: true",
                "http:", f"  addr: {self.host}"]
        if user:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import crypt      # bcrypt through libcrypt: htpasswd wants bcrypt
            hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
            with open(os.path.join(base, "htpasswd"), "w") as f:
                f.write(f"{user}:{hashed}\n")
            conf += ["auth:", "  htpasswd:", "    realm: mctest",
                     f"    path: {os.path.join(base, 'htpasswd')}"]
        if token is not None:
            conf += token.registry_auth()
        self.config = os.path.join(base, "config.yml")
        with open(self.config, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.proc = None

    def start(self) -> "LocalRegistry":
        import time
        import urllib.error
        import urllib.request
        self.log = open(os.path.join(self.base, "registry.log"), "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", self.config],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                break
            except urllib.error.HTTPError:
                break               # 401: up, and asking for credentials
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"docker-registry did not start: "
                                         f"{open(self.log.name).read()}")
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.log.close()

    def push(self, src: str, repo: str, creds: str | None = None) -> str:
        """skopeo copy SRC docker://HOST/REPO; returns the manifest digest."""
        digest_file = os.path.join(self.base, "digest")
        args = ["--dest-tls-verify=false", "--digestfile", digest_file]
        if self.user or creds:
            args += ["--dest-creds", creds or f"{self.user}:{self.password}"]
        if src.endswith(":multi"):
            args.append("--all")
        skopeo_copy(src, f"docker://{self.host}/{repo}", *args)
        with open(digest_file) as f:
            return f.read().strip()

    def blob_path(self, digest: str) -> str:
        h = digest.split(":", 1)[1]
        return os.path.join(self.data, "docker/registry/v2/blobs/sha256", h[:2], h, "data")


def add_multiarch(layout: str, tag: str = TAG) -> None:
    """Tag 'multi': an image index with an arm64 variant first (another config, same
    layers, Env GREETING=arm64) and the host's amd64 image second; a pull must choose
    by platform, not by order."""
    import hashlib
    import json as _json

    def blob(data: bytes) -> dict:
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(layout, "blobs/sha256", d), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + d, "size": len(data)}

    def read(desc):
        with open(os.path.join(layout, "blobs/sha256", desc["digest"][7:]), "rb") as f:
            return _json.loads(f.read())
    index = _json.load(open(os.path.join(layout, "index.json")))
    host = next(m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
    manifest = read(host)
    config = read(manifest["config"])
    config["architecture"] = "arm64"
    config["config"]["Env"] = ["GREETING=arm64", "PATH=/bin"]
    cdesc = blob(_json.dumps(config).encode())
    arm = dict(manifest, config=dict(manifest["config"], **cdesc))
    arm_desc = blob(_json.dumps(arm).encode())
    mt = "application/vnd.oci.image.manifest.v1+json"
    idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
           "manifests": [
               {"mediaType": mt, **arm_desc, "platform": {"architecture": "arm64", "os": "linux"}},
               {"mediaType": mt, "digest": host["digest"], "size": host["size"],
                "platform": {"architecture": "amd64", "os": "linux"}}]}
    idesc = blob(_json.dumps(idx).encode())
    index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json", **idesc,
                               "annotations": {"org.opencontainers.image.ref.name": "multi"}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        _json.dump(index, f)


class TokenServer:
    """A Bearer token service for docker-registry's `auth: token` (the flow Docker Hub and
    most registries use): GET /token?service=&scope= with Basic credentials -> a JWT
    signed RS256 by a throwaway key (openssl), its certificate in the x5c header and in
    the registry's rootcertbundle. Anonymous requests are refused (401), so a pull needs
    a login. Runs in a thread of the test process; stop() ends it."""

    def __init__(self, base: str, user: str, password: str, issuer: str = "mctest-issuer",
                 service: str = "mctest-registry"):
        import base64
        import http.server
        import threading
        self.base, self.user, self.password = base, user, password
        self.issuer, self.service = issuer, service
        os.makedirs(base, exist_ok=True)
        self.key = os.path.join(base, "token.key")
        self.cert = os.path.join(base, "token.crt")
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
            "-out", self.cert, "-days", "1", "-subj", "/CN=mctest-token")
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                import urllib.parse
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(
                    f"{server.user}:{server.password}".encode()).decode()
                server.requests.append({"scope": q.get("scope", []), "authorized": auth == expected})
                if auth != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": server.token(q.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def token(self, scopes: list[str]) -> str:
        import base64
        import time

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).decode().rstrip("=")
        access = []
        for s in scopes:
            for one in s.split(" "):
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": self.user, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                             input=signing.encode(), check=True, capture_output=True).stdout
        return f"{signing}.{b64(sig)}"

    def registry_auth(self) -> list[str]:
        return ["auth:", "  token:", f"    realm: {self.realm}", f"    service: {self.service}",
                f"    issuer: {self.issuer}", f"    rootcertbundle: {self.cert}"]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
