"""An Engine.IO v4 client over a websocket, by hand (no library in between), for tests that
must see exactly what the server sends, or behave as no library would."""

from __future__ import annotations

import json
import time

import websocket


class RawWebsocket:
    """Opens the Engine.IO session; joins `/` with `auth` unless `join` is False; records every
    packet read; answers pings unless `answer_pings` is False."""

    def __init__(self, url: str, auth: dict | None = None, join: bool = True,
                 answer_pings: bool = True) -> None:
        self.ws = websocket.create_connection(
            url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket", timeout=5)
        assert self.ws.recv().startswith("0{")  # Engine.IO OPEN
        if join:
            self.ws.send("40" + (json.dumps(auth) if auth is not None else ""))
            assert self.ws.recv().startswith("40{")  # Socket.IO CONNECT accepted
        self.answer_pings = answer_pings
        self.packets: list[str] = []

    def send(self, text: str) -> None:
        self.ws.send(text)

    def read_until_closed(self, timeout: float) -> bool:
        """Read until the server closes the connection; False if it is still open at `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                return False
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                return True
            if opcode == websocket.ABNF.OPCODE_CLOSE or (not data and not self.ws.connected):
                return True
            text = data.decode()
            self.packets.append(text)
            if text == "2" and self.answer_pings:
                self.ws.send("3")
        return False

    def close(self) -> None:
        self.ws.close()
