"""The embedded store: SQLite (stdlib), one file, WAL journal.

Every SQLite call runs through `runner` — under gevent a one-thread pool of real threads, so the
event loop never waits on the disk; elsewhere inline under a lock. The file belongs to one node,
so the store also keeps every record in memory (loaded at open, updated on every save): reads of
records never touch the disk or decode JSON; only transition history is read from the file. An
index beside them (names by status, by node, guests, running counts) answers the store queries
in O(1) or O(matching records).

Faults it looks for: a file it cannot write refuses the open (a real write is tried, since
permissions say little when running as root); the file deleted or replaced under it is noticed
at the next flush and recreated from the still-open connection, history included; a record
SQLite cannot take is rejected alone; a failed ROLLBACK never hides the error that caused it.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import Runner, Store, StoreError
from .feed import ChangeLog
from .index import RecordIndex
from .records import Change, ClientRecord, Transition

log = logging.getLogger("presence.store")

# What a record's own data can make SQLite (or the JSON encoding) raise: the record is at fault,
# not the store, so it is rejected alone. Anything else (OperationalError: disk full, read-only,
# locked, I/O) is the store's fault and fails the whole flush, which keeps everything buffered.
RECORD_ERRORS = (ValueError, TypeError, OverflowError, sqlite3.IntegrityError,
                 sqlite3.InterfaceError, sqlite3.DataError)

HISTORY_PER_CLIENT = 200
# A client's history is trimmed back to HISTORY_PER_CLIENT once TRIM_SLACK more transitions were
# written for it, not at every write: a storm of 10,000 status changes then costs one batched
# insert, not 10,000 DELETE statements (each a GIL round trip for the writer thread).
TRIM_SLACK = 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    guest INTEGER NOT NULL,
    node TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    previous TEXT,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    version INTEGER NOT NULL,
    node TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_by_name ON transitions (name, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


def _json_number(value: float | None) -> str:
    return "null" if value is None else repr(float(value))


def path_from_url(url: str) -> str:
    """`sqlite:///presence.db` -> `presence.db`; `sqlite:////tmp/p.db` -> `/tmp/p.db`."""
    path = url[len("sqlite:///"):]
    if not path:
        raise ValueError(f"no file path in {url!r}")
    return path


class SqliteStore(Store):
    kind = "sqlite"
    shared = False

    def __init__(self, url: str, runner: Runner | None = None, backlog: int = 10000) -> None:
        super().__init__(backlog)
        self.path = path_from_url(url)
        if self.path != ":memory:":
            Path(self.path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock() if runner is None else None
        self._runner = runner
        self._connection = None
        try:
            self._connection = self._run(self._connect)
            self._run(self._probe_writable)
        except sqlite3.Error as error:
            if self._connection is not None:
                self._connection.close()
            raise StoreError(f"store: cannot write {self.path} ({error})") from error
        self._identity = self._file_identity()
        self._written_since_trim: dict[str, int] = {}
        self._index = RecordIndex()
        for record in self._load_records():
            self._index.put(record)
        self.feed = self._load_feed(backlog)
        self._changes_since_trim = 0

    def _run(self, function):
        if self._runner is not None:
            # The error comes back as a value and is raised here, in the caller: raised in the
            # pool's thread, gevent would also print its traceback to stderr on every failure.
            failed, value = self._runner(lambda: _outcome(function))
            if failed:
                raise value
            return value
        with self._lock:
            return function()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(SCHEMA)
        return connection

    def _probe_writable(self) -> None:
        """A real write, rolled back: SQLite opens a read-only file without complaint and
        BEGIN IMMEDIATE succeeds on it; only writing a row tells."""
        db = self._connection
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO transitions (name, status, previous, reason, at, version,"
                       " node) VALUES ('', '', NULL, 'write probe', 0, 0, '')")
        finally:
            _rollback(db)

    # --- the file under us ------------------------------------------------------------------------
    def _file_identity(self) -> tuple[int, int] | None:
        if self.path == ":memory:":
            return None
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_dev, stat.st_ino)

    def _check(self, repair: bool) -> None:
        """The file we write must still be the one at `path`: deleted or replaced, everything
        written from now on would vanish at the next start."""
        if self._identity is None:
            return
        now = self._file_identity()
        if now == self._identity:
            if self.fault is not None and repair:
                self.fault = None
            return
        problem = (f"{self.path} was deleted while the server runs" if now is None
                   else f"{self.path} was replaced by another file while the server runs")
        if not repair:
            if self.fault is None or not self.fault.startswith(problem):
                self.fault = problem
            return
        try:
            self._run(self._recreate)
        except Exception as error:
            fault = f"{problem}; cannot recreate it: {type(error).__name__}: {error}"
            if fault != self.fault:
                log.error("store: %s (retrying at every flush)", fault)
            self.fault = fault
            return
        log.error("store: %s; recreated it from the open connection (records and history "
                  "kept)", problem)
        self.fault = None

    def _recreate(self) -> None:
        """Copy the database the open connection still holds into a fresh file at `path`."""
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        spare = path.with_name(path.name + ".recovering")
        spare.unlink(missing_ok=True)
        copy = sqlite3.connect(spare)
        try:
            self._connection.backup(copy)
        finally:
            copy.close()
        old = self._connection
        try:
            old.close()
        except sqlite3.Error:
            log.debug("store: closing the lost file failed", exc_info=True)
        for suffix in ("-wal", "-shm"):  # the lost file's: never let SQLite apply them to ours
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.replace(spare, path)
        self._connection = self._connect()
        self._identity = self._file_identity()

    # --- writes -----------------------------------------------------------------------------------
    def _write(self, records: list[ClientRecord], transitions: list[Transition],
               deletes: set[str], contacts: list[ClientRecord],
               changes: list[Change] = ()) -> dict[str, str]:
        def write() -> dict[str, str]:
            db = self._connection
            try:
                _transaction(db, lambda: (
                    self._write_batch(db, records, transitions, deletes, contacts),
                    self._write_changes(db, changes)))
                return {}
            except RECORD_ERRORS as error:
                log.warning("store: a flush of %d records failed on one of them (%s: %s); "
                            "writing them one by one", len(records) + len(contacts),
                            type(error).__name__, error)
            return _transaction(db, lambda: (
                self._write_each(db, records, transitions, deletes, contacts),
                self._write_changes(db, changes))[0])

        return self._run(write)

    def _write_batch(self, db: sqlite3.Connection, records: list[ClientRecord],
                     transitions: list[Transition], deletes: set[str],
                     contacts: list[ClientRecord]) -> None:
        if deletes:
            names = [(name,) for name in deletes]
            db.executemany("DELETE FROM clients WHERE name = ?", names)
            db.executemany("DELETE FROM transitions WHERE name = ?", names)
            self._forget_trims(deletes)
        self._upsert(db, records)
        if contacts:
            self._write_contacts(db, contacts)
        db.executemany(
            "INSERT INTO transitions (id, name, status, previous, reason, at, version, node)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(t.event_id, t.name, t.status, t.previous, t.reason, t.at, t.version, t.node)
             for t in transitions],
        )
        for name in self._due_for_trim(transitions):
            self._trim(db, name)

    def _write_each(self, db: sqlite3.Connection, records: list[ClientRecord],
                    transitions: list[Transition], deletes: set[str],
                    contacts: list[ClientRecord]) -> dict[str, str]:
        """The batch again, each item under its own savepoint: an item its own data makes fail
        is rolled back alone and its name answered; a store error still fails everything."""
        rejected: dict[str, str] = {}

        def attempt(name: str, action: Callable[[], Any]) -> None:
            if name in rejected:
                return
            db.execute("SAVEPOINT one")
            try:
                action()
            except RECORD_ERRORS as error:
                db.execute("ROLLBACK TO one")
                db.execute("RELEASE one")
                rejected[name] = f"{type(error).__name__}: {error}"
            else:
                db.execute("RELEASE one")

        self._forget_trims(deletes)
        for name in deletes:
            attempt(name, lambda name=name: (
                db.execute("DELETE FROM clients WHERE name = ?", (name,)),
                db.execute("DELETE FROM transitions WHERE name = ?", (name,))))
        for record in records:
            attempt(record.name, lambda record=record: self._upsert(db, [record]))
        for record in contacts:
            attempt(record.name, lambda record=record: self._write_contacts(db, [record]))
        for t in transitions:
            attempt(t.name, lambda t=t: db.execute(
                "INSERT INTO transitions (id, name, status, previous, reason, at, version,"
                " node) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (t.event_id, t.name, t.status, t.previous, t.reason, t.at, t.version,
                 t.node)))
        for name in self._due_for_trim([t for t in transitions if t.name not in rejected]):
            attempt(name, lambda name=name: self._trim(db, name))
        return rejected

    def _write_changes(self, db: sqlite3.Connection, changes: list[Change]) -> None:
        """Append the feed's changes (JSON with ASCII escapes: no record can make it fail);
        every tenth of the backlog, drop what is older than the backlog (writer thread only)."""
        if not changes:
            return
        db.executemany("INSERT INTO feed (id, event, data) VALUES (?, ?, ?)",
                       [(c.event_id, c.event, c.data) for c in changes])
        self._changes_since_trim += len(changes)
        backlog = self.feed.backlog
        if self._changes_since_trim >= max(1, backlog // 10):
            self._changes_since_trim = 0
            db.execute("DELETE FROM feed WHERE id < (SELECT id FROM feed ORDER BY id DESC"
                       " LIMIT 1 OFFSET ?)", (backlog - 1,))

    @staticmethod
    def _trim(db: sqlite3.Connection, name: str) -> None:
        db.execute(
            "DELETE FROM transitions WHERE name = ? AND id <= (SELECT id FROM"
            " transitions WHERE name = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (name, name, HISTORY_PER_CLIENT),
        )

    @staticmethod
    def _upsert(db: sqlite3.Connection, records: list[ClientRecord]) -> None:
        db.executemany(
            "INSERT INTO clients (name, status, guest, node, data) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET status=excluded.status,"
            " guest=excluded.guest, node=excluded.node, data=excluded.data",
            [(r.name, r.status, int(r.guest), r.node, json.dumps(r.to_dict())) for r in records],
        )

    def _write_contacts(self, db: sqlite3.Connection, contacts: list[ClientRecord]) -> None:
        """Only the two contact times, edited inside the stored JSON by SQLite itself: no
        Python-side serialisation of 20,000 records every `contact_flush_interval`, and the
        writer thread mostly runs in SQLite with the GIL released. Numbers go in as JSON text
        (`repr`), so they round-trip exactly. A record that is not stored (deleted meanwhile)
        is written whole, as before."""
        updated = db.executemany(
            "UPDATE clients SET data = json_set(data, '$.last_seen', json(?),"
            " '$.last_contact', json(?)) WHERE name = ?",
            [(_json_number(r.last_seen), _json_number(r.last_contact), r.name)
             for r in contacts],
        ).rowcount
        if updated != len(contacts):
            self._upsert(db, contacts)

    def _forget_trims(self, names: set[str]) -> None:
        """Deleted clients need no trim count (writer thread only): guest churn must not grow it."""
        for name in names:
            self._written_since_trim.pop(name, None)

    def _due_for_trim(self, transitions: list[Transition]) -> list[str]:
        """Names with TRIM_SLACK transitions written since their last trim (writer thread only)."""
        due = []
        written = self._written_since_trim
        for transition in transitions:
            count = written.get(transition.name, 0) + 1
            if count >= TRIM_SLACK:
                due.append(transition.name)
                count = 0
            written[transition.name] = count
        return due

    # --- the in-memory records and their index ----------------------------------------------------
    def save(self, record: ClientRecord, transition: Transition | None = None) -> None:
        self._index.put(record)
        super().save(record, transition)

    def save_contact(self, record: ClientRecord) -> None:
        self._index.put(record)
        super().save_contact(record)

    def delete(self, names) -> int:
        names = set(names)
        existing = sum(1 for name in names if self.get(name) is not None)
        for name in names:  # out of the index first: queries see the deletion at once
            self._index.remove(name)
        super().delete(names)
        return existing

    def by_status(self, status: str) -> list[ClientRecord]:
        return self._index.by_status(status)

    def guests(self) -> list[ClientRecord]:
        return self._index.guests()

    def of_node(self, node: str) -> list[ClientRecord]:
        return self._index.of_node(node)

    def counts(self) -> dict[str, int]:
        return self._index.counts()

    def responsive(self, now: float, window: float) -> int:
        return self._index.responsive(now, window)

    def _load_feed(self, backlog: int) -> ChangeLog:
        """The last `backlog` changes kept, and the highest id ever given (transitions and the
        feed use AUTOINCREMENT, so ids never go back, even when the newest rows were deleted)."""
        def read() -> tuple[list[tuple[int, str, str]], int]:
            db = self._connection
            rows = db.execute("SELECT id, event, data FROM feed ORDER BY id DESC LIMIT ?",
                              (backlog,)).fetchall()
            highest = max([0, *(row[0] or 0 for row in db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name IN ('feed', 'transitions')")),
                *(row[0] or 0 for row in db.execute(
                    "SELECT MAX(id) FROM transitions UNION ALL SELECT MAX(id) FROM feed"))])
            return rows, highest

        rows, highest = self._run(read)
        changes = []
        for event_id, event, data in reversed(rows):
            payload = json.loads(data)
            changes.append(Change(event_id, event, str(payload.get("name")),
                                  str(payload.get("status")), data))
        return ChangeLog(backlog, position=highest, loaded=changes)

    def _load_records(self) -> list[ClientRecord]:
        rows = self._run(lambda: self._connection.execute("SELECT data FROM clients").fetchall())
        return [ClientRecord.from_dict(json.loads(row[0])) for row in rows]

    def _read_one(self, name: str) -> ClientRecord | None:
        return self._index.get(name)

    def _read_all(self) -> list[ClientRecord]:
        return self._index.values()

    def _read_transitions(self, name: str, limit: int) -> list[Transition]:
        rows = self._run(lambda: self._connection.execute(
            "SELECT name, status, previous, reason, at, version, node, id FROM transitions"
            " WHERE name = ? ORDER BY id DESC LIMIT ?", (name, limit)).fetchall())
        return [Transition(*row) for row in reversed(rows)]

    def get_meta(self, key: str) -> str | None:
        row = self._run(lambda: self._connection.execute(
            "SELECT value FROM meta WHERE key = ?", (key,)).fetchone())
        return row[0] if row is not None else None

    def set_meta(self, key: str, value: str) -> None:
        self._run(lambda: self._connection.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value)))

    def _ping(self) -> None:
        self._run(lambda: self._connection.execute("SELECT 1").fetchone())

    def _close(self) -> None:
        self._run(self._connection.close)


def _outcome(function: Callable[[], Any]) -> tuple[bool, Any]:
    try:
        return False, function()
    except Exception as error:
        return True, error


def _transaction(db: sqlite3.Connection, body: Callable[[], Any]) -> Any:
    """Run `body` between BEGIN and COMMIT; on any error roll back without hiding it."""
    db.execute("BEGIN")
    try:
        result = body()
        db.execute("COMMIT")
    except BaseException as error:
        _rollback(db, error)
        raise
    return result


def _rollback(db: sqlite3.Connection, cause: BaseException | None = None) -> None:
    """ROLLBACK if a transaction is still open: SQLite ends it by itself on some errors (a full
    disk), and a ROLLBACK error must never replace the error that led here; both are logged."""
    if not db.in_transaction:
        return
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error as error:
        log.error("store: ROLLBACK failed (%s: %s) after %s", type(error).__name__, error,
                  f"{type(cause).__name__}: {cause}" if cause is not None else "a write probe")
