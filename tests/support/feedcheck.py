"""Checks of what change-feed consumers saw against the feed itself (issue 12's properties).

Pure functions over plain data, so the property-based test (tests/e2e/test_properties.py) states
its properties in a few lines and tests/unit/test_feedcheck.py can show each check catching the
fault it is for. The reference is the feed as a fresh `watch {since: 0}` answers it: a list of
`{"event": ..., "data": {...}}` in eventId order.

A consumer (a watcher socket, an `/events` stream) is a chain of *segments*, one per connection:
each starts at the position its answer gave (or the id it resumed after) and must then hold
exactly the feed's changes after that position, up to the newest it got, none twice; the next
segment must start no later than where the previous one got to, so nothing falls between them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

STATUS_CHANGED = "client_status_changed"
REMOVED = "client_removed"
FEED_EVENTS = (STATUS_CHANGED, REMOVED)

Item = tuple[int, str, dict[str, Any]]  # (eventId, event, data)


class FeedMismatch(AssertionError):
    """A consumer's view of the feed disagrees with the feed."""


def reference_items(changes: Iterable[dict[str, Any]]) -> list[Item]:
    """The feed as `watch {since}` answers it, as items; ids must strictly increase."""
    items = [(change["data"]["eventId"], change["event"], change["data"]) for change in changes]
    ids = [item[0] for item in items]
    for before, after in zip(ids, ids[1:], strict=False):
        if not after > before:
            raise FeedMismatch(f"feed ids do not increase: {before} then {after}")
    return items


@dataclass
class Segment:
    """What one connection of a consumer got: its start position and the items after it.

    `snapshot` is the answer's records (name -> (status, version)) when it started from a
    snapshot (a plain `watch`, or a `resync`); None when it resumed from a position.
    `ordered` says the items are in arrival order as the wire carried them (an `/events`
    stream read by one thread); a watcher's are not (python-engineio's client runs each
    packet's callback in a thread of its own) and are put in eventId order first.
    """

    label: str
    start: int
    items: list[Item] = field(default_factory=list)
    snapshot: dict[str, tuple[str, int]] | None = None
    truncated: bool = False
    resumed: bool = False  # started with `since` / `Last-Event-ID` (not a snapshot)
    ordered: bool = False
    # `watch {names}`: the answer (its snapshot, or its changes up to `until`) and the events
    # after it hold only these clients
    names: frozenset[str] | None = None
    until: int | None = None

    def wanted(self, item: Item) -> bool:
        return self.names is None or item[2]["name"] in self.names

    def newest(self) -> int:
        """The newest position this connection is known to have got to."""
        return max([self.start, self.until or 0, *(item[0] for item in self.items)])


def caught_up(segment: Segment, reference: list[Item], end: int) -> bool:
    """Whether the segment got to `end`: every change up to it (of its names only, for a
    `watch {names}`: it hears of no other, so it cannot know the feed moved on)."""
    if segment.names is None:
        return segment.newest() >= end
    have = {item[0] for item in segment.items}
    return all(item[0] in have for item in reference
               if segment.start < item[0] <= end and segment.wanted(item))


def check_segment(segment: Segment, reference: list[Item], end: int,
                  last: bool = False) -> None:
    """The segment holds exactly the feed's items in (start, newest], none twice, and every
    payload as the feed has it; when `ordered`, in feed order as received. The `last`
    connection of a `watch {names}` is held to every change of its names up to `end`."""
    ids = [item[0] for item in segment.items]
    if len(ids) != len(set(ids)):
        doubled = sorted({i for i in ids if ids.count(i) > 1})
        raise FeedMismatch(f"{segment.label}: changes seen twice: {doubled}")
    if segment.ordered and ids != sorted(ids):
        raise FeedMismatch(f"{segment.label}: changes out of order: {ids}")
    newest = end if last and segment.names is not None else min(segment.newest(), end)
    expected = {item[0]: item for item in reference
                if segment.start < item[0] <= newest and segment.wanted(item)}
    got = {item[0]: item for item in segment.items if item[0] <= end}
    missing = sorted(expected.keys() - got.keys())
    extra = sorted(got.keys() - expected.keys())
    if missing or extra:
        raise FeedMismatch(f"{segment.label}: after {segment.start} up to {newest}: missing "
                           f"{missing}, not in the feed {extra}")
    for event_id, item in got.items():
        if item[1:] != expected[event_id][1:]:
            raise FeedMismatch(f"{segment.label}: change {event_id} differs: got {item[1:]}, "
                               f"the feed has {expected[event_id][1:]}")


