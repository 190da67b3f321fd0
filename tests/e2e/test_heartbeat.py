"""Heartbeats: one reply each (the ack if asked for, else `heartbeat_response`); identity rules."""

from __future__ import annotations

import pytest

from tests.support.server import wait_for

from .helpers import SHORT, barrier, seconds, wait_change, wait_record

pytestmark = pytest.mark.timeout(60)


# Rare connection checks (an auto-acked check would touch the records compared below) and a
# long silence limit (no client goes offline in the middle of a test).
QUIET = {"monitoring": {"connection_check_interval": "30s", "heartbeat_interval": "10s"}}


@pytest.fixture(scope="module")
def server(module_server):
    return module_server(QUIET)


def error_replies(client):
    return [r for r in client.of("heartbeat_response") if r["status"] == "error"]


def test_acked_heartbeat_is_answered_by_the_ack_only(server, connect, transport, unique):
    name = unique("ack")
    watcher = connect(server.url, transport, watch=True)
    client = connect(server.url, transport)

    reply = client.heartbeat(name, ack=True)

    assert reply["status"] == "ok"
    assert reply["nextHeartbeatIn"] == 10000  # monitoring.heartbeat_interval, in ms
    assert isinstance(reply["message"], str) and reply["message"]
    seconds(reply["timestamp"])
    online = wait_change(watcher, name, "online")
    assert online["previous"] is None
    record = wait_record(server, name, "online", connections=1)
    assert record["last_seen"] is not None
    for _ in range(3):
        assert client.heartbeat(name, ack=True)["status"] == "ok"
    barrier(client)
    assert client.of("heartbeat_response") == [], "an acked heartbeat also got an event reply"
    assert client.of("error") == []


def test_heartbeat_without_ack_is_answered_by_one_event(server, connect, transport, unique):
    name = unique("event")
    client = connect(server.url, transport)

    assert client.heartbeat(name, ack=False) is None
    first = client.wait_event("heartbeat_response")

    assert first["status"] == "ok" and first["nextHeartbeatIn"] == 10000
    wait_record(server, name, "online")
    client.heartbeat(name, ack=False)
    client.heartbeat(name, ack=False)
    barrier(client)
    assert len(client.of("heartbeat_response")) == 3, client.of("heartbeat_response")


def test_mixed_acked_and_unacked_heartbeats_get_exactly_one_reply_each(
        server, connect, transport, unique):
    name = unique("mixed")
    client = connect(server.url, transport, auth={"clientName": name})
    acks = []
    for _ in range(4):
        acks.append(client.heartbeat(name, ack=True))
        client.heartbeat(name, ack=False)
    barrier(client)

    assert [ack["status"] for ack in acks] == ["ok"] * 4
    assert len(client.of("heartbeat_response")) == 4


def test_status_request_is_answered_once_by_ack_or_event(server, connect, transport, unique):
    name = unique("status")
    client = connect(server.url, transport, auth={"clientName": name})
    wait_record(server, name, "online")

    reply = client.call("client_status_request", {"clientName": name})
    client.emit("client_status_request", {"clientName": name})
    event = client.wait_event("server_status_response")
    barrier(client)  # the barrier's own reply is an ack, not an event

    for answer in (reply, event):
        assert answer["serverStatus"] == "online"
        assert answer["clientStatus"] == "online"
        assert answer["serverUptime"] >= 0
        seconds(answer["timestamp"])
    assert len(client.of("server_status_response")) == 1
    unknown = client.call("client_status_request", {"clientName": unique("nobody")})
    assert unknown["clientStatus"] is None


