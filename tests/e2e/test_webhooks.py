"""Webhooks (issue 13) from a real server process to a real local HTTP receiver: signed,
batched, in feed order; a receiver that is down gets every change once it is back; one that
hangs neither stops heartbeats nor grows the server's memory; losses past the backlog are
logged; the graceful shutdown delivers its own changes."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.clients import RecordingClient
from tests.support.server import free_port, wait_for
from tests.support.sse import SseClient
from tests.unit.test_webhooks import readme_verifier

from .helpers import LONG, SHORT

pytestmark = pytest.mark.timeout(180)

SECRET = "whsec-test"
QUIET = {"monitoring": {"connection_check_interval": "30s", "heartbeat_interval": "10s",
                        "reconnection_grace_period": "60s"},
         "events": {"keepalive": "0.3s"}}  # SseClient.close waits for the stream's next write


class Receiver:
    """A real HTTP server in a thread that records every POST. `mode`: `ok` answers 204,
    `hang` accepts and never answers, `gate` holds each request until `gate` is set; the first
    `refuse` POSTs are answered 503 (their bodies kept in `refused`)."""

    def __init__(self, port: int | None = None, mode: str = "ok") -> None:
        self.port = port or free_port()
        self.mode = mode
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.hung = 0
        self.refuse = 0
        self.refused: list[bytes] = []
        self.gate = threading.Event()
        self.release = threading.Event()  # ends every hanging request (teardown)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/in?key=abc"

    def up(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.mode == "hang":
                    with receiver._lock:
                        receiver.hung += 1
                    receiver.release.wait(60)
                    return
                if receiver.mode == "gate":
                    receiver.gate.wait(30)
                with receiver._lock:
                    refused = receiver.refuse > 0
                    if refused:
                        receiver.refuse -= 1
                        receiver.refused.append(body)
                    else:
                        receiver.posts.append((dict(self.headers.items()), body))
                self.send_response(503 if refused else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.release.set()
        self.gate.set()
        self.down()

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for _, body in self.posts]

    def ids(self) -> list[int]:
        """Every eventId received, in arrival order (duplicates kept)."""
        return [change["data"]["eventId"] for body in self.bodies() for change in body["changes"]]


@pytest.fixture
def receivers():
    """Receivers for one test (request it before `make_server`: servers stop first)."""
    made: list[Receiver] = []

    def make(**options: Any) -> Receiver:
        receiver = Receiver(**options)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


def hooks(receiver: Receiver, **keys: Any) -> dict[str, Any]:
    return {**QUIET, "webhooks": {"url": receiver.url, "secret": SECRET, **keys}}


def status(server) -> dict[str, Any]:
    return server.get("/api/stats")["webhooks"]


def come_and_go(url: str, names: list[str]) -> None:
    """Each name connects, then leaves: two changes each (online, reconnecting)."""
    for name in names:
        RecordingClient(url, auth={"clientName": name}).connect().close()


def feed_ids(server, count: int) -> list[int]:
    """The eventIds of the feed's first `count` changes, as `/events` replays them."""
    stream = SseClient(server.url, headers={"Last-Event-ID": "0"})
    try:
        events = stream.wait(lambda c: len(c.of()) >= count and c.of(), SHORT, f"{count} changes")
        return [int(event.id) for event in events]
    finally:
        stream.close()


def test_signed_batched_in_feed_order(receivers, make_server):
    receiver = receivers(mode="gate").up()
    server = make_server(hooks(receiver, batch=5, timeout="10s"))
    assert status(server)["url_host"] == f"127.0.0.1:{receiver.port}"  # no path, no query
    come_and_go(server.url, ["wh-first"])  # its first POST is held at the receiver...
    come_and_go(server.url, [f"wh-{n}" for n in range(10)])  # ...while these wait: batches
    wait_for(lambda: status(server)["pending"] >= 20, SHORT, 0.05, "20 changes waiting")
    receiver.gate.set()
    expected = feed_ids(server, 22)
    wait_for(lambda: len(set(receiver.ids())) >= 22, SHORT, 0.05, "22 changes received")

    assert receiver.ids() == expected  # each once, in feed order, across POSTs
    bodies = receiver.bodies()
    assert all(1 <= len(body["changes"]) <= 5 for body in bodies)
    assert max(len(body["changes"]) for body in bodies) == 5  # batched under load
    assert {body["node"] for body in bodies} == {"test-node"}
    first = bodies[0]["changes"][0]
    assert first["event"] == "client_status_changed"
    assert first["data"]["name"] == "wh-first" and first["data"]["status"] == "online"
    verified = readme_verifier()
    for headers, body in receiver.posts:
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Presence-Signature"].startswith("sha256=")
        assert verified(SECRET.encode(), headers, body)
        assert not verified(b"not-the-secret", headers, body)
        assert not verified(SECRET.encode(), headers, body + b" ")
    state = status(server)
    assert state["delivered_event_id"] == expected[-1] and state["pending"] == 0
    assert state["signed"] is True and state["failures"] == 0 and state["lost"] == 0


