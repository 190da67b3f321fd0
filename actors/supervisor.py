"""The supervisor actor: the registry of client actors, the sweeps, recovery and shutdown.

- spawns a client actor on first contact (from the stored record when there is one), retires
  it when it goes idle, restarts it from its last state when it dies;
- every `connection_check_interval`: sends `connection_check` to every connected socket (in
  slices spread over most of the interval, so 20,000 checks and their answers never arrive as
  one burst), reconciles actors with live sockets, and runs the `offline_timeout` backstop on
  stored records no actor holds;
- every `guests.cleanup_interval`: deletes offline guests and the clients offline for longer
  than `store.offline_retention` (each deletion: one log line, `client_removed` to watchers);
  every `stats_log_interval`: logs the `Connection Stats` line;
- at start-up: purges this node's leftover guests, brings stored online/reconnecting clients
  back as reconnecting with a fresh grace; at shutdown: stores everyone as reconnecting.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pykka
from presence_server.store.records import OFFLINE, ONLINE, RECONNECTING, ClientRecord, iso

from . import state as machine
from .client import ActorContext, ClientActor, ClientEntry, carry_out
from .messages import (
    ActorDied,
    Census,
    ClaimLost,
    ClientIdle,
    Connect,
    DeleteClient,
    DeleteGuests,
    Disconnect,
    GetState,
    GuestCleanup,
    Inbox,
    Kick,
    KickClient,
    LogStats,
    Lookup,
    NodeLost,
    NodesGone,
    OfflineTimeout,
    Reannounce,
    Recover,
    Restore,
    Retire,
    RetireIdle,
    Route,
    SendChecks,
    Shutdown,
    ShutdownAll,
    StandDown,
    Sweep,
    from_wire,
    split_sid,
    to_wire,
)
from .stats import store_stats

log = logging.getLogger("presence.supervisor")

CHECK_RESPONSE_WINDOW = 30.0  # seconds a client has to answer `connection_check` (seed 000)
CHECK_SPREAD = 0.8  # share of connection_check_interval the checks of one sweep are spread over
CHECK_SLICE_PERIOD = 0.1  # seconds between two slices of checks, at least
CHECK_SLICE_MIN = 50  # sockets per slice, at least (a small node checks everyone at once)
# Idle client actors are retired in one batch this long after the first of them went idle: a
# storm of 5,000 clients going offline at once then emits its 5,000 events first, and the 5,000
# retirements (a round trip to each actor) come after, not interleaved with them.
RETIRE_DELAY = 1.0
# ...and in slices, RETIRE_SLICE_PERIOD apart: 5,000 retirements in one go are a CPU burst that
# would delay every other client's heartbeat ack behind it.
RETIRE_SLICE = 200
RETIRE_SLICE_PERIOD = 0.05


class SocketPort(Protocol):
    """What the supervisor needs of the socket layer."""

    def live_sockets(self) -> Mapping[str, str]:
        """sid -> client name of every registered socket on this node."""

    def name_of(self, sid: str) -> str | None:
        """The client name a live socket registered, or None when it is gone (O(1))."""

    def send_check(self, sid: str, name: str, payload: dict[str, Any]) -> None:
        """Send `connection_check`; an answer reaches the client actor as `CheckAnswered`."""


@dataclass(frozen=True)
class Intervals:
    connection_check: float = 30.0
    guest_cleanup: float = 300.0
    stats_log: float = 300.0
    purge_guests_on_startup: bool = True
    offline_retention: float | None = None  # store.offline_retention; None = keep forever


class Supervisor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(
        self,
        directory: dict[str, ClientEntry],
        context_factory: Callable[[Any], ActorContext],
        intervals: Intervals,
        sockets: SocketPort,
        node: str,
    ) -> None:
        super().__init__()
        self.directory = directory
        self._context_factory = context_factory
        self.context: ActorContext | None = None
        self.intervals = intervals
        self.sockets = sockets
        self.node = node
        self._timers: dict[str, Any] = {}
        self._check_timers: list[Any] = []
        self._idle: set[str] = set()
        self._retire_timer: Any = None
        self._stopping = False
        # several nodes: the owner of a client whose actor stood down here (a `deposed`)
        self._owners: dict[str, str] = {}

    # --- lifecycle --------------------------------------------------------------------------------
    def on_start(self) -> None:
        self.context = self._context_factory(self.actor_ref)
        self._every("sweep", self.intervals.connection_check, Sweep)
        self._every("guests", self.intervals.guest_cleanup, GuestCleanup)
        self._every("stats", self.intervals.stats_log, LogStats)

    def on_stop(self) -> None:
        self._cancel_timers()

    def _cancel_timers(self) -> None:
        retire = [self._retire_timer] if self._retire_timer is not None else []
        for timer in [*self._timers.values(), *self._check_timers, *retire]:
            timer.cancel()
        self._check_timers = []
        self._retire_timer = None

    def _every(self, key: str, interval: float, message_type: type) -> None:
        if self._stopping:
            return
        ref, clock = self.actor_ref, self.context.clock
        self._timers[key] = self.context.scheduler.call_later(
            interval, lambda: ref.tell(message_type(clock.now())) if ref.is_alive() else None
        )

    # --- dispatch ---------------------------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        handler = self._handlers().get(type(message))
        if handler is None:
            log.warning("supervisor: unknown message %r", message)
            return None
        try:
            return handler(message)
        except Exception:
            log.exception("supervisor: could not handle %r", message)
            return None

    def _handlers(self) -> dict[type, Callable[[Any], Any]]:
        return {
            Route: self._route,
            Lookup: self._lookup,
            ClientIdle: self._client_idle,
            RetireIdle: self._retire_idle,
            ActorDied: self._actor_died,
            Sweep: self._sweep,
            SendChecks: self._send_checks,
            GuestCleanup: self._guest_cleanup,
            LogStats: self._log_stats,
            Recover: self._recover,
            ShutdownAll: self._shutdown_all,
            KickClient: self._kick,
            DeleteGuests: self._delete_guests,
            DeleteClient: self._delete_client,
            Census: self._census,
            StandDown: self._stand_down,
            Reannounce: self._reannounce,
            ClaimLost: self._claim_lost,
            Inbox: self._inbox,
            NodesGone: self._nodes_gone,
        }

    # --- registry ---------------------------------------------------------------------------------
    def _spawn(self, state: machine.ClientState, first: Any = None,
               claim_from: str | None = None) -> ClientEntry:
        """Start an actor for `state`; `first` reaches its mailbox before the actor is listed,
        so whoever finds it in the directory (and tells or asks it) queues behind it. On a
        shared store its first write claims the record for this node (from `claim_from`
        only, when given)."""
        store = self.context.feed.store
        if store.shared:
            store.claim(state.name, claim_from)
        entry = ClientEntry(ref=None, state=state)
        entry.ref = ClientActor.start(entry, self.context)
        if first is not None:
            entry.ref.tell(first)
        self.directory[state.name] = entry
        return entry

    def _route(self, message: Route, forward: bool = True, fresh: bool = False) -> None:
        """Deliver to the client's actor here, starting it when needed; on a shared store a
        socket message for a client another live node owns goes to that node instead (a
        `Connect` always starts an actor here: the most recent registration owns the client),
        unless `forward` is False (it came from another node)."""
        if self._stopping:
            return
        name = message.name
        entry = self.directory.get(name)
        if entry is not None and entry.ref.is_alive():
            entry.ref.tell(message.message)
            return
        if entry is not None:  # dead behind our back: restart from its last state
            log.warning("client actor %s was not running; restarting it", name)
            self._spawn(entry.state, message.message)
            return
        if forward and not isinstance(message.message, Connect):
            owner = self._owner_elsewhere(name)
            if owner is not None:
                self._send_to(owner, name, message.message)
                return
        if isinstance(message.message, Disconnect):
            return  # no actor means no socket to lose (retired idle, or deleted): nothing to do
        store = self.context.feed.store
        # a shared store: this node's copy (no round trip: registrations are not serialised
        # on Redis); a claim from a copy that is behind is refused (`stale`) and retried fresh
        record = store.load(name, fresh=fresh) if store.shared else store.get(name)
        if record is not None:
            state = machine.ClientState.from_record(record, self.node)
        else:
            state = machine.ClientState(name=name, node=self.node, guest=message.guest,
                                        display_name=message.display_name)
        self._spawn(state, message.message)

    def _lookup(self, message: Lookup) -> Any:
        entry = self.directory.get(message.name)
        return entry.ref if entry is not None and entry.ref.is_alive() else None

    def _client_idle(self, message: ClientIdle) -> None:
        """Note the idle client; the batch retirement RETIRE_DELAY from now handles it."""
        self._idle.add(message.name)
        self._arm_retirement(RETIRE_DELAY)

    def _arm_retirement(self, delay: float) -> None:
        if self._retire_timer is None and not self._stopping:
            ref, clock = self.actor_ref, self.context.clock
            self._retire_timer = self.context.scheduler.call_later(
                delay, lambda: ref.tell(RetireIdle(clock.now())) if ref.is_alive() else None)

    def _retire_idle(self, message: RetireIdle) -> None:
        """Retire up to RETIRE_SLICE idle actors; the rest go RETIRE_SLICE_PERIOD later."""
        self._retire_timer = None
        if self._stopping:
            self._idle = set()
            return
        for _ in range(min(RETIRE_SLICE, len(self._idle))):
            self._retire(self._idle.pop())
        if self._idle:
            self._arm_retirement(RETIRE_SLICE_PERIOD)

    def _retire(self, name: str) -> None:
        entry = self.directory.get(name)
        if entry is None or not machine.is_idle(entry.state):
            return
        # Unlist first: from now on every message for this name queues behind us, so nothing
        # can reach the old actor after it agreed to stop.
        del self.directory[name]
        try:
            retired = entry.ref.ask(Retire(), timeout=5)
        except pykka.ActorDeadError:
            retired = True
        if not retired:
            self.directory[name] = entry

    def _actor_died(self, message: ActorDied) -> None:
        entry = self.directory.get(message.name)
        if entry is None or self._stopping:
            return
        log.warning("restarting client actor %s from its last state", message.name)
        self._spawn(message.state)

    # --- sweeps -----------------------------------------------------------------------------------
    def _sweep(self, message: Sweep) -> None:
        started = time.perf_counter()
        try:
            self._reconcile(message.now)
            self._send_connection_checks(message.now)
            self._offline_backstop(message.now)
        finally:
            self.context.instruments.swept("connection_check", time.perf_counter() - started)
            self._every("sweep", self.intervals.connection_check, Sweep)

    def _reconcile(self, now: float) -> None:
        """Actors ↔ live sockets: two passes over dicts, no per-client allocation (20k clients)."""
        live = self.sockets.live_sockets()  # sid -> name
        directory = self.directory
        remote: dict[str, list[list[str]]] = {}  # node -> [name, its sid] we count
        for name, entry in list(directory.items()):
            if not entry.ref.is_alive():
                log.warning("sweep: client actor %s was dead; restarting it", name)
                entry = self._spawn(entry.state)
            for sid in entry.state.sockets:
                if "/" in sid:  # another node's socket: that node says which are gone
                    node, local = split_sid(sid)
                    remote.setdefault(node, []).append([name, local])
                    continue
                if live.get(sid) != name:
                    log.info("sweep: %s had socket %s that is gone", name, sid)
                    entry.ref.tell(Disconnect(sid, now))
        for sid, name in live.items():
            entry = directory.get(name)
            if entry is None or sid not in entry.state.sockets:
                owner = self._owner_elsewhere(name) if entry is None else None
                if owner is not None:  # owned by another node: make sure it knows the socket
                    self._send_to(owner, name, Connect(sid, None, now))
                    continue
                log.info("sweep: live socket %s of %s had no actor; registering it", sid, name)
                self._route(Route(name, Connect(sid, None, now)))
        for node, held in remote.items():  # a Disconnect lost in a hand-over cannot linger
            self.context.feed.store.send(node, {"k": "verify", "from": self.node,
                                                "sockets": held})

    def _send_connection_checks(self, now: float) -> None:
        """Check every live socket: the first slice now, the others spread over the interval."""
        live = tuple(self.sockets.live_sockets().items())
        if not live:
            return
        spread = self.intervals.connection_check * CHECK_SPREAD
        slices = max(1, min(math.ceil(len(live) / CHECK_SLICE_MIN),
                            int(spread / CHECK_SLICE_PERIOD)))
        size = math.ceil(len(live) / slices)
        ref, clock, scheduler = self.actor_ref, self.context.clock, self.context.scheduler
        self._check_timers = []
        for index, start in enumerate(range(0, len(live), size)):
            batch = live[start:start + size]
            if index == 0:
                self._send_checks(SendChecks(batch, now))
                continue
            self._check_timers.append(scheduler.call_later(
                spread * index / slices,
                lambda batch=batch: ref.tell(SendChecks(batch, clock.now()))
                if ref.is_alive() else None))

    def _send_checks(self, message: SendChecks) -> None:
        if self._stopping:
            return
        payload = {"timestamp": iso(message.now),
                   "expect_response_within": int(CHECK_RESPONSE_WINDOW * 1000)}
        for sid, name in message.sockets:
            if self.sockets.name_of(sid) != name:
                continue  # gone, or another client's socket now
            try:
                self.sockets.send_check(sid, name, {"client_name": name, **payload})
            except Exception:  # one broken socket must not cost the others their checks
                log.exception("could not send connection_check to %s (%s)", sid, name)

    def _offline_backstop(self, now: float) -> None:
        store = self.context.feed.store
        # the rule (which records, how old) is state.py's; only live statuses can time out
        for record in (*store.by_status(ONLINE), *store.by_status(RECONNECTING)):
            if record.name in self.directory:
                continue  # an actor holds it: its own timer decides
            if store.shared and record.node != self.node:
                continue  # another node's client; its node (or node-lost handling) decides
            self._step_stored(record, OfflineTimeout(now))

    def _step_stored(self, record: ClientRecord, message: Any) -> None:
        """Run a stored record no actor holds through the state machine, carry out the effects."""
        store = self.context.feed.store
        if store.shared:  # the write claims the record (from its owner as we know it)
            store.claim(record.name, record.node)
        state = machine.ClientState.from_record(record)
        after, effects = machine.step(state, message, self.context.timing)
        carry_out(self.context, after, effects)

    def _guest_cleanup(self, message: GuestCleanup) -> None:
        """Delete offline guests, and offline clients past `store.offline_retention`."""
        started = time.perf_counter()
        try:
            retention = self.intervals.offline_retention
            guests, retired = [], []
            store = self.context.feed.store
            # which of them go is state.py's rule; these queries only narrow the scan
            candidates = store.by_status(OFFLINE) if retention else store.guests()
            for record in candidates:
                if record.name in self.directory:
                    continue
                if machine.guest_expired(record):
                    guests.append(record)
                elif machine.retention_expired(record, message.now, retention):
                    retired.append(record)
            if guests:
                self._remove(guests, "guest_cleanup", message.now)
                log.info("guest cleanup: deleted %d offline guests", len(guests))
            if retired:
                self._remove(retired, "retention", message.now)
                log.info("retention: deleted %d clients offline for longer than %gs",
                         len(retired), retention)
        finally:
            self.context.instruments.swept("guest_cleanup", time.perf_counter() - started)
            self._every("guests", self.intervals.guest_cleanup, GuestCleanup)

    def _remove(self, records: list[ClientRecord], reason: str, now: float) -> int:
        """Delete records and their history: stop their actors, close their sockets, then one
        log line and a `client_removed` event for each."""
        if not records:
            return 0
        names = {record.name for record in records}
        sids = set()
        for name in names:
            entry = self.directory.pop(name, None)
            self._idle.discard(name)
            if entry is not None:
                sids |= entry.state.sockets
                if entry.ref.is_alive():
                    entry.ref.stop(block=False)
        sids |= {sid for sid, name in self.sockets.live_sockets().items() if name in names}
        deleted = self.context.feed.remove(records, reason, now)
        if sids:
            self.context.feed.close_sockets(frozenset(sids))
        return deleted

    def _log_stats(self, message: LogStats) -> None:
        try:
            stats = store_stats(self.context.feed.store, message.now,
                                self.intervals.connection_check + CHECK_RESPONSE_WINDOW)
            log.info(
                "Connection Stats: total=%d online=%d reconnecting=%d offline=%d guests=%d "
                "responsive=%d", stats["total"], stats["online"], stats["reconnecting"],
                stats["offline"], stats["guests"], stats["responsive"])
        finally:
            self._every("stats", self.intervals.stats_log, LogStats)

    # --- start-up and shutdown --------------------------------------------------------------------
    def _recover(self, message: Recover) -> dict[str, int]:
        store = self.context.feed.store
        mine = store.of_node(self.node) if store.shared else store.all()
        purged = 0
        if self.intervals.purge_guests_on_startup:
            guests = [r for r in mine if r.guest]
            # in the change feed too: a resumed /events drops them
            purged = self.context.feed.remove(guests, "startup_purge", message.now)
        restored = 0
        for record in mine:
            if record.guest and self.intervals.purge_guests_on_startup:
                continue
            if not machine.restorable(record) or record.name in self.directory:
                continue
            state = machine.ClientState.from_record(record, self.node)
            self._spawn(state).ref.tell(Restore(message.now))
            restored += 1
        log.info("start-up recovery: %d clients back as reconnecting, %d leftover guests purged",
                 restored, purged)
        return {"restored": restored, "purged_guests": purged}

    def _shutdown_all(self, message: ShutdownAll) -> int:
        self._stopping = True
        self._cancel_timers()
        futures = [entry.ref.ask(Shutdown(message.now), block=False)
                   for entry in self.directory.values() if entry.ref.is_alive()]
        for future in futures:
            try:
                future.get(timeout=5)
            except Exception as error:
                log.error("shutdown: a client actor did not answer (%s)", error)
        stopped = 0
        for entry in list(self.directory.values()):
            if entry.ref.is_alive():
                entry.ref.stop(block=False)
                stopped += 1
        self.context.feed.store.flush()
        return stopped

    def _census(self, message: Census) -> dict[str, int]:
        alive = mailbox = 0
        for entry in list(self.directory.values()):
            if entry.ref.is_alive():
                alive += 1
                mailbox += entry.ref.actor_inbox.qsize()
        return {"actors": len(self.directory), "alive": alive, "mailbox": mailbox}

    # --- operator actions -------------------------------------------------------------------------
    def _kick(self, message: KickClient) -> bool:
        entry = self.directory.get(message.name)
        if entry is not None and entry.ref.is_alive():
            entry.ref.ask(Kick(message.now), timeout=5)
            return True
        store = self.context.feed.store
        record = store.load(message.name) if store.shared else store.get(message.name)
        if record is None:
            return False
        owner = self._owner_elsewhere(message.name)
        if owner is not None:  # its actor (and every socket it counts) is on another node
            store.send(owner, {"k": "kick", "name": message.name})
            return True
        self._step_stored(record, Kick(message.now))
        return True

    def _delete_guests(self, message: DeleteGuests) -> int:
        store = self.context.feed.store
        if message.guest_id is not None:
            record = store.get(message.guest_id)
            guests = [record] if record is not None and record.guest else []
        else:
            guests = store.guests()
        if message.before is not None:  # old guests that are gone, never a connected one
            connected = set(self.sockets.live_sockets().values())
            guests = [r for r in guests if machine.guest_gone_before(
                r, message.before, r.name in connected or self._has_sockets(r.name))]
        return self._remove(guests, "admin", message.now)

    def _delete_client(self, message: DeleteClient) -> bool:
        record = self.context.feed.store.get(message.name)
        entry = self.directory.get(message.name)
        if record is None and entry is not None:
            record = entry.state.to_record(self.context.timing)
        if record is None:
            return False
        self._remove([record], "admin", message.now)
        return True

    # --- several nodes (a shared store) ----------------------------------------------------------
    def _live_sids(self, name: str) -> list[str]:
        return [sid for sid, owner in self.sockets.live_sockets().items() if owner == name]

    def _owner_elsewhere(self, name: str) -> str | None:
        """The live node that owns `name`, when it is not this one (several nodes)."""
        store = self.context.feed.store
        if not store.shared:
            return None
        owner = self._owners.get(name)
        if owner is None:
            record = store.get(name)
            owner = record.node if record is not None else None
        if owner is None or owner == self.node or owner not in store.alive:
            return None
        return owner

    def _send_to(self, node: str, name: str, message: Any, hops: int = 0) -> None:
        """A socket message for `name`, to the actor of its owner `node` (its inbox)."""
        if split_sid(message.sid)[0] is None:
            wire = to_wire(message, self.node)
        else:  # another node's socket already: relayed as it is
            wire = {"t": type(message).__name__,
                    **{field: getattr(message, field) for field in message.__slots__}}
        self.context.feed.store.send(node, {"k": "to", "name": name, "m": wire,
                                            "hops": hops})

    def _inbox(self, message: Inbox) -> None:
        """Another node's message: a socket message for a client we own (or should), or the
        news that another node took one of ours (`deposed`)."""
        payload = message.payload
        try:
            if payload.get("k") in ("verify", "gone"):
                self._verify(payload, message.now)
                return
            name = str(payload["name"])
            if payload.get("k") == "kick":
                self._kick(KickClient(name, message.now))
                return
            if payload.get("k") == "removed":  # another node deleted a client we hold
                entry = self.directory.pop(name, None)
                self._idle.discard(name)
                if entry is not None:
                    if entry.ref.is_alive():
                        entry.ref.stop(block=False)
                    sids = entry.state.sockets | set(self._live_sids(name))
                    self.context.feed.close_sockets(frozenset(sids))
                return
            if payload.get("k") == "deposed":
                by = str(payload["by"])
                if by != self.node:
                    self._stand_down(StandDown(name, "deposed", message.now, by))
                return
            socket_message = from_wire(payload["m"])
        except (KeyError, TypeError, ValueError) as problem:
            log.error("inbox: unreadable message %r dropped (%s)", payload, problem)
            return
        hops = int(payload.get("hops", 0))
        entry = self.directory.get(name)
        if (entry is None or not entry.ref.is_alive()) and hops < 2:
            owner = self._owners.get(name)  # we gave it away: pass it on, once more at most
            if owner is not None and owner != self.node and owner in (
                    self.context.feed.store.alive):
                self._send_to(owner, name, socket_message, hops + 1)
                return
        self._route(Route(name, socket_message), forward=False)

    def _verify(self, payload: dict[str, Any], now: float) -> None:
        """`verify`: another node counts these sockets of ours; answer those that are gone.
        `gone`: our actors drop the sockets of that node it no longer has."""
        sender = str(payload["from"])
        if payload["k"] == "verify":
            live = self.sockets.live_sockets()
            gone = [[name, sid] for name, sid in payload["sockets"] if live.get(sid) != name]
            if gone:
                self.context.feed.store.send(sender, {"k": "gone", "from": self.node,
                                                      "sockets": gone})
            return
        for name, sid in payload["sockets"]:
            entry = self.directory.get(name)
            qualified = f"{sender}/{sid}"
            if entry is not None and qualified in entry.state.sockets:
                log.info("%s: socket %s is gone (its node says so)", name, qualified)
                entry.ref.tell(Disconnect(qualified, now))

    def _stand_down(self, message: StandDown) -> None:
        """A refused commit or a `deposed` notice: the actor stops without emitting. Deposed
        (another live node took the client): this node's sockets of it, and the other nodes'
        sockets the actor knew, are announced to that owner. Else (the record moved on while
        this node claimed it, `stale`): this node's live sockets register again here, from the
        record as it is now (the most recent registration owns the client)."""
        name = message.name
        store = self.context.feed.store
        if store.owns_or_claims(name):
            return  # about an earlier actor: the one here claimed the client since
        if (self.directory.get(name) is None and message.outcome == "deposed"
                and self._owners.get(name) == message.owner):
            return  # already handed over to that owner
        entry = self.directory.pop(name, None)
        self._idle.discard(name)
        if entry is not None and entry.ref.is_alive():
            entry.ref.stop(block=False)
            log.info("%s: its actor here stands down (%s; owner now %s)", name,
                     message.outcome, message.owner or "unknown")
        if self._stopping:
            return
        owner = message.owner
        local = self._live_sids(name)
        if message.outcome == "deposed" and owner is not None and owner != self.node:
            # it just wrote under a valid epoch: alive, even if it joined after our last look
            store.note_alive(owner)
            self._owners[name] = owner
            remote = [sid for sid in (entry.state.sockets if entry else ())
                      if "/" in sid and split_sid(sid)[0] != owner]
            for sid in (*local, *remote):
                self._send_to(owner, name, Connect(sid, None, message.now))
            return
        self._owners.pop(name, None)
        # (the other nodes' sockets the actor counted too: they believe this node owns it)
        remote = [sid for sid in (entry.state.sockets if entry else ()) if "/" in sid]
        for sid in (*local, *remote):
            self._route(Route(name, Connect(sid, None, message.now)), forward=False,
                        fresh=True)

    def _nodes_gone(self, message: NodesGone) -> None:
        """Sockets of nodes that are gone are gone: their actors here hear `Disconnect`."""
        for name, owner in list(self._owners.items()):
            if owner in message.nodes:
                del self._owners[name]
        for entry in list(self.directory.values()):
            for sid in entry.state.sockets:
                if split_sid(sid)[0] in message.nodes:
                    entry.ref.tell(Disconnect(sid, message.now))

    def _reannounce(self, message: Reannounce) -> None:
        """Fenced, or Redis came back empty: stop every actor, register every live socket
        again (each claims its record anew)."""
        if self._stopping:
            return
        for entry in list(self.directory.values()):
            if entry.ref.is_alive():
                entry.ref.stop(block=False)
        self.directory.clear()
        self._idle.clear()
        live = self.sockets.live_sockets()
        log.warning("re-announcing %d live sockets", len(live))
        for sid, name in list(live.items()):
            self._route(Route(name, Connect(sid, None, message.now)))

    def _claim_lost(self, message: ClaimLost) -> None:
        """A dead node's clients: reconnecting (`node_lost`) with a grace from the lapse, unless
        another node took them meanwhile (the claim then fails and the actor stands down)."""
        for name in message.names:
            if self._owners.get(name) == message.node:
                del self._owners[name]
        store = self.context.feed.store
        claimed = 0
        for name in message.names:
            if name in self.directory or self._stopping:
                continue
            record = store.load(name)
            if record is None or record.node != message.node or not machine.restorable(record):
                continue
            state = machine.ClientState.from_record(record, self.node)
            self._spawn(state, claim_from=message.node).ref.tell(NodeLost(message.lapsed))
            claimed += 1
        log.warning("node %s lost: %d of its clients are now this node's, reconnecting "
                    "(node_lost) with a grace from the lapse", message.node, claimed)

    def _has_sockets(self, name: str) -> bool:
        entry = self.directory.get(name)
        return entry is not None and bool(entry.state.sockets)


READ_TIMEOUT = 5.0  # seconds a status request waits for the messages sent before it


def settled_status(directory: Mapping[str, ClientEntry], supervisor: Any, store: Any,
                   name: str, timeout: float = READ_TIMEOUT) -> str | None:
    """A client's status after every message sent for it before this call was handled.

    Read your own writes: a socket's messages reach the client actor directly (it runs) or
    through the supervisor (it does not yet); asking along the same path queues behind them.
    Heartbeats stay tell-only; only this read waits.
    """
    entry = directory.get(name)
    try:
        ref = entry.ref if entry is not None and entry.ref.is_alive() else None
        if ref is None:
            ref = supervisor.ask(Lookup(name), timeout=timeout)
        if ref is not None:
            return ref.ask(GetState(), timeout=timeout).status
    except (pykka.ActorDeadError, pykka.Timeout) as problem:
        log.warning("status of %s: read without waiting (%s)", name, problem or "timeout")
    entry = directory.get(name)
    if entry is not None:
        return entry.state.status
    record = store.get(name)
    return record.status if record is not None else None


__all__ = ["Intervals", "Supervisor", "settled_status", "ONLINE", "RECONNECTING",
           "ClientRecord"]
