"""PresenceClient against a tiny real Socket.IO server (tests/client/tiny_server.py).

These pin the client's own rules: registration, heartbeats at the advised period, answers to the
server, reconnection (backoff, shutdown notices, unanswered heartbeats), the request API, close.
"""

from __future__ import annotations

import threading
import time

import pytest

from presence_client import (
    NotConnectedError,
    PresenceClient,
    PresenceError,
    RequestTimeout,
    State,
    StateChange,
)

from .helpers import Recorder, free_port
from .tiny_server import TinyServer


def states(recorder: Recorder) -> list[str]:
    return [change.state.value for change in recorder.items]


# ------------------------------------------------------------------ construction


@pytest.mark.parametrize("url", ["localhost:5000", "ftp://x", ""])
def test_bad_url_is_rejected(url: str) -> None:
    with pytest.raises(ValueError):
        PresenceClient(url, "alice")


@pytest.mark.parametrize("kwargs", [
    {"heartbeat_timeout": 0}, {"connect_timeout": -1}, {"heartbeat_interval": 0},
    {"shutdown_spread": -1},
])
def test_bad_settings_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        PresenceClient("http://127.0.0.1:1", "alice", **kwargs)


def test_empty_name_is_rejected() -> None:
    with pytest.raises(ValueError):
        PresenceClient("http://127.0.0.1:1", " ")


def test_state_values_compare_as_strings() -> None:
    assert State.ONLINE == "online" and str(State.RECONNECTING) == "reconnecting"


def test_close_before_start_stops_and_forbids_start() -> None:
    client = PresenceClient("http://127.0.0.1:1", "alice")
    assert client.state == "connecting"
    client.close()
    assert client.state == "stopped"
    with pytest.raises(PresenceError):
        client.start()


# ------------------------------------------------------------------ registration & heartbeats


def test_registers_by_name_with_token_and_heartbeats_at_the_advised_period(
        tiny_server: TinyServer, make_client) -> None:
    tiny_server.next_heartbeat_in_ms = 200
    client = make_client(tiny_server.url, "alice", token="t0k")
    client.start()
    assert client.wait_online(10)
    beats = tiny_server.wait_count("heartbeat", 4)
    connect = tiny_server.seen("connect")[0]
    assert connect.data == {"clientName": "alice", "token": "t0k"}
    assert all(b.data["clientName"] == "alice" and b.data["timestamp"].endswith("Z")
               for b in beats)
    gaps = [b.at - a.at for a, b in zip(beats, beats[1:], strict=False)]
    assert all(0.15 <= gap < 1.5 for gap in gaps), gaps  # 200 ms advised, not 30 s default
    assert client.heartbeat_interval == pytest.approx(0.2)
    assert client.last_heartbeat_reply["status"] == "ok"
    assert tiny_server.seen("reconnection_success") == []  # only after a *re*connect


def test_first_heartbeat_goes_out_at_once_and_default_is_30s(
        tiny_server: TinyServer, make_client) -> None:
    client = make_client(tiny_server.url, "alice")
    assert client.heartbeat_interval == 30.0  # until the server advises
    assert client.reason == "not started"
    client.start()
    tiny_server.wait_count("heartbeat", 1)
    assert client.wait_for(State.ONLINE, 5)


def test_override_beats_the_servers_advice(tiny_server: TinyServer, make_client) -> None:
    tiny_server.next_heartbeat_in_ms = 60000
    client = make_client(tiny_server.url, "alice", heartbeat_interval=0.1)
    client.start()
    tiny_server.wait_count("heartbeat", 4)
    assert client.heartbeat_interval == 0.1


def test_no_token_key_without_a_token(tiny_server: TinyServer, make_client) -> None:
    make_client(tiny_server.url, "bob").start()
    connect = tiny_server.wait_count("connect", 1)[0]
    assert connect.data == {"clientName": "bob"}


