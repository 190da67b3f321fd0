"""Connection statistics: from the store's queries (`store_stats`: running counts, and
`responsive` from contact-time buckets — never a pass over every record), or from any list of
records (`compute_stats`, pure: the reference the store's answers are tested against)."""

from __future__ import annotations

from collections.abc import Iterable

from presence_server.store.base import Store
from presence_server.store.records import OFFLINE, ONLINE, RECONNECTING, ClientRecord


def is_responsive(record: ClientRecord, now: float, window: float) -> bool:
    """Connected and heard from (heartbeat or `connection_check` answer) within `window`."""
    contact = record.last_contact
    return (record.status == ONLINE and record.connections > 0 and contact is not None
            and now - contact <= window)


def compute_stats(records: Iterable[ClientRecord], now: float, window: float) -> dict[str, int]:
    stats = {"total": 0, ONLINE: 0, RECONNECTING: 0, OFFLINE: 0, "guests": 0, "responsive": 0,
             "connections": 0}
    for record in records:
        stats["total"] += 1
        stats[record.status] = stats.get(record.status, 0) + 1
        stats["guests"] += int(record.guest)
        stats["connections"] += record.connections
        stats["responsive"] += int(is_responsive(record, now, window))
    return stats


def store_stats(store: Store, now: float, window: float) -> dict[str, int]:
    """What `compute_stats(store.all(), …)` answers, from the store's queries (O(1) for the
    SQLite store's counts; `responsive` O(seconds with a contact))."""
    stats = {"total": 0, ONLINE: 0, RECONNECTING: 0, OFFLINE: 0, "guests": 0, "responsive": 0,
             "connections": 0}
    stats.update(store.counts())
    stats["responsive"] = store.responsive(now, window)
    return stats
