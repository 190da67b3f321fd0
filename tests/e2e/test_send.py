"""Targeted delivery (CONTRACT §9): `send {to, event, data}` between real clients of a real
server, and `POST /api/clients/<name>/messages`, over websocket and long-polling."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.support.clients import RecordingClient
from tests.support.server import ServerProcess, wait_for

from .helpers import SHORT, barrier, seconds, wait_record

pytestmark = pytest.mark.timeout(90)

ADMIN = "admin-secret-for-send"


@pytest.fixture(scope="module")
def server(module_server) -> ServerProcess:
    return module_server({"security": {"admin_token": ADMIN, "max_send_bytes": 4096},
                          "monitoring": {"reconnection_grace_period": "3s",
                                         "heartbeat_interval": "10s"}})


def listen(client: RecordingClient, *events: str) -> RecordingClient:
    """Record `events` too (app events are not in RecordingClient's list)."""
    for event in events:
        client.sio.on(event, client._recorder(event))
    return client


def named(connect, server: ServerProcess, name: str, transport: str = "websocket",
          *events: str) -> RecordingClient:
    client = listen(connect(server.url, transport, auth={"clientName": name}), *events)
    assert client.heartbeat(name)["status"] == "ok"
    return client


def errors(client: RecordingClient, code: str) -> list[dict[str, Any]]:
    return [error for error in client.of("error") if error["code"] == code]


def post(server: ServerProcess, name: str, body: Any, token: str | None = ADMIN,
         raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.url}/api/clients/{name}/messages", data=data,
                                     method="POST",
                                     headers={"Content-Type": "application/json"})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# --- delivery --------------------------------------------------------------------------------

def test_an_invite_reaches_every_socket_of_the_callee_with_the_senders_identity(
        server, connect, transport, unique):
    caller, callee = unique("caller"), unique("callee")
    tab1 = named(connect, server, callee, transport, "call_invite")
    tab2 = named(connect, server, callee, "websocket", "call_invite")
    wait_record(server, callee, "online", connections=2)
    alice = named(connect, server, caller, transport)

    before = time.time()
    ack = alice.call("send", {"to": callee, "event": "call_invite",
                              "data": {"kind": "video", "room": 7}, "from": "mallory"})

    assert ack == {"delivered": 2}
    for tab in (tab1, tab2):
        invite = tab.wait_event("call_invite")
        assert invite["from"] == caller  # the bound identity, never the payload's `from`
        assert invite["data"] == {"kind": "video", "room": 7}
        assert invite["sentAt"].endswith("Z") and abs(seconds(invite["sentAt"]) - before) < 30
        barrier(tab)
        assert len(tab.of("call_invite")) == 1
    assert not alice.of("error")


def test_a_guest_callee_is_reached_by_its_guest_id_and_a_guest_sends_as_itself(
        server, connect, unique):
    guest = listen(connect(server.url, auth={"guest": True, "name": "Visitor"}), "call_invite")
    guest_id = guest.wait_event("guest_registered")["guestId"]
    wait_record(server, guest_id, "online")
    host_name = unique("host")
    host = named(connect, server, host_name, "websocket", "call_accept")

    assert host.call("send", {"to": guest_id, "event": "call_invite",
                              "data": {"kind": "audio"}}) == {"delivered": 1}
    assert guest.wait_event("call_invite") ["from"] == host_name

    assert guest.call("send", {"to": host_name, "event": "call_accept",
                               "data": None}) == {"delivered": 1}
    accepted = host.wait_event("call_accept")
    assert accepted["from"] == guest_id and accepted["data"] is None


def test_not_online_for_an_absent_a_reconnecting_and_an_offline_callee(
        server, connect, unique):
    caller, callee = unique("caller"), unique("callee")
    alice = named(connect, server, caller)

    def attempt() -> Any:
        return alice.call("send", {"to": callee, "event": "call_invite", "data": {}})

    absent = attempt()  # no such client at all
    assert absent["status"] == "error" and absent["code"] == "not_online", absent
    assert "nothing was queued" in absent["message"]

    bob = named(connect, server, callee, "websocket", "call_invite")
    wait_record(server, callee, "online")
    bob.drop()  # the transport dies: reconnecting, within its 3 s grace
    wait_record(server, callee, "reconnecting")
    assert attempt()["code"] == "not_online"

    # back within the grace: nothing queued while it was away reaches it
    back = named(connect, server, callee, "websocket", "call_invite")
    wait_record(server, callee, "online", reason="reconnected")
    barrier(back)
    assert back.of("call_invite") == []
    back.close()
    wait_record(server, callee, "offline", reason="reconnect_timeout", timeout=SHORT)
    assert attempt()["code"] == "not_online"
    assert len(errors(alice, "not_online")) == 3
    assert all(error["event"] == "send" for error in errors(alice, "not_online"))


