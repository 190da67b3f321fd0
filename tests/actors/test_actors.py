"""Client actors and the supervisor, as real Pykka actors on a manual clock."""

from __future__ import annotations

from dataclasses import replace

from presence_server.actors.messages import (
    Census,
    CheckAnswered,
    Connect,
    DeleteClient,
    DeleteGuests,
    Disconnect,
    GuestCleanup,
    Heartbeat,
    KickClient,
    LogStats,
    ReconnectionSuccess,
    Recover,
    Route,
    Shutdown,
    ShutdownAll,
    Sweep,
)
from presence_server.actors.supervisor import (
    RETIRE_DELAY,
    RETIRE_SLICE,
    RETIRE_SLICE_PERIOD,
    settled_status,
)
from presence_server.store.records import ClientRecord

from .conftest import INTERVALS, TIMING, World


def walk(world, seconds: float, step: float = 1.0) -> None:
    """Advance the manual clock in steps, letting the actors react after each."""
    for _ in range(int(seconds / step)):
        world.advance(step)


def test_heartbeat_makes_a_client_online_and_tells_watchers(world):
    world.send("alice", Heartbeat("s1", "10.0.0.1", world.now()))
    assert world.state("alice").status == "online"
    assert world.sockets.statuses("alice") == [("online", "heartbeat", 1)]
    event = world.sockets.events("client_status_changed")[0]
    assert event["previous"] is None and event["node"] == "n1"
    assert world.store.get("alice").status == "online"
    assert [t.reason for t in world.store.transitions("alice")] == ["heartbeat"]


def test_heartbeats_keep_a_client_online_and_one_timer_per_silence_period(world):
    world.send("alice", Connect("s1", None, world.now()))
    for _ in range(20):
        world.advance(5)
        world.send("alice", Heartbeat("s1", None, world.now()))
    assert world.state("alice").status == "online"
    assert world.sockets.statuses("alice") == [("online", "connected", 1)]
    assert world.clock.pending() == 3 + 1  # three supervisor timers, one for the client


def test_silent_client_goes_offline_and_its_socket_is_closed(world):
    world.send("alice", Connect("s1", None, world.now()))
    walk(world, 29)
    assert world.state("alice").status == "online"
    walk(world, 2)
    assert world.sockets.statuses("alice")[-1] == ("offline", "heartbeat_timeout", 2)
    assert world.sockets.disconnected == ["s1"]


def test_drop_then_offline_after_the_grace(world):
    world.send("alice", Connect("s1", None, world.now()))
    dropped_at = world.now()
    world.send("alice", Disconnect("s1", world.now()))
    walk(world, 19)
    assert world.sockets.statuses("alice")[-1][0] == "reconnecting"
    walk(world, 2)
    assert world.sockets.statuses("alice") == [
        ("online", "connected", 1), ("reconnecting", "disconnect", 2),
        ("offline", "reconnect_timeout", 3)]
    offline_at = world.store.transitions("alice")[-1].at
    assert offline_at == dropped_at + TIMING.reconnection_grace_period


def test_return_within_grace_never_shows_offline(world):
    world.send("alice", Connect("s1", None, world.now()))
    world.send("alice", Disconnect("s1", world.now()))
    walk(world, 10)
    world.send("alice", Connect("s2", None, world.now()))
    for _ in range(8):
        walk(world, 5)
        world.send("alice", Heartbeat("s2", None, world.now()))
    statuses = [s for s, _, _ in world.sockets.statuses("alice")]
    assert statuses == ["online", "reconnecting", "online"]
    assert world.sockets.statuses("alice")[2] == ("online", "reconnected", 3)
    assert world.sockets.events("client_reconnected")[0]["clientName"] == "alice"


def test_bad_messages_never_kill_an_actor(world):
    world.send("alice", Connect("s1", None, world.now()))
    ref = world.directory["alice"].ref
    ref.tell("not a message")
    ref.tell(object())
    world.sockets.fail_emits = 1  # the feed's emit raises while handling a real change
    ref.tell(Disconnect("s1", world.now()))
    world.settle()
    assert ref.is_alive()
    assert world.state("alice").status == "reconnecting"


def test_a_dead_actor_is_restarted_from_its_last_state_without_a_visible_change(world):
    world.send("alice", Connect("s1", None, world.now()))
    world.sockets.live["s1"] = "alice"
    old = world.directory["alice"].ref
    old.stop()
    emitted_before = list(world.sockets.emitted)
    world.supervisor.tell(Sweep(world.now()))
    world.settle()
    new = world.directory["alice"].ref
    assert new is not old and new.is_alive()
    assert world.state("alice").status == "online" and world.state("alice").sockets == {"s1"}
    status_events = [e for e in world.sockets.emitted[len(emitted_before):]
                     if e[0] == "client_status_changed"]
    assert status_events == []
    walk(world, 31)  # the restarted actor re-armed its deadline
    assert world.sockets.statuses("alice")[-1][:2] == ("offline", "heartbeat_timeout")


