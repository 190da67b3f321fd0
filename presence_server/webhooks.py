"""Webhooks: every change of the feed POSTed to one URL, in order, signed, retried, at least once.

For app servers that hold no socket and poll nothing (Pusher-style). `webhooks.url` switches it
on. Each POST carries a JSON body `{"node": ..., "changes": [{"event": ..., "data": {...}}, ...]}`
(the changes oldest first, each `data` the watcher event's payload with its `eventId`), a
`X-Presence-Timestamp` (epoch seconds) and, with `webhooks.secret`, `X-Presence-Signature:
sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`. Any answer but 2xx, a connection error or
a timeout is a failure: the same batch is sent again after an exponential backoff (capped), so a
receiver sees a change at least once and de-duplicates by `eventId`.

The path that makes changes never waits for this: the feed listener appends the change to a
bounded queue (`Outbox.offer`, O(1), on the actor that made the change) and wakes one greenlet,
the only one that talks HTTP. When the queue fills (the receiver is down or slow), its contents
are dropped and the sender re-reads the feed after the last change it delivered
(`changes_since`), so nothing is lost while that change is within `events.backlog`; beyond it,
the loss is logged (which eventIds) and delivery goes on with the oldest change kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from presence_server.store.records import Change, FeedPage

if TYPE_CHECKING:
    from .config import Config
    from .presence import Presence

log = logging.getLogger("presence.webhooks")

TIMESTAMP_HEADER = "X-Presence-Timestamp"
SIGNATURE_HEADER = "X-Presence-Signature"
USER_AGENT = "presence-server-webhooks"
REMIND_EVERY = 300.0  # seconds between "still failing" lines of one failure streak
SHUTDOWN_RESERVE = 2.0  # seconds of shutdown.timeout kept for closing sockets and the store

ChangesSince = Callable[[int, int], FeedPage]


# --- pure parts -------------------------------------------------------------------------------
SHARED_POSITION = "webhooks.delivered"  # several nodes: the eventId delivered last, by any node
FOLLOW_PERIOD = 1.0  # seconds between two looks at that position by a node that does not lead


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Presence-Signature` value: HMAC-SHA256 over `<timestamp>.<raw body>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: float,
           tolerance: float = 300.0) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent (no replay)."""
    try:
        fresh = abs(now - int(timestamp)) <= tolerance
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def body_of(node: str, changes: list[Change]) -> bytes:
    """The POST body: the changes oldest first, their payloads as the feed holds them."""
    items = ",".join(f'{{"event":{json.dumps(change.event)},"data":{change.data}}}'
                     for change in changes)
    return f'{{"node":{json.dumps(node)},"changes":[{items}]}}'.encode()


def backoff(failures: int, first: float, cap: float) -> float:
    """Seconds to wait after the `failures`-th failure in a row: first, 2x, 4x ... up to cap."""
    return min(cap, first * 2 ** min(max(failures - 1, 0), 32))


def oldest_kept(changes_since: ChangesSince, after: int, position: int) -> int:
    """The smallest id in `[after, position]` the feed can still answer `changes_since` for
    (its floor: every change after it is kept). Bisection: a handful of in-memory reads."""
    low, high = after, position
    while low < high:
        middle = (low + high) // 2
        if changes_since(middle, 1).complete:
            high = middle
        else:
            low = middle + 1
    return high


@dataclass(frozen=True)
class Lost:
    """Changes after `after` up to and including `until` are gone from the feed's backlog."""

    after: int
    until: int


