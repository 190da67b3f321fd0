"""After `heartbeat_timeout` or a kick the server really closes the socket's transport.

Seen at the wire with a hand-written Engine.IO v4 client (no library in between): the websocket
ends, or the long-poll session is gone (HTTP 400), and no Socket.IO DISCONNECT packet (`41`)
comes first — that packet is what makes python-socketio and socket.io-client give up for good.
The raw client answers every Engine.IO ping, so nothing else would close the connection.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.support import raw_engineio

from .helpers import SHORT, wait_record

pytestmark = pytest.mark.timeout(60)

ADMIN = "transport-close-admin"
CONFIG = {"security": {"admin_token": ADMIN}}
SOCKETIO_DISCONNECT = "41"


class RawWebsocket(raw_engineio.RawWebsocket):
    """Engine.IO over a websocket, by hand: registers a name, answers pings, records packets."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(url, auth={"clientName": name})


class RawPolling:
    """Engine.IO over HTTP long-polling, by hand (same duties as `RawWebsocket`)."""

    def __init__(self, url: str, name: str) -> None:
        self.base = url + "/socket.io/?EIO=4&transport=polling"
        opened = self._get(self.base)[1]
        assert opened.startswith("0{"), opened
        self.url = f"{self.base}&sid={json.loads(opened[1:])['sid']}"
        self._post("40" + json.dumps({"clientName": name}))
        self.packets: list[str] = []
        status, body = self._get(self.url)
        assert status == 200 and body.startswith("40{"), (status, body)

    @staticmethod
    def _get(url: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def _post(self, body: str) -> None:
        request = urllib.request.Request(self.url if hasattr(self, "url") else self.base,
                                         data=body.encode(), method="POST",
                                         headers={"Content-Type": "text/plain;charset=UTF-8"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def read_until_closed(self, timeout: float) -> bool:
        """Poll (answering pings) until the session is gone (HTTP 400); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self._get(self.url)
            if status == 400:
                return True
            assert status == 200, (status, body)
            for text in body.split("\x1e") if body else []:
                self.packets.append(text)
                if text == "2":
                    self._post("3")
        return False

    def close(self) -> None:
        pass


RAW = {"websocket": RawWebsocket, "polling": RawPolling}


@pytest.fixture
def server(server_for):
    return server_for(CONFIG)


@pytest.mark.parametrize("cause", ["heartbeat_timeout", "kicked"])
def test_the_transport_really_closes_with_no_socketio_disconnect(
        server, connect, unique, transport, cause):
    name = unique(cause[:4])
    raw = RAW[transport](server.url, name)
    try:
        wait_record(server, name, "online", "connected", connections=1)
        watcher = connect(server.url, "websocket", watch=True)
        if cause == "kicked":
            threading.Timer(0.3, server.request,
                            ("POST", f"/api/clients/{name}/kick", ADMIN)).start()
        # heartbeat_timeout: the raw client never heartbeats (silence limit 3 s in the test config)

        closed = raw.read_until_closed(timeout=SHORT)

        assert closed, f"the {transport} is still open; packets since: {raw.packets}"
        assert SOCKETIO_DISCONNECT not in raw.packets, raw.packets
        watcher.wait_event("client_status_changed",
                           lambda e: e["name"] == name and e["reason"] == cause)
        wait_record(server, name, "offline", cause, connections=0)
        assert "Traceback" not in server.log_text()
    finally:
        raw.close()
