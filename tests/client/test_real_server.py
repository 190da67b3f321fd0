"""The client SDK and the ``presence-client`` command against the real presence server process.

The done criteria of the client: it outlives the server (SIGKILL and SIGTERM) and comes back by
itself with no ``offline`` shown; it can start before the server; after ``server_shutdown`` nobody
reconnects before ``reconnectAfter`` and a crowd spreads out.
"""

from __future__ import annotations

import signal
import time

import pytest

from presence_client import State

from .helpers import PYTHON, REPO, LineProcess, Recorder, free_port, wait_until

GRACE = {"monitoring": {"reconnection_grace_period": "15s"}}


def cli(url: str, *args: str) -> LineProcess:
    return LineProcess([PYTHON, "-m", "presence_client", "--url", url, *args],
                       env={"PYTHONPATH": str(REPO)})


def record_of(server, name: str, status: str, reason: str | None = None,
              timeout: float = 15.0) -> dict:
    """Wait until ``GET /api/clients/<name>`` shows ``status`` (and ``reason``)."""
    def matches():
        record = server.client(name)
        if record and record["status"] == status and reason in (None, record["reason"]):
            return record
        return None
    return wait_until(matches, timeout, what=f"{name} to be {status} ({reason})")


def statuses(record: dict) -> list[str]:
    return [t["status"] for t in record["transitions"]]


@pytest.mark.slow
def test_cli_outlives_sigkill_and_sigterm_of_the_server_and_never_shows_offline(
        make_server) -> None:
    server = make_server(GRACE)
    proc = cli(server.url, "--name", "survivor", "--max-delay", "0.5")
    try:
        proc.expect(r" state online \(connected\)$")
        record_of(server, "survivor", "online")

        server.kill()  # SIGKILL: no notice, the TCP connection just dies
        proc.expect(r" state reconnecting \(connection closed")
        proc.expect(r" retry ")  # trying, and still running
        assert proc.alive()
        server.start()  # same port, same SQLite file
        proc.expect(r" state online \(reconnected\)$")
        record_of(server, "survivor", "online")

        assert server.stop(signal.SIGTERM) == 0  # graceful: notice, then close
        proc.expect(r' notice server_shutdown \{"message": ')
        proc.expect(r" state reconnecting \(server shutdown; reconnecting in ")
        proc.expect(r" retry ")
        assert proc.alive()
        server.start()
        proc.expect(r" state online \(reconnected\)$")
        record = record_of(server, "survivor", "online", "reconnected")
        assert "offline" not in statuses(record), record["transitions"]
        assert "reconnecting" in statuses(record)  # the graceful restart was seen, then undone
        assert "client reports a successful reconnection: survivor" in server.log_text()

        proc.signal(signal.SIGTERM)
        proc.expect(r" state stopped \(closed\)$")
        assert proc.wait() == 0
    finally:
        proc.kill()


def test_a_client_started_before_the_server_connects_when_it_comes_up(make_server) -> None:
    server = make_server(start=False, port=free_port())
    proc = cli(server.url, "--name", "early-bird", "--max-delay", "0.5")
    try:
        proc.expect(r" retry ")
        proc.expect(r" retry ")
        assert proc.alive()
        server.start()
        proc.expect(r" state online \(connected\)$")
        record_of(server, "early-bird", "online", "connected")
        proc.signal(signal.SIGINT)
        assert proc.wait() == 0
    finally:
        proc.kill()


@pytest.mark.slow
def test_after_server_shutdown_a_crowd_waits_reconnect_after_and_spreads_out(
        make_server, make_client) -> None:
    server = make_server(GRACE)  # shutdown.reconnect_after is 1 s in the test overlay
    reconnect_after = 1.0
    count = 30
    attempts = Recorder()
    clients = []
    for i in range(count):
        client = make_client(server.url, f"crowd-{i:02d}")
        client.on("connect_attempt", lambda data, i=i: attempts((i, data["at"])))
        clients.append(client.start())
    for client in clients:
        assert client.wait_online(20)

    sigterm_at = time.time()  # every notice is sent after this instant
    assert server.stop(signal.SIGTERM) == 0
    for client in clients:
        assert client.wait_for(State.RECONNECTING, 10)
    server.start()
    for client in clients:
        assert client.wait_online(30)

    first = {}
    for i, at in attempts.items:
        if at > sigterm_at and i not in first:
            first[i] = at - sigterm_at
    assert len(first) == count
    offsets = sorted(first.values())
    assert offsets[0] >= reconnect_after, offsets  # nobody came back early
    assert offsets[-1] - offsets[0] >= 0.3, offsets  # spread over the jitter window
    per_20ms: dict[int, int] = {}
    for offset in offsets:
        per_20ms[int(offset / 0.02)] = per_20ms.get(int(offset / 0.02), 0) + 1
    assert max(per_20ms.values()) <= count // 4, offsets  # not a thundering herd
    for i in range(count):
        record = record_of(server, f"crowd-{i:02d}", "online")
        assert "offline" not in statuses(record)


