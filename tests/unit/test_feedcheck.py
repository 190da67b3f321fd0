"""The property test's feed checks (tests/support/feedcheck.py) catch what they are for: a
change lost, doubled, out of order or altered; a resume that skips; a wrong snapshot; a version
or `previous` that does not follow; a history that disagrees with the feed."""

from __future__ import annotations

import pytest

from tests.support.feedcheck import (
    REMOVED,
    STATUS_CHANGED,
    FeedMismatch,
    Segment,
    caught_up,
    check_consumer,
    check_history,
    check_segment,
    check_snapshot,
    check_versions,
    reference_items,
    state_at,
)


def change(event_id, name, status, previous, version, reason="connected"):
    return {"event": STATUS_CHANGED, "data": {
        "eventId": event_id, "name": name, "status": status, "previous": previous,
        "version": version, "reason": reason}}


def removal(event_id, name, status="offline"):
    return {"event": REMOVED, "data": {"eventId": event_id, "name": name, "status": status,
                                       "reason": "admin"}}


FEED = reference_items([
    change(1, "a", "online", None, 1),
    change(2, "b", "online", None, 1),
    change(3, "a", "reconnecting", "online", 2, "disconnect"),
    change(5, "a", "offline", "reconnecting", 3, "reconnect_timeout"),  # ids may have gaps
    removal(6, "b", "online"),
    change(7, "b", "online", None, 1),
])


def items(*ids):
    return [item for item in FEED if item[0] in ids]


def test_an_exact_segment_passes_and_every_fault_is_caught():
    check_segment(Segment("w", 2, items(3, 5, 6)), FEED, 7)
    check_segment(Segment("w", 0, list(reversed(items(1, 2, 3)))), FEED, 7)  # sorted first
    with pytest.raises(FeedMismatch, match="missing \\[3\\]"):
        check_segment(Segment("w", 2, items(5, 6)), FEED, 7)
    with pytest.raises(FeedMismatch, match="twice"):
        check_segment(Segment("w", 2, [*items(3), *items(3, 5)]), FEED, 7)
    with pytest.raises(FeedMismatch, match="out of order"):
        check_segment(Segment("s", 2, list(reversed(items(3, 5))), ordered=True), FEED, 7)
    with pytest.raises(FeedMismatch, match="not in the feed \\[2\\]"):
        check_segment(Segment("w", 2, items(2, 3)), FEED, 7)  # at or before its position
    altered = [(3, STATUS_CHANGED, {**FEED[2][2], "reason": "kicked"})]
    with pytest.raises(FeedMismatch, match="differs"):
        check_segment(Segment("w", 2, altered), FEED, 7)


def test_a_consumer_must_resume_where_it_got_to_and_reach_the_end():
    first = Segment("w#0", 0, items(1, 2, 3))
    check_consumer("w", [first, Segment("w#1", 3, items(5, 6, 7), resumed=True)], FEED, 7)
    # overlap after a resume is allowed (each connection is exact on its own)
    check_consumer("w", [first, Segment("w#1", 2, items(3, 5, 6, 7), resumed=True)], FEED, 7)
    with pytest.raises(FeedMismatch, match="previous connection only got to 3"):
        check_consumer("w", [first, Segment("w#1", 5, items(6, 7), resumed=True)], FEED, 7)
    with pytest.raises(FeedMismatch, match="got to 6"):
        check_consumer("w", [first, Segment("w#1", 3, items(5, 6), resumed=True)], FEED, 7)


def test_snapshots_are_the_feeds_state_at_their_position():
    assert state_at(FEED, 6) == {"a": ("offline", 3)}
    check_snapshot(Segment("w", 3, snapshot={"a": ("reconnecting", 2), "b": ("online", 1)}),
                   FEED)
    with pytest.raises(FeedMismatch, match="snapshot at 3"):
        check_snapshot(Segment("w", 3, snapshot={"a": ("online", 1), "b": ("online", 1)}), FEED)
    with pytest.raises(FeedMismatch, match="snapshot at 6"):
        check_snapshot(Segment("w", 6, snapshot={"a": ("offline", 3), "b": ("online", 1)}),
                       FEED)  # b was removed at 6
    check_snapshot(Segment("w", 3, snapshot={"a": ("reconnecting", 2)}, truncated=True), FEED)


def test_versions_rise_by_one_and_previous_is_the_status_before():
    check_versions(FEED)
    with pytest.raises(FeedMismatch, match="change 3"):
        check_versions(reference_items([change(1, "a", "online", None, 1),
                                        change(3, "a", "offline", "online", 3)]))
    with pytest.raises(FeedMismatch, match="change 2"):
        check_versions(reference_items([change(1, "a", "online", None, 1),
                                        change(2, "a", "offline", "reconnecting", 2)]))
    with pytest.raises(FeedMismatch, match="do not increase"):
        reference_items([change(2, "a", "online", None, 1), change(2, "b", "online", None, 1)])


def history(*transitions, status=None, version=None):
    rows = [{"eventId": e, "status": s, "previous": p, "reason": r, "version": v}
            for e, s, p, r, v in transitions]
    return {"status": status or rows[-1]["status"], "version": version or rows[-1]["version"],
            "transitions": rows}


def test_a_record_agrees_with_its_history_and_the_feed():
    a = history((1, "online", None, "connected", 1), (3, "reconnecting", "online",
                                                      "disconnect", 2),
                (5, "offline", "reconnecting", "reconnect_timeout", 3))
    check_history("a", a, FEED)
    check_history("b", history((7, "online", None, "connected", 1)), FEED)  # since re-created
    with pytest.raises(FeedMismatch, match="record"):
        check_history("a", {**a, "status": "online"}, FEED)
    with pytest.raises(FeedMismatch, match="do not chain"):
        check_history("a", history((1, "online", None, "connected", 1),
                                   (5, "offline", "reconnecting", "reconnect_timeout", 3)), FEED)
    with pytest.raises(FeedMismatch, match="no record"):
        check_history("a", None, FEED)
    removed_feed = [*FEED, (8, REMOVED, {"eventId": 8, "name": "a", "status": "offline"})]
    check_history("a", None, removed_feed)
    with pytest.raises(FeedMismatch, match="still there"):
        check_history("a", a, removed_feed)


def test_a_watch_for_some_names_gets_only_theirs():
    named = frozenset({"a"})
    # resumed with since 0: the answer's changes up to 3, then the events: only a's
    check_segment(Segment("w", 0, items(1, 3, 5), names=named, until=3), FEED, 7, last=True)
    assert caught_up(Segment("w", 0, items(1, 3, 5), names=named, until=3), FEED, 7)
    assert not caught_up(Segment("w", 0, items(1, 3), names=named, until=3), FEED, 7)
    with pytest.raises(FeedMismatch, match="not in the feed \\[2\\]"):
        check_segment(Segment("w", 0, items(1, 2, 3), names=named, until=3), FEED, 7)
    with pytest.raises(FeedMismatch, match="not in the feed \\[6\\]"):
        check_segment(Segment("w", 0, items(1, 3, 5, 6), names=named, until=3), FEED, 7)
    with pytest.raises(FeedMismatch, match="missing \\[5\\]"):
        check_segment(Segment("w", 0, items(1, 3), names=named, until=3), FEED, 7, last=True)
    check_snapshot(Segment("w", 3, snapshot={"a": ("reconnecting", 2)}, names=named), FEED)
    with pytest.raises(FeedMismatch, match="snapshot"):
        check_snapshot(Segment("w", 3, snapshot={"a": ("reconnecting", 2), "b": ("online", 1)},
                               names=named), FEED)