def test_idle_actors_are_retired_and_come_back_with_their_history(world):
    world.send("alice", Connect("s1", None, world.now()))
    world.send("alice", Disconnect("s1", world.now()))
    walk(world, 21)
    world.settle()
    assert "alice" not in world.directory
    assert world.supervisor.ask(Census())["actors"] == 0
    world.send("alice", Connect("s2", None, world.now()))
    assert world.state("alice").version == 4
    assert world.sockets.statuses("alice")[-1] == ("online", "connected", 4)


def test_sweep_checks_live_sockets_and_reconciles(world):
    world.send("alice", Connect("s1", None, world.now()))
    world.send("bob", Connect("s2", None, world.now()))
    world.sockets.live.pop("s2")  # bob's socket vanished without a disconnect event
    world.sockets.live["s3"] = "carol"  # a live socket no actor knows
    world.supervisor.tell(Sweep(world.now()))
    world.settle()
    assert sorted(world.sockets.checks) == [("s1", "alice"), ("s3", "carol")]
    assert world.state("bob").status == "reconnecting"
    assert world.state("carol").status == "online"


def test_sweep_spreads_many_checks_over_the_interval(world):
    for n in range(1000):
        world.sockets.live[f"s{n}"] = f"c{n}"
    world.supervisor.tell(Sweep(world.now()))
    world.settle()
    first = len(world.sockets.checks)
    assert 50 <= first < 1000, "the first slice goes at once, the rest later"
    world.sockets.live["s999"] = "someone-else"  # the sid now names another client
    gone = ["s999", *(f"s{n}" for n in range(500, 600))]
    for sid in gone[1:]:  # sockets that close before their slice are not checked
        world.sockets.live.pop(sid)
    walk(world, INTERVALS.connection_check * 0.8)
    checked = [sid for sid, _ in world.sockets.checks]
    assert len(checked) == len(set(checked)) == 1000 - len(gone)
    assert not set(gone) & set(checked[first:])
    assert len(set(world.sockets.check_times)) >= 5, "checks went out at many moments"


def test_offline_backstop_for_records_no_actor_holds(world):
    stale = ClientRecord(name="ghost", status="online", reason="connected", since=0.0,
                         last_seen=None, last_contact=world.now() - 500, ip=None, guest=False,
                         node="n1", connections=1, version=7)
    fresh = replace(stale, name="recent", last_contact=world.now() - 5)
    world.store.save(stale)
    world.store.save(fresh)
    world.supervisor.tell(Sweep(world.now()))
    world.settle()
    assert world.store.get("ghost").status == "offline"
    assert world.store.get("ghost").reason == "offline_timeout"
    assert world.store.get("ghost").version == 8
    assert world.store.get("recent").status == "online"


def test_recovery_restores_clients_and_purges_guests(world):
    base = ClientRecord(name="alice", status="online", reason="connected", since=0.0,
                        last_seen=None, last_contact=world.now() - 1, ip=None, guest=False,
                        node="n1", connections=1, version=3)
    world.store.save(base)
    world.store.save(replace(base, name="bob", status="reconnecting", reason="disconnect"))
    world.store.save(replace(base, name="carl", status="offline", reason="reconnect_timeout"))
    world.store.save(replace(base, name="guest-1", guest=True))
    result = world.supervisor.ask(Recover(world.now()))
    world.settle()
    assert result == {"restored": 2, "purged_guests": 1}
    assert world.store.get("guest-1") is None
    removed = world.sockets.events("client_removed")
    assert [(d["name"], d["reason"]) for d in removed] == [("guest-1", "startup_purge")]
    assert [c.name for c in world.store.changes_since(0, 10).changes][:1] == ["guest-1"]
    assert world.state("alice").status == "reconnecting"
    assert world.sockets.statuses("alice") == [("reconnecting", "server_restart", 4)]
    assert world.sockets.statuses("bob") == []  # already reconnecting: fresh grace, no event
    assert "carl" not in world.directory
    walk(world, 21)
    assert world.store.get("alice").reason == "reconnect_timeout"
    assert world.store.get("bob").reason == "reconnect_timeout"


