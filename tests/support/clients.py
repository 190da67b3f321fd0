"""Real python-socketio clients that record every event they receive, for assertions."""

from __future__ import annotations

import threading
import time
from typing import Any

import socketio

EVENTS = ("heartbeat_response", "server_status_response", "client_status_changed",
          "client_reconnected", "connection_check", "server_shutdown", "error",
          "guest_registered", "watch_snapshot", "connect_error", "unwatch_response",
          "client_removed", "resync")


class RecordingClient:
    """A Socket.IO client over one transport that keeps every event it gets, in order."""

    def __init__(self, url: str, transport: str = "websocket", auth: dict | None = None,
                 answer_checks: bool = True) -> None:
        self.url = url
        self.transports = [transport] if transport == "websocket" else ["polling"]
        self.auth = auth
        self.events: list[tuple[str, Any, float]] = []
        self._changed = threading.Condition()
        self.sio = socketio.Client(reconnection=False)
        for event in EVENTS:
            self.sio.on(event, self._recorder(event))
        self.sio.on("disconnect", self._recorder("disconnect"))
        if answer_checks:
            self.sio.on("connection_check", self._answer_check)

    def _recorder(self, event: str):
        def record(*args: Any) -> None:
            with self._changed:
                self.events.append((event, args[0] if args else None, time.time()))
                self._changed.notify_all()

        return record

    def _answer_check(self, data: Any) -> None:
        self._recorder("connection_check")(data)
        try:
            self.sio.emit("connection_check_response",
                          {"client_name": data.get("client_name"), "timestamp": time.time()})
        except socketio.exceptions.BadNamespaceError:
            pass  # the check raced this client's own drop: nothing left to answer on

    def connect(self, wait_timeout: float = 10) -> RecordingClient:
        self.sio.connect(self.url, transports=self.transports, auth=self.auth,
                         wait_timeout=wait_timeout)
        return self

    def heartbeat(self, name: str, ack: bool = True, timeout: float = 10, **extra: Any):
        payload = {"clientName": name, "timestamp": time.time(), **extra}
        if ack:
            return self.sio.call("heartbeat", payload, timeout=timeout)
        self.sio.emit("heartbeat", payload)
        return None

    def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        return self.sio.call(event, data, timeout=timeout)

    def emit(self, event: str, data: Any = None) -> None:
        self.sio.emit(event, data)

    def of(self, event: str) -> list[Any]:
        with self._changed:
            return [data for name, data, _ in self.events if name == event]

    def wait_event(self, event: str, predicate=lambda data: True, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for name, data, _ in self.events:
                    if name == event and predicate(data):
                        return data
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [name for name, _, _ in self.events]
                    raise AssertionError(f"no {event} matching within {timeout}s; got {seen}")
                self._changed.wait(remaining)

    def close(self) -> None:
        try:
            self.sio.disconnect()
        except Exception:
            pass

    def drop(self) -> None:
        """Abrupt drop: close the underlying transport without a Socket.IO disconnect."""
        eio = self.sio.eio
        if eio.ws is not None:
            eio.ws.close()
        eio.state = "disconnected"
        try:
            eio._reset()
        except Exception:
            pass
