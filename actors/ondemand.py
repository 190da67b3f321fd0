"""A Pykka actor runtime whose actors run only while they have mail.

`pykka.ThreadingActor` gives every actor a thread (under gevent, a greenlet) parked in
`inbox.get()` for its whole life; each parked greenlet keeps a copy of its stack slice
(bench/results/design-figures.md has the measured cost). A client actor is idle almost all the time
(one heartbeat per 30 s), so this runtime, built on Pykka's documented extension point (subclass
`pykka.Actor`, provide an inbox, a future and a loop starter), starts a worker only when mail
arrives to an idle actor and lets it end when the mailbox is empty. Messages are still handled one
at a time, in order, by `on_receive`; `tell`, `ask`, `stop`, `on_start`, `on_stop` and `on_failure`
behave as in Pykka.

Workers are greenlets when gevent has patched `threading` (the server), else daemon threads.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import pykka
from pykka import ActorDeadError, messages

log = logging.getLogger("presence.actors")


def _under_gevent() -> bool:
    try:
        from gevent import monkey
        return monkey.is_module_patched("threading")
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False


def _spawner() -> Callable[[Callable[[], None]], None]:
    if _under_gevent():
        import gevent
        return gevent.spawn_raw

    def start_thread(function: Callable[[], None]) -> None:
        threading.Thread(target=function, daemon=True, name="actor-worker").start()

    return start_thread


class _NoLock:
    """Under gevent every mailbox lives on the hub's thread and no critical section yields, so a
    lock would only cost (gevent's Python-level lock: three acquires per heartbeat)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


def _mailbox_lock() -> Any:
    return _NO_LOCK if _under_gevent() else threading.Lock()


class Mailbox:
    """A FIFO inbox that wakes its actor when mail reaches it while idle.

    `Mailbox.waiting()` is the mail waiting in every mailbox together, kept as it moves (so
    `/api/stats` need not visit every actor); exact under gevent, approximate with real threads.
    """

    __slots__ = ("_items", "_lock", "_running", "_worker", "_spawn")
    _waiting_total = 0

    @classmethod
    def waiting(cls) -> int:
        return max(0, cls._waiting_total)

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._lock = _mailbox_lock()
        self._running = False
        self._worker: Callable[[], None] | None = None
        self._spawn: Callable[[Callable[[], None]], None] | None = None

    def bind(self, worker: Callable[[], None]) -> None:
        """Start delivering: `worker` drains the mailbox, from a fresh greenlet or thread."""
        self._spawn = _spawner()
        with self._lock:
            self._worker = worker
            self._running = True
        self._spawn(worker)

    def put(self, envelope: Any, block: bool = True, timeout: float | None = None) -> None:
        with self._lock:
            self._items.append(envelope)
            Mailbox._waiting_total += 1
            if self._running or self._worker is None:
                return
            self._running = True
        self._spawn(self._worker)

    def take(self) -> Any | None:
        """The next envelope, or None (and the worker must end) when the mailbox is empty."""
        with self._lock:
            if self._items:
                Mailbox._waiting_total -= 1
                return self._items.popleft()
            self._running = False
            return None

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        envelope = self._items.popleft()
        Mailbox._waiting_total -= 1
        return envelope

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class OnDemandActor(pykka.Actor):
    """A Pykka actor with no thread or greenlet of its own while its mailbox is empty."""

    _started_loop = False

    @staticmethod
    def _create_actor_inbox() -> Mailbox:
        return Mailbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    def _start_actor_loop(self) -> None:
        self.actor_inbox.bind(self._drain)

    def _drain(self) -> None:
        """Handle mail until the mailbox is empty (or the actor stopped), then end."""
        try:
            if not self._started_loop:
                self._started_loop = True
                self._actor_loop_setup()
            inbox: Mailbox = self.actor_inbox
            while not self.actor_stopped.is_set():
                envelope = inbox.take()
                if envelope is None:
                    return
                self._deliver(envelope)
            self._refuse_remaining()
        except BaseException:
            # Never alive but deaf: a worker that dies here (a BaseException in `on_start`, a
            # failing `on_stop`) would leave the mailbox marked busy and no worker to drain it.
            log.exception("actor worker of %s failed; stopping the actor", self)
            self._abandon()

    def _deliver(self, envelope: Any) -> None:
        """One message, exactly as Pykka's own actor loop (`Actor._actor_loop_running`) does:

        - an `Exception` in an ask goes back to the caller, the actor lives;
        - an `Exception` in a tell stops the actor and calls `on_failure`;
        - a `BaseException` (`KeyboardInterrupt`, `SystemExit`, `GreenletExit`…) stops this
          actor (`on_stop` runs) and every actor in Pykka's registry. Unlike Pykka, an asker
          is answered `ActorDeadError` instead of waiting forever.
        """
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                log.info("Exception returned from %s to caller:", self, exc_info=True)
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException as error:
            log.debug("%r in %s. Stopping all actors.", error, self)
            self._refuse(envelope)
            self._stop()
            pykka.ActorRegistry.stop_all()

    def _abandon(self) -> None:
        """Stop without running any more hooks, and refuse what is waiting."""
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        try:
            self._refuse_remaining()
        except BaseException:
            log.exception("could not refuse the mail of %s", self)

    def _refuse(self, envelope: Any) -> None:
        if envelope.reply_to is None:
            return
        if isinstance(envelope.message, messages._ActorStop):
            envelope.reply_to.set(None)
            return
        error = ActorDeadError(f"{self.actor_ref} stopped before handling the message")
        envelope.reply_to.set_exception(exc_info=(ActorDeadError, error, None))

    def _refuse_remaining(self) -> None:
        inbox: Mailbox = self.actor_inbox
        while (envelope := inbox.take()) is not None:
            self._refuse(envelope)
