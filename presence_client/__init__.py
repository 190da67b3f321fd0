"""Python client SDK of the presence server: heartbeats, watches, targeted delivery, reconnects
forever; and ``Admin``, the HTTP API for an app server."""

from ._admin import Admin, FeedEvent
from ._backoff import Backoff, shutdown_delay
from ._client import DEFAULT_HEARTBEAT_INTERVAL, PresenceClient
from ._state import (
    AdminError,
    NotConnectedError,
    NotOnlineError,
    PresenceError,
    RequestTimeout,
    SendError,
    State,
    StateChange,
)

__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL",
    "Admin",
    "AdminError",
    "Backoff",
    "FeedEvent",
    "NotConnectedError",
    "NotOnlineError",
    "PresenceClient",
    "PresenceError",
    "RequestTimeout",
    "SendError",
    "State",
    "StateChange",
    "shutdown_delay",
]
