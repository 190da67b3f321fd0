"""Read timeouts for the gevent WSGI server, shared by `presence-server` and the gunicorn worker.

gevent's pywsgi waits for a request (and gevent-websocket for a frame) forever: a client that
sends half a request, or opens a connection and says nothing, holds a file descriptor and a
greenlet for as long as it likes. `handler_class(config)` returns gevent-websocket's handler with:
- `server.read_timeout` on every read of an HTTP connection (request line, headers, body, and
  the wait for the next request of a keep-alive connection), plus the same bound on reading the
  request line and headers as a whole (a client trickling one byte at a time gets no longer);
- once upgraded to a websocket, twice `socket.ping_interval + socket.ping_timeout` between
  frames. A live client sends a pong every ping cycle, but that alone leaves no margin: the
  Engine.IO ping timeout (web/pings.py, which does not count time the process did not run)
  decides about silent clients; this only ends connections that even it can no longer reach.
A `server.read_timeout` of 0 keeps gevent's behaviour (no timeouts at all).
"""

from __future__ import annotations

from typing import Any

import gevent
from geventwebsocket.handler import WebSocketHandler

from .config import Config


class RequestTimeout(ValueError):
    """The request line and headers did not arrive in time (a ValueError: gevent answers 400
    and logs one line, with no traceback)."""


class TimedHandler(WebSocketHandler):
    """gevent-websocket's handler with read timeouts (set by `handler_class`)."""

    read_timeout: float | None = None
    websocket_timeout: float | None = None

    def handle(self) -> None:
        if self.read_timeout:
            self.socket.settimeout(self.read_timeout)
        super().handle()

    def get_environ(self) -> dict[str, Any]:
        """The WSGI environ, plus the connection's socket as `presence.socket` (the
        server-sent events route caps its send buffer: web/events.py)."""
        environ = super().get_environ()
        environ["presence.socket"] = self.socket
        return environ

    def read_requestline(self) -> Any:
        if not self.read_timeout:
            return super().read_requestline()
        with gevent.Timeout(self.read_timeout, TimeoutError("no request in time")):
            return super().read_requestline()

    def read_request(self, raw_requestline: str) -> Any:
        if not self.read_timeout:
            return super().read_request(raw_requestline)
        try:
            with gevent.Timeout(self.read_timeout, RequestTimeout("request headers too slow")):
                return super().read_request(raw_requestline)
        except OSError as problem:  # a socket timeout: no traceback for a slow client
            raise RequestTimeout(f"request headers not read: {problem}") from None

    def run_websocket(self) -> None:
        if self.read_timeout:
            self.socket.settimeout(self.websocket_timeout)
        super().run_websocket()


def handler_class(config: Config) -> type[TimedHandler]:
    """A `TimedHandler` subclass with the timeouts of `config`."""
    read_timeout = config.server["read_timeout"] or None
    sockets = config.socket
    return type("TimedHandler", (TimedHandler,), {
        "read_timeout": read_timeout,
        "websocket_timeout": 2 * (sockets["ping_interval"] + sockets["ping_timeout"]),
    })
