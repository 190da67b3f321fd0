"""The stored shapes: a client record and one status transition (CONTRACT §3)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

ONLINE = "online"
RECONNECTING = "reconnecting"
OFFLINE = "offline"
STATUSES = (ONLINE, RECONNECTING, OFFLINE)


def iso(timestamp: float | None) -> str | None:
    """Epoch seconds -> ISO-8601 UTC with milliseconds (`2026-11-22T04:39:16.123Z`).

    Every heartbeat reply carries one, so the date part is formatted once per second and cached;
    the split into second and microsecond rounds exactly as `datetime.fromtimestamp` does.
    """
    if timestamp is None:
        return None
    global _iso_cache
    fraction, whole = math.modf(timestamp)
    micros = round(fraction * 1e6)
    second = int(whole)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    elif micros < 0:
        second, micros = second - 1, micros + 1_000_000
    cached_second, prefix = _iso_cache  # one tuple: safe to share with the store's thread
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _iso_cache = (second, prefix)
    return f"{prefix}{micros // 1000:03d}Z"


_iso_cache: tuple[int | None, str] = (None, "")


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """What the store keeps per client; times are epoch seconds."""

    name: str
    status: str
    reason: str
    since: float
    last_seen: float | None
    last_contact: float | None
    ip: str | None
    guest: bool
    node: str
    connections: int
    version: int
    display_name: str | None = None
    grace_until: float | None = None

    def to_dict(self) -> dict[str, Any]:
        # flat fields only: cheaper than dataclasses.asdict, which deep-copies
        return {name: getattr(self, name) for name in _RECORD_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClientRecord:
        return cls(**{key: value for key, value in data.items() if key in _RECORD_FIELDS})

    def public(self) -> dict[str, Any]:
        """The record as the HTTP API and watch snapshots show it (ISO times)."""
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "since": iso(self.since),
            "last_seen": iso(self.last_seen),
            "last_contact": iso(self.last_contact),
            "ip": self.ip,
            "guest": self.guest,
            "display_name": self.display_name,
            "node": self.node,
            "connections": self.connections,
            "version": self.version,
        }


_RECORD_FIELDS = tuple(field.name for field in fields(ClientRecord))


@dataclass(frozen=True, slots=True)
class Transition:
    """One status change of one client, kept as its history."""

    name: str
    status: str
    previous: str | None
    reason: str
    at: float
    version: int
    node: str
    event_id: int | None = None  # its id in the change feed (store/feed.py)

    def public(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "status": self.status,
            "previous": self.previous,
            "reason": self.reason,
            "at": iso(self.at),
            "version": self.version,
            "node": self.node,
        }


# --- the change feed (store/feed.py): event ids are ints on SQLite ---------------------------
STATUS_CHANGED = "client_status_changed"
REMOVED = "client_removed"


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the feed: the watcher event it was sent as, and its JSON payload."""

    event_id: int
    event: str  # STATUS_CHANGED or REMOVED
    name: str
    status: str
    data: str  # the event's payload as JSON (it carries "eventId")

    def payload(self) -> dict[str, Any]:
        return json.loads(self.data)


@dataclass(frozen=True, slots=True)
class FeedPage:
    """What `changes_since` answers.

    `changes`: after the id asked for, oldest first, at most the limit asked for (`more` says
    the limit cut it). `position`: the newest id when it was read. `complete` is False when the
    id asked for is older than the backlog kept (or unknown to this feed): changes after it
    are lost, the caller must resync from a snapshot.
    """

    changes: list[Change]
    position: int
    complete: bool
    more: bool = False


def parse_event_id(value: Any) -> int | None:
    """An event id as clients send it (a JSON number or a decimal string); None when invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    return None
