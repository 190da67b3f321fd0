"""The client's connection states, state-change records and exceptions."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.StrEnum):
    """Where a :class:`PresenceClient` stands. Compares equal to its string value."""

    CONNECTING = "connecting"  # started, never online yet
    ONLINE = "online"  # connected, registered, heartbeating
    RECONNECTING = "reconnecting"  # was online, lost the server, trying again
    STOPPED = "stopped"  # closed; never reconnects


@dataclass(frozen=True)
class StateChange:
    """One transition, handed to ``on_state_change`` callbacks."""

    state: State
    previous: State
    reason: str
    at: float  # time.time() of the change


class PresenceError(Exception):
    """Base class of this package's errors."""


class NotConnectedError(PresenceError):
    """The request needs a live connection and the client is not online."""


class RequestTimeout(PresenceError, TimeoutError):
    """The server did not answer a request within its timeout."""


class SendError(PresenceError):
    """The server refused a targeted delivery: ``code`` says why (``not_online``,
    ``reserved_event``, ``invalid_event``, ``payload_too_large``, ``rate_limited``, …);
    ``status`` is the HTTP status when it came from :class:`Admin`, else ``None``."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class NotOnlineError(SendError):
    """The target has no live socket (absent, offline or reconnecting); nothing was queued."""


class AdminError(PresenceError):
    """An admin request failed: HTTP ``status`` with the server's ``code`` and ``message``
    (401 ``unauthorized``, 403 ``admin_disabled``, 400 ``invalid_query``, …)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def send_error(code: str, message: str, status: int | None = None) -> SendError:
    """The exception for a refused delivery (``NotOnlineError`` for ``not_online``)."""
    kind = NotOnlineError if code == "not_online" else SendError
    return kind(code, message, status)
