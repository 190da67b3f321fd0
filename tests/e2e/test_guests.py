"""Guests: server-assigned ids, their own grace, cleanup of offline guests, resuming an id
(only with its resume token: holding another guest's id is not enough to become that guest)."""

from __future__ import annotations

import signal

import pytest

from tests.support.server import wait_for

from .helpers import (
    LONG,
    SHORT,
    assert_versions_increase,
    changes,
    path_of,
    refusal,
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

    assert set(registered) == {"guestId", "name", "resumeToken"}
    assert isinstance(registered["resumeToken"], str) and registered["resumeToken"]
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

    again, resumed = join_as_guest(server, connect, transport, guestId=guest_id,
                                   resumeToken=registered["resumeToken"])

    assert resumed == registered
    assert again.of("error") == []
    wait_change(watcher, guest_id, "online", "reconnected")
    record = wait_record(server, guest_id, "online", "reconnected", connections=1)
    assert path_of(record["transitions"]) == [
        ("online", "connected"), ("reconnecting", "disconnect"), ("online", "reconnected")]
    assert again.heartbeat(guest_id)["status"] == "ok"


def test_unknown_guest_id_gets_a_new_one(server, connect, transport):
    guest, registered = join_as_guest(server, connect, transport, guestId="guest-never-issued")

    assert registered["guestId"] != "guest-never-issued"
    assert registered["guestId"].startswith("guest-")
    assert server.client("guest-never-issued") is None
    error = guest.wait_event("error")
    assert error["code"] == "resume_token_required" and error["event"] == "connect"


def test_guest_cannot_claim_a_registered_clients_name(server, connect, transport, unique):
    name = unique("member")
    member = connect(server.url, transport, auth={"clientName": name})
    before = wait_record(server, name, "online")

    _, registered = join_as_guest(server, connect, transport, guestId=name)

    assert registered["guestId"] != name
    assert server.client(name) == before
    assert member.heartbeat(name)["status"] == "ok"


def test_another_guests_id_without_its_token_gets_a_new_id(server, connect, transport):
    """Bug 8: presenting a guest's id (seen in a page, a log, a watcher event) took it over."""
    victim, registered = join_as_guest(server, connect, transport, name="Victim")
    victim_id = registered["guestId"]
    before = wait_record(server, victim_id, "online", "connected", connections=1)
    _, own = join_as_guest(server, connect, transport, name="Attacker")

    attempts = [({}, "resume_token_required"),
                ({"resumeToken": "forged"}, "invalid_resume_token"),
                ({"resumeToken": own["resumeToken"]}, "invalid_resume_token")]  # another id's
    for extra, code in attempts:
        attacker, taken = join_as_guest(server, connect, transport, name="Attacker",
                                        guestId=victim_id, **extra)
        assert taken["guestId"] != victim_id and taken["guestId"].startswith("guest-")
        assert taken["resumeToken"] != registered["resumeToken"]
        error = attacker.wait_event("error")
        assert error["code"] == code and error["event"] == "connect", error
        assert attacker.heartbeat(taken["guestId"])["status"] == "ok"
        assert attacker.heartbeat(victim_id)["code"] == "identity_mismatch"

    after = server.client(victim_id)
    assert {k: after[k] for k in ("status", "reason", "version", "connections", "display_name")} \
        == {k: before[k] for k in ("status", "reason", "version", "connections", "display_name")}
    assert victim.heartbeat(victim_id)["status"] == "ok"
    assert victim.of("error") == []
    log = server.log_text()
    assert f"resuming {victim_id} was refused" in log and "resume_token_required" in log


def test_a_malformed_resume_token_is_refused_with_a_message(server, transport):
    message = refusal(server, transport, {"guest": True, "name": "Visitor",
                                          "guestId": "guest-x", "resumeToken": 5})
    assert "auth.resumeToken" in message, message


@pytest.mark.parametrize("transport_,secret", [("websocket", None), ("polling", "e2e-secret")],
                         ids=["websocket-stored-key", "polling-secret"])
def test_guest_keeps_its_id_across_a_restart_that_purged_guests(
        make_server, connect, transport_, secret):
    """The id survives a SIGTERM restart although purge_on_startup deleted its record: the resume
    token alone proves it (signed with security.secret, else with a key kept in the store)."""
    overrides = {**GUESTS, "guests": {**GUESTS["guests"], "purge_on_startup": True},
                 "security": {"secret": secret}}
    server = make_server(overrides)
    guest, registered = join_as_guest(server, connect, transport_)
    guest_id = registered["guestId"]
    wait_record(server, guest_id, "online", "connected", guest=True)
    guest.close()

    assert server.stop(signal.SIGTERM) == 0
    server.start()
    assert server.client(guest_id) is None  # purged at start-up

    again, resumed = join_as_guest(server, connect, transport_, guestId=guest_id,
                                   resumeToken=registered["resumeToken"])
    assert resumed == registered
    assert again.of("error") == []
    wait_record(server, guest_id, "online", "connected", guest=True, connections=1)
    assert again.heartbeat(guest_id)["status"] == "ok"
    _, stranger = join_as_guest(server, connect, transport_, guestId=guest_id)
    assert stranger["guestId"] != guest_id


def test_no_client_may_register_a_guest_id_as_its_name(server, connect, transport, unique):
    """Guest ids are the server's: a plain client naming itself `guest-…` (at connect or by its
    first heartbeat) is refused, so it can neither join a live guest's actor nor squat an id a
    guest will resume after a restart."""
    guest, registered = join_as_guest(server, connect, transport)
    guest_id = registered["guestId"]
    before = wait_record(server, guest_id, "online", guest=True)

    message = refusal(server, transport, {"clientName": guest_id})
    assert "guest" in message, message
    squat = f"guest-{unique('squat')}"
    squatter = connect(server.url, transport)
    reply = squatter.heartbeat(squat)
    assert reply["status"] == "error" and reply["code"] == "reserved_name", reply

    after = server.client(guest_id)
    assert (after["guest"], after["connections"], after["version"]) == (
        True, before["connections"], before["version"])
    assert server.client(squat) is None
