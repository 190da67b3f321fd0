"""The embedded store: SQLite (stdlib), one file, WAL journal.

Every SQLite call runs through `runner` — under gevent a one-thread pool of real threads, so the
event loop never waits on the disk; elsewhere inline under a lock. The file belongs to one node,
so the store also keeps every record in memory (loaded at open, updated on every save): reads of
records never touch the disk or decode JSON; only transition history is read from the file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from .base import Runner, Store
from .records import ClientRecord, Transition

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

    def __init__(self, url: str, runner: Runner | None = None) -> None:
        super().__init__()
        self.path = path_from_url(url)
        if self.path != ":memory:":
            Path(self.path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock() if runner is None else None
        self._runner = runner
        self._connection = self._run(self._connect)
        self._written_since_trim: dict[str, int] = {}
        self._records: dict[str, ClientRecord] = {
            record.name: record for record in self._load_records()}

    def _run(self, function):
        if self._runner is not None:
            return self._runner(function)
        with self._lock:
            return function()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(SCHEMA)
        return connection

    def _write(self, records: list[ClientRecord], transitions: list[Transition],
               deletes: set[str], contacts: list[ClientRecord]) -> None:
        def write() -> None:
            db = self._connection
            db.execute("BEGIN")
            try:
                if deletes:
                    names = [(name,) for name in deletes]
                    db.executemany("DELETE FROM clients WHERE name = ?", names)
                    db.executemany("DELETE FROM transitions WHERE name = ?", names)
                self._upsert(db, records)
                if contacts:
                    self._write_contacts(db, contacts)
                db.executemany(
                    "INSERT INTO transitions (name, status, previous, reason, at, version, node)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(t.name, t.status, t.previous, t.reason, t.at, t.version, t.node)
                     for t in transitions],
                )
                for name in self._due_for_trim(transitions):
                    db.execute(
                        "DELETE FROM transitions WHERE name = ? AND id <= (SELECT id FROM"
                        " transitions WHERE name = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (name, name, HISTORY_PER_CLIENT),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        self._run(write)

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

    def save(self, record: ClientRecord, transition: Transition | None = None) -> None:
        self._records[record.name] = record
        super().save(record, transition)

    def save_contact(self, record: ClientRecord) -> None:
        self._records[record.name] = record
        super().save_contact(record)

    def delete(self, names) -> int:
        names = set(names)
        deleted = super().delete(names)
        for name in names:
            self._records.pop(name, None)
        return deleted

    def _load_records(self) -> list[ClientRecord]:
        rows = self._run(lambda: self._connection.execute("SELECT data FROM clients").fetchall())
        return [ClientRecord.from_dict(json.loads(row[0])) for row in rows]

    def _read_one(self, name: str) -> ClientRecord | None:
        return self._records.get(name)

    def _read_all(self) -> list[ClientRecord]:
        return list(self._records.values())

    def _read_transitions(self, name: str, limit: int) -> list[Transition]:
        rows = self._run(lambda: self._connection.execute(
            "SELECT name, status, previous, reason, at, version, node FROM transitions"
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
