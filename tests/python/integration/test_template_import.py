"""Templates through mcctl against a real daemon: a distribution tarball with device nodes
under dev/ imports (one notice naming what was skipped) and its containers run (issue 11
item 3)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO
from mctestlib import debootstrap_like_tar


def test_debootstrap_tarball_imports_with_one_notice_and_runs(daemon, tmpbase):
    archive = os.path.join(tmpbase, "debian12-minbase.tar.gz")
    skipped = debootstrap_like_tar(archive)
    r = daemon.mcctl("template", "import", archive, "deb12", check=0)
    assert r.stdout == "deb12\n"
    assert r.stderr.splitlines() == [
        "mcctl: template import deb12: skipped 10 device nodes and FIFOs (the runtime makes "
        "/dev): " + ", ".join(skipped[:8]) + " and 2 more"]
    r = daemon.mcctl("run", "--rm", "deb12", "sh", "-c",
                     "cat /etc/os-release; echo x > /dev/null && head -c 3 /dev/urandom | wc -c",
                     check=0)
    assert r.stdout.splitlines() == ["ID=debian", 'VERSION_ID="12"', "3"]
    # a streamed import (stdin) says the same
    with open(archive, "rb") as f:
        r = subprocess.run([sys.executable, "-m", "mcctl", "template", "import", "-", "deb12b"],
                           stdin=f, capture_output=True, text=True, cwd=REPO, timeout=60,
                           env=dict(os.environ, MCD_SOCKET=daemon.socket))
    assert r.returncode == 0 and r.stdout == "deb12b\n", r.stderr
    assert "skipped 10 device nodes and FIFOs" in r.stderr and len(r.stderr.splitlines()) == 1
