"""The storage interface, and the write buffer every backend shares.

`save()` never waits for the disk or the network: it drops the record into a buffer that a
background flush writes every `flush_interval` seconds. `save_contact()` is for the hot path, a
record whose only change is its contact times (a routine heartbeat): it is written with the first
periodic flush `contact_flush_interval` after the last contact write, so N clients heartbeating
cost N/interval row updates, not one write per heartbeat. Reads overlay what is still buffered, so
callers always see the latest record. A crash loses at most the last flush interval of status
changes, and `contact_flush_interval + flush_interval` (about 1.2 s) of `last_seen` times
(harmless: restored clients get a fresh grace anyway).

One record that cannot be written (say a name SQLite cannot encode) never blocks the others: the
backend writes every other record of the batch and names the ones it rejected; those are logged
once and quarantined (kept in memory and served, no longer written). Reads never depend on a
write succeeding.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

from .feed import ChangeLog
from .records import OFFLINE, ONLINE, RECONNECTING, Change, ClientRecord, FeedPage, Transition

log = logging.getLogger("presence.store")


class StoreError(RuntimeError):
    """The backend could not be reached or refused an operation."""


class Store(ABC):
    """Client records and their transition history, behind a write buffer.

    Queries (`by_status`, `guests`, `of_node`, `counts`, `responsive`) answer from the records
    as reads see them; this base answers them by scanning `all()`, a backend with an index
    (SQLite) answers them in O(1) or O(matching records).
    """

    kind: str = "abstract"
    shared: bool = False  # True when several nodes see the same records
    alive: frozenset[str] = frozenset()  # a shared store: the nodes registered now
    flush_interval: float = 0.2
    contact_flush_interval: float = 1.0

    def __init__(self, backlog: int = 10000) -> None:
        self.feed = ChangeLog(backlog)  # a backend loads what it kept (SqliteStore)
        self._pending_changes: list[Change] = []
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
        self._logged_error: tuple[str, int] | None = None
        self.fault: str | None = None  # a store-level problem found outside a write (file gone)
        self.quarantined: set[str] = set()  # names whose record could not be written

    # --- writes (buffered) ----------------------------------------------------------------------
    def save(self, record: ClientRecord, transition: Transition | None = None) -> None:
        self._pending[record.name] = record
        self._contacts.pop(record.name, None)
        self._pending_deletes.discard(record.name)
        if transition is not None:
            self._pending_transitions.append(transition)

    def log_change(self, event: str, payload: dict[str, object]) -> Change:
        """Give a change (`client_status_changed`, `client_removed`) the next event id, put the
        id in `payload["eventId"]`, keep it in the feed; answers the feed entry. In memory at
        once (the write is buffered like every other): the id is known when it is emitted."""
        event_id = self.feed.next_id()
        payload["eventId"] = event_id
        change = Change(event_id, event, str(payload["name"]), str(payload["status"]),
                        json.dumps(payload, separators=(",", ":")))
        self.feed.append(change)
        self._pending_changes.append(change)
        return change

    def changes_since(self, event_id: int, limit: int) -> FeedPage:
        """The changes after `event_id`, oldest first, at most `limit`; `complete` is False
        when `event_id` is older than the backlog kept (or unknown): resync from a snapshot."""
        return self.feed.since(event_id, limit)

    def feed_position(self) -> int:
        """The id of the newest change (0 before the first)."""
        return self.feed.position

    def save_contact(self, record: ClientRecord) -> None:
        """Like `save`, for a record whose only change is its contact times: written lazily."""
        if record.name in self._pending:
            self._pending[record.name] = record
        else:
            self._contacts[record.name] = record

    def delete(self, names: Iterable[str]) -> int:
        """Delete records and their history; answers how many existed."""
        names = set(names)
        existing = {name for name in names if self.get(name) is not None}
        for name in names:
            self._pending.pop(name, None)
            self._contacts.pop(name, None)
            self._pending_deletes.add(name)
        # history not written yet must not outlive the record (it would be inserted after it)
        self._pending_transitions = [t for t in self._pending_transitions if t.name not in names]
        self.flush()
        return len(existing)

    def flush(self, contacts: bool = True) -> bool:
        """Write everything buffered now (at shutdown, after deletes, in tests); the periodic
        flush passes `contacts=False` and includes contact-only records once they are due.
        Answers whether everything buffered is now written (False: kept for the next flush)."""
        with self._flush_lock:
            self._check(repair=True)
            now = time.monotonic()
            touched: dict[str, ClientRecord] = {}
            if contacts or now - self._contacts_flushed >= self.contact_flush_interval:
                self._contacts_flushed = now
                touched, self._contacts = self._contacts, {}
            if not (self._pending or touched or self._pending_transitions
                    or self._pending_deletes or self._pending_changes):
                return self.last_error is None
            if self.quarantined:
                self._drop_quarantined(touched)
            records, self._pending = self._pending, {}
            transitions, self._pending_transitions = self._pending_transitions, []
            deletes, self._pending_deletes = self._pending_deletes, set()
            changes, self._pending_changes = self._pending_changes, []
            self._inflight = {**touched, **records}
            self._inflight_transitions = transitions
            try:
                rejected = self._write(list(records.values()), transitions, deletes,
                                       list(touched.values()), changes)
                if self.last_error is not None:
                    log.warning("store writes succeed again (after %s)", self.last_error)
                self.last_error = self._logged_error = None
                if rejected:
                    self._quarantine(rejected)
                return True
            except Exception as error:  # keep the data and try again at the next flush
                self.last_error = f"{type(error).__name__}: {error}"
                # once per distinct error and minute, not at every flush (5 a second)
                repeated = self._logged_error == (self.last_error, int(now // 60))
                self._logged_error = (self.last_error, int(now // 60))
                (log.debug if repeated else log.error)(
                    "store write failed (%s); keeping %d records buffered",
                    self.last_error, len(records) + len(touched))
                for name, record in records.items():
                    self._pending.setdefault(name, record)
                for name, record in touched.items():
                    if name not in self._pending:
                        self._contacts.setdefault(name, record)
                self._pending_transitions[:0] = transitions
                self._pending_changes[:0] = changes
                self._pending_deletes |= deletes - set(self._pending)
                return False
            finally:
                self._inflight, self._inflight_transitions = {}, []

    def _quarantine(self, rejected: dict[str, str]) -> None:
        """Stop writing records the backend refused (logged once each, kept in memory)."""
        for name, reason in rejected.items():
            if name not in self.quarantined:
                self.quarantined.add(name)
                log.error("store: the record of %r cannot be written (%s); it stays in memory "
                          "but is no longer saved; every other record still is", name, reason)

    def _drop_quarantined(self, touched: dict[str, ClientRecord]) -> None:
        bad = self.quarantined
        for name in bad & self._pending.keys():
            del self._pending[name]
        for name in bad & touched.keys():
            del touched[name]
        self._pending_deletes -= bad
        if any(t.name in bad for t in self._pending_transitions):
            self._pending_transitions = [t for t in self._pending_transitions
                                         if t.name not in bad]

    # --- reads (overlaying the buffer) ------------------------------------------------------------
    def get(self, name: str) -> ClientRecord | None:
        if name in self._pending_deletes:
            return None
        buffered = (self._pending.get(name) or self._contacts.get(name)
                    or self._inflight.get(name))
        return buffered if buffered is not None else self._read_one(name)

    def load(self, name: str, fresh: bool = True) -> ClientRecord | None:
        """The record as the store holds it now, for a new actor (a shared store reads it
        from the shared copy when `fresh`; here it is `get`)."""
        return self.get(name)

    def send(self, node: str, payload: dict) -> None:
        """A shared store: queue `payload` for another node's inbox."""
        raise StoreError(f"the {self.kind} store serves one node")

    def owns_or_claims(self, name: str) -> bool:
        """A shared store: this node holds `name` now or claims it. Always, here."""
        return True

    def note_alive(self, node: str) -> None:
        """A shared store: `node` just proved alive. Nothing here."""
        return None

    def claim(self, name: str, from_owner: str | None = None) -> None:
        """A shared store: the next write of `name` takes ownership of it. Nothing here."""
        return None

    def all(self) -> list[ClientRecord]:
        records = {record.name: record for record in self._read_all()}
        records.update(self._inflight)
        records.update(self._contacts)
        records.update(self._pending)
        for name in self._pending_deletes:
            records.pop(name, None)
        return list(records.values())

    # --- queries (this base scans `all()`; a backend with an index answers them faster) --------
    def by_status(self, status: str) -> list[ClientRecord]:
        """The records whose status is `status`, in no particular order."""
        return [record for record in self.all() if record.status == status]

    def guests(self) -> list[ClientRecord]:
        return [record for record in self.all() if record.guest]

    def of_node(self, node: str) -> list[ClientRecord]:
        """The records last held by `node`."""
        return [record for record in self.all() if record.node == node]

    def counts(self) -> dict[str, int]:
        """`total`, one count per status, `guests` and the sum of `connections`."""
        counts = {"total": 0, ONLINE: 0, RECONNECTING: 0, OFFLINE: 0, "guests": 0,
                  "connections": 0}
        for record in self.all():
            counts["total"] += 1
            counts[record.status] = counts.get(record.status, 0) + 1
            counts["guests"] += int(record.guest)
            counts["connections"] += record.connections
        return counts

    def responsive(self, now: float, window: float) -> int:
        """How many online, connected records were heard from within `window` of `now`."""
        return sum(1 for record in self.by_status(ONLINE)
                   if record.connections > 0 and record.last_contact is not None
                   and now - record.last_contact <= window)

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

    def close(self) -> bool:
        """Write what is buffered and close; answers whether that final flush succeeded (False:
        those changes are lost, and the process should say so by its exit status)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        try:
            flushed = self.flush() and self.fault is None  # a fault: written, but not to keep
        except Exception:
            log.exception("final store flush failed")
            flushed = False
        if not flushed:
            log.error("store: the final flush failed (%s): the last changes are lost",
                      self.fault or self.last_error)
        self._close()
        return flushed

    def healthy(self) -> bool:
        try:
            self._ping()
            self._check(repair=False)
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            return False
        return self.last_error is None and self.fault is None

    def health(self) -> dict[str, object]:
        """`/health`'s store part: `{kind, ok, error}` (`error` says why when not ok), and how
        many records are quarantined."""
        ok = self.healthy()
        return {"kind": self.kind, "ok": ok,
                "error": None if ok else (self.fault or self.last_error),
                "quarantined": len(self.quarantined)}

    # --- small settings (e.g. the guest token key), written at once, not buffered ----------------
    def get_meta(self, key: str) -> str | None:
        """A setting kept by the store, or `None`."""
        raise NotImplementedError(f"the {self.kind} store keeps no settings")

    def set_meta(self, key: str, value: str) -> None:
        """Keep a setting (written before this returns)."""
        raise NotImplementedError(f"the {self.kind} store keeps no settings")

    # --- what a backend implements ----------------------------------------------------------------
    @abstractmethod
    def _write(self, records: list[ClientRecord], transitions: list[Transition],
               deletes: set[str], contacts: list[ClientRecord],
               changes: list[Change] = ()) -> dict[str, str]:
        """Apply one flush in one transaction: delete `deletes`, write `records` whole, append
        `transitions` (with their `event_id` when they have one) and the feed's `changes`
        (keeping at least the backlog of them), then write `contacts` — records whose only
        change since their last
        whole write is `last_seen`/`last_contact` (a backend may write just those two fields,
        as long as a record it no longer holds is written whole).

        A record the backend cannot take (its data, not the store, is at fault) must not fail
        the others: answer {name: reason} for those, having written everything else. Raise
        only when the store itself failed (nothing is then considered written)."""

    def _check(self, repair: bool) -> None:
        """Look for store-level faults a write would not notice and set `fault` (None when all
        is well); with `repair`, also fix what can be fixed (the flush does)."""
        return None  # nothing to look at by default

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