def test_an_unregistered_socket_may_not_send(server, connect, unique):
    callee = unique("callee")
    bob = named(connect, server, callee, "websocket", "call_invite")
    anonymous = connect(server.url)
    reply = anonymous.call("send", {"to": callee, "event": "call_invite"})
    assert reply["code"] == "not_registered", reply
    assert errors(anonymous, "not_registered")
    barrier(bob)
    assert bob.of("call_invite") == []


@pytest.mark.parametrize("payload,code", [
    ({"event": "call_invite"}, "invalid_payload"),  # no `to`
    ({"to": "", "event": "call_invite"}, "invalid_payload"),
    ({"to": "TARGET"}, "invalid_event"),  # no event
    ({"to": "TARGET", "event": "call invite"}, "invalid_event"),
    ({"to": "TARGET", "event": "1call"}, "invalid_event"),
    ({"to": "TARGET", "event": "x" * 65}, "invalid_event"),
    ({"to": "TARGET", "event": 5}, "invalid_event"),
    ({"to": "TARGET", "event": "client_status_changed"}, "reserved_event"),
    ({"to": "TARGET", "event": "Heartbeat_Response"}, "reserved_event"),
    ({"to": "TARGET", "event": "error"}, "reserved_event"),
    ({"to": "TARGET", "event": "connect"}, "reserved_event"),
    ({"to": "TARGET", "event": "server_shutdown"}, "reserved_event"),
    ({"to": "TARGET", "event": "call_invite", "data": "x" * 5000}, "payload_too_large"),
    ("not an object", "invalid_payload"),
])
def test_bad_sends_get_a_clear_error_and_deliver_nothing(server, connect, unique, payload,
                                                          code):
    callee = unique("callee")
    bob = named(connect, server, callee)
    listen(bob, "call_invite", "call invite", "1call", "client_status_changed",
           "Heartbeat_Response", "connect", "server_shutdown")
    alice = named(connect, server, unique("caller"))
    if isinstance(payload, dict) and payload.get("to") == "TARGET":
        payload = {**payload, "to": callee}

    reply = alice.call("send", payload)

    assert reply["status"] == "error" and reply["code"] == code, reply
    assert reply["event"] == "send" and reply["message"]
    assert [error["code"] for error in alice.of("error")] == [code]
    barrier(bob)
    delivered = [name for name, _, _ in bob.events if name not in (
        "heartbeat_response", "connection_check")]
    assert delivered == [], delivered


def test_data_at_the_size_limit_is_delivered(server, connect, unique):
    callee = unique("callee")
    bob = named(connect, server, callee, "websocket", "blob")
    alice = named(connect, server, unique("caller"))
    data = "y" * (4096 - 2)  # its JSON, quotes included, is exactly max_send_bytes
    assert alice.call("send", {"to": callee, "event": "blob", "data": data}) == {"delivered": 1}
    assert bob.wait_event("blob")["data"] == data


def test_a_flood_and_oversized_sends_are_refused_while_others_heartbeats_are_answered(
        make_server, connect, unique):
    server = make_server({"security": {"max_events_per_second": 10, "max_send_bytes": 1024},
                          "monitoring": {"heartbeat_interval": "10s"}})
    callee = unique("callee")
    bob = named(connect, server, callee, "websocket", "ring")
    flooder = named(connect, server, unique("flooder"))
    other_name = unique("other")
    other = named(connect, server, other_name)

    answered: list[dict[str, Any]] = []
    stop = threading.Event()

    def heartbeats() -> None:  # 5 a second: within its own budget
        while not stop.is_set():
            answered.append(other.heartbeat(other_name, timeout=10))
            time.sleep(0.2)

    beating = threading.Thread(target=heartbeats, daemon=True)
    beating.start()
    try:
        # each refusal pauses the flooder's reader 10 ms (web/sockets.py): a burst of more
        # than ping_timeout (3 s here) of refusals would also hold up its pongs and drop it
        burst = 150
        started = time.monotonic()
        for index in range(burst):
            flooder.emit("send", {"to": callee, "event": "ring", "data": {"n": index}})
        for _ in range(10):
            flooder.emit("send", {"to": callee, "event": "ring", "data": "z" * 5000})
        # handled in order: once this is answered (or refused), every send before it was
        flooder.call("client_status_request", {"clientName": "barrier"}, timeout=30)
        elapsed = time.monotonic() - started
        wait_for(lambda: len(answered) >= 10, SHORT, 0.05, "the other client's heartbeats")
    finally:
        stop.set()
        beating.join(15)
    refused = [error for error in errors(flooder, "rate_limited") if error["event"] == "send"]
    assert refused, "no send was refused"
    assert all(reply["status"] == "ok" for reply in answered), answered
    assert errors(other, "rate_limited") == []
    barrier(bob)
    rings = bob.of("ring")
    # the budget (10 at once, then 10 a second), not the flood
    assert 1 <= len(rings) <= 10 + 10 * elapsed + 2, (len(rings), elapsed)
    assert all(isinstance(ring["data"], dict) for ring in rings)  # no oversized one
    too_large = errors(flooder, "payload_too_large")
    assert len(rings) + len(refused) + len(too_large) == burst + 10  # each send answered once

    # once the budget refilled, an oversized send gets its own clear error
    wait_for(lambda: flooder.call("client_status_request", {"clientName": "x"}).get(
        "serverStatus") == "online", SHORT, 0.2, "the flooder's budget to refill")
    reply = flooder.call("send", {"to": callee, "event": "ring", "data": "z" * 5000})
    assert reply["code"] == "payload_too_large", reply
    assert "1024" in reply["message"]


