"""Reconnect delays: exponential backoff with jitter, and the spread after a shutdown notice.

Pure functions of their arguments; the random source is injected so tests can pin it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

Random = Callable[[], float]
"""A source of floats in [0, 1), like ``random.random``."""


@dataclass(frozen=True)
class Backoff:
    """Delays between connection attempts.

    Attempt ``n`` (1 for the first retry) has the ceiling
    ``min(max_delay, initial * factor**(n-1))`` and waits a random time in
    ``(ceiling * (1 - jitter), ceiling]``, so clients that lost the same server spread out
    instead of retrying in lockstep, and no delay ever exceeds ``max_delay``.
    """

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not self.initial > 0:
            raise ValueError(f"initial must be > 0, got {self.initial!r}")
        if not self.factor >= 1:
            raise ValueError(f"factor must be >= 1, got {self.factor!r}")
        if not self.max_delay >= self.initial:
            raise ValueError(
                f"max_delay ({self.max_delay!r}) must be >= initial ({self.initial!r})")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter!r}")

    def ceiling(self, attempt: int) -> float:
        """The largest delay of attempt ``attempt`` (>= 1), before jitter."""
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt!r}")
        if self.factor == 1:
            return self.initial
        # Compare exponents instead of computing factor**n, which overflows for long outages.
        if (attempt - 1) * math.log(self.factor) >= math.log(self.max_delay / self.initial):
            return self.max_delay
        return min(self.max_delay, self.initial * self.factor ** (attempt - 1))

    def delay(self, attempt: int, rand: Random) -> float:
        """The delay before attempt ``attempt`` (>= 1), drawing one number from ``rand``."""
        ceiling = self.ceiling(attempt)
        return ceiling * (1 - self.jitter * _unit(rand()))


def shutdown_spread(reconnect_after: float) -> float:
    """Default width of the random window after ``reconnectAfter``: as long again, at least 1 s."""
    return max(1.0, reconnect_after)


def shutdown_delay(reconnect_after: float, rand: Random, spread: float | None = None) -> float:
    """Delay after a ``server_shutdown`` notice: never less than ``reconnect_after`` (seconds).

    Adds a random part in ``[0, spread)`` (default :func:`shutdown_spread`) so that the clients of a
    restarted server come back over a window rather than in the same millisecond.
    """
    if reconnect_after < 0:
        raise ValueError(f"reconnect_after must be >= 0, got {reconnect_after!r}")
    width = shutdown_spread(reconnect_after) if spread is None else spread
    if width < 0:
        raise ValueError(f"spread must be >= 0, got {width!r}")
    return reconnect_after + width * _unit(rand())


def _unit(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"random source must return a float within [0, 1], got {value!r}")
    return value
