"""Messages between the web layer, the supervisor and client actors: small frozen records.

Every message that can change a status carries `now` (epoch seconds), taken from the injected
clock by whoever built it, so the state machine never reads a clock itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# --- to a client actor ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connect:
    """A socket registered this client (auth at connect, or its first heartbeat)."""

    sid: str
    ip: str | None
    now: float


@dataclass(frozen=True, slots=True)
class Heartbeat:
    sid: str
    ip: str | None
    now: float


@dataclass(frozen=True, slots=True)
class Disconnect:
    sid: str
    now: float


@dataclass(frozen=True, slots=True)
class Tick:
    """The actor's deadline timer fired at `now`; early (stale) ticks change nothing.

    `due` is when the timer was meant to fire (None: unknown), so a Tick can tell it is late;
    `rechecks` counts the re-checks of one decision put off after a stall (state.on_tick).
    """

    now: float
    due: float | None = None
    rechecks: int = 0


@dataclass(frozen=True, slots=True)
class CheckAnswered:
    """The client answered a `connection_check`: it is responsive."""

    sid: str
    now: float


@dataclass(frozen=True, slots=True)
class ReconnectionSuccess:
    sid: str
    now: float


@dataclass(frozen=True, slots=True)
class Kick:
    now: float


@dataclass(frozen=True, slots=True)
class OfflineTimeout:
    """The backstop sweep, for a stored record no actor holds (`monitoring.offline_timeout`)."""

    now: float


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Graceful shutdown: store the client as reconnecting (`server_restart`)."""

    now: float


@dataclass(frozen=True, slots=True)
class Restore:
    """Start-up recovery: a stored online/reconnecting client gets a fresh grace."""

    now: float


@dataclass(frozen=True, slots=True)
class NodeLost:
    """The node that held this client died (several nodes)."""

    now: float


@dataclass(frozen=True, slots=True)
class Retire:
    """Asked by the supervisor: stop if idle (offline, no socket); answers whether it did."""


@dataclass(frozen=True, slots=True)
class GetState:
    """Asked: answers the actor's current `ClientState`."""


# --- to the supervisor ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """Deliver `message` to the actor for `name`, spawning it (from the store) if needed."""

    name: str
    message: Any
    guest: bool = False
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class Lookup:
    """Asked: answers the running actor for `name`, or None, after every `Route` sent before."""

    name: str


@dataclass(frozen=True, slots=True)
class ClientIdle:
    """A client actor became idle: the supervisor may retire it."""

    name: str


@dataclass(frozen=True, slots=True)
class RetireIdle:
    """The supervisor's own timer: retire the client actors that went idle since the last one."""

    now: float


@dataclass(frozen=True, slots=True)
class ActorDied:
    """A client actor failed; the supervisor restarts it from `state`."""

    name: str
    state: Any


@dataclass(frozen=True, slots=True)
class Sweep:
    """Periodic: `connection_check`, reconciliation and the offline backstop."""

    now: float


@dataclass(frozen=True, slots=True)
class SendChecks:
    """One slice of a sweep's `connection_check`s: (sid, client name) pairs to check now."""

    sockets: tuple[tuple[str, str], ...]
    now: float


@dataclass(frozen=True, slots=True)
class GuestCleanup:
    now: float


@dataclass(frozen=True, slots=True)
class LogStats:
    now: float


@dataclass(frozen=True, slots=True)
class Recover:
    """Start-up: purge leftover guests, bring stored clients back as reconnecting."""

    now: float


@dataclass(frozen=True, slots=True)
class ShutdownAll:
    """Asked: store every client as reconnecting, then stop every client actor."""

    now: float


@dataclass(frozen=True, slots=True)
class KickClient:
    """Asked: close a client's sockets and mark it offline (`kicked`); answers found or not."""

    name: str
    now: float


@dataclass(frozen=True, slots=True)
class DeleteGuests:
    """Asked: delete guests (all, one id, or those last seen before `before`); answers count.

    `before` deletes only guests with no live socket; `guest_id` and all close sockets."""

    now: float
    guest_id: str | None = None
    before: float | None = None


@dataclass(frozen=True, slots=True)
class DeleteClient:
    """Asked: close a client's sockets, delete its record and history; answers found or not."""

    name: str
    now: float


@dataclass(frozen=True, slots=True)
class Census:
    """Asked: answers `{actors, alive, mailbox}` (the client actors the supervisor holds)."""


# --- from a shared store (several nodes), to the supervisor -----------------------------------


@dataclass(frozen=True, slots=True)
class StandDown:
    """A commit for `name` was refused (`outcome`: another node owns it, or it moved past the
    version this node knew): stop its actor without emitting anything; this node's live sockets
    of `name` (if any) register again, from the record as it is now."""

    name: str
    outcome: str
    now: float
    owner: str | None = None  # the record's owner, when another node


@dataclass(frozen=True, slots=True)
class Reannounce:
    """This node was fenced (its lease lapsed) or Redis lost its data: stop every client
    actor and register every live socket again, from the records as they are now."""

    now: float


@dataclass(frozen=True, slots=True)
class ClaimLost:
    """This node claimed a dead node (lease lapsed at `lapsed`): its clients that no other node
    took become reconnecting (`node_lost`), their grace counted from the lapse."""

    node: str
    lapsed: float
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodesGone:
    """These nodes' leases are gone (reaped, or they left): sockets of theirs that client
    actors here hold (`node/sid`) are gone too."""

    nodes: frozenset[str]
    now: float


@dataclass(frozen=True, slots=True)
class Inbox:
    """A message another node sent this one (several nodes): `payload` as sent."""

    payload: dict[str, Any]
    now: float


# --- between nodes: socket messages for a client owned by another node --------------------------
# A socket of another node is `<node>/<sid>` in the owner's `ClientState.sockets` (Engine.IO sids
# never hold a "/").
FORWARDED = {kind.__name__: kind for kind in
             (Connect, Heartbeat, Disconnect, CheckAnswered, ReconnectionSuccess)}


def remote_sid(node: str, sid: str) -> str:
    return f"{node}/{sid}"


def split_sid(sid: str) -> tuple[str | None, str]:
    """(`node`, `sid`) of a socket of another node, (None, `sid`) of a local one."""
    node, slash, local = sid.partition("/")
    return (node, local) if slash else (None, sid)


def to_wire(message: Any, node: str) -> dict[str, Any]:
    """A socket message of this node as another node's actor gets it (its sid qualified)."""
    fields = {name: getattr(message, name) for name in message.__slots__}
    fields["sid"] = remote_sid(node, fields["sid"])
    return {"t": type(message).__name__, **fields}


def from_wire(data: dict[str, Any]) -> Any:
    """The message `to_wire` encoded; raises ValueError for anything else."""
    kind = FORWARDED.get(data.get("t"))
    if kind is None:
        raise ValueError(f"not a forwardable message: {data.get('t')!r}")
    return kind(**{name: data[name] for name in kind.__slots__})
