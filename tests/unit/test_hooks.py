"""web/hooks.py: each change to third-party code behaves like the stock code it replaces.

Differential tests, one per hook, against the stock code of the *installed* library (kept by
`Hook.patch`, or still in place when the hook is not installed in this process): the engineio
websocket writer (`writer`), engineio's ping scheduling (`pings`) and ping timeout
(`ping_timeout`), gevent-websocket's unmasking
(`frames`), python-socketio's event dispatch (`replies`); `rooms` is in test_rooms.py. Then the
version guard itself: in range it allows, outside it keeps the stock behaviour with one warning.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import engineio
import gevent
import pytest
import socketio
from engineio import packet as eio_packet
from engineio import socket as engine_socket
from geventwebsocket.websocket import Header
from presence_server.web import frames, hooks, pings, writer
from presence_server.web.sockets import Reply, ReplyServer

ROOT = Path(__file__).resolve().parents[2]


def stock(hook: hooks.Hook, owner, attribute):
    return hook.original(owner, attribute)


# --- the guard ---
@pytest.mark.parametrize("text,parsed", [
    ("4.15.1", (4, 15, 1)), ("0.10", (0, 10)), ("5.0rc1", (5, 0)), ("5.19.0.post1", (5, 19, 0)),
    ("6", (6,)), ("dev", ()),
])
def test_version_tuple(text, parsed):
    assert hooks.version_tuple(text) == parsed


def test_the_guard_allows_the_tested_range_only_and_warns_once(caplog):
    caplog.set_level(logging.WARNING, logger="presence.hooks")
    hook = hooks.Hook("demo", "a demo", (hooks.Requirement("lib", "4.9", "4.16"),))
    for version in ("4.9", "4.9.0", "4.15.99"):
        assert hook.allowed({"lib": version}) is True
    for version in ("4.8.2", "4.16.0", "4.16", "5.0.0", None):
        assert hook.allowed({"lib": version}) is False
        assert hook.status == hooks.STOCK and hook.reason
    assert "lib not installed is outside the tested range lib>=4.9,<4.16" == hook.reason
    warnings = [r.getMessage() for r in caplog.records if r.name == "presence.hooks"]
    assert warnings == ["demo hook (a demo): lib 4.8.2 is outside the tested range "
                        "lib>=4.9,<4.16, so it keeps the library's stock behaviour"]


@pytest.mark.parametrize("name", sorted(hooks.HOOKS))
def test_the_installed_libraries_are_in_every_hooks_tested_range(name):
    hook = hooks.HOOKS[name]
    assert hook.allowed(), (
        f"{hook.reason}: run tests/unit/test_hooks.py and test_rooms.py against it, then widen "
        "the range in web/hooks.py and the upper pin in setup.py")


def test_setup_py_pins_no_wider_than_the_tested_ranges():
    setup = (ROOT / "setup.py").read_text()
    for hook in hooks.HOOKS.values():
        for req in hook.requires:
            assert f'"{req.distribution}>=' in setup and f",<{req.below}" in setup, req


def test_status_reports_each_hook_with_the_versions_it_met():
    status = hooks.status()
    assert set(status) == {"writer", "pings", "ping_timeout", "frames", "replies", "rooms"}
    for body in status.values():
        assert body["status"] in (hooks.ACTIVE, hooks.STOCK)
        assert all(version for version in body["versions"].values())
        assert body["tested"]
    assert status["replies"]["status"] == hooks.ACTIVE


def test_patch_and_restore_keep_the_original():
    class Library:
        def method(self):
            return "stock"

    original = Library.__dict__["method"]
    hook = hooks.Hook("demo", "a demo", ())
    hook.patch(Library, "method", lambda self: "ours")
    assert hook.status == hooks.ACTIVE and Library().method() == "ours"
    assert hook.original(Library, "method") is original
    hook.restore()
    assert hook.status == hooks.STOCK and Library().method() == "stock"


# --- writer: engineio's Socket.poll for websockets ---
@pytest.fixture
def engine():
    return engineio.Server(async_mode="gevent", ping_interval=0.05, ping_timeout=0.05)


def new_socket(engine, sid: str, upgraded: bool = True) -> engine_socket.Socket:
    sock = engine_socket.Socket(engine, sid)
    sock.upgraded = upgraded
    return sock


def drain(sock) -> list:
    out = []
    while sock.queue.qsize():
        out.append(sock.queue.get(block=False))
    return out


def packets(n: int) -> list[eio_packet.Packet]:
    return [eio_packet.Packet(eio_packet.MESSAGE, data=f"m{i}") for i in range(n)]


@pytest.mark.parametrize("layout", [
    "p", "ppp", "N", "pNp", "ppN", "pppppppppp", "NN",
])
def test_writer_poll_returns_what_engineios_poll_returns(engine, layout):
    original = stock(hooks.WRITER, engine_socket.Socket, "poll")
    sent = {"p": None}
    results = []
    for which in ("stock", "ours"):
        sock = new_socket(engine, which)
        items = [None if ch == "N" else eio_packet.Packet(eio_packet.MESSAGE, data=f"{i}")
                 for i, ch in enumerate(layout)]
        for item in items:
            sock.queue.put(item)
        got = original(sock) if which == "stock" else writer.poll(sock)
        rest = drain(sock)
        results.append(([p.data for p in got], [None if p is None else p.data for p in rest]))
        assert sock.queue.unfinished_tasks == len(rest), "task_done per packet taken"
    assert results[0] == results[1], sent


def test_writer_poll_waits_for_a_late_packet_where_engineio_gives_up(engine):
    original = stock(hooks.WRITER, engine_socket.Socket, "poll")
    timeout = engine.ping_interval + engine.ping_timeout
    late = packets(1)[0]
    sock = new_socket(engine, "stock")
    with pytest.raises(engineio.exceptions.QueueEmpty):
        original(sock)  # engineio: a websocket writer wakes up every ping_interval + ping_timeout
    sock = new_socket(engine, "ours")
    gevent.spawn_later(timeout * 3, sock.queue.put, late)
    started = time.monotonic()
    assert writer.poll(sock) == [late]  # ours: no timeout; close() always queues None
    assert time.monotonic() - started >= timeout * 2


def test_writer_poll_keeps_engineios_timeout_for_long_polling(engine):
    sock = new_socket(engine, "polling", upgraded=False)
    with pytest.raises(engineio.exceptions.QueueEmpty):
        writer.poll(sock)
    sock.queue.put(packets(1)[0])
    assert [p.data for p in writer.poll(sock)] == ["m0"]


# --- pings: engineio's Socket.schedule_ping ---
def ping_run(engine, schedule, *, last_ping: float | None, close_before: bool = False,
             twice: bool = False) -> dict:
    sock = new_socket(engine, "s")
    sent: list[tuple[float, str]] = []
    sock.send = lambda pkt: sent.append((time.monotonic(), eio_packet.packet_names[
        pkt.packet_type]))
    sock.last_ping = last_ping
    started = time.monotonic()
    schedule(sock)
    if twice:
        schedule(sock)
    if close_before:
        sock.closed = True
    gevent.sleep(engine.ping_interval * 4)
    return {"sent": [kind for _, kind in sent],
            "not_early": all(at - started >= engine.ping_interval * 0.9 for at, _ in sent),
            "last_ping_set": sock.last_ping is not None and sock.last_ping >= time.time() - 1,
            "last_ping": None if sock.last_ping is None else "set"}


@pytest.mark.parametrize("case", [
    {"last_ping": 1.0},
    {"last_ping": None},
    {"last_ping": 1.0, "close_before": True},
    {"last_ping": 1.0, "twice": True},
], ids=["cycle-done", "cycle-pending", "closed", "twice"])
def test_pings_schedule_like_engineio(engine, case):
    original = stock(hooks.PINGS, engine_socket.Socket, "schedule_ping")
    theirs = ping_run(engine, original, **case)
    ours = ping_run(engine, pings.schedule_ping, **case)
    assert ours == theirs
    assert ours["not_early"]


def test_a_pong_read_late_because_the_process_stalled_brings_the_next_ping_forward():
    engine = engineio.Server(async_mode="gevent", ping_interval=0.6, ping_timeout=0.5)
    pings.LAG.start()
    gevent.sleep(0.15)  # the lag monitor has ticked
    sock = new_socket(engine, "s")
    sent: list[float] = []
    sock.send = lambda pkt: sent.append(time.monotonic())
    pings.send_ping(sock)
    stall(0.4)  # the pong waits unread meanwhile
    pong_read = time.monotonic()
    pings.schedule_ping(sock)
    gevent.sleep(1.0)
    assert len(sent) == 2
    assert 0.1 <= sent[1] - pong_read <= 0.45  # 0.6 s less the stall, not 0.6 s after the pong


# --- ping_timeout: engineio's Socket.check_ping_timeout ---
def stall(seconds: float) -> None:
    """Keep the hub from running for `seconds`, as a stopped or blocked process does."""
    from gevent import monkey

    monkey.get_original("time", "sleep")(seconds)


def timeout_run(engine, check, *, ping_age: float | None, closed: bool = False,
                stalled: float = 0.0) -> dict:
    """One `check_ping_timeout` on a socket whose last ping is `ping_age` old (None: none
    outstanding), after the process did not run for `stalled` of that time."""
    sock = new_socket(engine, "s")
    engine.sockets["s"] = sock
    events: list[tuple] = []
    engine.on("disconnect", lambda sid, reason: events.append((sid, reason)))
    sock.send = lambda pkt, send=sock.send: send(pkt)  # stock send: checks, then queues
    pings.LAG.start()
    gevent.sleep(0.15)  # the lag monitor has ticked
    if ping_age is not None:
        pings.send_ping(sock)  # what ours does when the ping timer fires
        drain(sock)
        sock.last_ping -= ping_age - stalled
        sock.stalled_at_ping = (sock.last_ping, sock.stalled_at_ping[1])
        stall(stalled)
    else:
        sock.last_ping = None
    sock.closed = closed
    try:
        result: object = check(sock)
    except engineio.exceptions.SocketIsClosedError:
        result = "SocketIsClosedError"
    queued = [None if p is None else eio_packet.packet_names[p.packet_type] for p in drain(sock)]
    return {"result": result, "queued": queued, "events": events, "closed": sock.closed,
            "session": "s" in engine.sockets}


@pytest.fixture
def slow_engine():
    # a timeout well above the lag monitor's 0.1 s tick (its measuring error)
    return engineio.Server(async_mode="gevent", ping_interval=0.5, ping_timeout=0.5)


@pytest.mark.parametrize("case", [
    {"ping_age": None}, {"ping_age": 0.1}, {"ping_age": 0.8}, {"ping_age": 0.8, "closed": True},
], ids=["no-ping-outstanding", "answered-in-time", "timed-out", "closed"])
def test_ping_timeout_decides_like_engineio_and_sends_no_goodbye(slow_engine, case):
    original = stock(hooks.PING_TIMEOUT, engine_socket.Socket, "check_ping_timeout")
    theirs = timeout_run(slow_engine, original, **case)
    ours = timeout_run(slow_engine, pings.check_ping_timeout, **case)
    assert ours["result"] == theirs["result"]
    assert ours["events"] == theirs["events"]
    assert ours["closed"] == theirs["closed"]
    # no CLOSE packet from either (stock asks for one; in 4.14-4.15 its own nested check drops
    # it), only the end-of-queue marker that ends the websocket or the pending long-poll
    assert ours["queued"] == theirs["queued"] and "CLOSE" not in ours["queued"]
    if case == {"ping_age": 0.8}:
        assert ours["events"] == [("s", slow_engine.reason.PING_TIMEOUT)]
        assert ours["queued"] == [None]
        assert not ours["session"]  # gone at once, like every close the server decides
        assert theirs["session"]  # stock leaves it to the monitor task


def test_ping_timeout_does_not_count_a_stall_of_the_process(slow_engine):
    original = stock(hooks.PING_TIMEOUT, engine_socket.Socket, "check_ping_timeout")
    case = {"ping_age": 0.8, "stalled": 0.6}  # overdue by the clock, 0.2 s in time the hub ran
    theirs = timeout_run(slow_engine, original, **case)
    ours = timeout_run(slow_engine, pings.check_ping_timeout, **case)
    assert theirs["result"] is False and theirs["closed"]  # stock closes the live socket
    assert ours == {"result": True, "queued": [], "events": [], "closed": False, "session": True}


def test_ping_timeout_still_closes_a_silent_socket_after_a_stall(slow_engine):
    sock = new_socket(slow_engine, "s")
    slow_engine.sockets["s"] = sock
    pings.LAG.start()
    gevent.sleep(0.15)
    pings.send_ping(sock)
    stall(0.6)
    assert pings.check_ping_timeout(sock) is True  # the pong may be waiting unread
    gevent.sleep(0.65)  # the hub runs: no pong came
    assert pings.check_ping_timeout(sock) is False and sock.closed


# --- frames: gevent-websocket's Header.mask_payload ---
@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 4096, 65537])
def test_frames_unmask_like_gevent_websocket(size):
    original = stock(hooks.FRAMES, Header, "mask_payload")
    rng = random.Random(size)
    payload = bytes(rng.randrange(256) for _ in range(size))
    header = Header(fin=True, opcode=1, length=size)
    header.mask = os.urandom(4)
    theirs, ours = original(header, payload), frames.unmask_payload(header, payload)
    assert type(theirs) is type(ours) is bytearray
    assert theirs == ours
    assert frames.unmask_payload(header, bytes(ours)) == payload  # its own inverse


# --- replies: python-socketio's Server._handle_event_internal ---
class Wire:
    """A python-socketio server fed Socket.IO packets in memory; records what it sends."""

    def __init__(self, server_class: type[socketio.Server]) -> None:
        self.server = server_class(async_mode="threading", async_handlers=False)
        self.sent: list[str] = []
        eio = self.server.eio
        eio.generate_id = lambda: "sid1"
        eio.send = lambda eio_sid, data: self.sent.append(data)
        eio.send_packet = lambda eio_sid, pkt: self.sent.append(pkt.data)
        self.server._handle_eio_connect("e1", {})
        self.server._handle_eio_message("e1", "0")
        assert self.sent == ['0{"sid":"sid1"}']
        self.sent.clear()

    def event(self, text: str) -> list[str]:
        self.server._handle_eio_message("e1", text)
        sent, self.sent = self.sent, []
        return sent


PLAIN_RESULTS = {"none": None, "value": {"status": "ok"}, "tuple": ("a", 1), "text": "x"}


def plain_handlers(server: socketio.Server) -> None:
    for event, result in PLAIN_RESULTS.items():
        server.on(event, lambda sid, data=None, result=result: result)


@pytest.fixture(params=["active", "fallback"])
def reply_mode(request):
    if request.param == "fallback":
        hooks.REPLIES.stock("forced by the test")
        yield request.param
        hooks.REPLIES.activate()
    else:
        assert hooks.REPLIES.enabled()
        yield request.param


@pytest.mark.parametrize("event", [*PLAIN_RESULTS, "unknown"])
@pytest.mark.parametrize("ack", [False, True])
def test_replyserver_sends_plain_results_as_python_socketio_does(reply_mode, event, ack):
    stock_wire, our_wire = Wire(socketio.Server), Wire(ReplyServer)
    for wire in (stock_wire, our_wire):
        plain_handlers(wire.server)
    text = f'2{"7" if ack else ""}["{event}",{{"n":1}}]'
    assert our_wire.event(text) == stock_wire.event(text)


@pytest.mark.parametrize("ack", [False, True])
@pytest.mark.parametrize("ack_only", [False, True])
def test_replyserver_sends_a_reply_as_the_ack_or_as_its_event(reply_mode, ack, ack_only):
    payload = {"status": "ok", "nextHeartbeatIn": 30000}
    our_wire, stock_wire = Wire(ReplyServer), Wire(socketio.Server)
    our_wire.server.on("heartbeat", lambda sid, data: Reply("heartbeat_response", payload,
                                                            ack_only=ack_only))

    def stock_equivalent(sid, data):  # what a stock handler does to get the same packets
        if ack:
            return payload
        if not ack_only:
            stock_wire.server.emit("heartbeat_response", payload, to=sid)
        return None

    stock_wire.server.on("heartbeat", stock_equivalent)
    text = f'2{"3" if ack else ""}["heartbeat",{{"clientName":"a"}}]'
    ours = our_wire.event(text)
    assert ours == stock_wire.event(text)
    assert len(ours) == (0 if ack_only and not ack else 1)


# --- the guard wired into each install(), in a gevent-patched child interpreter ---
GUARD_PROGRAM = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import json, logging
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    from engineio.socket import Socket
    from geventwebsocket.websocket import Header
    from presence_server.web import frames, hooks, pings, writer

    stock = {"poll": Socket.poll, "ping": Socket.schedule_ping, "mask": Header.mask_payload,
             "timeout": Socket.check_ping_timeout}
    newer = {"python-engineio": "4.16.0", "python-socketio": "5.19.0",
             "gevent-websocket": "0.11.0", "wsaccel": "0.7.0"}
    out = {"outside": [writer.install(newer), pings.install(newer), frames.install(newer),
                       writer.install(newer)],
           "unchanged": [Socket.poll is stock["poll"], Socket.schedule_ping is stock["ping"],
                         Header.mask_payload is stock["mask"],
                         Socket.check_ping_timeout is stock["timeout"]],
           "stock": {name: body["status"] for name, body in hooks.status().items()},
           "inside": [writer.install(), pings.install(), frames.install()],
           "patched": [Socket.poll is writer.poll, Socket.schedule_ping is pings.schedule_ping,
                       Header.mask_payload is frames.unmask_payload,
                       Socket.check_ping_timeout is pings.check_ping_timeout]}
    out["active"] = {name: body["status"] for name, body in hooks.status().items()}
    print(json.dumps(out))
""")


def test_each_install_keeps_the_stock_code_outside_its_range_with_one_warning():
    result = subprocess.run([sys.executable, "-c", GUARD_PROGRAM], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["outside"] == [False, False, False, False]
    assert out["unchanged"] == [True, True, True, True]
    assert {out["stock"][name] for name in ("writer", "pings", "ping_timeout", "frames")} == {
        "stock"}
    assert out["inside"] == [True, True, True] and out["patched"] == [True, True, True, True]
    # rooms turns active when the app builds its manager; replies when status() or an event asks
    assert out["active"] == {**{name: "active" for name in hooks.HOOKS}, "rooms": "stock"}
    warnings = [line for line in result.stderr.splitlines() if line.startswith("presence.hooks")]
    assert len(warnings) == 4, result.stderr  # one per hook, not one per call
    assert "python-engineio 4.16.0 is outside the tested range" in warnings[0]
