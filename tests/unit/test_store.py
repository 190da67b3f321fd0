"""The SQLite store and its write buffer (real SQLite files, no gevent)."""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime

from presence_server.store import open_store
from presence_server.store.records import ClientRecord, Transition, iso

from tests.support.files import make_read_only, make_writable


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


# --- one bad record never blocks the others (issue 10, bug 2) ----------------------------------

EVIL = "evil\ud800"  # a lone surrogate: SQLite cannot encode it as UTF-8


def stored_names(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM clients")}


def test_a_record_sqlite_cannot_encode_is_rejected_alone_and_the_others_are_written(
        tmp_path, caplog):
    path = tmp_path / "p.db"
    store = open_store(f"sqlite:///{path}")
    store.save(record("a"), transition("a", "online", 1))
    store.save(record(EVIL), transition(EVIL, "online", 1))
    store.save(record("b"), transition("b", "online", 1))
    store.save_contact(record("c", last_seen=3.0))
    assert store.flush() is True
    assert store.last_error is None and store.healthy()
    assert stored_names(path) == {"a", "b", "c"}
    assert [t.version for t in store.transitions("b")] == [1]
    assert store.get(EVIL) == record(EVIL)  # still served from memory
    assert store.quarantined == {EVIL}
    assert repr(EVIL) in caplog.text  # named safely in the log
    # later changes: the bad one is no longer tried, the good ones are written at once
    store.save(record(EVIL, status="offline", version=2), transition(EVIL, "offline", 2))
    store.save_contact(record(EVIL, last_seen=9.0))
    store.save(record("d"), transition("d", "online", 1))
    assert store.flush() is True
    assert stored_names(path) == {"a", "b", "c", "d"}
    assert store.health() == {"kind": "sqlite", "ok": True, "error": None, "quarantined": 1}
    store.close()
    again = open_store(f"sqlite:///{path}")
    assert {r.name for r in again.all()} == {"a", "b", "c", "d"}
    again.close()


def test_a_bad_contact_only_record_does_not_block_the_contact_writes_of_others(tmp_path):
    path = tmp_path / "p.db"
    store = open_store(f"sqlite:///{path}")
    store.save(record("a", last_seen=1.0))
    store.flush()
    store.save_contact(record(EVIL, last_seen=2.0))
    store.save_contact(record("a", last_seen=2.0))
    assert store.flush() is True
    assert stored_last_seen(path, "a") == 2.0 and store.quarantined == {EVIL}
    store.close()


def test_a_store_error_is_not_mistaken_for_a_bad_record(tmp_path):
    """A locked file fails every record: nothing is quarantined, everything stays buffered."""
    path = tmp_path / "p.db"
    store = open_store(f"sqlite:///{path}")
    store.save(record("a"))
    store.flush()
    lock = sqlite3.connect(path, timeout=0)
    lock.execute("BEGIN EXCLUSIVE")
    store._connection.execute("PRAGMA busy_timeout = 0")
    store.save(record(EVIL))
    store.save(record("b"))
    assert store.flush() is False and store.quarantined == set()
    lock.execute("ROLLBACK")
    lock.close()
    assert store.flush() is True
    assert stored_names(path) == {"a", "b"} and store.quarantined == {EVIL}
    store.close()


# --- store faults are noticed (issue 10, bug 9) -------------------------------------------------


def test_a_full_disk_is_reported_as_such_not_masked_by_the_failed_rollback(tmp_path, caplog):
    """SQLite ends the transaction itself on SQLITE_FULL; the ROLLBACK that follows fails with
    'no transaction is active', and that error used to replace the real one."""
    path = tmp_path / "p.db"
    store = open_store(f"sqlite:///{path}")
    store.save(record("a"))
    store.flush()
    pages = store._connection.execute("PRAGMA page_count").fetchone()[0]
    store._connection.execute(f"PRAGMA max_page_count = {pages}")  # a real SQLITE_FULL
    for index in range(300):
        store.save(record(f"c{index}", ip="x" * 500))
    assert store.flush() is False
    assert "full" in store.last_error and "rollback" not in store.last_error.lower()
    assert not store.healthy() and store.health()["error"] == store.last_error
    assert store.quarantined == set()  # a store error, not 300 bad records
    store.close()


def test_a_read_only_file_refuses_the_open_with_a_clear_error(tmp_path):
    import pytest
    from presence_server.store import StoreError

    path = tmp_path / "p.db"
    open_store(f"sqlite:///{path}").close()
    make_read_only(path)
    try:
        with pytest.raises(StoreError, match="cannot write .*p.db.*readonly"):
            open_store(f"sqlite:///{path}")
    finally:
        make_writable(path)


def test_a_read_only_directory_refuses_the_open(tmp_path):
    import pytest
    from presence_server.store import StoreError

    folder = tmp_path / "ro"
    folder.mkdir()
    make_read_only(folder)
    try:
        with pytest.raises(StoreError, match="cannot write"):
            open_store(f"sqlite:///{folder / 'p.db'}")
    finally:
        make_writable(folder)


def test_a_deleted_file_is_noticed_and_recreated_with_records_and_history(tmp_path, caplog):
    import os

    path = tmp_path / "p.db"
    store = open_store(f"sqlite:///{path}")
    store.save(record("a"), transition("a", "online", 1))
    store.save(record("b"), transition("b", "online", 1))
    store.flush()
    for leftover in tmp_path.glob("p.db*"):
        os.remove(leftover)
    assert not store.healthy()
    assert "deleted" in store.health()["error"]
    store.save(record("b", status="offline", version=2), transition("b", "offline", 2))
    assert store.flush() is True  # noticed, recreated, then written
    assert store.healthy() and "recreated" in caplog.text
    store.close()
    again = open_store(f"sqlite:///{path}")
    assert {r.name: r.status for r in again.all()} == {"a": "online", "b": "offline"}
    assert [t.version for t in again.transitions("b")] == [1, 2]
    again.close()


def test_a_replaced_file_is_noticed_and_rewritten(tmp_path):
    path = tmp_path / "p.db"
    store = open_store(f"sqlite:///{path}")
    store.save(record("a"), transition("a", "online", 1))
    store.flush()
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    other.replace(path)
    assert "replaced" in store.health()["error"]
    store.flush()
    assert store.healthy()
    store.close()
    assert stored_names(path) == {"a"}


def test_a_deleted_file_that_cannot_be_recreated_keeps_the_store_degraded(tmp_path):
    import os

    folder = tmp_path / "data"
    folder.mkdir()
    store = open_store(f"sqlite:///{folder / 'p.db'}")
    store.save(record("a"))
    store.flush()
    for leftover in folder.glob("p.db*"):
        os.remove(leftover)
    make_read_only(folder)
    try:
        store.save(record("b"))
        store.flush()
        health = store.health()
        assert not health["ok"] and "cannot recreate" in health["error"]
        assert store.get("b") is not None
    finally:
        make_writable(folder)
    store.flush()
    assert store.healthy()
    store.close()
    assert stored_names(folder / "p.db") == {"a", "b"}


def test_close_answers_whether_the_final_flush_succeeded(tmp_path):
    path = tmp_path / "p.db"
    store = open_store(f"sqlite:///{path}")
    store.save(record("a"))
    assert store.close() is True
    store = open_store(f"sqlite:///{path}")
    lock = sqlite3.connect(path, timeout=0)
    lock.execute("BEGIN EXCLUSIVE")
    store._connection.execute("PRAGMA busy_timeout = 0")
    store.save(record("b"))
    try:
        assert store.close() is False
    finally:
        lock.execute("ROLLBACK")
        lock.close()


# --- queries (issue 10, design step "Store queries") ---------------------------------------------


def _scan_answers(store, nodes, now, window):
    """The same queries answered the slow way, by scanning `all()`."""
    from presence_server.store.base import Store

    names = lambda records: sorted(r.name for r in records)  # noqa: E731
    return {
        "status": {s: names(Store.by_status(store, s))
                   for s in ("online", "reconnecting", "offline")},
        "guests": names(Store.guests(store)),
        "nodes": {n: names(Store.of_node(store, n)) for n in nodes},
        "counts": Store.counts(store),
        "responsive": Store.responsive(store, now, window),
    }


def _index_answers(store, nodes, now, window):
    names = lambda records: sorted(r.name for r in records)  # noqa: E731
    return {
        "status": {s: names(store.by_status(s)) for s in ("online", "reconnecting", "offline")},
        "guests": names(store.guests()),
        "nodes": {n: names(store.of_node(n)) for n in nodes},
        "counts": store.counts(),
        "responsive": store.responsive(now, window),
    }


def test_the_index_answers_every_query_as_a_scan_of_all_records_would(tmp_path):
    rng = random.Random(10)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(url)
    nodes = ("n1", "n2", "n3")
    names = [f"c{i}" for i in range(60)]
    now, window = 1000.37, 30.0
    for step in range(3000):
        name = rng.choice(names)
        action = rng.random()
        if action < 0.05:
            store.delete([name, rng.choice(names)])
        elif action < 0.5:
            current = store.get(name) or record(name)
            store.save_contact(replace(current, last_contact=now - rng.uniform(0, 60),
                                       last_seen=now - rng.uniform(0, 60)))
        else:
            store.save(record(name, status=rng.choice(("online", "reconnecting", "offline")),
                              guest=rng.random() < 0.3, node=rng.choice(nodes),
                              connections=rng.randint(0, 2),
                              last_contact=now - rng.uniform(0, 60)))
        if step % 250 == 0:
            store.flush()
            assert _index_answers(store, nodes, now, window) == \
                _scan_answers(store, nodes, now, window)
    assert _index_answers(store, nodes, now, window) == _scan_answers(store, nodes, now, window)
    expected = _scan_answers(store, nodes, now, window)
    store.close()
    again = open_store(url)  # the index is rebuilt from the file
    assert _index_answers(again, nodes, now, window) == expected
    again.close()


def test_counts_answer_in_constant_time(tmp_path):
    import time

    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    for index in range(20_000):
        store.save(record(f"c{index}", status="online" if index % 3 else "offline"))
    started = time.perf_counter()
    for _ in range(1000):
        counts = store.counts()
    per_call = (time.perf_counter() - started) / 1000
    assert counts["total"] == 20_000 and counts["offline"] == 6667
    assert per_call < 0.0005  # a scan of 20,000 records takes milliseconds
    store.close()


def test_a_contact_only_write_reaches_the_file_within_about_a_second(tmp_path):
    """`last_seen` after a crash: at most `contact_flush_interval` (1 s) plus one periodic flush
    old (it was 5 s). The periodic flush is driven here as the scheduler would, every 0.05 s."""
    from tests.support.server import wait_for

    path = tmp_path / "p.db"
    store = open_store(f"sqlite:///{path}")
    store.save(record("a", last_seen=1.0))
    store.flush()
    store.save_contact(record("a", last_seen=2.0))

    def written() -> bool:
        store.flush(contacts=False)
        return stored_last_seen(path, "a") == 2.0

    wait_for(written, timeout=2.0, interval=0.05, message="the contact write within 2 s")
    assert store.contact_flush_interval <= 1.0
    store.close()


def test_store_stats_match_compute_stats_over_all_records(tmp_path):
    from presence_server.actors.stats import compute_stats, store_stats

    rng = random.Random(3)
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    for index in range(500):
        store.save(record(f"c{index}", status=rng.choice(("online", "reconnecting", "offline")),
                          guest=rng.random() < 0.2, connections=rng.randint(0, 3),
                          last_contact=rng.choice((None, 900.0 + rng.uniform(0, 100)))))
    for now, window in ((1000.0, 60.0), (1000.5, 30.0), (2000.0, 60.0)):
        assert store_stats(store, now, window) == compute_stats(store.all(), now, window)
    store.close()


def test_deleted_clients_leave_no_trim_counter_behind(tmp_path):
    """Guest churn: every name ever written must not stay in the writer's bookkeeping."""
    store = open_store(f"sqlite:///{tmp_path / 'presence.db'}")
    try:
        for n in range(50):
            name = f"guest-{n}"
            record = ClientRecord(name=name, status="online", reason="connected", since=1.0,
                                  last_seen=None, last_contact=None, ip=None, guest=True,
                                  node="n1", connections=1, version=1)
            store.save(record, Transition(name, "online", None, "connected", 1.0, 1, "n1"))
        store.flush()
        assert len(store._written_since_trim) == 50
        store.delete([f"guest-{n}" for n in range(50)])
        assert store._written_since_trim == {}
    finally:
        store.close()
