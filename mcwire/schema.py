"""JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of the spec's types, as strict as its rules.

Each schema is built from the dataclass's own fields (a field added to ``mcwire.spec``
appears here by itself, typed from ``_types`` and ``_nested``); ``CONSTRAINTS`` adds what
each field's rule in ``mcwire.spec`` checks, where JSON Schema can say it (ranges, patterns,
enums, lengths). The rules that cross fields (memory_swap >= memory, a user namespace needs
mappings, no two mounts at one destination, the /proc /sys /dev rule, no '..' in a path)
are only in the spec's code and are described in docs/api.md. The daemon's OpenAPI document
(``GET /v1/openapi.json``) takes these as its components.

Imported only by the daemon's route table and by tests: not on mcctl's path.
"""

from __future__ import annotations

import dataclasses

from mcwire import spec as S
from mcwire.units import CAPABILITIES

_U32 = 2 ** 32 - 1
_NO_NUL = "^[^\\x00]*$"
_ABS_PATH = "^/[^\\x00]*$"
NAME_PATTERN = "^" + S.NAME_RE.pattern + "$"
_HOSTNAME = "^(" + S.HOSTNAME_RE.pattern + ")?$"
RESTART_POLICY_PATTERN = "^(no|always|unless-stopped|on-failure(:0*[1-9][0-9]*)?)$"
_CPU_LIST = "^\\d+(-\\d+)?(,\\d+(-\\d+)?)*$"
# An image as a request names it: an ID (or its prefix), or a reference in the grammar
# mcd.images.reference parses ([registry/]name[:tag][@digest], lowercase path components).
_COMPONENT = "[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*"
_IMAGE_NAME = (f"(([a-zA-Z0-9-]+(\\.[a-zA-Z0-9-]+)*|\\[[0-9a-fA-F:]+\\])(:[0-9]+)?/)?"
               f"{_COMPONENT}(/{_COMPONENT})*")
IMAGE_TAG_PATTERN = f"{_IMAGE_NAME}(:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
IMAGE_REF_PATTERN = f"(sha256:)?[0-9a-f]{{12,64}}|{IMAGE_TAG_PATTERN}(@sha256:[0-9a-f]{{64}})?"
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = f"{_OCTET}(\\.{_OCTET}){{3}}"


def _id(lo=0, hi=_U32 - 1):
    return {"type": "integer", "minimum": lo, "maximum": hi}


def _limit(lo, hi, unlimited=True):
    """An optional limit: null (not set), -1 (none) where the rule allows it, or [lo, hi]."""
    ranges = [{"type": "integer", "minimum": lo, "maximum": hi}]
    if unlimited:
        ranges.append({"const": -1})
    return {"anyOf": [{"type": "null"}, *ranges]}


