"""Graceful shutdown (SIGTERM/SIGINT), restart, and start-up recovery after SIGKILL."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import pytest

from tests.support.server import wait_for

from .helpers import (
    LONG,
    SHORT,
    changes,
    path_of,
    seconds,
    stored,
    wait_change,
    wait_record,
)

pytestmark = pytest.mark.timeout(90)

TIMEOUT = 8.0  # shutdown.timeout
RECONNECT_AFTER_MS = 1500
SHUTDOWN = {
    "monitoring": {"reconnection_grace_period": "10s", "connection_check_interval": "30s",
                   "heartbeat_interval": "2s"},
    "shutdown": {"reconnect_after": "1.5s", "notice_delay": "0.3s", "timeout": f"{TIMEOUT}s"},
}
ENTRIES = [pytest.param(False, id="presence-server"), pytest.param(True, id="procfile")]


def wait_exit(server, limit: float) -> tuple[int, float]:
    """Wait for the process to end (up to `limit` + a margin to measure overruns)."""
    started = time.monotonic()
    try:
        code = server.process.wait(limit + 1.5)
    except subprocess.TimeoutExpired:
        server.kill()
        raise AssertionError(f"still running {limit + 1.5:g}s after the signal (limit {limit:g}s)"
                             f"\n{server.log_text()[-3000:]}") from None
    return code, time.monotonic() - started


@pytest.mark.parametrize("procfile", ENTRIES)
def test_sigterm_notifies_everyone_exits_0_and_a_restart_brings_clients_back(
        make_server, connect, unique, procfile):
    server = make_server(SHUTDOWN, procfile=procfile)
    names = {transport: unique(transport[:4]) for transport in ("websocket", "polling")}
    members = {t: connect(server.url, t, auth={"clientName": n}) for t, n in names.items()}
    for transport, name in names.items():
        assert members[transport].heartbeat(name)["status"] == "ok"
        wait_record(server, name, "online", "connected")
    watcher = connect(server.url, "websocket", watch=True)
    bystander = connect(server.url, "polling")  # connected, never named
    everyone = [*members.values(), watcher, bystander]

    signalled = time.time()
    server.signal(signal.SIGTERM)

    for client in everyone:
        notice = client.wait_event("server_shutdown", timeout=SHORT)
        assert notice["reconnectAfter"] == RECONNECT_AFTER_MS, notice
        assert isinstance(notice["message"], str) and notice["message"]
        assert abs(seconds(notice["timestamp"]) - signalled) < 5
    code, took = wait_exit(server, TIMEOUT)
    assert code == 0, server.log_text()[-3000:]
    assert took <= TIMEOUT, f"exit took {took:.1f}s, shutdown.timeout is {TIMEOUT}s"
    for client in everyone:
        # the transport closed: "server disconnect" would tell the library not to reconnect
        assert client.wait_event("disconnect", timeout=SHORT) == "transport error"
    on_disk = stored(server)
    for name in names.values():
        assert (on_disk[name]["status"], on_disk[name]["reason"]) == (
            "reconnecting", "server_restart"), on_disk[name]
    for name in names.values():
        assert "offline" not in [e["status"] for e in changes(watcher, name)]

    server.start()
    for name in names.values():
        wait_record(server, name, "reconnecting", "server_restart")
    watcher = connect(server.url, "websocket", watch=True)
    back = {t: connect(server.url, t, auth={"clientName": n}) for t, n in names.items()}
    for transport, name in names.items():
        assert back[transport].heartbeat(name)["status"] == "ok"
        wait_change(watcher, name, "online", "reconnected")
        record = wait_record(server, name, "online", "reconnected", connections=1)
        assert path_of(record["transitions"]) == [
            ("online", "connected"), ("reconnecting", "server_restart"), ("online", "reconnected")]
        assert "offline" not in [t["status"] for t in record["transitions"]]


def test_sigint_is_a_graceful_shutdown_too(make_server, connect, unique):
    server = make_server(SHUTDOWN)
    name = unique("int")
    client = connect(server.url, "websocket", auth={"clientName": name})
    wait_record(server, name, "online")

    server.signal(signal.SIGINT)

    assert client.wait_event("server_shutdown")["reconnectAfter"] == RECONNECT_AFTER_MS
    code, took = wait_exit(server, TIMEOUT)
    assert code == 0 and took <= TIMEOUT
    assert stored(server)[name]["reason"] == "server_restart"


def idle_keepalive_connection(server):
    """An HTTP/1.1 client that made one request and keeps its connection open, idle."""
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    connection.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n")
    assert connection.recv(65536).startswith(b"HTTP/1.1 200")
    return connection


QUICK_EXIT = 2.0


@pytest.mark.parametrize("procfile", [
    pytest.param(False, id="presence-server"),
    pytest.param(True, id="procfile")])
@pytest.mark.parametrize("obstacle", ["idle-keepalive-http", "vanished-polling-client"])
def test_sigterm_exits_within_shutdown_timeout_despite_idle_connections(
        make_server, connect, unique, procfile, obstacle):
    """Browsers and proxies keep idle HTTP connections open, and a long-polling client can
    vanish between two polls: neither may hold the process past `shutdown.timeout`."""
    server = make_server({
        "shutdown": {"notice_delay": "0.3s", "timeout": f"{QUICK_EXIT}s"},
        # production-like Engine.IO settings: a dead long-poll is noticed late
        "socket": {"ping_interval": "10s", "ping_timeout": "20s"},
    }, procfile=procfile)
    held = []
    if obstacle == "idle-keepalive-http":
        held.append(idle_keepalive_connection(server))
    else:
        name = unique("gone")
        client = connect(server.url, "polling", auth={"clientName": name})
        client.heartbeat(name)
        client.drop()
    try:
        server.signal(signal.SIGTERM)
        code, took = wait_exit(server, QUICK_EXIT)
    finally:
        for connection in held:
            connection.close()
    assert code == 0
    assert took <= QUICK_EXIT, f"exit took {took:.1f}s, shutdown.timeout is {QUICK_EXIT}s"


def test_after_sigkill_clients_come_back_reconnecting_with_a_fresh_grace(
        make_server, connect, unique):
    grace = 3.0
    server = make_server({
        "monitoring": {"reconnection_grace_period": f"{grace}s", "heartbeat_interval": "2s",
                       "connection_check_interval": "30s"},
        "guests": {"connection_timeout": "30s", "purge_on_startup": True},
    })
    returning, lost = unique("returning"), unique("lost")
    clients = {returning: connect(server.url, "websocket", auth={"clientName": returning}),
               lost: connect(server.url, "polling", auth={"clientName": lost})}
    for name, client in clients.items():
        assert client.heartbeat(name)["status"] == "ok"
    guest = connect(server.url, "websocket", auth={"guest": True, "name": "Visitor"})
    guest_id = guest.wait_event("guest_registered")["guestId"]
    # the store writes behind: wait until the file itself says they are online
    wait_for(lambda: all(stored(server).get(n, {}).get("status") == "online"
                         for n in (returning, lost, guest_id)), SHORT, 0.05, "records on disk")

    server.kill()  # SIGKILL: no notice, no shutdown
    restarted = time.time()
    server.start()

    for name in (returning, lost):
        record = wait_record(server, name, "reconnecting", "server_restart")
        assert seconds(record["since"]) >= restarted - 0.5
    assert server.client(guest_id) is None, "a leftover guest survived the restart"
    assert [c for c in server.get("/api/clients?guest=true")["clients"]
            if c["name"] == guest_id] == []
    assert "2 clients back as reconnecting, 1 leftover guests purged" in server.log_text()

    watcher = connect(server.url, "websocket", watch=True)
    again = connect(server.url, "websocket", auth={"clientName": returning})
    assert again.heartbeat(returning)["status"] == "ok"
    wait_change(watcher, returning, "online", "reconnected")
    offline = wait_change(watcher, lost, "offline", "reconnect_timeout", timeout=LONG)
    assert offline["previous"] == "reconnecting"

    lost_record = wait_record(server, lost, "offline", "reconnect_timeout")
    transitions = lost_record["transitions"]
    assert path_of(transitions) == [("online", "connected"), ("reconnecting", "server_restart"),
                                    ("offline", "reconnect_timeout")]
    grace_used = seconds(transitions[2]["at"]) - seconds(transitions[1]["at"])
    assert grace - 0.05 <= grace_used < grace + 3, grace_used  # a fresh grace from the restart
    returning_record = wait_record(server, returning, "online", "reconnected")
    assert path_of(returning_record["transitions"]) == [
        ("online", "connected"), ("reconnecting", "server_restart"), ("online", "reconnected")]