def test_shutdown_stores_everyone_as_reconnecting(world):
    world.send("alice", Connect("s1", None, world.now()))
    world.send("bob", Connect("s2", None, world.now()))
    world.send("bob", Disconnect("s2", world.now()))
    world.supervisor.ask(ShutdownAll(world.now()))
    assert world.store.get("alice").status == "reconnecting"
    assert world.store.get("alice").reason == "server_restart"
    assert world.store.get("bob").status == "reconnecting"
    assert all(t.status != "offline" for name in ("alice", "bob")
               for t in world.store.transitions(name))


def test_kick_and_guest_deletion(world):
    world.send("alice", Connect("s1", None, world.now()))
    assert world.supervisor.ask(KickClient("alice", world.now())) is True
    world.settle()
    assert world.store.get("alice").reason == "kicked" and world.sockets.disconnected == ["s1"]
    assert world.supervisor.ask(KickClient("nobody", world.now())) is False
    world.send("guest-a", Connect("g1", None, world.now()), guest=True)
    world.send("guest-b", Connect("g2", None, world.now()), guest=True)
    assert world.supervisor.ask(DeleteGuests(world.now(), guest_id="guest-a")) == 1
    assert world.store.get("guest-a") is None and "g1" in world.sockets.disconnected
    assert world.supervisor.ask(DeleteGuests(world.now())) == 1
    assert world.store.get("alice") is not None


def test_guest_cleanup_deletes_offline_guests(world):
    world.send("guest-a", Connect("g1", None, world.now()), guest=True)
    world.send("guest-a", Disconnect("g1", world.now()), guest=True)
    walk(world, 16)
    assert world.store.get("guest-a").status == "offline"
    world.supervisor.tell(GuestCleanup(world.now()))
    world.supervisor.tell(LogStats(world.now()))
    world.settle()
    assert world.store.get("guest-a") is None


def test_a_storm_of_idle_actors_is_retired_in_one_batch_after_the_events(world):
    names = [f"storm-{i}" for i in range(20)]
    for i, name in enumerate(names):
        world.send(name, Connect(f"s{i}", None, world.now()))
        world.send(name, Disconnect(f"s{i}", world.now()))
    world.advance(TIMING.reconnection_grace_period)  # every grace ends now
    assert all(world.sockets.statuses(n)[-1][:2] == ("offline", "reconnect_timeout")
               for n in names)
    # the offline events went out; the retirements wait for the batch
    assert world.supervisor.ask(Census())["actors"] == len(names)
    world.advance(RETIRE_DELAY / 2)
    assert world.supervisor.ask(Census())["actors"] == len(names)
    world.send(names[0], Connect("back", None, world.now()))  # came back before the batch
    world.advance(RETIRE_DELAY / 2)
    assert set(world.directory) == {names[0]}
    assert world.state(names[0]).status == "online"


def test_a_large_batch_of_idle_actors_is_retired_in_slices(world):
    names = [f"slice-{i}" for i in range(RETIRE_SLICE * 2 + 10)]
    for i, name in enumerate(names):
        world.supervisor.tell(Route(name, Connect(f"s{i}", None, world.now())))
        world.supervisor.tell(Route(name, Disconnect(f"s{i}", world.now())))
    world.settle()
    world.advance(TIMING.reconnection_grace_period)
    assert world.supervisor.ask(Census())["actors"] == len(names)
    world.advance(RETIRE_DELAY)
    assert world.supervisor.ask(Census())["actors"] == len(names) - RETIRE_SLICE
    world.advance(RETIRE_SLICE_PERIOD)
    assert world.supervisor.ask(Census())["actors"] == 10
    world.advance(RETIRE_SLICE_PERIOD)
    assert world.supervisor.ask(Census())["actors"] == 0
    assert all(world.store.get(n).status == "offline" for n in names)


def test_after_its_shutdown_an_actor_ignores_heartbeats_still_in_flight(world):
    world.send("alice", Connect("s1", None, world.now()))
    ref = world.directory["alice"].ref
    ref.ask(Shutdown(world.now()), timeout=10)  # as ShutdownAll does, before it stops actors
    events_before = len(world.sockets.statuses("alice"))
    ref.tell(Heartbeat("s1", None, world.now()))
    ref.tell(CheckAnswered("s1", world.now()))
    walk(world, 200)  # no timer either: the restarted server owns the grace
    state = world.state("alice")
    assert (state.status, state.reason) == ("reconnecting", "server_restart")
    assert len(world.sockets.statuses("alice")) == events_before
    assert world.store.get("alice").reason == "server_restart"


