"""Malformed input to every event, and bad connect `auth`: an `error` event, and nothing changes."""

from __future__ import annotations

import pytest

from .helpers import barrier, refusal, wait_record

pytestmark = pytest.mark.timeout(60)

SELF = object()  # stands for the socket's own (valid) client name
LONG_NAME = "n" * 129

BAD_PAYLOADS = {
    "heartbeat": [
        None, "text", 42, 4.5, True, [1, 2],
        {"clientName": ""}, {"clientName": "   "}, {"clientName": 5}, {"clientName": ["a"]},
        {"clientName": LONG_NAME}, {"clientName": "bad\nname"}, {"clientName": "nul\x00byte"},
        {"clientName": "del\x7f"}, {"clientName": " padded"},
        {"clientName": SELF, "ip_address": 5}, {"clientName": SELF, "ip_address": "i" * 65},
        {"clientName": SELF, "timestamp": {"at": 1}}, {"clientName": SELF, "timestamp": True},
        {"clientName": SELF, "timestamp": "t" * 65}, {"clientName": SELF, "token": 5},
        {"clientName": "evil\ud800"}, {"clientName": "bidi\u202eevil"},
        {"clientName": SELF, "ip_address": "evil\ud800"},
        {"clientName": SELF, "ip_address": "1.2.3.4\n[STATUS] forged"},
    ],
    "client_status_request": [
        None, "text", 42, [], {}, {"clientName": ""}, {"clientName": 7},
        {"clientName": LONG_NAME}, {"clientName": "a\x00b"}, {"clientName": "tab\there"},
    ],
    "reconnection_success": [
        None, "text", 42, [1], {"clientName": ""}, {"clientName": 5},
        {"clientName": LONG_NAME}, {"clientName": "line\nbreak"},
    ],
    "connection_check_response": [
        None, "text", 3, [], {"client_name": ""}, {"client_name": 5},
        {"client_name": LONG_NAME}, {"client_name": "esc\x1bape"},
    ],
    "watch": ["text", 42, [1], True],
    "unwatch": ["text", 42, [1], True],
}

# Rare connection checks (an auto-acked check would touch the records compared below) and a
# long silence limit (no client goes offline in the middle of a test).
QUIET = {"monitoring": {"connection_check_interval": "30s", "heartbeat_interval": "10s"}}


@pytest.fixture(scope="module")
def server(module_server):
    return module_server(QUIET)


def materialise(payload, name):
    if isinstance(payload, dict):
        return {key: name if value is SELF else value for key, value in payload.items()}
    return payload


def assert_error_reply(event, reply, code="invalid_payload"):
    assert isinstance(reply, dict), reply
    if event == "heartbeat":
        assert reply["status"] == "error" and reply["shouldReconnect"] is True
    elif event == "client_status_request":
        assert reply["serverStatus"] == "error" and reply["code"] == code
    else:
        assert reply["status"] == "error" and reply["code"] == code
        assert reply["event"] == event
    assert isinstance(reply["message"], str) and reply["message"]


def assert_error_event(event, error, code="invalid_payload"):
    assert set(error) == {"code", "message", "event"}, error
    assert error["code"] == code and error["event"] == event, error
    assert isinstance(error["message"], str) and error["message"]


def registered(server, connect, transport, name):
    client = connect(server.url, transport, auth={"clientName": name})
    assert client.heartbeat(name)["status"] == "ok"
    return client, wait_record(server, name, "online")


def assert_nothing_changed(server, client, name, before, total_before):
    assert server.client(name) == before
    assert server.get("/api/clients")["total"] == total_before
    assert client.heartbeat(name)["status"] == "ok"  # the server still answers


# Validation does not depend on the transport: every event over websocket, a sample over polling.
ACK_CASES = [pytest.param("websocket", event, id=f"websocket-{event}") for event in BAD_PAYLOADS]
ACK_CASES += [pytest.param("polling", event, id=f"polling-{event}")
              for event in ("heartbeat", "reconnection_success", "watch")]