class Outbox:
    """The changes waiting to be POSTed: a bounded queue fed by the feed listener, and the
    position of the last delivered change to re-read the feed from once the queue overflowed.

    Invariant: every change after `delivered` is in the queue, or (`from_feed`) in the feed.
    """

    def __init__(self, size: int, delivered: int) -> None:
        self.size = size
        self.delivered = delivered  # eventId of the last change the receiver acknowledged
        self.queue: deque[Change] = deque()
        self.from_feed = False  # the queue overflowed: read the feed after `delivered` first
        self.overflows = 0  # times the queue was full and dropped
        self.dropped = 0  # changes dropped from the queue (re-read from the feed later)

    def offer(self, change: Change) -> bool:
        """Queue `change` (O(1), never blocks); True when the queue overflowed just now."""
        overflowed = False
        if len(self.queue) >= self.size:
            self.dropped += len(self.queue)
            self.queue.clear()
            self.overflows += 1
            overflowed = not self.from_feed
            self.from_feed = True
        self.queue.append(change)
        return overflowed

    def take(self, limit: int, changes_since: ChangesSince) -> list[Change] | Lost:
        """The next changes to send (oldest first, at most `limit`, all after `delivered`),
        or `Lost` when the feed no longer has the changes after `delivered`."""
        if self.from_feed:
            generation = self.overflows
            page = changes_since(self.delivered, limit)
            if not page.complete:
                floor = oldest_kept(changes_since, self.delivered, page.position)
                if floor > self.delivered:
                    return Lost(self.delivered, floor)
                self.from_feed = False  # an id the feed does not know: go on with the queue
                return self._from_queue(limit)
            fresh = [change for change in page.changes if change.event_id > self.delivered]
            if fresh:
                return fresh
            if self.overflows == generation:  # no overflow while reading: the queue has the rest
                self.from_feed = False
            else:
                return []
        return self._from_queue(limit)

    def _from_queue(self, limit: int) -> list[Change]:
        batch: list[Change] = []
        last = self.delivered
        while self.queue and len(batch) < limit:
            change = self.queue.popleft()
            if change.event_id > last:  # else it was read from the feed already
                batch.append(change)
                last = change.event_id
        return batch

    def acknowledged(self, event_id: int) -> None:
        self.delivered = max(self.delivered, event_id)

    def follow(self, event_id: int) -> None:
        """Another node delivered up to `event_id` (several nodes): nothing up to it is due
        here; what came after stays queued (or in the feed) for when this node takes over."""
        self.acknowledged(event_id)
        while self.queue and self.queue[0].event_id <= self.delivered:
            self.queue.popleft()

    def skip(self, lost: Lost) -> None:
        """Go on after the changes that are gone."""
        self.delivered = max(self.delivered, lost.until)

    def __len__(self) -> int:
        return len(self.queue)


