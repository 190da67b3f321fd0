"""What the actors report for metrics: how late a deadline's offline came, how long a sweep took.

Actors know nothing of Prometheus: they get an `Instruments` in their `ActorContext` (the
runtime's `presence_server.metrics.PresenceMetrics`, or `NO_INSTRUMENTS`). Both calls are O(1).
"""

from __future__ import annotations

from typing import Protocol


class Instruments(Protocol):
    def offline_late(self, reason: str, seconds: float) -> None:
        """An offline (`reason`) was decided `seconds` after its deadline."""

    def swept(self, sweep: str, seconds: float) -> None:
        """The supervisor's `sweep` took `seconds`."""


class NoInstruments:
    """Reports nowhere (unit tests, tools)."""

    def offline_late(self, reason: str, seconds: float) -> None:
        return None

    def swept(self, sweep: str, seconds: float) -> None:
        return None


NO_INSTRUMENTS = NoInstruments()
