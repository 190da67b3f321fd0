"""Hostile input at the Engine.IO and Socket.IO packet level: refused cheaply, no tracebacks.

Stock python-engineio / python-socketio (read in 4.15 / 5.18, the pinned versions) let a client:
- leak a file descriptor and a greenlet per request with a long-polling POST over
  `max_http_buffer_size` (or with an unknown Engine.IO packet type): engineio then calls
  `Socket.close(wait=True)`, which waits for a GET poll that never comes, and gevent would then
  wait for the whole announced body before closing;
- send garbage packets, each logged with two tracebacks (engineio's own stderr handler and the
  root logger), over websocket with one more from gevent;
- send any number of binary attachments of up to `max_http_buffer_size` each in one event.

`GuardedEngine` (the Engine.IO server) answers an oversized, chunked, unreadable or malformed
polling POST itself with a JSON 4xx and `Connection: close`, closes that session without
waiting, and never lets gevent read the rest of the body; over websocket a frame that is not an
Engine.IO packet closes the connection quietly. `GuardedServer` (the Socket.IO server) turns an
undecodable Socket.IO packet into a call to `on_malformed` (rate-limited, answered with an
`error` event by web/sockets.py) and closes a connection whose binary attachments exceed the
limit. Both are installed on the instances Flask-SocketIO builds (web/app.py).
"""

from __future__ import annotations

import io
import json
import logging
import urllib.parse
from collections.abc import Callable
from typing import Any

import engineio
import socketio
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from engineio.async_drivers import gevent as eio_gevent

from .budgets import transport_complaints
from .sockets import ReplyServer
from .validation import printable

log = logging.getLogger("presence.sockets")

# Engine.IO packet types a client may send: close, ping (the upgrade probe), pong, message,
# upgrade, noop. Over websocket a binary frame is a message.
CLIENT_PACKET_TYPES = frozenset("123456")
POLLING_PACKET_TYPES = frozenset({eio_packet.CLOSE, eio_packet.PONG, eio_packet.MESSAGE,
                                  eio_packet.UPGRADE})
MAX_ATTACHMENTS = 16
MAX_PACKETS_PER_POST = 256


def install(server: socketio.Server, read_timeout: float | None) -> None:
    """Guard the Socket.IO server Flask-SocketIO built, and its Engine.IO server."""
    server.__class__ = GuardedServer
    server.packet_class = CheckedPacket
    # socketio registered its bound method with engineio before the class changed
    server.eio.on("message", server._handle_eio_message)
    server.eio.on("connect", server._handle_eio_connect)
    server.eio.__class__ = GuardedEngine
    server.eio.guard(read_timeout)
    # engineio drops a whole POST of more than 16 packets (with a traceback): a polling client
    # that queued a burst loses it all. The byte limit and the event rate bound the work anyway.
    eio_payload.Payload.max_decode_packets = MAX_PACKETS_PER_POST


class GuardedWebSocket(eio_gevent.WebSocketWSGI):
    """engineio's gevent-websocket wrapper; a frame that is no Engine.IO packet ends the socket."""

    def wait(self) -> Any:
        data = super().wait()
        if type(data) is str and (not data or data[0] not in CLIENT_PACKET_TYPES):
            transport_complaints.note("websockets", "frame", "malformed_packet",
                                      f"a frame that is no Engine.IO packet from "
                                      f"{self.environ.get('REMOTE_ADDR')} ({printable(data[:40])})")
            return None  # what a closed connection returns: engineio closes the socket cleanly
        return data