def host_of(url: str) -> str:
    """`host[:port]` of `url`: what logs and `/api/stats` show (never a path, query or
    credentials, which may hold tokens)."""
    parts = urlsplit(url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "?"


# --- the sender -------------------------------------------------------------------------------
class Failed(Exception):
    """One POST did not get a 2xx answer."""


class WebhookSender:
    """POSTs the feed's changes to `url` from one greenlet (see the module docstring)."""

    def __init__(self, presence: Presence, url: str, secret: str | None, timeout: float,
                 batch: int, queue: int, first_backoff: float, max_backoff: float,
                 node: str) -> None:
        self.presence = presence
        self.url = url
        self.host = host_of(url)
        self.secret = secret
        self.timeout = timeout
        self.batch = batch
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.node = node
        self.outbox = Outbox(queue, presence.feed_position())
        self.in_flight: list[Change] = []
        self.posts = 0  # successful POSTs
        self.delivered_changes = 0
        self.failures = 0  # failed POSTs in all
        self.streak = 0  # failed POSTs in a row (0: the last one succeeded)
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.lost = 0  # eventIds given up because the feed no longer had them
        self._session: Any = None
        self._wake: Any = None
        self._greenlet: Any = None
        self.stopping = False
        presence.subscribe_changes(self._on_change)

    @classmethod
    def from_config(cls, presence: Presence, config: Config) -> WebhookSender | None:
        hooks = config.webhooks
        if not hooks["url"]:
            return None
        return cls(presence, hooks["url"], hooks["secret"], timeout=hooks["timeout"],
                   batch=hooks["batch"], queue=hooks["queue"], first_backoff=hooks["backoff"],
                   max_backoff=hooks["backoff_max"], node=config.node_id)

    # --- the feed listener (on the actor that made the change) --------------------------------
    def _on_change(self, change: Change) -> None:
        if self.outbox.offer(change):
            log.warning("webhooks: %d changes waiting for %s (webhooks.queue): dropped from "
                        "memory; they will be re-read from the feed after eventId %d",
                        self.outbox.size, self.host, self.outbox.delivered)
        if self._wake is not None:
            self._wake.set()

    # --- the greenlet -------------------------------------------------------------------------
    def start(self) -> None:
        import gevent
        import requests
        from gevent.event import Event

        self._session = requests.Session()
        self._session.headers.update({"User-Agent": USER_AGENT,
                                      "Content-Type": "application/json"})
        self._wake = Event()
        self._wake.set()
        self._greenlet = gevent.spawn(self._run)
        if self.secret is None:
            log.warning("webhooks: webhooks.secret is not set: POSTs to %s are NOT signed (no "
                        "%s header); anyone who knows the URL can forge them", self.host,
                        SIGNATURE_HEADER)
        log.info("webhooks: POSTing changes after eventId %d to %s (batches of at most %d)",
                 self.outbox.delivered, self.host, self.batch)

    def _run(self) -> None:
        import gevent

        while not self.stopping:
            try:
                if not self._leading():
                    self.in_flight = []
                    self.outbox.follow(self._shared_position())
                    self._wake.wait(timeout=FOLLOW_PERIOD)
                    self._wake.clear()
                    continue
                if not self.in_flight:
                    taken = self.outbox.take(self.batch, self.presence.changes_since)
                    if isinstance(taken, Lost):
                        self._give_up(taken)
                        continue
                    self.in_flight = taken
                if not self.in_flight:
                    self._wake.wait()
                    self._wake.clear()
                    continue
                self._deliver_in_flight()
            except Exception:  # e.g. the store failed to answer: never end deliveries
                log.exception("webhooks: delivery to %s failed unexpectedly; retrying in %gs",
                              self.host, self.max_backoff)
                gevent.sleep(self.max_backoff)

    def _deliver_in_flight(self) -> None:
        import gevent

        changes = self.in_flight
        try:
            self._post(body_of(self.node, changes))
        except Failed as problem:
            self._failed(str(problem), changes)
            gevent.sleep(backoff(self.streak, self.first_backoff, self.max_backoff))
            return
        if self.streak:
            log.info("webhooks: %s answers again after %d failed attempts (last: %s); "
                     "delivering from eventId %d", self.host, self.streak, self.last_error,
                     changes[0].event_id)
        self.streak = 0
        self.posts += 1
        self.delivered_changes += len(changes)
        self.outbox.acknowledged(changes[-1].event_id)
        self.in_flight = []
        if self.presence.store.shared:  # where the next node to lead resumes
            self.presence.store.set_meta(SHARED_POSITION, str(changes[-1].event_id))

    def _leading(self) -> bool:
        """With several nodes one posts every node's changes: the first by node id of those
        registered (it changes when that one is lost). Alone: this node."""
        store = self.presence.store
        return not store.shared or self.node == min(store.alive | {self.node})

    def _shared_position(self) -> int:
        try:
            return int(self.presence.store.get_meta(SHARED_POSITION) or 0)
        except Exception:  # Redis unreachable: keep what we have
            return self.outbox.delivered

    def _post(self, body: bytes) -> None:
        """One POST, bounded by `timeout` as a whole (a receiver that accepts and never
        answers, or trickles, cannot hold the sender longer); raises `Failed`."""
        import gevent
        import requests

        timestamp = str(int(self.presence.now()))
        headers = {TIMESTAMP_HEADER: timestamp}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret, timestamp, body)
        limit = gevent.Timeout(self.timeout)
        limit.start()
        try:
            response = self._session.post(self.url, data=body, headers=headers,
                                          timeout=(self.timeout, self.timeout),
                                          allow_redirects=False, stream=True)
            try:
                if not 200 <= response.status_code < 300:
                    raise Failed(f"HTTP {response.status_code}")
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) <= 65536:
                    response.content  # noqa: B018  read it: the connection is kept alive
            finally:
                response.close()
        except gevent.Timeout as expired:
            if expired is not limit:
                raise
            self._session.close()  # the connection may be mid-request: never reuse it
            raise Failed(f"no answer within {self.timeout:g}s") from None
        except requests.RequestException as problem:
            raise Failed(_reason(problem)) from None
        except (OSError, ValueError) as problem:  # e.g. a malformed answer
            raise Failed(type(problem).__name__) from None
        finally:
            limit.close()

    def _failed(self, reason: str, changes: list[Change]) -> None:
        """Count a failure; log the first of a streak and a reminder every `REMIND_EVERY`."""
        now = time.monotonic()
        self.failures += 1
        self.streak += 1
        self.last_error = reason
        remind = self.last_error_at is None or now - self.last_error_at >= REMIND_EVERY
        if self.streak == 1:
            log.warning("webhooks: POST to %s failed (%s); retrying eventIds %d-%d with backoff "
                        "(%gs doubling up to %gs); one line when it answers again", self.host,
                        reason, changes[0].event_id, changes[-1].event_id, self.first_backoff,
                        self.max_backoff)
            self.last_error_at = now
        elif remind:
            log.warning("webhooks: %s still failing after %d attempts (%s); waiting to deliver "
                        "from eventId %d", self.host, self.streak, reason, changes[0].event_id)
            self.last_error_at = now

    def _give_up(self, lost: Lost) -> None:
        count = lost.until - lost.after
        self.lost += count
        log.error("webhooks: LOST %d changes for %s: eventIds %d to %d are older than the feed's "
                  "backlog (events.backlog): the receiver fell too far behind; going on with "
                  "the changes after eventId %d (resync the receiver from GET /api/clients)",
                  count, self.host, lost.after + 1, lost.until, lost.until)
        self.outbox.skip(lost)

    # --- shutdown -----------------------------------------------------------------------------
    def flush(self, budget: float) -> bool:
        """Wait up to `budget` seconds for every change made so far to be delivered; True if
        they were."""
        import gevent

        if self._greenlet is None:
            return self.drained()
        deadline = time.monotonic() + budget
        self._wake.set()
        while not self.drained():
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("webhooks: shutdown: %d changes after eventId %d not delivered to "
                            "%s (%s)", self.pending(), self.outbox.delivered, self.host,
                            self.last_error or "no time left")
                return False
            gevent.sleep(min(left, 0.05))  # the shutdown's own greenlet: a short poll
        return True

    def drained(self) -> bool:
        return self.pending() == 0 and not self.outbox.from_feed

    def stop(self) -> None:
        self.stopping = True
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        if self._session is not None:
            self._session.close()

    # --- status -------------------------------------------------------------------------------
    def pending(self) -> int:
        """Changes held in memory: queued plus in flight (at most webhooks.queue + batch)."""
        return len(self.outbox) + len(self.in_flight)

    def status(self) -> dict[str, Any]:
        """For `/api/stats`: O(1)."""
        return {
            "url_host": self.host,
            "signed": self.secret is not None,
            "delivered_event_id": self.outbox.delivered,
            "pending": self.pending(),
            "catching_up": self.outbox.from_feed,
            "posts": self.posts,
            "delivered": self.delivered_changes,
            "failures": self.failures,
            "failing_for": self.streak,
            "last_error": self.last_error,
            "overflows": self.outbox.overflows,
            "lost": self.lost,
        }


def _reason(problem: Exception) -> str:
    """A short, one-line reason for a requests exception (no URL: it may hold a token)."""
    import requests

    if isinstance(problem, requests.Timeout):
        return "timed out"
    if isinstance(problem, requests.ConnectionError):
        return "connection failed"
    return type(problem).__name__
