"""Targeted delivery (CONTRACT §9): `send {to, event, data}` from a socket, and the admin route
`POST /api/clients/<name>/messages`.

Both check their input here, then hand one payload `{from, data, sentAt}` to the port's
`send_to(name, event, payload)`, which reaches every live socket of `name` (this node's today;
a cluster-aware port routes it to the nodes holding the client's sockets) and answers how many
it reached. Nothing is queued: no socket means `not_online`. `from` is always the sender's bound
identity (a guest's id, or `server` for the admin route), never taken from the payload.

An event name may not be one the server itself sends or handles (`SERVER_EVENTS`, compared
without case) nor one the Socket.IO libraries reserve, and must match `EVENT_NAME`: a client
listening for its app's events can never be fed a fake `client_status_changed` or `error`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from presence_server.store.records import iso

from . import validation
from .validation import Invalid

if TYPE_CHECKING:
    from .port import PresencePort

EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
EVENT_NAME_RULE = ("a letter, then at most 63 letters, digits or _ . : - "
                   "(pattern ^[A-Za-z][A-Za-z0-9_.:-]{0,63}$)")

# Every event the server sends or handles (tests/unit/test_send.py checks the code for more).
SERVER_EVENTS = frozenset({
    # handled
    "heartbeat", "client_status_request", "reconnection_success", "connection_check_response",
    "watch", "unwatch", "send",
    # sent
    "heartbeat_response", "server_status_response", "connection_check", "server_shutdown",
    "guest_registered", "client_status_changed", "client_reconnected", "client_removed",
    "watch_snapshot", "unwatch_response", "resync", "error",
})
# What Socket.IO clients (JS socket.io-client 2-4, python-socketio) and our SDK use themselves.
LIBRARY_EVENTS = frozenset({
    "connect", "connect_error", "connect_timeout", "connect_attempt", "disconnect",
    "disconnecting", "message", "newlistener", "removelistener", "ping", "pong", "reconnect",
    "reconnect_attempt", "reconnect_error", "reconnect_failed", "reconnecting",
})
RESERVED_EVENTS = frozenset(name.lower() for name in SERVER_EVENTS | LIBRARY_EVENTS)

SERVER_SENDER = "server"  # `from` of a delivery made through the admin route
BYTES_PER_EVENT = 64 * 1024  # a send costs one more event of the budget per 64 KiB delivered


@dataclass(frozen=True)
class Delivery:
    """One checked request: `event` with `data` (its JSON size in `size`) to client `to`."""

    to: str
    event: str
    data: Any
    size: int


def event_name(value: Any) -> str:
    """A deliverable event name: the charset and length of `EVENT_NAME`, not reserved."""
    if not isinstance(value, str) or EVENT_NAME.fullmatch(value) is None:
        shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
        raise Invalid("invalid_event", f"event must be {EVENT_NAME_RULE}, got {shown}")
    if value.lower() in RESERVED_EVENTS:
        raise Invalid("reserved_event", f"event {value!r} is one the server or the Socket.IO "
                                        "libraries use themselves; pick another name")
    return value


def data_size(data: Any, limit: int) -> int:
    """`data`'s size as compact UTF-8 JSON; refused when not JSON or over `limit` bytes."""
    try:
        size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError, RecursionError):
        raise Invalid("invalid_payload", "data must be plain JSON (objects, arrays, strings, "
                                         "finite numbers, booleans, null; no binary)") from None
    if size > limit:
        raise Invalid("payload_too_large",
                      f"data is {size} bytes as JSON; at most {limit} (security.max_send_bytes)")
    return size


def parse(payload: Any, to: str | None, limit: int, what: str = "send") -> Delivery:
    """Check a `send` payload `{to, event, data?}` (or, with `to` given, a route's body)."""
    body = validation.mapping(payload, what)
    if to is None:
        to = validation.name(body.get("to"), "to")
    event = event_name(body.get("event"))
    data = body.get("data")
    return Delivery(to=to, event=event, data=data, size=data_size(data, limit))


class Sender:
    """Delivers checked requests through the port; `not_online` when nothing was reached."""

    def __init__(self, presence: PresencePort, max_bytes: int) -> None:
        self.presence = presence
        self.max_bytes = max_bytes

    def parse(self, payload: Any, to: str | None = None, what: str = "send") -> Delivery:
        return parse(payload, to, self.max_bytes, what)

    def deliver(self, sender: str, delivery: Delivery) -> int:
        """Send `{from, data, sentAt}` to every socket of `delivery.to`; how many it reached."""
        message = {"from": sender, "data": delivery.data, "sentAt": iso(self.presence.now())}
        delivered = self.presence.send_to(delivery.to, delivery.event, message)
        if delivered <= 0:
            raise Invalid("not_online", f"{delivery.to!r} has no live socket (absent, offline "
                                        "or reconnecting); nothing was queued")
        return delivered

    @staticmethod
    def cost(delivery: Delivery, delivered: int) -> float:
        """Events of the socket's budget a send costs beyond the one every event costs."""
        return delivery.size * delivered / BYTES_PER_EVENT
