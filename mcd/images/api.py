"""The /v1/images routes (a mixin of mcd.api.Api; ``self.m`` is the Manager).

References hold '/' and ':', so they travel in the query (?ref=) or the JSON body,
never in the path. Archives travel as fds the client opened (its own file, a pipe from
stdin, a directory), as template import does; a root caller may pass a path instead.
"""

from __future__ import annotations

import json
import os
import stat
import uuid

from mcd.errors import InvalidArgument, PermissionDenied

IMAGE_ROUTES = [
    ("GET", "/v1/images", "list_images", "List images"),
    ("POST", "/v1/images/load", "load_images",
     "Load images from a docker-save archive or OCI layout (fd or path)"),
    ("GET", "/v1/images/inspect", "inspect_image", "Inspect an image (?ref=)"),
    ("GET", "/v1/images/history", "image_history", "An image's history (?ref=)"),
    ("POST", "/v1/images/tag", "tag_image", "Tag an image (body: ref, tag)"),
    ("POST", "/v1/images/remove", "remove_image", "Remove or untag an image (body: ref, force)"),
    ("POST", "/v1/images/prune", "prune_images", "Remove untagged images no container uses"),
    ("POST", "/v1/images/save", "save_images", "Write images as an archive to the passed fd"),
    ("GET", "/v1/system/df", "system_df", "Disk usage: images, shared layers, containers"),
    ("POST", "/v1/images/pull", "pull_image",
     "Pull an image from a registry (body: ref); NDJSON progress, then done or error"),
    ("POST", "/v1/auth/login", "registry_login",
     "Check and store registry credentials (body: registry, username, password)"),
    ("POST", "/v1/auth/logout", "registry_logout", "Forget a registry's credentials"),
]

IMAGE_BODIES = {
    "load_images": {"type": "object", "additionalProperties": False,
                    "properties": {"path": {"type": "string"}}},
    "tag_image": {"type": "object", "required": ["ref", "tag"], "additionalProperties": False,
                  "properties": {"ref": {"type": "string"}, "tag": {"type": "string"}}},
    "remove_image": {"type": "object", "required": ["ref"], "additionalProperties": False,
                     "properties": {"ref": {"type": "string"}, "force": {"type": "boolean"}}},
    "prune_images": {"type": "object", "additionalProperties": False,
                     "properties": {"all": {"type": "boolean"}}},
    "pull_image": {"type": "object", "required": ["ref"], "additionalProperties": False,
                   "properties": {"ref": {"type": "string"}}},
    "registry_login": {"type": "object", "required": ["registry", "username", "password"],
                       "additionalProperties": False,
                       "properties": {"registry": {"type": "string"},
                                      "username": {"type": "string"},
                                      "password": {"type": "string"}}},
    "registry_logout": {"type": "object", "required": ["registry"], "additionalProperties": False,
                        "properties": {"registry": {"type": "string"}}},
    "save_images": {"type": "object", "required": ["refs"], "additionalProperties": False,
                    "properties": {"refs": {"type": "array", "items": {"type": "string"}},
                                   "format": {"type": "string"}}},
}


def _check(body, name: str) -> dict:
    if not isinstance(body, dict):
        raise InvalidArgument("request: expected a JSON object")
    props = IMAGE_BODIES[name]["properties"]
    types = {"string": str, "boolean": bool, "array": list}
    for k, v in body.items():
        if k not in props:
            raise InvalidArgument(f"request: unknown field {k}")
        if not isinstance(v, types[props[k]["type"]]):
            raise InvalidArgument(f"request.{k}: expected {props[k]['type']}")
    for k in IMAGE_BODIES[name].get("required", []):
        if k not in body:
            raise InvalidArgument(f"request: the field {k} is required")
    return body


