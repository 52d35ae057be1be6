"""The live feed's fan-out and CPU arithmetic. ``fetch`` is a plain function here:
the feed's contract is "call fetch, fan the result out"; tests against the real
daemon are in tests/python/browser."""

import json
import threading

from mcd.web import stats_by_id
from mcd.web.feed import LiveFeed, sse


def parse(message: bytes):
    lines = message.decode().strip().split("\n")
    event = lines[0].removeprefix("event: ")
    return event, json.loads(lines[1].removeprefix("data: "))


class Source:
    def __init__(self):
        self.calls = 0
        self.usage = 0
        self.called = threading.Event()

    def __call__(self):
        self.calls += 1
        self.usage += 500_000_000      # half a CPU-second per call
        self.called.set()
        return {"host": {"cpus": 2},
                "containers": [
                    {"id": "a" * 64, "name": "web", "status": "running",
                     "stats": {"cpu_usage_ns": self.usage, "memory_current": 1000 * self.calls}},
                    {"id": "b" * 64, "name": "old", "status": "stopped", "stats": None}]}


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_cpu_percent_from_deltas_and_history():
    src, clock = Source(), Clock()
    feed = LiveFeed(src, interval=1.0, clock=clock, wall=clock)
    ev, first = parse(feed.sample_once())
    assert ev == "sample" and first["containers"][0]["cpu_percent"] is None
    clock.t += 1.0
    _, second = parse(feed.sample_once())
    web, old = second["containers"]
    assert web["cpu_percent"] == 50.0
    assert old["cpu_percent"] is None and old["stats"] is None
    hist = feed._history_message()
    ev, h = parse(hist)
    assert ev == "history"
    assert h["series"]["a" * 64] == [[100.0, None, 1000], [101.0, 50.0, 2000]]
    assert "b" * 64 not in h["series"]


def test_a_failing_fetch_becomes_a_message_not_a_crash():
    def broken():
        raise RuntimeError("daemon said no")
    _, msg = parse(LiveFeed(broken).sample_once())
    assert msg["error"] == "daemon said no" and msg["containers"] == []


def test_samples_only_while_someone_listens():
    src = Source()
    feed = LiveFeed(src, interval=0.05)
    assert not feed.sampling and src.calls == 0
    a = feed.subscribe()
    b = feed.subscribe()
    assert feed.sampling and feed.subscribers == 2
    got_a = [a.get(timeout=5) for _ in range(3)]
    got_b = [b.get(timeout=5) for _ in range(3)]
    assert all(m and m.startswith(b"event: ") for m in got_a + got_b)
    assert sum(m.startswith(b"event: sample") for m in got_b) >= 2
    a.close()
    b.close()
    assert feed.subscribers == 0
    feed._wake.set()
    for _ in range(100):
        if not feed.sampling:
            break
        threading.Event().wait(0.05)
    assert not feed.sampling
    calls = src.calls
    threading.Event().wait(0.3)
    assert src.calls == calls     # nobody is looking: nothing is read
    feed.stop()


def test_one_fetch_serves_every_subscriber():
    src = Source()
    feed = LiveFeed(src, interval=3600)
    subs = [feed.subscribe() for _ in range(5)]
    msgs = []
    for s in subs:
        m = s.get(timeout=5)
        if m.startswith(b"event: history"):   # subscribed after the first sample
            m = s.get(timeout=5)
        msgs.append(m)
    assert src.calls == 1 and len(set(msgs)) == 1 and msgs[0].startswith(b"event: sample")
    feed.stop()
    assert all(s.get(timeout=5) == b"" for s in subs)


def test_a_late_page_gets_the_history_and_the_last_sample():
    src = Source()
    feed = LiveFeed(src, interval=3600)
    first = feed.subscribe()
    first.get(timeout=5)
    late = feed.subscribe()
    ev, _ = parse(late.get(timeout=5))
    assert ev == "history"
    ev, _ = parse(late.get(timeout=5))
    assert ev == "sample"
    feed.stop()


def test_a_slow_page_loses_old_samples_without_blocking():
    from mcd.web.feed import Subscription
    feed = LiveFeed(Source(), interval=3600)
    sub = Subscription(feed)
    for i in range(50):
        sub.put(b"m%d" % i)
    seen = []
    while (m := sub.get(timeout=0.01)) is not None:
        seen.append(m)
    assert seen[-1] == b"m49" and len(seen) <= 8
    feed.stop()


def test_sse_framing_is_one_data_line():
    msg = sse("sample", {"line": "a\nb</script>"})
    assert msg.count(b"\n") == 3 and msg.endswith(b"\n\n")


def test_stats_shapes():
    row = {"id": "x", "memory_current": 5}
    assert stats_by_id([row]) == {"x": row}
    assert stats_by_id({"containers": [row]}) == {"x": row}
    assert stats_by_id({"x": {"memory_current": 5}}) == {"x": {"memory_current": 5}}
    assert stats_by_id([{"id": "y", "stats": {"memory_current": 1}}]) == {"y": {"memory_current": 1}}


def test_only_new_events_ride_on_the_feed():
    batches = [
        [{"type": "started", "id": "a", "time": "1"}],
        [{"type": "started", "id": "a", "time": "1"}, {"type": "died", "id": "a", "time": "2"}],
        [{"type": "died", "id": "a", "time": "2"}, {"type": "started", "id": "a", "time": "3"}],
    ]
    it = iter(batches)
    feed = LiveFeed(lambda: {"containers": [], "events": next(it)})
    got = [parse(feed.sample_once())[1]["events"] for _ in batches]
    # What happened before anyone looked is history (fetched by the page), not news.
    assert got == [[], [batches[1][1]], [batches[2][1]]]
