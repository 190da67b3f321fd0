"""Garbage-collector tuning and pause accounting for the server process.

With thousands of live sockets the default collector pauses the whole process (every socket, every
heartbeat) for a full collection of every tracked object: hundreds of milliseconds at 2,000
clients. `tune()` freezes what start-up made (config, Flask, libraries: never garbage) out of the
collector's reach and makes collections rarer; `GcPacer` runs the young collections on a clock;
`GcMonitor` times every collection so `/api/stats` can show what the collector costs.

Why a clock: CPython starts a young collection when allocations minus deallocations of tracked
objects pass a threshold. A presence server at steady state mostly *replaces* long-lived objects
(each heartbeat retires the previous record, waiter, packet, timer of that client), so that
difference stays near zero while the young generation keeps growing, and the first
allocation-triggered young collection after a ramp of thousands of clients is one long pause
(bench/results/design-figures.md has the measured figures). Collecting generation 0 every
`YOUNG_EVERY` seconds keeps each young pause to what was made in that time.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections import deque
from typing import Any

from presence_server.actors.clock import Cancelable, Scheduler

log = logging.getLogger("presence.gc")

# Young collections every 50,000 net allocations instead of 700; a full one after 100 middle ones
# (CPython also waits until a quarter of the long-lived objects are new).
THRESHOLDS = (50_000, 20, 100)
# GcPacer: a young collection every half second; every 20th time (10 s) the survivors are frozen;
# once an hour everything is thawed, fully collected and frozen again.
YOUNG_EVERY = 0.5
FREEZE_EVERY = 20
THAW_EVERY = 3600.0


def tune() -> int:
    """Call once start-up is done: collect, freeze the survivors, raise the thresholds; answers
    how many objects it froze.

    Also stops gevent recording each greenlet's spawning stack (10 frame objects per greenlet,
    kept for its life: a socket's reader and writer greenlets) unless GEVENT_TRACK_GREENLET_TREE
    asks for it.
    """
    if "GEVENT_TRACK_GREENLET_TREE" not in os.environ:
        import gevent

        gevent.config.track_greenlet_tree = False
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return gc.get_freeze_count()


class GcPacer:
    """Young collections on a clock; survivors frozen instead of scanned again and again.

    Every `young_every` seconds: collect generation 0 (a pause as long as what was made in that
    time). Every `freeze_every`-th time: `gc.freeze()` the survivors (no scan at all). What lives
    past a few seconds here is per-client state that lives ~a heartbeat period or a connection's
    life, and is freed by reference counting when it goes: collecting it as a middle or old
    generation only re-scans it (long middle collections that freed nothing; measured in
    bench/results/design-figures.md). Only cyclic garbage made of frozen objects escapes — a
    connect/heartbeat/disconnect cycle makes none (web/app.py fixes the one library that did) —
    and every `thaw_every` seconds everything is unfrozen, fully collected and frozen again, so
    such garbage lives an hour at most. CPython's allocation-count trigger stays on as a backstop.
    """

    def __init__(self, scheduler: Scheduler, young_every: float = YOUNG_EVERY,
                 freeze_every: int = FREEZE_EVERY, thaw_every: float = THAW_EVERY,
                 collector: Any = gc) -> None:
        self._scheduler = scheduler
        self.young_every = young_every
        self.freeze_every = max(1, freeze_every)
        self.thaw_every = thaw_every
        self.thaw_every_ticks = max(1, round(thaw_every / young_every))
        self._gc = collector  # the gc module, or a stand-in in tests
        self._ticks = 0
        self.freezes = 0
        self.thaws = 0
        self._timer: Cancelable | None = None
        self._running = False

    def start(self) -> GcPacer:
        self._running = True
        self._arm()
        return self

    def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        if self._running:
            self._timer = self._scheduler.call_later(self.young_every, self._tick)

    def _tick(self) -> None:
        try:
            self._ticks += 1
            if self._ticks % self.thaw_every_ticks == 0:
                started = time.perf_counter()
                self._gc.unfreeze()
                self._gc.collect()
                self._gc.freeze()
                self.thaws += 1
                log.info("gc: periodic full collection (thaw, collect, freeze) took %.0f ms",
                         (time.perf_counter() - started) * 1000)
            else:
                self._gc.collect(0)
                if self._ticks % self.freeze_every == 0:
                    self._gc.freeze()
                    self.freezes += 1
        except Exception:  # a collection never stops the pacer
            log.exception("gc pacer: collection failed")
        finally:
            self._arm()


class GcMonitor:
    """Wall time of every collection, via `gc.callbacks`."""

    RECENT = 20

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.pause_total = 0.0
        self.pause_max = 0.0
        self.recent: deque[dict[str, Any]] = deque(maxlen=self.RECENT)
        self._started = 0.0
        self._installed = False
        self.frozen_at_start = 0

    def install(self) -> GcMonitor:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True
        return self

    def uninstall(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._callback)
            self._installed = False

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info.get("generation", 0)
        self.collections[generation] += 1
        self.pause_total += pause
        self.pause_max = max(self.pause_max, pause)
        if generation == 2 or pause > 0.01:
            self.recent.append({"at": round(time.time(), 3), "generation": generation,
                                "pause_ms": round(pause * 1000, 2),
                                "collected": info.get("collected", 0)})

    def snapshot(self) -> dict[str, Any]:
        return {
            "collections": list(self.collections),
            "pause_total_ms": round(self.pause_total * 1000, 2),
            "pause_max_ms": round(self.pause_max * 1000, 2),
            # gc.get_freeze_count() walks every frozen object (O(frozen objects)), so only the
            # start-up figure is shown
            "frozen_at_start": self.frozen_at_start,
            "thresholds": list(gc.get_threshold()),
            "recent_long": list(self.recent),
        }
