"""A tiny real Socket.IO server for client tests: python-socketio (threading) on Werkzeug.

It speaks just enough of CONTRACT §4 (heartbeat acks, guests, status requests, watch, notices)
for the client's own rules to be tested, and can misbehave on purpose: stop acking heartbeats
while keeping the connection, refuse connections, announce a shutdown.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
from werkzeug.serving import WSGIRequestHandler, make_server


class _Handler(WSGIRequestHandler):
    """Closes the TCP connection once a WebSocket session ends.

    Werkzeug would otherwise keep it open and read the client's closing frame as a new HTTP
    request, leaving the client waiting for a close reply that never comes.
    """

    def run_wsgi(self) -> None:
        try:
            super().run_wsgi()
        finally:
            if self.headers.get("Upgrade", "").lower() == "websocket":
                self.close_connection = True


@dataclass
class Record:
    """One thing the server saw, with its monotonic arrival time."""

    event: str
    sid: str
    data: Any
    at: float = field(default_factory=time.monotonic)


class TinyServer:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` once started."""

    def __init__(self, next_heartbeat_in_ms: int = 30000) -> None:
        self.sio = socketio.Server(async_mode="threading", logger=False, engineio_logger=False)
        self.app = socketio.WSGIApp(self.sio)
        self.next_heartbeat_in_ms = next_heartbeat_in_ms
        self.ack_heartbeats = True
        self.heartbeat_reply: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.refuse: str | None = None
        self.records: list[Record] = []
        self.sids: dict[str, str] = {}  # sid -> identity
        self._guest_ids = itertools.count(1)
        self._cond = threading.Condition()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._release = threading.Event()
        self._bind()

    # -- life cycle
    def start(self, port: int = 0) -> TinyServer:
        self._server = make_server("127.0.0.1", port, self.app, threaded=True,
                                   request_handler=_Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        for sid in list(self.sids):
            try:
                self.sio.disconnect(sid)
            except Exception:
                pass
        self._server.shutdown()
        self._server.server_close()

    # -- observation
    def record(self, event: str, sid: str, data: Any) -> None:
        with self._cond:
            self.records.append(Record(event, sid, data))
            self._cond.notify_all()

    def seen(self, event: str) -> list[Record]:
        with self._cond:
            return [r for r in self.records if r.event == event]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every record); return its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s; records: {self.records!r}")
                self._cond.wait(min(left, 0.5))

    def wait_count(self, event: str, count: int, timeout: float = 10.0) -> list[Record]:
        return self.wait_for(lambda: len(self.seen(event)) >= count and self.seen(event), timeout)

    # -- actions
    def emit_all(self, event: str, data: Any) -> None:
        for sid in list(self.sids):
            self.sio.emit(event, data, to=sid)

    def disconnect_all(self) -> None:
        for sid in list(self.sids):
            self.sio.disconnect(sid)

    # -- handlers
    def _bind(self) -> None:
        sio = self.sio

        @sio.on("connect")
        def connect(sid: str, environ: dict, auth: Any = None) -> None:
            self.record("connect", sid, auth)
            if self.refuse:
                raise socketio.exceptions.ConnectionRefusedError(self.refuse)
            auth = auth or {}
            if auth.get("guest"):
                # like the real server: an id is given back only with its resume token
                guest_id = auth.get("guestId")
                if not guest_id or auth.get("resumeToken") != f"token-{guest_id}":
                    guest_id = f"guest-{next(self._guest_ids)}"
                self.sids[sid] = guest_id
                sio.emit("guest_registered", {"guestId": guest_id, "name": auth.get("name"),
                                              "resumeToken": f"token-{guest_id}"}, to=sid)
            else:
                self.sids[sid] = auth.get("clientName")

        @sio.on("disconnect")
        def disconnect(sid: str, *args: Any) -> None:
            self.sids.pop(sid, None)
            self.record("disconnect", sid, args)

        @sio.on("heartbeat")
        def heartbeat(sid: str, data: Any) -> Any:
            self.record("heartbeat", sid, data)
            if not self.ack_heartbeats:
                # python-socketio acks whatever a handler returns, even None; handlers run on
                # threads of their own (async_handlers), so holding this one withholds the ack
                # while the connection and its Engine.IO pings carry on.
                self._release.wait(60)
                return None
            if self.heartbeat_reply is not None:
                return self.heartbeat_reply(data)
            return {"status": "ok", "timestamp": time.time(), "message": "ok",
                    "nextHeartbeatIn": self.next_heartbeat_in_ms}

        @sio.on("client_status_request")
        def status_request(sid: str, data: Any) -> Any:
            self.record("client_status_request", sid, data)
            return {"serverStatus": "online", "clientStatus": "online",
                    "timestamp": time.time(), "serverUptime": 1.0, "message": "fine",
                    "asked": data.get("clientName")}

        @sio.on("watch")
        def watch(sid: str, data: Any) -> Any:
            self.record("watch", sid, data)
            return {"clients": [{"name": n, "status": "online"} for n in self.sids.values()]}

        @sio.on("*")
        def other(event: str, sid: str, data: Any = None) -> None:
            self.record(event, sid, data)