def test_guest_gets_an_id_heartbeats_as_it_and_keeps_it_on_reconnect(
        tiny_server: TinyServer, make_client) -> None:
    registered = Recorder()
    client = make_client(tiny_server.url, "Visitor", guest=True)
    client.on("guest_registered", registered)
    client.start()
    assert client.wait_online(10)
    assert client.guest_id == "guest-1" and client.identity == "guest-1"
    assert tiny_server.seen("connect")[0].data == {"guest": True, "name": "Visitor"}
    registered.wait_for(lambda items: items == [
        {"guestId": "guest-1", "name": "Visitor", "resumeToken": "token-guest-1"}])
    assert client.guest_resume_token == "token-guest-1"
    tiny_server.wait_for(lambda: any(b.data["clientName"] == "guest-1"
                                     for b in tiny_server.seen("heartbeat")))

    tiny_server.disconnect_all()
    connects = tiny_server.wait_count("connect", 2)
    assert connects[1].data == {"guest": True, "name": "Visitor", "guestId": "guest-1",
                                "resumeToken": "token-guest-1"}
    success = tiny_server.wait_count("reconnection_success", 1)
    assert success[0].data == {"clientName": "guest-1"}
    assert client.guest_id == "guest-1"


def test_guest_resumes_an_id_from_an_earlier_run_with_its_token(
        tiny_server: TinyServer, make_client) -> None:
    client = make_client(tiny_server.url, "Visitor", guest=True, guest_id="guest-7",
                         guest_resume_token="token-guest-7")
    client.start()
    assert client.wait_online(10)
    assert tiny_server.seen("connect")[0].data == {
        "guest": True, "name": "Visitor", "guestId": "guest-7", "resumeToken": "token-guest-7"}
    assert client.guest_id == "guest-7" and client.guest_resume_token == "token-guest-7"


def test_guest_takes_the_new_id_and_token_when_its_resume_is_refused(
        tiny_server: TinyServer, make_client) -> None:
    client = make_client(tiny_server.url, "Visitor", guest=True, guest_id="guest-7",
                         guest_resume_token="stale")
    client.start()
    assert client.wait_online(10)
    assert client.guest_id == "guest-1" and client.guest_resume_token == "token-guest-1"
    tiny_server.wait_for(lambda: any(b.data["clientName"] == "guest-1"
                                     for b in tiny_server.seen("heartbeat")))

    tiny_server.disconnect_all()  # and the new id is the one it keeps from then on
    connects = tiny_server.wait_count("connect", 2)
    assert connects[1].data == {"guest": True, "name": "Visitor", "guestId": "guest-1",
                                "resumeToken": "token-guest-1"}
    assert client.wait_online(10) and client.guest_id == "guest-1"


def test_a_guest_token_needs_its_guest_id() -> None:
    with pytest.raises(ValueError, match="guest_resume_token needs the guest_id"):
        PresenceClient("http://127.0.0.1:1", "Visitor", guest=True, guest_resume_token="t")


def test_guest_without_registration_counts_as_a_failed_connection(
        tiny_server: TinyServer, make_client) -> None:
    tiny_server.sio.handlers["/"]["connect"] = lambda sid, environ, auth=None: tiny_server.record(
        "connect", sid, auth)  # a server that never sends guest_registered
    client = make_client(tiny_server.url, "Visitor", guest=True, heartbeat_timeout=0.3)
    client.start()
    tiny_server.wait_count("connect", 3)  # keeps trying, never online
    assert client.state == State.CONNECTING
    assert tiny_server.seen("heartbeat") == []


def test_answers_connection_check_by_event_and_by_ack(
        tiny_server: TinyServer, make_client) -> None:
    checks = Recorder()
    client = make_client(tiny_server.url, "alice")
    client.on("connection_check", checks)
    client.start()
    assert client.wait_online(10)
    sid = next(iter(tiny_server.sids))
    acked = Recorder()
    check = {"client_name": "alice", "timestamp": "now", "expect_response_within": 30000}
    tiny_server.sio.emit("connection_check", check, to=sid, callback=acked)
    response = tiny_server.wait_count("connection_check_response", 1)[0]
    assert response.data["client_name"] == "alice" and response.data["timestamp"]
    acked.wait_for(lambda items: items and items[0]["client_name"] == "alice")
    checks.wait_for(lambda items: items == [check])


