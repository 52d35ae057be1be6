"""Issue 11 item 2 as the user met it: the daemon's root on a full filesystem. `stop` fails
with one line naming state.json and ENOSPC, no temporary file is left in the container's
directory and the container is left as it was (running); a create fails in one line without
a half-made directory; once space is back, the same stop works."""

from __future__ import annotations

import errno
import os
import subprocess

from conftest import wait_for


def _fill(d: str) -> str:
    path = os.path.join(d, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (b"\0" * 65536, b"\0" * 4096, b"\0"):
            while True:
                try:
                    if os.write(fd, chunk) < len(chunk):
                        break
                except OSError as err:
                    assert err.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return path


def _leftovers(root: str) -> list[str]:
    out = []
    for dirpath, dirs, files in os.walk(os.path.join(root, "containers")):
        out += [os.path.join(dirpath, n) for n in dirs + files if n.endswith(".tmp")]
    return out


def test_stop_on_a_full_root_leaves_no_temp_file(make_daemon):
    d = make_daemon()
    os.makedirs(d.root)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0711", "mctest-full", d.root],
                   check=True)
    try:
        d.start()
        d.mcctl("run", "-d", "--name", "full", "minimal", "sleep", "1000", check=0)
        filler = _fill(d.root)
        r = d.mcctl("stop", "-t", "0", "full")
        cdir = os.path.join(d.root, "containers", d.state("full")["id"])
        assert r.returncode == 125, r.stdout + r.stderr
        lines = r.stderr.strip().splitlines()
        assert lines == [f"mcctl: write {cdir}/state.json: No space left on device"], r.stderr
        assert _leftovers(d.root) == []
        # The stop changed nothing: the container still runs, and says so.
        st = d.state("full")
        assert st["status"] == "running" and os.path.exists(f"/proc/{st['pid']}")
        # A new container on the full disk: one line, and no half-made directory.
        r = d.mcctl("run", "--rm", "minimal", "true")
        assert r.returncode == 125 and len(r.stderr.splitlines()) == 1, r.stderr
        assert r.stderr.startswith("mcctl: create container dir ") and \
            r.stderr.endswith(": No space left on device\n"), r.stderr
        assert sorted(os.listdir(os.path.join(d.root, "containers"))) == [st["id"]]
        # Space back: the same stop works.
        os.unlink(filler)
        d.mcctl("stop", "-t", "0", "full", check=0)
        assert d.state("full")["status"] == "stopped"
        d.mcctl("rm", "-f", "full", check=0)
        wait_for(lambda: d.client.get("/v1/containers", all=True) == [], what="removal")
        assert _leftovers(d.root) == []
    finally:
        # Containers, daemon and its supervisor (which listens under ROOT/run, on this
        # tmpfs, and outlives the daemon by design) go before the unmount; the fixture's
        # own check follows.
        if d.proc is not None:
            for c in d.client.get("/v1/containers", all=True):
                d.client.delete(f"/v1/containers/{c['id']}", force=True)
            d.stop()
        d.stop_supervisor()
        subprocess.run(["umount", d.root], check=True)
