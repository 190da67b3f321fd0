"""The change feed behind the store: event ids, `changes_since`, the backlog, restarts
(real SQLite files; changes made through the real `PresenceFeed`, as the actors make them)."""

from __future__ import annotations

import sqlite3

from presence_server.actors.feed import PresenceFeed
from presence_server.store import open_store
from presence_server.store.feed import ChangeLog
from presence_server.store.records import Change, ClientRecord, parse_event_id
from presence_server.store.sqlite import HISTORY_PER_CLIENT, TRIM_SLACK

STATUSES = ("online", "reconnecting", "offline")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def __call__(self, event, data, to=None) -> None:
        self.events.append((event, dict(data)))


def record(name: str, version: int, status: str = "online") -> ClientRecord:
    return ClientRecord(name=name, status=status, reason="connected", since=100.0 + version,
                        last_seen=None, last_contact=None, ip=None, guest=False, node="n1",
                        connections=1, version=version)


def change(feed: PresenceFeed, name: str, version: int) -> None:
    feed.status_changed(record(name, version, STATUSES[version % 3]),
                        STATUSES[(version - 1) % 3] if version > 1 else None)


def open_feed(url: str, backlog: int = 10000) -> tuple[PresenceFeed, Recorder]:
    emitted = Recorder()
    return PresenceFeed(open_store(url, backlog=backlog), emit=emitted,
                        disconnect=lambda sid: None), emitted


