"""Every change this process makes to third-party code, each behind a version guard.

Six hooks make the server lighter (or, `ping_timeout`, kinder to clients) than its libraries
allow by themselves:

- `writer` (web/writer.py): engineio's `Socket.poll`, so a websocket writer waits without a timer
  per packet; python-engineio 4.9 to 4.15.
- `pings` (web/pings.py): engineio's `Socket.schedule_ping`, on hub timers instead of a sleeping
  greenlet per socket; python-engineio 4.14 to 4.15.
- `ping_timeout` (web/pings.py): engineio's `Socket.check_ping_timeout`, closing a timed-out
  socket's transport with no goodbye (so its client reconnects), and not for a stall of this
  process (pongs queued unread while it did not run); python-engineio 4.14 to 4.15.
- `frames` (web/frames.py): gevent-websocket's `Header.mask_payload`, in C with wsaccel;
  gevent-websocket 0.10, wsaccel 0.6.
- `replies` (web/sockets.py `ReplyServer`): socketio's `Server._handle_event_internal`, sending
  a handler's `Reply` as the ack or as its event; python-socketio 5.10 to 5.18.
- `rooms` (web/rooms.py): socketio's manager disconnects in O(the socket's rooms);
  python-socketio 5.10 to 5.18.

Each hook checks the installed version before it changes anything. Outside the range it was
tested with (a newer release may have changed the internals it replaces) it logs one warning and
leaves the library's stock behaviour in place: slower, never wrong. `/api/stats` shows each
hook's `status` (`active` or `stock`), the `versions` it met and why it is stock. Every
replacement goes through `Hook.patch`, which keeps the original for the differential tests
(tests/unit/test_hooks.py, test_rooms.py, test_frames.py compare each hook with the stock code
of the installed version). To accept a new release: run those tests against it, then widen the
range here and the upper pin in setup.py.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

log = logging.getLogger("presence.hooks")

ACTIVE = "active"
STOCK = "stock"


def version_tuple(version: str) -> tuple[int, ...]:
    """`"4.15.1"` -> `(4, 15, 1)`; suffixes are ignored (`"5.0rc1"` -> `(5, 0)`)."""
    numbers = []
    for part in version.split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
        if match.end() != len(part):
            break
    return tuple(numbers)


@dataclass(frozen=True)
class Requirement:
    """A library a hook changes, with the range of versions the hook was tested against."""

    distribution: str
    minimum: str
    below: str

    def admits(self, version: str) -> bool:
        return version_tuple(self.minimum) <= version_tuple(version) < version_tuple(self.below)

    def __str__(self) -> str:
        return f"{self.distribution}>={self.minimum},<{self.below}"


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@dataclass
class Hook:
    """One change to third-party code: its guard, its status and the originals it replaced."""

    name: str
    what: str
    requires: tuple[Requirement, ...]
    status: str = STOCK
    reason: str | None = "not installed"
    versions: dict[str, str | None] = field(default_factory=dict)
    originals: dict[tuple[Any, str], Any] = field(default_factory=dict)
    warned: bool = False
    checked: bool = False

    def enabled(self) -> bool:
        """For a hook that lives in a subclass (`replies`): the guard's verdict, asked once."""
        if self.status == ACTIVE:
            return True
        if self.checked:
            return False
        self.checked = True
        if self.allowed():
            self.activate()
            return True
        return False

    def allowed(self, versions: dict[str, str | None] | None = None) -> bool:
        """True when every library is in its tested range (default: the installed versions).

        Otherwise the hook stays stock, with one warning per process saying why.
        """
        if versions is None:
            versions = {req.distribution: installed_version(req.distribution)
                        for req in self.requires}
        self.versions = dict(versions)
        for req in self.requires:
            version = versions.get(req.distribution)
            if version is None or not req.admits(version):
                seen = "not installed" if version is None else version
                self.stock(f"{req.distribution} {seen} is outside the tested range {req}")
                if not self.warned:
                    self.warned = True
                    log.warning("%s hook (%s): %s, so it keeps the library's stock behaviour",
                                self.name, self.what, self.reason)
                return False
        return True

    def patch(self, owner: Any, attribute: str, replacement: Any) -> None:
        """Set `owner.attribute = replacement`, keeping the original; the hook is then active."""
        key = (owner, attribute)
        if key not in self.originals:
            self.originals[key] = owner.__dict__[attribute]
        setattr(owner, attribute, replacement)
        self.activate()

    def original(self, owner: Any, attribute: str) -> Any:
        """The library's own `owner.attribute`, whether this hook replaced it or not."""
        return self.originals.get((owner, attribute), owner.__dict__[attribute])

    def restore(self) -> None:
        """Put every original back (the stock behaviour); the hook is then stock."""
        for (owner, attribute), value in self.originals.items():
            setattr(owner, attribute, value)
        self.originals.clear()
        self.stock("restored")

    def activate(self) -> None:
        self.status, self.reason = ACTIVE, None
        self.checked = True

    def stock(self, reason: str) -> None:
        self.status, self.reason = STOCK, reason

    def snapshot(self) -> dict[str, Any]:
        if not self.versions:
            self.versions = {req.distribution: installed_version(req.distribution)
                             for req in self.requires}
        body: dict[str, Any] = {"status": self.status, "versions": dict(self.versions),
                                "tested": [str(req) for req in self.requires]}
        if self.reason:
            body["reason"] = self.reason
        return body