def check_consumer(label: str, segments: list[Segment], reference: list[Item], end: int) -> None:
    """Every segment is exact; each resumed one starts no later than the previous one got to;
    the last one got to `end`; a snapshot equals the feed's state at its position."""
    if not segments:
        raise FeedMismatch(f"{label}: no connection")
    for index, segment in enumerate(segments):
        check_segment(segment, reference, end, last=index == len(segments) - 1)
        if segment.snapshot is not None:
            check_snapshot(segment, reference)
        if index and segment.resumed:
            reached = segments[index - 1].newest()
            if segment.start > reached:
                raise FeedMismatch(f"{segment.label}: resumed after {segment.start}, but the "
                                   f"previous connection only got to {reached}")
    if not caught_up(segments[-1], reference, end):
        raise FeedMismatch(f"{segments[-1].label}: got to {segments[-1].newest()}, the feed is "
                           f"at {end}")


def state_at(reference: list[Item], position: int) -> dict[str, tuple[str, int]]:
    """Every client's (status, version) once the feed's changes up to `position` happened."""
    state: dict[str, tuple[str, int]] = {}
    for event_id, event, data in reference:
        if event_id > position:
            break
        if event == REMOVED:
            state.pop(data["name"], None)
        else:
            state[data["name"]] = (data["status"], data["version"])
    return state


def check_snapshot(segment: Segment, reference: list[Item]) -> None:
    """A snapshot answered at position P holds exactly the records the feed makes at P."""
    assert segment.snapshot is not None
    expected = state_at(reference, segment.start)
    if segment.names is not None:
        expected = {name: value for name, value in expected.items() if name in segment.names}
    if segment.truncated:
        expected = {name: expected[name] for name in segment.snapshot if name in expected}
    if segment.snapshot != expected:
        wrong = {name: (segment.snapshot.get(name), expected.get(name))
                 for name in segment.snapshot.keys() | expected.keys()
                 if segment.snapshot.get(name) != expected.get(name)}
        raise FeedMismatch(f"{segment.label}: snapshot at {segment.start} differs from the "
                           f"feed (name: (snapshot, feed)): {wrong}")


def check_versions(reference: list[Item]) -> None:
    """Per client: each change's `previous` is the status before it (None for a new record)
    and its `version` is one more than the one before (1 for a new record)."""
    last: dict[str, tuple[str, int]] = {}
    for event_id, event, data in reference:
        name = data["name"]
        if event == REMOVED:
            last.pop(name, None)
            continue
        before = last.get(name)
        expected = (None, 1) if before is None else (before[0], before[1] + 1)
        if (data["previous"], data["version"]) != expected:
            raise FeedMismatch(f"change {event_id} of {name!r}: previous/version "
                               f"{(data['previous'], data['version'])}, expected {expected}")
        last[name] = (data["status"], data["version"])


def check_history(name: str, body: dict[str, Any] | None, reference: list[Item]) -> None:
    """`GET /api/clients/<name>` agrees with the feed: gone after a removal, else the record
    is the last change's status and version, and its transitions chain (each one's `previous`
    is the status before it, versions one apart) and are the feed's changes of that name since
    it was (re)created."""
    mine = [item for item in reference if item[2]["name"] == name]
    if not mine:
        raise FeedMismatch(f"{name!r}: not in the feed")
    if mine[-1][1] == REMOVED:
        if body is not None:
            raise FeedMismatch(f"{name!r} was removed (change {mine[-1][0]}), but its record "
                               f"is still there: {body}")
        return
    if body is None:
        raise FeedMismatch(f"{name!r}: no record, but the feed's last change of it is "
                           f"{mine[-1]}")
    since_created = []
    for item in mine:
        since_created = [] if item[1] == REMOVED else [*since_created, item]
    last = since_created[-1][2]
    if (body["status"], body["version"]) != (last["status"], last["version"]):
        raise FeedMismatch(f"{name!r}: record {(body['status'], body['version'])}, the feed's "
                           f"last change {(last['status'], last['version'])}")
    transitions = body["transitions"]
    for before, after in zip(transitions, transitions[1:], strict=False):
        if after["previous"] != before["status"] or after["version"] != before["version"] + 1:
            raise FeedMismatch(f"{name!r}: transitions do not chain: {before} then {after}")
    if not transitions or transitions[-1]["status"] != body["status"]:
        raise FeedMismatch(f"{name!r}: status {body['status']} but last transition "
                           f"{transitions[-1:]}")
    shown = [(t["eventId"], t["status"], t["previous"], t["reason"], t["version"])
             for t in transitions]
    fed = [(data["eventId"], data["status"], data["previous"], data["reason"], data["version"])
           for _, _, data in since_created][-len(shown):]
    if shown != fed:
        raise FeedMismatch(f"{name!r}: history {shown} is not the feed's {fed}")
