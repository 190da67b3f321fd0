"""Garbage-collector tuning and pause accounting for the server process.

With thousands of live sockets the default collector pauses the whole process (every socket, every
heartbeat) for a full collection of every tracked object: hundreds of milliseconds at 2,000
clients. `tune()` freezes what start-up made (config, Flask, libraries: never garbage) out of the
collector's reach and makes collections rarer; `GcMonitor` times every collection so
`/api/stats` can show what the collector costs.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from typing import Any

# Young collections every 50,000 net allocations instead of 700; a full one after 100 middle ones
# (CPython also waits until a quarter of the long-lived objects are new).
THRESHOLDS = (50_000, 20, 100)


def tune() -> None:
    """Call once start-up is done: collect, freeze the survivors, raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


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
            "frozen": gc.get_freeze_count(),
            "thresholds": list(gc.get_threshold()),
            "recent_long": list(self.recent),
        }
