"""`watch`: a snapshot and the feed position it reflects, or the changes after a position, with
the socket joining the watchers room at exactly that position.

Every change is logged in the store's feed and emitted to the watchers room in one step with no
greenlet switch (actors/feed.py), so records and the feed position read together, with no switch
between, are consistent: the records hold every change up to the position and none after it.

A snapshot is serialised in chunks with a yield between them (other sockets' readers run), and
changes go on meanwhile. So: read the records and the position P (one step); serialise (yields);
then, in one final step with no switch, read again the records of the names changed in (P, Q]
(Q: the position now), join the room, and answer Q. The reply is queued before any other
greenlet runs (`ReplyServer`), so the socket gets every change after Q, after the answer, and
every change up to Q is in the answer: none lost, none twice.

`since`: the changes after it come in the answer (one step, no switch), unless `since` is older
than the backlog (or unknown) or more than `limit` changes followed it: then a snapshot, with
`resync: true`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from presence_server.actors.feed import WATCHERS_ROOM, WATCHING_PREFIX
from presence_server.store.records import ClientRecord

if TYPE_CHECKING:
    from .port import PresencePort

WATCH_CHUNK = 100  # records serialised between two yields to the other sockets
CATCH_UP = 5000  # most changes re-read after serialising; more: serialise again
ATTEMPTS = 3  # serialisations with yields before one without


class Watch:
    """Builds `watch` answers for one server: `answer(sid, names, since, hide_ip)`."""

    def __init__(self, presence: PresencePort, enter_room: Callable[[str, str], None],
                 leave_room: Callable[[str, str], None], sleep: Callable[[float], None],
                 limit: int, rooms: Callable[[str], list[str]] = lambda sid: []) -> None:
        self.presence = presence
        self._enter_room = enter_room
        self._leave_room = leave_room
        self._rooms = rooms
        self._sleep = sleep
        self.limit = limit

    def answer(self, sid: str, names: list[str] | None, since: int | None,
               hide_ip: bool) -> tuple[dict[str, Any], int]:
        """The ack payload, and how many items (records or changes) it carries. The socket is
        in the watchers room when this returns, and must get the answer before any other
        packet (no switch may happen between this return and queueing the reply)."""
        self.leave(sid)  # a second watch: no event may pass its new answer
        if since is not None:
            page = self.presence.changes_since(since, self.limit + 1)
            wanted = set(names) if names is not None else None
            changes = [change for change in page.changes
                       if wanted is None or change.name in wanted]
            if page.complete and not page.more and len(changes) <= self.limit:
                self._enter(sid, names)
                return {"eventId": page.position, "resync": False, "changes": [
                    {"event": change.event, "data": _shown(change.payload(), hide_ip)}
                    for change in changes]}, len(changes)
        body = self._snapshot(sid, names, hide_ip)
        body["resync"] = since is not None
        return body, len(body["clients"])

    def _enter(self, sid: str, names: list[str] | None) -> None:
        """Join the room of every change, or with `names` the rooms of those clients only."""
        if names is None:
            self._enter_room(sid, WATCHERS_ROOM)
        else:  # the room of no client: feed-wide news (`resync`) for watchers of some names
            self._enter_room(sid, WATCHING_PREFIX)
        for name in names or ():
            self._enter_room(sid, WATCHING_PREFIX + name)

    def leave(self, sid: str) -> None:
        """Stop every watch of this socket (`unwatch`, or before a new `watch`)."""
        self._leave_room(sid, WATCHERS_ROOM)
        for room in self._rooms(sid):
            if isinstance(room, str) and room.startswith(WATCHING_PREFIX):
                self._leave_room(sid, room)

    def _select(self, names: list[str] | None) -> tuple[list[ClientRecord], int]:
        if names is not None:
            records = self.presence.named(names)
            return records, len(records)
        everyone = list(self.presence.clients())
        total = len(everyone)
        if total > self.limit:
            everyone = heapq.nsmallest(self.limit, everyone, key=lambda r: r.name)
        return everyone, total

    def _snapshot(self, sid: str, names: list[str] | None, hide_ip: bool) -> dict[str, Any]:
        for attempt in range(ATTEMPTS + 1):
            yields = attempt < ATTEMPTS
            position = self.presence.feed_position()  # with the records: no switch between
            records, total = self._select(names)
            clients: dict[str, dict[str, Any]] = {}
            for start in range(0, len(records), WATCH_CHUNK):
                if start and yields:
                    self._sleep(0)  # let other sockets' readers run between chunks
                for record in records[start:start + WATCH_CHUNK]:
                    clients[record.name] = _shown(record.public(), hide_ip)
            # from here to the return: no switch
            page = self.presence.changes_since(position, CATCH_UP)
            if page.complete and not page.more:
                break
        wanted = set(names) if names is not None else None
        # a truncated snapshot holds the first names: one after its last stays out
        last = max(clients, default="") if wanted is None and total > self.limit else None
        for change in page.changes:
            name = change.name
            if (wanted is not None and name not in wanted) or (
                    last is not None and name not in clients and name > last):
                continue
            record = self.presence.record(name)
            if record is None:
                clients.pop(name, None)
            else:
                clients[name] = _shown(record.public(), hide_ip)
        if page.changes and wanted is None:
            total = self.presence.total()
            if len(clients) > self.limit:
                kept = heapq.nsmallest(self.limit, clients)
                clients = {name: clients[name] for name in kept}
        elif wanted is not None:
            total = len(clients)
        self._enter(sid, names)
        return {"clients": list(clients.values()), "total": total,
                "truncated": len(clients) < total, "eventId": page.position}


def _shown(client: dict[str, Any], hide_ip: bool) -> dict[str, Any]:
    if hide_ip:
        client.pop("ip", None)
    return client
