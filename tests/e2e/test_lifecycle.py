"""A client's life: drop, reconnecting, offline; back in time; several sockets; silence."""

from __future__ import annotations

import pytest

from tests.support.client_process import ClientProcess

from .helpers import (
    LONG,
    SHORT,
    assert_versions_increase,
    barrier,
    changes,
    keep_alive,
    path_of,
    seconds,
    wait_change,
    wait_record,
)

pytestmark = pytest.mark.timeout(90)

GRACE = 2.0  # monitoring.reconnection_grace_period below

# The silence limit (2s x 3 = 6s) is longer than a vanished long-polling client takes to be noticed
# (ping_interval 1s + ping_timeout 1.5s, plus the Engine.IO sweep), so a dropped client is first
# reconnecting, as it is over websocket. Connection checks are rare so that answering them plays
# no part here (see the silent-client tests).
LIFECYCLE = {
    "monitoring": {
        "heartbeat_interval": "2s",
        "max_missed_heartbeats": 3,
        "heartbeat_grace_period": "1s",
        "reconnection_grace_period": f"{GRACE}s",
        "connection_check_interval": "30s",
    },
    "socket": {"ping_interval": "1s", "ping_timeout": "1.5s"},
}


@pytest.fixture(scope="module")
def server(module_server):
    return module_server(LIFECYCLE)


def test_abrupt_drop_goes_reconnecting_then_offline_after_the_grace(
        server, connect, transport, unique):
    name = unique("drop")
    watcher = connect(server.url, transport, watch=True)
    client = connect(server.url, transport, auth={"clientName": name})
    assert client.heartbeat(name)["status"] == "ok"
    wait_change(watcher, name, "online", "connected")

    client.drop()

    reconnecting = wait_change(watcher, name, "reconnecting", "disconnect", timeout=LONG)
    offline = wait_change(watcher, name, "offline", "reconnect_timeout", timeout=LONG)
    events = changes(watcher, name)
    assert [(e["status"], e["reason"]) for e in events] == [
        ("online", "connected"), ("reconnecting", "disconnect"), ("offline", "reconnect_timeout")]
    assert [e["previous"] for e in events] == [None, "online", "reconnecting"]
    assert_versions_increase(events)
    waited = seconds(offline["since"]) - seconds(reconnecting["since"])
    assert GRACE - 0.05 <= waited < GRACE + 3, waited
    record = wait_record(server, name, "offline", "reconnect_timeout", connections=0)
    assert path_of(record["transitions"]) == [(e["status"], e["reason"]) for e in events]
    assert record["version"] == events[-1]["version"]


def test_killed_client_process_goes_reconnecting_then_offline(server, connect, unique):
    """SIGKILL on a client process: its websocket's TCP connection closes with no goodbye (over
    long-polling that is the same as `drop()` above: only the Engine.IO ping timeout tells)."""
    transport = "websocket"
    name = unique("killed")
    watcher = connect(server.url, transport, watch=True)
    process = ClientProcess(server.url, name, transport, interval=0.5).start()
    try:
        wait_change(watcher, name, "online")
        process.kill()
        wait_change(watcher, name, "reconnecting", "disconnect", timeout=LONG)
        wait_change(watcher, name, "offline", "reconnect_timeout", timeout=LONG)
    finally:
        process.kill()
    events = changes(watcher, name)
    assert [e["status"] for e in events] == ["online", "reconnecting", "offline"]
    assert_versions_increase(events)
    wait_record(server, name, "offline", "reconnect_timeout")


def test_return_within_grace_is_online_reconnected_with_no_offline(
        server, connect, transport, unique):
    name = unique("back")
    watcher = connect(server.url, transport, watch=True)
    first = connect(server.url, transport, auth={"clientName": name})
    first.heartbeat(name)
    wait_change(watcher, name, "online")

    first.drop()
    reconnecting = wait_change(watcher, name, "reconnecting", "disconnect", timeout=LONG)
    second = connect(server.url, transport, auth={"clientName": name})
    assert second.heartbeat(name)["status"] == "ok"

    back = wait_change(watcher, name, "online", "reconnected")
    assert back["previous"] == "reconnecting"
    announced = watcher.wait_event("client_reconnected", lambda e: e["clientName"] == name)
    seconds(announced["timestamp"])
    # Hold the window open past the end of the old grace: nothing may go offline.
    keep_alive(second, name, until=seconds(reconnecting["since"]) + GRACE + 0.5)
    barrier(watcher)
    events = changes(watcher, name)
    assert [(e["status"], e["reason"]) for e in events] == [
        ("online", "connected"), ("reconnecting", "disconnect"), ("online", "reconnected")]
    assert_versions_increase(events)
    record = wait_record(server, name, "online", "reconnected", connections=1)
    assert "offline" not in [t["status"] for t in record["transitions"]]
    assert path_of(record["transitions"]) == [
        ("online", "connected"), ("reconnecting", "disconnect"), ("online", "reconnected")]