# ------------------------------------------------------------------ reconnecting


def test_reconnects_after_a_drop_and_says_so(tiny_server: TinyServer, make_client) -> None:
    changes = Recorder()
    client = make_client(tiny_server.url, "alice")
    client.on_state_change(changes)
    client.start()
    assert client.wait_online(10)
    tiny_server.disconnect_all()
    changes.wait_for(lambda items: states(changes)[-3:] == ["online", "reconnecting", "online"])
    assert changes.items[-1].reason == "reconnected"
    assert all(isinstance(c, StateChange) for c in changes.items)
    success = tiny_server.wait_count("reconnection_success", 1)[0]
    assert success.data == {"clientName": "alice"}
    beats = tiny_server.wait_for(lambda: [b for b in tiny_server.seen("heartbeat")
                                          if b.sid == success.sid])
    assert beats  # heartbeating again, on the new socket


def test_first_connect_retries_until_the_server_appears(make_client) -> None:
    port = free_port()
    failures = Recorder()
    client = make_client(f"http://127.0.0.1:{port}", "early")
    client.on("connect_error", failures)
    client.start()
    failures.wait_for(lambda items: len(items) >= 3)  # refused, again and again
    assert client.state == State.CONNECTING
    assert all(0 < f["retryIn"] <= 0.5 for f in failures.items)
    server = TinyServer().start(port)
    try:
        assert client.wait_online(10)
        assert server.wait_count("heartbeat", 1)[0].data["clientName"] == "early"
    finally:
        client.close()
        server.stop()


def test_refused_connection_reports_the_reason_and_keeps_trying(
        tiny_server: TinyServer, make_client) -> None:
    tiny_server.refuse = "bad token"
    failures = Recorder()
    client = make_client(tiny_server.url, "alice")
    client.on("connect_error", failures)
    client.start()
    failures.wait_for(lambda items: len(items) >= 2)
    assert failures.items[0]["message"] == "bad token"
    tiny_server.refuse = None
    assert client.wait_online(10)


def test_error_reply_with_should_reconnect_replaces_the_connection(
        tiny_server: TinyServer, make_client) -> None:
    tiny_server.next_heartbeat_in_ms = 100
    replies = iter([{"status": "error", "message": "unknown client", "shouldReconnect": True}])
    ok = {"status": "ok", "timestamp": 0, "message": "ok", "nextHeartbeatIn": 100}
    tiny_server.heartbeat_reply = lambda data: next(replies, ok)
    changes = Recorder()
    client = make_client(tiny_server.url, "alice")
    client.on_state_change(changes)
    client.start()
    changes.wait_for(lambda items: "reconnecting" in states(changes))
    assert "heartbeat refused: unknown client" in changes.items[1].reason
    assert tiny_server.wait_count("connect", 2)
    assert client.wait_online(10)


def test_error_reply_without_should_reconnect_keeps_the_connection(
        tiny_server: TinyServer, make_client) -> None:
    tiny_server.heartbeat_reply = lambda data: {"status": "error", "message": "slow down"}
    client = make_client(tiny_server.url, "alice", heartbeat_interval=0.05)
    replies = Recorder()
    client.on("heartbeat_response", replies)
    client.start()
    replies.wait_for(lambda items: len(items) >= 3)
    assert client.state == State.ONLINE
    assert len(tiny_server.seen("connect")) == 1


def test_unanswered_heartbeat_on_a_live_connection_is_detected(
        tiny_server: TinyServer, make_client) -> None:
    """Done criterion 4: the server keeps the TCP connection but stops acking heartbeats."""
    tiny_server.next_heartbeat_in_ms = 100
    changes = Recorder()
    client = make_client(tiny_server.url, "alice", heartbeat_timeout=0.5)
    client.on_state_change(changes)
    client.start()
    assert client.wait_online(10)
    tiny_server.wait_count("heartbeat", 2)
    first_sid = tiny_server.seen("connect")[0].sid

    tiny_server.ack_heartbeats = False
    changes.wait_for(lambda items: states(changes)[-1:] == ["reconnecting"])
    # this reason means the socket was still up when the deadline passed: the client alone noticed
    assert changes.items[-1].reason == "no heartbeat reply within 0.5s"
    unanswered = tiny_server.seen("heartbeat")[-1]

    tiny_server.ack_heartbeats = True
    new_connect = tiny_server.wait_for(
        lambda: [c for c in tiny_server.seen("connect") if c.sid != first_sid])
    assert client.wait_online(10)
    assert new_connect[0].at - unanswered.at >= 0.5  # not before the reply deadline
    tiny_server.wait_count("reconnection_success", 1)


