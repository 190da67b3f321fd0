"""The stored shapes: a client record and one status transition (CONTRACT §3)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

ONLINE = "online"
RECONNECTING = "reconnecting"
OFFLINE = "offline"
STATUSES = (ONLINE, RECONNECTING, OFFLINE)


def iso(timestamp: float | None) -> str | None:
    """Epoch seconds -> ISO-8601 UTC with milliseconds (`2026-11-22T04:39:16.123Z`)."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


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

    def public(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "previous": self.previous,
            "reason": self.reason,
            "at": iso(self.at),
            "version": self.version,
            "node": self.node,
        }
