"""Engine.IO's ping timeout (the `ping_timeout` hook, web/pings.py), seen from real clients.

- A server paused while a pong is on its way must not time that pong out: the server sends a
  ping; the moment a python-socketio client (default settings) gets it, the test stops the server
  (SIGSTOP) and only then lets the client answer. The pong waits unread on the socket for longer
  than `ping_timeout`; then the server continues (SIGCONT). The ping is overdue by the clock, but
  only because the server did not run: the client stays connected and online. The pause stays
  under `ping_interval + ping_timeout`, after which the client itself gives up on a silent server
  (which is also why the next ping must come sooner after the pause: its wait is shortened by
  the pause). No other client is connected meanwhile: the pause would outlast their patience.
- A client that really stops answering pings is closed after `ping_timeout`, and with no
  Engine.IO CLOSE packet (`1`) or Socket.IO DISCONNECT (`41`): seen at the wire by hand-written
  Engine.IO clients that never answer a ping.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import socketio
from engineio import packet

from tests.support import raw_engineio
from tests.support.server import wait_for

from .helpers import SHORT, wait_record

pytestmark = pytest.mark.timeout(90)

PING_INTERVAL, PING_TIMEOUT, PAUSE = 3.0, 1.0, 2.0  # PING_TIMEOUT < PAUSE < the sum
CONFIG = {
    "socket": {"ping_interval": f"{PING_INTERVAL:g}s", "ping_timeout": f"{PING_TIMEOUT:g}s"},
    # the silence limit (30 s) and the connection check stay out of the way
    "monitoring": {"heartbeat_interval": "10s", "connection_check_interval": "30s"},
}
ENGINEIO_CLOSE, SOCKETIO_DISCONNECT = "1", "41"


@pytest.fixture(scope="module")
def server(module_server):
    return module_server(CONFIG)


def stopped(pid: int) -> bool:
    """True once the kernel has stopped process `pid` (state T in /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] in "Tt"


class DefaultClient:
    """python-socketio with its default settings (it reconnects by itself), recording events."""

    def __init__(self, url: str, transport: str, name: str) -> None:
        self.sio = socketio.Client()
        self.events: list[str] = []
        self.pings = 0
        for event in ("connect", "disconnect", "connect_error"):
            self.sio.on(event, lambda *_, event=event: self.events.append(event))
        self.sio.connect(url, transports=[transport], auth={"clientName": name},
                         wait_timeout=10)
        self.on_ping = lambda: None
        eio, original = self.sio.eio, self.sio.eio._receive_packet

        def receive(pkt) -> None:
            if pkt.packet_type == packet.PING:
                self.pings += 1
                self.on_ping()  # before the pong goes out
            original(pkt)

        eio._receive_packet = receive


@pytest.mark.slow
def test_a_pause_while_a_pong_is_on_its_way_keeps_the_socket(server, unique, transport):
    name = unique("paused")
    client = DefaultClient(server.url, transport, name)
    pid = server.process.pid
    paused = threading.Event()
    try:
        sid = client.sio.get_sid()
        wait_record(server, name, "online", "connected", connections=1)

        def pause_server() -> None:
            if paused.is_set():
                return
            paused.set()
            server.signal(signal.SIGSTOP)
            wait_for(lambda: stopped(pid), SHORT, 0.005, "the server to stop")
            threading.Timer(PAUSE, server.signal, (signal.SIGCONT,)).start()

        client.on_ping = pause_server
        wait_for(paused.is_set, PING_INTERVAL + SHORT, 0.05, "a ping, then the pause")
        wait_for(lambda: not stopped(pid), SHORT, 0.05, "the server to continue")
        pings = client.pings
        # two more ping cycles: the socket is alive, its pongs are answered again
        wait_for(lambda: client.pings >= pings + 2, 2 * PING_INTERVAL + SHORT, 0.05,
                 f"two more pings; client events {client.events}")

        assert client.events == ["connect"], "the socket was closed after the pause"
        assert client.sio.connected and client.sio.get_sid() == sid
        record = wait_record(server, name, "online", "connected", connections=1)
        assert [t["status"] for t in record["transitions"]] == ["online"]
    finally:
        server.signal(signal.SIGCONT)
        client.sio.disconnect()


class MuteWebsocket(raw_engineio.RawWebsocket):
    """Engine.IO over a websocket, by hand: registers a name, then never answers a ping."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(url, auth={"clientName": name}, answer_pings=False)


class MutePolling:
    """Engine.IO over HTTP long-polling, by hand: keeps polling, never answers a ping."""

    def __init__(self, url: str, name: str) -> None:
        base = url + "/socket.io/?EIO=4&transport=polling"
        status, opened = self._request(base)
        assert opened.startswith("0{"), opened
        self.url = f"{base}&sid={json.loads(opened[1:])['sid']}"
        assert self._request(self.url, "40" + json.dumps({"clientName": name}))[0] == 200
        status, body = self._request(self.url)
        assert status == 200 and body.startswith("40{"), (status, body)
        self.packets: list[str] = []

    @staticmethod
    def _request(url: str, body: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(url, data=None if body is None else body.encode(),
                                         headers={"Content-Type": "text/plain;charset=UTF-8"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def read_until_closed(self, timeout: float) -> bool:
        """Poll until the session is gone (HTTP 400); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self._request(self.url)
            if status == 400:
                return True
            assert status == 200, (status, body)
            self.packets.extend(body.split("\x1e") if body else [])
        return False

    def close(self) -> None:
        pass


def test_a_client_that_stops_answering_pings_is_closed_with_no_goodbye(
        server, unique, transport):
    name = unique("mute")
    mute = {"websocket": MuteWebsocket, "polling": MutePolling}[transport](server.url, name)
    try:
        wait_record(server, name, "online", "connected", connections=1)
        started = time.monotonic()

        assert mute.read_until_closed(timeout=PING_INTERVAL + PING_TIMEOUT + SHORT), mute.packets
        took = time.monotonic() - started

        assert took >= PING_INTERVAL + PING_TIMEOUT * 0.9, took  # not before the timeout
        assert "2" in mute.packets  # the unanswered ping
        assert ENGINEIO_CLOSE not in mute.packets and SOCKETIO_DISCONNECT not in mute.packets
        wait_record(server, name, "reconnecting", "disconnect")
        assert "Traceback" not in server.log_text()
    finally:
        mute.close()
