"""The status state machine, as pure functions of `(state, message, now)`.

Nothing here does I/O, reads a clock or keeps a timer: each function returns the new state and a
tuple of effects for the client actor to carry out. `deadline()` tells the actor when it next
needs a `Tick`; a `Tick` that comes early (a stale timer) changes nothing.

Rules (CONTRACT §3, seed 000):
- a connected client whose last heartbeat (or socket registration) is older than
  max(heartbeat_interval × max_missed_heartbeats, heartbeat_grace_period) goes offline
  (`heartbeat_timeout`) and its sockets are closed;
- a client whose last socket closed is `reconnecting` for its grace (guests have their own); a
  heartbeat within `heartbeat_grace_period` postpones the offline decision; back in time means
  straight to online (`reconnected`) and no offline is ever shown;
- a graceful shutdown or a restart never makes anyone offline: `reconnecting (server_restart)`
  with a fresh grace; once stored for the restart (`handed_off`) a client ignores whatever is
  still in flight (heartbeats from sockets about to close) and needs no timer;
- backstop: a stored online/reconnecting record that no actor holds and that had no contact for
  `offline_timeout` becomes offline (`offline_timeout`); a kick makes anyone offline (`kicked`);
- watchers hear `client_reconnected` exactly once per return: when a socket brings a
  reconnecting client back, or when the client reports a return (`reconnection_success`) on a
  socket whose return was not already announced.

Records no actor holds go through the same `step()`: `ClientState.from_record(record)`, then
`OfflineTimeout` or `Kick`. Which stored records may be deleted (`guest_expired`,
`retention_expired`) is decided here too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from presence_server.store.records import OFFLINE, ONLINE, RECONNECTING, ClientRecord

from .messages import (
    CheckAnswered,
    Connect,
    Disconnect,
    Heartbeat,
    Kick,
    NodeLost,
    OfflineTimeout,
    ReconnectionSuccess,
    Restore,
    Shutdown,
    Tick,
)


@dataclass(frozen=True, slots=True)
class Timing:
    """The monitoring settings the state machine needs, in seconds."""

    heartbeat_interval: float = 30.0
    max_missed_heartbeats: int = 3
    heartbeat_grace_period: float = 60.0
    reconnection_grace_period: float = 120.0
    guest_grace_period: float = 180.0
    offline_timeout: float = 300.0

    @property
    def silence_limit(self) -> float:
        """How long a connected client may stay silent before it is offline."""
        missed = self.heartbeat_interval * self.max_missed_heartbeats
        return max(missed, self.heartbeat_grace_period)

    def grace(self, guest: bool) -> float:
        return self.guest_grace_period if guest else self.reconnection_grace_period


@dataclass(frozen=True, slots=True)
class ClientState:
    """Everything one client actor knows; `status` is None for a never-seen client.

    `announced` is the socket whose return watchers were last told (`client_reconnected`);
    `handed_off` means stored for the restart: every later message is ignored.
    """

    name: str
    node: str
    guest: bool = False
    display_name: str | None = None
    status: str | None = None
    reason: str = ""
    since: float = 0.0
    last_seen: float | None = None
    last_contact: float | None = None
    last_signal: float | None = None
    ip: str | None = None
    sockets: frozenset[str] = frozenset()
    version: int = 0
    grace_started: float | None = None
    announced: str | None = None
    handed_off: bool = False

    def to_record(self, timing: Timing) -> ClientRecord:
        grace_until = deadline(self, timing) if self.status == RECONNECTING else None
        return ClientRecord(
            name=self.name,
            status=self.status or OFFLINE,
            reason=self.reason,
            since=self.since,
            last_seen=self.last_seen,
            last_contact=self.last_contact,
            ip=self.ip,
            guest=self.guest,
            node=self.node,
            connections=len(self.sockets),
            version=self.version,
            display_name=self.display_name,
            grace_until=grace_until,
        )

    @classmethod
    def from_record(cls, record: ClientRecord, node: str | None = None) -> ClientState:
        """The state of a stored record (on `node`, else the record's own node)."""
        return cls(
            name=record.name,
            node=node if node is not None else record.node,
            guest=record.guest,
            display_name=record.display_name,
            status=record.status,
            reason=record.reason,
            since=record.since,
            last_seen=record.last_seen,
            last_contact=record.last_contact,
            last_signal=record.last_seen,
            ip=record.ip,
            version=record.version,
            grace_started=None,
        )


# Effects: what the actor must do after a step.
@dataclass(frozen=True, slots=True)
class StatusChanged:
    """Persist, log and tell watchers; `previous` is the status before (None if new).

    `due` is the deadline this change was decided at, for an offline that a deadline decided
    (heartbeat_timeout, reconnect_timeout, offline_timeout): how late it came is measured from it.
    """

    previous: str | None
    due: float | None = None


@dataclass(frozen=True, slots=True)
class Touched:
    """Persist the record (no status change): last contact, ip or connections moved."""


@dataclass(frozen=True, slots=True)
class Contacted:
    """Only contact times moved (a heartbeat or a check answer): persist lazily, it is hot."""


@dataclass(frozen=True, slots=True)
class CloseSockets:
    sids: frozenset[str]


@dataclass(frozen=True, slots=True)
class Reconnected:
    """Tell watchers `client_reconnected` (seed 000)."""


@dataclass(frozen=True, slots=True)
class Recheck:
    """Send a `Tick(rechecks=rechecks)` at `at` instead of deciding now (see `on_tick`)."""

    at: float
    rechecks: int


Effect = StatusChanged | Touched | Contacted | CloseSockets | Reconnected | Recheck
Step = tuple[ClientState, tuple[Effect, ...]]


def deadline(state: ClientState, timing: Timing) -> float | None:
    """When this client's status must next be decided, or None when no timer is needed.

    Only heartbeats and socket registrations (`last_signal`) count against the silence limit:
    an answered `connection_check` proves the socket is alive (many client libraries ack it by
    themselves), not that the client still heartbeats, so it only moves `last_contact`.
    """
    if state.handed_off:
        return None  # stored for the restart: the restarted server owns the grace
    if state.status == ONLINE and state.sockets:
        return (state.last_signal or state.since) + timing.silence_limit
    if state.status in (ONLINE, RECONNECTING):
        started = state.grace_started if state.grace_started is not None else state.since
        grace_end = started + timing.grace(state.guest)
        if state.last_signal is not None:
            grace_end = max(grace_end, state.last_signal + timing.heartbeat_grace_period)
        return grace_end
    return None


def is_idle(state: ClientState) -> bool:
    """An offline client with no socket needs no actor."""
    return state.status in (None, OFFLINE) and not state.sockets


def _change(state: ClientState, status: str, reason: str, now: float, *,
            due: float | None = None, **changes: object) -> Step:
    previous = state.status
    new_state = replace(
        state, status=status, reason=reason, since=now, version=state.version + 1, **changes
    )
    return new_state, (StatusChanged(previous, due),)


def _back(state: ClientState, sid: str, now: float, contact: dict[str, object]) -> Step:
    """A reconnecting client is back on `sid`: online (`reconnected`), announced once."""
    new_state, effects = _change(state, ONLINE, "reconnected", now, grace_started=None,
                                 announced=sid, **contact)
    return new_state, (*effects, Reconnected())


def on_connect(state: ClientState, message: Connect, timing: Timing) -> Step:
    now = message.now
    contact = {
        "sockets": state.sockets | {message.sid},
        "last_contact": now,
        "last_signal": now,
        "ip": message.ip or state.ip,
    }
    if state.status == ONLINE:
        return replace(state, **contact), (Touched(),)
    if state.status == RECONNECTING:
        return _back(state, message.sid, now, contact)
    return _change(state, ONLINE, "connected", now, grace_started=None, **contact)


def on_heartbeat(state: ClientState, message: Heartbeat, timing: Timing) -> Step:
    now = message.now
    contact = {
        "sockets": state.sockets | {message.sid},
        "last_seen": now,
        "last_contact": now,
        "last_signal": now,
        "ip": message.ip or state.ip,
    }
    if state.status == ONLINE:
        same = message.sid in state.sockets and contact["ip"] == state.ip
        return replace(state, **contact), (Contacted() if same else Touched(),)
    if state.status == RECONNECTING:
        return _back(state, message.sid, now, contact)
    return _change(state, ONLINE, "heartbeat", now, grace_started=None, **contact)


def on_disconnect(state: ClientState, message: Disconnect, timing: Timing) -> Step:
    if message.sid not in state.sockets:
        return state, ()
    sockets = state.sockets - {message.sid}
    if sockets or state.status != ONLINE:
        return replace(state, sockets=sockets), (Touched(),)
    return _change(state, RECONNECTING, "disconnect", message.now, sockets=sockets,
                   grace_started=message.now)


# A timer that fires this much later than it was due means the process was stalled (paused,
# swapped out, starved): input that reached its sockets meanwhile may not have been read yet.
STALL_TOLERANCE = 1.0
# After a stall, a due decision is taken again this much later, once the queued input is read;
# at most STALL_RECHECKS times in a row, so a process that stays late still decides.
STALL_RECHECK = 1.0
STALL_RECHECKS = 3


def stalled(message: Tick) -> bool:
    """Whether this Tick fired so late that its decision must wait for a re-check."""
    return (message.due is not None and message.now - message.due > STALL_TOLERANCE
            and message.rechecks < STALL_RECHECKS)


def on_tick(state: ClientState, message: Tick, timing: Timing) -> Step:
    due = deadline(state, timing)
    if due is None or message.now < due:
        return state, ()  # a stale or early timer: nothing is due yet
    if stalled(message):
        # e.g. the heartbeats a client sent while the process was paused are still unread
        return state, (Recheck(message.now + STALL_RECHECK, message.rechecks + 1),)
    if state.status == ONLINE and state.sockets:
        new_state, effects = _change(state, OFFLINE, "heartbeat_timeout", message.now, due=due,
                                     sockets=frozenset())
        return new_state, (*effects, CloseSockets(state.sockets))
    return _change(state, OFFLINE, "reconnect_timeout", message.now, due=due,
                   grace_started=None)


def on_check_answered(state: ClientState, message: CheckAnswered, timing: Timing) -> Step:
    """The socket answered: the client is responsive, but no heartbeat deadline moves."""
    return replace(state, last_contact=message.now), (Contacted(),)


def on_reconnection_success(state: ClientState, message: ReconnectionSuccess,
                            timing: Timing) -> Step:
    """The client says it came back on `sid`: announce it unless that return already was.

    The socket's registration (a `Connect` or a heartbeat while reconnecting) announces a
    return the server saw; this covers one it did not see (the old socket was not noticed
    gone yet). A second report for the same socket, or one from a socket the client does not
    hold while online, announces nothing: watchers hear of each return exactly once.
    """
    if state.status != ONLINE or message.sid not in state.sockets:
        return state, ()
    if state.announced == message.sid:
        return state, ()
    return replace(state, announced=message.sid), (Reconnected(),)


def on_kick(state: ClientState, message: Kick, timing: Timing) -> Step:
    if state.status in (None, OFFLINE) and not state.sockets:
        return state, ()
    new_state, effects = _change(state, OFFLINE, "kicked", message.now, sockets=frozenset(),
                                 grace_started=None)
    if state.sockets:
        return new_state, (*effects, CloseSockets(state.sockets))
    return new_state, effects


def on_offline_timeout(state: ClientState, message: OfflineTimeout, timing: Timing) -> Step:
    """Backstop for a stored record no actor holds (so no socket, no timer of its own):
    online or reconnecting with no contact for `offline_timeout` means offline."""
    if state.status not in (ONLINE, RECONNECTING) or state.sockets:
        return state, ()
    contact = state.last_contact or state.last_seen or state.since
    if message.now - contact < timing.offline_timeout:
        return state, ()
    return _change(state, OFFLINE, "offline_timeout", message.now,
                   due=contact + timing.offline_timeout, grace_started=None)


def _restart_grace(state: ClientState, reason: str, now: float) -> Step:
    """Online or reconnecting -> reconnecting with a fresh grace; nobody is made offline."""
    if state.status == ONLINE:
        return _change(state, RECONNECTING, reason, now, sockets=frozenset(), grace_started=now)
    if state.status == RECONNECTING:
        return replace(state, sockets=frozenset(), grace_started=now), (Touched(),)
    return replace(state, sockets=frozenset()), ()


def on_shutdown(state: ClientState, message: Shutdown, timing: Timing) -> Step:
    """Store the client for the restart, then hand it off: nothing after this changes it."""
    new_state, effects = _restart_grace(state, "server_restart", message.now)
    return replace(new_state, handed_off=True), effects


def on_restore(state: ClientState, message: Restore, timing: Timing) -> Step:
    return _restart_grace(state, "server_restart", message.now)


def on_node_lost(state: ClientState, message: NodeLost, timing: Timing) -> Step:
    return _restart_grace(state, "node_lost", message.now)


HANDLERS = {
    Connect: on_connect,
    Heartbeat: on_heartbeat,
    Disconnect: on_disconnect,
    Tick: on_tick,
    CheckAnswered: on_check_answered,
    ReconnectionSuccess: on_reconnection_success,
    Kick: on_kick,
    Shutdown: on_shutdown,
    Restore: on_restore,
    NodeLost: on_node_lost,
    OfflineTimeout: on_offline_timeout,
}


def step(state: ClientState, message: object, timing: Timing) -> Step:
    """Apply one message; raise `TypeError` for a message the machine does not know."""
    handler = HANDLERS.get(type(message))
    if handler is None:
        raise TypeError(f"no state transition for {type(message).__name__}")
    if state.handed_off:
        return state, ()  # stored for the restart: what is still in flight changes nothing
    return handler(state, message, timing)


def restorable(record: ClientRecord) -> bool:
    """At start-up, a stored online or reconnecting client gets an actor and a `Restore`."""
    return record.status in (ONLINE, RECONNECTING)


# Which stored records may be deleted (the sweeps and the admin routes ask these).
def guest_expired(record: ClientRecord) -> bool:
    """An offline guest: the guest cleanup sweep deletes it (seed 002)."""
    return record.guest and record.status == OFFLINE


def guest_gone_before(record: ClientRecord, before: float, connected: bool) -> bool:
    """A guest last heard from before `before` that holds no live socket: the admin cleanup by
    date deletes it (never a connected guest, however old its last contact)."""
    last_heard = record.last_contact or record.last_seen or record.since
    return record.guest and not connected and last_heard < before


def retention_expired(record: ClientRecord, now: float, retention: float | None) -> bool:
    """An offline registered client offline for longer than `store.offline_retention`."""
    return (retention is not None and not record.guest and record.status == OFFLINE
            and now - record.since >= retention)
