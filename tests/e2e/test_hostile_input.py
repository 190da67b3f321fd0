"""Hostile input at the edge (issue 10): names that break the store or the log, oversized and
malformed packets, binary attachments, half-sent requests. Real server processes, real sockets.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request

import pytest
import socketio

from tests.support.clients import RecordingClient
from tests.support.server import wait_for

from .helpers import SHORT, stored, wait_record

pytestmark = pytest.mark.timeout(120)

LIMIT = 20_000  # socket.max_http_buffer_size of these servers
QUIET = {"monitoring": {"connection_check_interval": "30s", "heartbeat_interval": "10s"},
         "socket": {"max_http_buffer_size": LIMIT}}


@pytest.fixture(scope="module")
def server(module_server):
    return module_server(QUIET)


def open_fds(server) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


def polling_session(server) -> str:
    with urllib.request.urlopen(f"{server.url}/socket.io/?EIO=4&transport=polling",
                                timeout=5) as response:
        body = response.read().decode()
    return json.loads(body[1:])["sid"]


def raw_request(server, head: str, body: bytes = b"", wait: float = 2.0) -> bytes:
    """Send `head` (and `body`) on a fresh TCP connection; what the server answers in `wait` s."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as conn:
        conn.sendall(head.encode() + body)
        answer = b""
        try:
            while chunk := conn.recv(4096):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return answer


def post_head(sid: str, length: int) -> str:
    return (f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nContent-Type: text/plain;charset=UTF-8\r\n"
            f"Content-Length: {length}\r\n\r\n")


def tracebacks(server) -> int:
    return server.log_text().count("Traceback")


# --- names ------------------------------------------------------------------------------------
HOSTILE_NAMES = ["evil\ud800", "forged\n[STATUS] admin: online (reason: connected)",
                 "bidi\u202eevil", "line\u2028sep"]


@pytest.mark.parametrize("auth", [
    *({"clientName": name} for name in HOSTILE_NAMES),
    *({"guest": True, "name": name} for name in HOSTILE_NAMES),
    *({"guest": True, "name": "Visitor", "guestId": name} for name in HOSTILE_NAMES),
], ids=lambda auth: "-".join(sorted(auth)) + "-" + repr(list(auth.values())[-1])[:12])
def test_hostile_names_are_refused_and_every_other_record_is_still_stored(
        server, connect, unique, auth):
    good = unique("good")
    client = connect(server.url, auth={"clientName": good})
    assert client.heartbeat(good)["status"] == "ok"

    hostile = RecordingClient(server.url, auth=auth)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            hostile.connect()
        refusal = hostile.wait_event("connect_error")
    finally:
        hostile.close()
    message = refusal.get("message") if isinstance(refusal, dict) else refusal
    assert "printable" in message, message

    # a heartbeat naming it is refused too, on a fresh socket
    other = connect(server.url)
    name = auth.get("clientName") or auth.get("guestId") or "x\ud800"
    assert other.heartbeat(name)["status"] == "error"

    wait_for(lambda: good in stored(server), SHORT, 0.1, f"{good} to reach the SQLite file")
    status, body = server.request("GET", "/api/clients")
    assert status == 200 and all(c["name"].isprintable() for c in body["clients"])
    with urllib.request.urlopen(server.url + "/", timeout=5) as page:
        assert page.status == 200
    for line in server.log_text().splitlines():
        assert not line.startswith("[STATUS] admin"), "a client forged a log line"


# --- long-polling POSTs ------------------------------------------------------------------------
def test_oversized_polling_posts_leak_no_file_descriptor(server):
    polling_session(server)
    baseline = open_fds(server)
    answers = []
    for _ in range(40):
        sid = polling_session(server)
        answers.append(raw_request(server, post_head(sid, LIMIT * 10)))  # the body never comes
    assert all(answer.startswith(b"HTTP/1.1 413") for answer in answers), answers[:2]
    assert b'"payload_too_large"' in answers[0]
    wait_for(lambda: open_fds(server) <= baseline + 3, SHORT, 0.2,
             f"open descriptors back to {baseline} (now {open_fds(server)})")
    assert tracebacks(server) == 0


