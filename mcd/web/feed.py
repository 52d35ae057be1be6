"""The live feed: one stats sample per interval for all containers, fanned out.

One sampler thread runs while at least one page is subscribed and exits when
the last one leaves, so a dashboard nobody looks at reads no cgroup file at all.
Each sample is the container list and one ``stats`` pass for all of them,
taken through the same Api the Unix socket serves (``fetch`` below), so the
page never sees a fact the CLI would not. CPU % is computed here from the
delta of ``cpu_usage_ns`` between two samples (100 % = one CPU busy, as
``docker stats`` shows it); the last few minutes are kept so a page opened
late can draw its charts at once.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import threading
import time
from typing import Callable

log = logging.getLogger("mcd.web")

DEFAULT_INTERVAL = 2.0
HISTORY_SECONDS = 300


class Subscription:
    """One open page. ``get`` blocks for the next message (None on timeout)."""

    def __init__(self, feed: "LiveFeed", backlog: int = 8):
        self._feed = feed
        self._queue: queue.Queue = queue.Queue(maxsize=backlog)
        self.closed = False

    def put(self, message: bytes) -> None:
        # A page that stopped reading loses its oldest samples, never stalls the others.
        while True:
            try:
                self._queue.put_nowait(message)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass

    def get(self, timeout: float | None = None) -> bytes | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._feed._unsubscribe(self)


class LiveFeed:
    """Samples through ``fetch() -> {"host": {...}, "containers": [...]}``.

    Each container in ``fetch``'s answer is a summary (docs/design.md) with a
    ``stats`` object (or None when it has no cgroup, e.g. stopped).
    """

    def __init__(self, fetch: Callable[[], dict], interval: float = DEFAULT_INTERVAL,
                 history_seconds: float = HISTORY_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self._fetch = fetch
        self.interval = interval
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._subs: set[Subscription] = set()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopped = False
        self._prev: dict[str, tuple[int, float]] = {}
        maxlen = max(2, int(history_seconds / interval) + 1)
        self._history: collections.deque = collections.deque(maxlen=maxlen)
        self._last: bytes | None = None
        self._seen_events: collections.OrderedDict = collections.OrderedDict()
        self._events_primed = False
        self.samples_taken = 0
        self.last_sample_seconds = 0.0

    # -------------------------------------------------------------- subscribers

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        with self._lock:
            if self._stopped:
                sub.closed = True
                return sub
            history = self._history_message()
            if history:
                sub.put(history)
            if self._last:
                sub.put(self._last)
            self._subs.add(sub)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mcd-web-feed",
                                                daemon=True)
                self._thread.start()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)
            if not self._subs:
                self._wake.set()

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    @property
    def sampling(self) -> bool:
        with self._lock:
            return self._thread is not None

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            subs = list(self._subs)
            self._subs.clear()
            thread = self._thread
        self._wake.set()
        for sub in subs:
            sub.put(b"")        # wakes the writer; an empty message means "the feed ended"
        if thread and thread is not threading.current_thread():
            thread.join(timeout=5)

    # -------------------------------------------------------------- sampling

    def _run(self) -> None:
        next_at = self._clock()
        while True:
            with self._lock:
                if not self._subs or self._stopped:
                    self._thread = None
                    # Nobody is looking: the next page starts from a fresh baseline.
                    self._prev.clear()
                    self._last = None
                    self._seen_events.clear()
                    self._events_primed = False
                    return
            self.sample_once()
            # A fixed rate, not a fixed pause: a slow sample does not stretch the period.
            next_at = max(next_at + self.interval, self._clock())
            self._wake.wait(max(0.0, next_at - self._clock()))
            self._wake.clear()

    def sample_once(self) -> bytes:
        """Take one sample now, send it to every page, return it as an SSE message."""
        started = self._clock()
        try:
            data = self._fetch()
            error = None
        except Exception as err:    # the daemon's error reaches the page as one line
            log.warning("dashboard feed: sample failed: %s", err)
            data, error = {"host": {}, "containers": []}, str(err)
        now = self._clock()
        self.last_sample_seconds = now - started
        self.samples_taken += 1
        containers = []
        point = {}
        seen = set()
        for c in data.get("containers", []):
            c = dict(c)
            cid = c.get("id", "")
            stats = c.get("stats") or None
            cpu = None
            if stats and isinstance(stats.get("cpu_usage_ns"), int):
                seen.add(cid)
                prev = self._prev.get(cid)
                usage = stats["cpu_usage_ns"]
                if prev and usage >= prev[0] and now > prev[1]:
                    cpu = round((usage - prev[0]) / ((now - prev[1]) * 1e9) * 100.0, 2)
                self._prev[cid] = (usage, now)
                point[cid] = [cpu, stats.get("memory_current")]
            c["cpu_percent"] = cpu
            containers.append(c)
        for gone in set(self._prev) - seen:
            del self._prev[gone]
        t = round(self._wall(), 3)
        payload = {"t": t, "interval": self.interval, "host": data.get("host", {}),
                   "containers": containers, "events": self._new_events(data.get("events")),
                   "sample_ms": round(self.last_sample_seconds * 1000, 2)}
        if error:
            payload["error"] = error
        message = sse("sample", payload)
        # One critical section: a page subscribing now gets this sample either
        # from the broadcast or as _last, never twice and never not at all.
        with self._lock:
            self._history.append((t, point))
            self._last = message
            for sub in self._subs:
                sub.put(message)
        return message

    def _new_events(self, recent) -> list:
        """Lifecycle events that appeared since the previous sample.

        They ride on the feed so a page needs one connection for samples and
        events: browsers allow six per host, shared by every tab.
        """
        if not isinstance(recent, list):
            return []
        fresh = []
        for ev in recent:
            if not isinstance(ev, dict):
                continue
            key = (ev.get("time"), ev.get("type"), ev.get("id"))
            if key in self._seen_events:
                continue
            self._seen_events[key] = True
            if self._events_primed:
                fresh.append(ev)
        while len(self._seen_events) > 2048:
            self._seen_events.popitem(last=False)
        self._events_primed = True
        return fresh

    def _history_message(self) -> bytes | None:
        if not self._history:
            return None
        series: dict[str, list] = {}
        for t, point in self._history:
            for cid, (cpu, mem) in point.items():
                series.setdefault(cid, []).append([t, cpu, mem])
        return sse("history", {"series": series})


def sse(event: str, payload: dict) -> bytes:
    """One server-sent event. JSON never holds a raw newline, so one data: line."""
    return (f"event: {event}\ndata: " + json.dumps(payload, separators=(",", ":"))
            + "\n\n").encode()
