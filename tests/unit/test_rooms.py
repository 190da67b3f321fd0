"""web/rooms.py: the indexed Socket.IO manager behaves exactly like python-socketio's own.

A differential test: the same random sequence of connects, room moves and disconnects is applied
to a real `socketio.Server` with the stock manager and to one with `IndexedManager`; rooms,
per-socket rooms and pending lists must match after every step. The same runs check the manager
in its fallback mode (`indexed=False`: what the version guard picks outside the tested
python-socketio range, web/hooks.py).
"""

from __future__ import annotations

import random

import pytest
import socketio
from presence_server.web.rooms import IndexedManager

NAMESPACES = ["/", "/admin"]
ROOMS = ["lobby", "watchers", "ops"]


def make_pair(indexed_mode: bool = True) -> tuple[socketio.Manager, socketio.Manager]:
    stock = socketio.Server(client_manager=socketio.Manager()).manager
    indexed = socketio.Server(client_manager=IndexedManager(indexed=indexed_mode)).manager
    return stock, indexed


def normalised(manager: socketio.Manager) -> dict:
    return {ns: {room: dict(members) for room, members in rooms.items()}
            for ns, rooms in manager.rooms.items()}


class Twin:
    """Applies one operation to both managers, using the same sids for both."""

    def __init__(self, indexed_mode: bool = True) -> None:
        self.stock, self.indexed = make_pair(indexed_mode)
        self.connected: list[tuple[str, str]] = []  # (namespace, sid)
        self.counter = 0

    def connect(self, namespace: str) -> None:
        self.counter += 1
        eio_sid = f"eio{self.counter}"
        sid = f"sid{self.counter}"
        for manager in (self.stock, self.indexed):
            manager.server.eio.generate_id = lambda sid=sid: sid
            assert manager.connect(eio_sid, namespace) == sid
        self.connected.append((namespace, sid))

    def each(self, method: str, *args) -> None:
        results = [getattr(m, method)(*args) for m in (self.stock, self.indexed)]
        assert results[0] == results[1]

    def check(self) -> None:
        assert normalised(self.stock) == normalised(self.indexed)
        assert self.stock.pending_connect == self.indexed.pending_connect
        assert self.stock.callbacks == self.indexed.callbacks
        for namespace, sid in self.connected:
            assert sorted(self.stock.get_rooms(sid, namespace), key=str) == \
                sorted(self.indexed.get_rooms(sid, namespace), key=str)


@pytest.mark.parametrize("indexed_mode", [True, False], ids=["indexed", "fallback"])
@pytest.mark.parametrize("seed", range(20))
def test_random_sequences_match_the_stock_manager(seed: int, indexed_mode: bool) -> None:
    rng = random.Random(seed)
    twin = Twin(indexed_mode)
    for _ in range(300):
        action = rng.random()
        if action < 0.3 or not twin.connected:
            twin.connect(rng.choice(NAMESPACES))
        elif action < 0.55:
            namespace, sid = rng.choice(twin.connected)
            twin.each("enter_room", sid, namespace, rng.choice(ROOMS))
        elif action < 0.7:
            namespace, sid = rng.choice(twin.connected)
            twin.each("leave_room", sid, namespace, rng.choice(ROOMS))
        elif action < 0.75:
            namespace = rng.choice(NAMESPACES)
            room = rng.choice(ROOMS)
            if room in twin.stock.rooms.get(namespace, {}):
                twin.each("close_room", room, namespace)
        else:
            namespace, sid = twin.connected.pop(rng.randrange(len(twin.connected)))
            twin.each("disconnect", sid, namespace)
        twin.check()


def test_disconnect_forgets_the_socket_everywhere() -> None:
    twin = Twin()
    twin.connect("/")
    twin.connect("/")
    twin.each("enter_room", "sid1", "/", "watchers")
    twin.each("enter_room", "sid2", "/", "watchers")
    twin.each("disconnect", "sid1", "/")
    twin.check()
    manager = twin.indexed
    assert ("/", "sid1") not in manager.rooms_of
    assert dict(manager.rooms["/"]["watchers"]) == {"sid2": "eio2"}
    assert manager.get_rooms("sid2", "/") == ["sid2", "watchers"]


def test_disconnect_of_an_unknown_socket_changes_nothing() -> None:
    twin = Twin()
    twin.connect("/")
    twin.each("disconnect", "nobody", "/")
    twin.each("disconnect", "sid1", "/elsewhere")
    twin.check()
    assert twin.indexed.get_rooms("sid1", "/") == ["sid1"]


def test_pending_callbacks_are_dropped_on_disconnect() -> None:
    twin = Twin()
    twin.connect("/")
    for manager in (twin.stock, twin.indexed):
        manager._generate_ack_id("sid1", lambda *a: None)
    twin.indexed.callbacks["sid1"] = twin.stock.callbacks["sid1"]  # same objects to compare
    twin.each("disconnect", "sid1", "/")
    twin.check()
    assert "sid1" not in twin.indexed.callbacks


def test_the_version_guard_turns_the_index_on_within_the_tested_range() -> None:
    from presence_server.web import hooks

    manager = IndexedManager()
    assert manager.indexed is hooks.ROOMS.allowed()
    assert hooks.ROOMS.allowed(), "the installed python-socketio is outside the tested range"
    assert hooks.ROOMS.status == hooks.ACTIVE
    fallback = IndexedManager(indexed=False)
    socketio.Server(client_manager=fallback)
    fallback.connect("e1", "/")
    assert fallback.rooms_of == {}  # no index in fallback mode