class GuardedEngine(engineio.Server):
    """engineio's server with a guard in front of long-polling POSTs (see the module doc)."""

    read_timeout: float | None = None

    def guard(self, read_timeout: float | None) -> None:
        """Set up the guard on an instance whose class was swapped to this one."""
        self.read_timeout = read_timeout
        if self._async.get("websocket") is not None and "gevent" in self.async_mode:
            self._async = {**self._async, "websocket": GuardedWebSocket}

    def handle_request(self, environ: dict[str, Any], start_response: Callable) -> Any:
        if not _loggable(environ):  # engineio logs the session id and the Origin as they are
            body = json.dumps({"error": "bad_request",
                               "message": "unprintable session id or Origin"}).encode()
            start_response("400 Bad Request", [("Content-Type", "application/json"),
                                               ("Content-Length", str(len(body)))])
            return [body]
        if "sid=" in environ.get("QUERY_STRING", ""):
            answer = self._closed_session(environ, start_response)
            if answer is not None:
                return answer
        if environ.get("REQUEST_METHOD") == "POST":
            refusal = self._check_post(environ)
            if refusal is not None:
                status, code, message = refusal
                _skip_body(environ)
                body = json.dumps({"error": code, "message": message}).encode()
                start_response(status, [("Content-Type", "application/json"),
                                        ("Content-Length", str(len(body))),
                                        ("Connection", "close")] + self._cors_headers(environ))
                return [body]
        return super().handle_request(environ, start_response)

    def _closed_session(self, environ: dict[str, Any], start_response: Callable) -> Any:
        """A request for a session closed without waiting (engineio would raise KeyError: a
        traceback and a 500). A poll gets what is still queued (the close included); then the
        session is forgotten, and engineio answers "invalid session" (400) quietly."""
        sid = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("sid", [None])[0]
        socket = self.sockets.get(sid) if sid is not None else None
        if socket is None or not socket.closed:
            return None
        self.sockets.pop(sid, None)
        if environ.get("REQUEST_METHOD") != "GET" or socket.upgraded:
            return None
        packets = []
        while not socket.queue.empty():
            item = socket.queue.get(block=False)
            socket.queue.task_done()
            if item is not None:
                packets.append(item)
        answer = self._ok(packets)
        start_response(answer["status"], answer["headers"] + self._cors_headers(environ))
        return [answer["response"]]

    def _check_post(self, environ: dict[str, Any]) -> tuple[str, str, str] | None:
        """Read and check a polling POST; None when engineio may handle it."""
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        sid = query.get("sid", [None])[0]
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return self._refuse(sid, "411 Length Required", "length_required",
                                "a long-polling POST needs a Content-Length")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self._refuse(sid, "400 Bad Request", "bad_request", "bad Content-Length")
        if length > self.max_http_buffer_size or length < 0:
            return self._refuse(sid, "413 Request Entity Too Large", "payload_too_large",
                                f"a message may hold at most {self.max_http_buffer_size} bytes")
        if sid is None or sid not in self.sockets:
            return None  # engineio answers "invalid session" without reading the body
        body = self._read_body(environ, length)
        if body is None:
            return self._refuse(sid, "400 Bad Request", "incomplete_body",
                                "the request body ended before its Content-Length")
        try:
            packets = eio_payload.Payload(encoded_payload=body.decode("utf-8")).packets
            if any(pkt.packet_type not in POLLING_PACKET_TYPES for pkt in packets):
                raise ValueError("a packet type a client may not send")
        except (ValueError, TypeError, KeyError, IndexError) as problem:
            return self._refuse(sid, "400 Bad Request", "malformed_packet",
                                f"not an Engine.IO payload ({problem})"[:200])
        environ["wsgi.input"] = io.BytesIO(body)
        return None

    def _read_body(self, environ: dict[str, Any], length: int) -> bytes | None:
        source = environ["wsgi.input"]
        try:
            if self.read_timeout:
                import gevent

                with gevent.Timeout(self.read_timeout, TimeoutError("body read timed out")):
                    body = source.read(length)
            else:
                body = source.read(length)
        except (OSError, TimeoutError):
            return None
        return body if len(body) == length else None

    def _refuse(self, sid: str | None, status: str, code: str,
                message: str) -> tuple[str, str, str]:
        """Close the session without waiting for a poll (see the module doc), then refuse."""
        transport_complaints.note("long-polling", "POST", code,
                                  f"session {printable(str(sid)[:40])}: {message}")
        socket = self.sockets.get(sid) if sid is not None else None
        if socket is not None:
            try:
                socket.close(wait=False, abort=False, reason=self.reason.TRANSPORT_ERROR)
            except Exception:
                log.debug("session %s was already closing", sid)
        return status, code, message


def _loggable(environ: dict[str, Any]) -> bool:
    query = environ.get("QUERY_STRING", "")
    if "%" in query:
        sid = urllib.parse.parse_qs(query).get("sid", [""])[0]
        if not sid.isprintable():
            return False
    return environ.get("HTTP_ORIGIN", "").isprintable()


