"""Deleting records (issue 10, item 13): every deletion is logged in one line and reaches
watchers as `client_removed`; `cleanup?before=` never deletes a connected guest; admin
`DELETE /api/clients/<name>`; `store.offline_retention`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.server import wait_for

from .helpers import LONG, SHORT, wait_record

pytestmark = pytest.mark.timeout(90)

ADMIN = "e2e-deletions-token"
LONG_GRACE = {"security": {"admin_token": ADMIN},
              "guests": {"connection_timeout": "60s", "cleanup_interval": "1s"},
              "monitoring": {"reconnection_grace_period": "60s", "heartbeat_grace_period": "60s"}}
RETENTION = {"security": {"admin_token": ADMIN},
             "store": {"offline_retention": "1s"},
             "monitoring": {"reconnection_grace_period": "0.5s", "heartbeat_grace_period": "0.5s"},
             "guests": {"cleanup_interval": "1s"}}


@pytest.fixture(scope="module")
def server(module_server):
    return module_server(LONG_GRACE)


def removed(watcher, name):
    return [event for event in watcher.of("client_removed") if event["name"] == name]


def wait_removed(watcher, name, reason, timeout=SHORT):
    event = watcher.wait_event("client_removed", lambda e: e["name"] == name, timeout)
    assert event["reason"] == reason, event
    return event


def later() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def join_guest(server, connect, transport="websocket"):
    guest = connect(server.url, transport, auth={"guest": True, "name": "Visitor"})
    guest_id = guest.wait_event("guest_registered")["guestId"]
    wait_record(server, guest_id, "online")
    return guest, guest_id


def test_cleanup_before_a_date_keeps_connected_guests(server, connect, transport):
    watcher = connect(server.url, transport, watch=True)
    connected, connected_id = join_guest(server, connect, transport)
    gone, gone_id = join_guest(server, connect, transport)
    gone.close()
    wait_record(server, gone_id, "reconnecting")  # no socket, within its grace

    status, body = server.request("DELETE", f"/api/guests/cleanup?before={later()}", ADMIN)

    assert status == 200 and body["deleted"] >= 1
    assert server.client(gone_id) is None
    assert server.client(connected_id)["status"] == "online"
    assert connected.sio.connected and connected.heartbeat(connected_id)["status"] == "ok"
    event = wait_removed(watcher, gone_id, "admin")
    assert event["guest"] is True and event["status"] == "reconnecting" and event["node"]
    assert removed(watcher, connected_id) == []
    assert f"[REMOVED] {gone_id}: was reconnecting (reason: admin)" in server.log_text()


def test_deleting_one_guest_tells_watchers(server, connect):
    watcher = connect(server.url, watch=True)
    guest, guest_id = join_guest(server, connect)
    assert server.request("DELETE", f"/api/guests/{guest_id}", ADMIN) == (200, {"deleted": 1})
    guest.wait_event("disconnect")
    wait_removed(watcher, guest_id, "admin")


def test_delete_a_connected_client(server, connect, transport, unique):
    watcher = connect(server.url, transport, watch=True)
    name = unique("doomed")
    client = connect(server.url, transport, auth={"clientName": name})
    client.heartbeat(name)
    wait_record(server, name, "online")

    status, body = server.request("DELETE", f"/api/clients/{name}", ADMIN)

    assert (status, body) == (200, {"deleted": 1})
    client.wait_event("disconnect", timeout=SHORT)
    wait_for(lambda: server.client(name) is None, SHORT, 0.05, f"{name} deleted")
    event = wait_removed(watcher, name, "admin")
    assert event["guest"] is False and event["status"] == "online"
    status, body = server.request("DELETE", f"/api/clients/{name}", ADMIN)
    assert status == 404 and body["error"] == "not_found"
    # the closed socket's late disconnect brings nothing back
    assert wait_for(lambda: server.client(name) is None, SHORT)
    assert len(removed(watcher, name)) == 1


def test_delete_client_needs_the_admin_token_and_a_known_name(server, unique):
    name = unique("nobody")
    assert server.request("DELETE", f"/api/clients/{name}")[0] == 401
    assert server.request("DELETE", f"/api/clients/{name}", "wrong")[0] == 401
    status, body = server.request("DELETE", f"/api/clients/{name}", ADMIN)
    assert status == 404 and set(body) == {"error", "message"} and body["error"] == "not_found"


def test_guest_cleanup_sweep_tells_watchers(make_server, connect):
    server = make_server({"guests": {"connection_timeout": "0.5s", "cleanup_interval": "1s"}})
    watcher = connect(server.url, watch=True)
    guest, guest_id = join_guest(server, connect)
    guest.close()
    wait_removed(watcher, guest_id, "guest_cleanup", timeout=LONG)
    assert server.client(guest_id) is None
    assert f"[REMOVED] {guest_id}: was offline (reason: guest_cleanup)" in server.log_text()


def test_offline_retention_deletes_old_offline_clients(make_server, connect, unique):
    server = make_server(RETENTION)
    watcher = connect(server.url, watch=True)
    leaving = unique("leaving")
    connect(server.url, auth={"clientName": leaving}).close()
    went_offline = watcher.wait_event(
        "client_status_changed", lambda e: e["name"] == leaving and e["status"] == "offline",
        timeout=LONG)

    event = wait_removed(watcher, leaving, "retention", timeout=LONG)

    assert went_offline["reason"] == "reconnect_timeout"
    assert event["status"] == "offline" and server.client(leaving) is None
    assert f"[REMOVED] {leaving}: was offline (reason: retention)" in server.log_text()
