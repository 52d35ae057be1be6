"""Self-describing routes: one declaration per route feeds dispatch, validation and OpenAPI.

A ``Route`` says its method and path (path parameters in braces), its query parameters
(``Query``), its JSON body's fields (``Field``) and its answers (``Answer``: status, media
type, schema). From that one declaration:

* ``Router.match`` finds the route (404 / 405 with ``Allow`` otherwise);
* ``Route.arguments`` parses and checks the query and the body, and gives the handler
  keyword arguments (path parameters, each query parameter, each body field, defaults
  filled in), or raises InvalidArgument naming the parameter or field;
* ``openapi`` builds the document served at ``/v1/openapi.json`` (OpenAPI 3.1), with a
  response schema for every route and links that feed identifiers between operations.

What a body field holds beyond its JSON type (a whole ContainerSpec, a Process...) is
checked by its owner (``mcwire.spec``) when the manager builds it; the schema of those
types comes from ``mcwire.schema``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from mcd.errors import CODES, InvalidArgument, MethodNotAllowed, NotFound

_TYPE_NAMES = {bool: "a boolean", int: "an integer", str: "a string", dict: "an object",
               list: "a list"}
_JSON_TYPES = {bool: "boolean", int: "integer", str: "string", dict: "object", list: "array"}


@dataclass(frozen=True)
class Query:
    """A query parameter: its type (bool, int or str), default, and what it may be."""
    name: str
    type: type = str
    default: object = None
    description: str = ""
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None       # for str; full match
    required: bool = False

    def parse(self, raw: str | None):
        if raw is None or (raw == "" and self.type is not bool):
            if self.required:
                raise InvalidArgument(f"query parameter {self.name} is required")
            return self.default
        if self.type is bool:
            v = raw.lower()
            if v in ("1", "true", "yes", ""):
                return True
            if v in ("0", "false", "no"):
                return False
            raise InvalidArgument(f"query parameter {self.name}: expected 1 or 0, got {raw!r}")
        if self.type is int:
            try:
                n = int(raw)
            except ValueError:
                raise InvalidArgument(
                    f"query parameter {self.name}: expected an integer, got {raw!r}") from None
            if (self.minimum is not None and n < self.minimum) or \
                    (self.maximum is not None and n > self.maximum):
                raise InvalidArgument(f"query parameter {self.name}: {n} is out of range "
                                      f"[{self.minimum}, {self.maximum}]")
            return n
        if self.pattern is not None and not re.fullmatch(self.pattern, raw):
            raise InvalidArgument(f"query parameter {self.name}: invalid value {raw!r}")
        return raw

    def schema(self) -> dict:
        s: dict = {"type": _JSON_TYPES[self.type]}
        for key in ("minimum", "maximum"):
            if getattr(self, key) is not None:
                s[key] = getattr(self, key)
        if self.pattern is not None:
            s["pattern"] = f"^(?:{self.pattern})$"
        if self.default is not None:
            s["default"] = self.default
        return s


@dataclass(frozen=True)
class Field:
    """A field of a JSON request body: its JSON type, and its schema when it says more."""
    name: str
    type: type
    required: bool = False
    default: object = None
    schema: dict | None = None      # default: the plain JSON type
    description: str = ""

    def json_schema(self) -> dict:
        s = dict(self.schema) if self.schema else {"type": _JSON_TYPES[self.type]}
        if self.description:
            s["description"] = self.description
        return s


@dataclass(frozen=True)
class Answer:
    """One answer of a route: status, media type, schema (a component name or a schema)."""
    status: int
    schema: str | dict
    media: str = "application/json"
    description: str = "OK"

    def json_schema(self) -> dict:
        if isinstance(self.schema, str):
            return {"$ref": f"#/components/schemas/{self.schema}"}
        return self.schema


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: this route's answer (status) feeds ``operation``'s parameter."""
    status: int
    operation: str
    parameter: str
    expression: str        # e.g. $response.body#/id


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: str                      # the Api method, and the operationId
    summary: str
    answers: tuple[Answer, ...]
    query: tuple[Query, ...] = ()
    body: tuple[Field, ...] | None = None
    body_required: bool = False
    links: tuple[Link, ...] = ()
    fds: str = ""                     # what file descriptors ride on the request, if any
    path_types: tuple = ()            # (name, component) for a path parameter not in PATH_PARAMS
    body_rules: tuple = ()            # (keyword, value): JSON Schema rules across body fields
    regex: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "regex", re.compile(
            "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$"))

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)

    def arguments(self, req, path_args: dict) -> dict:
        """The handler's keyword arguments: path parameters, query, body fields."""
        kw = dict(path_args)
        for q in self.query:
            kw[q.name] = q.parse(req.query.get(q.name))
        if self.body is not None:
            kw.update(self._body(req.json() if req.body.strip() or self.body_required else {}))
        return kw

    def _body(self, body) -> dict:
        if not isinstance(body, dict):
            raise InvalidArgument("request: expected a JSON object")
        known = {f.name: f for f in self.body}
        unknown = sorted(set(body) - set(known))
        if unknown:
            raise InvalidArgument(f"request: unknown field(s) {', '.join(unknown)}")
        out = {}
        for f in self.body:
            if f.name not in body:
                if f.required:
                    raise InvalidArgument(f"request: the field {f.name} is required")
                out[f.name] = f.default
                continue
            v = body[f.name]
            if (f.type is int and isinstance(v, bool)) or not isinstance(v, f.type):
                got = json.dumps(v)[:40]
                raise InvalidArgument(f"request.{f.name}: expected {_TYPE_NAMES[f.type]}, got {got}")
            out[f.name] = v
        return out

    def operation(self) -> dict:
        responses = {}
        for a in self.answers:
            r = responses.setdefault(str(a.status), {"description": a.description, "content": {}})
            r["content"][a.media] = {"schema": a.json_schema()}
        for ln in self.links:
            r = responses[str(ln.status)]
            r.setdefault("links", {})[f"{ln.operation}_{ln.parameter}"] = {
                "operationId": ln.operation, "parameters": {ln.parameter: ln.expression}}
        responses["default"] = {"description": "an error (docs/api.md, Errors)", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        op: dict = {"operationId": self.handler, "summary": self.summary, "responses": responses}
        types = {**PATH_PARAMS, **dict(self.path_types)}
        params = [{"name": n, "in": "path", "required": True,
                   "schema": {"$ref": f"#/components/schemas/{types[n]}"}}
                  for n in self.path_params]
        params += [{"name": q.name, "in": "query", "required": q.required, "schema": q.schema(),
                    **({"description": q.description} if q.description else {})}
                   for q in self.query]
        if params:
            op["parameters"] = params
        if self.fds:
            op["description"] = f"File descriptors (SCM_RIGHTS on the Unix socket): {self.fds}"
        if self.body is not None:
            schema = {"type": "object", "additionalProperties": False,
                      "properties": {f.name: f.json_schema() for f in self.body}}
            required = [f.name for f in self.body if f.required]
            if required:
                schema["required"] = required
            schema.update(dict(self.body_rules))
            op["requestBody"] = {"required": self.body_required, "content": {
                "application/json": {"schema": schema}}}
        return op


# The schema each path parameter name has (a component, so clients can reuse it).
PATH_PARAMS = {"ref": "ContainerRef", "name": "TemplateName"}


class Router:
    def __init__(self, routes):
        self.routes = list(routes)

    def match(self, method: str, path: str) -> tuple[Route, dict]:
        allowed = []
        for r in self.routes:
            m = r.regex.match(path)
            if m:
                if r.method == method or (r.method == "GET" and method == "HEAD"):
                    return r, m.groupdict()
                allowed.append(r.method)
        if allowed:
            err = MethodNotAllowed(f"{method} {path}: use {', '.join(allowed)}")
            err.allowed = allowed           # for the Allow header
            raise err
        raise NotFound(f"no such endpoint: {method} {path}")


def openapi(routes, *, version: str, schemas: dict, description: str) -> dict:
    paths: dict = {}
    for r in routes:
        paths.setdefault(r.path, {})[r.method.lower()] = r.operation()
    error = {"type": "object", "required": ["error"], "additionalProperties": False,
             "properties": {"error": {
                 "type": "object", "required": ["code", "message"],
                 "properties": {"code": {"type": "string", "enum": sorted(CODES)},
                                "message": {"type": "string"},
                                "container": {"type": "string"}, "step": {"type": "string"},
                                "path": {"type": "string"}, "errno": {"type": "integer"},
                                "details": {"type": "object"}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "mcd API", "version": version, "description": description},
        "paths": paths,
        "components": {"schemas": {**schemas, "Error": error}},
    }
