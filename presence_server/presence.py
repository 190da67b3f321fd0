"""The presence core behind one narrow port: what web/ may ask of the actors and the store.

The Socket.IO handlers and the HTTP routes get a `Presence` (its shape is `web.port.PresencePort`)
and nothing else: they deliver messages to client actors, read a client's settled status, read
records and counts, and run admin operations. They never see the runtime, the supervisor, the
actor directory or the store, so a store or a cluster layer changes here, in one place.

The web layer is built after the core and attached to it (`attach`): the supervisor needs the
sockets (for its sweeps) and the feed needs `emit`, both of which exist only once the app does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from presence_server.actors.client import ActorContext, ClientEntry
from presence_server.actors.clock import Cancelable, Clock, Scheduler
from presence_server.actors.feed import ChangeListener, Emit, PresenceFeed, watchers_of
from presence_server.actors.messages import (
    ClaimLost,
    DeleteClient,
    DeleteGuests,
    Inbox,
    KickClient,
    NodesGone,
    Reannounce,
    Route,
    StandDown,
    split_sid,
)
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

log = logging.getLogger("presence.runtime")

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
        self.meters = PresenceMetrics(
            counts=store.counts, mailbox=Mailbox.waiting,
            cluster=(lambda: {"nodes_alive": len(store.alive), "feed_lag": store.feed_lag})
            if store.shared else None)
        self._change_listeners: list[ChangeListener] = []
        self._reset_listeners: list[Callable[[], None]] = []
        self.sockets: SocketPort | None = None
        self._emit: Emit | None = None

    def attach(self, sockets: SocketPort, emit: Emit, close: Callable[[str], None]) -> None:
        """Connect the web layer: its sockets, `emit` to watchers and `close` of one socket;
        starts the supervisor."""
        self._close_local = close
        self._emit = emit
        self.feed = PresenceFeed(self.store, emit=emit, disconnect=self._close_socket)
        self.feed.subscribe(self.meters.status_changed)
        for listener in self._change_listeners:
            self.feed.subscribe_changes(listener)
        self.sockets = sockets
        self.supervisor = Supervisor.start(self.directory, self._actor_context, self.intervals,
                                           sockets, self.node)
        if self.store.shared:  # several nodes: changes reach watchers from the feed reader
            self.store.listener = self.feed.applied
            self.store.events = _StoreEvents(self)
            self.store.node_info = self.node_info
            self.feed.broadcast = self._broadcast

    def _close_socket(self, sid: str) -> None:
        """Close a socket's transport: here, or (`node/sid`) through its node's inbox."""
        node, local = split_sid(sid)
        if node is None or node == self.node:
            self._close_local(local)
        else:
            self.store.send(node, {"k": "close", "sid": local})

    def from_node(self, payload: dict[str, Any]) -> None:
        """A message from another node's inbox: close one of our sockets here; the rest
        (socket messages for a client we own, `deposed`) go to the supervisor."""
        kind = payload.get("k")
        if kind == "hello":  # a node (re)joined
            self.store.note_alive(str(payload.get("node")))
            return
        if kind == "close":
            try:
                self._close_local(str(payload["sid"]))
            except Exception:
                log.debug("socket %s was already closed", payload.get("sid"))
            return
        if kind in ("emit", "send"):  # targeted delivery (CONTRACT §9) for a socket here
            self._deliver_from_node(payload)
            return
        if kind == "watchers":  # another node's `client_reconnected`, for our watchers
            if self._emit is not None:
                self._emit(str(payload.get("event")), payload.get("data"),
                           to=watchers_of(str(payload.get("name"))))
            return
        self.supervisor.tell(Inbox(payload, self.clock.now()))

    def _broadcast(self, event: str, data: dict[str, Any], name: str) -> None:
        """A watcher event that is not in the feed (`client_reconnected`), to every other
        node's watchers, through their inboxes."""
        for node in self.store.alive:
            if node != self.node:
                self.store.send(node, {"k": "watchers", "event": event, "data": data,
                                       "name": name})

    def _deliver_from_node(self, payload: dict[str, Any]) -> None:
        try:
            name, event, data = str(payload["name"]), str(payload["event"]), payload["data"]
            if payload["k"] == "send":  # we own the client (as the sender believed)
                if name in self.directory:
                    self.send_to(name, event, data)
                return
            for sid in payload["sids"]:
                if self.sockets is not None and self.sockets.name_of(sid) == name:
                    self._emit(event, data, to=sid)
        except (KeyError, TypeError) as problem:
            log.error("inbox: unreadable delivery %r dropped (%s)", payload, problem)

    def node_info(self) -> dict[str, Any]:
        """What this node renews with its lease (several nodes): sockets and responsive
        clients here (O(this node's actors), every `node_timeout / 3`)."""
        window = self.intervals.connection_check + CHECK_RESPONSE_WINDOW
        edge = self.clock.now() - window
        responsive = sum(1 for entry in list(self.directory.values())
                         if entry.state.status == "online" and entry.state.sockets
                         and (entry.state.last_contact or 0) >= edge)
        live = self.sockets.live_sockets() if self.sockets is not None else {}
        return {"started": time.time() - self.uptime(), "connections": len(live),
                "responsive": responsive}

    def nodes(self) -> list[dict[str, Any]]:
        """The nodes sharing the store (`GET /api/nodes`); just this one on SQLite."""
        if self.store.shared:
            return self.store.nodes()
        info = self.node_info()
        return [{"node": self.node, "started": info["started"], "lease_age": 0.0,
                 "connections": info["connections"], "responsive": info["responsive"],
                 "alive": True}]

    def subscribe_resets(self, listener: Callable[[], None]) -> None:
        """Call `listener()` when the feed had a gap (several nodes: Redis lost data or this
        node fell behind the backlog): subscribers must resync from a snapshot."""
        self._reset_listeners.append(listener)

    def feed_reset(self, reannounce: bool) -> None:
        """The shared store reloaded its mirror after a gap in the feed: watchers get
        `resync`, resumable streams are closed (they resume into a resync), and with
        `reannounce` every live socket registers again."""
        position = self.store.feed_position()
        if self.feed is not None:
            self.feed.resync(position)
        for listener in self._reset_listeners:
            try:
                listener()
            except Exception:
                log.exception("reset listener failed")
        if reannounce:
            self.supervisor.tell(Reannounce(self.clock.now()))

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
        """Emit `event` to every socket of `name` that its actor counts (online); how many.

        Sockets here must still be registered under `name`; with several nodes the owner's
        actor also counts other nodes' sockets (`node/sid`), which get it through their node's
        inbox, and a client owned by another node is handed to that node (the count is then
        the owner's last committed one: Redis's `connections`)."""
        if self.sockets is None or self._emit is None:
            return 0
        entry = self.directory.get(name)
        if entry is None:
            return self._send_through_owner(name, event, payload)
        state = entry.state
        if state.status != ONLINE:
            return 0
        delivered = 0
        remote: dict[str, list[str]] = {}
        for sid in state.sockets:
            node, local = split_sid(sid)
            if node is None:
                if self.sockets.name_of(sid) == name:
                    self._emit(event, payload, to=sid)
                    delivered += 1
            else:
                remote.setdefault(node, []).append(local)
        for node, sids in remote.items():  # (a node lost meanwhile: its inbox is dropped)
            self.store.send(node, {"k": "emit", "name": name, "sids": sids,
                                   "event": event, "data": payload})
            delivered += len(sids)
        return delivered

    def _send_through_owner(self, name: str, event: str, payload: dict[str, Any]) -> int:
        if not self.store.shared:
            return 0
        record = self.store.load(name)
        if (record is None or record.status != ONLINE or record.connections <= 0
                or record.node == self.node):
            return 0
        self.store.send(record.node, {"k": "send", "name": name, "event": event,
                                      "data": payload})
        return record.connections

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
        body = {
            "status": "ok" if store["ok"] and not self.shutting_down else "degraded",
            "uptime": round(self.uptime(), 3),
            "node": self.node,
            "store": store,
        }
        return body

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


class _StoreEvents:
    """What a shared store reports, turned into supervisor messages (never waits)."""

    def __init__(self, presence: Presence) -> None:
        self.presence = presence

    def rejected(self, name: str, outcome: str, owner: str | None) -> None:
        self.presence.supervisor.tell(StandDown(name, outcome, self.presence.clock.now(),
                                                owner))

    def inbox(self, payload: dict[str, Any]) -> None:
        self.presence.from_node(payload)

    def nodes_gone(self, nodes: frozenset[str]) -> None:
        self.presence.supervisor.tell(NodesGone(nodes, self.presence.clock.now()))

    def fenced(self) -> None:
        self.presence.supervisor.tell(Reannounce(self.presence.clock.now()))

    def nodes_lost(self, lost: list[tuple[str, float, list[str]]]) -> None:
        for node, lapsed, names in lost:
            self.presence.supervisor.tell(ClaimLost(node, lapsed, tuple(names)))

    def reset(self, reannounce: bool) -> None:
        self.presence.feed_reset(reannounce)