def _skip_body(environ: dict[str, Any]) -> None:
    """Tell gevent's pywsgi the body is dealt with, so it closes instead of reading it all."""
    source = environ.get("wsgi.input")
    try:
        source.content_length = source.position  # type: ignore[union-attr]
        source.chunked_input = False  # type: ignore[union-attr]
    except AttributeError:
        pass  # another server: it closes the connection after `Connection: close`


class MalformedPacket(ValueError):
    """A Socket.IO packet that cannot be decoded (or announces too many attachments)."""


class CheckedPacket(socketio.packet.Packet):
    """python-socketio's packet, whose decoding errors are all `MalformedPacket`."""

    def decode(self, encoded_packet: Any) -> int:
        try:
            attachments = super().decode(encoded_packet)
        except Exception as problem:
            raise MalformedPacket(f"undecodable Socket.IO packet ({problem})"[:200]) from None
        if attachments and attachments > MAX_ATTACHMENTS:
            raise MalformedPacket(f"more than {MAX_ATTACHMENTS} binary attachments")
        return attachments or 0


class GuardedServer(ReplyServer):
    """The Socket.IO server: malformed packets go to `on_malformed`, big binaries are refused."""

    def on_malformed(self, eio_sid: str, problem: str) -> None:  # replaced by web/sockets.py
        log.info("malformed packet from %s: %s", eio_sid, problem)

    def on_too_large(self, eio_sid: str, size: int) -> None:  # replaced by web/sockets.py
        log.info("binary message of %d bytes from %s", size, eio_sid)

    def on_transport_open(self, eio_sid: str) -> None:  # replaced by web/sockets.py
        return None

    def _handle_eio_connect(self, eio_sid, environ):
        """An Engine.IO connection opened: it has yet to join the namespace (see sockets.py)."""
        result = super()._handle_eio_connect(eio_sid, environ)
        self.on_transport_open(eio_sid)
        return result

    def _handle_eio_message(self, eio_sid, data):
        pending = self._binary_packet.get(eio_sid)
        if pending is not None:
            size = sum(len(part) for part in pending.attachments) + len(data)
            if size > self.eio.max_http_buffer_size:
                del self._binary_packet[eio_sid]
                self.on_too_large(eio_sid, size)
                return None
        try:
            return super()._handle_eio_message(eio_sid, data)
        except ValueError as problem:  # every ValueError socketio raises here is the client's
            self._binary_packet.pop(eio_sid, None)
            self.on_malformed(eio_sid, str(problem)[:200])
            return None

    def _handle_event(self, eio_sid, namespace, id, data):
        """Refuse an event packet that names no event or comes for a namespace the connection
        did not join, before python-socketio indexes it (a traceback) or logs it (a warning per
        packet)."""
        if not (isinstance(data, list) and data and isinstance(data[0], str)):
            self.on_malformed(eio_sid, "an event packet is a list that starts with the event name")
            return None
        if data[0] in self.reserved_events:  # python-socketio would call our connect handler
            self.on_malformed(eio_sid, f"{data[0]!r} is not an event a client may send")
            return None
        if self.manager.sid_from_eio_sid(eio_sid, namespace or "/") is None:
            self.on_malformed(eio_sid, f"event for namespace {printable(namespace or '/')[:64]}, "
                                       "which this connection has not joined")
            return None
        return super()._handle_event(eio_sid, namespace, id, data)

    def _handle_ack(self, eio_sid, namespace, id, data):
        """Refuse an ack that answers no request of ours (python-socketio would log a warning
        per packet) or carries no argument list (a traceback)."""
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace or "/")
        # ids start at 1; python-socketio keeps its id counter under 0
        if (sid is None or not isinstance(id, int) or id <= 0
                or id not in self.manager.callbacks.get(sid, {})):
            self.on_malformed(eio_sid, "an ack that answers no request")
            return None
        if not isinstance(data, list):
            self.manager.callbacks[sid].pop(id, None)
            self.on_malformed(eio_sid, "an ack packet carries a list of arguments")
            return None
        return super()._handle_ack(eio_sid, namespace, id, data)
