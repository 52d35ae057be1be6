"""The README's mcctl lines, run verbatim against a private daemon, so the README cannot
drift from the CLI (issue 11 item 4: its `template import` example had the arguments the
wrong way round).

Every command line of a ```sh block of README.md that calls mcctl is run as written, in
order, by bash, in a scratch directory; `mcctl` on PATH is this checkout's CLI pointed at
the test's daemon (MCD_SOCKET). Lines with `-it` run on a pseudo-terminal that types
`exit`; a follow (`logs -f`) runs for a moment and must still be following when stopped.
A line that is not safe to run here is skipped only by an entry in UNSAFE, with the
reason; the test fails on a README line it cannot classify or that fails, and it names it.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time

from conftest import REPO
from mctestlib import debootstrap_like_tar

README = os.path.join(REPO, "README.md")
SHELL_FENCES = {"sh", "bash", "shell", "console"}

# Patterns of lines that must not run against a test daemon, and why (the daemon has a
# network namespace of its own, so network flags are safe). None match today's README; a
# line that matches is reported as skipped, never silently dropped.
UNSAFE = {
    r"(-v|--volume)[ =]/(etc|usr|boot|var|root|home|proc|sys|dev)?[:/]":
        "binds a system directory of the machine into a container",
    r"--privileged|--cap-add[ =](ALL|SYS_ADMIN)": "gives a container the machine",
}


def strip_comment(line: str) -> str:
    """The command part of a shell line: up to an unquoted '#' that starts a word."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def readme_mcctl_lines(path: str = README) -> list[str]:
    out, fence = [], None
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.startswith("```"):
                fence = None if fence is not None else line[3:].strip()
                continue
            if fence not in SHELL_FENCES:
                continue
            cmd = strip_comment(line)
            words = shlex.split(cmd) if cmd else []
            # mcctl as a command: first word, or first word after && || ; |
            starts = [0] + [i + 1 for i, w in enumerate(words) if w in ("&&", "||", ";", "|")]
            if any(i < len(words) and words[i] == "mcctl" for i in starts):
                out.append(cmd)
    return out


def test_extraction_finds_the_commands_and_only_them(tmp_path):
    md = tmp_path / "r.md"
    md.write_text("```sh\nmcctl ps   # comment with mcctl\nsudo usermod -aG mcd al  # use mcctl\n"
                  "make x && mcctl info\necho '#not a comment' | mcctl run -i minimal cat\n```\n"
                  "```\nmcctl ──HTTP──┐\n```\nmcctl outside a fence\n")
    assert readme_mcctl_lines(str(md)) == [
        "mcctl ps", "make x && mcctl info", "echo '#not a comment' | mcctl run -i minimal cat"]


def _unsafe(cmd: str) -> str | None:
    return next((why for pat, why in UNSAFE.items() if re.search(pat, cmd)), None)


def test_unsafe_patterns():
    for cmd in ("mcctl run -v /:/host minimal ls", "mcctl run --volume=/etc:/e minimal ls",
                "mcctl run --privileged minimal sh", "mcctl run -v /proc:/p minimal ls"):
        assert _unsafe(cmd), cmd
    for cmd in ("mcctl run -v /srv/data:/data minimal ls", "mcctl run --network host minimal ip a",
                "mcctl run -d --name web -m 64m minimal httpd -f -p 8080"):
        assert _unsafe(cmd) is None, cmd


def _on_a_pty(cmd: str, cwd: str, env: dict, timeout: float = 60) -> tuple[int, str]:
    """Run cmd with a terminal for stdin/out/err, type `exit`, return (status, output)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(["bash", "-c", cmd], cwd=cwd, env=env, stdin=slave, stdout=slave,
                         stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    typed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:         # EIO: every slave fd is closed
                    break
                if not chunk:
                    break
                out += chunk
            if not typed and (b"#" in out or time.monotonic() > deadline - timeout + 3):
                os.write(master, b"exit\r")   # after the shell's prompt (or 3 s)
                typed = True
            if p.poll() is not None and not r:
                break
        return p.wait(timeout=max(1, deadline - time.monotonic())), out.decode(errors="replace")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        os.close(master)


def _following(cmd: str, cwd: str, env: dict, settle: float = 1.5) -> tuple[int, str]:
    """A follow runs until stopped: it must still be running after a moment, then ^C."""
    p = subprocess.Popen(["bash", "-c", cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        p.wait(timeout=settle)
        out, err = p.communicate()
        return p.returncode, out + err          # ended by itself: an error unless 0
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=30)
        return 0, out + err


def test_readme_mcctl_lines_run_verbatim(make_daemon, tmpbase):
    lines = readme_mcctl_lines()
    assert len(lines) >= 15, lines          # the quick tour: the test cannot pass empty
    d = make_daemon()
    argv = d.argv()
    argv[argv.index("--web-listen") + 1] = "127.0.0.1:7070"   # `mcctl dashboard` needs it on
    # The daemon runs in a network namespace of its own (loopback only): whatever network
    # a README line asks for, host networking or a published port, never reaches the
    # machine's own namespace; the CLI talks to it over the Unix socket all the same.
    d.argv = lambda: ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"',
                      "sh", *argv]
    d.start()
    assert os.readlink(f"/proc/{d.proc.pid}/ns/net") != os.readlink("/proc/self/ns/net")

    work = os.path.join(tmpbase, "work")
    bindir = os.path.join(tmpbase, "bin")
    os.makedirs(work)
    os.makedirs(bindir)
    with open(os.path.join(bindir, "mcctl"), "w") as f:
        f.write(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m mcctl "$@"\n')
    os.chmod(os.path.join(bindir, "mcctl"), 0o755)
    # what the README's lines expect to find in the current directory
    debootstrap_like_tar(os.path.join(work, "alpine-rootfs.tar.gz"))
    os.makedirs(os.path.join(work, "rootfs", "bin"))
    shutil.copy2("/bin/busybox", os.path.join(work, "rootfs", "bin", "busybox"))
    os.symlink("busybox", os.path.join(work, "rootfs", "bin", "sh"))
    env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"], MCD_SOCKET=d.socket,
               PYTHONPATH=REPO, TERM="dumb")
    env.pop("MCD_DEBUG", None)

    ran, skipped, failures = [], [], []
    for cmd in lines:
        reason = _unsafe(cmd)
        if reason:
            skipped.append((cmd, reason))
            continue
        words = shlex.split(cmd)
        if "-it" in words or ("-i" in words and "-t" in words):
            rc, out = _on_a_pty(cmd, work, env)
        elif "logs" in words and ("-f" in words or "--follow" in words):
            rc, out = _following(cmd, work, env)
        else:
            r = subprocess.run(["bash", "-c", cmd], cwd=work, env=env, capture_output=True,
                               text=True, timeout=120)
            rc, out = r.returncode, r.stdout + r.stderr
        ran.append(cmd)
        if rc != 0:
            failures.append(f"{cmd!r} -> exit {rc}:\n{out}")
    assert not failures, "README lines that fail against a real daemon:\n" + "\n".join(failures)
    assert ran == [c for c in lines if c not in dict(skipped)]
    print("README lines skipped as unsafe here:", skipped)
    # and they did what they say: the imported template is there, web is gone
    names = [t["name"] for t in d.client.get("/v1/templates")]
    assert {"alpine", "mytree", "minimal"} <= set(names)
    assert [c["name"] for c in d.client.get("/v1/containers", all=True)] == []
