"""Issue 11 item 1 against a real daemon: -v / --tmpfs onto /proc, /sys or /dev are refused
with one line naming the destination, before anything is created; an ordinary bind, a tmpfs
under /dev and a bind onto an allowed /proc file still work."""

from __future__ import annotations

import os

import pytest


@pytest.mark.parametrize("flag,value,dest", [
    ("-v", "{src}:/proc", "/proc"),
    ("-v", "/proc:/proc", "/proc"),
    ("-v", "{src}:/proc/sys:ro", "/proc/sys"),
    ("--tmpfs", "/proc", "/proc"),
    ("--tmpfs", "/proc/acpi", "/proc/acpi"),
    ("-v", "{src}:/sys", "/sys"),
    ("--tmpfs", "/sys", "/sys"),
    ("-v", "/dev:/dev", "/dev"),
    ("--tmpfs", "/dev:size=1m", "/dev"),
])
def test_refused_before_anything_is_created(daemon, tmpbase, flag, value, dest):
    src = os.path.join(tmpbase, "src")
    os.makedirs(src, exist_ok=True)
    r = daemon.mcctl("run", "--rm", "--name", "refused", flag, value.format(src=src),
                     "minimal", "ls", "/proc")
    assert r.returncode == 125, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mcctl: mount destination {dest}:"), r.stderr
    assert r.stdout == ""
    assert daemon.client.get("/v1/containers", all=True) == []
    assert os.listdir(os.path.join(daemon.root, "containers")) == []


def test_ordinary_mounts_still_work(daemon, tmpbase):
    src = os.path.join(tmpbase, "src")
    os.makedirs(src)
    with open(os.path.join(src, "hello"), "w") as f:
        f.write("from the host\n")
    fake = os.path.join(tmpbase, "uptime")
    with open(fake, "w") as f:
        f.write("12345.00 0.00\n")
    r = daemon.mcctl("run", "--rm", "-v", f"{src}:/data:ro", "-v", f"{fake}:/proc/uptime:ro",
                     "--tmpfs", "/dev/shm:size=1m", "minimal", "sh", "-c",
                     "cat /data/hello; cat /proc/uptime; test -e /proc/1/status && echo procfs; "
                     "grep ' /dev/shm ' /proc/mounts | tail -1 | grep -o 'tmpfs.*size=1024k' | cut -c1-5")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n") == ["from the host", "12345.00 0.00", "procfs", "tmpfs", ""]
