"""Templates become images across a daemon upgrade (issue 14), with a state directory
written by the OLD code: the daemon of commit c0fe02f (before images existed), taken with
``git archive`` into a temp dir and run from there on the same root. It builds its
``minimal`` template, makes a template from a directory, starts a container and runs
another to its exit. Then it stops (its containers keep running) and today's daemon
starts on that root:

- the running container is re-adopted, still runs, restarts; the exited one starts again
  (both keep their old template tree as their lowerdir, and their upper dirs);
- both templates are one-layer images now (``image ls``, ``template ls``); the tree of the
  one no container names is gone, minimal's stays while its containers do;
- ``run minimal`` runs from the image; ``template rm``/``image rm`` are refused in use;
- a second start changes nothing (idempotent); once the old containers are gone, the
  next start removes minimal's old tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, wait_for

OLD = "c0fe02f"


def _old_tree(base: str) -> str:
    d = os.path.join(base, "old-mcd")
    os.mkdir(d)
    have = subprocess.run(["git", "-C", REPO, "cat-file", "-e", f"{OLD}^{{commit}}"],
                          capture_output=True)
    if have.returncode != 0:
        pytest.fail(f"commit {OLD} (the pre-images daemon) is not in this clone: the upgrade "
                    f"test needs the project's history (git fetch --unshallow)")
    archive = subprocess.run(["git", "-C", REPO, "archive", OLD, "mcd"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", d], input=archive, check=True)
    return d


def _start_old(daemon, old: str) -> subprocess.Popen:
    with open(os.path.join(daemon.base, "none.toml"), "w"):
        pass
    log = open(os.path.join(daemon.base, "old-mcd.log"), "ab")
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=old)
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcd", "--socket", daemon.socket, "--root", daemon.root,
         "--cgroup-parent", daemon.tag, "--log-level", "debug", "--web-listen", "off",
         "--config", os.path.join(daemon.base, "none.toml")],
        cwd=old, env=env, stdout=log, stderr=log, start_new_session=True)
    log.close()
    daemon.proc = proc          # answers() and stop() work on it; cleanup() stops the new one
    wait_for(daemon.answers, 60, "the old daemon to answer")
    return proc


def test_old_template_containers_survive_the_upgrade(make_daemon, tmpbase):
    old = _old_tree(tmpbase)
    d = make_daemon()
    _start_old(d, old)
    # The old code at work: its API, its template store.
    assert d.api("GET", "/v1/version")[1].get("version")
    tree = os.path.join(tmpbase, "tree")
    os.makedirs(os.path.join(tree, "etc"))
    os.makedirs(os.path.join(tree, "bin"))
    shutil.copy2("/bin/busybox", os.path.join(tree, "bin", "busybox"))
    with open(os.path.join(tree, "etc", "greeting"), "w") as f:
        f.write("from a dir\n")
    st, body = d.api("POST", "/v1/templates", {"name": "fromdir", "path": tree})
    assert st == 201, body
    running = d.api_run("oldrun", ["sh", "-c", "echo up > /state; sleep 1000"])
    d.api_run("oldexit", ["sh", "-c", "echo $(( $(cat /n 2>/dev/null || echo 0) + 1 )) > /n; "
                                      "cat /n"])
    wait_for(lambda: d.status_of("oldexit") == "stopped", 30, "oldexit to exit")   # the old word
    troot = os.path.join(d.root, "templates")
    assert sorted(os.listdir(troot)) == [".lock", "fromdir", "minimal"]
    old_pid = d.state("oldrun")["pid"]
    d.stop()                                        # the old daemon, by pid

    d.start()                                       # today's daemon, same root
    assert d.state("oldrun")["status"] == "running"
    assert d.state("oldrun")["pid"] == old_pid
    assert d.mcctl("exec", "oldrun", "cat", "/state", check=0).stdout == "up\n"
    # Both templates are images now; the old tree no container names is gone.
    images = d.client.get("/v1/images")
    assert sorted(t for i in images for t in i["tags"]) == ["fromdir:latest", "minimal:latest"]
    assert all(i["layers"] == 1 for i in images)
    names = [t["name"] for t in d.client.get("/v1/templates")]
    assert names == ["fromdir", "minimal"]
    assert sorted(os.listdir(troot)) == [".lock", "minimal"]
    assert "template fromdir: now image" in d.log()
    # The old containers keep their tree and their upper dirs.
    d.mcctl("restart", "oldrun", check=0)
    assert d.state("oldrun")["status"] == "running"
    assert d.mcctl("exec", "oldrun", "cat", "/state", check=0).stdout == "up\n"
    assert d.mcctl("start", "-a", "oldexit", check=0).stdout == "2\n"
    # New containers from the same names run from the images.
    assert d.mcctl("run", "--rm", "fromdir", "/bin/busybox", "cat", "/etc/greeting",
                   check=0).stdout \
        == "from a dir\n"
    r = d.mcctl("run", "-d", "--name", "newrun", "minimal", "sleep", "1000", check=0)
    assert d.state("newrun")["image"] == [i["id"] for i in d.client.get("/v1/images")
                                         if "minimal:latest" in i["tags"]][0]
    assert d.state("newrun")["template"] == "minimal"
    # In use: refused, by template and by image.
    r = d.mcctl("template", "rm", "minimal", check=125)
    assert r.stderr == ('mcctl: template "minimal" is used by container(s) newrun, oldexit, '
                        'oldrun\n')
    r = d.mcctl("image", "rm", "minimal", check=125)
    assert "in use by container(s) newrun" in r.stderr
    # A second start of today's daemon: nothing to migrate, nothing changes.
    before = d.client.get("/v1/images")
    d.restart()
    assert d.client.get("/v1/images") == before
    assert sorted(os.listdir(troot)) == [".lock", "minimal"]
    assert d.state("oldrun")["status"] == "running"
    # The old containers gone, the next start removes minimal's old tree.
    d.mcctl("rm", "-f", "oldrun", "oldexit", check=0)
    d.restart()
    assert sorted(os.listdir(troot)) == [".lock"]
    assert d.state("newrun")["status"] == "running"
    assert d.mcctl("exec", "newrun", "true").returncode == 0
    d.mcctl("rm", "-f", "newrun", check=0)
    d.mcctl("template", "rm", "minimal", "fromdir", check=0)
    assert d.client.get("/v1/images") == []
    assert d.client.get("/v1/templates") == []