def test_a_paused_process_reads_queued_heartbeats_before_deciding(world):
    """Bug 7: after a pause longer than the silence limit, the due Tick runs before the
    heartbeats that waited on the socket; it re-checks instead of marking the client offline."""
    world.send("alice", Connect("s1", None, world.now()))
    world.send("bob", Connect("s2", None, world.now()))
    world.clock.stall(40)  # silence limit 30 s: both deadlines pass while nothing runs
    world.advance(0)  # the overdue timers fire first, late
    world.send("alice", Heartbeat("s1", None, world.now()))  # then the queued heartbeat is read
    world.advance(5)
    assert world.sockets.statuses("alice") == [("online", "connected", 1)]
    assert world.sockets.disconnected == ["s2"]  # bob stayed silent: offline at the re-check
    assert world.sockets.statuses("bob")[-1] == ("offline", "heartbeat_timeout", 2)


def test_a_deadline_already_past_when_armed_is_no_stall(world):
    """A client actor started for a record whose grace ran out while nobody held it decides at
    once: its timer fires when armed, on time, so nothing is re-checked."""
    world.send("alice", Connect("s1", None, world.now()))
    world.send("alice", Disconnect("s1", world.now()))
    world.supervisor.ask(Census(), timeout=10)
    entry = world.directory["alice"]
    entry.ref.stop()  # the actor is gone (as after a crash) while the grace runs out
    world.clock.stall(60)
    world.send("alice", CheckAnswered("s1", world.now()))  # spawns an actor from the last state
    world.advance(0)
    assert world.sockets.statuses("alice")[-1] == ("offline", "reconnect_timeout", 3)
def test_kick_of_a_stored_record_no_actor_holds_goes_through_the_state_machine(world):
    stored = ClientRecord(name="dora", status="reconnecting", reason="server_restart",
                          since=world.now() - 3, last_seen=None, last_contact=world.now() - 3,
                          ip="10.1.1.1", guest=False, node="n1", connections=0, version=4)
    world.store.save(stored)
    assert world.supervisor.ask(KickClient("dora", world.now())) is True
    world.settle()
    record = world.store.get("dora")
    assert (record.status, record.reason, record.version) == ("offline", "kicked", 5)
    assert record.ip == "10.1.1.1" and record.grace_until is None
    assert world.sockets.statuses("dora") == [("offline", "kicked", 5)]
    assert "dora" not in world.directory  # no actor was started for it
    assert world.supervisor.ask(KickClient("dora", world.now())) is True  # already offline
    world.settle()
    assert world.sockets.statuses("dora") == [("offline", "kicked", 5)]


def test_the_backstop_tells_watchers_like_any_other_change(world):
    stale = ClientRecord(name="ghost", status="reconnecting", reason="disconnect", since=0.0,
                         last_seen=None, last_contact=world.now() - 500, ip=None, guest=False,
                         node="n1", connections=0, version=2)
    world.store.save(stale)
    world.supervisor.tell(Sweep(world.now()))
    world.settle()
    assert world.sockets.statuses("ghost") == [("offline", "offline_timeout", 3)]
    event = world.sockets.events("client_status_changed")[-1]
    assert event["previous"] == "reconnecting"
    assert [t.reason for t in world.store.transitions("ghost")] == ["offline_timeout"]


def test_a_status_read_waits_for_the_messages_sent_before_it(world):
    """Read your own writes (bug 6): through the supervisor when no actor runs yet, else
    through the actor's own mailbox, behind what was told before."""
    for n in range(30):
        name = f"fresh-{n}"
        world.supervisor.tell(Route(name, Connect(f"s{n}", None, world.now())))
        world.supervisor.tell(Route(name, Heartbeat(f"s{n}", None, world.now())))
        assert settled_status(world.directory, world.supervisor, world.store, name) == "online"
    ref = world.directory["fresh-0"].ref
    ref.tell(Disconnect("s0", world.now()))
    assert settled_status(world.directory, world.supervisor, world.store,
                          "fresh-0") == "reconnecting"
    assert settled_status(world.directory, world.supervisor, world.store, "nobody") is None


def test_a_status_read_of_a_retired_client_reads_the_store(world):
    world.send("alice", Connect("s1", None, world.now()))
    world.send("alice", Disconnect("s1", world.now()))
    walk(world, 21 + 1)
    assert "alice" not in world.directory
    assert settled_status(world.directory, world.supervisor, world.store, "alice") == "offline"


def removals(world):
    return [(e["name"], e["reason"]) for e in world.sockets.events("client_removed")]


