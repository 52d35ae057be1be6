"""Every setup failure names its step; a hostile rootfs never leads setup outside it."""

from __future__ import annotations

import os
import uuid

import pytest

from mcd import errors
from mcd.runtime import launcher
from mcd.store import ContainerPaths
from mcwire.spec import Mount, Root, User
from conftest import make_spec



def start_fails(run_container, args, **kw) -> errors.SetupError:
    spec = make_spec(args, **kw.pop("spec_kw", {}))
    with pytest.raises(errors.SetupError) as ei:
        run_container(args, spec=spec, **kw)
    err = ei.value
    assert str(err).startswith(f"container {spec.name}: ")
    assert "Traceback" not in str(err) and "\n" not in str(err)
    return err


def test_command_not_found_is_127(run_container):
    err = start_fails(run_container, ["/bin/nope"])
    assert isinstance(err, errors.CommandNotFound) and err.exit_code == 127
    assert str(err).endswith('exec "/bin/nope": No such file or directory')
    assert err.step == "exec"


def test_command_not_found_on_path(run_container):
    err = start_fails(run_container, ["nope-cmd"])
    assert str(err).endswith('exec "nope-cmd": No such file or directory')


def test_not_executable_is_126(run_container):
    err = start_fails(run_container, ["/etc/passwd"])
    assert isinstance(err, errors.CommandNotExecutable) and err.exit_code == 126
    assert str(err).endswith('exec "/etc/passwd": Permission denied')


def test_cgroup_join_failure(run_container):
    err = start_fails(run_container, ["true"], cgroup_procs=["/nonexistent/cgroup.procs"])
    assert str(err).endswith("join cgroup /nonexistent/cgroup.procs: No such file or directory")
    assert err.step == "join cgroup"


def test_missing_bind_source(run_container):
    err = start_fails(run_container, ["true"],
                      spec_kw={"mounts": [Mount.parse_volume("/nonexistent-mct:/data")]})
    assert str(err).endswith("bind source /nonexistent-mct: No such file or directory")


def test_bind_destination_through_a_file(run_container, leak_check_root):
    err = start_fails(run_container, ["true"],
                      spec_kw={"mounts": [Mount.parse_volume(f"{leak_check_root}:/etc/passwd/sub")]})
    assert str(err).endswith("mount /etc/passwd/sub: Not a directory")


def test_chdir_denied(run_container):
    err = start_fails(run_container, ["true"], spec_kw={"user": User(uid=1000, gid=1000),
                                                        "cwd": "/root"})
    assert str(err).endswith("chdir /root: Permission denied")


def test_workdir_on_readonly_root(run_container):
    err = start_fails(run_container, ["true"], spec_kw={"root": Root(readonly=True),
                                                        "cwd": "/newdir"})
    assert str(err).endswith("mkdir workdir /newdir: Read-only file system")


def test_failed_start_leaves_no_exit_record(run_container, runtime_root):
    spec = make_spec(["/bin/nope"])
    with pytest.raises(errors.CommandNotFound):
        run_container(None, spec=spec)
    paths = ContainerPaths(dir=os.path.join(runtime_root, "containers", spec.name),
                                    lower="/")
    assert launcher.read_exit(paths) is None


# ---------------------------------------------------------------- hostile rootfs

def _host_target(leak_check_root: str) -> str:
    d = os.path.join(leak_check_root, "host-target-" + uuid.uuid4().hex[:6])
    os.mkdir(d)
    with open(os.path.join(d, "keep"), "w") as f:
        f.write("host data\n")
    return d


def _upper_with(runtime_root: str, name: str, links: dict) -> None:
    """Plant symlinks in a container's upper dir, as a previous run of it could have."""
    upper = os.path.join(runtime_root, "containers", name, "upper")
    for rel, target in links.items():
        path = os.path.join(upper, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)


def _host_mounts(*needles: str) -> list[str]:
    """Host mount lines naming any of the paths (others' tests mount things meanwhile)."""
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if any(n in line for n in needles)]


