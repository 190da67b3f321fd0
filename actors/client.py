"""The client actor: one per known client, holding its `ClientState` and its deadline timer.

It is thin: each message goes through the pure state machine (`state.step`), then the actor
carries out the effects through the `PresenceFeed` and re-arms its timer when the deadline moved
earlier. A heartbeat that only moves the deadline later arms nothing: the timer already set
fires early, changes nothing, and is re-armed at the new deadline (one timer per silence period,
not one per heartbeat).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from . import state as machine
from .clock import Cancelable, Clock, Scheduler
from .feed import PresenceFeed
from .instruments import NO_INSTRUMENTS, Instruments
from .messages import ActorDied, ClientIdle, GetState, Retire, Tick
from .ondemand import OnDemandActor

log = logging.getLogger("presence.actors")


@dataclass
class ClientEntry:
    """The supervisor's handle on one client: its actor and the state it last reported.

    The actor writes `state` after every message, so the web layer can read a client's status
    without asking, and a restarted actor starts from exactly where the old one stopped.
    """

    ref: Any
    state: machine.ClientState


@dataclass(frozen=True)
class ActorContext:
    """What every client actor needs, built once by the runtime."""

    feed: PresenceFeed
    timing: machine.Timing
    clock: Clock
    scheduler: Scheduler
    supervisor: Any  # the supervisor's ActorRef (tell only)
    instruments: Instruments = NO_INSTRUMENTS  # metrics: offline lateness, sweep durations


def carry_out(context: ActorContext, after: machine.ClientState,
              effects: tuple[machine.Effect, ...]) -> None:
    """Do what one `step()` asked: persist, log, tell watchers, close sockets.

    Shared by the client actor and the supervisor (for stored records no actor holds).
    """
    feed = context.feed
    record = None
    for effect in effects:
        if isinstance(effect, machine.StatusChanged):
            record = record or after.to_record(context.timing)
            feed.status_changed(record, effect.previous)
            if effect.due is not None:  # a deadline decided it: how late did it come?
                context.instruments.offline_late(after.reason, after.since - effect.due)
        elif isinstance(effect, machine.Contacted):
            record = record or after.to_record(context.timing)
            feed.contacted(record)
        elif isinstance(effect, machine.Touched):
            record = record or after.to_record(context.timing)
            feed.touched(record)
        elif isinstance(effect, machine.CloseSockets):
            feed.close_sockets(effect.sids)
        elif isinstance(effect, machine.Reconnected):
            feed.reconnected(after.name, context.clock.now())


class ClientActor(OnDemandActor):
    """One client: runs only while it has mail (no parked greenlet per idle client)."""

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> Any:
        """Start like pykka's `Actor.start`, minus the global `ActorRegistry`.

        The supervisor's directory is the registry of client actors. Pykka's registry is a list:
        unregistering is O(N), so retiring or stopping N client actors would cost O(N²).
        """
        actor = cls(*args, **kwargs)
        actor._start_actor_loop()
        return actor.actor_ref

    def __init__(self, entry: ClientEntry, context: ActorContext) -> None:
        super().__init__()
        self.entry = entry
        self.context = context
        self._armed_at: float | None = None
        self._timer: Cancelable | None = None

    @property
    def state(self) -> machine.ClientState:
        return self.entry.state

    def on_start(self) -> None:
        self._arm()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetState):
            return self.state
        if isinstance(message, Retire):
            return self._retire()
        try:
            self._handle(message)
        except Exception:
            # A bad message must never kill the actor: log it and keep the last good state.
            log.exception("client %s: could not handle %r", self.state.name, message)
        return None

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        log.error("client actor %s died: %s", self.state.name, exception_value)
        self._cancel_timer()
        self.context.supervisor.tell(ActorDied(self.state.name, self.state))

    def on_stop(self) -> None:
        self._cancel_timer()

    def _handle(self, message: Any) -> None:
        if isinstance(message, Tick):
            self._armed_at = None
            self._timer = None
        before = self.state
        after, effects = machine.step(before, message, self.context.timing)
        self.entry.state = after
        carry_out(self.context, after, effects)
        recheck = next((e for e in effects if isinstance(e, machine.Recheck)), None)
        if recheck is not None:
            self._arm_at(recheck.at, recheck.rechecks)
        else:
            self._arm()
        if effects and machine.is_idle(after):
            self.context.supervisor.tell(ClientIdle(after.name))

    def _arm(self) -> None:
        due = machine.deadline(self.state, self.context.timing)
        if due is None:
            self._cancel_timer()
            return
        if self._armed_at is not None and self._armed_at <= due:
            return  # the armed timer fires first; it re-arms then
        self._arm_at(due)

    def _arm_at(self, due: float, rechecks: int = 0) -> None:
        """(Re)arm the timer for `due`; its Tick says when it should have fired, to tell a stall
        (a deadline already past when armed is due now, not when it passed)."""
        self._cancel_timer()
        clock = self.context.clock
        now = clock.now()
        fires_at = max(due, now)
        ref = self.actor_ref
        self._armed_at = due
        self._timer = self.context.scheduler.call_later(
            due - now,
            lambda: ref.tell(Tick(clock.now(), fires_at, rechecks)) if ref.is_alive() else None,
        )

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._armed_at = None

    def _retire(self) -> bool:
        if not machine.is_idle(self.state):
            return False
        self._cancel_timer()
        self.stop()
        return True
