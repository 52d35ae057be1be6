"""Network setup inside a new network namespace: bring up the loopback link.

A new netns holds only ``lo``, down. Two ioctls are all it takes; no netlink needed.
"""

from __future__ import annotations

import fcntl
import socket
import struct

from mcd.errors import KernelError

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def link_up(name: str = "lo") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            ifreq = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", name.encode(), 0))
            flags = struct.unpack("16sH14x", ifreq)[1]
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | IFF_UP))
        except OSError as err:
            raise KernelError.from_oserror("link up", err, name) from err