@pytest.mark.parametrize("entry", ["proc", "sys", "dev"])
def test_symlinked_system_dir_cannot_leave_the_rootfs(run_container, runtime_root,
                                                       leak_check_root, entry):
    target = _host_target(leak_check_root)
    spec = make_spec(["true"])
    _upper_with(runtime_root, spec.name, {entry: "/../../../../../../.." + target})
    with pytest.raises(errors.SetupError) as ei:
        run_container(None, spec=spec)
    # resolved inside the rootfs, where that path does not exist
    assert str(ei.value).endswith(f"mount /{entry}: No such file or directory")
    assert os.listdir(target) == ["keep"]
    assert _host_mounts(target) == []


def test_symlinked_dev_pointing_inside_stays_inside(run_container, runtime_root):
    spec = make_spec(["sh", "-c", "ls /tmp | tr '\\n' ' '"])
    _upper_with(runtime_root, spec.name, {"dev": "/tmp"})
    r = run_container(None, spec=spec)
    assert r.code == 0, r.stderr
    assert "null" in r.stdout.split() and "pts" in r.stdout.split()


def test_symlinked_etc_hostname_never_writes_the_host(run_container, runtime_root,
                                                      leak_check_root):
    target = _host_target(leak_check_root)
    host_file = os.path.join(target, "keep")
    spec = make_spec(["true"])
    _upper_with(runtime_root, spec.name, {"etc/hostname": "/../../../../../.." + host_file})
    # The dangling link's target is made inside the rootfs (as runc does), never outside.
    r = run_container(None, spec=spec)
    assert r.code == 0, r.stderr
    with open(host_file) as f:
        assert f.read() == "host data\n"
    assert _host_mounts(host_file) == []
    assert os.path.isfile(os.path.join(runtime_root, "containers", spec.name, "upper",
                                       host_file.lstrip("/")))


def test_dangling_resolv_conf_link_gets_its_target_inside(run_container, runtime_root):
    # Ubuntu's layout (systemd-resolved): the link is kept, the file it names is made and
    # the daemon's resolv.conf bound over it; the container starts and reads it.
    spec = make_spec(["sh", "-c", "cat /etc/resolv.conf >/dev/null && readlink /etc/resolv.conf "
                      "&& cat /etc/hostname"])
    _upper_with(runtime_root, spec.name,
                {"etc/resolv.conf": "../run/systemd/resolve/stub-resolv.conf"})
    r = run_container(None, spec=spec)
    assert r.code == 0, r.stderr
    assert r.stdout.splitlines()[0] == "../run/systemd/resolve/stub-resolv.conf"


def test_a_symlink_loop_at_a_file_destination_is_refused(run_container, runtime_root):
    spec = make_spec(["true"])
    _upper_with(runtime_root, spec.name, {"etc/hostname": "/etc/hostname"})
    with pytest.raises(errors.SetupError) as ei:
        run_container(None, spec=spec)
    assert str(ei.value).endswith("mount /etc/hostname: Too many levels of symbolic links")


def test_symlinked_bind_destination_never_covers_the_host(run_container, runtime_root,
                                                           leak_check_root):
    target = _host_target(leak_check_root)
    src = _host_target(leak_check_root)
    spec = make_spec(["true"], mounts=[Mount.parse_volume(f"{src}:/data")])
    _upper_with(runtime_root, spec.name, {"data": "../../../../../../.." + target})
    with pytest.raises(errors.SetupError) as ei:
        run_container(None, spec=spec)
    assert str(ei.value).endswith("mount /data: No such file or directory")
    assert _host_mounts(target, src) == []
    assert os.listdir(target) == ["keep"]


def test_symlinked_workdir_stays_inside(run_container, runtime_root, leak_check_root):
    target = _host_target(leak_check_root)
    spec = make_spec(["sh", "-c", "touch made-here"], cwd="/w")
    _upper_with(runtime_root, spec.name, {"w": "/../../../../../.." + target})
    # after pivot_root the container's / is the only root: the link dangles inside it
    with pytest.raises(errors.SetupError) as ei:
        run_container(None, spec=spec)
    assert str(ei.value).endswith("mkdir workdir /w: File exists")
    assert os.listdir(target) == ["keep"]
