"""Actors: the pure status state machine, the client actor, the supervisor, time."""

from .client import ActorContext, ClientActor, ClientEntry
from .clock import ManualClock, RealScheduler, SystemClock
from .state import ClientState, Timing
from .supervisor import Intervals, Supervisor

__all__ = ["ActorContext", "ClientActor", "ClientEntry", "ClientState", "Intervals",
           "ManualClock", "RealScheduler", "Supervisor", "SystemClock", "Timing"]
