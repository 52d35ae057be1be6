"""Names for containers created without one (adjective_scientist, as Docker does), and the
hostname a container gets from its name."""

from __future__ import annotations

import random

from mcd.errors import Conflict
from mcwire.spec import HOSTNAME_RE

ADJECTIVES = ("brave", "calm", "clever", "eager", "fancy", "gentle", "happy", "jolly", "keen",
              "lucid", "mellow", "nifty", "proud", "quiet", "rapid", "sharp", "silly", "sunny",
              "tender", "vivid", "witty", "zen", "bold", "cosy", "dreamy", "epic", "frosty",
              "gallant", "hungry", "kind", "lively", "modest", "noble", "polite", "quirky",
              "relaxed", "serene", "trusting", "upbeat", "wizardly")
NOUNS = ("turing", "lovelace", "hopper", "ritchie", "thompson", "torvalds", "knuth", "dijkstra",
         "hamilton", "noether", "curie", "tesla", "babbage", "shannon", "mccarthy", "liskov",
         "lamport", "wirth", "backus", "kernighan", "pike", "stallman", "cerf", "berners",
         "goldberg", "perlman", "allen", "feynman", "euler", "gauss", "hypatia", "kepler",
         "newton", "pascal", "ramanujan", "sammet", "wozniak", "yonath", "zuse", "bell")


def generate_name(taken) -> str:
    """A free name; past 20 tries a number is added."""
    rnd = random.SystemRandom()
    for i in range(100):
        name = f"{rnd.choice(ADJECTIVES)}_{rnd.choice(NOUNS)}"
        if i > 20:
            name += str(rnd.randrange(100))
        if name not in taken:
            return name
    raise Conflict("could not generate a free container name")


def hostname_for(name: str, cid: str) -> str:
    """The container's name as a hostname (names allow '_', hostnames do not)."""
    host = name.replace("_", "-").strip("-.")[:63].strip("-.")
    return host if host and HOSTNAME_RE.fullmatch(host) else cid[:12]
