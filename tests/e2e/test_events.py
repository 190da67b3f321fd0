"""`GET /events` (issue 12): server-sent events from real server processes (presence-server and
the Procfile's gunicorn worker), read by a real HTTP streaming client."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from presence_server.store import open_store
from presence_server.store.records import ClientRecord

from presence_server.config import parse_duration
from tests.support.clients import RecordingClient
from tests.support.server import wait_for
from tests.support.sse import SseClient

from .helpers import LONG, SHORT, http

pytestmark = pytest.mark.timeout(180)

QUIET = {"monitoring": {"connection_check_interval": "30s", "heartbeat_interval": "10s",
                        "reconnection_grace_period": "60s"},
         "events": {"keepalive": "0.3s"}}


def come_and_go(url: str, names: list[str]) -> None:
    """Each name connects, then leaves: two changes each (online, reconnecting)."""
    for name in names:
        RecordingClient(url, auth={"clientName": name}).connect().close()


def ids_of(events) -> list[int]:
    return [int(event.id) for event in events]


@pytest.mark.parametrize("procfile", [False, True], ids=["presence-server", "gunicorn"])
def test_ids_increase_resume_filters_and_keepalives(make_server, procfile):
    server = make_server(QUIET, procfile=procfile)
    first = SseClient(server.url)
    assert first.status == 200
    assert first.headers["content-type"].startswith("text/event-stream")
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["x-accel-buffering"] == "no"
    first.wait(lambda c: c.retry is not None and c.last_id is not None, SHORT, "retry and id")
    assert first.retry == 1000 and first.last_id == "0"  # shutdown.reconnect_after; position
    first.wait(lambda c: len(c.comments) >= 2, SHORT, "keepalive comments")

    come_and_go(server.url, ["sse-a", "sse-b", "sse-c"])
    events = first.wait(lambda c: len(c.of()) >= 6 and c.of(), SHORT, "6 changes")
    ids = ids_of(events)
    assert ids == sorted(set(ids)) and len(ids) == 6
    assert [e.json()["eventId"] for e in events] == ids
    assert [(e.json()["name"], e.json()["status"]) for e in events] == [
        ("sse-a", "online"), ("sse-a", "reconnecting"), ("sse-b", "online"),
        ("sse-b", "reconnecting"), ("sse-c", "online"), ("sse-c", "reconnecting")]

    # resume after Last-Event-ID (header) or ?lastEventId=: exactly the missed changes
    resumed = SseClient(server.url, headers={"Last-Event-ID": str(ids[2])})
    queried = SseClient(server.url, path=f"/events?lastEventId={ids[2]}")
    for client in (resumed, queried):
        got = client.wait(lambda c: len(c.of()) >= 3 and c.of(), SHORT, "3 resumed")
        assert [(e.id, e.data) for e in got] == [(e.id, e.data) for e in events[3:]]
    # filters
    named = SseClient(server.url, path=f"/events?lastEventId={ids[0] - 1}&name=sse-b,sse-c")
    online = SseClient(server.url, path=f"/events?lastEventId={ids[0] - 1}&status=online")
    come_and_go(server.url, ["sse-b"])
    everything = first.wait(lambda c: len(c.of()) >= 8 and c.of(), SHORT, "8 changes")
    named_got = named.wait(lambda c: len(c.of()) >= 6 and c.of(), SHORT, "named")
    assert [e.data for e in named_got] == [e.data for e in everything
                                           if e.json()["name"] in ("sse-b", "sse-c")]
    online_got = online.wait(lambda c: len(c.of()) >= 4 and c.of(), SHORT, "online")
    assert [e.data for e in online_got] == [e.data for e in everything
                                            if e.json()["status"] == "online"]
    # live after the resume, in order, nothing twice
    got = resumed.wait(lambda c: len(c.of()) >= 5 and c.of(), SHORT, "live after resume")
    assert ids_of(got) == ids_of(everything)[3:]
    for client in (first, resumed, queried, named, online):
        client.close()
    for bad in ("/events?lastEventId=soon", "/events?status=away", "/events?name=" + "x" * 200):
        code, kind, body = http(server, "GET", bad)
        assert code == 400 and json.loads(body)["error"] == "invalid_query", (bad, body)


def test_a_deletion_is_an_event_with_an_id(make_server):
    server = make_server({**QUIET, "security": {"admin_token": "t0ken"}})
    stream = SseClient(server.url)
    come_and_go(server.url, ["doomed"])
    stream.wait(lambda c: len(c.of()) == 2, SHORT, "2 changes")
    assert server.request("DELETE", "/api/clients/doomed", token="t0ken")[0] == 200
    removed = stream.wait(lambda c: c.of("client_removed"), SHORT, "client_removed")[0]
    assert removed.json()["name"] == "doomed" and removed.json()["reason"] == "admin"
    assert int(removed.id) == int(stream.of()[-1].id) + 1 == removed.json()["eventId"]
    stream.close()


def test_an_id_older_than_the_backlog_gets_resync_with_a_snapshot(make_server):
    server = make_server({**QUIET, "events": {"backlog": 10, "keepalive": "0.3s"}})
    come_and_go(server.url, [f"old-{i:02d}" for i in range(15)])
    last = wait_for(lambda: (c := server.client("old-14")) and c["version"] == 2 and
                    c["transitions"][-1]["eventId"], SHORT, 0.05, "old-14 reconnecting")
    assert last == 30
    for headers in ({"Last-Event-ID": "1"}, {"Last-Event-ID": "999999"}):
        stream = SseClient(server.url, headers=headers)
        resync = stream.wait(lambda c: c.of("resync"), SHORT, "resync")[0]
        snapshot = resync.json()
        assert resync.id == str(last) and snapshot["eventId"] == last
        assert snapshot["total"] == 15 and len(snapshot["clients"]) == 15
        assert {c["status"] for c in snapshot["clients"]} == {"reconnecting"}
        come_and_go(server.url, ["old-00"])  # then live, after the snapshot's position
        live = stream.wait(lambda c: len(c.of()) >= 2 and c.of(), SHORT, "live")
        assert int(live[0].id) == last + 1 and stream.events[0].event == "resync"
        last += 2
        stream.close()
    recent = SseClient(server.url, headers={"Last-Event-ID": str(last - 10)})
    assert len(recent.wait(lambda c: len(c.of()) >= 10 and c.of(), SHORT, "10")) == 10
    assert not recent.of("resync")
    recent.close()


def seed_online(server, count: int) -> None:
    store = open_store(server.config["store"]["url"])
    for index in range(count):
        store.save(ClientRecord(name=f"burst-{index:05d}", status="online", reason="connected",
                                since=time.time(), last_seen=time.time(),
                                last_contact=time.time(), ip=None, guest=False,
                                node="test-node", connections=0, version=1))
    store.close()


def read_raw_stream(sock: socket.socket, timeout: float) -> tuple[list[int], int, bool]:
    """Read what a raw /events connection got until the server closes it: (ids of complete
    events, the stream's first id, closed)."""
    sock.settimeout(timeout)
    chunks = []
    closed = False
    deadline = time.monotonic() + 2 * timeout  # a stream still open then was not closed
    try:
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                closed = True
                break
            chunks.append(data)
    except TimeoutError:
        closed = False
    except ConnectionResetError:
        closed = True
    text = b"".join(chunks).decode("utf-8", "replace")
    ids = []
    first = int(text.split("\nid: ", 1)[1].split("\n", 1)[0]) if "\nid: " in text else -1
    for block in text.split("\n\n"):
        lines = block.split("\n")
        if any(line.startswith("event: client_status_changed") for line in lines) and any(
                line.startswith("data: {") and line.endswith("}") for line in lines):
            ids += [int(line[4:]) for line in lines if line.startswith("id: ")]
    return ids, first, closed


def test_a_stalled_subscriber_is_dropped_and_resumes_while_heartbeats_stay_fast(make_server):
    """3,000 clients go offline at once (a burst of 3,000 changes): a subscriber that never
    reads is closed when its queue fills, a reading one gets every change, a heartbeating
    client is answered all along; the stalled one then resumes from its last id, losing
    nothing."""
    server = make_server({"monitoring": {"reconnection_grace_period": "4s",
                                         "connection_check_interval": "30s",
                                         "heartbeat_interval": "10s"},
                          "events": {"queue": 1000, "keepalive": "1s"}}, start=False)
    seed_online(server, 3000)
    server.start()
    beating = RecordingClient(server.url, auth={"clientName": "beating"}).connect()
    wait_for(lambda: server.client("beating"), SHORT, 0.05, "beating registered")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    stalled.connect(("127.0.0.1", server.port))
    stalled.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")  # then never reads
    replaying = socket.socket()  # asks for the 3,000 changes of the start-up, never reads
    replaying.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    replaying.connect(("127.0.0.1", server.port))
    replaying.sendall(b"GET /events?lastEventId=0 HTTP/1.1\r\nHost: x\r\n\r\n")
    reader = SseClient(server.url)
    reader.wait(lambda c: c.last_id is not None, SHORT, "the reader's start")
    start = int(reader.last_id)
    latencies: list[float] = []
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            assert beating.heartbeat("beating", timeout=10)["status"] == "ok"
            latencies.append(time.monotonic() - sent)
            time.sleep(0.05)

    beater = threading.Thread(target=beat)
    beater.start()
    try:
        everything = reader.wait(
            lambda c: (got := c.of()) and sum(e.json()["status"] == "offline" for e in got)
            >= 3000 and got, 60, "3,000 offline changes")
    finally:
        stop.set()
        beater.join(20)
    ids, first_id, closed = read_raw_stream(stalled, timeout=SHORT)
    stalled.close()
    assert closed, "the stalled subscriber was not closed"
    assert first_id == start
    replayed, _, closed = read_raw_stream(replaying, timeout=SHORT)
    replaying.close()
    assert closed, "the subscriber stalled in its replay was not closed"
    assert replayed and replayed == list(range(1, len(replayed) + 1))
    assert "closing a subscriber" in server.log_text()
    all_ids = ids_of(everything)
    assert all_ids == sorted(set(all_ids))
    assert len(ids) < len(all_ids) and ids == all_ids[:len(ids)]
    resumed = SseClient(server.url, headers={"Last-Event-ID": str(ids[-1])})
    rest = resumed.wait(lambda c: len(c.of()) >= len(all_ids) - len(ids) and c.of(), LONG,
                        "the rest")
    assert ids + ids_of(rest) == all_ids
    assert latencies and max(latencies) < 2.0, max(latencies)
    for client in (reader, resumed):
        client.close()
    beating.close()


@pytest.mark.parametrize("procfile", [False, True], ids=["presence-server", "gunicorn"])
def test_the_graceful_shutdown_ends_open_streams(make_server, procfile):
    server = make_server({**QUIET, "events": {"keepalive": "5s"}}, procfile=procfile)
    stream = SseClient(server.url)
    client = RecordingClient(server.url, auth={"clientName": "stays"}).connect()
    stream.wait(lambda c: c.of(), SHORT, "online")
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < parse_duration(server.config["shutdown"]["timeout"]) + 1
    assert stream.ended.wait(SHORT)
    last = stream.of()[-1].json()
    assert (last["name"], last["status"], last["reason"]) == ("stays", "reconnecting",
                                                            "server_restart")
    client.close()
    stream.close()
