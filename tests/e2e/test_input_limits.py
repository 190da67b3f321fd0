"""Limits at the edge (issue 10): watch snapshots, new records per address, the client address
behind proxies, CORS, idle unnamed sockets. Real server processes, real Socket.IO clients.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
import socketio
from presence_server.store import open_store
from presence_server.store.records import ClientRecord

from tests.support.clients import RecordingClient
from tests.support.raw_engineio import RawWebsocket
from tests.support.server import wait_for

from .helpers import SHORT, http, wait_record

pytestmark = pytest.mark.timeout(120)

QUIET = {"monitoring": {"connection_check_interval": "30s", "heartbeat_interval": "10s",
                        "reconnection_grace_period": "60s"}}


def seed_records(server, count: int) -> None:
    """Write `count` offline records into the server's SQLite file before it starts."""
    store = open_store(server.config["store"]["url"])
    for index in range(count):
        store.save(ClientRecord(name=f"seeded-{index:05d}", status="offline", reason="kicked",
                                since=1.7e9, last_seen=1.7e9, last_contact=1.7e9,
                                ip="203.0.113.7", guest=False, node="test-node",
                                connections=0, version=1))
    store.flush()
    store.close()


def refused(url: str, transport: str = "websocket", **options) -> str:
    client = RecordingClient(url, transport, **options)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect()
        refusal = client.wait_event("connect_error")
    finally:
        client.close()
    return refusal.get("message") if isinstance(refusal, dict) else refusal


# --- watch -------------------------------------------------------------------------------------
def test_a_full_snapshot_is_capped_and_says_so(make_server, connect):
    server = make_server({**QUIET, "security": {"watch_snapshot_limit": 20}}, start=False)
    seed_records(server, 60)
    server.start()
    watcher = connect(server.url)

    snapshot = watcher.call("watch", {})

    assert len(snapshot["clients"]) == 20
    assert snapshot["total"] == 60 and snapshot["truncated"] is True
    assert [c["name"] for c in snapshot["clients"]] == [f"seeded-{i:05d}" for i in range(20)]


def test_a_snapshot_of_names_holds_only_those(make_server, connect):
    server = make_server({**QUIET, "security": {"watch_snapshot_limit": 20}}, start=False)
    seed_records(server, 30)
    server.start()
    watcher = connect(server.url)

    snapshot = watcher.call("watch", {"names": ["seeded-00003", "seeded-00029", "nobody",
                                                "seeded-00003"]})

    assert sorted(c["name"] for c in snapshot["clients"]) == ["seeded-00003", "seeded-00029"]
    assert snapshot["total"] == 2 and snapshot["truncated"] is False
    for bad in ({"names": "seeded-00003"}, {"names": ["ok", 5]}, {"names": ["a\ud800"]},
                {"names": [f"n{i}" for i in range(21)]}):
        reply = watcher.call("watch", bad)
        assert reply["status"] == "error" and reply["code"] == "invalid_payload", (bad, reply)


def test_a_big_snapshot_is_charged_to_the_event_budget(make_server, connect):
    server = make_server({**QUIET, "security": {"max_events_per_second": 4}}, start=False)
    seed_records(server, 400)  # 1 + 400/20 = 21 events: five seconds of budget
    server.start()
    watcher = connect(server.url)

    assert len(watcher.call("watch", {})["clients"]) == 400
    reply = watcher.call("client_status_request", {"clientName": "seeded-00001"})

    assert reply["code"] == "rate_limited", reply
    wait_for(lambda: watcher.call("client_status_request", {"clientName": "seeded-00001"})
             .get("clientStatus") == "offline", SHORT, 0.5, "the budget to refill")


def test_watchers_without_a_verified_identity_see_no_addresses(make_server, connect, unique):
    secret = "s3cret-for-watch"
    server = make_server({**QUIET, "security": {"secret": secret,
                                                 "admin_token": "watch-admin"}})
    from presence_server.web.identity import Identities

    name = unique("known")
    token = Identities(secret).issue(name)
    member = connect(server.url, auth={"clientName": name, "token": token})
    assert member.heartbeat(name, token=token)["status"] == "ok"
    wait_record(server, name, "online")

    anonymous = connect(server.url).call("watch", {})
    guest = connect(server.url, auth={"guest": True, "name": "Visitor"}).call("watch", {})
    trusted = member.call("watch", {})

    for snapshot in (anonymous, guest):
        assert snapshot["clients"] and all("ip" not in c for c in snapshot["clients"])
    mine = [c for c in trusted["clients"] if c["name"] == name]
    assert mine and mine[0]["ip"] == "127.0.0.1"

    # over HTTP too: addresses only for the admin while a secret is set
    assert "ip" not in server.client(name)
    assert all("ip" not in c for c in server.get("/api/clients")["clients"])
    assert "127.0.0.1" not in http(server, "GET", "/")[2]
    admin = {"Authorization": "Bearer watch-admin"}
    status, _, body = http(server, "GET", f"/api/clients/{name}", admin)
    assert status == 200 and json.loads(body)["ip"] == "127.0.0.1"


