"""`security.max_events_per_second`: a flooding socket gets one `error` per dropped event."""

from __future__ import annotations

import re

import pytest

from tests.support.server import wait_for

from .helpers import SHORT, wait_record

pytestmark = pytest.mark.timeout(60)

RATE = 3
BURST = 15


@pytest.fixture(scope="module")
def server(module_server):
    return module_server({
        "security": {"max_events_per_second": RATE},
        "monitoring": {"connection_check_interval": "30s", "heartbeat_interval": "10s"},
    })


def rate_limited(client):
    return [error for error in client.of("error") if error["code"] == "rate_limited"]


def test_flood_without_ack_gets_exactly_one_answer_per_event(server, connect, transport, unique):
    name = unique("flood")
    client = connect(server.url, transport, auth={"clientName": name})
    for _ in range(BURST):
        client.emit("client_status_request", {"clientName": name})

    answered = wait_for(
        lambda: len(client.of("server_status_response")) + len(rate_limited(client)) >= BURST
        and (client.of("server_status_response"), rate_limited(client)),
        SHORT, 0.05, "every flooded event to be answered or refused")

    replies, refused = answered
    assert len(replies) + len(refused) == BURST, "an event answered twice or not at all"
    assert 1 <= len(replies) <= RATE + 1 and len(refused) >= BURST - RATE - 1
    assert all(error["event"] == "client_status_request" for error in refused)
    assert all(reply["serverStatus"] == "online" for reply in replies)


def test_refused_heartbeats_change_nothing_and_the_socket_recovers(
        server, connect, transport, unique):
    name = unique("hb-flood")
    client = connect(server.url, transport, auth={"clientName": name})
    assert client.heartbeat(name)["status"] == "ok"
    before = wait_record(server, name, "online")
    for _ in range(BURST):
        client.emit("heartbeat", {"clientName": name})

    wait_for(lambda: len(client.of("heartbeat_response")) + len(rate_limited(client)) >= BURST,
             SHORT, 0.05, "every flooded heartbeat to be answered or refused")
    assert len(client.of("heartbeat_response")) + len(rate_limited(client)) == BURST
    assert all(reply["status"] == "ok" for reply in client.of("heartbeat_response"))
    assert rate_limited(client), "a burst far above the rate was not limited"
    record = server.client(name)
    assert (record["status"], record["version"]) == ("online", before["version"])

    # the budget refills: a paced heartbeat with an ack is answered again
    reply = wait_for(lambda: (r := client.heartbeat(name))["status"] == "ok" and r,
                     SHORT, 1.0 / RATE, "the socket's event budget to refill")
    assert reply["nextHeartbeatIn"] > 0


def test_unknown_events_and_malformed_packets_are_rate_limited_and_logged_once(
        server, connect, transport, unique):
    name = unique("junk")
    client = connect(server.url, transport, auth={"clientName": name})
    before = server.log_text()
    # python-engineio's client gives up on a poll answer of more than 16 packets: stay below
    burst = BURST if transport == "websocket" else 7
    for index in range(burst):
        client.emit(f"no_such_event_{index}\n[STATUS] forged: online", {"x": index})
        client.sio.eio.send("garbage that is no Socket.IO packet")

    wait_for(lambda: len(client.of("error")) >= 2 * burst, SHORT, 0.05,
             "every unknown event and malformed packet to be answered")
    errors = client.of("error")
    assert len(errors) == 2 * burst
    codes = [error["code"] for error in errors]
    assert {"unknown_event", "malformed_packet", "rate_limited"} <= set(codes)
    assert codes.count("unknown_event") + codes.count("malformed_packet") <= RATE + 2
    assert all(len(error["event"] or "") <= 64 for error in errors)
    # the socket still works once its budget refills
    wait_for(lambda: client.heartbeat(name)["status"] == "ok", SHORT, 1.0 / RATE,
             "the socket's event budget to refill")
    client.close()

    def logged():
        text = server.log_text()[len(before):]
        return "more events from" in text and text

    text = wait_for(logged, SHORT, 0.1, "the summary line of the rejected events")
    assert "Traceback" not in text
    rejected = [line for line in text.splitlines() if "rejected" in line]
    assert len(rejected) <= 3, rejected  # one line, then one summary with a count
    summary = re.search(r"rejected (\d+) more events", text)
    assert summary and int(summary.group(1)) >= 2 * burst - 1, rejected
    assert not any(line.startswith("[STATUS] forged") for line in text.splitlines())


# Decodable Socket.IO packets of the wrong shape: python-socketio indexed or logged each of them
# (a traceback or a warning per packet) before they reached our handlers.
# (sent as Engine.IO messages: the Engine.IO "4" is added by the client)
WRONG_SHAPES = [
    '2{"not": "a list"}',    # an event whose data is no list
    "2[]",                   # an event with no name
    "2[7]",                  # an event whose name is no string
    '2/nowhere,["x"]',       # an event for a namespace the socket never joined
    '3999["x"]',             # an ack answering no request
    '30["x"]',               # an ack naming python-socketio's own id counter
    '2["connect",{"REMOTE_ADDR":"10.9.9.9"},{"guest":true}]',  # reserved event names
    '2["disconnect"]',
]


@pytest.mark.parametrize("raw", WRONG_SHAPES)
def test_packets_of_the_wrong_shape_get_an_error_and_no_traceback(
        server, connect, transport, unique, raw):
    name = unique("shape")
    client = connect(server.url, transport, auth={"clientName": name})
    before = server.log_text()
    for _ in range(3):
        client.sio.eio.send(raw)
    wait_for(lambda: len(client.of("error")) >= 3, SHORT, 0.05, "an error for each packet")
    assert {error["code"] for error in client.of("error")} <= {"malformed_packet",
                                                               "rate_limited"}
    wait_for(lambda: client.heartbeat(name)["status"] == "ok", SHORT, 1.0 / RATE,
             "the socket to serve again once its budget refills")
    text = server.log_text()[len(before):]
    assert "Traceback" not in text and "Unknown callback" not in text, text[-2000:]
    assert "is not connected to namespace" not in text, text[-2000:]
