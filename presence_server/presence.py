"""The presence core behind one narrow port: what web/ may ask of the actors and the store.

The Socket.IO handlers and the HTTP routes get a `Presence` (its shape is `web.port.PresencePort`)
and nothing else: they deliver messages to client actors, read a client's settled status, read
records and counts, and run admin operations. They never see the runtime, the supervisor, the
actor directory or the store, so a store or a cluster layer changes here, in one place.

The web layer is built after the core and attached to it (`attach`): the supervisor needs the
sockets (for its sweeps) and the feed needs `emit`, both of which exist only once the app does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from presence_server.actors.client import ActorContext, ClientEntry
from presence_server.actors.clock import Cancelable, Clock, Scheduler
from presence_server.actors.feed import ChangeListener, Emit, PresenceFeed
from presence_server.actors.messages import DeleteClient, DeleteGuests, KickClient, Route
from presence_server.actors.ondemand import Mailbox
from presence_server.actors.state import Timing
from presence_server.actors.stats import store_stats
from presence_server.actors.supervisor import (
    CHECK_RESPONSE_WINDOW,
    Intervals,
    SocketPort,
    Supervisor,
    settled_status,
)
from presence_server.store.base import Store
from presence_server.store.records import ONLINE, ClientRecord, FeedPage, Transition
from presence_server.web.identity import Identities

from .metrics import PresenceMetrics

ADMIN_TIMEOUT = 10.0  # seconds an admin operation may wait for the supervisor


class Presence:
    """One node's presence: client actors, their supervisor and the store, behind a port."""

    def __init__(self, *, node: str, store: Store, clock: Clock, scheduler: Scheduler,
                 timing: Timing, intervals: Intervals, identities: Identities,
                 internals: Callable[[], dict[str, Any]] = dict) -> None:
        self.node = node
        self.identities = identities
        self.shutting_down = False
        self.started = time.monotonic()
        self.store = store
        self.clock = clock
        self.scheduler = scheduler
        self.timing = timing
        self.intervals = intervals
        self.directory: dict[str, ClientEntry] = {}
        self._internals = internals
        self.feed: PresenceFeed | None = None
        self.supervisor: Any = None
        self.meters = PresenceMetrics(counts=store.counts, mailbox=Mailbox.waiting)
        self._change_listeners: list[ChangeListener] = []
        self._sockets: SocketPort | None = None
        self._emit: Emit | None = None

    def attach(self, sockets: SocketPort, emit: Emit, close: Callable[[str], None]) -> None:
        """Connect the web layer: its sockets, `emit` to watchers and `close` of one socket;
        starts the supervisor."""
        self._sockets, self._emit = sockets, emit
        self.feed = PresenceFeed(self.store, emit=emit, disconnect=close)
        self.feed.subscribe(self.meters.status_changed)
        for listener in self._change_listeners:
            self.feed.subscribe_changes(listener)
        self.supervisor = Supervisor.start(self.directory, self._actor_context, self.intervals,
                                           sockets, self.node)

    def _actor_context(self, supervisor_ref: Any) -> ActorContext:
        return ActorContext(feed=self.feed, timing=self.timing, clock=self.clock,
                            scheduler=self.scheduler, supervisor=supervisor_ref,
                            instruments=self.meters)

    # --- time ---------------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock.now()

    def noticed(self) -> float:
        """When the socket event being handled reached the process (see actors/clock.py)."""
        return self.clock.noticed()

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancelable:
        """Run `callback` after `delay` seconds on the injected scheduler."""
        return self.scheduler.call_later(delay, callback)

    # --- the socket path ----------------------------------------------------------------------
    def deliver(self, name: str, message: Any, guest: bool = False,
                display_name: str | None = None) -> None:
        """Tell the client's actor directly when it runs, else through the supervisor (which
        starts it). Never waits: this is the heartbeat path."""
        entry = self.directory.get(name)
        if entry is not None and entry.ref.is_alive():
            entry.ref.tell(message)
        else:
            self.supervisor.tell(Route(name, message, guest, display_name))

    def send_to(self, name: str, event: str, payload: dict[str, Any]) -> int:
        """Emit `event` to every socket of `name` that its actor counts (online) and that is
        still registered under `name` here; how many. Local sockets only: a cluster-aware
        presence routes this to the nodes holding the client's sockets (message queue)."""
        entry = self.directory.get(name)
        if entry is None or self._sockets is None or self._emit is None:
            return 0
        state = entry.state
        if state.status != ONLINE:
            return 0
        sids = [sid for sid in state.sockets if self._sockets.name_of(sid) == name]
        for sid in sids:
            self._emit(event, payload, to=sid)
        return len(sids)

    def heartbeat_handled(self, seconds: float) -> None:
        """Count one heartbeat, handled in `seconds` (O(1), no lock: the hot path)."""
        self.meters.heartbeat(seconds)

    def status_of(self, name: str) -> str | None:
        """The client's status once every message sent for it before this call was handled."""
        return settled_status(self.directory, self.supervisor, self.store, name)

    def current(self, name: str) -> ClientRecord | None:
        """The client as its actor holds it now (no waiting), else as stored."""
        entry = self.directory.get(name)
        if entry is not None:
            return entry.state.to_record(self.timing)
        return self.store.get(name)

    # --- reads --------------------------------------------------------------------------------
    def record(self, name: str) -> ClientRecord | None:
        return self.store.get(name)

    def transitions(self, name: str) -> list[Transition]:
        return self.store.transitions(name)

    def clients(self, status: str | None = None, guest: bool | None = None
                ) -> Iterable[ClientRecord]:
        """Records with `status` (and guest or not), through the store's queries."""
        if status is not None:
            records = self.store.by_status(status)
        elif guest:
            records = self.store.guests()
        else:
            records = self.store.all()
        if guest is None:
            return records
        return [record for record in records if record.guest == guest]

    def named(self, names: Iterable[str]) -> list[ClientRecord]:
        """The stored records of `names` that exist, in the order given."""
        return [record for record in map(self.store.get, names) if record is not None]

    def total(self) -> int:
        """How many records there are (O(1))."""
        return self.store.counts()["total"]

    # --- the change feed ----------------------------------------------------------------------
    def feed_position(self) -> int:
        """The event id of the newest change. Read with records, with no greenlet switch in
        between, it is the position those records reflect."""
        return self.store.feed_position()

    def changes_since(self, event_id: int, limit: int) -> FeedPage:
        """The changes after `event_id` (at most `limit`), or `complete=False`: resync."""
        return self.store.changes_since(event_id, limit)

    def subscribe_changes(self, listener: ChangeListener) -> None:
        """Call `listener(change)` with every change, in order, right when it happens (it must
        not block: it runs on the actor that made the change)."""
        self._change_listeners.append(listener)
        if self.feed is not None:
            self.feed.subscribe_changes(listener)

    def stats(self) -> dict[str, Any]:
        """Counts (O(1) from the store), uptime and the process's internals."""
        window = self.intervals.connection_check + CHECK_RESPONSE_WINDOW
        body: dict[str, Any] = store_stats(self.store, self.clock.now(), window)
        body["uptime"] = round(self.uptime(), 3)
        body.update(self._internals())
        return body

    def metrics(self, accept: str | None = None) -> tuple[bytes, str]:
        """The Prometheus exposition (text, or OpenMetrics when `accept` asks) and its type."""
        return self.meters.exposition(accept)

    def health(self) -> dict[str, Any]:
        store = self.store.health()
        return {
            "status": "ok" if store["ok"] and not self.shutting_down else "degraded",
            "uptime": round(self.uptime(), 3),
            "node": self.node,
            "store": store,
        }

    # --- admin operations ---------------------------------------------------------------------
    def kick(self, name: str) -> ClientRecord | None:
        """Close the client's sockets and mark it offline (`kicked`); None when unknown."""
        found = self.supervisor.ask(KickClient(name, self.clock.now()), timeout=ADMIN_TIMEOUT)
        if not found:
            return None
        return self.store.get(name) or self.current(name)

    def delete_client(self, name: str) -> bool:
        return self.supervisor.ask(DeleteClient(name, self.clock.now()), timeout=ADMIN_TIMEOUT)

    def delete_guests(self, guest_id: str | None = None, before: float | None = None) -> int:
        """Delete every guest, one guest, or guests with no socket last seen before `before`."""
        return self.supervisor.ask(DeleteGuests(self.clock.now(), guest_id=guest_id,
                                                before=before), timeout=ADMIN_TIMEOUT)