def test_server_shutdown_waits_reconnect_after_and_jitter(
        tiny_server: TinyServer, make_client) -> None:
    notices = Recorder()
    changes = Recorder()
    client = make_client(tiny_server.url, "alice", random_source=lambda: 0.5)
    client.on("server_shutdown", notices)
    client.on_state_change(changes)
    client.start()
    assert client.wait_online(10)
    notice = {"message": "bye", "timestamp": "now", "reconnectAfter": 400}
    sent_at = time.monotonic()
    tiny_server.emit_all("server_shutdown", notice)
    changes.wait_for(lambda items: states(changes)[-1:] == ["reconnecting"])
    assert changes.items[-1].reason.startswith("server shutdown")
    tiny_server.disconnect_all()  # as the server does after notice_delay
    second = tiny_server.wait_count("connect", 2)[1]
    # 0.4 s reconnectAfter + 0.5 * max(1 s, 0.4 s) spread = 0.9 s after the notice
    assert second.at - sent_at >= 0.9
    assert second.at - sent_at < 5
    assert notices.items == [notice]
    assert client.wait_online(10)


def test_shutdown_notice_alone_makes_the_client_reconnect_later(
        tiny_server: TinyServer, make_client) -> None:
    """A server that announces shutdown but keeps the socket: the client leaves, comes back."""
    client = make_client(tiny_server.url, "alice", shutdown_spread=0.0)
    client.start()
    assert client.wait_online(10)
    sent_at = time.monotonic()
    tiny_server.emit_all("server_shutdown", {"message": "bye", "reconnectAfter": 300})
    second = tiny_server.wait_count("connect", 2)[1]
    assert second.at - sent_at >= 0.3
    assert client.wait_online(10)


@pytest.mark.slow
def test_a_crowd_spreads_its_reconnects_after_a_shutdown_notice(
        tiny_server: TinyServer, make_client) -> None:
    count = 30
    clients = [make_client(tiny_server.url, f"c{i}", heartbeat_interval=5.0)
               for i in range(count)]
    for client in clients:
        client.start()
    for client in clients:
        assert client.wait_online(20)
    first = len(tiny_server.seen("connect"))
    sent_at = time.monotonic()
    tiny_server.emit_all("server_shutdown", {"message": "bye", "reconnectAfter": 1000})
    tiny_server.disconnect_all()
    again = tiny_server.wait_for(
        lambda: len(tiny_server.seen("connect")) >= first + count
        and tiny_server.seen("connect")[first:], timeout=30)
    offsets = sorted(c.at - sent_at for c in again)
    assert offsets[0] >= 1.0  # nobody before reconnectAfter
    assert offsets[-1] - offsets[0] >= 0.4  # spread over the 1 s window, not one instant
    per_50ms: dict[int, int] = {}
    for offset in offsets:
        per_50ms[int(offset / 0.05)] = per_50ms.get(int(offset / 0.05), 0) + 1
    assert max(per_50ms.values()) <= count // 3


# ------------------------------------------------------------------ requests & watching


def test_status_of_and_its_errors(tiny_server: TinyServer, make_client) -> None:
    client = make_client(tiny_server.url, "alice")
    with pytest.raises(NotConnectedError):
        client.status_of()
    client.start()
    assert client.wait_online(10)
    assert client.status_of()["asked"] == "alice"
    assert client.status_of("bob")["clientStatus"] == "online"
    assert tiny_server.seen("client_status_request")[-1].data == {"clientName": "bob"}
    release = threading.Event()
    tiny_server.sio.handlers["/"]["client_status_request"] = lambda sid, data: release.wait(10)
    try:
        with pytest.raises(RequestTimeout):
            client.status_of(timeout=0.2)
    finally:
        release.set()


