"""`GET /events`: the change feed as server-sent events (WHATWG HTML, "Server-sent events").

A stream starts with `retry:`; then each change as `id: <eventId>`, `event:
client_status_changed` (or `client_removed`) and `data: <json>`; a `:` comment every
`events.keepalive` on an idle stream. `Last-Event-ID` (the header a browser's `EventSource`
sends when it reconnects) or `?lastEventId=` resumes after that id; an id older than the
backlog (or unknown) gets `event: resync` with a snapshot, then the changes after it.
`?name=` and `?status=` (repeatable, or comma-separated) filter the stream.

The fan-out stays off the paths that make changes: the feed listener only appends the change to
an inbox (O(1), on the actor that made the change); one greenlet hands it to each subscriber's
bounded queue; each stream's own greenlet writes its queue to its socket. A subscriber whose
queue fills (it does not read) is closed at once; it resumes without loss from the last id it
got, as long as that id is within the backlog. The graceful shutdown ends every stream after
the changes it made (`close_all`).
"""

from __future__ import annotations

import heapq
import json
import logging
import socket
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import gevent
from flask import Blueprint, Response, current_app, request
from gevent.queue import Empty, Full, Queue
from presence_server.store.records import STATUSES, Change, parse_event_id

from . import validation
from .validation import Invalid

if TYPE_CHECKING:
    from .port import PresencePort

log = logging.getLogger("presence.events")

sse = Blueprint("events", __name__)

PAGE = 500  # changes written per catch-up step
# A stream's kernel send buffer (Linux doubles it): without a cap, autotuning lets a subscriber
# that stopped reading hold up to 4 MiB in the kernel before its queue even starts to fill.
STREAM_SEND_BUFFER = 32 * 1024
STALL_GRACE = 0.5  # seconds a full queue's writer gets to make room before it is closed
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Subscriber:
    """One open stream: its filters, its bounded queue and the greenlet writing it."""

    def __init__(self, names: frozenset[str] | None, statuses: frozenset[str] | None,
                 size: int, after: int) -> None:
        self.names = names
        self.statuses = statuses
        self.queue: Any = Queue(maxsize=size)
        self.after = after  # changes up to this id were read from the feed by the stream
        self.greenlet = gevent.getcurrent()
        self.closed = False

    def wants(self, change: Change) -> bool:
        return ((self.names is None or change.name in self.names)
                and (self.statuses is None or change.status in self.statuses))

    def offer(self, change: Change) -> bool:
        """Queue `change`; False when the queue is full (the subscriber is too slow)."""
        if change.event_id <= self.after or not self.wants(change):
            return True
        try:
            self.queue.put_nowait(change)
        except Full:
            return False
        return True

    def end(self, kill: bool) -> None:
        """End the stream: after what is queued (a sentinel), or at once (`kill`)."""
        if self.closed:
            return
        self.closed = True
        if not kill:
            try:
                self.queue.put_nowait(None)
                return
            except Full:  # end it at once
                pass
        gevent.kill(self.greenlet)  # GreenletExit where it waits: the connection is closed


