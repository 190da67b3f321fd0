"""Property-based test (issue 12): random sequences of events and payloads at a real server.

A hypothesis state machine drives one real server process (shared by every example, each with
its own name prefix) with real python-socketio clients over websocket or long-polling: named
and guest connects (guests also coming back with their resume token), connects with hostile
`auth`, heartbeats (valid, naming another client, hostile payloads and fields), closes and
abrupt drops, two clients flapping from two threads while a watcher joins, `watch` with and
without `since` (and `names`), admin kicks and deletes, the guest cleanup routes, time passing
(so grace and heartbeat deadlines fire) and a graceful restart on the same store file, maybe
while clients keep connecting. Mid-run and at the end the records must settle to agree with
the live sockets; then everyone leaves, the rest is kicked and the guests deleted (quiescence),
and:

- every record touched agrees with its live sockets (online exactly while a socket of ours is
  connected, `connections` counting them) and with its history (`GET /api/clients/<name>`:
  transitions chain, the record's status and version are the last transition's);
- every watcher socket and an `/events` subscriber, resuming after a restart, saw every change
  of the feed exactly once (none lost, none twice; the stream in order), and each snapshot is
  the feed's state at its position — the feed being what a fresh `watch {since: 0}` answers,
  and `/events?lastEventId=0` replays the same;
- `version` rises by one per change of a client, each change's `previous` is the status before.

Time passing is a step of the model (the server's deadlines are real time); every check waits
for quiescence with bounded waits. The run is derandomized (the same examples each run; what
a step picks among still depends on timing); when hunting a bug, PRESENCE_PROPERTY_EXAMPLES=N
runs more examples, PRESENCE_PROPERTY_RANDOM=1 new ones, PRESENCE_PROPERTY_SHRINK=1 shrinks a
failure (each shrink step replays against the server: minutes).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import urllib.parse
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
import socketio
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)

from tests.support import feedcheck
from tests.support.clients import RecordingClient
from tests.support.feedcheck import Segment
from tests.support.server import ServerProcess, wait_for
from tests.support.sse import SseClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ADMIN = "property-admin-token"
GRACE = 1.5  # reconnection grace (named and guests), and the silence limit (3 × 0.5 s)
CONFIG = {
    "monitoring": {"heartbeat_interval": "0.5s", "max_missed_heartbeats": 3,
                   "heartbeat_grace_period": "1s", "reconnection_grace_period": f"{GRACE}s",
                   "connection_check_interval": "1s", "offline_timeout": "30s"},
    "socket": {"ping_interval": "1s", "ping_timeout": "3s"},
    "guests": {"connection_timeout": f"{GRACE}s", "cleanup_interval": "1s"},
    "shutdown": {"notice_delay": "0.2s", "reconnect_after": "1s", "timeout": "8s"},
    "security": {"admin_token": ADMIN, "max_events_per_second": 1000,
                 "new_records_per_minute": 0, "watch_snapshot_limit": 100000},
}
WAIT = 15.0  # bound of every wait for the server or a client to settle
TRANSPORTS = ("websocket", "polling")

SETTINGS = settings(
    max_examples=int(os.environ.get("PRESENCE_PROPERTY_EXAMPLES", "10")),
    stateful_step_count=20,
    deadline=None,
    derandomize=os.environ.get("PRESENCE_PROPERTY_RANDOM") != "1",
    database=None,
    print_blob=True,
    phases=(Phase.explicit, Phase.generate,
            *((Phase.shrink,) if os.environ.get("PRESENCE_PROPERTY_SHRINK") == "1" else ())),
    suppress_health_check=list(HealthCheck),
)

# Payloads a hostile or broken client may send as a heartbeat (its own name is added by the
# step for the "valid but odd fields" case).
BAD_NAMES = st.one_of(
    st.none(), st.integers(), st.booleans(), st.just(""), st.just(" " * 3),
    st.text(alphabet="\n\t\r\x00\u202e\u200b", min_size=1, max_size=4),
    st.text(alphabet="abc", min_size=1, max_size=4).map(lambda s: "guest-" + s),
    st.just("n" * 129), st.lists(st.integers(), max_size=2), st.dictionaries(
        st.text(max_size=3), st.integers(), max_size=2))
BAD_AUTH_NAMES = st.one_of(
    st.integers(), st.just(""), st.text(alphabet="\n\t\r\x00\u202e\u200b", min_size=1, max_size=4),
    st.just("n" * 129), st.lists(st.integers(), max_size=2))
HOSTILE = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=12),
    st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.fixed_dictionaries({"clientName": BAD_NAMES}),
    st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(),
                                                   st.text(max_size=8)), max_size=3),
)
ODD_FIELDS = st.fixed_dictionaries({}, optional={
    "ip_address": st.one_of(st.text(max_size=70), st.integers(), st.just("203.0.113.7")),
    "timestamp": st.one_of(st.text(max_size=8), st.floats(allow_nan=True, allow_infinity=True),
                           st.integers(), st.none()),
    "token": st.one_of(st.text(max_size=8), st.integers()),
})

# Never a falsy auth (python-socketio's client sends it as {}: no auth at all), nor a number
# (a CONNECT packet's "0851" reads as ack id 851 with no data: no auth either).
HOSTILE_AUTH = st.one_of(
    st.text(min_size=1, max_size=8), st.lists(st.integers(), min_size=1, max_size=2),
    st.fixed_dictionaries({"clientName": BAD_AUTH_NAMES}),
    st.fixed_dictionaries({"guest": st.one_of(st.integers(), st.text(max_size=3))}),
    st.fixed_dictionaries({"guest": st.just(True), "name": BAD_AUTH_NAMES}))
HEARTBEAT_KINDS = ("own", "own", "other", "odd", "hostile")

# The steps, weighted by repetition (hypothesis shrinks toward the first).
ACTIONS = (
    "heartbeat", "connect_named", "heartbeat", "close", "connect_named", "heartbeat",
    "connect_guest", "watch", "kick", "close", "guest_cleanup", "guest_returns", "heartbeat",
    "connect_guest", "time_passes", "time_passes", "restart", "agree", "connect_hostile",
    "delete_client", "flap", "flap",
)
# What each step needs besides its picks, transport and flag.
EXTRAS: dict[str, Any] = {
    "heartbeat": st.sampled_from(HEARTBEAT_KINDS).flatmap(lambda kind: st.fixed_dictionaries({
        "kind": st.just(kind),
        **({"fields": ODD_FIELDS} if kind == "odd" else {}),
        **({"payload": HOSTILE} if kind == "hostile" else {})})),
    "connect_guest": st.fixed_dictionaries({"display": st.text(max_size=10)}),
    "connect_hostile": st.fixed_dictionaries({"auth": HOSTILE_AUTH}),
    "watch": st.fixed_dictionaries({"since": st.sampled_from([None, "zero", "start", "newest"]),
                                    "names": st.booleans()}),
    "guest_cleanup": st.fixed_dictionaries({
        "route": st.sampled_from(["one", "before", "all"]),
        "offset": st.sampled_from([-60.0, 0.0, 60.0])}),
    "time_passes": st.fixed_dictionaries({"seconds": st.sampled_from([0.2, 0.7, 1.6])}),
    "flap": st.fixed_dictionaries({"times": st.integers(1, 4), "since": st.sampled_from(
        [None, "newest"]), "names": st.booleans()}),
}


@dataclass(frozen=True)
class Step:
    """One step, drawn whole before it runs (what it picks among — live sockets, known
    names — depends on timing, so its draws must not: `picks` index those lists modulo)."""

    action: str
    picks: tuple[int, int]
    transport: str
    flag: bool
    extra: dict[str, Any]


STEPS = st.sampled_from(ACTIONS).flatmap(lambda action: st.builds(
    Step, st.just(action), st.tuples(st.integers(0, 63), st.integers(0, 63)),
    st.sampled_from(TRANSPORTS), st.booleans(), EXTRAS.get(action, st.just({}))))

_examples = itertools.count()


def now_iso(offset: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset, tz=UTC).isoformat()


def reached(stream: SseClient, after: int, end: int) -> bool:
    """The stream, resumed after `after`, got every change up to `end` (a stream resumed at
    the end sends nothing at all)."""
    return end <= after or (stream.last_id is not None and int(stream.last_id) >= end)


@dataclass
class Sock:
    """One client socket of the model and the identity it acts for (None: not named yet)."""

    label: str
    client: RecordingClient
    name: str | None
    guest: bool = False
    dropped: bool = False  # its transport was cut under python-socketio (still "connected")

    @property
    def live(self) -> bool:
        return not self.dropped and bool(self.client.sio.connected)


@dataclass
class Watcher:
    """A watcher identity: one socket per server lifetime (`sockets[i]` got `segments[i]`),
    resuming with `since` after a restart."""

    label: str
    transport: str
    names: list[str] | None = None  # `watch {names}`
    segments: list[Segment] = field(default_factory=list)
    sockets: list[RecordingClient] = field(default_factory=list)

    def seen(self, index: int = -1) -> Segment:
        """Segment `index` with every change its socket got so far (the answer's, then the
        events': python-engineio's client runs each packet's callback in a thread of its
        own, so these are in no particular order; the checks sort them)."""
        segment, client = self.segments[index], self.sockets[index]
        with client._changed:
            live = [(data["eventId"], event, data) for event, data, _ in client.events
                    if event in feedcheck.FEED_EVENTS]
        return replace(segment, items=[*segment.items, *live])


class PresenceMachine(RuleBasedStateMachine):
    """Random steps at the shared server; the properties are checked in `teardown`."""

    server: ServerProcess  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"p{next(_examples)}"
        self.names = [f"{self.prefix}-{letter}" for letter in "abc"]
        self.sockets: list[Sock] = []
        self.guests: dict[str, str | None] = {}  # guest id -> resume token
        self.watchers: list[Watcher] = []
        self.streams: list[Segment] = []  # the /events subscriber's connections
        self.sse: SseClient | None = None
        self.sse_clients: list[SseClient] = []
        self.restarts = 0
        self.deleted: set[str] = set()  # names the admin deleted (they may come back)
        self.counter = itertools.count()

    # --- plumbing ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    def _label(self, kind: str) -> str:
        return f"{self.prefix}:{kind}{next(self.counter)}"

    def _admin(self, method: str, path: str) -> tuple[int, Any]:
        return self.server.request(method, path, token=ADMIN)

    def _record(self, name: str) -> dict[str, Any] | None:
        status, body = self.server.request("GET", "/api/clients/" + urllib.parse.quote(name, ""))
        assert status in (200, 404), (status, body)
        return body if status == 200 else None

    def _live(self, name: str | None = None) -> list[Sock]:
        return [s for s in self.sockets if s.live and (name is None or s.name == name)]

    def _known_names(self) -> list[str]:
        return [*self.names, *self.guests]

    def _watch_segment(self, watcher: Watcher, since: int | None) -> None:
        client = RecordingClient(self.url, watcher.transport).connect()
        watcher.sockets.append(client)
        request: dict[str, Any] = {} if since is None else {"since": since}
        if watcher.names is not None:
            request["names"] = watcher.names
        answer = client.call("watch", request)
        label = f"{watcher.label}#{len(watcher.segments)}"
        names = frozenset(watcher.names) if watcher.names is not None else None
        if "changes" in answer:
            items = [(c["data"]["eventId"], c["event"], c["data"]) for c in answer["changes"]]
            segment = Segment(label, since, items, resumed=True, names=names,
                              until=answer["eventId"])
            assert answer["resync"] is False, answer
        else:
            assert answer["resync"] is (since is not None), answer
            snapshot = {c["name"]: (c["status"], c["version"]) for c in answer["clients"]}
            segment = Segment(label, answer["eventId"], snapshot=snapshot,
                              truncated=answer["truncated"], names=names)
        watcher.segments.append(segment)

    def _open_stream(self, after: int) -> None:
        sse = SseClient(self.url, headers={"Last-Event-ID": str(after)})
        assert sse.status == 200, sse.status
        self.sse = sse
        self.sse_clients.append(sse)
        self.streams.append(Segment(f"{self.prefix}:events#{len(self.streams)}", after,
                                    resumed=True, ordered=True))

    def _stream_items(self, index: int) -> list[feedcheck.Item]:
        sse = self.sse_clients[index]
        with sse._changed:
            events = list(sse.events)
        bad = [e for e in events if e.event not in feedcheck.FEED_EVENTS]
        assert not bad, f"/events sent {[(e.event, e.data[:200]) for e in bad]}"
        return [(int(e.id), e.event, e.json()) for e in events]

    # --- steps ------------------------------------------------------------------------------
    @initialize(transport=st.sampled_from(TRANSPORTS))
    def start_watching(self, transport: str) -> None:
        watcher = Watcher(self._label("watcher"), transport)
        self.watchers.append(watcher)
        self._watch_segment(watcher, None)
        self._open_stream(watcher.segments[0].start)

    @rule(step=STEPS)
    def step(self, step: Step) -> None:
        """One step; one the state does not allow yet (a heartbeat with no socket) connects."""
        possible = {"heartbeat": self._live, "close": self._live, "kick": self._touched,
                    "delete_client": self._touched, "agree": self._touched,
                    "guest_cleanup": lambda: self.guests, "guest_returns": lambda: self.guests,
                    "watch": lambda: len(self.watchers) < 3, "restart": lambda: not self.restarts}
        action = step.action if possible.get(step.action, lambda: True)() else "connect_named"
        getattr(self, action)(step)

    @staticmethod
    def _pick(items: Any, index: int) -> Any:
        items = sorted(items) if isinstance(items, (set, dict)) else list(items)
        return items[index % len(items)]

    def connect_named(self, step: Step) -> None:
        """A named client opens a socket: registered at connect, or by its first heartbeat."""
        client_name = self._pick(self.names, step.picks[0])
        if step.flag:  # named by its first heartbeat
            client = RecordingClient(self.url, step.transport).connect()
            sock = Sock(self._label("s"), client, None)
            self.sockets.append(sock)
            self._heartbeat(sock, {"clientName": client_name}, expect_ok=True)
            return
        client = RecordingClient(self.url, step.transport, auth={"clientName": client_name})
        self.sockets.append(Sock(self._label("s"), client.connect(), client_name))

    def connect_guest(self, step: Step) -> None:
        auth = {"guest": True, "name": step.extra["display"]}
        client = RecordingClient(self.url, step.transport, auth=auth)
        try:
            client.connect()
        except socketio.exceptions.ConnectionError:
            refused = client.wait_event("connect_error", timeout=WAIT)
            assert "name" in str(refused), refused  # only a bad display name is refused
            return
        registered = client.wait_event("guest_registered", timeout=WAIT)
        self.guests[registered["guestId"]] = registered["resumeToken"]
        self.sockets.append(Sock(self._label("g"), client, registered["guestId"], guest=True))

    def connect_hostile(self, step: Step) -> None:
        """A connect with a bad `auth`: refused with a message; nothing else changes."""
        auth = step.extra["auth"]
        client = RecordingClient(self.url, step.transport, auth=auth)
        try:
            client.connect()
        except socketio.exceptions.ConnectionError:
            refused = client.wait_event("connect_error", timeout=WAIT)
            assert refused, refused
            return
        finally:
            client.close()
        raise AssertionError(f"auth {auth!r} was accepted")

    def flap(self, step: Step) -> None:
        """Two named clients connect and leave over and over from two threads (one per
        transport) while, maybe, another watcher joins: changes racing each other and the
        snapshot."""
        names = [self._pick(self.names, step.picks[0]), self._pick(self.names, step.picks[1])]
        opened: list[Sock] = []
        errors: list[BaseException] = []

        def churn(name: str, transport: str) -> None:
            try:
                for _ in range(step.extra["times"]):
                    client = RecordingClient(self.url, transport, auth={"clientName": name})
                    opened.append(Sock(self._label("f"), client.connect(), name))
                    client.close()
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=churn, args=(name, transport))
                   for name, transport in zip(names, TRANSPORTS, strict=True)]
        for thread in threads:
            thread.start()
        if step.flag and len(self.watchers) < 3:
            self.watch(step)
        for thread in threads:
            thread.join(WAIT * 2)
        self.sockets.extend(opened)
        assert not errors, errors
        for sock in opened:
            wait_for(lambda sock=sock: not sock.live, WAIT, 0.05, f"{sock.label} to close")

    def guest_returns(self, step: Step) -> None:
        """A known guest reconnects with its id and resume token (also after it was deleted)."""
        guest_id = self._pick(self.guests, step.picks[0])
        auth = {"guest": True, "name": "back", "guestId": guest_id,
                "resumeToken": self.guests[guest_id]}
        client = RecordingClient(self.url, step.transport, auth=auth).connect()
        registered = client.wait_event("guest_registered", timeout=WAIT)
        assert registered["guestId"] == guest_id, registered
        self.sockets.append(Sock(self._label("g"), client, guest_id, guest=True))

    def heartbeat(self, step: Step) -> None:
        sock = self._pick(self._live(), step.picks[0])
        kind = step.extra["kind"]
        own = sock.name
        named = own or self._pick(self.names, step.picks[1])
        if kind == "own":
            self._heartbeat(sock, {"clientName": named}, expect_ok=True)
        elif kind == "other":
            other = self._pick([n for n in self._known_names() if n != own], step.picks[1])
            # naming another client: refused on a named socket, a registration on an unnamed one
            self._heartbeat(sock, {"clientName": other}, expect_ok=own is None and not
                            other.startswith("guest-"))
        elif kind == "odd":
            self._heartbeat(sock, {"clientName": named, **step.extra["fields"]}, expect_ok=None)
        else:
            self._heartbeat(sock, step.extra["payload"], expect_ok=False
                            if sock.name is None else None)

    def _heartbeat(self, sock: Sock, payload: Any, expect_ok: bool | None) -> None:
        try:
            reply = sock.client.call("heartbeat", payload, timeout=5)
        except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError,
                socketio.exceptions.DisconnectedError):
            # the server closed this socket meanwhile (heartbeat timeout, kick, deleted guest)
            wait_for(lambda: not sock.live, WAIT, 0.05, f"{sock.label} to be closed")
            return
        assert isinstance(reply, dict) and reply.get("status") in ("ok", "error"), reply
        assert reply.get("code") != "internal_error", (payload, reply)
        if expect_ok is not None:
            assert (reply["status"] == "ok") is expect_ok, (payload, reply)
        if reply["status"] == "ok" and sock.name is None:
            sock.name = payload["clientName"]

    def close(self, step: Step) -> None:
        sock = self._pick(self._live(), step.picks[0])
        if step.flag and sock.client.transports == ["websocket"]:
            sock.client.drop()  # the server sees the transport go, no goodbye
            sock.dropped = True
        else:
            sock.client.close()
        wait_for(lambda: not sock.live, WAIT, 0.05, f"{sock.label} to close")

    def watch(self, step: Step) -> None:
        """Another watcher: a snapshot, or the changes after 0 / this example's start / the
        newest change the first watcher got."""
        since = step.extra["since"]
        names = sorted({self._pick(self.names, pick) for pick in step.picks})
        watcher = Watcher(self._label("watcher"), step.transport,
                          names if step.extra["names"] else None)
        self.watchers.append(watcher)
        first = self.watchers[0]
        position = {None: None, "zero": 0, "start": first.segments[0].start,
                    "newest": first.seen().newest()}[since]
        self._watch_segment(watcher, position)

    def kick(self, step: Step) -> None:
        name = self._pick(self._touched(), step.picks[0])
        before = self._record(name)
        status, body = self._admin("POST", f"/api/clients/{urllib.parse.quote(name, '')}/kick")
        if self._may_vanish(before):
            assert status in (200, 404), (status, body)
        if status == 200 or not self._may_vanish(before):
            assert status == 200 and body["status"] == "offline", (status, body)
        if status == 200:
            for sock in [s for s in self.sockets if s.name == name]:
                wait_for(lambda sock=sock: not sock.live, WAIT, 0.05, f"{sock.label} kicked")

    @staticmethod
    def _may_vanish(record: dict[str, Any] | None) -> bool:
        """No record yet (its connect is still on its way), or an offline guest (the cleanup
        sweep deletes those any moment)."""
        return record is None or (record["guest"] and record["status"] == "offline")

    def delete_client(self, step: Step) -> None:
        """The admin deletes a record (and its history); its sockets are closed."""
        name = self._pick(self._touched(), step.picks[0])
        before = self._record(name)
        self.deleted.add(name)
        status, body = self._admin("DELETE", f"/api/clients/{urllib.parse.quote(name, '')}")
        if self._may_vanish(before):
            assert status in (200, 404), (status, body)
        else:
            assert (status, body) == (200, {"deleted": 1}), (status, body)
        if status == 200:
            for sock in [s for s in self.sockets if s.name == name]:
                wait_for(lambda sock=sock: not sock.live, WAIT, 0.05, f"{sock.label} deleted")

    def agree(self, step: Step) -> None:
        """Mid-run: the records settle to agree with the live sockets."""
        self._settle(self._touched())

    def guest_cleanup(self, step: Step) -> None:
        route = step.extra["route"]
        if route == "one":
            guest_id = self._pick(self.guests, step.picks[0])
            status, body = self._admin("DELETE", f"/api/guests/{guest_id}")
            assert (status, body) in ((200, {"deleted": 1}),) or status == 404, (status, body)
            gone = [guest_id]
        elif route == "before":
            query = urllib.parse.urlencode({"before": now_iso(step.extra["offset"])})
            status, body = self._admin("DELETE", f"/api/guests/cleanup?{query}")
            assert status == 200 and body["deleted"] >= 0, (status, body)
            gone = []  # connected guests are kept: whose record went is checked at the end
        else:
            status, body = self._admin("DELETE", "/api/guests/cleanup-all")
            assert status == 200 and body["deleted"] >= 0, (status, body)
            gone = list(self.guests)
        for sock in [s for s in self.sockets if s.guest and s.name in gone and status == 200]:
            wait_for(lambda sock=sock: not sock.live, WAIT, 0.05, f"{sock.label} deleted")

    def time_passes(self, step: Step) -> None:
        """Real time passes with no step (a model step, not a synchronisation): heartbeat and
        grace deadlines may fire."""
        time.sleep(step.extra["seconds"])

    def restart(self, step: Step) -> None:
        """Graceful restart on the same store file; every consumer resumes where it got to.
        With `flag`, clients keep connecting, heartbeating and leaving while it shuts down."""
        self.restarts += 1
        busy = threading.Event()
        opened: list[Sock] = []
        thread = threading.Thread(target=self._busy_until_down, args=(step, busy, opened))
        if step.flag:
            thread.start()
            busy.wait(WAIT)
        try:
            assert self.server.stop() == 0
        finally:
            if step.flag:
                thread.join(WAIT * 2)
            self.sockets.extend(opened)
        for sock in self.sockets:
            wait_for(lambda sock=sock: not sock.live, WAIT, 0.05, f"{sock.label} to end")
        assert self.sse is not None
        self.sse.ended.wait(WAIT)
        assert self.sse.ended.is_set()
        for watcher in self.watchers:
            wait_for(lambda w=watcher: not w.sockets[-1].sio.connected, WAIT, 0.05,
                     f"{watcher.label} to be disconnected")
        self.server.start()
        after = self.sse.last_id
        self._open_stream(int(after) if after is not None else self.streams[-1].start)
        for watcher in self.watchers:
            self._watch_segment(watcher, watcher.seen().newest())

    def _busy_until_down(self, step: Step, busy: threading.Event, opened: list[Sock]) -> None:
        """Connect, heartbeat and leave, one name per transport, until the process is gone;
        refusals and closed sockets are expected here (the server is shutting down)."""
        names = [self._pick(self.names, step.picks[0]), self._pick(self.names, step.picks[1])]
        process = self.server.process
        while process is not None and process.poll() is None:
            for name, transport in zip(names, TRANSPORTS, strict=True):
                client = RecordingClient(self.url, transport, auth={"clientName": name})
                try:
                    opened.append(Sock(self._label("r"), client.connect(wait_timeout=2), name))
                    client.heartbeat(name, timeout=2)
                    if step.picks[0] % 2:
                        client.close()
                except (socketio.exceptions.SocketIOError, OSError):
                    client.close()
                busy.set()

    # --- the properties ---------------------------------------------------------------------
    def teardown(self) -> None:
        try:
            self._check()
        finally:
            for sock in self.sockets:
                sock.client.close()
            for watcher in self.watchers:
                for client in watcher.sockets:
                    client.close()
            for sse in self.sse_clients:
                sse.close()

    def _touched(self) -> set[str]:
        return {s.name for s in self.sockets if s.name is not None} | set(self.guests)

    def _agrees(self, name: str) -> bool:
        """The record is online exactly while a socket of ours for it is connected, and
        counts those sockets (a guest deleted by the admin: no record, no socket)."""
        ours = len(self._live(name))
        record = self._record(name)
        if record is None:
            return ours == 0 and (name in self.guests or name in self.deleted)
        return ((record["status"] == "online") == (ours > 0)
                and record["connections"] == ours)

    def _settle(self, names: set[str]) -> None:
        try:
            wait_for(lambda: all(self._agrees(name) for name in names), WAIT, 0.1, "agreement")
        except AssertionError:
            raise AssertionError("records disagree with the live sockets (name, record, ours):"
                                 f" {[(n, self._record(n), len(self._live(n))) for n in names]}"
                                 ) from None

    def _check(self) -> None:
        touched = self._touched()
        # 1. live sockets: settles (sockets the server closes end on our side too)
        self._settle(touched)
        # 2. quiescence: everyone leaves, the rest is kicked, guests are deleted
        for sock in self.sockets:
            sock.client.close()
        wait_for(lambda: not self._live(), WAIT, 0.05, "every socket to close")
        for name in touched:
            record = self._record(name)
            if record is not None and record["status"] != "offline":
                self._admin("POST", f"/api/clients/{urllib.parse.quote(name, '')}/kick")
        self._admin("DELETE", "/api/guests/cleanup-all")
        wait_for(lambda: all((r := self._record(n)) is None or
                             (r["status"] == "offline" and r["connections"] == 0 and
                              not r["guest"]) for n in touched), WAIT, 0.1, "quiescence")
        # 3. the reference feed: watch {since: 0}; /events?lastEventId=0 replays the same
        probe = RecordingClient(self.url).connect()
        try:
            answer = probe.call("watch", {"since": 0})
        finally:
            probe.close()
        assert answer["resync"] is False, "the feed lost changes: since 0 answered a resync"
        reference = feedcheck.reference_items(answer["changes"])
        end = answer["eventId"]
        assert not reference or reference[-1][0] == end, (reference[-1:], end)
        replay = SseClient(self.url, path="/events?lastEventId=0")
        try:
            replay.wait(lambda c: reached(c, 0, end), WAIT, f"the /events replay to reach {end}")
            replayed = [(int(e.id), e.event, e.json()) for e in replay.events
                        if int(e.id) <= end]
        finally:
            replay.close()
        assert replayed == reference, "/events?lastEventId=0 differs from watch {since: 0}"
        # 4. versions and statuses chain in the feed
        feedcheck.check_versions(reference)
        # 5. every watcher and the /events subscriber: each change exactly once
        for watcher in self.watchers:
            wait_for(lambda w=watcher: feedcheck.caught_up(w.seen(), reference, end), WAIT,
                     0.05, f"{watcher.label} to get every change up to {end}")
            assert watcher.sockets[-1].sio.connected, f"{watcher.label}: its socket closed"
            segments = [watcher.seen(index) for index in range(len(watcher.segments))]
            feedcheck.check_consumer(watcher.label, segments, reference, end)
        assert self.sse is not None
        self.sse.wait(lambda c: reached(c, self.streams[-1].start, end), WAIT,
                      f"the /events subscriber to reach {end}")
        streams = [Segment(s.label, s.start, self._stream_items(index), resumed=True,
                           ordered=True) for index, s in enumerate(self.streams)]
        feedcheck.check_consumer(f"{self.prefix}:events", streams, reference, end)
        # 6. every record this example touched agrees with its history
        changed = {data["name"] for event_id, _, data in reference
                   if event_id > self.watchers[0].segments[0].start} | touched
        for name in sorted(changed):
            if name.startswith(self.prefix) or name in self.guests:
                feedcheck.check_history(name, self._record(name), reference)


def test_random_sessions_keep_records_history_and_feeds_consistent(module_server):
    """One server for every example (each with its own names); its log tail goes into the
    report of a failure (tests/e2e/conftest.py)."""
    PresenceMachine.server = module_server(CONFIG)
    run_state_machine_as_test(PresenceMachine, settings=SETTINGS)