@pytest.mark.parametrize("transport_,event", ACK_CASES)
def test_malformed_payloads_with_ack_get_an_error_and_change_nothing(
        server, connect, transport_, unique, event):
    transport = transport_
    name = unique("v")
    client, before = registered(server, connect, transport, name)
    total = server.get("/api/clients")["total"]

    for count, payload in enumerate(BAD_PAYLOADS[event], start=1):
        reply = client.call(event, materialise(payload, name))

        assert_error_reply(event, reply)
        barrier(client)
        errors = client.of("error")
        assert len(errors) == count, (payload, errors)
        assert_error_event(event, errors[-1])
        assert server.client(name) == before, payload
    assert client.of("heartbeat_response") == [] and client.of("server_status_response") == []
    assert_nothing_changed(server, client, name, before, total)


REPLY_EVENT = {"heartbeat": "heartbeat_response",
               "client_status_request": "server_status_response"}


@pytest.mark.parametrize("event", list(BAD_PAYLOADS))
def test_malformed_payload_without_ack_gets_one_error_event(
        server, connect, transport, unique, event):
    name = unique("e")
    client, before = registered(server, connect, transport, name)
    total = server.get("/api/clients")["total"]

    client.emit(event, "not an object")
    error = client.wait_event("error")
    barrier(client)

    assert_error_event(event, error)
    assert client.of("error") == [error], "one rejected input, more than one error event"
    if event in REPLY_EVENT:
        replies = client.of(REPLY_EVENT[event])
        assert len(replies) == 1, replies
        assert_error_reply(event, replies[0])
    assert_nothing_changed(server, client, name, before, total)


@pytest.mark.parametrize("event,payload,code", [
    ("heartbeat", {}, "invalid_payload"),
    ("heartbeat", {"timestamp": 1}, "invalid_payload"),
    ("reconnection_success", {}, "invalid_payload"),
    ("reconnection_success", {"clientName": "someone"}, "not_registered"),
    ("connection_check_response", {}, "invalid_payload"),
    ("connection_check_response", {"client_name": "someone"}, "not_registered"),
])
def test_unnamed_socket_cannot_act_without_a_name(
        server, connect, transport, unique, event, payload, code):
    client = connect(server.url, transport)
    total = server.get("/api/clients")["total"]

    reply = client.call(event, payload)

    assert_error_reply(event, reply, code)
    assert_error_event(event, client.wait_event("error"), code)
    assert server.get("/api/clients")["total"] == total
    assert server.client("someone") is None


BAD_AUTH = [
    # (a bare number cannot be tested: the Socket.IO encoding reads `0` + `42` as an ack id)
    "just text", ["clientName"], True,
    {"clientName": ""}, {"clientName": 5}, {"clientName": LONG_NAME}, {"clientName": "a\nb"},
    {"clientName": " padded "}, {"clientName": "fine", "token": 5},
    {"guest": "yes"}, {"guest": 1}, {"guest": True, "name": ""}, {"guest": True, "name": 5},
    {"guest": True, "name": "g" * 65}, {"guest": True, "name": "Visitor", "guestId": ""},
    {"guest": True, "name": "evil\ud800"}, {"guest": True, "name": "Visitor\n[STATUS] x"},
    {"guest": True, "name": "Visitor", "guestId": "bad\x00id"},
]
# The refusal happens in the connect handler whatever the transport; over long-polling each
# refused connection costs a ping interval (the client waits for its last poll), so a sample.
AUTH_CASES = [pytest.param("websocket", auth, id=f"websocket-{auth!r:.30}") for auth in BAD_AUTH]
AUTH_CASES += [pytest.param("polling", auth, id=f"polling-{auth!r:.30}")
               for auth in (BAD_AUTH[0], BAD_AUTH[4], BAD_AUTH[11])]


@pytest.mark.parametrize("transport_,auth", AUTH_CASES)
def test_bad_connect_auth_is_refused_with_a_message(server, connect, transport_, auth):
    transport = transport_
    total = server.get("/api/clients")["total"]
    message = refusal(server, transport, auth)
    assert isinstance(message, str) and message.strip(), message
    assert "auth" in message or "token" in message, message  # says what was wrong
    assert server.get("/api/clients")["total"] == total
    good = connect(server.url, transport)
    assert good.heartbeat("after-bad-auth")["status"] == "ok"
