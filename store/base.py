"""The storage interface, and the write buffer every backend shares.

`save()` never waits for the disk or the network: it drops the record into a buffer that a
background flush writes every `flush_interval` seconds. `save_contact()` is for the hot path, a
record whose only change is its contact times (a routine heartbeat): it is written at most every
`contact_flush_interval`, so N clients heartbeating cost N/interval writes, not one per heartbeat.
Reads overlay what is still buffered, so callers always see the latest record. A crash loses at
most the last flush interval of status changes, and the last `contact_flush_interval` of
`last_seen` times (harmless: restored clients get a fresh grace anyway).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

from .records import ClientRecord, Transition

log = logging.getLogger("presence.store")


class StoreError(RuntimeError):
    """The backend could not be reached or refused an operation."""


class Store(ABC):
    """Client records and their transition history, behind a write buffer."""

    kind: str = "abstract"
    shared: bool = False  # True when several nodes see the same records
    flush_interval: float = 0.2
    contact_flush_interval: float = 5.0

    def __init__(self) -> None:
        self._pending: dict[str, ClientRecord] = {}
        self._contacts: dict[str, ClientRecord] = {}
        self._contacts_flushed = time.monotonic()
        self._inflight: dict[str, ClientRecord] = {}
        self._pending_transitions: list[Transition] = []
        self._inflight_transitions: list[Transition] = []
        self._pending_deletes: set[str] = set()
        self._flush_lock = threading.Lock()
        self._timer = None
        self._scheduler = None
        self._closed = False
        self.last_error: str | None = None

    # --- writes (buffered) ----------------------------------------------------------------------
    def save(self, record: ClientRecord, transition: Transition | None = None) -> None:
        self._pending[record.name] = record
        self._contacts.pop(record.name, None)
        self._pending_deletes.discard(record.name)
        if transition is not None:
            self._pending_transitions.append(transition)

    def save_contact(self, record: ClientRecord) -> None:
        """Like `save`, for a record whose only change is its contact times: written lazily."""
        if record.name in self._pending:
            self._pending[record.name] = record
        else:
            self._contacts[record.name] = record

    def delete(self, names: Iterable[str]) -> int:
        """Delete records and their history; answers how many existed."""
        names = set(names)
        existing = {record.name for record in self.all() if record.name in names}
        for name in names:
            self._pending.pop(name, None)
            self._contacts.pop(name, None)
            self._pending_deletes.add(name)
        # history not written yet must not outlive the record (it would be inserted after it)
        self._pending_transitions = [t for t in self._pending_transitions if t.name not in names]
        self.flush()
        return len(existing)

    def flush(self, contacts: bool = True) -> None:
        """Write everything buffered now (at shutdown, after deletes, in tests); the periodic
        flush passes `contacts=False` and includes contact-only records once they are due."""
        with self._flush_lock:
            now = time.monotonic()
            touched: dict[str, ClientRecord] = {}
            if contacts or now - self._contacts_flushed >= self.contact_flush_interval:
                self._contacts_flushed = now
                touched, self._contacts = self._contacts, {}
            if not (self._pending or touched or self._pending_transitions
                    or self._pending_deletes):
                return
            records, self._pending = self._pending, {}
            transitions, self._pending_transitions = self._pending_transitions, []
            deletes, self._pending_deletes = self._pending_deletes, set()
            self._inflight = {**touched, **records}
            self._inflight_transitions = transitions
            try:
                self._write(list(records.values()), transitions, deletes, list(touched.values()))
                self.last_error = None
            except Exception as error:  # keep the data and try again at the next flush
                self.last_error = f"{type(error).__name__}: {error}"
                log.error("store write failed (%s); keeping %d records buffered",
                          self.last_error, len(records) + len(touched))
                for name, record in records.items():
                    self._pending.setdefault(name, record)
                for name, record in touched.items():
                    if name not in self._pending:
                        self._contacts.setdefault(name, record)
                self._pending_transitions[:0] = transitions
                self._pending_deletes |= deletes - set(self._pending)
            finally:
                self._inflight, self._inflight_transitions = {}, []

    # --- reads (overlaying the buffer) ------------------------------------------------------------
    def get(self, name: str) -> ClientRecord | None:
        if name in self._pending_deletes:
            return None
        buffered = (self._pending.get(name) or self._contacts.get(name)
                    or self._inflight.get(name))
        return buffered if buffered is not None else self._read_one(name)

    def all(self) -> list[ClientRecord]:
        records = {record.name: record for record in self._read_all()}
        records.update(self._inflight)
        records.update(self._contacts)
        records.update(self._pending)
        for name in self._pending_deletes:
            records.pop(name, None)
        return list(records.values())

    def transitions(self, name: str, limit: int = 50) -> list[Transition]:
        """The most recent transitions of `name`, oldest first."""
        stored = self._read_transitions(name, limit)
        buffered = [t for t in (*self._inflight_transitions, *self._pending_transitions)
                    if t.name == name]
        return (stored + buffered)[-limit:]

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self, scheduler) -> None:
        """Flush every `flush_interval` seconds on `scheduler` until `close()`."""
        self._scheduler = scheduler
        self._arm()

    def _arm(self) -> None:
        if not self._closed and self._scheduler is not None:
            self._timer = self._scheduler.call_later(self.flush_interval, self._periodic_flush)

    def _periodic_flush(self) -> None:
        try:
            self.flush(contacts=False)
        except Exception:
            log.exception("periodic store flush failed")
        self._arm()

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self.flush()
        self._close()

    def healthy(self) -> bool:
        try:
            self._ping()
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            return False
        return self.last_error is None

    # --- what a backend implements ----------------------------------------------------------------
    @abstractmethod
    def _write(self, records: list[ClientRecord], transitions: list[Transition],
               deletes: set[str], contacts: list[ClientRecord]) -> None:
        """Apply one flush in one transaction: delete `deletes`, write `records` whole, append
        `transitions`, then write `contacts` — records whose only change since their last
        whole write is `last_seen`/`last_contact` (a backend may write just those two fields,
        as long as a record it no longer holds is written whole)."""

    @abstractmethod
    def _read_one(self, name: str) -> ClientRecord | None: ...

    @abstractmethod
    def _read_all(self) -> list[ClientRecord]: ...

    @abstractmethod
    def _read_transitions(self, name: str, limit: int) -> list[Transition]: ...

    @abstractmethod
    def _ping(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...


Runner = Callable[[Callable[[], object]], object]


def run_inline(function: Callable[[], object]) -> object:
    return function()