# (class name, field) -> the constraints of its rule in mcwire.spec.
CONSTRAINTS = {
    ("ContainerSpec", "name"): {"type": "string", "pattern": NAME_PATTERN},
    ("ContainerSpec", "hostname"): {"type": "string", "pattern": _HOSTNAME, "maxLength": 253},
    ("ContainerSpec", "restart_policy"): {"type": "string", "pattern": RESTART_POLICY_PATTERN},
    ("ContainerSpec", "stop_timeout"): {"type": "integer", "minimum": 0, "maximum": 3600},
    ("ContainerSpec", "labels"): {"type": "object", "additionalProperties": {"type": "string"}},
    ("Process", "args"): {"type": "array", "items": {"type": "string", "pattern": _NO_NUL},
                          "prefixItems": [{"type": "string", "pattern": _NO_NUL, "minLength": 1}]},
    ("Process", "env"): {"type": "array", "items": {
        "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*=[^\\x00]*$"}},
    ("Process", "cwd"): {"type": "string", "pattern": _ABS_PATH},
    ("Process", "capabilities"): {"type": "array", "items": {
        "type": "string", "enum": sorted(CAPABILITIES, key=CAPABILITIES.get)}},
    ("Process", "console_size"): {"type": "array", "items": _id(0, 65535),
                                  "anyOf": [{"maxItems": 0}, {"minItems": 2, "maxItems": 2}]},
    ("User", "uid"): _id(),
    ("User", "gid"): _id(),
    ("User", "additional_gids"): {"type": "array", "items": _id()},
    ("Root", "template"): {"type": "string"},
    ("Root", "image"): {"type": "string", "pattern": f"^({IMAGE_REF_PATTERN})?$"},
    ("Mount", "destination"): {"type": "string", "pattern": _ABS_PATH},
    ("Mount", "type"): {"type": "string", "enum": ["bind", "tmpfs"]},
    ("Mount", "source"): {"type": "string", "pattern": _NO_NUL},
    ("Mount", "options"): {"type": "array", "items": {"type": "string", "pattern": "^[^,\\x00]*$"}},
    ("IDMapping", "container_id"): _id(0, _U32),
    ("IDMapping", "host_id"): _id(0, _U32 - 1),
    ("IDMapping", "size"): _id(1, _U32),
    ("Resources", "cpu_shares"): _limit(2, 262144, unlimited=False),
    ("Resources", "cpu_quota"): _limit(1000, 2 ** 44),
    ("Resources", "cpu_period"): _limit(1000, 1_000_000, unlimited=False),
    ("Resources", "cpuset_cpus"): {"anyOf": [{"type": "null"},
                                             {"type": "string", "pattern": _CPU_LIST}]},
    ("Resources", "memory"): _limit(6 * 1024 * 1024, 2 ** 62),
    ("Resources", "memory_swap"): _limit(6 * 1024 * 1024, 2 ** 62),
    ("Resources", "pids_limit"): _limit(1, 4194304),
    ("Linux", "namespaces"): {"type": "array", "uniqueItems": True,
                              "items": {"type": "string", "enum": list(S.ALL_NAMESPACES)},
                              "allOf": [{"contains": {"const": "pid"}},
                                        {"contains": {"const": "mount"}}]},
    ("Linux", "masked_paths"): {"type": "array", "items": {"type": "string", "pattern": _ABS_PATH}},
    ("Linux", "readonly_paths"): {"type": "array", "items": {"type": "string", "pattern": _ABS_PATH}},
    ("Linux", "seccomp"): {"type": "string", "enum": ["default", "unconfined"]},
    ("Networking", "mode"): {"type": "string", "pattern": f"^(|none|host|{S.NAME_RE.pattern})$"},
    ("Networking", "ip"): {"type": "string", "pattern": f"^({IPV4})?$"},
    ("Networking", "aliases"): {"type": "array", "items": {"type": "string", "pattern": _HOSTNAME,
                                                           "minLength": 1}},
    ("Networking", "dns"): {"type": "array", "items": {"type": "string", "pattern": f"^{IPV4}$"}},
    ("Networking", "extra_hosts"): {"type": "array", "items": {
        "type": "object", "required": ["name", "ip"], "additionalProperties": False,
        "properties": {"name": {"type": "string", "pattern": _HOSTNAME, "minLength": 1},
                       "ip": {"type": "string", "pattern": f"^{IPV4}$"}}}},
    ("PortMapping", "container_port"): _id(1, 65535),
    ("PortMapping", "host_port"): _id(0, 65535),
    ("PortMapping", "host_ip"): {"type": "string", "pattern": f"^({IPV4})?$"},
    ("PortMapping", "protocol"): {"type": "string", "enum": ["tcp", "udp"]},
}

_JSON_TYPES = {int: "integer", str: "string", bool: "boolean", list: "array", dict: "object",
               float: "number"}
# Every class of the spec (a class added there gets a schema by itself).
SPEC_CLASSES = tuple(c for c in vars(S).values() if isinstance(c, type) and issubclass(c, S._Strict)
                     and c is not S._Strict and dataclasses.is_dataclass(c))
# Without an image, a spec runs a template and needs a command of its own; with one
# (root.image: a reference or an ID, mcd.images.config) the command may come from the image.
_NO_IMAGE = {
    "if": {"required": ["root"], "properties": {"root": {
        "required": ["image"], "properties": {"image": {"minLength": 1}}}}},
    "else": {"required": ["process"], "properties": {
        "process": {"required": ["args"], "properties": {"args": {"minItems": 1}}},
        "root": {"properties": {"template": {"pattern": NAME_PATTERN}}}}},
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def spec_schemas() -> dict:
    """{class name: schema} for every spec class, and ExecProcess (a Process whose fields all
    default to the container's own)."""
    out = {}
    for cls in SPEC_CLASSES:
        props = {}
        for f in dataclasses.fields(cls):
            nested = cls._nested.get(f.name)
            if isinstance(nested, list):
                props[f.name] = {"type": "array", "items": _ref(nested[0].__name__)}
            elif nested is not None:
                props[f.name] = _ref(nested.__name__)
            elif (cls.__name__, f.name) in CONSTRAINTS:
                props[f.name] = dict(CONSTRAINTS[cls.__name__, f.name])
            elif f.name in cls._types:
                props[f.name] = {"type": _JSON_TYPES.get(cls._types[f.name], "string")}
            else:
                props[f.name] = {}
        out[cls.__name__] = {"type": "object", "additionalProperties": False, "properties": props}
    out["Mount"]["required"] = ["destination"]      # its default ("") is refused
    out["ExecProcess"] = {**out["Process"], "description": "Fields not given are the "
                          "container's own (env is merged by variable name)."}
    # A create request may also give an entrypoint (prepended to args; with an image it
    # replaces the image's), and needs a command unless it runs an image.
    out["Process"] = {**out["Process"], "properties": {
        **out["Process"]["properties"],
        "entrypoint": {"type": "array", "items": {"type": "string", "pattern": _NO_NUL}}}}
    out["ContainerSpec"].update(_NO_IMAGE)
    return out