def test_receiver_down_then_up_gets_every_change(receivers, make_server):
    receiver = receivers()  # not listening yet: connections are refused
    server = make_server(hooks(receiver, queue=4, batch=3, timeout="1s", backoff="0.1s",
                               backoff_max="0.5s"))
    down_at = time.monotonic()
    come_and_go(server.url, [f"down-{n}" for n in range(15)])  # 30 changes: the queue overflows
    most = [0]

    def down_long_enough() -> bool:
        state = status(server)
        most[0] = max(most[0], state["pending"])
        return state["failures"] >= 3 and time.monotonic() - down_at >= 5

    wait_for(down_long_enough, LONG, 0.1, "5 s of failed POSTs")
    state = status(server)
    assert state["catching_up"] and state["overflows"] >= 1 and state["last_error"]
    assert most[0] <= 4 + 3  # webhooks.queue + one batch in flight
    receiver.up()
    expected = feed_ids(server, 30)
    wait_for(lambda: set(receiver.ids()) >= set(expected), LONG, 0.1, "every change")

    got = receiver.ids()
    first_seen = list(dict.fromkeys(got))
    assert first_seen == expected  # nothing missing, in order (a retry may repeat a batch)
    wait_for(lambda: status(server)["pending"] == 0 and not status(server)["catching_up"],
             SHORT, 0.1, "drained")
    state = status(server)
    assert state["lost"] == 0 and state["failing_for"] == 0
    log = server.log_text()
    assert log.count("webhooks: POST to 127.0.0.1:") == 1, log  # one line per failure streak
    assert "answers again" in log and "re-read from the feed" in log
    assert "key=abc" not in log  # never the URL's query (it may hold a token)

    come_and_go(server.url, ["down-after"])  # live again, through the queue
    wait_for(lambda: len(set(receiver.ids())) >= 32, SHORT, 0.1, "live changes")


def test_5xx_answers_are_retried_and_the_same_changes_sent_again(receivers, make_server):
    receiver = receivers()
    receiver.refuse = 3
    receiver.up()
    server = make_server(hooks(receiver, batch=50, backoff="0.1s", backoff_max="0.2s"))
    come_and_go(server.url, ["five-a", "five-b"])
    wait_for(lambda: len(receiver.ids()) >= 4, SHORT, 0.05, "4 changes accepted")
    refused = {change["data"]["eventId"] for body in receiver.refused
               for change in json.loads(body)["changes"]}
    assert len(receiver.refused) == 3 and refused <= set(receiver.ids())  # sent again
    assert receiver.ids() == sorted(set(receiver.ids()))
    state = status(server)
    assert state["failures"] == 3 and state["last_error"] == "HTTP 503"
    assert state["failing_for"] == 0 and state["posts"] >= 1


def test_hanging_receiver_neither_stops_heartbeats_nor_grows_memory(receivers, make_server):
    receiver = receivers(mode="hang").up()
    server = make_server(hooks(receiver, queue=10, batch=5, timeout="0.5s", backoff="0.1s",
                               backoff_max="0.3s"))
    client = RecordingClient(server.url, auth={"clientName": "hb-steady"}).connect()
    try:
        answered = 0
        most = 0
        for round_ in range(30):
            come_and_go(server.url, [f"hang-{round_}"])
            reply = client.heartbeat("hb-steady", ack=True, timeout=SHORT)
            answered += reply is not None and reply["status"] == "ok"
            most = max(most, status(server)["pending"])
        assert answered == 30
        assert most <= 10 + 5  # webhooks.queue + one batch in flight
        wait_for(lambda: status(server)["failures"] >= 2, SHORT, 0.1, "retried POSTs")
        assert receiver.hung >= 2
        state = status(server)
        assert state["posts"] == 0 and state["failures"] >= 2 and state["overflows"] >= 1
        assert state["last_error"] == "no answer within 0.5s"
    finally:
        client.close()
    # the graceful shutdown tries to flush, but not past shutdown.timeout (8 s in these tests)
    assert server.stop(timeout=12) == 0
    assert "webhooks: shutdown: " in server.log_text()


def test_changes_older_than_the_backlog_are_logged_lost_and_delivery_goes_on(
        receivers, make_server):
    receiver = receivers()
    overrides = hooks(receiver, queue=3, batch=2, timeout="1s", backoff="0.1s",
                      backoff_max="0.3s")
    server = make_server(overrides | {"events": {"backlog": 10, "keepalive": "0.3s"}})
    come_and_go(server.url, [f"lost-{n}" for n in range(15)])  # 30 changes, 10 kept
    wait_for(lambda: status(server)["failures"] >= 2, SHORT, 0.1, "failed POSTs")
    receiver.up()
    wait_for(lambda: status(server)["lost"] > 0 and status(server)["pending"] == 0,
             LONG, 0.1, "the loss handled")
    state = status(server)
    log = server.log_text()
    assert f"webhooks: LOST {state['lost']} changes" in log, log
    got = receiver.ids()
    assert got and got == sorted(got)
    come_and_go(server.url, ["lost-after"])
    wait_for(lambda: any(change["data"]["name"] == "lost-after" for body in receiver.bodies()
                         for change in body["changes"]), SHORT, 0.1, "a later change")


@pytest.mark.parametrize("procfile", [False, True], ids=["presence-server", "gunicorn"])
def test_graceful_shutdown_delivers_its_own_changes(receivers, make_server, procfile):
    receiver = receivers().up()
    server = make_server(hooks(receiver, secret=None), procfile=procfile)
    assert status(server)["signed"] is False
    assert f"POSTs to 127.0.0.1:{receiver.port} are NOT signed" in server.log_text()
    client = RecordingClient(server.url, auth={"clientName": "bye"}).connect()
    wait_for(lambda: len(receiver.ids()) >= 1, SHORT, 0.05, "online delivered")
    try:
        assert server.stop() == 0
    finally:
        client.close()
    last = receiver.bodies()[-1]["changes"][-1]["data"]
    assert (last["name"], last["status"], last["reason"]) == ("bye", "reconnecting",
                                                              "server_restart")
    assert all("X-Presence-Signature" not in headers for headers, _ in receiver.posts)
    assert all(headers["X-Presence-Timestamp"].isdigit() for headers, _ in receiver.posts)
