"""The one place a status change goes through: persist it, log it, tell the watchers.

Actors never touch Socket.IO or Flask: they get a `PresenceFeed`, which holds the store, an
`emit(event, data, to=None)` callable and a `disconnect(sid)` callable (in production the
runtime's, which closes the socket's transport; recorders in tests).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from presence_server.store.base import Store
from presence_server.store.records import (
    REMOVED,
    STATUS_CHANGED,
    Change,
    ClientRecord,
    Transition,
    iso,
)

log = logging.getLogger("presence.status")

WATCHERS_ROOM = "watchers"
WATCHING_PREFIX = "watching:"  # + a name: sockets that watch that client only (watch {names})


def watchers_of(name: str) -> list[str]:
    """The rooms a change of `name` goes to: every watcher, and the watchers of `name` only."""
    return [WATCHERS_ROOM, WATCHING_PREFIX + name]

Emit = Callable[..., None]
Listener = Callable[[dict[str, Any]], None]
ChangeListener = Callable[[Change], None]


def status_event(record: ClientRecord, previous: str | None) -> dict[str, Any]:
    """The `client_status_changed` payload (CONTRACT §4)."""
    return {
        "id": record.name,
        "name": record.name,
        "status": record.status,
        "previous": previous,
        "reason": record.reason,
        "since": iso(record.since),
        "lastHeartbeat": iso(record.last_seen),
        "version": record.version,
        "node": record.node,
        "guest": record.guest,
    }


def removal_event(record: ClientRecord, reason: str, now: float) -> dict[str, Any]:
    """The `client_removed` payload: a record (and its history) was deleted."""
    return {
        "id": record.name,
        "name": record.name,
        "reason": reason,
        "status": record.status,
        "node": record.node,
        "guest": record.guest,
        "timestamp": iso(now),
    }


class PresenceFeed:
    """Persists records and transitions, logs `[STATUS]` lines, emits watcher events."""

    def __init__(self, store: Store, emit: Emit, disconnect: Callable[[str], None]) -> None:
        self.store = store
        self._emit = emit
        self._disconnect = disconnect
        self._listeners: list[Listener] = []
        self._change_listeners: list[ChangeListener] = []
        # several nodes: (event, payload, name) to the other nodes' watchers (not in the feed)
        self.broadcast: Callable[[str, dict[str, Any], str], None] | None = None

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(payload)` on every status change."""
        self._listeners.append(listener)

    def subscribe_changes(self, listener: ChangeListener) -> None:
        """Call `listener(change)` with every feed entry (status changes and removals), in
        id order, right after it was logged (e.g. server-sent events: it must only enqueue)."""
        self._change_listeners.append(listener)

    def _changed(self, change: Change, payload: dict[str, Any]) -> None:
        """Emit `event` to the watchers room and tell the change listeners. Runs right after
        the store logged the change, with nothing in between that could switch greenlets: a
        watcher reading records and the feed position together sees each change either in
        the records or as an event after that position (web/watch.py)."""
        self._emit(change.event, payload, to=watchers_of(change.name))
        for listener in self._change_listeners:
            try:
                listener(change)
            except Exception:
                log.exception("change listener failed for %s", change.name)

    def applied(self, change: Change) -> None:
        """A shared store's feed reader applied `change` (any node's): tell the local
        watchers and listeners, in feed order. Never called for a single-node store, whose
        changes are told where they are made."""
        self._changed(change, change.payload())

    def status_changed(self, record: ClientRecord, previous: str | None) -> None:
        payload = status_event(record, previous)
        if self.store.shared:  # committed with its event id; the feed reader tells watchers
            transition = Transition(record.name, record.status, previous, record.reason,
                                    record.since, record.version, record.node)
            self.store.commit_change(record, transition, STATUS_CHANGED, payload)
            log.info("[STATUS] %s: %s (reason: %s)", record.name, record.status, record.reason)
            self._tell_listeners(record.name, payload)
            return
        change = self.store.log_change(STATUS_CHANGED, payload)
        transition = Transition(
            name=record.name,
            status=record.status,
            previous=previous,
            reason=record.reason,
            at=record.since,
            version=record.version,
            node=record.node,
            event_id=change.event_id,
        )
        self.store.save(record, transition)
        log.info("[STATUS] %s: %s (reason: %s)", record.name, record.status, record.reason)
        self._changed(change, payload)
        self._tell_listeners(record.name, payload)

    def _tell_listeners(self, name: str, payload: dict[str, Any]) -> None:
        for listener in self._listeners:
            try:
                listener(payload)
            except Exception:
                log.exception("status listener failed for %s", name)

    def touched(self, record: ClientRecord) -> None:
        self.store.save(record)

    def contacted(self, record: ClientRecord) -> None:
        """Only contact times moved (the heartbeat path): the store writes it lazily."""
        self.store.save_contact(record)

    def remove(self, records: list[ClientRecord], reason: str, now: float) -> int:
        """Delete records and their history: one log line and a `client_removed` feed entry
        each; answers how many existed."""
        if self.store.shared:  # one commit each: the deletion and its feed entry together
            for record in records:
                log.info("[REMOVED] %s: was %s (reason: %s)", record.name, record.status,
                         reason)
                self.store.commit_removal(record, removal_event(record, reason, now))
            return len(records)
        deleted = self.store.delete([record.name for record in records])
        for record in records:
            self.removed(record, reason, now)
        return deleted

    def removed(self, record: ClientRecord, reason: str, now: float) -> None:
        """A record was deleted: one log line, `client_removed` to watchers."""
        log.info("[REMOVED] %s: was %s (reason: %s)", record.name, record.status, reason)
        payload = removal_event(record, reason, now)
        self._changed(self.store.log_change(REMOVED, payload), payload)

    def resync(self, position: int) -> None:
        """The feed had a gap (several nodes): watchers must take a new snapshot."""
        log.warning("feed gap: watchers told to resync at %d", position)
        self._emit("resync", {"eventId": position, "reason": "feed_gap"},
                   to=[WATCHERS_ROOM, WATCHING_PREFIX])

    def reconnected(self, name: str, now: float) -> None:
        log.info("client reconnected: %s", name)
        payload = {"clientName": name, "timestamp": iso(now)}
        self._emit("client_reconnected", payload, to=watchers_of(name))
        if self.broadcast is not None:
            self.broadcast("client_reconnected", payload, name)

    def close_sockets(self, sids: frozenset[str]) -> None:
        """Close these sockets' transports: their clients see a dropped connection and reconnect."""
        for sid in sids:
            try:
                self._disconnect(sid)
            except Exception:
                log.exception("could not close socket %s", sid)
