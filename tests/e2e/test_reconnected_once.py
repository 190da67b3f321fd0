"""Bug 5: watchers get `client_reconnected` exactly once per return within grace, whatever the
client sends (the seed and README clients also send `reconnection_success`)."""

from __future__ import annotations

import pytest

from .helpers import LONG, barrier, wait_change

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server(module_server):
    return module_server({"monitoring": {"reconnection_grace_period": "30s",
                                         "heartbeat_grace_period": "20s"}})


def reconnected(watcher, name):
    return [event for event in watcher.of("client_reconnected") if event["clientName"] == name]


def settle(client, watcher, name):
    """The client's earlier messages are handled (read your writes), and every watcher event
    they caused has reached the watcher (one round trip on its socket)."""
    client.call("client_status_request", {"clientName": name})
    barrier(watcher)


@pytest.mark.parametrize("registration", ["auth", "heartbeat"])
def test_one_client_reconnected_per_return_with_reconnection_success(
        server, connect, transport, unique, registration):
    watcher = connect(server.url, transport, watch=True)
    name = unique("returner")

    def come_back(report: bool = True):
        # (no answers to connection_check: a dropped polling client would still try to)
        if registration == "auth":
            client = connect(server.url, transport, auth={"clientName": name},
                             answer_checks=False)
        else:  # like the seed clients: the first heartbeat names the socket
            client = connect(server.url, transport, answer_checks=False)
        client.heartbeat(name)
        if report:
            client.emit("reconnection_success", {"clientName": name})
            client.emit("reconnection_success", {"clientName": name})  # a repeat: no event
        settle(client, watcher, name)
        return client

    first = come_back(report=False)  # the first connection
    for round_number in (1, 2):
        first.drop()
        wait_change(watcher, name, "reconnecting", "disconnect", timeout=LONG)
        first = come_back()
        wait_change(watcher, name, "online", "reconnected")
        assert len(reconnected(watcher, name)) == round_number, watcher.of("client_reconnected")
    statuses = [e["status"] for e in watcher.of("client_status_changed") if e["name"] == name]
    assert "offline" not in statuses