# --- new records per address -------------------------------------------------------------------
def test_one_address_cannot_create_records_without_end(make_server, connect, unique):
    server = make_server({**QUIET, "security": {"new_records_per_minute": 3}})
    names = [unique(f"n{index}") for index in range(3)]
    for name in names:
        client = connect(server.url, auth={"clientName": name})
        assert client.heartbeat(name)["status"] == "ok"

    assert "new clients" in refused(server.url, auth={"clientName": unique("fourth")})
    assert "new clients" in refused(server.url, auth={"guest": True, "name": "Visitor"})
    unnamed = connect(server.url)
    reply = unnamed.heartbeat(unique("fifth"))
    assert reply["status"] == "error" and reply["code"] == "too_many_new_clients"
    # known names come back freely
    again = connect(server.url, auth={"clientName": names[0]})
    assert again.heartbeat(names[0])["status"] == "ok"
    assert server.get("/api/clients")["total"] == 3


def test_with_a_secret_only_guests_count_against_the_address(make_server, connect, unique):
    secret = "s3cret-for-names"
    server = make_server({**QUIET, "security": {"secret": secret, "new_records_per_minute": 1}})
    from presence_server.web.identity import Identities

    for index in range(3):
        name = unique(f"signed{index}")
        token = Identities(secret).issue(name)
        client = connect(server.url, auth={"clientName": name, "token": token})
        assert client.heartbeat(name, token=token)["status"] == "ok"
    connect(server.url, auth={"guest": True, "name": "First"}).wait_event("guest_registered")
    assert "new clients" in refused(server.url, auth={"guest": True, "name": "Second"})


# --- client address ------------------------------------------------------------------------------
@pytest.mark.parametrize("hops,expected", [(0, "127.0.0.1"), (1, "10.1.1.1"), (2, "9.9.9.9")])
def test_x_forwarded_for_is_trusted_only_as_far_as_the_proxy_hops(
        make_server, unique, hops, expected):
    server = make_server({**QUIET, "server": {"proxy_hops": hops}})
    name = unique("addr")
    client = socketio.Client(reconnection=False)
    client.connect(server.url, transports=["websocket"], auth={"clientName": name},
                   headers={"X-Forwarded-For": "6.6.6.6, 9.9.9.9, 10.1.1.1"})
    try:
        wait_record(server, name, "online")
        assert server.client(name)["ip"] == expected
    finally:
        client.disconnect()


# --- CORS ----------------------------------------------------------------------------------------
def handshake(server, origin: str | None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(f"{server.url}/socket.io/?EIO=4&transport=polling")
    if origin is not None:
        request.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_cors_defaults_to_the_same_origin(make_server):
    server = make_server(QUIET)
    assert handshake(server, "https://evil.example")[0] == 400
    status, headers = handshake(server, server.url)
    assert status == 200 and headers.get("Access-Control-Allow-Origin") == server.url
    assert handshake(server, None)[0] == 200  # non-browser clients send no Origin


def test_cors_lists_and_the_explicit_wildcard(make_server):
    listed = make_server({**QUIET, "socket": {"cors_allowed_origins": ["https://app.example"]}})
    assert handshake(listed, "https://app.example")[0] == 200
    assert handshake(listed, listed.url)[0] == 200  # the status page's own origin stays allowed
    assert handshake(listed, "https://evil.example")[0] == 400

    anyone = make_server({**QUIET, "socket": {"cors_allowed_origins": "*"}}, name="anyone")
    status, headers = handshake(anyone, "https://evil.example")
    assert status == 200 and headers.get("Access-Control-Allow-Origin") == "https://evil.example"
    assert "Access-Control-Allow-Credentials" not in headers


# --- idle unnamed sockets ------------------------------------------------------------------------
def test_idle_unnamed_sockets_are_closed(make_server, connect, transport, unique):
    server = make_server({**QUIET, "socket": {"unnamed_timeout": "1s"}})
    idle = connect(server.url, transport)
    watcher = connect(server.url, transport, watch=True)
    name = unique("named")
    named = connect(server.url, transport)
    assert named.heartbeat(name)["status"] == "ok"

    error = idle.wait_event("error", timeout=SHORT)
    assert error["code"] == "registration_timeout"
    wait_for(lambda: not idle.sio.connected, SHORT, 0.05, "the idle socket to be closed")
    time.sleep(1.5)  # an observation window past the timeout for the other two
    assert watcher.sio.connected and named.sio.connected
    assert named.heartbeat(name)["status"] == "ok"


def _engineio_only(server, join_then_leave: bool) -> RawWebsocket:
    """A raw Engine.IO websocket that answers pings but holds no Socket.IO session."""
    raw = RawWebsocket(server.url, join=join_then_leave)
    if join_then_leave:
        raw.send("41")  # leaves the namespace, keeps the connection
    return raw


@pytest.mark.parametrize("join_then_leave", [False, True], ids=["never-joins", "joins-leaves"])
def test_engineio_connections_without_a_socketio_session_are_closed(make_server,
                                                                    join_then_leave):
    server = make_server({**QUIET, "socket": {"unnamed_timeout": "1s", "ping_interval": "0.5s"}})
    raw = _engineio_only(server, join_then_leave)
    try:
        assert raw.read_until_closed(SHORT), "the server kept an Engine.IO-only connection open"
    finally:
        raw.close()
    assert "Traceback" not in server.log_text()