class EventStreams:
    """Every `/events` subscriber of this process, and the fan-out to them."""

    def __init__(self, presence: PresencePort, queue_size: int, keepalive: float,
                 retry_ms: int, snapshot_limit: int) -> None:
        self.presence = presence
        self.queue_size = queue_size
        self.keepalive = keepalive
        self.retry_ms = retry_ms
        self.snapshot_limit = snapshot_limit
        self.subscribers: set[Subscriber] = set()
        self.dropped = 0  # subscribers closed because their queue was full
        self._inbox: deque[Change] = deque()
        self._wake: Any = None
        self._fan_out: Any = None
        presence.subscribe_changes(self._on_change)
        presence.subscribe_resets(self.close_all)  # they resume into a resync snapshot

    # --- the fan-out --------------------------------------------------------------------------
    def _on_change(self, change: Change) -> None:
        """The feed listener: O(1), never blocks (it runs on the actor making the change)."""
        if self.subscribers:
            self._inbox.append(change)
            self._wake.set()

    def _start(self) -> None:
        if self._fan_out is None:
            from gevent.event import Event

            self._wake = Event()
            self._fan_out = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self._deliver()

    def _deliver(self) -> None:
        """Hand the inbox to the subscribers' queues. A burst (thousands of clients going
        offline at once) must not overflow readers that keep up: once a queue is half full
        the fan-out yields, so the streams' greenlets write what they have, and a full queue
        gets `STALL_GRACE` to make room; one still full then belongs to a subscriber that
        does not read. Meanwhile changes wait in the inbox (the feed listener never waits)."""
        inbox = self._inbox
        half = max(1, self.queue_size // 2)
        while inbox:
            change = inbox.popleft()
            pressed = False
            for subscriber in list(self.subscribers):
                if subscriber.closed:
                    continue
                pressed = pressed or subscriber.queue.qsize() >= half
                if not subscriber.offer(change) and not self._wait_for_room(subscriber, change):
                    self.dropped += 1
                    log.info("/events: closing a subscriber %d changes behind (change %d); it "
                             "may resume from its last id", subscriber.queue.qsize(),
                             change.event_id)
                    self.subscribers.discard(subscriber)
                    subscriber.end(kill=True)
            if pressed:
                gevent.sleep(0)

    @staticmethod
    def _wait_for_room(subscriber: Subscriber, change: Change) -> bool:
        """A full queue: give its writer `STALL_GRACE` to make room (its socket may only wait
        for the loop to poll it, in a burst); False when it made none (it does not read)."""
        try:
            subscriber.queue.put(change, timeout=STALL_GRACE)
        except Full:
            return False
        return True

    def close_all(self) -> None:
        """End every stream after the changes made so far (the graceful shutdown)."""
        self._deliver()
        for subscriber in list(self.subscribers):
            self.subscribers.discard(subscriber)
            subscriber.end(kill=False)

    # --- one stream ---------------------------------------------------------------------------
    def stream(self, after: int | None, names: frozenset[str] | None,
               statuses: frozenset[str] | None) -> Iterator[str]:
        """The stream's text. The subscriber is registered first, at the current position, so
        live changes queue up (bounded: a stream that stalls while replaying is closed too)
        while the changes after `after` are replayed from the feed; the stream writes ids in
        increasing order only, so a change both replayed and queued goes out once."""
        self._start()
        yield f"retry: {self.retry_ms}\n\n"
        subscriber = self._subscribe(names, statuses, self.presence.feed_position())
        try:
            if after is None:
                # from now: the position as the stream's id, so a reconnect resumes from it
                after = subscriber.after
                yield f"id: {after}\n\n"
            while True:
                page = self.presence.changes_since(after, PAGE)
                if not page.complete:
                    snapshot, after = self._snapshot(names, statuses)
                    yield _event("resync", after, json.dumps(snapshot, separators=(",", ":")))
                    continue
                if not page.changes:
                    break
                text = "".join(_event(c.event, c.event_id, c.data) for c in page.changes
                               if _matches(c, names, statuses))
                after = page.changes[-1].event_id
                if text:
                    yield text
                if after >= subscriber.after:
                    break  # the rest is in the queue
            queue = subscriber.queue
            while True:
                try:
                    change = queue.get(timeout=self.keepalive)
                except Empty:
                    yield ": keepalive\n\n"
                    continue
                text = []
                while change is not None:
                    if change.event_id > after:  # else replayed already
                        text.append(_event(change.event, change.event_id, change.data))
                        after = change.event_id
                    if len(text) >= PAGE or queue.empty():  # a burst: one write
                        break
                    change = queue.get_nowait()
                if text:
                    yield "".join(text)
                if change is None:
                    return
        finally:
            self.subscribers.discard(subscriber)
            subscriber.closed = True

    def _subscribe(self, names: frozenset[str] | None, statuses: frozenset[str] | None,
                   after: int) -> Subscriber:
        subscriber = Subscriber(names, statuses, self.queue_size, after)
        self.subscribers.add(subscriber)
        return subscriber

    def _snapshot(self, names: frozenset[str] | None, statuses: frozenset[str] | None
                  ) -> tuple[dict[str, Any], int]:
        """The records (filtered, at most the snapshot limit, first by name) and the position
        they reflect: read in one step, with no switch."""
        position = self.presence.feed_position()
        if names is not None:
            records = self.presence.named(sorted(names))
        else:
            records = list(self.presence.clients())
        if statuses is not None:
            records = [record for record in records if record.status in statuses]
        total = len(records)
        records = heapq.nsmallest(self.snapshot_limit, records, key=lambda record: record.name)
        clients = [record.public() for record in records]
        if self.presence.identities.required:
            for client in clients:
                client.pop("ip", None)
        return {"clients": clients, "total": total, "truncated": len(clients) < total,
                "eventId": position}, position


def _matches(change: Change, names: frozenset[str] | None,
             statuses: frozenset[str] | None) -> bool:
    return ((names is None or change.name in names)
            and (statuses is None or change.status in statuses))


def _event(event: str, event_id: int, data: str) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n"


def _listed(key: str) -> list[str] | None:
    values = [part.strip() for value in request.args.getlist(key) for part in value.split(",")]
    values = [value for value in values if value]
    return values or None


@sse.get("/events")
def event_stream():
    streams: EventStreams = current_app.extensions["event_streams"]
    presence: PresencePort = current_app.extensions["presence"]
    from .api import error

    if presence.shutting_down:
        return error(503, "shutting_down", "the server is shutting down; reconnect shortly")
    raw = request.headers.get("Last-Event-ID")
    if raw is None:
        raw = request.args.get("lastEventId")
    after = None
    if raw is not None and raw.strip() != "":
        after = parse_event_id(raw.strip())
        if after is None:
            return error(400, "invalid_query", "Last-Event-ID / lastEventId must be an eventId "
                                               f"(a whole number >= 0), got {raw[:40]!r}")
    try:
        listed = _listed("name")
        names = (frozenset(validation.name(name, "name") for name in listed)
                 if listed is not None else None)
    except Invalid as problem:
        return error(400, "invalid_query", str(problem))
    statuses = _listed("status")
    if statuses is not None and not set(statuses) <= set(STATUSES):
        return error(400, "invalid_query", f"status must be among {', '.join(STATUSES)}")
    connection = request.environ.get("presence.socket") or request.environ.get(
        "gunicorn.socket")
    if connection is not None:
        try:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SEND_BUFFER)
        except OSError:
            log.debug("/events: could not cap the send buffer", exc_info=True)
    body = streams.stream(after, names, frozenset(statuses) if statuses else None)
    return Response(body, mimetype="text/event-stream", headers=HEADERS)
