"""Real Pykka actors with a manual clock, a real SQLite store and recording socket callables."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pykka
import pytest
from presence_server.actors.client import ActorContext, ClientEntry
from presence_server.actors.clock import ManualClock
from presence_server.actors.feed import PresenceFeed
from presence_server.actors.messages import Census, Connect, Disconnect, GetState, Heartbeat, Route
from presence_server.actors.ondemand import Mailbox
from presence_server.actors.state import Timing
from presence_server.actors.supervisor import Intervals, Supervisor
from presence_server.store import open_store

TIMING = Timing(heartbeat_interval=10, max_missed_heartbeats=3, heartbeat_grace_period=5,
                reconnection_grace_period=20, guest_grace_period=15, offline_timeout=100)
SETTLE_ROUNDS_MAX = 50
INTERVALS = Intervals(connection_check=10, guest_cleanup=60, stats_log=60,
                      purge_guests_on_startup=True)


@dataclass
class Recorder:
    """Stands in for the Socket.IO server: records emits, disconnects and checks."""

    emitted: list[tuple[str, Any, Any]] = field(default_factory=list)
    disconnected: list[str] = field(default_factory=list)
    checks: list[tuple[str, str]] = field(default_factory=list)
    check_times: list[str] = field(default_factory=list)
    live: dict[str, str] = field(default_factory=dict)
    fail_emits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def emit(self, event: str, data: Any, to: Any = None) -> None:
        with self.lock:
            if self.fail_emits:
                self.fail_emits -= 1
                raise RuntimeError("emit failed (test)")
            self.emitted.append((event, data, to))

    def disconnect(self, sid: str) -> None:
        with self.lock:  # like the real server: the socket leaves the live table
            self.disconnected.append(sid)
            self.live.pop(sid, None)

    def live_sockets(self) -> dict[str, str]:
        return dict(self.live)

    def name_of(self, sid: str) -> str | None:
        return self.live.get(sid)

    def send_check(self, sid: str, name: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.checks.append((sid, name))
            self.check_times.append(payload["timestamp"])

    def statuses(self, name: str) -> list[tuple[str, str, int]]:
        with self.lock:
            return [(d["status"], d["reason"], d["version"]) for e, d, _ in self.emitted
                    if e == "client_status_changed" and d["name"] == name]

    def events(self, event: str) -> list[Any]:
        with self.lock:
            return [d for e, d, _ in self.emitted if e == event]


@dataclass
class RecordingInstruments:
    """Stands in for the metrics: records what the actors report (actors/instruments.py)."""

    late: list[tuple[str, float]] = field(default_factory=list)
    sweeps: list[tuple[str, float]] = field(default_factory=list)

    def offline_late(self, reason: str, seconds: float) -> None:
        self.late.append((reason, seconds))

    def swept(self, sweep: str, seconds: float) -> None:
        self.sweeps.append((sweep, seconds))


class World:
    """A supervisor and its client actors, on a manual clock, over a real SQLite file."""

    def __init__(self, tmp_path, node: str = "n1", intervals: Intervals = INTERVALS) -> None:
        self.clock = ManualClock()
        self.sockets = Recorder()
        self.store = open_store(f"sqlite:///{tmp_path / 'presence.db'}")
        self.feed = PresenceFeed(self.store, emit=self.sockets.emit,
                                 disconnect=self.sockets.disconnect)
        self.directory: dict[str, ClientEntry] = {}
        self.instruments = RecordingInstruments()
        self.node = node
        self.supervisor = Supervisor.start(self.directory, self._context, intervals,
                                           self.sockets, node)

    def _context(self, ref: Any) -> ActorContext:
        return ActorContext(feed=self.feed, timing=TIMING, clock=self.clock,
                            scheduler=self.clock, supervisor=ref, instruments=self.instruments)

    def now(self) -> float:
        return self.clock.now()

    def send(self, name: str, message: Any, guest: bool = False) -> None:
        """Route like the web layer does, keeping the live-socket table in step."""
        if isinstance(message, (Connect, Heartbeat)):
            self.sockets.live[message.sid] = name
        elif isinstance(message, Disconnect):
            self.sockets.live.pop(message.sid, None)
        self.supervisor.tell(Route(name, message, guest))
        self.settle()

    def settle(self) -> None:
        """Wait until the actors are quiet: rounds of asks (each queues behind the mail already
        waiting) until a whole round changes nothing — no state moved, nothing emitted, no mail
        waiting — so mail the actors sent each other meanwhile is handled too."""
        previous = None
        for _ in range(SETTLE_ROUNDS_MAX):
            self.supervisor.ask(Census(), timeout=10)
            states = {}
            for name, entry in list(self.directory.items()):
                try:
                    states[name] = entry.ref.ask(GetState(), timeout=10)
                except pykka.ActorDeadError:
                    states[name] = None
            seen = (states, len(self.sockets.emitted), len(self.sockets.disconnected))
            if (seen == previous and Mailbox.waiting() == 0
                    and self.supervisor.actor_inbox.qsize() == 0):
                return
            previous = seen
        raise AssertionError(f"the actors were still busy after {SETTLE_ROUNDS_MAX} rounds")

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.settle()

    def state(self, name: str):
        return self.directory[name].ref.ask(GetState(), timeout=10)

    def close(self) -> None:
        for entry in list(self.directory.values()):
            entry.ref.stop()
        pykka.ActorRegistry.stop_all()
        self.store.close()


@pytest.fixture
def world(tmp_path):
    world = World(tmp_path)
    yield world
    world.close()
