"""Image references as Docker reads them: [REGISTRY/]REPOSITORY[:TAG][@DIGEST].

    busybox                  -> docker.io/library/busybox:latest
    me/app:1                 -> docker.io/me/app:1
    localhost:5000/app@sha256:..  registry localhost:5000, by digest
    quay.io/org/app          -> quay.io/org/app:latest

The first path component is a registry when it has a '.' or a ':' or is
'localhost' (Docker's rule). Pure logic, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mcd.errors import InvalidArgument

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REGISTRY = re.compile(r"(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str           # with library/ for Docker Hub's official images
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """registry/repository, the key tags are stored under."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def familiar(self) -> str:
        """What Docker shows: busybox:latest, not docker.io/library/busybox:latest."""
        name = self.name
        if self.registry == DEFAULT_REGISTRY:
            name = self.repository
            if name.startswith("library/") and name.count("/") == 1:
                name = name[len("library/"):]
        if self.tag:
            name += ":" + self.tag
        if self.digest:
            name += "@" + self.digest
        return name

    def with_tag(self, tag: str | None) -> "Reference":
        return Reference(self.registry, self.repository, tag, None)


def looks_like_id(text: str) -> bool:
    h = text[len("sha256:"):] if text.startswith("sha256:") else text
    return 1 <= len(h) <= 64 and all(c in "0123456789abcdef" for c in h)


def parse(text: str, default_tag: bool = True) -> Reference:
    """Parse and normalize; InvalidArgument names what is wrong."""
    if not isinstance(text, str) or not text or len(text) > 512 or text != text.strip():
        raise InvalidArgument(f"invalid image reference {text!r}")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidArgument(f"invalid image reference {text!r}: digest must be "
                                  f"sha256:<64 lowercase hex>")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise InvalidArgument(f"invalid image reference {text!r}: bad tag {tag!r}")
    parts = rest.split("/")
    registry = DEFAULT_REGISTRY
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry = parts.pop(0)
        if not _REGISTRY.fullmatch(registry):
            raise InvalidArgument(f"invalid image reference {text!r}: bad registry {registry!r}")
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DEFAULT_REGISTRY
    for p in parts:
        if not _COMPONENT.fullmatch(p):
            raise InvalidArgument(f"invalid image reference {text!r}: repository names are "
                                  f"lowercase letters, digits and . _ - separators")
    if registry == DEFAULT_REGISTRY and len(parts) == 1:
        parts.insert(0, "library")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(registry, "/".join(parts), tag, digest)