def test_guest_cleanup_tells_watchers_and_logs_each_deletion(world, caplog):
    world.send("guest-a", Connect("g1", None, world.now()), guest=True)
    world.send("guest-a", Disconnect("g1", world.now()), guest=True)
    walk(world, 16)
    with caplog.at_level("INFO", logger="presence.status"):
        world.supervisor.tell(GuestCleanup(world.now()))
        world.settle()
    assert removals(world) == [("guest-a", "guest_cleanup")]
    event = world.sockets.events("client_removed")[0]
    assert event["guest"] is True and event["node"] == "n1" and event["status"] == "offline"
    assert [r.message for r in caplog.records if "[REMOVED]" in r.message] == [
        "[REMOVED] guest-a: was offline (reason: guest_cleanup)"]


def test_cleanup_before_a_date_keeps_connected_guests(world):
    world.send("guest-on", Connect("g1", None, world.now()), guest=True)
    world.send("guest-gone", Connect("g2", None, world.now()), guest=True)
    world.send("guest-gone", Disconnect("g2", world.now()), guest=True)
    world.advance(1)
    assert world.supervisor.ask(DeleteGuests(world.now(), before=world.now())) == 1
    world.settle()
    assert world.store.get("guest-on") is not None and world.store.get("guest-gone") is None
    assert world.sockets.disconnected == []
    assert removals(world) == [("guest-gone", "admin")]


def test_delete_one_client_closes_its_sockets_and_forgets_it(world):
    world.send("alice", Connect("s1", None, world.now()))
    world.send("alice", Connect("s2", None, world.now()))
    assert world.supervisor.ask(DeleteClient("alice", world.now())) is True
    world.settle()
    assert sorted(world.sockets.disconnected) == ["s1", "s2"]
    assert world.store.get("alice") is None and world.store.transitions("alice") == []
    assert "alice" not in world.directory
    assert removals(world) == [("alice", "admin")]
    world.send("alice", Disconnect("s1", world.now()))  # the sockets' disconnects arrive late
    world.send("alice", Disconnect("s2", world.now()))
    assert "alice" not in world.directory and world.store.get("alice") is None
    assert world.supervisor.ask(DeleteClient("alice", world.now())) is False


def test_delete_a_stored_client_no_actor_holds(world):
    world.store.save(ClientRecord(name="old", status="offline", reason="kicked", since=1.0,
                                  last_seen=None, last_contact=None, ip=None, guest=False,
                                  node="n1", connections=0, version=3))
    assert world.supervisor.ask(DeleteClient("old", world.now())) is True
    assert world.store.get("old") is None and removals(world) == [("old", "admin")]


def test_retention_deletes_clients_offline_for_too_long(tmp_path):
    world = World(tmp_path, intervals=replace(INTERVALS, offline_retention=50))
    try:
        world.send("alice", Connect("s1", None, world.now()))
        world.send("alice", Disconnect("s1", world.now()))
        world.send("bob", Connect("s2", None, world.now()))
        walk(world, 21)  # alice offline (reconnect_timeout); bob keeps its socket
        world.send("bob", Heartbeat("s2", None, world.now()))
        world.supervisor.tell(GuestCleanup(world.now()))
        world.settle()
        assert world.store.get("alice") is not None  # offline for 1 s only
        world.advance(50)
        world.send("bob", Heartbeat("s2", None, world.now()))
        world.supervisor.tell(GuestCleanup(world.now()))
        world.settle()
        assert world.store.get("alice") is None and world.store.get("bob") is not None
        assert removals(world) == [("alice", "retention")]
    finally:
        world.close()


def test_no_retention_by_default(world):
    world.send("alice", Connect("s1", None, world.now()))
    world.send("alice", Disconnect("s1", world.now()))
    walk(world, 21)
    world.advance(10**6)
    world.supervisor.tell(GuestCleanup(world.now()))
    world.settle()
    assert world.store.get("alice").status == "offline" and removals(world) == []


def test_one_client_reconnected_per_return_whatever_the_client_sends(world):
    world.send("alice", Connect("s1", None, world.now()))
    for round_number, sid in enumerate(("s2", "s3"), start=1):
        world.send("alice", Disconnect(f"s{round_number}", world.now()))
        world.advance(2)
        world.send("alice", Connect(sid, None, world.now()))
        world.send("alice", Heartbeat(sid, None, world.now()))
        for _ in range(2):
            world.send("alice", ReconnectionSuccess(sid, world.now()))
        assert len(world.sockets.events("client_reconnected")) == round_number
    assert [s for s, _, _ in world.sockets.statuses("alice")] == [
        "online", "reconnecting", "online", "reconnecting", "online"]
