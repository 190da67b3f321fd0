"""Bug 6: `client_status_request` right after an acked heartbeat reads that heartbeat's write.

The heartbeat is told to the client actor (or routed through the supervisor when the actor does
not exist yet); the status request is answered only after what the socket sent before it.
"""

from __future__ import annotations

import pytest

from tests.support.server import wait_for

pytestmark = pytest.mark.timeout(120)

FRESH_NAMES = 20


@pytest.fixture(scope="module")
def server(module_server):
    return module_server()


@pytest.mark.parametrize("pipelined", [False, True], ids=["after-ack", "pipelined"])
def test_status_request_after_an_acked_heartbeat_is_online_for_fresh_names(
        server, connect, transport, unique, pipelined):
    answers = {}
    for index in range(FRESH_NAMES):
        name = unique(f"fresh{index}")
        client = connect(server.url, transport)  # unnamed: the heartbeat registers it
        acks = []
        if pipelined:  # the ack is asked for; the status request goes before it arrives
            client.sio.emit("heartbeat", {"clientName": name}, callback=acks.append)
        else:
            acks.append(client.heartbeat(name))
        reply = client.call("client_status_request", {"clientName": name})
        wait_for(lambda acks=acks: acks, 10, 0.01, "the heartbeat ack")
        assert acks[0]["status"] == "ok", acks
        answers[name] = reply["clientStatus"]
    stale = {name: status for name, status in answers.items() if status != "online"}
    assert stale == {}, f"{len(stale)} of {FRESH_NAMES} stale answers: {stale}"


def test_status_request_after_a_connect_registration_is_online(
        server, connect, transport, unique):
    for index in range(FRESH_NAMES):
        name = unique(f"auth{index}")
        client = connect(server.url, transport, auth={"clientName": name})
        reply = client.call("client_status_request", {"clientName": name})
        assert reply["clientStatus"] == "online", (index, reply)


def test_status_of_a_never_seen_name_is_null(server, connect, unique):
    client = connect(server.url)
    reply = client.call("client_status_request", {"clientName": unique("nobody")})
    assert reply["serverStatus"] == "online" and reply["clientStatus"] is None
