"""The SQLite store and its write buffer (real SQLite files, no gevent)."""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime

from presence_server.store import open_store
from presence_server.store.records import ClientRecord, Transition, iso


def record(name: str, status: str = "online", version: int = 1, **changes) -> ClientRecord:
    base = dict(name=name, status=status, reason="connected", since=100.0, last_seen=None,
                last_contact=100.0, ip="127.0.0.1", guest=False, node="n1", connections=1,
                version=version)
    return ClientRecord(**{**base, **changes})


def transition(name: str, status: str, version: int) -> Transition:
    return Transition(name=name, status=status, previous=None, reason="connected", at=100.0,
                      version=version, node="n1")


def test_buffered_writes_are_visible_before_and_after_the_flush(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    store.save(record("a"), transition("a", "online", 1))
    assert store.get("a") == record("a")
    assert [t.status for t in store.transitions("a")] == ["online"]
    store.flush()
    assert store.get("a") == record("a") and len(store.all()) == 1
    assert [t.version for t in store.transitions("a")] == [1]
    store.close()


def test_many_saves_of_one_client_cost_one_row(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    for beat in range(100):
        store.save(record("a", last_seen=float(beat)))
    store.flush()
    rows = sqlite3.connect(tmp_path / "p.db").execute("SELECT COUNT(*) FROM clients").fetchone()
    assert rows == (1,) and store.get("a").last_seen == 99.0
    store.close()


def test_data_survives_a_reopen(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(url)
    store.save(record("a", guest=True, display_name="Visitor"), transition("a", "online", 1))
    store.close()
    again = open_store(url)
    assert again.get("a") == record("a", guest=True, display_name="Visitor")
    assert len(again.transitions("a")) == 1
    again.close()


def test_delete_removes_records_and_history(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    for name in ("a", "b", "c"):
        store.save(record(name), transition(name, "online", 1))
    store.flush()
    assert store.delete(["a", "b", "zzz"]) == 2
    assert [r.name for r in store.all()] == ["c"]
    assert store.get("a") is None and store.transitions("a") == []
    store.save(record("a", version=5))
    assert store.get("a").version == 5
    store.close()


def test_delete_drops_history_not_written_yet(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    store.save(record("a"), transition("a", "online", 1))  # buffered, not flushed
    assert store.delete(["a"]) == 1
    assert store.transitions("a") == []
    store.close()
    reopened = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    assert reopened.get("a") is None and reopened.transitions("a") == []
    reopened.close()


def test_history_is_capped_per_client(tmp_path):
    from presence_server.store.sqlite import HISTORY_PER_CLIENT, TRIM_SLACK

    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    for version in range(1, HISTORY_PER_CLIENT + 51):
        store.save(record("a", version=version), transition("a", "online", version))
        if version % 40 == 0:
            store.flush()
    store.flush()
    kept = store.transitions("a", limit=10_000)
    # trimmed back to HISTORY_PER_CLIENT every TRIM_SLACK transitions: never more than slack over
    assert HISTORY_PER_CLIENT <= len(kept) < HISTORY_PER_CLIENT + TRIM_SLACK
    assert kept[-1].version == HISTORY_PER_CLIENT + 50
    assert [t.version for t in kept] == list(range(HISTORY_PER_CLIENT + 51 - len(kept),
                                                   HISTORY_PER_CLIENT + 51))
    store.close()


def test_a_failed_write_keeps_the_data_for_the_next_flush(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    store.save(record("a"))
    store.flush()
    lock = sqlite3.connect(tmp_path / "p.db", timeout=0)
    lock.execute("BEGIN EXCLUSIVE")
    store._connection.execute("PRAGMA busy_timeout = 0")
    store.save(record("a", version=2), transition("a", "reconnecting", 2))
    store.flush()
    assert store.last_error is not None and not store.healthy()
    assert store.get("a").version == 2  # still visible from the buffer
    lock.execute("ROLLBACK")
    lock.close()
    store.flush()
    assert store.last_error is None and store.healthy()
    reopened = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    assert reopened.get("a").version == 2 and len(reopened.transitions("a")) == 1
    store.close()
    reopened.close()


def stored_last_seen(path, name):
    row = sqlite3.connect(path).execute(
        "SELECT json_extract(data, '$.last_seen') FROM clients WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


def test_contact_only_saves_are_visible_at_once_and_written_lazily(tmp_path):
    path = tmp_path / "p.db"
    store = open_store(f"sqlite:///{path}")
    store.contact_flush_interval = 3600.0
    store.save(record("a", last_seen=1.0))
    store.flush(contacts=False)
    store.save_contact(record("a", last_seen=2.0))
    assert store.get("a").last_seen == 2.0 and store.all() == [record("a", last_seen=2.0)]
    store.flush(contacts=False)  # the periodic flush: contacts are not due yet
    assert stored_last_seen(path, "a") == 1.0
    store.contact_flush_interval = 0.0
    store.flush(contacts=False)  # now they are
    assert stored_last_seen(path, "a") == 2.0
    store.close()


def test_a_status_change_after_a_contact_save_wins_and_close_writes_contacts(tmp_path):
    path = tmp_path / "p.db"
    store = open_store(f"sqlite:///{path}")
    store.contact_flush_interval = 3600.0
    store.save_contact(record("a", last_seen=5.0))
    store.save(record("a", status="reconnecting", version=2, last_seen=5.0))
    store.save_contact(record("b", last_seen=7.0))
    store.flush(contacts=False)
    assert store.get("a").status == "reconnecting" and stored_last_seen(path, "a") == 5.0
    assert stored_last_seen(path, "b") is None
    store.save_contact(record("b", last_seen=8.0))
    store.delete(["zzz"])  # any full flush writes the waiting contacts too
    assert stored_last_seen(path, "b") == 8.0
    store.save_contact(record("b", last_seen=9.0))
    store.close()
    assert stored_last_seen(path, "b") == 9.0


def test_deleting_a_client_drops_its_waiting_contact_save(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    store.save(record("a"))
    store.flush()
    store.save_contact(record("a", last_seen=3.0))
    assert store.delete(["a"]) == 1
    assert store.get("a") is None and store.all() == []
    store.flush()
    assert store.get("a") is None
    store.close()


def _iso_reference(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def test_iso_matches_datetime_formatting_exactly_including_rounding_edges():
    rng = random.Random(7)
    edges = [0.0, 0.9999995, 0.0000005, 1.5, 1795433336.9999996, 1795433336.9994999,
             1795433336.0005, 86399.9999999, 951782399.9999999, -0.25, -1.0000004]
    samples = edges + [rng.uniform(0, 4e9) for _ in range(20000)]
    samples += [1795433336 + i / 1000 + rng.uniform(-2e-7, 2e-7) for i in range(3000)]
    for timestamp in samples:
        assert iso(timestamp) == _iso_reference(timestamp), timestamp
    assert iso(None) is None


def stored_row(path, name):
    row = sqlite3.connect(path).execute(
        "SELECT status, data FROM clients WHERE name = ?", (name,)).fetchone()
    return row


def test_contact_writes_edit_only_the_contact_times_and_round_trip_exactly(tmp_path):
    path = tmp_path / "p.db"
    store = open_store(f"sqlite:///{path}")
    store.save(record("a", last_seen=1.0, ip="10.0.0.1"))
    store.flush()
    precise = record("a", last_seen=1795433336.123456789, ip="10.0.0.1")
    precise = replace(precise, last_contact=1795433337.000001)
    store.save_contact(precise)
    store.flush()
    status, data = stored_row(path, "a")
    assert status == "online"
    assert json.loads(data) == precise.to_dict()
    reopened = open_store(f"sqlite:///{path}")
    assert reopened.get("a") == precise  # floats round-trip bit for bit
    reopened.close()
    store.save_contact(replace(precise, last_contact=None))
    store.flush()
    assert json.loads(stored_row(path, "a")[1])["last_contact"] is None
    store.close()


def test_a_contact_write_for_a_record_not_on_disk_writes_it_whole(tmp_path):
    path = tmp_path / "p.db"
    store = open_store(f"sqlite:///{path}")
    store.save_contact(record("new", last_seen=4.0))  # never written whole before
    store.flush()
    assert json.loads(stored_row(path, "new")[1]) == record("new", last_seen=4.0).to_dict()
    store.close()


def test_a_failed_flush_keeps_contacts_for_the_next_one(tmp_path):
    path = tmp_path / "p.db"
    store = open_store(f"sqlite:///{path}")
    store.save(record("a", last_seen=1.0))
    store.flush()
    lock = sqlite3.connect(path, timeout=0)
    lock.execute("BEGIN EXCLUSIVE")
    store._connection.execute("PRAGMA busy_timeout = 0")
    store.save_contact(record("a", last_seen=2.0))
    store.flush()
    assert store.last_error is not None and store.get("a").last_seen == 2.0
    lock.execute("ROLLBACK")
    lock.close()
    store.flush()
    assert store.last_error is None and stored_last_seen(path, "a") == 2.0
    store.close()
