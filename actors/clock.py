"""Time, injected: a clock (`now()`) and a scheduler (`call_later(delay, callback)`).

Production uses `SystemClock` and `RealScheduler` (gevent timers once gevent is patched in,
plain threading timers otherwise). Tests use `ManualClock`, whose `advance()` runs every callback
that falls due, in time order, so "it is now t+121 s" needs no waiting.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol


class Cancelable(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def noticed(self) -> float:
        """When the socket event being handled reached the process (at most `now()`)."""


class Scheduler(Protocol):
    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancelable: ...


class SystemClock:
    """Wall-clock time; under gevent, `noticed()` is when the event loop last polled for I/O.

    A socket event is handled some time after the kernel reported it: in a storm (5,000 sockets
    closing at once) the last close is handled up to a second after the first, all reported by
    one poll. Stamping a disconnect or a heartbeat with the poll's time, not the handler's, keeps
    grace periods and silence deadlines measured from when the event happened, however busy the
    process was; libev caches that time at every loop iteration, so reading it costs nothing.
    """

    def __init__(self) -> None:
        self._loop = None
        try:
            from gevent import monkey

            if monkey.is_module_patched("threading"):
                import gevent

                self._loop = gevent.get_hub().loop
        except ImportError:  # pragma: no cover - gevent is a hard dependency
            pass

    def now(self) -> float:
        return time.time()

    def noticed(self) -> float:
        now = time.time()
        if self._loop is None:
            return now
        return min(self._loop.now(), now)


class _GeventTimer:
    """A libev timer on the hub; when due, the callback runs in a fresh raw greenlet.

    Cheaper than `gevent.spawn_later` (a `Greenlet` parked for the whole delay, with its spawning
    stack): a client actor keeps one of these armed for its whole life. `cancel()` before it
    fires stops it; once fired, the callback runs to completion.
    """

    __slots__ = ("_watcher", "_callback")

    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        import gevent

        self._callback: Callable[[], None] | None = callback
        loop = gevent.get_hub().loop
        # libev counts the delay from its cached loop time, which lags the wall clock while a
        # long iteration runs (a storm of closes): add the lag so the timer is not early.
        lag = max(0.0, time.time() - loop.now())
        self._watcher = loop.timer(max(delay, 0.0) + lag)
        self._watcher.start(_fire_gevent_timer, self)

    def cancel(self) -> None:
        self._callback = None
        self._watcher.close()


def _fire_gevent_timer(timer: _GeventTimer) -> None:
    # runs in the hub: must not block, so hand the callback to its own greenlet
    import gevent

    callback, timer._callback = timer._callback, None
    timer._watcher.close()
    if callback is not None:
        gevent.spawn_raw(callback)


class _ThreadTimer:
    __slots__ = ("_timer",)

    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self._timer = threading.Timer(max(delay, 0.0), callback)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()


class RealScheduler:
    """Wall-clock timers: a gevent timer when the process is gevent-patched, else a thread."""

    def __init__(self) -> None:
        try:
            from gevent import monkey

            self._gevent = monkey.is_module_patched("threading")
        except ImportError:  # pragma: no cover - gevent is a hard dependency
            self._gevent = False

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancelable:
        if self._gevent:
            return _GeventTimer(delay, callback)
        return _ThreadTimer(delay, callback)


class _ManualTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock and scheduler in one that only moves when told to (for tests and simulations)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._queue: list[tuple[float, int, _ManualTimer, Callable[[], None]]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def noticed(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancelable:
        timer = _ManualTimer()
        with self._lock:
            entry = (self._now + max(delay, 0.0), next(self._order), timer, callback)
            heapq.heappush(self._queue, entry)
        return timer

    def pending(self) -> int:
        with self._lock:
            return sum(1 for entry in self._queue if not entry[2].cancelled)

    def stall(self, seconds: float) -> None:
        """Move time forward with nothing run meanwhile, as in a paused process: the callbacks
        that fell due run late, at the next `advance()` (`advance(0)`: at once)."""
        self._now += seconds

    def advance(self, seconds: float) -> None:
        """Move time forward, running each due callback at its own due time."""
        target = self._now + seconds
        while True:
            with self._lock:
                if not self._queue or self._queue[0][0] > target:
                    break
                due, _, timer, callback = heapq.heappop(self._queue)
            self._now = max(self._now, due)
            if not timer.cancelled:
                callback()
        self._now = target
