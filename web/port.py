"""What the web layer needs of presence: the narrow port its handlers and routes talk to.

`presence_server.presence.Presence` is the implementation; tests or another core may provide
their own. Nothing in web/ reaches past it to actors, the supervisor or the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from presence_server.actors.clock import Cancelable
from presence_server.store.records import Change, ClientRecord, FeedPage, Transition

from .identity import Identities


class PresencePort(Protocol):
    node: str
    identities: Identities
    shutting_down: bool

    def now(self) -> float:
        """Wall-clock time (epoch seconds) from the injected clock."""

    def noticed(self) -> float:
        """When the socket event being handled reached the process."""

    def uptime(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancelable:
        """Run `callback` after `delay` seconds on the injected scheduler."""

    def deliver(self, name: str, message: Any, guest: bool = False,
                display_name: str | None = None) -> None:
        """Hand a message to the client's actor; never waits (the heartbeat path)."""

    def send_to(self, name: str, event: str, payload: dict[str, Any]) -> int:
        """Emit `event` with `payload` to every live socket of client `name` (targeted
        delivery, CONTRACT §9); how many sockets it reached, 0 when none (nothing is queued).
        Never waits on an actor or the store."""

    def heartbeat_handled(self, seconds: float) -> None:
        """Count one heartbeat handled in `seconds` for the metrics; O(1) (the hot path)."""

    def status_of(self, name: str) -> str | None:
        """The client's status after every message sent for it before was handled."""

    def current(self, name: str) -> ClientRecord | None:
        """The client as its actor holds it now, else as stored; None when unknown."""

    def record(self, name: str) -> ClientRecord | None: ...

    def transitions(self, name: str) -> list[Transition]: ...

    def clients(self, status: str | None = None, guest: bool | None = None
                ) -> Iterable[ClientRecord]: ...

    def named(self, names: Iterable[str]) -> list[ClientRecord]: ...

    def total(self) -> int: ...

    def feed_position(self) -> int:
        """The newest change's event id; read with records (no switch between), their position."""

    def changes_since(self, event_id: int, limit: int) -> FeedPage:
        """The changes after `event_id`, at most `limit`; `complete=False`: resync."""

    def subscribe_changes(self, listener: Callable[[Change], None]) -> None:
        """Call `listener(change)` on every change, in order; it must not block."""

    def subscribe_resets(self, listener: Callable[[], None]) -> None:
        """Call `listener()` when the feed had a gap (several nodes): resync from a snapshot."""

    def stats(self) -> dict[str, Any]: ...

    def nodes(self) -> list[dict[str, Any]]:
        """The nodes sharing the store: `{node, started, lease_age, connections, alive}`."""

    def metrics(self, accept: str | None = None) -> tuple[bytes, str]:
        """Prometheus exposition for `GET /metrics` (format chosen by `accept`), content type."""

    def health(self) -> dict[str, Any]: ...

    def kick(self, name: str) -> ClientRecord | None: ...

    def delete_client(self, name: str) -> bool: ...

    def delete_guests(self, guest_id: str | None = None, before: float | None = None) -> int: ...
