"""Engine.IO pings (sent from hub timers, web/pings.py) keep live sockets up and find dead ones."""

from __future__ import annotations

import threading

import pytest
from engineio import packet

from tests.support.server import wait_for

from .helpers import LONG, SHORT, wait_record

pytestmark = pytest.mark.timeout(60)

PINGS = {
    "socket": {"ping_interval": "0.2s", "ping_timeout": "0.4s"},
    "monitoring": {"connection_check_interval": "30s", "heartbeat_interval": "10s"},
}


@pytest.fixture(scope="module")
def server(module_server):
    return module_server(PINGS)


def count_pings(client):
    """Count the Engine.IO PING packets the client's engine receives (it answers each)."""
    eio = client.sio.eio
    received = {"pings": 0}
    lock = threading.Lock()
    original = eio._receive_packet

    def receive(pkt):
        if pkt.packet_type == packet.PING:
            with lock:
                received["pings"] += 1
        return original(pkt)

    eio._receive_packet = receive
    return received


def test_a_live_socket_is_pinged_every_interval_and_stays_connected(
        server, connect, transport, unique):
    name = unique("pinged")
    client = connect(server.url, transport, auth={"clientName": name})
    sid = client.sio.get_sid()
    received = count_pings(client)

    wait_for(lambda: received["pings"] >= 8, SHORT, 0.05, "eight ping cycles")

    assert client.sio.connected and client.sio.get_sid() == sid
    assert client.of("disconnect") == []
    record = wait_record(server, name, "online")
    assert record["connections"] == 1 and record["version"] == 1


def test_a_socket_that_stops_answering_pings_is_closed(server, connect, transport, unique):
    name = unique("mute")
    client = connect(server.url, transport, auth={"clientName": name})
    assert client.heartbeat(name)["status"] == "ok"

    client.drop()  # no more pongs (and, over polling, no more polls)

    wait_record(server, name, "reconnecting", "disconnect", timeout=LONG)