# --- HTTP ------------------------------------------------------------------------------------

def test_http_delivery_answers_delivered_from_server(server, connect, unique):
    callee = unique("callee")
    bob = named(connect, server, callee, "websocket", "notice")
    status, body = post(server, callee, {"event": "notice", "data": {"text": "hi"},
                                         "from": "someone"})
    assert (status, body) == (200, {"delivered": 1})
    notice = bob.wait_event("notice")
    assert notice["from"] == "server" and notice["data"] == {"text": "hi"}


def test_http_delivery_errors(server, connect, unique):
    callee = unique("callee")
    named(connect, server, callee, "websocket", "notice")
    assert post(server, callee, {"event": "notice"}, token=None)[0] == 401
    assert post(server, callee, {"event": "notice"}, token="wrong")[0] == 401
    status, body = post(server, unique("absent"), {"event": "notice"})
    assert status == 409 and body["error"] == "not_online" and body["message"]
    for payload, code in [({"event": "error"}, "reserved_event"),
                          ({"event": "bad name"}, "invalid_event"),
                          ({}, "invalid_event"),
                          ([1, 2], "invalid_payload"),
                          ({"event": "notice", "data": "x" * 5000}, "payload_too_large")]:
        status, body = post(server, callee, payload)
        assert (status, body["error"]) == (400, code), (payload, body)
    status, body = post(server, callee, None, raw=b"{not json")
    assert (status, body["error"]) == (400, "invalid_payload")
    status, body = post(server, callee, None, raw=b"x" * 100_000)
    assert (status, body["error"]) == (400, "payload_too_large")


def test_http_delivery_is_forbidden_without_an_admin_token(make_server, connect, unique):
    server = make_server()
    status, body = post(server, unique("x"), {"event": "notice"})
    assert status == 403 and body["error"] == "admin_disabled"


# --- watch {names}: a caller watches its callee only ----------------------------------------

def test_a_watch_of_names_gets_only_those_clients_changes_until_unwatch(
        server, connect, transport, unique):
    callee, bystander = unique("callee"), unique("bystander")
    caller = connect(server.url, transport, auth={"clientName": unique("caller")})
    snapshot = caller.call("watch", {"names": [callee]})
    assert snapshot["clients"] == []

    other = named(connect, server, bystander)
    bob = named(connect, server, callee)
    wait_record(server, bystander, "online")
    dropped = caller.wait_event("client_status_changed", lambda e: e["name"] == callee)
    assert dropped["status"] == "online"
    bob.drop()  # the callee drops: the caller learns it within the grace
    caller.wait_event("client_status_changed",
                      lambda e: e["name"] == callee and e["status"] == "reconnecting")
    back = named(connect, server, callee)
    caller.wait_event("client_reconnected", lambda e: e["clientName"] == callee)
    other.close()
    wait_record(server, bystander, "reconnecting")
    barrier(caller)
    assert {e["name"] for e in caller.of("client_status_changed")} == {callee}
    assert {e["clientName"] for e in caller.of("client_reconnected")} == {callee}

    # a watch of everyone replaces it; unwatch ends both
    caller.call("watch", {})
    other = named(connect, server, bystander)
    caller.wait_event("client_status_changed", lambda e: e["name"] == bystander)
    caller.call("unwatch", {})
    seen = len(caller.of("client_status_changed"))
    back.close()
    other.close()
    wait_record(server, callee, "reconnecting")
    wait_record(server, bystander, "reconnecting")
    barrier(caller)
    assert len(caller.of("client_status_changed")) == seen
