"""The error tree: codes cross the wire unchanged and map to Docker's exit codes."""
import errno

import pytest

from mcd import errors


@pytest.mark.parametrize("klass", [errors.InvalidArgument, errors.NotFound, errors.Conflict,
                                   errors.NotRunning, errors.Unsupported, errors.SetupError,
                                   errors.CommandNotFound, errors.CommandNotExecutable])
def test_round_trip_keeps_class_and_fields(klass):
    err = klass("boom", container="web", step="mount", path="/proc", errno=13)
    back = errors.MCError.from_wire(err.to_wire())
    assert type(back) is klass
    assert (back.message, back.container, back.step, back.path, back.errno) == \
        ("boom", "web", "mount", "/proc", 13)
    assert back.exit_code == klass.exit_code


def test_unknown_code_is_kept_not_guessed():
    back = errors.MCError.from_wire({"error": {"code": "SOMETHING_NEW", "message": "x"}}, 418)
    assert back.code == "SOMETHING_NEW" and back.http_status == 418 and back.exit_code == 125


def test_setup_error_exec_maps_to_docker_exit_codes():
    e = errors.setup_error("exec", errno.ENOENT, "/bin/nope")
    assert isinstance(e, errors.CommandNotFound) and e.exit_code == 127
    assert str(e) == 'exec "/bin/nope": No such file or directory'
    e = errors.setup_error("exec", errno.EACCES, "/etc/passwd")
    assert isinstance(e, errors.CommandNotExecutable) and e.exit_code == 126
    e = errors.setup_error("mount /proc", errno.EPERM, container="web")
    assert type(e) is errors.SetupError and e.exit_code == 125
    assert str(e) == "container web: mount /proc: Operation not permitted"


def test_kernel_error_names_call_path_and_errno_text():
    err = OSError(errno.ENOENT, "No such file or directory")
    e = errors.KernelError.from_oserror("mkdir", err, "/sys/fs/cgroup/x")
    assert str(e) == "mkdir /sys/fs/cgroup/x: No such file or directory"
    assert e.errno == errno.ENOENT and e.step == "mkdir"
