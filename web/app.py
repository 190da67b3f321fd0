"""The app factory: a Flask app with Flask-SocketIO, the HTTP API and the status page."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask_socketio import SocketIO

from presence_server.config import SAME_ORIGIN

from . import frames, limits, pings, writer
from .api import api
from .events import EventStreams, sse
from .metrics import metrics
from .page import page
from .rooms import IndexedManager
from .sockets import SocketEvents

if TYPE_CHECKING:
    from presence_server.config import Config

    from .port import PresencePort


def _async_mode() -> str:
    from gevent import monkey

    return "gevent" if monkey.is_module_patched("socket") else "threading"


def create_app(presence: PresencePort, config: Config) -> tuple[Flask, SocketIO, SocketEvents]:
    """Build the Flask app; its handlers and routes talk to presence through its port only."""
    pings.install()  # Engine.IO pings on hub timers: no sleeping greenlet per socket
    frames.install()  # WebSocket frames unmasked in C, not byte by byte in Python
    writer.install()  # websocket writers wait for packets without a timer per wait
    app = Flask(__name__)
    # gevent-websocket calls `application.current_app.on_close()` when a websocket closes; without
    # that attribute it builds a throwaway class per call (4 per closed socket: ~28 objects of
    # cyclic garbage each, which only a collection can free).
    app.current_app = _WebSocketCloseHook()  # type: ignore[attr-defined]
    app.json.sort_keys = False
    app.extensions["presence"] = presence
    app.config["PRESENCE_ADMIN_TOKEN"] = config.security["admin_token"]
    app.config["PRESENCE_METRICS_TOKEN"] = config.security.get("metrics_token")
    sockets = config.socket
    socketio = SocketIO(
        app,
        async_mode=_async_mode(),
        ping_interval=sockets["ping_interval"],
        ping_timeout=sockets["ping_timeout"],
        max_http_buffer_size=sockets["max_http_buffer_size"],
        **cors_options(sockets["cors_allowed_origins"]),
        # Our own loggers, not `False`: with `False` each library adds a stderr handler of its
        # own, so every error it logs appeared twice (there and through the root logger).
        logger=_library_logger("socketio.server"),
        engineio_logger=_library_logger("engineio.server"),
        # Handlers do not block (the store is in memory, actors are told, not asked; only
        # client_status_request waits, bounded, for the socket's earlier messages), so run them
        # inline in the socket's reader instead of one new greenlet per event.
        async_handlers=False,
        # Disconnects in O(the socket's rooms), not O(all sockets): see web/rooms.py.
        client_manager=IndexedManager(),
    )
    # Replies go out as the ack when the client asked for one, else as the named event
    # (ReplyServer); malformed and oversized input is refused without tracebacks (web/limits.py).
    limits.install(socketio.server, read_timeout=config.server["read_timeout"] or None)
    events = SocketEvents(presence, config, socketio.server)
    events.register()
    app.extensions["sender"] = events.sender
    app.register_blueprint(api)
    app.register_blueprint(page)
    app.register_blueprint(metrics)
    app.extensions["event_streams"] = EventStreams(
        presence, queue_size=config.events["queue"], keepalive=config.events["keepalive"],
        retry_ms=int(config.shutdown["reconnect_after"] * 1000),
        snapshot_limit=config.security["watch_snapshot_limit"])
    app.register_blueprint(sse)
    return app, socketio, events


def _library_logger(name: str) -> logging.Logger:
    """python-socketio's / python-engineio's logger: warnings and errors only, one handler."""
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
    return logger


def cors_options(origins: str | list[str]) -> dict[str, Any]:
    """Engine.IO's CORS settings for `socket.cors_allowed_origins`.

    `same-origin`: only pages served by this server (engineio's default check, which also
    honours `X-Forwarded-Proto`/`-Host`). A list: those origins and the same origin. `"*"`: any
    origin, an explicit opt-in, and then without `Access-Control-Allow-Credentials` (no site may
    make credentialed requests to us on its visitors' behalf). Requests without an `Origin`
    header (non-browser clients) are never refused.
    """
    if origins == SAME_ORIGIN:
        return {"cors_allowed_origins": None, "cors_credentials": True}
    if origins == "*":
        return {"cors_allowed_origins": "*", "cors_credentials": False}
    return {"cors_allowed_origins": _listed_or_same_origin(frozenset(origins)),
            "cors_credentials": True}


def _listed_or_same_origin(listed: frozenset[str]) -> Callable[[str | None, dict], bool]:
    def allowed(origin: str | None, environ: dict[str, Any]) -> bool:
        return origin is not None and (origin in listed or origin in same_origins(environ))

    return allowed


def same_origins(environ: dict[str, Any]) -> set[str]:
    """The origins of this server as the request names it (as engineio's default check does)."""
    host = environ.get("HTTP_HOST")
    if not host:
        return set()
    scheme = environ.get("wsgi.url_scheme", "http")
    origins = {f"{scheme}://{host}"}
    if "HTTP_X_FORWARDED_PROTO" in environ or "HTTP_X_FORWARDED_HOST" in environ:
        forwarded_scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
        forwarded_host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
        origins.add(f"{forwarded_scheme}://{forwarded_host}")
    return origins


class _WebSocketCloseHook:
    """What gevent-websocket notifies when a websocket closes (Engine.IO handles the close)."""

    __slots__ = ()

    def on_close(self, *args: object) -> None:
        return None