def test_several_sockets_stay_online_until_the_last_one_closes(server, connect, unique):
    name = unique("tabs")
    watcher = connect(server.url, "websocket", watch=True)
    tabs = [connect(server.url, transport, auth={"clientName": name})
            for transport in ("websocket", "polling", "websocket")]
    tabs[1].heartbeat(name)
    wait_record(server, name, "online", connections=3)

    tabs[0].close()
    wait_record(server, name, "online", connections=2)
    tabs[1].drop()
    wait_record(server, name, "online", connections=1, timeout=LONG)
    assert [e["status"] for e in changes(watcher, name)] == ["online"]
    assert tabs[2].heartbeat(name)["status"] == "ok"

    tabs[2].close()
    wait_change(watcher, name, "reconnecting", "disconnect")
    record = wait_record(server, name, "reconnecting", "disconnect", connections=0)
    assert path_of(record["transitions"]) == [("online", "connected"),
                                              ("reconnecting", "disconnect")]


def test_a_second_socket_coming_and_going_changes_no_status(server, connect, transport, unique):
    name = unique("second")
    watcher = connect(server.url, transport, watch=True)
    first = connect(server.url, transport, auth={"clientName": name})
    wait_record(server, name, "online", connections=1)
    for _ in range(2):
        extra = connect(server.url, transport)
        extra.heartbeat(name)  # the heartbeat names this socket
        wait_record(server, name, "online", connections=2)
        extra.close()
        wait_record(server, name, "online", connections=1)
    barrier(watcher)
    assert [e["status"] for e in changes(watcher, name)] == ["online"]
    assert first.heartbeat(name)["status"] == "ok"


# --- silent clients -----------------------------------------------------------------------------

def silent_config(interval: float, misses: int, grace: float, check_interval: str) -> dict:
    return {
        "monitoring": {
            "heartbeat_interval": f"{interval}s",
            "max_missed_heartbeats": misses,
            "heartbeat_grace_period": f"{grace}s",
            "reconnection_grace_period": "30s",
            "connection_check_interval": check_interval,
        },
        "socket": {"ping_interval": "1s", "ping_timeout": "2s"},
    }


def run_silent_client(server, connect, transport, name, limit):
    """A client that connects, heartbeats once, then stays connected and silent."""
    watcher = connect(server.url, transport, watch=True)
    client = connect(server.url, transport, auth={"clientName": name}, answer_checks=False)
    last = seconds(client.heartbeat(name)["timestamp"])

    offline = wait_change(watcher, name, "offline", timeout=limit + 2)

    assert offline["reason"] == "heartbeat_timeout", offline
    assert offline["previous"] == "online"
    waited = seconds(offline["since"]) - last
    assert limit - 0.05 <= waited < limit + 3, (waited, limit)
    client.wait_event("disconnect", timeout=SHORT)  # the server closed its socket
    assert not client.sio.connected
    record = wait_record(server, name, "offline", "heartbeat_timeout", connections=0)
    assert path_of(record["transitions"]) == [("online", "connected"),
                                              ("offline", "heartbeat_timeout")]


@pytest.mark.parametrize("interval,misses,grace,limit", [
    (0.25, 4, 0.25, 1.0),  # max_missed_heartbeats x heartbeat_interval
    (0.25, 2, 1.5, 1.5),   # heartbeat_grace_period, when it is longer
], ids=["misses-x-interval", "grace-period"])
def test_silent_client_goes_offline_after_the_silence_limit(
        server_for, connect, transport, unique, interval, misses, grace, limit):
    server = server_for(silent_config(interval, misses, grace, "30s"))
    run_silent_client(server, connect, transport, unique("silent"), limit)


def test_silent_client_goes_offline_although_its_library_acks_connection_checks(
        server_for, connect, transport, unique):
    """python-socketio (like any client with a handler that takes the ack) acks every
    `connection_check` by itself; an ack says the socket is alive, not that the client sent a
    heartbeat, so it must not keep a silent client online (CONTRACT §3: offline after
    max_missed_heartbeats periods with no heartbeat)."""
    server = server_for(silent_config(0.25, 4, 0.25, "0.25s"))
    run_silent_client(server, connect, transport, unique("silent-acking"), 1.0)
