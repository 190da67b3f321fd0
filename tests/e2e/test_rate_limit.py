"""`security.max_events_per_second`: a flooding socket gets one `error` per dropped event."""

from __future__ import annotations

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
