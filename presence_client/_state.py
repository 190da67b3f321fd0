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
