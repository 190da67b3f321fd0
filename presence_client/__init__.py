"""Python client SDK of the presence server: heartbeats, watches, and reconnects forever."""

from ._backoff import Backoff, shutdown_delay
from ._client import DEFAULT_HEARTBEAT_INTERVAL, PresenceClient
from ._state import NotConnectedError, PresenceError, RequestTimeout, State, StateChange

__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL",
    "Backoff",
    "NotConnectedError",
    "PresenceClient",
    "PresenceError",
    "RequestTimeout",
    "State",
    "StateChange",
    "shutdown_delay",
]
