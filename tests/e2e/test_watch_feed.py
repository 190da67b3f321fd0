"""`watch` with event ids (issue 12): a snapshot and its position, then every change after it,
none lost or doubled — also while changes race the snapshot; `since` resumes; `resync` past the
backlog. Real server processes, real Socket.IO clients."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from tests.support.clients import RecordingClient
from tests.support.server import wait_for

from .helpers import LONG, SHORT, barrier
from .test_input_limits import seed_records

pytestmark = pytest.mark.timeout(180)

QUIET = {"monitoring": {"connection_check_interval": "30s", "heartbeat_interval": "10s",
                        "reconnection_grace_period": "60s"},
         "security": {"watch_snapshot_limit": 2000, "max_events_per_second": 1000}}
FEED_EVENTS = ("client_status_changed", "client_removed")


class FeedWatcher(RecordingClient):
    """Records the `watch` ack in the same ordered list as the events."""

    def watch(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        self.sio.emit("watch", payload or {}, callback=self._recorder("watch_ack"))
        return self.wait_event("watch_ack", timeout=SHORT)


def replay(watcher: RecordingClient) -> tuple[dict[str, tuple[str, int]], int, list[int]]:
    """Rebuild the state from the watcher's answer and events: every event after the answer's
    position, none twice, versions up by one.

    The server queues the answer before any event after it and the events in feed order, but
    python-engineio's client hands each received packet to a thread of its own, so the order in
    which the test's callbacks run is not the wire's: the events are put back in `eventId`
    order (the feed's), and none may be at or before the answer's position (that would be a
    change in both the snapshot and the events).
    """
    with watcher._changed:
        events = list(watcher.events)
    answers = [data for event, data, _ in events if event == "watch_ack"]
    assert len(answers) == 1, f"{len(answers)} answers"
    answer = answers[0]
    if "clients" not in answer:
        raise AssertionError("replay needs a snapshot answer")
    state = {c["name"]: (c["status"], c["version"]) for c in answer["clients"]}
    position = answer["eventId"]
    changes = sorted(((event, data) for event, data, _ in events if event in FEED_EVENTS),
                     key=lambda item: item[1]["eventId"])
    ids = [data["eventId"] for _, data in changes]
    assert len(ids) == len(set(ids)), f"an event twice: {ids}"
    for event, data in changes:
        assert data["eventId"] > position, (data, position)
        position = data["eventId"]
        if event == "client_removed":
            state.pop(data["name"], None)
            continue
        known = state.get(data["name"])
        expected = 1 if known is None else known[1] + 1
        assert data["version"] == expected, (data, known)
        state[data["name"]] = (data["status"], data["version"])
    return state, position, ids


def current(server) -> dict[str, tuple[str, int]]:
    return {c["name"]: (c["status"], c["version"]) for c in server.get("/api/clients")["clients"]}


def churn(url: str, names: list[str], stop: threading.Event, done: threading.Event,
          errors: list[BaseException]) -> None:
    """Connect and drop these clients over and over (online <-> reconnecting); end connected."""
    sockets: dict[str, RecordingClient] = {}
    rng = random.Random(hash(tuple(names)))
    try:
        while not stop.is_set():
            name = rng.choice(names)
            if name in sockets:
                sockets.pop(name).close()
            else:
                sockets[name] = RecordingClient(url, auth={"clientName": name}).connect()
        for name in names:
            if name not in sockets:
                sockets[name] = RecordingClient(url, auth={"clientName": name}).connect()
        done.wait()
    except BaseException as error:  # noqa: BLE001 - reported by the test
        errors.append(error)
    finally:
        for client in sockets.values():
            client.close()


def test_snapshots_racing_changes_lose_and_double_nothing(make_server):
    """Many clients change status while watchers join one after the other; each watcher's
    snapshot (400+ records: serialised in chunks, with yields) plus its events rebuilds the
    final state exactly, ids only increase, versions rise by one."""
    server = make_server(QUIET, start=False)
    seed_records(server, 400)
    server.start()
    names = [f"churn-{i:02d}" for i in range(24)]
    for name in names:  # every churner exists before the first snapshot
        RecordingClient(server.url, auth={"clientName": name}).connect().close()
    stop, done, errors = threading.Event(), threading.Event(), []
    threads = [threading.Thread(target=churn, args=(server.url, names[i::3], stop, done, errors))
               for i in range(3)]
    for thread in threads:
        thread.start()
    watchers: list[FeedWatcher] = []
    try:
        for _ in range(12):
            watcher = FeedWatcher(server.url).connect()
            watchers.append(watcher)
            watcher.watch()
            time.sleep(random.uniform(0.02, 0.15))
        stop.set()
        wait_for(lambda: all(current(server)[name][0] == "online" for name in names), LONG,
                 0.1, "every churner online again")
        final = current(server)
        for watcher in watchers:
            barrier(watcher)
            state, _, ids = replay(watcher)
            assert len(ids) == len(set(ids))
            assert state == final
        # the races happened: snapshots were answered at different positions, with changes
        # before and after each
        positions = {w.of("watch_ack")[0]["eventId"] for w in watchers}
        assert len(positions) >= 6, positions
        assert all(replay(w)[2] for w in watchers[:-2])
    finally:
        stop.set()
        done.set()
        for thread in threads:
            thread.join(30)
        for watcher in watchers:
            watcher.close()
    assert not errors, errors


def test_since_resumes_with_exactly_the_missed_changes(make_server):
    server = make_server(QUIET)
    first = FeedWatcher(server.url).connect()
    names = [f"resume-{i}" for i in range(5)]
    start = first.watch()["eventId"]
    clients = [RecordingClient(server.url, auth={"clientName": n}).connect() for n in names]
    for client in clients[:3]:
        client.close()
    wait_for(lambda: len(first.of("client_status_changed")) == 8, SHORT, 0.05, "8 changes")
    seen = [e["eventId"] for e in first.of("client_status_changed")]
    middle = seen[3]

    second = FeedWatcher(server.url).connect()
    answer = second.watch({"since": middle})
    assert answer["resync"] is False and "clients" not in answer
    assert answer["eventId"] == seen[-1]
    assert [c["data"] for c in answer["changes"]] == first.of("client_status_changed")[4:]
    assert {c["event"] for c in answer["changes"]} == {"client_status_changed"}
    # then live, after the answer, for both
    clients[3].close()
    later = wait_for(lambda: second.of("client_status_changed"), SHORT, 0.05, "a live change")
    assert later[0]["eventId"] == answer["eventId"] + 1
    assert later == first.of("client_status_changed")[8:9]
    # a string id works too; `names` filters the resumed changes
    third = FeedWatcher(server.url).connect()
    answer = third.watch({"since": str(start), "names": [names[0]]})
    assert [c["data"]["name"] for c in answer["changes"]] == [names[0], names[0]]
    for client in clients:
        client.close()
    for watcher in (first, second, third):
        watcher.close()


def test_since_older_than_the_backlog_answers_resync_with_a_snapshot(make_server, connect):
    server = make_server({**QUIET, "events": {"backlog": 10}})
    watcher = FeedWatcher(server.url).connect()
    watcher.watch()
    for i in range(15):
        client = RecordingClient(server.url, auth={"clientName": f"old-{i:02d}"}).connect()
        client.close()
    wait_for(lambda: len(watcher.of("client_status_changed")) == 30, LONG, 0.05, "30 changes")
    last = watcher.of("client_status_changed")[-1]["eventId"]

    for since in (0, 1, last + 1000):  # too old, too old, never given
        answer = FeedWatcher(server.url).connect().watch({"since": since})
        assert answer["resync"] is True and answer["eventId"] == last
        assert answer["total"] == 15 and len(answer["clients"]) == 15
    recent = FeedWatcher(server.url).connect().watch({"since": last - 10})
    assert recent["resync"] is False and len(recent["changes"]) == 10
    bad = connect(server.url)
    for since in ("soon", -1, 1.5, True, {"id": 1}):
        reply = bad.call("watch", {"since": since})
        assert reply["code"] == "invalid_payload", reply
