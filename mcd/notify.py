"""systemd readiness protocol (sd_notify) through the sdnotify library.

The notifier connects once at startup and then removes NOTIFY_SOCKET, LISTEN_*
and WATCHDOG_* from the environment, so no container (nor anything else the daemon
spawns) can ever talk to systemd on the daemon's behalf.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("mcd.notify")

_SCRUB = ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
          "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    def __init__(self, environ=os.environ):
        self.enabled = bool(environ.get("NOTIFY_SOCKET"))
        self._n = None
        if self.enabled:
            import sdnotify   # reads NOTIFY_SOCKET from os.environ
            self._n = sdnotify.SystemdNotifier(debug=False)
        self.watchdog_usec = 0
        wd = environ.get("WATCHDOG_USEC", "")
        wd_pid = environ.get("WATCHDOG_PID", "")
        if wd.isdigit() and (not wd_pid or wd_pid == str(os.getpid())):
            self.watchdog_usec = int(wd)
        for key in _SCRUB:
            environ.pop(key, None)
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    def send(self, state: str) -> None:
        if self._n is not None:
            self._n.notify(state)
            log.debug("notify: %s", state.replace("\n", " "))

    def ready(self, status: str = "", health=None) -> None:
        """``health()`` -> bool is checked before each WATCHDOG=1: a daemon that cannot
        answer its own socket stops petting the watchdog, and systemd restarts it."""
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))
        if self.watchdog_usec:
            self._start_watchdog(health)

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1")
        self._stop.set()

    def _start_watchdog(self, health=None) -> None:
        # The only periodic wake-up the daemon has, and only when systemd asked for it.
        interval = self.watchdog_usec / 1e6 / 2

        def loop():
            while not self._stop.wait(interval):
                try:
                    ok = health is None or health()
                except Exception as err:      # a failed probe is an unhealthy daemon
                    log.warning("watchdog: health check failed: %s", err)
                    ok = False
                if ok:
                    self.send("WATCHDOG=1")
                else:
                    log.error("watchdog: the API does not answer; not notifying systemd")

        self._timer = threading.Thread(target=loop, name="watchdog", daemon=True)
        self._timer.start()