def test_every_change_gets_the_next_id_in_its_event_its_transition_and_the_feed(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    feed, emitted = open_feed(url)
    store = feed.store
    assert store.feed_position() == 0
    for version in (1, 2, 3):
        change(feed, "a", version)
    change(feed, "b", 1)
    ids = [data["eventId"] for _, data in emitted.events]
    assert ids == [1, 2, 3, 4] and store.feed_position() == 4
    page = store.changes_since(1, 10)
    assert page.complete and page.position == 4 and not page.more
    assert [c.event_id for c in page.changes] == [2, 3, 4]
    assert [c.payload() for c in page.changes] == [data for _, data in emitted.events[1:]]
    # the transition is stored with its event id as its row id (before and after the flush)
    assert [t.event_id for t in store.transitions("a")] == [1, 2, 3]
    store.flush()
    assert [t.event_id for t in store.transitions("a")] == [1, 2, 3]
    assert store.transitions("a")[0].public()["eventId"] == 1
    rows = sqlite3.connect(tmp_path / "p.db").execute(
        "SELECT id, name, version FROM transitions ORDER BY id").fetchall()
    assert rows == [(1, "a", 1), (2, "a", 2), (3, "a", 3), (4, "b", 1)]
    page = store.changes_since(0, 2)
    assert [c.event_id for c in page.changes] == [1, 2] and page.more
    store.close()


def test_removals_are_in_the_feed_and_a_deleted_clients_changes_stay(tmp_path):
    feed, emitted = open_feed(f"sqlite:///{tmp_path / 'p.db'}")
    change(feed, "a", 1)
    change(feed, "a", 2)
    feed.store.delete(["a"])
    feed.removed(record("a", 2, "reconnecting"), "admin", 200.0)
    assert emitted.events[-1][0] == "client_removed"
    assert emitted.events[-1][1]["eventId"] == 3
    page = feed.store.changes_since(0, 10)
    assert page.complete
    assert [(c.event, c.name, c.event_id) for c in page.changes] == [
        ("client_status_changed", "a", 1), ("client_status_changed", "a", 2),
        ("client_removed", "a", 3)]
    feed.store.close()


def test_ids_continue_after_a_restart_and_resume_spans_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    feed, _ = open_feed(url)
    for version in range(1, 6):
        change(feed, "a", version)
    before = [c.payload() for c in feed.store.changes_since(2, 100).changes]
    feed.store.close()
    feed, emitted = open_feed(url)
    assert feed.store.feed_position() == 5
    change(feed, "a", 6)
    assert emitted.events[-1][1]["eventId"] == 6
    page = feed.store.changes_since(2, 100)
    assert page.complete
    assert [c.payload() for c in page.changes] == [*before, emitted.events[-1][1]]
    feed.store.close()


def test_ids_never_go_back_when_the_newest_rows_were_deleted(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    feed, _ = open_feed(url)
    change(feed, "a", 1)
    change(feed, "b", 1)
    feed.store.flush()
    feed.store.close()
    db = sqlite3.connect(tmp_path / "p.db")
    db.execute("DELETE FROM transitions")
    db.execute("DELETE FROM feed")
    db.commit()
    db.close()
    feed, emitted = open_feed(url)
    assert feed.store.feed_position() == 2
    assert not feed.store.changes_since(1, 10).complete  # that change is gone: resync
    change(feed, "c", 1)
    assert emitted.events[-1][1]["eventId"] == 3
    feed.store.close()


def test_trimming_one_clients_history_keeps_the_feed_complete(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    feed, _ = open_feed(url, backlog=1000)
    count = HISTORY_PER_CLIENT + 3 * TRIM_SLACK
    for version in range(1, count + 1):
        change(feed, "chatty", version)
        if version % 50 == 0:
            feed.store.flush()
    change(feed, "quiet", 1)
    feed.store.flush()
    assert len(feed.store.transitions("chatty", limit=10_000)) < count  # history trimmed
    for store in (feed.store, None):
        if store is None:
            feed.store.close()
            feed, _ = open_feed(url, backlog=1000)
            store = feed.store
        page = store.changes_since(0, 10_000)
        assert page.complete and len(page.changes) == count + 1
        assert [c.event_id for c in page.changes] == list(range(1, count + 2))
    feed.store.close()


def test_past_the_backlog_changes_since_says_resync(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    feed, _ = open_feed(url, backlog=10)
    for version in range(1, 51):
        change(feed, "a", version)
        feed.store.flush()
    for reopened in (False, True):
        if reopened:
            feed.store.close()
            feed, _ = open_feed(url, backlog=10)
        store = feed.store
        assert store.feed_position() == 50
        assert not store.changes_since(0, 100).complete
        assert not store.changes_since(30, 100).complete
        page = store.changes_since(40, 100)  # the last 10 are always kept
        assert page.complete and [c.event_id for c in page.changes] == list(range(41, 51))
        assert store.changes_since(50, 100).changes == []
        assert not store.changes_since(51, 100).complete  # an id this feed never gave
    rows = sqlite3.connect(tmp_path / "p.db").execute("SELECT COUNT(*) FROM feed").fetchone()
    assert 10 <= rows[0] <= 11  # the file keeps the backlog (trimmed every tenth of it)
    feed.store.close()


def test_a_failed_flush_keeps_the_feed_for_the_next(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    feed, _ = open_feed(url)
    change(feed, "a", 1)
    store = feed.store
    real = store._write_changes

    def failing(db, changes):
        raise sqlite3.OperationalError("disk I/O error")

    store._write_changes = failing
    assert store.flush() is False
    store._write_changes = real
    change(feed, "a", 2)
    assert store.flush() is True
    store.close()
    feed, _ = open_feed(url)
    assert [c.event_id for c in feed.store.changes_since(0, 10).changes] == [1, 2]
    feed.store.close()


def test_the_change_log_trims_in_batches_and_keeps_at_least_the_backlog():
    log = ChangeLog(backlog=100)
    for event_id in range(1, 1001):
        log.append(Change(event_id, "client_status_changed", "a", "online", "{}"))
        assert min(event_id, 100) <= len(log) <= 110
        assert log.since(max(0, event_id - 100), 1000).complete
    assert not log.since(1000 - 111, 1).complete


def test_event_ids_from_clients():
    assert parse_event_id(12) == 12 and parse_event_id("12") == 12 and parse_event_id(0) == 0
    for bad in (-1, "x", "1.5", 1.5, True, None, "", "٣", "9" * 30, [1]):
        assert parse_event_id(bad) is None
