"""What the actors report for the metrics (actors/instruments.py): how late each offline a
deadline decided came, and how long each sweep took."""

from __future__ import annotations

from dataclasses import replace

from presence_server.actors.messages import Connect, Disconnect, GuestCleanup, Kick, Sweep
from presence_server.store.records import ClientRecord

from .conftest import TIMING
from .test_actors import walk


def test_a_heartbeat_timeout_reports_its_lateness_once(world):
    world.send("alice", Connect("s1", None, world.now()))
    walk(world, TIMING.silence_limit + 2)
    assert world.sockets.statuses("alice")[-1][:2] == ("offline", "heartbeat_timeout")
    # a manual clock fires each timer exactly at its deadline
    assert world.instruments.late == [("heartbeat_timeout", 0.0)]


def test_a_reconnect_timeout_reports_its_lateness(world):
    world.send("alice", Connect("s1", None, world.now()))
    world.send("alice", Disconnect("s1", world.now()))
    walk(world, TIMING.reconnection_grace_period + 2)
    assert world.instruments.late == [("reconnect_timeout", 0.0)]


def test_the_backstop_reports_how_long_past_offline_timeout_it_came(world):
    silent_for = TIMING.offline_timeout + 400
    stale = ClientRecord(name="ghost", status="online", reason="connected", since=0.0,
                         last_seen=None, last_contact=world.now() - silent_for, ip=None,
                         guest=False, node="n1", connections=1, version=7)
    world.store.save(stale)
    world.store.save(replace(stale, name="recent", last_contact=world.now() - 5))
    world.supervisor.tell(Sweep(world.now()))
    world.settle()
    assert world.instruments.late == [("offline_timeout", 400.0)]


def test_changes_no_deadline_decided_report_nothing(world):
    world.send("alice", Connect("s1", None, world.now()))
    world.send("alice", Kick(world.now()))
    world.send("bob", Connect("s2", None, world.now()))
    world.send("bob", Disconnect("s2", world.now()))
    world.send("bob", Connect("s3", None, world.now()))
    assert world.instruments.late == []


def test_each_sweep_reports_its_duration(world):
    world.send("alice", Connect("s1", None, world.now()))
    world.supervisor.tell(Sweep(world.now()))
    world.supervisor.tell(GuestCleanup(world.now()))
    world.settle()
    names = [name for name, _ in world.instruments.sweeps]
    assert names == ["connection_check", "guest_cleanup"]
    assert all(0 <= seconds < 5 for _, seconds in world.instruments.sweeps)
