"""The mount-destination rule for /proc, /sys and /dev (mcwire.mountdest), alone and as the
spec applies it to -v / --tmpfs mounts (pure logic)."""

from __future__ import annotations

import pytest

from mcd.errors import InvalidArgument
from mcwire.mountdest import PROC_BIND_ALLOWED, check_mount_destination
from mcwire.spec import ContainerSpec, Mount


@pytest.mark.parametrize("dest,mtype", [
    ("/proc", "bind"), ("/proc", "tmpfs"), ("/proc/", "bind"), ("//proc", "bind"),
    ("/proc/.", "tmpfs"), ("/proc/sys", "bind"), ("/proc/sys", "tmpfs"),
    ("/proc/1/root", "bind"), ("/proc/kcore", "bind"), ("/proc/self", "bind"),
    ("/proc/cpuinfo", "tmpfs"),             # the allow-list is for binds only
    ("/proc/net", "bind"),                  # /proc/net/dev is allowed, its parent is not
    ("/sys", "bind"), ("/sys", "tmpfs"), ("/sys/", "bind"),
    ("/dev", "bind"), ("/dev", "tmpfs"), ("/dev/.", "bind"),
    ("/proc", "sysfs"), ("/sys", "proc"),
])
def test_refused(dest, mtype):
    with pytest.raises(InvalidArgument) as ei:
        check_mount_destination(dest, mtype)
    msg = str(ei.value)
    assert msg.startswith("mount destination /"), msg
    assert "\n" not in msg


@pytest.mark.parametrize("dest,mtype", [
    ("/data", "bind"), ("/srv/proc", "bind"), ("/procfs", "bind"), ("/system", "tmpfs"),
    ("/devices", "bind"), ("/proc", "proc"), ("/sys", "sysfs"),
    ("/sys/fs/cgroup", "bind"), ("/sys/fs/cgroup", "tmpfs"),
    ("/dev/shm", "tmpfs"), ("/dev/log", "bind"), ("/dev/mqueue", "tmpfs"),
    *[(p, "bind") for p in PROC_BIND_ALLOWED],
])
def test_allowed(dest, mtype):
    check_mount_destination(dest, mtype)


def test_runc_list_is_what_the_issue_names():
    for p in ("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
              "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
              "/proc/sys/kernel/ns_last_pid"):
        assert p in PROC_BIND_ALLOWED


def test_message_names_the_destination():
    with pytest.raises(InvalidArgument) as ei:
        check_mount_destination("/proc/sys/kernel", "bind")
    assert str(ei.value).startswith("mount destination /proc/sys/kernel: inside /proc")
    with pytest.raises(InvalidArgument) as ei:
        check_mount_destination("/proc", "bind")
    assert str(ei.value) == ("mount destination /proc: a bind mount cannot replace the "
                             "container's procfs (the runtime mounts /proc itself)")


@pytest.mark.parametrize("volume", ["/srv:/proc", "/srv:/proc/sys:ro", "/srv:/sys", "/dev:/dev"])
def test_spec_refuses_volumes(volume):
    with pytest.raises(InvalidArgument) as ei:
        Mount.parse_volume(volume)
    assert "mount destination" in str(ei.value)


@pytest.mark.parametrize("tmpfs", ["/proc", "/proc/acpi:size=1m", "/sys", "/dev"])
def test_spec_refuses_tmpfs(tmpfs):
    with pytest.raises(InvalidArgument):
        Mount.parse_tmpfs(tmpfs)


def test_spec_from_wire_refuses_and_ordinary_mounts_pass():
    base = {"name": "c", "process": {"args": ["sh"]}}
    with pytest.raises(InvalidArgument) as ei:
        ContainerSpec.from_dict(dict(base, mounts=[
            {"destination": "/proc", "type": "bind", "source": "/srv"}]))
    assert str(ei.value).startswith("mount destination /proc:")
    # the positive control: ordinary binds and tmpfs, and the lxcfs-style file binds
    s = ContainerSpec.from_dict(dict(base, mounts=[
        {"destination": "/data", "type": "bind", "source": "/srv"},
        {"destination": "/proc/meminfo", "type": "bind", "source": "/srv/meminfo"},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "tmpfs"}]))
    assert [m.destination for m in s.mounts] == ["/data", "/proc/meminfo", "/dev/shm"]
