"""The app factory: a Flask app with Flask-SocketIO, the HTTP API and the status page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask
from flask_socketio import SocketIO

from . import frames, pings, writer
from .api import api
from .page import page
from .rooms import IndexedManager
from .sockets import ReplyServer, SocketEvents

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
    sockets = config.socket
    socketio = SocketIO(
        app,
        async_mode=_async_mode(),
        ping_interval=sockets["ping_interval"],
        ping_timeout=sockets["ping_timeout"],
        max_http_buffer_size=sockets["max_http_buffer_size"],
        cors_allowed_origins=sockets["cors_allowed_origins"],
        logger=False,
        engineio_logger=False,
        # Handlers never block (the store is in memory, actors are told, not asked), so run them
        # inline in the socket's reader instead of one new greenlet per event.
        async_handlers=False,
        # Disconnects in O(the socket's rooms), not O(all sockets): see web/rooms.py.
        client_manager=IndexedManager(),
    )
    # Replies go out as the ack when the client asked for one, else as the named event.
    socketio.server.__class__ = ReplyServer
    events = SocketEvents(presence, config, socketio.server)
    events.register()
    app.register_blueprint(api)
    app.register_blueprint(page)
    return app, socketio, events


class _WebSocketCloseHook:
    """What gevent-websocket notifies when a websocket closes (Engine.IO handles the close)."""

    __slots__ = ()

    def on_close(self, *args: object) -> None:
        return None