def _close(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class ImageRoutes:
    def list_images(self, req):
        from mcd.httpserver import Response
        return Response.json(self.m.images.list())

    def load_images(self, req):
        from mcd.httpserver import Response
        from mcd.images import archive
        body = _check(req.json(), "load_images")
        fds = req.take_fds()
        store = self.m.images
        spool = None
        try:
            if fds:
                src = f"/proc/self/fd/{fds[0]}"
                st = os.fstat(fds[0])
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                    # A pipe (stdin): spooled, since an archive is read out of order.
                    spool = os.path.join(store.tmp, f"spool-{uuid.uuid4().hex[:12]}")
                    with open(src, "rb") as s, open(spool, "wb") as d:
                        while True:
                            chunk = s.read(1 << 20)
                            if not chunk:
                                break
                            d.write(chunk)
                    src = spool
            elif body.get("path"):
                if req.peer is not None and req.peer.uid != 0:
                    raise PermissionDenied("loading images from a path needs root; pass an "
                                           "open fd instead")
                src = body["path"]
            else:
                raise InvalidArgument("image load: pass the archive as an fd or a path")
            with store.load("load") as ld:
                archive.load(ld, src)
                images = ld.commit()
                notices = ld.notices
        except OSError as err:
            from mcd.errors import KernelError
            raise KernelError.from_oserror("image load", err) from err
        finally:
            _close(fds)
            if spool:
                try:
                    os.unlink(spool)
                except FileNotFoundError:
                    pass
        return Response.json({"images": images, "notices": notices}, 201)

    def inspect_image(self, req):
        from mcd.httpserver import Response
        out = self.m.images.inspect(req.query.get("ref", ""))
        out["containers"] = self.m.image_users(out["id"])
        return Response.json(out)

    def image_history(self, req):
        from mcd.httpserver import Response
        return Response.json(self.m.images.history(req.query.get("ref", "")))

    def tag_image(self, req):
        from mcd.httpserver import Response
        body = _check(req.json(), "tag_image")
        image_id = self.m.images.tag(body["ref"], body["tag"])
        return Response.json({"id": image_id, "tag": body["tag"]}, 201)

    def remove_image(self, req):
        from mcd.httpserver import Response
        body = _check(req.json(), "remove_image")
        return Response.json(self.m.images.remove(body["ref"], force=bool(body.get("force")),
                                                  users=self.m.image_users))

    def prune_images(self, req):
        from mcd.httpserver import Response
        body = _check(req.json(), "prune_images")
        return Response.json(self.m.images.prune(all=bool(body.get("all")),
                                                 users=self.m.image_users))

    def save_images(self, req):
        from mcd.httpserver import Response
        from mcd.images import save
        body = _check(req.json(), "save_images")
        fds = req.take_fds()
        try:
            if not fds:
                raise InvalidArgument("image save: pass the output as an fd")
            if not body["refs"]:
                raise InvalidArgument("image save: name at least one image")
            fmt = body.get("format") or "both"
            with os.fdopen(os.dup(fds[0]), "wb") as out:
                written = save.save(self.m.images, body["refs"], out, fmt)
        finally:
            _close(fds)
        return Response.json(written)

    def system_df(self, req):
        from mcd.httpserver import Response
        from mcd.templates import tree_size
        out = {"images": self.m.images.df()}
        rows = []
        for s in self.m.list(all=True):
            upper = self.m.store.paths(s["id"]).upper
            try:
                size = tree_size(upper)
            except OSError:
                size = 0
            rows.append({"id": s["id"], "name": s["name"], "size": size})
        out["containers"] = {"count": len(rows), "size": sum(r["size"] for r in rows),
                             "list": rows}
        return Response.json(out)

    # -- registries
    def _creds(self):
        from mcd.images.pull import Credentials
        return Credentials(self.m.root)

    def pull_image(self, req):
        """The pull runs in a thread; its progress events stream as NDJSON lines, the last
        one {"type": "done", ...} or {"type": "error", "error": {...}} (the status is
        already 200 by then). A reference that does not parse is a 400 up front."""
        import queue
        import threading

        from mcd.httpserver import Response
        from mcd.images import pull, reference
        from mcd.errors import MCError, KernelError
        body = _check(req.json(), "pull_image")
        reference.parse(body["ref"])
        events: queue.Queue = queue.Queue()
        store, creds = self.m.images, self._creds()
        insecure = getattr(self.m, "insecure_registries", [])

        def work():
            try:
                res = pull.pull(store, body["ref"], creds=creds, insecure=insecure,
                                progress=events.put)
                events.put({"type": "done", **res})
            except MCError as err:
                events.put({"type": "error", **err.to_wire()})
            except OSError as err:
                events.put({"type": "error",
                            **KernelError.from_oserror("pull", err).to_wire()})
            except Exception as err:     # one line for the user; the daemon logs the rest
                import logging
                logging.getLogger("mcd.images").exception("pull %s", body["ref"])
                events.put({"type": "error", **MCError(f"pull: {err}").to_wire()})

        threading.Thread(target=work, name="image-pull", daemon=True).start()

        def stream():
            while True:
                ev = events.get()
                yield (json.dumps(ev) + "\n").encode()
                if ev["type"] in ("done", "error"):
                    return

        return Response(200, content_type="application/x-ndjson", stream=stream())

    def registry_login(self, req):
        from mcd.httpserver import Response
        from mcd.images import pull
        body = _check(req.json(), "registry_login")
        if req.peer is not None and req.peer.uid != 0:
            raise PermissionDenied("login stores credentials for the daemon: root only")
        registry = pull.registry_of(body["registry"])
        pull.login(registry, body["username"], body["password"], self._creds(),
                   getattr(self.m, "insecure_registries", []))
        return Response.json({"registry": registry, "status": "Login Succeeded"})

    def registry_logout(self, req):
        from mcd.httpserver import Response
        from mcd.images import pull
        body = _check(req.json(), "registry_logout")
        registry = pull.registry_of(body["registry"])
        removed = self._creds().remove(registry)
        return Response.json({"registry": registry, "removed": removed})