def test_watch_snapshot_events_and_rewatch_after_reconnect(
        tiny_server: TinyServer, make_client) -> None:
    changes, snapshots = Recorder(), Recorder()
    client = make_client(tiny_server.url, "alice")
    assert client.watch(changes, on_snapshot=snapshots) is None  # not online yet
    client.start()
    snapshots.wait_for(lambda items: items and items[0]["clients"][0]["name"] == "alice")
    event = {"name": "bob", "status": "offline", "previous": "online", "reason": "kicked"}
    tiny_server.emit_all("client_status_changed", event)
    changes.wait_for(lambda items: items == [event])
    tiny_server.disconnect_all()
    snapshots.wait_for(lambda items: len(items) >= 2)
    assert len(tiny_server.seen("watch")) == 2
    assert client.watch(Recorder())["clients"]  # online: the snapshot comes back at once
    client.unwatch()
    tiny_server.wait_count("unwatch", 1)


def test_any_server_event_reaches_on_handlers(tiny_server: TinyServer, make_client) -> None:
    errors, others = Recorder(), Recorder()
    client = make_client(tiny_server.url, "alice")
    client.on("error", errors)

    @client.on("client_reconnected")
    def reconnected(data) -> None:
        others(data)

    client.start()
    assert client.wait_online(10)
    tiny_server.emit_all("error", {"code": "rate_limited", "message": "too fast", "event": "x"})
    tiny_server.emit_all("client_reconnected", {"clientName": "bob", "timestamp": "t"})
    errors.wait_for(lambda items: items and items[0]["code"] == "rate_limited")
    others.wait_for(lambda items: items == [{"clientName": "bob", "timestamp": "t"}])


def test_callbacks_may_call_back_into_the_client(tiny_server: TinyServer, make_client) -> None:
    answers = Recorder()
    client = make_client(tiny_server.url, "alice")

    @client.on_state_change
    def on_change(change: StateChange) -> None:
        if change.state == State.ONLINE:
            answers(client.status_of())  # blocks for the ack: must not stall the socket

    client.start()
    answers.wait_for(lambda items: items and items[0]["serverStatus"] == "online")


def test_a_failing_callback_does_not_hurt_the_client(tiny_server: TinyServer,
                                                     make_client) -> None:
    client = make_client(tiny_server.url, "alice", heartbeat_interval=0.05)
    client.on_state_change(lambda change: 1 / 0)
    client.on("heartbeat_response", lambda reply: 1 / 0)
    client.start()
    assert client.wait_online(10)
    tiny_server.wait_count("heartbeat", 3)
    assert client.state == State.ONLINE


# ------------------------------------------------------------------ close


def test_close_stops_for_good(tiny_server: TinyServer, make_client) -> None:
    changes = Recorder()
    client = make_client(tiny_server.url, "alice")
    client.on_state_change(changes)
    client.start()
    assert client.wait_online(10)
    client.close()
    assert client.state == State.STOPPED
    assert states(changes)[-1] == "stopped"  # callbacks delivered before close returns
    assert client.wait(0)
    assert not client._thread.is_alive()  # nothing left that could reconnect
    tiny_server.wait_count("disconnect", 1)
    assert len(tiny_server.seen("connect")) == 1
    client.close()  # idempotent


def test_close_while_retrying_and_from_a_callback(make_client) -> None:
    failures = Recorder()
    client = make_client(f"http://127.0.0.1:{free_port()}", "alice")
    client.on("connect_error", failures)
    client.on("connect_error", lambda data: client.close())
    client.start()
    assert client.wait(10)
    assert client.state == State.STOPPED and failures.items


def test_context_manager(tiny_server: TinyServer) -> None:
    with PresenceClient(tiny_server.url, "ctx") as client:
        assert client.wait_online(10)
        assert "online" in repr(client)
    assert client.state == State.STOPPED
