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
from presence_server.store.records import ClientRecord, Transition, iso

log = logging.getLogger("presence.status")

WATCHERS_ROOM = "watchers"

Emit = Callable[..., None]
Listener = Callable[[dict[str, Any]], None]


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

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(payload)` on every status change (e.g. server-sent events)."""
        self._listeners.append(listener)

    def status_changed(self, record: ClientRecord, previous: str | None) -> None:
        transition = Transition(
            name=record.name,
            status=record.status,
            previous=previous,
            reason=record.reason,
            at=record.since,
            version=record.version,
            node=record.node,
        )
        self.store.save(record, transition)
        log.info("[STATUS] %s: %s (reason: %s)", record.name, record.status, record.reason)
        payload = status_event(record, previous)
        self._emit("client_status_changed", payload, to=WATCHERS_ROOM)
        for listener in self._listeners:
            try:
                listener(payload)
            except Exception:
                log.exception("status listener failed for %s", record.name)

    def touched(self, record: ClientRecord) -> None:
        self.store.save(record)

    def contacted(self, record: ClientRecord) -> None:
        """Only contact times moved (the heartbeat path): the store writes it lazily."""
        self.store.save_contact(record)

    def removed(self, record: ClientRecord, reason: str, now: float) -> None:
        """A record was deleted: one log line, `client_removed` to watchers."""
        log.info("[REMOVED] %s: was %s (reason: %s)", record.name, record.status, reason)
        self._emit("client_removed", removal_event(record, reason, now), to=WATCHERS_ROOM)

    def reconnected(self, name: str, now: float) -> None:
        log.info("client reconnected: %s", name)
        self._emit("client_reconnected", {"clientName": name, "timestamp": iso(now)},
                   to=WATCHERS_ROOM)

    def close_sockets(self, sids: frozenset[str]) -> None:
        """Close these sockets' transports: their clients see a dropped connection and reconnect."""
        for sid in sids:
            try:
                self._disconnect(sid)
            except Exception:
                log.exception("could not close socket %s", sid)
