"""Socket.IO event handlers: validate, build a message, hand it to an actor.

Handlers are registered straight on the python-socketio server (no Flask request context per
event: the heartbeat path is hot). A handler answers with a `Reply`; `ReplyServer` sends it as the
ack when the client asked for one, else as the named event (what the seed clients listen for).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import socketio
from presence_server.actors.messages import (
    CheckAnswered,
    Connect,
    Disconnect,
    Heartbeat,
    ReconnectionSuccess,
)
from presence_server.store.records import iso, parse_event_id

from . import hooks, validation
from .budgets import MAX_EVENT_NAME, Complaints, NewRecordBudget, transport_complaints
from .send import Sender
from .transport import close_transport
from .validation import Invalid, printable
from .watch import Watch

if TYPE_CHECKING:
    from presence_server.config import Config

    from .port import PresencePort

log = logging.getLogger("presence.sockets")

GUEST_PREFIX = "guest-"  # guest ids are issued by the server; no client may register one

WATCH_RECORDS_PER_EVENT = 20  # a watch snapshot costs one event of the budget per 20 records
REJECT_PAUSE = 0.01  # a socket's reader pauses this long after each refused event
IDLE_CLOSE_GRACE = 5.0  # after telling an idle unnamed socket to go, close its transport


@dataclass(frozen=True)
class Reply:
    """One answer to one request: the ack if asked for, else event `event` to the socket.

    `ack_only` replies are sent only as an ack: for a rejected event whose answer is the `error`
    event itself, which `SocketEvents._error` has already emitted.
    """

    event: str
    payload: dict[str, Any]
    ack_only: bool = False


class ReplyServer(socketio.Server):
    """python-socketio's server, sending a handler's `Reply` as the ack or as an event."""

    def _handle_event_internal(self, server, sid, eio_sid, data, namespace, id):
        if not hooks.REPLIES.enabled():  # python-socketio outside the tested range: web/hooks.py
            return hooks.stock_replies(super()._handle_event_internal, Reply, server, sid,
                                       eio_sid, data, namespace, id)
        result = server._trigger_event(data[0], namespace, sid, *data[1:])
        if isinstance(result, Reply):
            if id is None:
                if not result.ack_only:
                    server.emit(result.event, result.payload, to=sid, namespace=namespace)
                return
            result = result.payload
        if result is self.not_handled or id is None:
            return
        args = [] if result is None else list(result) if isinstance(result, tuple) else [result]
        server._send_packet(eio_sid, self.packet_class(
            socketio.packet.ACK, namespace=namespace, id=id, data=args))


@dataclass
class SocketSession:
    """What the web layer knows of one socket: its identity, address and event budget."""

    ip: str | None
    name: str | None = None
    guest: bool = False
    display_name: str | None = None
    tokens: float = 0.0
    refilled_at: float = field(default_factory=time.monotonic)
    authenticated: bool = False  # registered with a verified identity token
    watching: bool = False
    idle_timer: Any = None  # closes the socket if it neither registers nor watches in time
    complaints: Complaints = field(default_factory=Complaints)


class RateLimited(Exception):
    pass


class SocketEvents:
    """The handlers for every event of CONTRACT §4, talking to presence through its port."""

    def __init__(self, presence: PresencePort, config: Config, server: socketio.Server) -> None:
        self.presence = presence
        self.server = server
        self.sessions: dict[str, SocketSession] = {}
        security = config.security
        self.rate = float(security["max_events_per_second"])
        self.watch_limit = int(security["watch_snapshot_limit"])
        self.new_records = NewRecordBudget(security["new_records_per_minute"])
        self.proxy_hops = int(config.server["proxy_hops"])
        self.unnamed_timeout = float(config.socket["unnamed_timeout"])
        monitoring = config.monitoring
        self.next_heartbeat_ms = int(monitoring["heartbeat_interval"] * 1000)
        self.watch = Watch(presence, server.enter_room, server.leave_room, server.sleep,
                           self.watch_limit, rooms=server.rooms)
        self.sender = Sender(presence, int(security["max_send_bytes"]))

    # --- wiring -----------------------------------------------------------------------------------
    def register(self) -> None:
        on = self.server.on
        on("connect", self.on_connect)
        on("disconnect", self.on_disconnect)
        for event, handler in self._event_handlers().items():
            on(event, self._guarded(event, handler))
        on("*", self.on_unknown_event)
        # packet-level rejections from web/limits.py's GuardedServer
        self.server.on_malformed = self.on_malformed  # type: ignore[attr-defined]
        self.server.on_too_large = self.on_too_large  # type: ignore[attr-defined]
        self.server.on_transport_open = self.on_transport_open  # type: ignore[attr-defined]

    def _event_handlers(self) -> dict[str, Callable[[str, Any], Reply | None]]:
        return {
            "heartbeat": self.on_heartbeat,
            "client_status_request": self.on_status_request,
            "reconnection_success": self.on_reconnection_success,
            "connection_check_response": self.on_check_response,
            "watch": self.on_watch,
            "unwatch": self.on_unwatch,
            "send": self.on_send,
        }

    def live_sockets(self) -> dict[str, str]:
        """sid -> client name, for every registered socket (read by the supervisor's sweep)."""
        return {sid: s.name for sid, s in list(self.sessions.items()) if s.name is not None}

    def name_of(self, sid: str) -> str | None:
        session = self.sessions.get(sid)
        return session.name if session is not None else None

    def send_check(self, sid: str, name: str, payload: dict[str, Any]) -> None:
        """Send `connection_check`; an ack counts as an answer, like the response event."""
        def answered(*_: Any) -> None:
            self._deliver(name, CheckAnswered(sid, self._noticed()))

        self.server.emit("connection_check", payload, to=sid, callback=answered)

    # --- helpers ----------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.presence.now()

    def _noticed(self) -> float:
        """When this socket event reached the process (deadlines count from it; see clock.py)."""
        return self.presence.noticed()

    def _deliver(self, name: str, message: Any, guest: bool = False,
                 display_name: str | None = None) -> None:
        """Hand `message` to the client's actor (told, never waited for)."""
        self.presence.deliver(name, message, guest, display_name)

    def _error(self, sid: str, event: str | None, code: str, message: str) -> dict[str, Any]:
        """Send the `error` event; the log gets one line per socket per period (`Complaints`)."""
        payload = {"code": code, "message": message, "event": event}
        self.server.emit("error", payload, to=sid)
        session = self.sessions.get(sid)
        if session is not None:
            session.complaints.note(sid, event, code, message)
        else:
            log.info("rejected %s from %s: %s (%s)", printable(str(event)[:MAX_EVENT_NAME]), sid,
                     printable(message), code)
        return payload

    def _spend(self, sid: str, session: SocketSession) -> None:
        """Take one event from the socket's budget (it may be in debt after a big snapshot)."""
        now = time.monotonic()
        session.tokens = min(self.rate, session.tokens + (now - session.refilled_at) * self.rate)
        session.refilled_at = now
        if session.tokens < 1.0:
            raise RateLimited()
        session.tokens -= 1.0

    def _rate_limited(self, sid: str, event: str | None) -> dict[str, Any]:
        """Refuse an event over the budget, then pause this socket's reader a little.

        Handlers run in the socket's own reader (`async_handlers=False`): the pause stops
        reading from a flooding socket only (TCP pushes back on the sender), and lets every
        other socket's reader run, so a flood costs at most ~1/REJECT_PAUSE refusals per
        second per socket instead of all the CPU.
        """
        payload = self._error(sid, event, "rate_limited",
                              f"more than {self.rate:g} events per second; dropped")
        self.server.sleep(REJECT_PAUSE)
        return payload

    def _new_record_allowed(self, name: str, session: SocketSession, guest: bool) -> bool:
        """False when `name` would be a new record and its IP created too many lately.

        Named clients are not counted while a secret is set (a token binds each name).
        """
        if self.new_records.per_minute <= 0 or (not guest and self.presence.identities.required):
            return True
        if self.presence.current(name) is not None:
            return True
        return self.new_records.spend(session.ip)

    def _too_many_names(self) -> str:
        return (f"this address created more than {self.new_records.per_minute} new clients in "
                "the last minute; try again later")

    def _registered(self, session: SocketSession) -> None:
        """The socket has an identity or watches: it is no longer an idle unnamed socket."""
        if session.idle_timer is not None:
            session.idle_timer.cancel()
            session.idle_timer = None

    def _close_if_idle(self, sid: str) -> None:
        session = self.sessions.get(sid)
        if session is None or session.name is not None or session.watching:
            return
        session.idle_timer = None
        self._error(sid, None, "registration_timeout",
                    f"no name registered and no watch within {self.unnamed_timeout:g}s; closing")
        eio_sid = self.server.manager.eio_sid_from_sid(sid, "/")
        self.server.disconnect(sid)  # a client leaves by itself; one that stays is cut off
        self.presence.call_later(IDLE_CLOSE_GRACE, lambda: self._end_session(eio_sid))

    def on_transport_open(self, eio_sid: str) -> None:
        """An Engine.IO connection that never joins the namespace (or leaves it and stays) is
        held by no name and no watch: end it after `socket.unnamed_timeout`."""
        if self.unnamed_timeout > 0:
            self.presence.call_later(self.unnamed_timeout, lambda: self._end_if_unjoined(eio_sid))

    def _end_if_unjoined(self, eio_sid: str) -> None:
        if (eio_sid in self.server.eio.sockets
                and self.server.manager.sid_from_eio_sid(eio_sid, "/") is None):
            transport_complaints.note("sockets before connect", None, "registration_timeout",
                                      f"{eio_sid}: never joined the namespace; closing")
            self._end_session(eio_sid)

    def close(self, sid: str) -> None:
        """Close one socket's transport, so that its client reconnects by itself (no goodbye
        packet: see web/transport.py). For heartbeat_timeout, kicks and shutdown."""
        self._close_eio(self.server.manager.eio_sid_from_sid(sid, "/"))

    def _end_session(self, eio_sid: str | None) -> None:
        """End a misbehaving Engine.IO session at once, after what is queued for it (an `error`
        saying why) and Engine.IO's CLOSE: it is not invited back."""
        socket = self.server.eio.sockets.get(eio_sid) if eio_sid is not None else None
        if socket is not None:
            socket.close(wait=False, abort=False, reason=self.server.eio.reason.SERVER_DISCONNECT)

    def _close_eio(self, eio_sid: str | None) -> None:
        socket = self.server.eio.sockets.get(eio_sid) if eio_sid is not None else None
        if socket is not None:  # else already gone
            close_transport(socket, self.server.eio.reason.SERVER_DISCONNECT)

    def _guarded(self, event: str, handler: Callable[[str, Any], Reply | None]):
        error_reply = self._error_reply_for(event)

        def guarded(sid: str, *args: Any) -> Reply | None:
            session = self.sessions.get(sid)
            if session is None:
                return None  # the socket is already gone
            data = args[0] if args else None
            try:
                self._spend(sid, session)
                return handler(sid, data)
            except RateLimited:
                payload = self._rate_limited(sid, event)
                return Reply("error", {**payload, "status": "error", "shouldReconnect": False},
                             ack_only=True)
            except Invalid as problem:
                self._error(sid, event, problem.code, str(problem))
                return error_reply(str(problem), problem.code)
            except Exception:
                log.exception("%s from %s failed", event, sid)
                self._error(sid, event, "internal_error", f"the server could not handle {event}")
                return error_reply(f"the server could not handle {event}", "internal_error")

        return guarded

    def _error_reply_for(self, event: str) -> Callable[[str, str], Reply]:
        def reply(message: str, code: str) -> Reply:
            if event == "heartbeat":
                return Reply("heartbeat_response", {
                    "status": "error", "timestamp": iso(self._now()), "message": message,
                    "code": code, "shouldReconnect": True})
            if event == "client_status_request":
                return Reply("server_status_response", {
                    "serverStatus": "error", "timestamp": iso(self._now()), "message": message,
                    "code": code})
            return Reply("error", {"status": "error", "code": code, "message": message,
                                   "event": event}, ack_only=True)

        return reply

    def _bind(self, sid: str, session: SocketSession, name: str, token: str | None,
              event: str) -> None:
        """Give an unnamed socket its identity (refused when it already has another one)."""
        if session.name is not None:
            if session.name != name:
                raise Invalid("identity_mismatch",
                              f"this socket acts for {session.name!r}, not {name!r}")
            return
        if name.startswith(GUEST_PREFIX):
            raise Invalid("reserved_name", f"names starting with {GUEST_PREFIX!r} are guest ids, "
                                           "issued by the server (connect as a guest instead)")
        self.presence.identities.verify(name, token)
        if not self._new_record_allowed(name, session, guest=False):
            raise Invalid("too_many_new_clients", self._too_many_names())
        session.name = name
        session.authenticated = self.presence.identities.required
        self._registered(session)
        log.info("socket %s registered as %s (%s)", sid, name, event)
        self._deliver(name, Connect(sid, session.ip, self._noticed()))

    def _own_name(self, sid: str, data: Any, event: str, key: str = "clientName") -> str:
        session = self.sessions[sid]
        payload = validation.mapping(data, event)
        name = validation.name(payload.get(key), key) if payload.get(key) is not None else None
        if name is None:
            if session.name is None:
                raise Invalid("invalid_payload", f"{event} needs {key} (a non-empty string)")
            return session.name
        if session.name is None:
            raise Invalid("not_registered", f"{event}: this socket has not registered a name yet")
        if name != session.name:
            raise Invalid("identity_mismatch",
                          f"this socket acts for {session.name!r}, not {name!r}")
        return name

    # --- connect / disconnect ---------------------------------------------------------------------
    def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        if self.presence.shutting_down:
            raise socketio.exceptions.ConnectionRefusedError(
                "the server is shutting down; reconnect in a few seconds")
        try:
            credentials = validation.connect_auth(auth)
        except Invalid as problem:
            raise socketio.exceptions.ConnectionRefusedError(str(problem)) from None
        session = SocketSession(ip=validation.client_ip(environ, self.proxy_hops),
                                tokens=float(self.rate))
        if credentials.guest:
            guest_id, refused = self._guest_id(credentials.guest_id, credentials.resume_token)
            if not self._new_record_allowed(guest_id, session, guest=True):
                raise socketio.exceptions.ConnectionRefusedError(self._too_many_names())
            session.name, session.guest = guest_id, True
            session.display_name = credentials.display_name
            self.sessions[sid] = session
            self._deliver(guest_id, Connect(sid, session.ip, self._noticed()), True,
                          credentials.display_name)
            registered = {"guestId": guest_id, "name": credentials.display_name,
                          "resumeToken": self.presence.identities.guest_token(guest_id)}
            self.server.start_background_task(self._welcome_guest, sid, registered, refused)
            if refused is None:
                log.info("socket %s registered as guest %s (%s)", sid, guest_id,
                         credentials.display_name)
            else:
                log.info("socket %s registered as guest %s (%s) with a NEW id: resuming %s was "
                         "refused: %s (%s)", sid, guest_id, credentials.display_name,
                         credentials.guest_id, refused, refused.code)
            return True
        if credentials.name is not None:
            try:
                self._bind(sid, session, credentials.name, credentials.token, "connect")
            except Invalid as problem:
                raise socketio.exceptions.ConnectionRefusedError(str(problem)) from None
            self.sessions[sid] = session
            return True
        self.sessions[sid] = session
        if self.unnamed_timeout > 0:
            session.idle_timer = self.presence.call_later(
                self.unnamed_timeout, lambda: self._close_if_idle(sid))
        return True

    def _guest_id(self, requested: str | None,
                  resume_token: str | None) -> tuple[str, Invalid | None]:
        """The guest's id, and why the one it asked for was refused (`None`: not refused).

        `requested` is resumed only with its resume token (from `guest_registered`), even when
        no record of it is left (purged at start-up, cleaned up), and never when a registered
        client holds that name; else the guest gets a new id.
        """
        if requested is None:
            return f"{GUEST_PREFIX}{uuid.uuid4().hex[:16]}", None
        try:
            self.presence.identities.verify_guest(requested, resume_token)
        except Invalid as problem:
            return f"{GUEST_PREFIX}{uuid.uuid4().hex[:16]}", problem
        record = self.presence.current(requested)
        if record is not None and not record.guest:
            return f"{GUEST_PREFIX}{uuid.uuid4().hex[:16]}", Invalid(
                "guest_id_taken", f"{requested!r} is a registered client, not a guest")
        return requested, None

    def _welcome_guest(self, sid: str, registered: dict[str, Any],
                       refused: Invalid | None) -> None:
        """After the connect: `error` (why the id asked for was refused), `guest_registered`."""
        if refused is not None:
            self.server.emit("error", {"code": refused.code, "message": str(refused),
                                       "event": "connect"}, to=sid)
        self.server.emit("guest_registered", registered, to=sid)

    def on_disconnect(self, sid: str, reason: Any = None, *_: Any) -> None:
        session = self.sessions.pop(sid, None)
        if reason == self.server.reason.CLIENT_DISCONNECT:  # left the namespace; may stay open
            self.on_transport_open(self.server.manager.eio_sid_from_sid(sid, "/"))
        if session is None:
            return
        self._registered(session)
        session.complaints.flush(sid)
        if session.name is None or self.presence.shutting_down:
            return
        self._deliver(session.name, Disconnect(sid, self._noticed()))

    # --- events -----------------------------------------------------------------------------------
    def on_heartbeat(self, sid: str, data: Any) -> Reply:
        session = self.sessions[sid]
        payload = validation.mapping(data, "heartbeat")
        raw_name = payload.get("clientName")
        if raw_name is None and session.name is not None:
            name = session.name
        else:
            name = validation.name(raw_name, "clientName")
        ip = validation.optional_ip(payload.get("ip_address")) or session.ip
        validation.optional_timestamp(payload.get("timestamp"))
        self._bind(sid, session, name, validation.optional_token(payload.get("token")),
                   "heartbeat")
        noticed = self._noticed()
        self._deliver(name, Heartbeat(sid, ip, noticed))
        now = self._now()
        self.presence.heartbeat_handled(now - noticed)  # metrics: O(1), no lock
        return Reply("heartbeat_response", {
            "status": "ok",
            "timestamp": iso(now),
            "message": "heartbeat received",
            "nextHeartbeatIn": self.next_heartbeat_ms,
        })

    def on_status_request(self, sid: str, data: Any) -> Reply:
        payload = validation.mapping(data, "client_status_request")
        name = validation.name(payload.get("clientName"), "clientName")
        # read your own writes: answered after what this socket sent before has been handled
        status = self.presence.status_of(name)
        return Reply("server_status_response", {
            "serverStatus": "online",
            "clientStatus": status,
            "timestamp": iso(self._now()),
            "serverUptime": round(self.presence.uptime(), 3),
            "message": "the server is running" if status else f"no client named {name!r}",
        })

    def on_reconnection_success(self, sid: str, data: Any) -> None:
        name = self._own_name(sid, data, "reconnection_success")
        log.info("client reports a successful reconnection: %s", name)
        self._deliver(name, ReconnectionSuccess(sid, self._noticed()))
        return None

    def on_check_response(self, sid: str, data: Any) -> None:
        name = self._own_name(sid, data, "connection_check_response", key="client_name")
        self._deliver(name, CheckAnswered(sid, self._noticed()))
        return None

    def on_watch(self, sid: str, data: Any) -> Reply:
        """Join the watchers; answer a snapshot of `names` (or of at most `watch_limit`
        records) with its `eventId`, or the changes after `since` (web/watch.py).

        The answer is charged to the socket's event budget: one event per
        `WATCH_RECORDS_PER_EVENT` records or changes on top of the request itself. While a
        secret is set, sockets without a verified identity get records without `ip`.
        """
        session = self.sessions[sid]
        payload = validation.optional_mapping(data, "watch")
        names = self._watch_names(payload.get("names"))
        since = None
        if payload.get("since") is not None:
            since = parse_event_id(payload["since"])
            if since is None:
                raise Invalid("invalid_payload", "watch since must be an eventId (a whole "
                                                 "number >= 0, or its decimal string)")
        session.watching = True
        self._registered(session)
        hide_ip = self.presence.identities.required and not session.authenticated
        body, items = self.watch.answer(sid, names, since, hide_ip)
        session.tokens -= items / WATCH_RECORDS_PER_EVENT
        return Reply("watch_snapshot", body)

    def _watch_names(self, names: Any) -> list[str] | None:
        if names is None:
            return None
        if not isinstance(names, list) or len(names) > self.watch_limit:
            raise Invalid("invalid_payload", f"watch names must be a list of at most "
                                             f"{self.watch_limit} client names")
        return list(dict.fromkeys(validation.name(name, "names[]") for name in names))

    def on_unwatch(self, sid: str, data: Any) -> Reply:
        validation.optional_mapping(data, "unwatch")
        self.watch.leave(sid)
        return Reply("unwatch_response", {"status": "ok"})

    def on_send(self, sid: str, data: Any) -> Reply:
        """Targeted delivery from this socket's identity (web/send.py); ack `{delivered}`.
        Bytes delivered are charged to the socket's budget (one event per 64 KiB)."""
        session = self.sessions[sid]
        if session.name is None:
            raise Invalid("not_registered", "send: register a name (or connect as a guest) "
                                             "before sending")
        delivery = self.sender.parse(data)
        delivered = self.sender.deliver(session.name, delivery)
        session.tokens -= self.sender.cost(delivery, delivered)
        return Reply("send", {"delivered": delivered}, ack_only=True)

    def on_unknown_event(self, event: str, sid: str, *args: Any) -> Reply | None:
        """An event no handler knows: charged to the budget like any other, one `error`."""
        session = self.sessions.get(sid)
        if session is None:
            return None
        event = str(event)[:MAX_EVENT_NAME]
        try:
            self._spend(sid, session)
            payload = self._error(sid, event, "unknown_event", f"unknown event {event!r}")
        except RateLimited:
            payload = self._rate_limited(sid, event)
        return Reply("error", {**payload, "status": "error"}, ack_only=True)

    # --- packet-level rejections (web/limits.py) --------------------------------------------------
    def on_malformed(self, eio_sid: str, problem: str) -> None:
        """A packet that is no Socket.IO packet: an `error` (rate-limited); no traceback."""
        sid = self.server.manager.sid_from_eio_sid(eio_sid, "/")
        session = self.sessions.get(sid) if sid is not None else None
        if session is None:  # nothing to answer on: close the connection
            transport_complaints.note("sockets before connect", None, "malformed_packet",
                                      f"{eio_sid}: {printable(problem)}")
            self._end_session(eio_sid)
            return
        try:
            self._spend(sid, session)
            self._error(sid, None, "malformed_packet", problem)
        except RateLimited:
            self._rate_limited(sid, None)

    def on_too_large(self, eio_sid: str, size: int) -> None:
        """A message whose binary attachments exceed `max_http_buffer_size`: close the socket."""
        sid = self.server.manager.sid_from_eio_sid(eio_sid, "/")
        limit = self.server.eio.max_http_buffer_size
        if sid is not None:
            self._error(sid, None, "message_too_large",
                        f"a message may hold at most {limit} bytes; closing")
        else:
            log.info("binary message of over %d bytes from %s; closing", limit, eio_sid)
        self._end_session(eio_sid)
