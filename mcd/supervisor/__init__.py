"""One supervisor for all containers (issue 17, decision 1): the design and its protocol.

Today every running container has its own monitor (a forked copy of the fork server,
~2.1 MiB PSS). The supervisor is ONE long-lived process that does their job for all:

* it is a child subreaper (PR_SET_CHILD_SUBREAPER), so a PID 1 whose launcher exits is
  reparented to it and it reaps it, recording how it ended (exit.json, the monitor's
  format: exit_code, signal, finished_at);
* it holds every container's stdout/stderr pipe in one epoll loop and writes the logs in
  the same JSON-lines format and rotation (``mcd.runtime.logs``), a whole chunk in one
  write(2) (``BatchLogWriter``);
* it runs with a protective oom_score_adj (-999) and resets it to 0 in what it forks.

Fairness: the loop is level-triggered and reads at most ``READ_CHUNK`` bytes per ready
pipe per round, so a pipe that is never empty (a flood) gets one read per round like any
other; an exit is handled in the round its SIGCHLD arrives. A round costs at most
(ready pipes x one chunk's encoding and one append to the page cache).

Surviving its own death (kill -9): every pipe's read end is also held by the *keeper*
(the caller that asked for the container, i.e. mcd): with ``keep`` the supervisor sends
dup'd read ends back. A writer then never gets SIGPIPE; it blocks on a full pipe until a
new supervisor is given the same fds (``adopt``) and drains them, so nothing written is
lost. A PID 1 that is not the new supervisor's child (it was reparented to init when the
old one died) is watched through a pidfd; its status cannot be read by a non-parent, so
its exit is recorded as ``{"exit_code": null, "status_lost": true}``, never as running.

Its own upgrade: ``upgrade`` makes it execve() itself (the command it was started with,
so the newly installed code) with its state in a memfd: children, their pipes and the
subreaper role survive execve, so no container notices; partial lines are carried over.

Protocol: a SOCK_SEQPACKET Unix socket (``supervisor.sock`` under mcd's run dir). One
request per message, a JSON object with "op", fds as SCM_RIGHTS; one JSON answer per
request ({"ok": true, ...} or {"ok": false, "error": "..."}), fds likewise:

    ping                                -> pid, version, count
    spawn   id argv env cwd log exit keep -> pid, start_time; fds: stdout, stderr read ends (keep)
    adopt   id pid start_time log exit streams [fds: the pipes' read ends] -> child (bool)
    list                                -> containers: [{id, pid, start_time, child, exited}]
    upgrade                             -> ok, then the process re-executes itself

Status: the supervisor and its tests are here; mcd does not start containers through it
yet (the per-container monitor stays the default; see docs/design.md, "One supervisor").
"""

PROTOCOL_VERSION = 1
SOCKET_NAME = "supervisor.sock"
