"""Guests: server-assigned ids, their own grace, cleanup of offline guests, resuming an id."""

from __future__ import annotations

import pytest

from tests.support.server import wait_for

from .helpers import (
    LONG,
    SHORT,
    assert_versions_increase,
    changes,
    path_of,
    seconds,
    wait_change,
    wait_record,
)

pytestmark = pytest.mark.timeout(60)

GUEST_GRACE = 2.0
GUESTS = {
    "monitoring": {
        "heartbeat_interval": "2s",
        "max_missed_heartbeats": 3,
        "heartbeat_grace_period": "1s",
        "reconnection_grace_period": "30s",  # a guest must not get this one
        "connection_check_interval": "30s",
    },
    "socket": {"ping_interval": "1s", "ping_timeout": "1.5s"},
    "guests": {"connection_timeout": f"{GUEST_GRACE}s", "cleanup_interval": "1s"},
}


@pytest.fixture(scope="module")
def server(module_server):
    return module_server(GUESTS)


def listed(server, guest_id, query="guest=true"):
    return [c for c in server.get(f"/api/clients?{query}")["clients"] if c["name"] == guest_id]


def join_as_guest(server, connect, transport, name="Visitor", **extra):
    guest = connect(server.url, transport, auth={"guest": True, "name": name, **extra})
    registered = guest.wait_event("guest_registered")
    return guest, registered


def test_guest_is_registered_with_a_server_id_and_listed(server, connect, transport):
    guest, registered = join_as_guest(server, connect, transport)

    assert set(registered) == {"guestId", "name"}
    assert registered["name"] == "Visitor"
    guest_id = registered["guestId"]
    assert guest_id.startswith("guest-")
    record = wait_record(server, guest_id, "online", "connected", guest=True)
    assert record["display_name"] == "Visitor"
    [shown] = wait_for(lambda: listed(server, guest_id), SHORT)
    assert shown["guest"] is True and shown["status"] == "online"
    assert listed(server, guest_id, "guest=false") == []
    assert guest.heartbeat(guest_id)["status"] == "ok"
    other = join_as_guest(server, connect, transport)[1]["guestId"]
    assert other != guest_id


def test_dropped_guest_goes_offline_after_its_own_grace_then_is_deleted(
        server, connect, transport):
    watcher = connect(server.url, transport, watch=True)
    guest, registered = join_as_guest(server, connect, transport)
    guest_id = registered["guestId"]
    wait_change(watcher, guest_id, "online")

    guest.drop()

    reconnecting = wait_change(watcher, guest_id, "reconnecting", "disconnect", timeout=LONG)
    offline = wait_change(watcher, guest_id, "offline", "reconnect_timeout", timeout=LONG)
    waited = seconds(offline["since"]) - seconds(reconnecting["since"])
    assert GUEST_GRACE - 0.05 <= waited < GUEST_GRACE + 3, waited
    events = changes(watcher, guest_id)
    assert [e["status"] for e in events] == ["online", "reconnecting", "offline"]
    assert all(e["guest"] is True for e in events)
    assert_versions_increase(events)
    # then the cleanup sweep (guests.cleanup_interval) deletes the offline guest
    wait_for(lambda: server.client(guest_id) is None, LONG, 0.1, f"{guest_id} to be deleted")
    assert listed(server, guest_id) == []
    assert listed(server, guest_id, "status=offline") == []


def test_guest_resuming_its_id_within_grace_keeps_it(server, connect, transport):
    watcher = connect(server.url, transport, watch=True)
    guest, registered = join_as_guest(server, connect, transport)
    guest_id = registered["guestId"]
    guest.drop()
    wait_change(watcher, guest_id, "reconnecting", timeout=LONG)

    again, resumed = join_as_guest(server, connect, transport, guestId=guest_id)

    assert resumed == {"guestId": guest_id, "name": "Visitor"}
    wait_change(watcher, guest_id, "online", "reconnected")
    record = wait_record(server, guest_id, "online", "reconnected", connections=1)
    assert path_of(record["transitions"]) == [
        ("online", "connected"), ("reconnecting", "disconnect"), ("online", "reconnected")]
    assert again.heartbeat(guest_id)["status"] == "ok"


def test_unknown_guest_id_gets_a_new_one(server, connect, transport):
    _, registered = join_as_guest(server, connect, transport, guestId="guest-never-issued")

    assert registered["guestId"] != "guest-never-issued"
    assert registered["guestId"].startswith("guest-")
    assert server.client("guest-never-issued") is None


def test_guest_cannot_claim_a_registered_clients_name(server, connect, transport, unique):
    name = unique("member")
    member = connect(server.url, transport, auth={"clientName": name})
    before = wait_record(server, name, "online")

    _, registered = join_as_guest(server, connect, transport, guestId=name)

    assert registered["guestId"] != name
    assert server.client(name) == before
    assert member.heartbeat(name)["status"] == "ok"
