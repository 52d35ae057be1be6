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
from mcd.routing import Answer, Field, Query, Route
from mcwire.schema import IMAGE_REF_PATTERN, IMAGE_TAG_PATTERN

_IMAGE = {"type": "string", "pattern": f"^({IMAGE_REF_PATTERN})$"}
_REGISTRY = {"type": "string", "pattern": "^(https?://)?(([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
             "(\\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?)"
             "(/[^\\x00]*)?$"}
_REF = Query("ref", str, None, "an image reference ([registry/]name[:tag][@digest]) or id",
             pattern=IMAGE_REF_PATTERN, required=True)


def _schema(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: dict, optional: dict | None = None, extra=True) -> dict:
    return {"type": "object", "required": list(required),
            "properties": {**required, **(optional or {})}, "additionalProperties": extra}


_STRS = {"type": "array", "items": {"type": "string"}}

# Shapes as the image store reports them (open where the store may add fields).
IMAGE_SCHEMAS = {
    "ImageSummary": _obj({"id": {"type": "string"}, "tags": _STRS},
                         {"short_id": {"type": "string"}, "size": {"type": "integer"},
                          "layers": {"type": "integer"}}),
    "ImageInspect": _obj({"id": {"type": "string"}, "containers": {"type": "array"}}),
    "ImagesLoaded": _obj({"images": {"type": "array"}, "notices": {"type": "array"}}),
    "ImageTagged": _obj({"id": {"type": "string"}, "tag": {"type": "string"}}, extra=False),
    "ImageRemoved": _obj({"untagged": _STRS, "deleted": _STRS}),
    "ImagesPruned": _obj({"deleted": _STRS}),
    "ImagesSaved": _obj({"images": {"type": "array"}}),
    "PullLine": _obj({"type": {"type": "string"}}),
    "SystemDf": _obj({"images": {"type": "object"}, "containers": _obj(
        {"count": {"type": "integer"}, "size": {"type": "integer"}, "list": {"type": "array"}})}),
}

