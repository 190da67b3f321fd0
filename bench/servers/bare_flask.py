"""Bare Flask-SocketIO + gevent-websocket server: the same stack as ours with no presence logic.

Acks ``heartbeat`` at once with the presence server's reply shape (CONTRACT §4), so the gap to our
server is the cost of the presence work itself.

Usage: ``python -m bench.servers.bare_flask --port PORT [--ping-interval S] [--ping-timeout S]``
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from flask_socketio import SocketIO  # noqa: E402
from gevent import pywsgi  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402


class GcPauses:
    """Wall time of every garbage collection, via ``gc.callbacks`` (reported at /health)."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.total_ms = 0.0
        self.max_ms = 0.0
        self.recent: list[tuple[float, int, float]] = []  # (end time, generation, ms)
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        ms = (time.perf_counter() - self._start) * 1000.0
        gen = info.get("generation", 0)
        self.count[gen] += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)
        if gen == 2 or ms > 10:
            self.recent = (self.recent + [(time.time(), gen, round(ms, 2))])[-50:]

    def snapshot(self) -> dict[str, Any]:
        return {"collections": self.count, "pause_total_ms": round(self.total_ms, 2),
                "pause_max_ms": round(self.max_ms, 2), "recent_long": self.recent}


def create_app(ping_interval: float, ping_timeout: float, heartbeat_interval_ms: int,
               max_http_buffer_size: int) -> tuple[Flask, SocketIO]:
    """Build the Flask app and its Socket.IO server."""
    app = Flask(__name__)
    socketio = SocketIO(
        app,
        async_mode="gevent",
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_http_buffer_size=max_http_buffer_size,
        cors_allowed_origins="*",
        logger=False,
        engineio_logger=False,
    )
    names: dict[str, str] = {}
    gc_pauses = GcPauses()

    @app.get("/health")
    def health() -> Any:
        return jsonify(status="ok", node="bare-flask", connections=len(names),
                       gc=gc_pauses.snapshot())

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> None:
        if isinstance(auth, dict) and isinstance(auth.get("clientName"), str):
            names[request.sid] = auth["clientName"]

    @socketio.on("disconnect")
    def on_disconnect(*_args: Any) -> None:
        names.pop(request.sid, None)

    @socketio.on("heartbeat")
    def on_heartbeat(_data: Any = None) -> dict[str, Any]:
        # The return value is the ack (the bench always asks for one).
        return {
            "status": "ok",
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
            "message": "Heartbeat received",
            "nextHeartbeatIn": heartbeat_interval_ms,
        }

    return app, socketio


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ping-interval", type=float, default=30.0, help="seconds")
    parser.add_argument("--ping-timeout", type=float, default=120.0, help="seconds")
    parser.add_argument("--heartbeat-interval", type=float, default=30.0, help="seconds")
    parser.add_argument("--max-http-buffer-size", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=4096)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    app, _socketio = create_app(args.ping_interval, args.ping_timeout,
                                int(args.heartbeat_interval * 1000), args.max_http_buffer_size)
    server = pywsgi.WSGIServer((args.host, args.port), app, handler_class=WebSocketHandler,
                               log=None, backlog=args.backlog)
    gevent.signal_handler(signal.SIGTERM, server.stop, 1)
    gevent.signal_handler(signal.SIGINT, server.stop, 1)
    print(f"bare-flask listening on {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
