"""The HTTP API: health, client lists and filters, one client, stats, the page, admin routes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.server import wait_for

from .helpers import SHORT, http, seconds, wait_change, wait_record

pytestmark = pytest.mark.timeout(60)

ADMIN = "e2e-admin-token"
HTTP = {"monitoring": {"reconnection_grace_period": "30s", "heartbeat_interval": "5s",
                       "connection_check_interval": "30s"},
        "security": {"admin_token": ADMIN}}


@pytest.fixture(scope="module")
def server(module_server):
    return module_server(HTTP)


@pytest.fixture(scope="module")
def no_admin_server(module_server):
    return module_server()


def names(body):
    return {client["name"] for client in body["clients"]}


def assert_json_error(status, content_type, text, expected_status, expected_error=None):
    assert status == expected_status, (status, text)
    assert content_type.startswith("application/json"), content_type
    body = json.loads(text)
    assert set(body) == {"error", "message"}, body
    assert isinstance(body["message"], str) and body["message"]
    if expected_error:
        assert body["error"] == expected_error, body
    return body


def test_health(server):
    status, content_type, text = http(server, "GET", "/health")

    assert status == 200 and content_type.startswith("application/json")
    body = json.loads(text)
    assert set(body) == {"status", "uptime", "node", "store"}
    assert body["status"] == "ok"
    assert isinstance(body["uptime"], (int, float)) and body["uptime"] >= 0
    assert body["node"] == "test-node"
    assert body["store"] == {"kind": "sqlite", "ok": True, "error": None, "quarantined": 0}


def test_client_list_filters(server, connect, unique):
    tag = unique("filt")
    on, gone, off = f"{tag}-on", f"{tag}-gone", f"{tag}-off"
    connect(server.url, "websocket", auth={"clientName": on}).heartbeat(on)
    leaving = connect(server.url, "polling", auth={"clientName": gone})
    kicked = connect(server.url, "websocket", auth={"clientName": off})
    kicked.heartbeat(off)
    guest = connect(server.url, "websocket", auth={"guest": True, "name": f"Visitor {tag}"})
    guest_id = guest.wait_event("guest_registered")["guestId"]
    wait_record(server, gone, "online")
    leaving.close()
    wait_record(server, gone, "reconnecting", "disconnect")
    assert server.request("POST", f"/api/clients/{off}/kick", ADMIN)[0] == 200
    wait_record(server, off, "offline", "kicked")
    wait_record(server, guest_id, "online")

    everyone = server.get(f"/api/clients?q={tag}")  # q matches names and display names
    assert names(everyone) == {on, gone, off, guest_id}
    assert everyone["total"] == 4
    assert names(server.get(f"/api/clients?q={tag.upper()}")) == {on, gone, off, guest_id}
    assert names(server.get(f"/api/clients?q={tag}&status=online")) == {on, guest_id}
    assert names(server.get(f"/api/clients?q={tag}&status=reconnecting")) == {gone}
    assert names(server.get(f"/api/clients?q={tag}&status=offline")) == {off}
    assert names(server.get(f"/api/clients?q={tag}&guest=false")) == {on, gone, off}
    assert names(server.get(f"/api/clients?q={tag}&guest=true")) == {guest_id}
    assert names(server.get(f"/api/clients?q={tag}-o")) == {on, off}
    guests = server.get("/api/clients?guest=true")
    assert guest_id in names(guests) and all(c["guest"] for c in guests["clients"])
    assert guests["total"] == len(guests["clients"])
    by_display_name = server.get(f"/api/clients?q=visitor%20{tag}")
    assert names(by_display_name) == {guest_id}
    everything = server.get("/api/clients")
    assert {on, gone, off, guest_id} <= names(everything)
    assert everything["total"] == len(everything["clients"])
    record = next(c for c in everything["clients"] if c["name"] == on)
    assert {"name", "status", "reason", "since", "last_seen", "ip", "guest", "node",
            "connections", "version"} <= set(record)

    # pages sorted by name: ?limit= records each, ?after=<next> for the following page
    first = server.get(f"/api/clients?q={tag}&limit=3")
    assert [c["name"] for c in first["clients"]] == sorted([on, gone, off, guest_id])[:3]
    assert first["total"] == 4 and first["next"] == first["clients"][-1]["name"]
    rest = server.get(f"/api/clients?q={tag}&limit=3&after={first['next']}")
    assert [c["name"] for c in rest["clients"]] == sorted([on, gone, off, guest_id])[3:]
    assert "next" not in rest


@pytest.mark.parametrize("query", ["status=bogus", "status=ONLINE", "guest=maybe", "guest=",
                                   "limit=0", "limit=x", "limit=10001"])
def test_bad_filters_are_400_json(server, query):
    assert_json_error(*http(server, "GET", f"/api/clients?{query}"), 400, "invalid_query")


def test_one_client_and_404(server, connect, unique):
    name = unique("one")
    client = connect(server.url, "websocket", auth={"clientName": name})
    client.heartbeat(name)
    record = wait_record(server, name, "online", "connected")

    assert record["name"] == name and record["guest"] is False
    assert record["node"] == "test-node" and record["connections"] == 1
    assert record["version"] == 1 and record["ip"] == "127.0.0.1"
    assert seconds(record["since"]) <= seconds(record["last_seen"])
    assert [t["status"] for t in record["transitions"]] == ["online"]
    body = assert_json_error(*http(server, "GET", f"/api/clients/{unique('nobody')}"), 404,
                             "not_found")
    assert "nobody" in body["message"]


def test_stats(server, connect, unique):
    name = unique("stat")
    connect(server.url, "websocket", auth={"clientName": name}).heartbeat(name)
    wait_record(server, name, "online")

    stats = server.get("/api/stats")

    for key in ("total", "online", "reconnecting", "offline", "guests", "responsive",
                "connections"):
        assert isinstance(stats[key], int) and stats[key] >= 0, (key, stats)
    assert isinstance(stats["uptime"], (int, float))
    assert stats["total"] == stats["online"] + stats["reconnecting"] + stats["offline"]
    listing = server.get("/api/clients")["clients"]
    assert stats["total"] == len(listing)
    assert stats["online"] == sum(c["status"] == "online" for c in listing)
    assert stats["guests"] == sum(c["guest"] for c in listing)
    assert stats["connections"] == sum(c["connections"] for c in listing)
    assert 1 <= stats["responsive"] <= stats["online"]
    assert stats["actors"] >= 1 and stats["mailbox"] >= 0
    gc = stats["gc"]
    assert len(gc["collections"]) == 3 and all(n >= 0 for n in gc["collections"])
    assert gc["pause_total_ms"] >= gc["pause_max_ms"] >= 0
    assert gc["frozen_at_start"] > 0, "start-up objects are frozen out of the collector's reach"
    assert gc["thresholds"][0] > 700, "collection thresholds are raised"
    assert gc["young_every_s"] > 0 and gc["thaw_every_s"] == 3600
    wait_for(lambda: server.get("/api/stats")["gc"]["collections"][0] >= 2,
             timeout=10 * gc["young_every_s"] + 5, message="young collections by the pacer")


def test_status_page_lists_clients(server, connect, unique):
    name = unique("page")
    connect(server.url, "websocket", auth={"clientName": name}).heartbeat(name)
    wait_record(server, name, "online")

    status, content_type, text = http(server, "GET", "/")

    assert status == 200 and content_type.startswith("text/html")
    assert text.lstrip().lower().startswith("<!doctype html>")
    assert f'data-name="{name}"' in text


ADMIN_ROUTES = [("POST", "/api/clients/someone/kick"), ("DELETE", "/api/guests/guest-x"),
                ("DELETE", "/api/guests/cleanup?before=2030-01-01T00:00:00Z"),
                ("DELETE", "/api/guests/cleanup-all")]


@pytest.mark.parametrize("method,path", ADMIN_ROUTES)
def test_admin_routes_are_403_without_a_configured_token(no_admin_server, method, path):
    for headers in ({}, {"Authorization": f"Bearer {ADMIN}"}):
        assert_json_error(*http(no_admin_server, method, path, headers), 403, "admin_disabled")


@pytest.mark.parametrize("method,path", ADMIN_ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {ADMIN}", "Bearer ", ADMIN])
def test_admin_routes_are_401_without_the_right_token(server, method, path, header):
    headers = {"Authorization": header} if header is not None else {}
    assert_json_error(*http(server, method, path, headers), 401, "unauthorized")


def test_kick_makes_a_client_offline_and_closes_its_sockets(server, connect, transport, unique):
    name = unique("kick")
    watcher = connect(server.url, transport, watch=True)
    tabs = [connect(server.url, transport, auth={"clientName": name}) for _ in range(2)]
    tabs[0].heartbeat(name)
    wait_record(server, name, "online", connections=2)

    status, body = server.request("POST", f"/api/clients/{name}/kick", ADMIN)

    assert status == 200, body
    assert (body["name"], body["status"], body["reason"]) == (name, "offline", "kicked")
    for tab in tabs:
        tab.wait_event("disconnect", timeout=SHORT)
    kicked = wait_change(watcher, name, "offline", "kicked")
    assert kicked["previous"] == "online"
    wait_record(server, name, "offline", "kicked", connections=0)
    status, body = server.request("POST", f"/api/clients/{unique('nobody')}/kick", ADMIN)
    assert status == 404 and body["error"] == "not_found"


def test_delete_one_guest(server, connect, transport):
    guest = connect(server.url, transport, auth={"guest": True, "name": "Visitor"})
    guest_id = guest.wait_event("guest_registered")["guestId"]
    wait_record(server, guest_id, "online")

    status, body = server.request("DELETE", f"/api/guests/{guest_id}", ADMIN)

    assert (status, body) == (200, {"deleted": 1})
    guest.wait_event("disconnect", timeout=SHORT)
    wait_for(lambda: server.client(guest_id) is None, SHORT, 0.05, "guest deleted")
    status, body = server.request("DELETE", f"/api/guests/{guest_id}", ADMIN)
    assert status == 404 and body["error"] == "not_found"
    # a registered (non-guest) client is not a guest
    assert server.request("DELETE", "/api/guests/cleanup-all-not-a-guest", ADMIN)[0] == 404


def test_cleanup_guests_before_a_date(server, connect):
    guests = [connect(server.url, "websocket", auth={"guest": True, "name": "Visitor"})
              for _ in range(2)]
    ids = [g.wait_event("guest_registered")["guestId"] for g in guests]
    for guest_id in ids:
        wait_record(server, guest_id, "online")
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    past = past.replace("+", "%2B")
    status, body = server.request("DELETE", f"/api/guests/cleanup?before={past}", ADMIN)
    assert (status, body) == (200, {"deleted": 0})
    assert all(server.client(guest_id) for guest_id in ids)

    # connected guests are never deleted by date (issue 10): only guests with no live socket
    status, body = server.request("DELETE", f"/api/guests/cleanup?before={future}", ADMIN)
    assert status == 200
    assert all(server.client(guest_id)["status"] == "online" for guest_id in ids)
    assert all(guest.sio.connected for guest in guests)

    for query in ("", "?before=", "?before=yesterday"):
        assert_json_error(*http(server, "DELETE", f"/api/guests/cleanup{query}",
                                {"Authorization": f"Bearer {ADMIN}"}), 400, "invalid_query")


def test_cleanup_all_guests(server, connect, unique):
    member = unique("member")
    connect(server.url, "websocket", auth={"clientName": member}).heartbeat(member)
    guests = [connect(server.url, t, auth={"guest": True, "name": "Visitor"})
              for t in ("websocket", "polling")]
    ids = [g.wait_event("guest_registered")["guestId"] for g in guests]
    for guest_id in ids:
        wait_record(server, guest_id, "online")
    count = server.get("/api/clients?guest=true")["total"]

    status, body = server.request("DELETE", "/api/guests/cleanup-all", ADMIN)

    assert (status, body) == (200, {"deleted": count})
    assert server.get("/api/clients?guest=true") == {"clients": [], "total": 0}
    for guest in guests:
        guest.wait_event("disconnect", timeout=SHORT)
    wait_record(server, member, "online")  # registered clients are untouched