def test_sdk_end_to_end_heartbeat_advice_status_watch_and_checks(
        make_server, make_client) -> None:
    server = make_server()  # heartbeat_interval 1 s, connection_check_interval 1 s
    checks = Recorder()
    client = make_client(server.url, "sdk-1")
    client.on("connection_check", checks)
    client.start()
    assert client.wait_online(10)
    wait_until(lambda: client.heartbeat_interval == 1.0, what="the server's heartbeat advice")
    assert client.last_heartbeat_reply["status"] == "ok"
    checks.wait_for(lambda items: items and items[0]["client_name"] == "sdk-1")

    status = client.status_of()
    assert status["serverStatus"] == "online" and status["clientStatus"] == "online"

    changes = Recorder()
    snapshot = client.watch(changes)
    assert "sdk-1" in [c["name"] for c in snapshot["clients"]]
    other = make_client(server.url, "sdk-2").start()
    assert other.wait_online(10)
    changes.wait_for(lambda items: any(c["name"] == "sdk-2" and c["status"] == "online"
                                       for c in items))
    other.close()
    changes.wait_for(lambda items: any(c["name"] == "sdk-2" and c["status"] == "reconnecting"
                                       for c in items))
    record = record_of(server, "sdk-1", "online")
    assert record["connections"] == 1


@pytest.mark.parametrize("purge", [False, True], ids=["kept", "purged"])
def test_guest_keeps_its_id_across_a_server_restart(make_server, make_client, purge) -> None:
    server = make_server({"guests": {"purge_on_startup": purge, "connection_timeout": "15s"}})
    client = make_client(server.url, "Visitor", guest=True)
    client.start()
    assert client.wait_online(10)
    guest_id, token = client.guest_id, client.guest_resume_token
    assert guest_id and guest_id.startswith("guest-") and token
    record = record_of(server, guest_id, "online")
    assert record["guest"] is True

    assert server.stop(signal.SIGTERM) == 0
    assert client.wait_for(State.RECONNECTING, 10)
    server.start()
    assert client.wait_online(20)
    assert client.guest_id == guest_id and client.guest_resume_token == token
    # purged at start-up, the record is new; else the guest came back within its grace
    record = record_of(server, guest_id, "online", "connected" if purge else "reconnected")
    assert "offline" not in statuses(record)


def test_guest_resumes_its_id_in_a_later_run_with_its_token(make_server, make_client) -> None:
    server = make_server()
    first = make_client(server.url, "Visitor", guest=True).start()
    assert first.wait_online(10)
    guest_id, token = first.guest_id, first.guest_resume_token
    first.close()

    later = make_client(server.url, "Visitor", guest=True, guest_id=guest_id,
                        guest_resume_token=token).start()
    assert later.wait_online(10)
    assert later.guest_id == guest_id
    stranger = make_client(server.url, "Visitor", guest=True, guest_id=guest_id).start()
    assert stranger.wait_online(10)
    assert stranger.guest_id != guest_id  # the id alone does not make anyone that guest
    assert record_of(server, guest_id, "online")["connections"] == 1


def test_a_refused_connection_carries_the_servers_reason(make_server, make_client) -> None:
    server = make_server({"security": {"secret": "s3cret"}})
    failures = Recorder()
    client = make_client(server.url, "no-token", token="forged")
    client.on("connect_error", failures)
    client.start()
    failures.wait_for(lambda items: len(items) >= 2)  # refused, and it keeps trying
    assert client.state == State.CONNECTING
    assert failures.items[0]["message"] and failures.items[0]["message"] != "Connection error"


@pytest.mark.parametrize("transports", [("polling",), None], ids=["polling", "auto"])
def test_other_transports_register_heartbeat_and_come_back(
        make_server, make_client, transports) -> None:
    server = make_server(GRACE)
    client = make_client(server.url, "poller", transports=transports)
    client.start()
    assert client.wait_online(10)
    wait_until(lambda: client.heartbeat_interval == 1.0, what="a heartbeat reply")
    record_of(server, "poller", "online")
    assert server.stop(signal.SIGTERM) == 0
    assert client.wait_for(State.RECONNECTING, 10)
    server.start()
    assert client.wait_online(20)
    record = record_of(server, "poller", "online", "reconnected")
    assert "offline" not in statuses(record)


def test_a_watching_client_is_not_rate_limited_after_a_reconnect(make_server, make_client) -> None:
    """A watch snapshot is charged to the socket's event budget (one event per 20 records): the
    SDK heartbeats first after each reconnect, then watches, so its heartbeat is never refused."""
    from presence_server.store import open_store
    from presence_server.store.records import ClientRecord

    server = make_server({"security": {"max_events_per_second": 10},
                          "monitoring": {"heartbeat_interval": "30s"}}, start=False)
    store = open_store(server.config["store"]["url"])
    for n in range(400):
        store.save(ClientRecord(name=f"stored-{n:03d}", status="offline", reason="kicked",
                                since=1.0, last_seen=None, last_contact=None, ip=None,
                                guest=False, node="n1", connections=0, version=1))
    store.close()
    server.start()
    errors, snapshots = Recorder(), Recorder()
    client = make_client(server.url, "watcher-1")
    client.on("error", errors)
    client.start()
    assert client.wait_online(10)
    client.watch(lambda change: None, on_snapshot=snapshots)
    before = client.last_heartbeat_reply

    assert server.stop(signal.SIGTERM) == 0
    assert client.wait_for(State.RECONNECTING, 10)
    server.start()
    assert client.wait_online(20)
    snapshots.wait_for(lambda items: len(items) >= 2)  # watched again after the reconnect
    reply = wait_until(lambda: client.last_heartbeat_reply is not before
                       and client.last_heartbeat_reply, what="a heartbeat reply after it")
    assert reply["status"] == "ok", reply
    assert not [e for e in errors.items if e.get("code") == "rate_limited"], errors.items
