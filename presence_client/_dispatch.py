"""Runs user callbacks, in order, on one thread of their own.

Socket.IO handlers run on the connection's reader thread; a callback that blocked there (or called
back into the client and waited for an answer) would stall the connection. Handing callbacks to
this thread keeps the reader free.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("presence_client")

_STOP = object()


class Dispatcher:
    """A queue of calls served by one daemon thread."""

    def __init__(self, name: str) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; exceptions it raises are logged, never propagated."""
        self._queue.put((fn, args))

    def stop(self) -> None:
        """Ask the thread to end once the calls queued so far have run."""
        self._queue.put(_STOP)

    def join(self, timeout: float | None = None) -> None:
        if self._started and not self.is_current():
            self._thread.join(timeout)

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception:
                log.exception("presence client callback %r failed", fn)
