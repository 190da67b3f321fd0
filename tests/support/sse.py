"""A real server-sent events client for tests: an HTTP stream parsed as the WHATWG spec says,
read by a thread that keeps every event (and comment) it gets, in order."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None
    at: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.data)


class SseClient:
    """`GET path` on `url`; `events`, `comments`, `retry`, `ended` fill as the stream goes."""

    def __init__(self, url: str, path: str = "/events", headers: dict[str, str] | None = None,
                 timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port,
                                                      timeout=timeout)
        self.connection.request("GET", path, headers=headers or {})
        self._socket = self.connection.sock  # getresponse() may let go of it
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}
        self.events: list[SseEvent] = []
        self.comments: list[str] = []
        self.retry: int | None = None
        self.last_id: str | None = None
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        if self.status == 200:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        else:
            self.body = self.response.read()
            self.ended.set()

    def _read(self) -> None:
        event, data, event_id = "", [], None
        pending = b""
        try:
            while True:
                chunk = self.response.read1(65536)  # as it comes (chunked decoding included)
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8").rstrip("\r")
                    if line == "":
                        if event_id is not None:
                            self.last_id = event_id
                        if data:
                            with self._changed:
                                self.events.append(SseEvent(event or "message",
                                                            "\n".join(data), self.last_id))
                        event, data, event_id = "", [], None
                        continue
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "":
                        with self._changed:
                            self.comments.append(value)
                    elif name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
                    elif name == "id":
                        event_id = value
                    elif name == "retry" and value.isdigit():
                        self.retry = int(value)
                with self._changed:
                    self._changed.notify_all()
        except Exception as error:  # noqa: BLE001 - kept for the test to look at
            self.error = error
        finally:
            self.ended.set()
            with self._changed:
                self._changed.notify_all()

    def of(self, event: str = "client_status_changed") -> list[SseEvent]:
        with self._changed:
            return [e for e in self.events if e.event == event]

    def wait(self, condition, timeout: float = 10.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = condition(self)
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.ended.is_set() and not condition(self)):
                    raise AssertionError(
                        f"SSE: no {what or condition} within {timeout}s (ended: "
                        f"{self.ended.is_set()}, {len(self.events)} events, error {self.error})")
                self._changed.wait(min(remaining, 0.2))

    def close(self) -> None:
        """End the stream now: a shutdown wakes the reader thread's pending read (closing the
        response alone would wait for the reader's lock, i.e. for the server's next write)."""
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ended.wait(5)
        try:
            self.connection.sock and self.connection.sock.close()
        except OSError:
            pass
        self.connection.close()
