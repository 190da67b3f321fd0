"""PresenceClient: one presence identity over Socket.IO that heartbeats and reconnects forever.

One supervisor thread owns the connection life cycle: connect (retrying until the server appears),
register, heartbeat, and on any loss wait (backoff with jitter, or the server's ``reconnectAfter``)
and connect again with a fresh ``socketio.Client``. python-socketio's own reconnection is off, so
these rules are the only ones in force. Socket.IO handlers only record what happened and wake the
supervisor; user callbacks run on a separate dispatcher thread.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlparse

import socketio
from socketio import exceptions as sio_errors

from ._backoff import Backoff, Random, shutdown_delay
from ._dispatch import Dispatcher
from ._state import (
    NotConnectedError,
    PresenceError,
    RequestTimeout,
    State,
    StateChange,
    send_error,
)

log = logging.getLogger("presence_client")

DEFAULT_HEARTBEAT_INTERVAL = 30.0
"""Seconds between heartbeats until the server advises ``nextHeartbeatIn``."""
DEFAULT_RECONNECT_AFTER = 5.0
"""Seconds to wait after a ``server_shutdown`` notice that names no ``reconnectAfter``."""
MIN_HEARTBEAT_INTERVAL = 0.1
"""Floor for a server-advised interval, so a bad advice cannot turn heartbeats into a flood."""

CLOSE_WAIT = 1.0
"""Seconds close() waits for the connection's closing handshake."""

Handler = Callable[[Any], None]
StateCallback = Callable[[StateChange], None]
F = TypeVar("F", bound=Callable[..., Any])


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _message(data: Any) -> str:
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return str(data)


class _Connection:
    """One ``socketio.Client`` and what happened on it. Fields are guarded by the client's lock."""

    def __init__(self, sio: socketio.Client, number: int) -> None:
        self.sio = sio
        self.number = number
        self.refused: str | None = None  # the server's connect_error message
        self.lost: str | None = None  # why this connection is no longer usable
        self.guest_id: str | None = None
        self.resume_at: float | None = None  # after server_shutdown: no connect before this
        self.heartbeat_seq = 0
        self.reply_deadline: float | None = None  # a heartbeat awaits its reply until then
        self.next_heartbeat = 0.0  # monotonic time of the next heartbeat; 0 = right away


