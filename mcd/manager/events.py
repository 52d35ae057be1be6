"""Events (created, started, died, oom, paused, unpaused, renamed, exec, destroyed): a
bounded history and any number of subscribers (the API's /v1/events streams)."""

from __future__ import annotations

import queue
import threading

from mcd.manager.state import now_iso


class EventBus:
    def __init__(self, history: int = 256):
        self._subs: set[queue.Queue] = set()
        self._lock = threading.Lock()
        self._history: list[dict] = []
        self._max = history

    def publish(self, kind: str, c, **extra) -> None:
        ev = {"type": kind, "id": c.id, "name": c.name, "time": now_iso(), **extra}
        with self._lock:
            self._history.append(ev)
            del self._history[:-self._max]
            subs = list(self._subs)
        for q in subs:
            q.put(ev)

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue()
        with self._lock:
            self._subs.add(q)
        return q

    def unsubscribe(self, q) -> None:
        with self._lock:
            self._subs.discard(q)

    def recent(self) -> list[dict]:
        with self._lock:
            return list(self._history)
