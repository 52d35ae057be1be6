#!/usr/bin/env python3
"""Run a command on a fresh pty, like a user at a terminal, for the bats -it tests.

    pty_drive.py [--expect TEXT (--send BYTES | --signal SIG)]... -- CMD ARGS...

Each --expect waits (bounded) until TEXT has appeared in the output (after the previous
step), then --send writes BYTES (Python escapes: '\\x03' is Ctrl-C) as if typed, or
--signal sends SIG to the command. Prints everything the command wrote, then whether the
terminal's mode at the end equals its mode at the start ("pty_drive: terminal restored"
or "... changed"); exits with the command's status. Waiting for what the container
prints, rather than sleeping, keeps the tests independent of the machine's speed.
"""
import os
import pty
import select
import signal
import sys
import termios
import time


def main(argv):
    steps, i = [], 0
    while argv[i] != "--":
        expect, action, value = argv[i + 1].encode(), argv[i + 2], argv[i + 3]
        steps.append((expect, action, value))
        i += 4
    cmd = argv[i + 1:]
    pid, master = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    # The slave's settings, read through the master, before the command touches them.
    initial = termios.tcgetattr(master)
    out = b""
    seen = 0
    deadline = time.monotonic() + 120
    final = None
    while True:
        if steps and steps[0][0] in out[seen:]:
            _, action, value = steps.pop(0)
            if action == "--send":
                os.write(master, value.encode().decode("unicode_escape").encode("latin-1"))
            else:
                os.kill(pid, getattr(signal, "SIG" + value))
            seen = len(out)
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                break
            out += data
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            final = termios.tcgetattr(master)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            sys.stderr.write("pty_drive: timed out waiting for %r\n" % (steps[0][0] if steps else b"exit"))
            break
    _, status = os.waitpid(pid, 0)
    try:
        final = termios.tcgetattr(master)
    except termios.error:
        pass            # the slave side is gone: the last mode seen while it was open counts
    print("\npty_drive: terminal " + ("restored" if final in (None, initial) else "changed"))
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
