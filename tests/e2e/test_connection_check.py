"""`connection_check`: sent every connection_check_interval; answers mark a client responsive."""

from __future__ import annotations

import pytest

from tests.support.server import wait_for

from .helpers import SHORT, seconds, wait_record

pytestmark = pytest.mark.timeout(60)

CHECKS = {"monitoring": {"connection_check_interval": "1s", "heartbeat_interval": "10s"}}


def test_connected_client_gets_connection_checks_and_answers_count(
        make_server, connect, transport, unique):
    server = make_server(CHECKS)
    name = unique("checked")
    client = connect(server.url, transport, auth={"clientName": name}, answer_checks=True)
    connected = wait_record(server, name, "online", connections=1)
    unnamed = connect(server.url, transport)  # not registered: nobody to check

    check = client.wait_event("connection_check", timeout=SHORT)

    assert set(check) == {"client_name", "timestamp", "expect_response_within"}
    assert check["client_name"] == name
    seconds(check["timestamp"])
    assert isinstance(check["expect_response_within"], int)
    assert check["expect_response_within"] > 0
    # Its answer (no heartbeat at all) moves the client's last contact on ...
    answered = wait_for(
        lambda: (record := server.client(name))["last_contact"] != connected["last_contact"]
        and record, SHORT, 0.1, "an answered check to update last_contact")
    assert seconds(answered["last_contact"]) > seconds(connected["last_contact"])
    assert answered["last_seen"] is None  # ... but is not a heartbeat
    # ... and it counts as responsive
    stats = server.get("/api/stats")
    assert (stats["online"], stats["responsive"], stats["connections"]) == (1, 1, 1)
    second = client.wait_event("connection_check", lambda c: c["timestamp"] != check["timestamp"],
                               timeout=SHORT)
    assert second["client_name"] == name
    assert unnamed.of("connection_check") == []