IMAGE_ROUTES = [
    Route("GET", "/v1/images", "list_images", "List images",
          (Answer(200, {"type": "array", "items": _schema("ImageSummary")}),)),
    Route("POST", "/v1/images/load", "load_images",
          "Load images from a docker-save archive or OCI layout (fd or path)",
          (Answer(201, "ImagesLoaded", description="loaded"),),
          body=(Field("path", str, default=None, schema={"type": "string", "pattern": "^/"}),),
          fds="the archive or OCI layout directory (one fd); without it, path (root only)"),
    Route("GET", "/v1/images/inspect", "inspect_image", "Inspect an image",
          (Answer(200, "ImageInspect"),), query=(_REF,)),
    Route("GET", "/v1/images/history", "image_history", "An image's history, newest first",
          (Answer(200, {"type": "array", "items": {"type": "object"}}),), query=(_REF,)),
    Route("POST", "/v1/images/tag", "tag_image", "Tag an image",
          (Answer(201, "ImageTagged", description="tagged"),),
          body=(Field("ref", str, required=True, schema=_IMAGE),
                Field("tag", str, required=True,
                      schema={"type": "string", "pattern": f"^({IMAGE_TAG_PATTERN})$"})),
          body_required=True),
    Route("POST", "/v1/images/remove", "remove_image", "Remove or untag an image",
          (Answer(200, "ImageRemoved"),),
          body=(Field("ref", str, required=True, schema=_IMAGE), Field("force", bool, default=False)),
          body_required=True),
    Route("POST", "/v1/images/prune", "prune_images", "Remove untagged images no container uses",
          (Answer(200, "ImagesPruned"),),
          body=(Field("all", bool, default=False, description="every image no container uses"),)),
    Route("POST", "/v1/images/save", "save_images", "Write images as an archive to the passed fd",
          (Answer(200, "ImagesSaved"),),
          body=(Field("refs", list, required=True, schema={"type": "array", "items": _IMAGE,
                                                           "minItems": 1}),
                Field("format", str, default=None,
                      schema={"type": "string", "enum": ["docker", "oci", "both"]})),
          body_required=True, fds="where the archive is written (one fd)"),
    Route("GET", "/v1/system/df", "system_df", "Disk usage: images, shared layers, containers",
          (Answer(200, "SystemDf"),)),
    Route("POST", "/v1/images/pull", "pull_image",
          "Pull an image from a registry; NDJSON progress, then done or error",
          (Answer(200, "PullLine", "application/x-ndjson"),),
          body=(Field("ref", str, required=True, schema=_IMAGE),), body_required=True),
    Route("POST", "/v1/auth/login", "registry_login",
          "Check and store registry credentials (root only)",
          (Answer(200, _obj({"registry": {"type": "string"}, "status": {"type": "string"}},
                            extra=False)),),
          body=(Field("registry", str, required=True, schema=_REGISTRY),
                Field("username", str, required=True, schema={"type": "string", "minLength": 1}),
                Field("password", str, required=True, schema={"type": "string", "minLength": 1})),
          body_required=True),
    Route("POST", "/v1/auth/logout", "registry_logout", "Forget a registry's credentials",
          (Answer(200, _obj({"registry": {"type": "string"}, "removed": {"type": "boolean"}},
                            extra=False)),),
          body=(Field("registry", str, required=True, schema=_REGISTRY),), body_required=True),
]


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

    def load_images(self, req, path):
        from mcd.httpserver import Response
        from mcd.images import archive
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
            elif path:
                if req.peer is not None and req.peer.uid != 0:
                    raise PermissionDenied("loading images from a path needs root; pass an "
                                           "open fd instead")
                src = path
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

    def inspect_image(self, req, ref):
        from mcd.httpserver import Response
        out = self.m.images.inspect(ref)
        out["containers"] = self.m.image_users(out["id"])
        return Response.json(out)

    def image_history(self, req, ref):
        from mcd.httpserver import Response
        return Response.json(self.m.images.history(ref))

    def tag_image(self, req, ref, tag):
        from mcd.httpserver import Response
        image_id = self.m.images.tag(ref, tag)
        return Response.json({"id": image_id, "tag": tag}, 201)

    def remove_image(self, req, ref, force):
        from mcd.httpserver import Response
        return Response.json(self.m.images.remove(ref, force=force,
                                                  users=self.m.image_users))

    def prune_images(self, req, all):
        from mcd.httpserver import Response
        return Response.json(self.m.images.prune(all=all,
                                                 users=self.m.image_users))

    def save_images(self, req, refs, format):
        from mcd.httpserver import Response
        from mcd.images import save
        fds = req.take_fds()
        try:
            if not fds:
                raise InvalidArgument("image save: pass the output as an fd")
            if not refs or not all(isinstance(r, str) for r in refs):
                raise InvalidArgument("image save: name at least one image (a list of strings)")
            fmt = format or "both"
            with os.fdopen(os.dup(fds[0]), "wb") as out:
                written = save.save(self.m.images, refs, out, fmt)
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

    def pull_image(self, req, ref):
        """The pull runs in a thread; its progress events stream as NDJSON lines, the last
        one {"type": "done", ...} or {"type": "error", "error": {...}} (the status is
        already 200 by then). A reference that does not parse is a 400 up front."""
        import queue
        import threading

        from mcd.httpserver import Response
        from mcd.images import pull, reference
        from mcd.errors import MCError, KernelError
        reference.parse(ref)
        events: queue.Queue = queue.Queue()
        store, creds = self.m.images, self._creds()
        insecure = getattr(self.m, "insecure_registries", [])

        def work():
            try:
                res = pull.pull(store, ref, creds=creds, insecure=insecure,
                                progress=events.put)
                events.put({"type": "done", **res})
            except MCError as err:
                events.put({"type": "error", **err.to_wire()})
            except OSError as err:
                events.put({"type": "error",
                            **KernelError.from_oserror("pull", err).to_wire()})
            except Exception as err:     # one line for the user; the daemon logs the rest
                import logging
                logging.getLogger("mcd.images").exception("pull %s", ref)
                events.put({"type": "error", **MCError(f"pull: {err}").to_wire()})

        threading.Thread(target=work, name="image-pull", daemon=True).start()

        def stream():
            while True:
                ev = events.get()
                yield (json.dumps(ev) + "\n").encode()
                if ev["type"] in ("done", "error"):
                    return

        return Response(200, content_type="application/x-ndjson", stream=stream())

    def registry_login(self, req, registry, username, password):
        from mcd.httpserver import Response
        from mcd.images import pull
        if req.peer is not None and req.peer.uid != 0:
            raise PermissionDenied("login stores credentials for the daemon: root only")
        registry = pull.registry_of(registry)
        pull.login(registry, username, password, self._creds(),
                   getattr(self.m, "insecure_registries", []))
        return Response.json({"registry": registry, "status": "Login Succeeded"})

    def registry_logout(self, req, registry):
        from mcd.httpserver import Response
        from mcd.images import pull
        registry = pull.registry_of(registry)
        removed = self._creds().remove(registry)
        return Response.json({"registry": registry, "removed": removed})
