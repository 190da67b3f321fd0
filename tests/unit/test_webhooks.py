"""Webhooks' pure parts: signing (and the README's verification snippet), the body, the backoff,
and the bounded outbox that falls back to the feed (a real `ChangeLog`, the SQLite store's
in-memory feed window)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from presence_server.store.feed import ChangeLog
from presence_server.store.records import Change

from presence_server.webhooks import (
    Lost,
    Outbox,
    backoff,
    body_of,
    host_of,
    oldest_kept,
    sign,
    verify,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def change(event_id: int, name: str = "alice", status: str = "online") -> Change:
    data = json.dumps({"id": name, "name": name, "status": status, "eventId": event_id},
                      separators=(",", ":"))
    return Change(event_id, "client_status_changed", name, status, data)


def feed(ids: range, backlog: int = 10000) -> ChangeLog:
    log = ChangeLog(backlog)
    for event_id in ids:
        log.append(change(event_id))
    return log


def readme_verifier():
    """The `verified(secret, headers, body)` snippet of README.md, run as written."""
    text = README.read_text()
    snippet = re.search(r"```python\n(import hashlib, hmac, time\ndef verified.*?)```", text,
                        re.S)
    assert snippet, "README: the webhook verification snippet is missing"
    assert len(snippet.group(1).strip().splitlines()) == 5
    namespace: dict = {}
    exec(snippet.group(1), namespace)  # noqa: S102 - our own README's example
    return namespace["verified"]


def test_signature_verifies_with_the_readme_snippet_and_fails_when_tampered():
    body = body_of("n1", [change(1), change(2)])
    stamp = "1767225600"
    signature = sign("s3cret", stamp, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify("s3cret", stamp, body, signature, now=1767225600 + 10)
    assert not verify("s3cret", stamp, body, signature, now=1767225600 + 400)  # a replay
    assert not verify("other", stamp, body, signature, now=1767225600)
    assert not verify("s3cret", "1767225601", body, signature, now=1767225600)
    verified = readme_verifier()
    import time

    now = str(int(time.time()))
    headers = {"X-Presence-Timestamp": now, "X-Presence-Signature": sign("s3cret", now, body)}
    assert verified(b"s3cret", headers, body)
    assert not verified(b"s3cret", headers, body.replace(b"online", b"offline"))
    assert not verified(b"wrong", headers, body)
    old = str(int(time.time()) - 3600)
    assert not verified(b"s3cret", {"X-Presence-Timestamp": old,
                                    "X-Presence-Signature": sign("s3cret", old, body)}, body)


def test_body_carries_the_payloads_as_stored_oldest_first():
    changes = [change(7, "a"), Change(8, "client_removed", "b", "offline",
                                      '{"id":"b","reason":"admin","eventId":8}')]
    body = json.loads(body_of("node-1", changes))
    assert body == {"node": "node-1", "changes": [
        {"event": "client_status_changed",
         "data": {"id": "a", "name": "a", "status": "online", "eventId": 7}},
        {"event": "client_removed", "data": {"id": "b", "reason": "admin", "eventId": 8}}]}


def test_backoff_doubles_up_to_the_cap():
    assert [backoff(n, 0.5, 5.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff(10_000, 1.0, 60.0) == 60.0


def test_host_of_never_shows_path_query_or_credentials():
    assert host_of("https://user:pw@hooks.example.com:8443/in?token=x") == "hooks.example.com:8443"
    assert host_of("http://127.0.0.1/hook") == "127.0.0.1"


def test_outbox_batches_in_order_from_the_queue():
    log = feed(range(1, 11))
    outbox = Outbox(size=100, delivered=0)
    for event_id in range(1, 11):
        outbox.offer(log.since(event_id - 1, 1).changes[0])
    first = outbox.take(4, log.since)
    assert [c.event_id for c in first] == [1, 2, 3, 4]
    outbox.acknowledged(4)
    assert [c.event_id for c in outbox.take(4, log.since)] == [5, 6, 7, 8]
    outbox.acknowledged(8)
    assert [c.event_id for c in outbox.take(4, log.since)] == [9, 10]
    assert outbox.take(4, log.since) == [] and len(outbox) == 0


def test_overflow_drops_the_queue_and_resumes_from_the_feed_without_loss():
    log = ChangeLog(10000)
    outbox = Outbox(size=3, delivered=0)
    overflowed = []
    for event_id in range(1, 11):  # the receiver is down: nothing is taken
        log.append(change(event_id))
        overflowed.append(outbox.offer(change(event_id)))
        assert len(outbox) <= 3  # bounded
    assert overflowed.count(True) == 1  # one warning per overflow streak
    assert outbox.from_feed and outbox.overflows == 3 and outbox.dropped == 9
    got: list[int] = []
    while batch := outbox.take(4, log.since):
        assert not isinstance(batch, Lost)
        got += [c.event_id for c in batch]
        outbox.acknowledged(batch[-1].event_id)
    assert got == list(range(1, 11))  # each once, in order: the queued copy of 10 is skipped
    assert not outbox.from_feed
    log.append(change(11))
    outbox.offer(change(11))
    assert [c.event_id for c in outbox.take(4, log.since)] == [11]  # live again from the queue


def test_an_overflow_while_reading_the_feed_keeps_reading_the_feed():
    log = feed(range(1, 6))
    outbox = Outbox(size=2, delivered=5)
    outbox.from_feed = True

    def racing(after: int, limit: int):
        page = log.since(after, limit)
        for event_id in (6, 7, 8):  # arrive (and overflow the queue) during the read
            log.append(change(event_id))
            outbox.offer(change(event_id))
        return page

    assert outbox.take(10, racing) == []
    assert outbox.from_feed  # 6 was dropped from the queue: it must come from the feed
    assert [c.event_id for c in outbox.take(10, log.since)] == [6, 7, 8]


def test_changes_older_than_the_backlog_are_reported_lost_then_delivery_goes_on():
    log = feed(range(1, 101), backlog=20)
    floor = oldest_kept(log.since, 0, log.position)
    assert not log.since(floor - 1, 1).complete and log.since(floor, 1).complete
    outbox = Outbox(size=5, delivered=3)
    outbox.from_feed = True
    lost = outbox.take(10, log.since)
    assert lost == Lost(after=3, until=floor)
    outbox.skip(lost)
    batch = outbox.take(10, log.since)
    assert [c.event_id for c in batch] == list(range(floor + 1, floor + 11))


def test_an_id_the_feed_does_not_know_goes_on_with_the_queue():
    log = feed(range(1, 4))
    outbox = Outbox(size=5, delivered=50)  # ahead of the feed (e.g. a replaced store file)
    outbox.from_feed = True
    outbox.offer(change(51))
    assert [c.event_id for c in outbox.take(10, log.since)] == [51]
