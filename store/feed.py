"""The change feed every store keeps: status changes and removals, each with an `eventId`.

An event id is assigned at the change, in memory, strictly increasing (also across restarts: a
backend continues from the highest id it ever stored), so the id is known when the change is
emitted although the write itself is buffered. On SQLite ids are integers (the transition's row
id); on Redis the stream entry `0-<n>` carries id n (store/redis.py). Callers treat them as
values they compare.

`ChangeLog` is the in-memory window of the last `backlog` changes a single-node backend serves
`changes_since` from (loaded from the file at open): a bisect and a slice, never the disk, so it
may be read in the same uninterrupted step as the records (see web/watch.py).
"""

from __future__ import annotations

import bisect

from .records import Change, FeedPage


class ChangeLog:
    """The last `backlog` changes in id order (ids strictly increasing, gaps allowed)."""

    def __init__(self, backlog: int, position: int = 0, loaded: list[Change] | None = None
                 ) -> None:
        self.backlog = max(1, int(backlog))
        self._changes: list[Change] = list(loaded or [])[-self.backlog:]
        if self._changes and self._changes[-1].event_id < position:
            self._changes = []  # the newest changes are not among those kept: a gap
        self._ids: list[int] = [change.event_id for change in self._changes]
        self.position = max(position, self._ids[-1] if self._ids else 0)
        # every change with an id <= floor is gone (or was never kept); those above are here
        self.floor = self._ids[0] - 1 if self._ids else self.position

    def next_id(self) -> int:
        return self.position + 1

    def append(self, change: Change) -> None:
        if change.event_id <= self.position:
            raise ValueError(f"event id {change.event_id} is not after {self.position}")
        self._changes.append(change)
        self._ids.append(change.event_id)
        self.position = change.event_id
        excess = len(self._changes) - self.backlog
        if excess >= max(1, self.backlog // 10):  # trim in batches: amortised O(1)
            self.floor = self._ids[excess - 1]
            del self._changes[:excess]
            del self._ids[:excess]

    def since(self, event_id: int, limit: int) -> FeedPage:
        complete = self.floor <= event_id <= self.position
        if not complete:
            return FeedPage([], self.position, False)
        start = bisect.bisect_right(self._ids, event_id)
        changes = self._changes[start:start + limit]
        more = start + limit < len(self._changes)
        return FeedPage(changes, self.position, True, more)

    def __len__(self) -> int:
        return len(self._changes)
