"""Closing one Engine.IO socket's transport with no goodbye, so that its client reconnects.

Used for every close the server decides: heartbeat timeout, kick and graceful shutdown
(presence_server/runtime.py `_disconnect`) and Engine.IO's ping timeout (web/pings.py).
"""

from __future__ import annotations

from typing import Any


def close_transport(socket: Any, reason: str) -> None:
    """Close an Engine.IO socket's transport without a Socket.IO or Engine.IO goodbye.

    Neither a Socket.IO DISCONNECT packet (`server.disconnect`) nor Engine.IO's CLOSE packet
    (`eio.disconnect`) will do: socket.io-client and python-socketio take the first as
    `io server disconnect` and never reconnect; python-engineio's client marks itself
    disconnecting on the second before python-socketio hears of it, which then does not
    reconnect either. A transport closed with no goodbye is `transport close` (or `transport
    error`) to every client, which reconnects with its default settings. The websocket (or the
    pending long-poll) really ends, and python-socketio's disconnect handling (rooms, our
    `on_disconnect`) runs once, from Engine.IO's disconnect event with `reason`.
    """
    sockets = socket.server.sockets
    if sockets.get(socket.sid) is socket:
        del sockets[socket.sid]  # the session is gone at once: a late poll gets HTTP 400
    socket.close(wait=False, abort=True, reason=reason)
