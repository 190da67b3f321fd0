"""The records a node keeps in memory and their index: by status, by node, guests, running
counts, and online connected records by the second of their last contact. Every store query
(`by_status`, `guests`, `of_node`, `counts`, `responsive`) is answered here in O(1) or
O(matching records). The SQLite store keeps its file's records here; the Redis store keeps its
mirror of the shared records here (applied from the change feed).
"""

from __future__ import annotations

import math

from .records import ONLINE, STATUSES, ClientRecord


class RecordIndex:
    """Records by name, and the indexes the store queries read."""

    def __init__(self) -> None:
        self.records: dict[str, ClientRecord] = {}
        self._by_status: dict[str, set[str]] = {}
        self._by_node: dict[str, set[str]] = {}
        self._guest_names: set[str] = set()
        self._connections = 0
        self._by_contact_second: dict[int, set[str]] = {}

    def get(self, name: str) -> ClientRecord | None:
        return self.records.get(name)

    def values(self) -> list[ClientRecord]:
        return list(self.records.values())

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, name: object) -> bool:
        return name in self.records

    def remove(self, name: str) -> ClientRecord | None:
        old = self.records.pop(name, None)
        if old is not None:
            self._unindex(old)
        return old

    def put(self, record: ClientRecord) -> None:
        """Keep `record` and its index entries: O(1), and on the heartbeat path (where only
        the contact times change) a dict store, a few comparisons, at most a set move."""
        old = self.records.get(record.name)
        self.records[record.name] = record
        if old is not None:
            if (old.status == record.status and old.guest == record.guest
                    and old.node == record.node):
                self._connections += record.connections - old.connections
                self._move_contact(record.name, _contact_second(old), _contact_second(record))
                return
            self._unindex(old)
        self._by_status.setdefault(record.status, set()).add(record.name)
        self._by_node.setdefault(record.node, set()).add(record.name)
        if record.guest:
            self._guest_names.add(record.name)
        self._connections += record.connections
        self._move_contact(record.name, None, _contact_second(record))

    def _unindex(self, record: ClientRecord) -> None:
        for index, key in ((self._by_status, record.status), (self._by_node, record.node)):
            names = index.get(key)
            if names is not None:
                names.discard(record.name)
                if not names:
                    del index[key]
        self._guest_names.discard(record.name)
        self._connections -= record.connections
        self._move_contact(record.name, _contact_second(record), None)

    def _move_contact(self, name: str, old: int | None, new: int | None) -> None:
        """Online, connected records by the whole second of their last contact, so that
        `responsive` counts buckets (about one per second of the window) instead of records."""
        if old == new:
            return
        buckets = self._by_contact_second
        if old is not None:
            bucket = buckets.get(old)
            if bucket is not None:
                bucket.discard(name)
                if not bucket:
                    del buckets[old]
        if new is not None:
            bucket = buckets.get(new)
            if bucket is None:
                buckets[new] = bucket = set()
            bucket.add(name)

    def _select(self, names: set[str] | None) -> list[ClientRecord]:
        records = self.records
        return [records[name] for name in names] if names else []

    def by_status(self, status: str) -> list[ClientRecord]:
        return self._select(self._by_status.get(status))

    def guests(self) -> list[ClientRecord]:
        return self._select(self._guest_names)

    def of_node(self, node: str) -> list[ClientRecord]:
        return self._select(self._by_node.get(node))

    def counts(self) -> dict[str, int]:
        counts = {status: len(names) for status, names in self._by_status.items()}
        for status in STATUSES:
            counts.setdefault(status, 0)
        counts.update(total=len(self.records), guests=len(self._guest_names),
                      connections=self._connections)
        return counts

    def responsive(self, now: float, window: float) -> int:
        """O(seconds with a contact) — online clients are silent for a few heartbeat intervals
        at most, so a few hundred buckets — plus the records of the one bucket the window's
        edge cuts through; never O(clients)."""
        edge = now - window
        count = 0
        for second, names in list(self._by_contact_second.items()):
            if second >= edge:
                count += len(names)
            elif second + 1 > edge:  # the edge cuts this second: look at each contact
                records = self.records
                count += sum(1 for name in names if records[name].last_contact >= edge)
        return count


def _contact_second(record: ClientRecord) -> int | None:
    """The bucket of a record `responsive` may count: online, connected, heard from."""
    contact = record.last_contact
    if record.status != ONLINE or record.connections <= 0 or contact is None:
        return None
    return math.floor(contact)