@pytest.mark.parametrize("body,code", [
    (b"x-garbage", "malformed_packet"),
    (b"9", "malformed_packet"),          # an Engine.IO packet type no client may send
    (b"0{}", "malformed_packet"),        # OPEN from the client
    (b"\xff\xfe", "malformed_packet"),   # not UTF-8
])
def test_malformed_polling_posts_are_refused_without_tracebacks_or_leaks(server, body, code):
    polling_session(server)
    baseline = open_fds(server)
    before = tracebacks(server)
    for _ in range(10):
        sid = polling_session(server)
        answer = raw_request(server, post_head(sid, len(body)), body)
        assert answer.startswith(b"HTTP/1.1 400") and code.encode() in answer, answer
    wait_for(lambda: open_fds(server) <= baseline + 3, SHORT, 0.2,
             f"open descriptors back to {baseline} (now {open_fds(server)})")
    assert tracebacks(server) == before


def test_a_chunked_polling_post_is_refused(server):
    sid = polling_session(server)
    head = (f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    assert raw_request(server, head, b"5\r\n40{}\x1e\r\n").startswith(b"HTTP/1.1 411")


def test_unprintable_session_ids_and_origins_cannot_forge_log_lines(server):
    forged = "%0A%5BSTATUS%5D%20forged%3A%20online"
    assert raw_request(server, f"GET /socket.io/?EIO=4&transport=polling&sid=x{forged} HTTP/1.1"
                               "\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw_request(server, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
                               "Origin: x\r\n [STATUS] forged: online\r\n\r\n"
                       ).startswith(b"HTTP/1.1 400")
    assert not any("[STATUS] forged" in line for line in server.log_text().splitlines())


# --- Socket.IO packets -------------------------------------------------------------------------
def test_binary_attachments_count_against_the_message_limit(server, connect, transport, unique):
    name = unique("blob")
    client = connect(server.url, transport, auth={"clientName": name})
    assert client.heartbeat(name)["status"] == "ok"

    parts = [bytes(LIMIT // 2) for _ in range(4)]  # each under the limit, twice it together
    client.emit("heartbeat", {"clientName": name, "blobs": parts})

    wait_for(lambda: not client.sio.connected, SHORT, 0.05, "the server to close the socket")
    if transport == "websocket":
        assert client.wait_event("error")["code"] == "message_too_large"
    assert client.of("heartbeat_response") == []
    assert tracebacks(server) == 0


def test_more_attachments_than_any_event_needs_are_refused(server, connect, unique):
    name = unique("many")
    client = connect(server.url, auth={"clientName": name})
    client.sio.eio.send('5999-["heartbeat",{"_placeholder":true,"num":0}]')
    error = client.wait_event("error")
    assert error["code"] == "malformed_packet" and "attachments" in error["message"]
    assert client.heartbeat(name)["status"] == "ok"


def test_garbage_frames_close_a_websocket_quietly(server, connect):
    client = connect(server.url)
    before = tracebacks(server)
    client.sio.eio.ws.send("x-not-engine-io")
    wait_for(lambda: not client.sio.connected, SHORT, 0.05, "the server to close the socket")
    time.sleep(0.2)  # gevent would print its traceback right after the handler ends
    assert tracebacks(server) == before


# --- half-sent requests --------------------------------------------------------------------------
@pytest.mark.parametrize("procfile", [False, True], ids=["presence-server", "gunicorn"])
def test_half_sent_requests_are_closed_after_the_read_timeout(make_server, procfile):
    server = make_server({"server": {"read_timeout": "1s"}}, procfile=procfile)
    baseline = open_fds(server)
    conns = []
    for partial in ("GET /health HTTP/1.1\r\nHost: x", "", "POST /api/clients HTTP/1.1\r\n"
                    "Host: x\r\nContent-Length: 100\r\n\r\n{"):
        conn = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        conn.sendall(partial.encode())
        conns.append(conn)
    started = time.monotonic()
    for conn in conns:
        try:
            while conn.recv(4096):
                pass  # an error answer is fine; the connection must end
        except ConnectionResetError:
            pass
        conn.close()
    assert time.monotonic() - started < 10
    wait_for(lambda: open_fds(server) <= baseline + 1, SHORT, 0.2,
             f"open descriptors back to {baseline} (now {open_fds(server)})")
    # a websocket quiet for longer than the read timeout stays open (pings keep it alive)
    client = RecordingClient(server.url).connect()
    try:
        assert client.heartbeat("patient")["status"] == "ok"
        time.sleep(2.5)  # an observation window longer than the read timeout
        assert client.sio.connected and client.heartbeat("patient")["status"] == "ok"
        wait_record(server, "patient", "online")
    finally:
        client.close()