ENGINEIO_POLL = Requirement("python-engineio", "4.9", "4.16")
ENGINEIO_PINGS = Requirement("python-engineio", "4.14", "4.16")  # 4.14 gated re-scheduling
SOCKETIO = Requirement("python-socketio", "5.10", "5.19")

WRITER = Hook("writer", "websocket writer waits without a timer per packet", (ENGINEIO_POLL,))
PINGS = Hook("pings", "Engine.IO pings on hub timers", (ENGINEIO_PINGS,))
PING_TIMEOUT = Hook("ping_timeout", "a ping timeout closes the transport, never for a stall",
                    (ENGINEIO_PINGS,))
FRAMES = Hook("frames", "WebSocket frames unmasked in C",
              (Requirement("gevent-websocket", "0.10", "0.11"),
               Requirement("wsaccel", "0.6", "0.7")))
REPLIES = Hook("replies", "a Reply sent as the ack or as its event", (SOCKETIO,))
ROOMS = Hook("rooms", "disconnect in O(the socket's rooms)", (SOCKETIO,))

HOOKS: dict[str, Hook] = {hook.name: hook for hook in (WRITER, PINGS, PING_TIMEOUT, FRAMES,
                                                      REPLIES, ROOMS)}


class _RepliesUnwrapped:
    """A python-socketio server whose handler results are plain values again (`replies` stock).

    Stock dispatch sends a handler's result as the ack, or drops it when no ack was asked for;
    a `Reply` is turned into its payload for the ack, or emitted as its event when none was asked
    for, so clients see the same packets either way.
    """

    def __init__(self, server: Any, reply_type: type, sid: str, namespace: str,
                 ack_id: Any) -> None:
        self._server, self._reply_type = server, reply_type
        self._sid, self._namespace, self._ack_id = sid, namespace, ack_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def _trigger_event(self, *args: Any) -> Any:
        result = self._server._trigger_event(*args)
        if not isinstance(result, self._reply_type):
            return result
        if self._ack_id is None:
            if not result.ack_only:
                self._server.emit(result.event, result.payload, to=self._sid,
                                  namespace=self._namespace)
            return None
        return result.payload


def stock_replies(stock: Any, reply_type: type, server: Any, sid: str, eio_sid: str,
                  data: Any, namespace: str, id: Any) -> Any:
    """python-socketio's own `_handle_event_internal` (`stock`), with `Reply` results unwrapped."""
    unwrapped = _RepliesUnwrapped(server, reply_type, sid, namespace, id)
    return stock(unwrapped, sid, eio_sid, data, namespace, id)


def status() -> dict[str, dict[str, Any]]:
    """Each hook's status, the versions it met and the range it was tested with (/api/stats)."""
    REPLIES.enabled()  # ReplyServer asks at its first event; decide now if nothing asked yet
    return {name: hook.snapshot() for name, hook in HOOKS.items()}