class PresenceClient:
    """A presence client that stays registered for as long as it runs.

    ``PresenceClient(url, "alice").start()`` connects in the background and keeps going until
    :meth:`close`: it never gives up on the server and never stops because the server went away.
    ``guest=True`` makes ``name`` the display name of a guest; the server assigns :attr:`guest_id`.
    """

    def __init__(
        self,
        url: str,
        name: str,
        *,
        token: str | None = None,
        guest: bool = False,
        guest_id: str | None = None,
        guest_resume_token: str | None = None,
        heartbeat_interval: float | None = None,
        heartbeat_timeout: float = 10.0,
        backoff: Backoff | None = None,
        shutdown_spread: float | None = None,
        connect_timeout: float = 10.0,
        transports: Iterable[str] | None = ("websocket",),
        headers: dict[str, str] | None = None,
        ssl_verify: bool = True,
        random_source: Random | None = None,
    ) -> None:
        """Configure a client; nothing happens until :meth:`start`.

        :param url: the server, ``http(s)://host:port`` (``ws(s)://`` works too).
        :param name: the client name to register, or a guest's display name.
        :param token: identity token, sent as ``auth.token`` when the server requires one.
        :param guest: register as a guest (``auth.guest``) instead of by name.
        :param guest_id: a guest id from an earlier run, to keep that id.
        :param guest_resume_token: the ``resumeToken`` that came with ``guest_id`` (see
            :attr:`guest_resume_token`); the server gives the id back only with it.
        :param heartbeat_interval: seconds between heartbeats; overrides the server's advice.
            ``None`` (default) follows ``nextHeartbeatIn``, 30 s until the server has said.
        :param heartbeat_timeout: seconds a heartbeat may wait for its reply before the connection
            counts as broken and is replaced.
        :param backoff: delays between connection attempts (exponential with jitter).
        :param shutdown_spread: width (s) of the random window added to ``reconnectAfter`` after a
            ``server_shutdown``; default ``max(1 s, reconnectAfter)``.
        :param connect_timeout: seconds one connection attempt may take.
        :param transports: Engine.IO transports; ``None`` = polling first, then upgrade.
        :param headers: extra HTTP headers for the connection request.
        :param ssl_verify: verify the server's TLS certificate.
        :param random_source: a callable returning floats in [0, 1), for jitter (tests pin it).
        """
        scheme = urlparse(url).scheme
        if scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"url must be http(s):// or ws(s)://, got {url!r}")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("name must be a non-empty string")
        for label, value in (("heartbeat_timeout", heartbeat_timeout),
                             ("connect_timeout", connect_timeout)):
            if not value > 0:
                raise ValueError(f"{label} must be > 0, got {value!r}")
        if heartbeat_interval is not None and not heartbeat_interval > 0:
            raise ValueError(f"heartbeat_interval must be > 0, got {heartbeat_interval!r}")
        if guest_resume_token is not None and not guest_id:
            raise ValueError("guest_resume_token needs the guest_id it was issued for")
        if shutdown_spread is not None and shutdown_spread < 0:
            raise ValueError(f"shutdown_spread must be >= 0, got {shutdown_spread!r}")
        self._url = url
        self._name = name
        self._token = token
        self._guest = guest
        self._guest_id = guest_id
        self._guest_resume_token = guest_resume_token
        self._interval_override = heartbeat_interval
        self._advised_interval: float | None = None
        self._heartbeat_timeout = heartbeat_timeout
        self._backoff = backoff or Backoff()
        self._shutdown_spread = shutdown_spread
        self._connect_timeout = connect_timeout
        self._transports = list(transports) if transports is not None else None
        self._headers = dict(headers or {})
        self._ssl_verify = ssl_verify
        self._random: Random = random_source or random.Random().random

        self._cond = threading.Condition()
        self._state = State.CONNECTING
        self._reason = "not started"
        self._stopping = False
        self._ever_online = False
        self._conn: _Connection | None = None
        self._connections = 0
        self._last_reply: dict[str, Any] | None = None
        self._handlers: dict[str, list[Handler]] = {}
        self._state_callbacks: list[StateCallback] = []
        self._watchers: list[tuple[Handler, frozenset[str] | None]] = []
        self._snapshot_callbacks: list[Handler] = []
        self._watching = False
        self._thread: threading.Thread | None = None
        self._dispatcher = Dispatcher(f"presence-callbacks-{name}")

    # ----------------------------------------------------------------- public API

    @property
    def state(self) -> State:
        """``connecting``, ``online``, ``reconnecting`` or ``stopped``."""
        return self._state

    @property
    def reason(self) -> str:
        """Why the client is in its current state (the last ``StateChange.reason``)."""
        return self._reason

    @property
    def name(self) -> str:
        """The name given at construction (a guest's display name)."""
        return self._name

    @property
    def guest_id(self) -> str | None:
        """The id the server assigned to this guest (``None`` before it has, or for non-guests)."""
        return self._guest_id

    @property
    def guest_resume_token(self) -> str | None:
        """The ``resumeToken`` of :attr:`guest_id`, sent back on every reconnect to keep the id.

        Save it with the id to resume both in a later run (``guest_id=``,
        ``guest_resume_token=``): without it the server assigns a new id.
        """
        return self._guest_resume_token

    @property
    def identity(self) -> str | None:
        """The name this client heartbeats as: its name, or its guest id."""
        return self._guest_id if self._guest else self._name

    @property
    def url(self) -> str:
        return self._url

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats now: the override, else the server's advice, else 30 s."""
        if self._interval_override is not None:
            return self._interval_override
        if self._advised_interval is not None:
            return self._advised_interval
        return DEFAULT_HEARTBEAT_INTERVAL

    @property
    def last_heartbeat_reply(self) -> dict[str, Any] | None:
        """The last ``status: ok`` heartbeat reply."""
        return self._last_reply

    def start(self) -> PresenceClient:
        """Start connecting in the background; returns at once. Returns ``self``."""
        with self._cond:
            if self._state is State.STOPPED:
                raise PresenceError("a closed PresenceClient cannot be started again")
            if self._thread is not None:
                return self
            self._reason = "starting"
            self._thread = threading.Thread(
                target=self._run, name=f"presence-client-{self._name}", daemon=True)
            self._dispatcher.start()
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Disconnect and stop for good: state ``stopped``, no further reconnects.

        Waits up to ``timeout`` seconds for the background work (and queued callbacks) to finish.
        Safe to call more than once and from a callback.
        """
        with self._cond:
            self._stopping = True
            thread = self._thread
            if thread is None:
                self._set_state(State.STOPPED, "closed")
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._dispatcher.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the client is stopped (by :meth:`close`); ``False`` on timeout."""
        return self.wait_for(State.STOPPED, timeout)

    def wait_for(self, state: State | str, timeout: float | None = None) -> bool:
        """Block until the client is in ``state``; ``False`` on timeout."""
        wanted = State(state)
        with self._cond:
            return self._cond.wait_for(lambda: self._state is wanted, timeout)

    def wait_online(self, timeout: float | None = None) -> bool:
        """Block until the client is online; ``False`` on timeout."""
        return self.wait_for(State.ONLINE, timeout)

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Call ``handler(data)`` for every server event ``event``; usable as a decorator.

        Events other clients (or the app server) deliver with ``send`` arrive here too, as
        ``{from, data, sentAt}``: ``client.on("call_invite", lambda m: ...)``.
        Any event name works: ``server_shutdown``, ``connection_check``, ``error``,
        ``guest_registered``, ``heartbeat_response`` (every heartbeat reply),
        ``client_status_changed``, ``client_reconnected``, … plus two local events:
        ``connect_attempt {attempt, url, at}`` as each connection attempt starts (``at`` is
        ``time.time()``) and ``connect_error {message, retryIn}`` when one fails. The client answers
        ``connection_check`` and acts on ``server_shutdown`` by itself either way. Handlers run
        on one callback thread, in order; they may call back into the client.
        """
        def register(fn: F) -> F:
            with self._cond:
                self._handlers.setdefault(event, []).append(fn)
            return fn
        if handler is None:
            return register
        return register(handler)

    def on_state_change(self, callback: F) -> F:
        """Call ``callback(StateChange)`` on every state change; usable as a decorator."""
        with self._cond:
            self._state_callbacks.append(callback)
        return callback

    def watch(self, on_change: Handler, *, on_snapshot: Handler | None = None,
              names: Iterable[str] | None = None,
              timeout: float = 10.0) -> dict[str, Any] | None:
        """Subscribe to status changes (``watch {}``, or ``watch {names}`` with ``names``).

        ``on_change(event)`` gets each ``client_status_changed`` (of ``names`` only, when
        given: e.g. a caller watching its callee). Returns the snapshot ``{clients: [...]}``
        when online, else ``None``: the subscription is then made as soon as the client is
        online. After every reconnect the client watches again and hands the fresh snapshot to
        ``on_snapshot``. Several calls add up: the server is asked for the union of the names
        (everyone once any call gave none).
        """
        wanted = frozenset(names) if names is not None else None
        with self._cond:
            self._watchers.append((on_change, wanted))
            if on_snapshot is not None:
                self._snapshot_callbacks.append(on_snapshot)
            self._watching = True
            online = self._state is State.ONLINE
            request = self._watch_request()
        if not online:
            return None
        snapshot = self._request("watch", request, timeout)
        if on_snapshot is not None:
            self._dispatcher.submit(on_snapshot, snapshot)
        return snapshot

    def _watch_request(self) -> dict[str, Any]:
        """The ``watch`` payload for every subscription so far (caller holds the lock)."""
        wanted: set[str] = set()
        for _, names in self._watchers:
            if names is None:
                return {}
            wanted |= names
        return {"names": sorted(wanted)}

    def unwatch(self, timeout: float = 10.0) -> None:
        """Drop every watch callback and tell the server (``unwatch {}``) when online."""
        with self._cond:
            self._watchers.clear()
            self._snapshot_callbacks.clear()
            self._watching = False
            online = self._state is State.ONLINE
        if online:
            self._request("unwatch", {}, timeout)

    def status_of(self, name: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """Ask the server about ``name`` (default: this client): ``client_status_request``.

        Returns ``{serverStatus, clientStatus, timestamp, serverUptime, message}``. Raises
        :class:`NotConnectedError` unless online, :class:`RequestTimeout` with no answer in time.
        """
        return self._request("client_status_request", {"clientName": name or self.identity},
                             timeout)

    def send(self, to: str, event: str, data: Any = None, timeout: float = 10.0) -> int:
        """Deliver ``event`` with ``data`` to every socket of client ``to`` (a name or a guest
        id): ``send {to, event, data}``. They get ``{from, data, sentAt}`` with ``from`` this
        client's identity; they listen with :meth:`on`.

        Returns how many sockets it reached. Raises :class:`NotOnlineError` when ``to`` has no
        live socket (nothing is queued), :class:`SendError` (with ``code``) for any other
        refusal (``reserved_event``, ``invalid_event``, ``payload_too_large``,
        ``rate_limited``, …), :class:`NotConnectedError` unless online, :class:`RequestTimeout`
        with no answer in time.
        """
        reply = self._request("send", {"to": to, "event": event, "data": data}, timeout)
        if isinstance(reply, dict) and isinstance(reply.get("delivered"), int):
            return reply["delivered"]
        if isinstance(reply, dict) and reply.get("code"):
            raise send_error(str(reply["code"]), _message(reply))
        raise PresenceError(f"send: unexpected answer {reply!r}")

    def __enter__(self) -> PresenceClient:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        who = f"guest {self._name!r} ({self._guest_id})" if self._guest else repr(self._name)
        return f"<PresenceClient {who} {self._url} {self._state.value}>"

    # ----------------------------------------------------------------- supervisor

    def _run(self) -> None:
        """The supervisor: connect, serve, and on any loss wait and connect again, until close."""
        attempt = 0
        not_before = 0.0
        try:
            while self._sleep_until(not_before):
                conn: _Connection | None = None
                try:
                    conn, error = self._open()
                    if conn is None:
                        attempt += 1
                        delay = self._backoff.delay(attempt, self._random)
                        not_before = time.monotonic() + delay
                        log.info("connecting to %s failed (%s); next try in %.2fs",
                                 self._url, error, delay)
                        self._emit_user("connect_error", {"message": error, "retryIn": delay})
                        continue
                    stopped, reason = self._serve(conn)
                    self._dispose(conn, wait=stopped)
                    if stopped:
                        break
                    with self._cond:
                        if self._conn is conn:
                            self._conn = None
                        resume_at = conn.resume_at
                        state = State.RECONNECTING if self._ever_online else State.CONNECTING
                        self._set_state(state, reason)
                    log.info("connection to %s lost: %s", self._url, reason)
                    if resume_at is not None:
                        attempt, not_before = 0, resume_at
                    else:
                        attempt = 1
                        not_before = time.monotonic() + self._backoff.delay(1, self._random)
                except Exception:  # a bug must not end the client: log, back off, go on
                    log.exception("presence client supervisor error")
                    if conn is not None:
                        self._dispose(conn, wait=False)
                    attempt += 1
                    not_before = time.monotonic() + self._backoff.delay(attempt, self._random)
        finally:
            with self._cond:
                self._conn = None
                self._set_state(State.STOPPED, "closed")
            self._dispatcher.stop()

    def _sleep_until(self, deadline: float) -> bool:
        """Wait until ``deadline`` (monotonic) or close; ``False`` when closing."""
        with self._cond:
            while not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                self._cond.wait(left)
            return False

    def _open(self) -> tuple[_Connection | None, str]:
        """One connection attempt: the live connection, or ``None`` and why it failed."""
        with self._cond:
            self._connections += 1
            number = self._connections
        self._emit_user("connect_attempt", {"attempt": number, "url": self._url, "at": time.time()})
        sio = socketio.Client(
            reconnection=False, handle_sigint=False, logger=False, engineio_logger=False,
            ssl_verify=self._ssl_verify, request_timeout=self._connect_timeout)
        conn = _Connection(sio, number)
        self._bind(conn)
        try:
            sio.connect(self._url, headers=self._headers, auth=self._auth(),
                        transports=self._transports, wait_timeout=self._connect_timeout)
        except Exception as exc:
            self._dispose(conn, wait=False)
            with self._cond:
                refused = conn.refused
            if not isinstance(exc, sio_errors.ConnectionError):
                log.warning("unexpected error connecting to %s", self._url, exc_info=True)
            return None, refused or str(exc) or type(exc).__name__
        return conn, ""

    def _auth(self) -> dict[str, Any]:
        if self._guest:
            auth: dict[str, Any] = {"guest": True, "name": self._name}
            if self._guest_id:
                auth["guestId"] = self._guest_id
                if self._guest_resume_token:
                    auth["resumeToken"] = self._guest_resume_token
            return auth
        auth = {"clientName": self._name}
        if self._token is not None:
            auth["token"] = self._token
        return auth

    def _serve(self, conn: _Connection) -> tuple[bool, str]:
        """Register and heartbeat on ``conn`` until it is lost or the client closes.

        Returns ``(stopped, reason)``.
        """
        if self._guest:
            deadline = time.monotonic() + self._heartbeat_timeout
            with self._cond:
                while conn.guest_id is None and conn.lost is None and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        conn.lost = "the server sent no guest_registered"
                        break
                    self._cond.wait(left)
        with self._cond:
            if self._stopping:
                return True, "closed"
            if conn.lost is not None:
                return False, conn.lost
            reconnect = self._ever_online
            self._ever_online = True
            self._conn = conn
            if conn.resume_at is None:
                self._set_state(State.ONLINE, "reconnected" if reconnect else "connected")
            watching = self._watching
            watch_request = self._watch_request()
            identity = self.identity
        def announce() -> None:
            """After the first heartbeat: a watch snapshot is charged to the socket's event
            budget, and a heartbeat sent behind it could be refused as rate-limited."""
            if reconnect:
                conn.sio.emit("reconnection_success", {"clientName": identity})
            if watching:
                conn.sio.emit("watch", watch_request,
                              callback=lambda *args: self._on_snapshot(*args))

        return self._heartbeat_loop(conn, announce)

    def _heartbeat_loop(self, conn: _Connection,
                        after_first: Callable[[], None] | None = None) -> tuple[bool, str]:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return True, "closed"
                    if conn.lost is not None:
                        return False, conn.lost
                    now = time.monotonic()
                    if conn.resume_at is not None:  # the server is going away: just wait
                        if now >= conn.resume_at:
                            return False, "server shutdown"
                        wake = conn.resume_at
                    elif conn.reply_deadline is not None:
                        if now >= conn.reply_deadline:
                            return False, (f"no heartbeat reply within "
                                           f"{self._heartbeat_timeout:g}s")
                        wake = conn.reply_deadline
                    elif now >= conn.next_heartbeat:
                        conn.heartbeat_seq += 1
                        seq = conn.heartbeat_seq
                        conn.reply_deadline = now + self._heartbeat_timeout
                        payload = {"clientName": self.identity, "timestamp": _now_iso()}
                        break
                    else:
                        wake = conn.next_heartbeat
                    self._cond.wait(max(0.0, wake - now))
            try:
                conn.sio.emit("heartbeat", payload, callback=lambda *args, s=seq:
                              self._on_heartbeat_reply(conn, s, *args))
                if after_first is not None:
                    after_first, announce = None, after_first
                    announce()
            except sio_errors.SocketIOError as exc:
                with self._cond:
                    conn.lost = conn.lost or f"emit failed: {exc}"

    def _dispose(self, conn: _Connection, wait: bool) -> None:
        """Disconnect ``conn`` in the background; with ``wait``, give it up to CLOSE_WAIT seconds.

        The Socket.IO disconnect packet goes out at once; what can take long is the WebSocket
        closing handshake (websocket-client waits up to 3 s for the server's close frame), so
        close() waits only briefly for it.
        """
        def disconnect() -> None:
            try:
                conn.sio.disconnect()
            except Exception:
                log.debug("disconnect of connection %d failed", conn.number, exc_info=True)
        thread = threading.Thread(target=disconnect, name=f"presence-dispose-{conn.number}",
                                  daemon=True)
        thread.start()
        if wait:
            thread.join(CLOSE_WAIT)

    def _set_state(self, state: State, reason: str) -> None:
        """Change state (caller holds the lock) and queue the state callbacks."""
        if state is self._state or self._state is State.STOPPED:
            return
        change = StateChange(state=state, previous=self._state, reason=reason, at=time.time())
        self._state, self._reason = state, reason
        self._cond.notify_all()
        log.info("presence client %s: %s -> %s (%s)", self._name, change.previous, state, reason)
        for callback in self._state_callbacks:
            self._dispatcher.submit(callback, change)

    def _emit_user(self, event: str, data: Any) -> None:
        with self._cond:
            handlers = list(self._handlers.get(event, ()))
        for handler in handlers:
            self._dispatcher.submit(handler, data)

    # ----------------------------------------------------------------- Socket.IO handlers

    def _bind(self, conn: _Connection) -> None:
        on = conn.sio.on
        on("connect_error", lambda *args: self._on_refused(conn, *args))
        on("disconnect", lambda *args: self._on_disconnect(conn, *args))
        on("guest_registered", lambda *args: self._on_guest_registered(conn, *args))
        on("server_shutdown", lambda *args: self._on_shutdown(conn, *args))
        on("connection_check", lambda *args: self._on_connection_check(conn, *args))
        on("heartbeat_response", lambda *args: self._on_heartbeat_event(conn, *args))
        on("client_status_changed", lambda *args: self._on_status_changed(*args))
        on("*", lambda event, *args: self._emit_user(event, args[0] if args else None))

    def _on_refused(self, conn: _Connection, data: Any = None, *_: Any) -> None:
        with self._cond:
            conn.refused = _message(data)

    def _on_disconnect(self, conn: _Connection, reason: Any = None, *_: Any) -> None:
        with self._cond:
            if conn.lost is None:
                conn.lost = f"connection closed ({reason or 'unknown reason'})"
            self._cond.notify_all()

    def _on_guest_registered(self, conn: _Connection, data: Any = None, *_: Any) -> None:
        guest_id = data.get("guestId") if isinstance(data, dict) else None
        token = data.get("resumeToken") if isinstance(data, dict) else None
        with self._cond:
            if guest_id:
                if str(guest_id) != self._guest_id and self._guest_id is not None:
                    log.warning("guest id %s was not resumed; the server assigned %s",
                                self._guest_id, guest_id)
                conn.guest_id = self._guest_id = str(guest_id)
                self._guest_resume_token = str(token) if token else None
            else:
                conn.lost = conn.lost or f"bad guest_registered payload: {data!r}"
            self._cond.notify_all()
        self._emit_user("guest_registered", data)

    def _on_shutdown(self, conn: _Connection, data: Any = None, *_: Any) -> None:
        after_ms = data.get("reconnectAfter") if isinstance(data, dict) else None
        if isinstance(after_ms, (int, float)) and not isinstance(after_ms, bool) and after_ms >= 0:
            after = after_ms / 1000.0
        else:
            after = DEFAULT_RECONNECT_AFTER
        delay = shutdown_delay(after, self._random, self._shutdown_spread)
        self._emit_user("server_shutdown", data)  # queued before the state change it causes
        with self._cond:
            resume_at = time.monotonic() + delay
            conn.resume_at = max(conn.resume_at or 0.0, resume_at)
            if self._conn is conn:
                self._set_state(State.RECONNECTING,
                                f"server shutdown; reconnecting in {delay:.2f}s")
            self._cond.notify_all()

    def _on_connection_check(self, conn: _Connection, data: Any = None, *_: Any) -> dict[str, Any]:
        reply = {"client_name": self.identity, "timestamp": _now_iso()}
        try:
            conn.sio.emit("connection_check_response", reply)
        except sio_errors.SocketIOError:
            log.debug("could not answer connection_check", exc_info=True)
        self._emit_user("connection_check", data)
        return reply  # also the ack, for a server that asked for one

    def _on_heartbeat_event(self, conn: _Connection, data: Any = None, *_: Any) -> None:
        with self._cond:
            seq = conn.heartbeat_seq
        self._on_heartbeat_reply(conn, seq, data)

    def _on_heartbeat_reply(self, conn: _Connection, seq: int, reply: Any = None, *_: Any) -> None:
        with self._cond:
            if seq != conn.heartbeat_seq or conn.reply_deadline is None:
                return  # late or duplicate reply
            conn.reply_deadline = None
            if isinstance(reply, dict) and reply.get("status") == "ok":
                advised = reply.get("nextHeartbeatIn")
                if isinstance(advised, (int, float)) and not isinstance(advised, bool) \
                        and advised > 0:
                    self._advised_interval = max(MIN_HEARTBEAT_INTERVAL, advised / 1000.0)
                self._last_reply = reply
            elif isinstance(reply, dict) and reply.get("shouldReconnect"):
                conn.lost = conn.lost or f"heartbeat refused: {_message(reply)}"
            else:
                log.warning("heartbeat error reply: %r", reply)
            conn.next_heartbeat = time.monotonic() + self.heartbeat_interval
            self._cond.notify_all()
        self._emit_user("heartbeat_response", reply)

    def _on_status_changed(self, data: Any = None, *_: Any) -> None:
        with self._cond:
            watchers = list(self._watchers)
        name = data.get("name") if isinstance(data, dict) else None
        for watcher, names in watchers:
            if names is None or name in names:
                self._dispatcher.submit(watcher, data)
        self._emit_user("client_status_changed", data)

    def _on_snapshot(self, snapshot: Any = None, *_: Any) -> None:
        with self._cond:
            callbacks = list(self._snapshot_callbacks)
        for callback in callbacks:
            self._dispatcher.submit(callback, snapshot)

    # ----------------------------------------------------------------- requests

    def _request(self, event: str, payload: dict[str, Any], timeout: float) -> Any:
        with self._cond:
            conn = self._conn if self._state is State.ONLINE else None
            state = self._state
        if conn is None:
            raise NotConnectedError(f"{event}: the client is {state.value}, not online")
        try:
            return conn.sio.call(event, payload, timeout=timeout)
        except sio_errors.TimeoutError:
            raise RequestTimeout(f"{event}: no answer within {timeout:g}s") from None
        except sio_errors.SocketIOError as exc:
            raise NotConnectedError(f"{event}: {exc}") from exc
