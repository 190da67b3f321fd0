"""`Presence.send_to`: targeted delivery reaches the sockets the client's actor counts and that
are still registered under its name, and nothing else (real actors, recording sockets)."""

from __future__ import annotations

import pykka
import pytest
from presence_server.actors.clock import ManualClock
from presence_server.actors.messages import Connect, Disconnect
from presence_server.store import open_store
from presence_server.web.identity import Identities

from presence_server.presence import Presence

from .conftest import INTERVALS, TIMING, Recorder


@pytest.fixture
def presence(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'presence.db'}")
    clock = ManualClock(start=1_000_000.0)
    node = Presence(node="n1", store=store, clock=clock, scheduler=clock, timing=TIMING,
                    intervals=INTERVALS, identities=Identities(None))
    sockets = Recorder()
    node.attach(sockets, emit=sockets.emit, close=sockets.disconnect)
    try:
        yield node, sockets
    finally:
        pykka.ActorRegistry.stop_all()
        store.close()


def connect(node: Presence, sockets: Recorder, sid: str, name: str) -> None:
    sockets.live[sid] = name
    node.deliver(name, Connect(sid, "127.0.0.1", node.now()))


def test_every_counted_socket_gets_it_once(presence):
    node, sockets = presence
    connect(node, sockets, "s1", "bob")
    connect(node, sockets, "s2", "bob")
    connect(node, sockets, "s3", "carol")
    assert node.status_of("bob") == "online" and node.status_of("carol") == "online"

    assert node.send_to("bob", "call_invite", {"from": "alice"}) == 2
    sent = [(event, to) for event, _, to in sockets.emitted if event == "call_invite"]
    assert sorted(sent) == [("call_invite", "s1"), ("call_invite", "s2")]


def test_nobody_unknown_or_gone_is_reached(presence):
    node, sockets = presence
    assert node.send_to("nobody", "x", {}) == 0
    connect(node, sockets, "s1", "bob")
    assert node.status_of("bob") == "online"
    del sockets.live["s1"]  # the socket closed; its actor has not heard yet
    assert node.send_to("bob", "x", {}) == 0
    node.deliver("bob", Disconnect("s1", node.now()))
    assert node.status_of("bob") == "reconnecting"
    sockets.live["s1"] = "bob"  # even a stale live entry: a reconnecting client gets nothing
    assert node.send_to("bob", "x", {}) == 0
    assert [event for event, _, _ in sockets.emitted if event == "x"] == []
