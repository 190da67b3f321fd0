"""A Socket.IO client manager that knows each socket's rooms.

python-socketio's manager keeps `rooms[namespace][room][sid]` only. To disconnect one socket it
copies and scans every room of the namespace — and every socket has a room of its own — so one
disconnect costs O(connected sockets) and N disconnects O(N²): a shutdown of thousands of sockets
ran past Heroku's whole SIGTERM budget, and a mass drop stalled every heartbeat for as long
(bench/results/design-figures.md). `RoomIndex` adds the reverse index (namespace, sid) → rooms,
kept in step by `basic_enter_room`/`basic_leave_room`, so a disconnect touches that socket's rooms
only.

`RoomIndex` is a mixin so the same index fits a message-queue manager later
(`class M(RoomIndex, socketio.RedisManager)`); `IndexedManager` is the in-process one.
This is the `rooms` hook of web/hooks.py: outside the python-socketio versions it was tested with,
the manager keeps python-socketio's own `disconnect` and `get_rooms` (and builds no index).
"""

from __future__ import annotations

from typing import Any

import socketio

from . import hooks

HOOK = hooks.ROOMS


class RoomIndex:
    """Mixin for a python-socketio manager: rooms per socket, disconnect in O(its rooms)."""

    rooms: dict[str, dict[Any, Any]]
    callbacks: dict[str, Any]
    pending_connect: dict[str, list[str]]
    pending_disconnect: dict[str, list[str]]

    def __init__(self, *args: Any, indexed: bool | None = None, **kwargs: Any) -> None:
        """`indexed`: None asks the version guard (web/hooks.py); False is python-socketio's own."""
        super().__init__(*args, **kwargs)
        # (namespace, sid) -> {room: None}, in the order entered (a dict keeps it, a set would not)
        self.rooms_of: dict[tuple[str, str], dict[Any, None]] = {}
        if indexed is None:
            indexed = HOOK.allowed()
            if indexed:
                HOOK.activate()
        self.indexed = indexed

    def basic_enter_room(self, sid: str, namespace: str, room: Any,
                         eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        if self.indexed:
            self.rooms_of.setdefault((namespace, sid), {})[room] = None

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        if not self.indexed:
            return
        key = (namespace, sid)
        entered = self.rooms_of.get(key)
        if entered is not None:
            entered.pop(room, None)
            if not entered:
                del self.rooms_of[key]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """python-socketio's `basic_disconnect`, minus the scan of every room."""
        if not self.indexed:
            return super().basic_disconnect(sid, namespace, **kwargs)  # type: ignore[misc]
        if namespace not in self.rooms:
            return
        for room in list(self.rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        """The rooms `sid` is in (its own included), without scanning the others."""
        if not self.indexed:
            return super().get_rooms(sid, namespace)  # type: ignore[misc]
        return [room for room in self.rooms_of.get((namespace, sid), ()) if room is not None]


class IndexedManager(RoomIndex, socketio.Manager):
    """The in-process manager with the room index (one server process, no message queue)."""