@pytest.mark.parametrize("registered_by", ["heartbeat", "auth"])
@pytest.mark.parametrize("ack", [True, False], ids=["ack", "event"])
def test_heartbeat_naming_another_client_is_refused(
        server, connect, transport, unique, registered_by, ack):
    me, other, ghost = unique("me"), unique("other"), unique("ghost")
    other_client = connect(server.url, transport, auth={"clientName": other})
    other_client.heartbeat(other)
    auth = {"clientName": me} if registered_by == "auth" else None
    client = connect(server.url, transport, auth=auth)
    client.heartbeat(me)
    mine_before = wait_record(server, me, "online")
    other_before = wait_record(server, other, "online")

    for count, target in enumerate((other, ghost), start=1):
        if ack:
            reply = client.heartbeat(target)
        else:
            client.heartbeat(target, ack=False)
            reply = wait_for(lambda n=count: error_replies(client)[n - 1:n], SHORT)[0]
        assert reply["status"] == "error", reply
        assert reply["shouldReconnect"] is True and reply["message"]
    barrier(client)

    errors = client.of("error")
    assert [e["code"] for e in errors] == ["identity_mismatch"] * 2, errors
    assert {e["event"] for e in errors} == {"heartbeat"}
    assert len(client.of("heartbeat_response")) == (0 if ack else 2)
    assert server.client(ghost) is None
    assert server.client(other) == other_before
    assert server.client(me)["version"] == mine_before["version"]
    assert client.heartbeat(me)["status"] == "ok"


def test_identity_mismatch_sends_error_event_with_the_event_reply(
        server, connect, transport, unique):
    me, other = unique("me"), unique("other")
    client = connect(server.url, transport, auth={"clientName": me})
    wait_record(server, me, "online")

    client.heartbeat(other, ack=False)
    reply = client.wait_event("heartbeat_response")
    error = client.wait_event("error")
    barrier(client)

    assert reply["status"] == "error" and reply["shouldReconnect"] is True
    assert error["code"] == "identity_mismatch" and error["event"] == "heartbeat"
    assert other in error["message"]
    assert len(client.of("heartbeat_response")) == 1
    assert len(client.of("error")) == 1
    assert server.client(other) is None


@pytest.mark.parametrize("event,key", [("reconnection_success", "clientName"),
                                       ("connection_check_response", "client_name")])
def test_other_events_naming_another_client_are_refused(
        server, connect, transport, unique, event, key):
    me, other = unique("me"), unique("other")
    other_client = connect(server.url, transport, auth={"clientName": other})
    other_client.heartbeat(other)
    client = connect(server.url, transport, auth={"clientName": me})
    other_before = wait_record(server, other, "online")

    reply = client.call(event, {key: other})

    assert reply["status"] == "error" and reply["code"] == "identity_mismatch"
    error = client.wait_event("error")
    assert error == {"code": "identity_mismatch", "message": error["message"], "event": event}
    assert server.client(other) == other_before


def test_status_events_go_to_watchers_only_until_they_unwatch(server, connect, transport, unique):
    name, later = unique("seen"), unique("later")
    watcher = connect(server.url, transport)
    snapshot = watcher.call("watch", {})
    bystander = connect(server.url, transport, auth={"clientName": unique("bystander")})
    assert isinstance(snapshot["clients"], list)

    subject = connect(server.url, transport, auth={"clientName": name})
    subject.heartbeat(name)
    change = wait_change(watcher, name, "online")
    assert set(change) >= {"id", "name", "status", "previous", "reason", "since",
                           "lastHeartbeat", "version", "node"}
    assert (change["id"], change["node"], change["version"]) == (name, "test-node", 1)
    assert name in {c["name"] for c in connect(server.url, transport).call("watch")["clients"]}

    assert watcher.call("unwatch", {})["status"] == "ok"
    connect(server.url, transport, auth={"clientName": later}).heartbeat(later)
    wait_record(server, later, "online")
    barrier(watcher)
    barrier(bystander)
    seen = [c["name"] for c in watcher.of("client_status_changed")]
    assert name in seen and later not in seen, seen  # (earlier tests' clients may show too)
    assert bystander.of("client_status_changed") == []
    assert subject.of("client_status_changed") == []
