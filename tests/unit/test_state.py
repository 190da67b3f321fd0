"""The pure status state machine, driven with fake time (CONTRACT §3)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from presence_server.actors import state as machine
from presence_server.actors.messages import (
    CheckAnswered,
    Connect,
    Disconnect,
    Heartbeat,
    Kick,
    NodeLost,
    OfflineTimeout,
    ReconnectionSuccess,
    Restore,
    Shutdown,
    Tick,
)
from presence_server.actors.state import (
    ClientState,
    CloseSockets,
    Contacted,
    Reconnected,
    StatusChanged,
    Timing,
    Touched,
    deadline,
    is_idle,
    step,
)

T0 = 1_000.0
TIMING = Timing(heartbeat_interval=30, max_missed_heartbeats=3, heartbeat_grace_period=60,
                reconnection_grace_period=120, guest_grace_period=180)


def new(name: str = "alice", guest: bool = False) -> ClientState:
    return ClientState(name=name, node="n1", guest=guest)


def run(state: ClientState, *messages, timing: Timing = TIMING):
    effects = []
    for message in messages:
        state, produced = step(state, message, timing)
        effects.extend(produced)
    return state, effects


def online(now: float = T0, sid: str = "s1", name: str = "alice", guest: bool = False):
    state, _ = run(new(name, guest), Connect(sid, "10.0.0.1", now))
    return state


def changes(effects) -> list[StatusChanged]:
    return [effect for effect in effects if isinstance(effect, StatusChanged)]


class TestConnect:
    def test_first_connect_is_online_connected(self):
        state, effects = run(new(), Connect("s1", "10.0.0.1", T0))
        assert (state.status, state.reason, state.since) == ("online", "connected", T0)
        assert state.sockets == {"s1"} and state.ip == "10.0.0.1" and state.version == 1
        assert effects == [StatusChanged(previous=None)]

    def test_second_socket_keeps_online_without_a_change(self):
        state, effects = run(online(), Connect("s2", None, T0 + 5))
        assert state.status == "online" and state.sockets == {"s1", "s2"}
        assert state.version == 1 and effects == [Touched()]
        assert state.ip == "10.0.0.1"  # no new address given: the old one stays

    def test_connect_while_reconnecting_is_reconnected(self):
        state, _ = run(online(), Disconnect("s1", T0 + 10))
        state, effects = run(state, Connect("s9", None, T0 + 20))
        assert (state.status, state.reason) == ("online", "reconnected")
        assert effects == [StatusChanged("reconnecting"), Reconnected()]
        assert deadline(state, TIMING) == T0 + 20 + 90

    def test_connect_after_offline_is_connected_again(self):
        state, _ = run(online(), Disconnect("s1", T0), Tick(T0 + 120))
        assert state.status == "offline"
        state, effects = run(state, Connect("s2", None, T0 + 500))
        assert (state.status, state.reason) == ("online", "connected")
        assert effects == [StatusChanged("offline")]


class TestHeartbeat:
    def test_heartbeat_from_a_new_client_is_online_heartbeat(self):
        state, effects = run(new(), Heartbeat("s1", "1.2.3.4", T0))
        assert (state.status, state.reason, state.last_seen) == ("online", "heartbeat", T0)
        assert changes(effects) == [StatusChanged(None)]

    def test_heartbeat_while_online_from_a_new_address_touches(self):
        state, effects = run(online(), Heartbeat("s1", "1.2.3.4", T0 + 30))
        assert state.version == 1 and effects == [Touched()]
        assert state.last_seen == T0 + 30 and state.ip == "1.2.3.4"

    def test_routine_heartbeat_only_moves_contact_times(self):
        state, effects = run(online(), Heartbeat("s1", None, T0 + 30))
        assert state.version == 1 and effects == [Contacted()]
        assert state.last_seen == state.last_contact == state.last_signal == T0 + 30
        assert state.ip == "10.0.0.1"

    def test_heartbeat_on_another_socket_touches(self):
        state, effects = run(online(), Heartbeat("s2", None, T0 + 30))
        assert effects == [Touched()] and state.sockets == {"s1", "s2"}

    def test_heartbeat_moves_the_silence_deadline(self):
        state = online()
        assert deadline(state, TIMING) == T0 + 90
        state, _ = run(state, Heartbeat("s1", None, T0 + 50))
        assert deadline(state, TIMING) == T0 + 50 + 90

    def test_heartbeat_while_reconnecting_is_reconnected(self):
        state, _ = run(online(), Disconnect("s1", T0 + 1))
        state, effects = run(state, Heartbeat("s2", None, T0 + 2))
        assert (state.status, state.reason) == ("online", "reconnected")
        assert Reconnected() in effects

    def test_heartbeat_after_offline_is_online_heartbeat(self):
        state, _ = run(online(), Tick(T0 + 90))
        state, _ = run(state, Heartbeat("s5", None, T0 + 100))
        assert (state.status, state.reason) == ("online", "heartbeat")


class TestMissedHeartbeats:
    def test_silent_client_is_offline_after_max_missed_periods(self):
        state = online()
        state, effects = run(state, Tick(T0 + 89.999))
        assert state.status == "online" and effects == []
        state, effects = run(state, Tick(T0 + 90))
        assert (state.status, state.reason) == ("offline", "heartbeat_timeout")
        assert CloseSockets(frozenset({"s1"})) in effects and state.sockets == frozenset()

    def test_each_heartbeat_resets_the_count(self):
        state = online()
        for beat in range(1, 10):
            state, _ = run(state, Heartbeat("s1", None, T0 + beat * 80), Tick(T0 + beat * 80))
        assert state.status == "online"
        state, _ = run(state, Tick(T0 + 9 * 80 + 90))
        assert state.reason == "heartbeat_timeout"

    def test_heartbeat_grace_longer_than_missed_periods_postpones(self):
        timing = Timing(heartbeat_interval=10, max_missed_heartbeats=2, heartbeat_grace_period=60,
                        reconnection_grace_period=5, guest_grace_period=5)
        state = online()
        state, _ = run(state, Tick(T0 + 20), Tick(T0 + 59), timing=timing)
        assert state.status == "online"
        state, _ = run(state, Tick(T0 + 60), timing=timing)
        assert state.reason == "heartbeat_timeout"

    def test_answering_a_connection_check_is_contact_but_not_a_heartbeat(self):
        state, effects = run(online(), CheckAnswered("s1", T0 + 80))
        assert effects == [Contacted()] and state.last_seen is None
        assert state.last_contact == T0 + 80
        assert deadline(state, TIMING) == T0 + 90
        state, effects = run(state, Tick(T0 + 90))
        assert (state.status, state.reason) == ("offline", "heartbeat_timeout")
        assert CloseSockets(frozenset({"s1"})) in effects


class TestReconnectGrace:
    def test_drop_is_reconnecting_then_offline_after_grace(self):
        state, effects = run(online(), Disconnect("s1", T0 + 10))
        assert (state.status, state.reason) == ("reconnecting", "disconnect")
        assert effects == [StatusChanged("online")]
        assert deadline(state, TIMING) == T0 + 10 + 120
        state, effects = run(state, Tick(T0 + 129))
        assert state.status == "reconnecting" and effects == []
        state, effects = run(state, Tick(T0 + 130))
        assert (state.status, state.reason) == ("offline", "reconnect_timeout")
        assert effects == [StatusChanged("reconnecting", due=T0 + 130)]  # the grace end

    def test_recent_heartbeat_postpones_the_offline_decision(self):
        timing = Timing(heartbeat_interval=30, max_missed_heartbeats=3, heartbeat_grace_period=60,
                        reconnection_grace_period=20, guest_grace_period=20)
        state, _ = run(online(), Heartbeat("s1", None, T0 + 100), Disconnect("s1", T0 + 101),
                       timing=timing)
        assert deadline(state, timing) == T0 + 160  # last heartbeat + heartbeat grace
        state, _ = run(state, Tick(T0 + 121), timing=timing)
        assert state.status == "reconnecting"
        state, _ = run(state, Tick(T0 + 160), timing=timing)
        assert state.reason == "reconnect_timeout"

    def test_guests_get_their_own_grace(self):
        state, _ = run(online(guest=True), Disconnect("s1", T0))
        assert deadline(state, TIMING) == T0 + 180

    def test_only_the_last_socket_closing_starts_the_grace(self):
        state, _ = run(online(), Connect("s2", None, T0 + 1))
        state, effects = run(state, Disconnect("s1", T0 + 2))
        assert state.status == "online" and state.sockets == {"s2"} and effects == [Touched()]
        state, effects = run(state, Disconnect("s2", T0 + 3))
        assert state.status == "reconnecting" and state.grace_started == T0 + 3

    def test_disconnect_of_an_unknown_socket_changes_nothing(self):
        before = online()
        after, effects = run(before, Disconnect("nope", T0 + 1))
        assert after == before and effects == []

    def test_return_within_grace_never_shows_offline(self):
        state, effects = run(online(), Disconnect("s1", T0 + 5), Tick(T0 + 60),
                             Connect("s2", None, T0 + 100), Tick(T0 + 125))
        statuses = [s.previous for s in changes(effects)]
        assert "offline" not in statuses and state.status == "online"


class TestStaleTimers:
    @pytest.mark.parametrize("at", [T0 - 100, T0, T0 + 45, T0 + 89])
    def test_an_early_tick_changes_nothing(self, at):
        before = online()
        after, effects = run(before, Tick(at))
        assert after == before and effects == []

    def test_ticks_for_offline_or_new_clients_change_nothing(self):
        for state in (new(), run(online(), Tick(T0 + 90))[0]):
            assert run(state, Tick(T0 + 10_000)) == (state, [])


class TestShutdownAndRestart:
    def test_shutdown_stores_online_clients_as_reconnecting(self):
        state, effects = run(online(), Shutdown(T0 + 7))
        assert (state.status, state.reason) == ("reconnecting", "server_restart")
        assert state.sockets == frozenset() and state.grace_started == T0 + 7
        assert effects == [StatusChanged("online")]

    def test_shutdown_never_makes_anyone_offline(self):
        for state in (online(), run(online(), Disconnect("s1", T0))[0]):
            after, effects = run(state, Shutdown(T0 + 1))
            assert after.status == "reconnecting"

    def test_restore_gives_a_fresh_grace(self):
        reconnecting, _ = run(online(), Disconnect("s1", T0))
        record = reconnecting.to_record(TIMING)
        restored = ClientState.from_record(record, "n1")
        state, effects = run(restored, Restore(T0 + 1000))
        assert state.status == "reconnecting" and effects == [Touched()]
        assert deadline(state, TIMING) == T0 + 1000 + 120

    def test_restore_of_a_stored_online_client(self):
        record = online().to_record(TIMING)
        state, effects = run(ClientState.from_record(record, "n1"), Restore(T0 + 50))
        assert (state.status, state.reason, state.version) == ("reconnecting",
                                                                "server_restart", 2)
        assert effects == [StatusChanged("online")]

    def test_back_after_restart_is_reconnected(self):
        stored, effects = run(online(), Shutdown(T0 + 1))
        restarted = ClientState.from_record(stored.to_record(TIMING), "n1")  # the new process
        state, more = run(restarted, Restore(T0 + 5), Connect("s2", None, T0 + 8))
        assert (state.status, state.reason) == ("online", "reconnected")
        assert all(change.previous != "offline" for change in changes([*effects, *more]))

    def test_node_lost(self):
        state, _ = run(online(), NodeLost(T0 + 3))
        assert (state.status, state.reason) == ("reconnecting", "node_lost")

    def test_restore_of_an_offline_client_changes_nothing(self):
        offline, _ = run(online(), Tick(T0 + 90))
        state, effects = run(offline, Restore(T0 + 100))
        assert state.status == "offline" and effects == []


class TestKickAndReports:
    def test_kick_closes_sockets_and_marks_offline(self):
        state, effects = run(online(), Connect("s2", None, T0), Kick(T0 + 1))
        assert (state.status, state.reason) == ("offline", "kicked")
        assert CloseSockets(frozenset({"s1", "s2"})) in effects

    def test_kick_of_an_offline_client_changes_nothing(self):
        offline, _ = run(online(), Tick(T0 + 90))
        assert run(offline, Kick(T0 + 100)) == (offline, [])

    def test_a_return_the_server_did_not_see_is_announced_on_the_clients_report(self):
        # the old socket was not noticed gone: the new one joins an online client
        state, effects = run(online(), Connect("s2", None, T0 + 1),
                             ReconnectionSuccess("s2", T0 + 1))
        assert effects == [Touched(), Reconnected()]
        assert state.status == "online" and state.version == 1 and state.announced == "s2"

    def test_kick_of_a_stored_record_with_no_socket(self):
        record = online().to_record(TIMING)  # stored online, no actor holds it
        state, effects = run(ClientState.from_record(record), Kick(T0 + 5))
        assert (state.status, state.reason, state.version) == ("offline", "kicked", 2)
        assert effects == [StatusChanged("online")]  # no socket to close
        assert state.to_record(TIMING).connections == 0
        assert state.to_record(TIMING).grace_until is None

    def test_kick_of_an_unknown_client_changes_nothing(self):
        assert run(new(), Kick(T0)) == (new(), [])


class TestReconnectedOncePerReturn:
    """Bug 5: `client_reconnected` exactly once per return, whatever the client sends."""

    def back(self, *after):
        dropped, _ = run(online(), Disconnect("s1", T0 + 1))
        return run(dropped, Connect("s2", None, T0 + 5), *after)

    def test_the_return_is_announced_once_when_the_client_also_reports_it(self):
        state, effects = self.back(ReconnectionSuccess("s2", T0 + 5))
        assert effects.count(Reconnected()) == 1
        assert (state.status, state.reason, state.announced) == ("online", "reconnected", "s2")

    def test_heartbeat_return_then_report_is_announced_once(self):
        dropped, _ = run(online(), Disconnect("s1", T0 + 1))
        state, effects = run(dropped, Heartbeat("s2", None, T0 + 5),
                             ReconnectionSuccess("s2", T0 + 5), Heartbeat("s2", None, T0 + 35))
        assert effects.count(Reconnected()) == 1

    def test_repeated_reports_are_announced_once(self):
        _, effects = self.back(*[ReconnectionSuccess("s2", T0 + 6)] * 3)
        assert effects.count(Reconnected()) == 1

    def test_each_return_is_announced(self):
        state, effects = self.back(ReconnectionSuccess("s2", T0 + 6), Disconnect("s2", T0 + 7),
                                   Connect("s3", None, T0 + 8),
                                   ReconnectionSuccess("s3", T0 + 8))
        assert effects.count(Reconnected()) == 2

    def test_reports_from_a_socket_the_client_does_not_hold_announce_nothing(self):
        dropped, _ = run(online(), Disconnect("s1", T0 + 1))
        for state in (dropped, online()):
            after, effects = run(state, ReconnectionSuccess("elsewhere", T0 + 2))
            assert effects == [] and after == state


class TestOfflineBackstop:
    """Stored online/reconnecting records no actor holds (`monitoring.offline_timeout`)."""

    def stored(self, *messages) -> ClientState:
        state, _ = run(online(), *messages)
        return ClientState.from_record(state.to_record(TIMING))

    def test_a_silent_stored_record_goes_offline(self):
        state = self.stored(Heartbeat("s1", None, T0 + 10))
        state, effects = run(state, OfflineTimeout(T0 + 10 + 299.9))
        assert state.status == "online" and effects == []
        state, effects = run(state, OfflineTimeout(T0 + 10 + 300))
        assert (state.status, state.reason, state.since) == ("offline", "offline_timeout",
                                                              T0 + 310)
        assert state.version == 2 and effects == [StatusChanged("online", due=T0 + 310)]
        assert state.to_record(TIMING).grace_until is None

    def test_a_stored_reconnecting_record_goes_offline_too(self):
        state = self.stored(Disconnect("s1", T0 + 1))
        state, effects = run(state, OfflineTimeout(T0 + 1000))
        assert (state.reason, effects) == ("offline_timeout",
                                           [StatusChanged("reconnecting", due=T0 + 300)])

    def test_contact_counts_not_only_heartbeats(self):
        state = self.stored(CheckAnswered("s1", T0 + 200))
        assert run(state, OfflineTimeout(T0 + 300))[0].status == "online"

    def test_offline_records_and_live_clients_are_left_alone(self):
        offline = self.stored(Tick(T0 + 90))
        assert run(offline, OfflineTimeout(T0 + 10_000)) == (offline, [])
        live = online()  # an actor's state, with a socket: its own timer decides
        assert run(live, OfflineTimeout(T0 + 10_000)) == (live, [])

    def test_the_node_is_the_records_own_unless_given(self):
        record = replace(online().to_record(TIMING), node="other")
        assert ClientState.from_record(record).node == "other"
        assert ClientState.from_record(record, "n1").node == "n1"


class TestHandOff:
    """After `Shutdown` the client is stored for the restart: what is in flight changes nothing."""

    @pytest.mark.parametrize("late", [
        Heartbeat("s1", None, T0 + 2), Connect("s9", None, T0 + 2), CheckAnswered("s1", T0 + 2),
        Disconnect("s1", T0 + 2), Tick(T0 + 10_000), Kick(T0 + 2), NodeLost(T0 + 2),
        ReconnectionSuccess("s1", T0 + 2), Restore(T0 + 2), Shutdown(T0 + 2),
        OfflineTimeout(T0 + 10_000),
    ])
    def test_every_message_after_the_hand_off_is_ignored(self, late):
        stored, _ = run(online(), Shutdown(T0 + 1))
        assert stored.handed_off and (stored.status, stored.reason) == (
            "reconnecting", "server_restart")
        assert run(stored, late) == (stored, [])

    def test_a_handed_off_client_needs_no_timer(self):
        for before in (online(), run(online(), Disconnect("s1", T0))[0]):
            stored, _ = run(before, Shutdown(T0 + 1))
            assert deadline(stored, TIMING) is None

    def test_the_record_stored_for_the_restart_has_its_grace(self):
        stored, _ = run(online(), Shutdown(T0 + 1))
        record = stored.to_record(TIMING)
        assert (record.status, record.reason) == ("reconnecting", "server_restart")
        assert not ClientState.from_record(record).handed_off


class TestDeletionRules:
    def record(self, **changes):
        offline, _ = run(online(), Tick(T0 + 90))
        return replace(offline.to_record(TIMING), **changes)

    def test_only_offline_guests_expire(self):
        assert machine.guest_expired(self.record(guest=True))
        assert not machine.guest_expired(self.record(guest=False))
        assert not machine.guest_expired(self.record(guest=True, status="reconnecting"))

    def test_only_present_clients_are_restored_at_start_up(self):
        assert machine.restorable(online().to_record(TIMING))
        assert machine.restorable(run(online(), Disconnect("s1", T0))[0].to_record(TIMING))
        assert not machine.restorable(self.record())

    def test_retention_deletes_old_offline_registered_clients_only(self):
        record = self.record()  # offline since T0 + 90
        assert not machine.retention_expired(record, T0 + 10_000, None)  # off
        assert not machine.retention_expired(record, T0 + 90 + 999, 1000)
        assert machine.retention_expired(record, T0 + 90 + 1000, 1000)
        assert not machine.retention_expired(self.record(guest=True), T0 + 10**6, 1000)
        assert not machine.retention_expired(self.record(status="online"), T0 + 10**6, 1000)


def test_versions_increase_by_one_on_every_status_change():
    state, effects = run(online(), Disconnect("s1", T0 + 1), Connect("s2", None, T0 + 2),
                         Tick(T0 + 200), Heartbeat("s3", None, T0 + 300), Kick(T0 + 301))
    assert state.version == 1 + len(changes(effects))


def test_idle_means_offline_without_sockets():
    assert is_idle(new())
    assert not is_idle(online())
    assert is_idle(run(online(), Tick(T0 + 90))[0])


def test_unknown_messages_are_refused():
    with pytest.raises(TypeError):
        step(online(), object(), TIMING)


def test_record_round_trip_keeps_the_status_and_version():
    state, _ = run(online(), Heartbeat("s1", "9.9.9.9", T0 + 3), Disconnect("s1", T0 + 4))
    record = state.to_record(TIMING)
    assert record.grace_until == deadline(state, TIMING)
    again = ClientState.from_record(record, "n1")
    assert (again.status, again.version, again.last_seen, again.ip) == (
        "reconnecting", 2, T0 + 3, "9.9.9.9")


MESSAGES = [
    Connect("a", None, T0), Connect("b", None, T0), Heartbeat("a", None, T0),
    Disconnect("a", T0), Disconnect("b", T0), Tick(T0), CheckAnswered("a", T0), Kick(T0),
    Shutdown(T0), Restore(T0), ReconnectionSuccess("a", T0), ReconnectionSuccess("b", T0),
    OfflineTimeout(T0), NodeLost(T0),
]


@pytest.mark.parametrize("sequence", list(itertools.product(MESSAGES, repeat=3)))
def test_invariants_hold_for_every_sequence(sequence):
    """Any three messages, a second apart: the state stays consistent."""
    state = new()
    for offset, message in enumerate(sequence):
        message = replace(message, now=T0 + offset * 61)
        before = state
        state, effects = step(state, message, TIMING)
        changed = [e for e in effects if isinstance(e, StatusChanged)]
        assert len(changed) <= 1
        if changed:
            assert state.version == before.version + 1 and changed[0].previous == before.status
            assert state.status != before.status or state.reason != before.reason
        else:
            assert state.version == before.version and state.status == before.status
        if Contacted() in effects:
            assert effects == (Contacted(),)
            assert replace(state, last_seen=before.last_seen, last_contact=before.last_contact,
                           last_signal=before.last_signal) == before
        assert not (state.status == "offline" and state.sockets)
        if state.status == "reconnecting":
            assert not state.sockets
        if state.status == "online":
            assert deadline(state, TIMING) is not None
        # offline is only ever reached through the rules, never from reconnecting by a
        # shutdown or a restore
        if isinstance(message, (Shutdown, Restore)):
            assert state.status != "offline" or before.status in (None, "offline")
        # one `client_reconnected` per return: each names a socket not announced before
        if Reconnected() in effects:
            assert effects.count(Reconnected()) == 1 and state.announced != before.announced
        if before.handed_off:
            assert (state, effects) == (before, ())


def test_module_has_a_handler_for_every_client_message():
    assert set(machine.HANDLERS) == {Connect, Heartbeat, Disconnect, Tick, CheckAnswered,
                                     ReconnectionSuccess, Kick, Shutdown, Restore, NodeLost,
                                     OfflineTimeout}


class TestStall:
    """A Tick that fires long after it was due (a paused process) re-checks before deciding:
    the heartbeats sent during the pause are still unread on the sockets (bug 7)."""

    SILENT_AT = T0 + 90  # online() at T0: the silence deadline

    def test_a_tick_on_time_or_a_little_late_decides_at_once(self):
        for late in (0.0, machine.STALL_TOLERANCE):
            state, effects = run(online(), Tick(self.SILENT_AT + late, self.SILENT_AT))
            assert (state.status, state.reason) == ("offline", "heartbeat_timeout")
            assert CloseSockets(frozenset({"s1"})) in effects

    def test_a_tick_with_no_due_time_decides_at_once(self):
        state, _ = run(online(), Tick(self.SILENT_AT + 500))
        assert state.status == "offline"

    def test_a_stalled_tick_puts_the_decision_off_by_a_recheck(self):
        before = online()
        now = self.SILENT_AT + 5
        state, effects = run(before, Tick(now, self.SILENT_AT))
        assert state == before
        assert effects == [machine.Recheck(now + machine.STALL_RECHECK, 1)]

    def test_a_heartbeat_read_after_the_pause_keeps_the_client_online(self):
        now = self.SILENT_AT + 5
        state, effects = run(online(), Tick(now, self.SILENT_AT),
                             Heartbeat("s1", None, now + 0.01),
                             Tick(now + machine.STALL_RECHECK, now + machine.STALL_RECHECK, 1))
        assert (state.status, state.reason, state.sockets) == ("online", "connected", {"s1"})
        assert changes(effects) == [] and not any(isinstance(e, CloseSockets) for e in effects)

    def test_a_client_that_stayed_silent_is_offline_at_the_recheck(self):
        now = self.SILENT_AT + 5
        recheck = now + machine.STALL_RECHECK
        state, effects = run(online(), Tick(now, self.SILENT_AT), Tick(recheck, recheck, 1))
        assert (state.status, state.reason, state.since) == ("offline", "heartbeat_timeout",
                                                             recheck)

    def test_a_process_that_stays_late_still_decides(self):
        state, due = online(), self.SILENT_AT
        for rechecks in range(machine.STALL_RECHECKS):
            state, effects = run(state, Tick(due + 5, due, rechecks))
            assert state.status == "online" and effects == [
                machine.Recheck(due + 5 + machine.STALL_RECHECK, rechecks + 1)]
            due = due + 5 + machine.STALL_RECHECK
        state, _ = run(state, Tick(due + 5, due, machine.STALL_RECHECKS))
        assert (state.status, state.reason) == ("offline", "heartbeat_timeout")

    def test_a_return_read_after_the_pause_is_not_a_reconnect_timeout(self):
        gone, _ = run(online(), Disconnect("s1", T0 + 1))
        grace_end = deadline(gone, TIMING)
        now = grace_end + 10
        state, effects = run(gone, Tick(now, grace_end), Connect("s2", None, now + 0.01),
                             Tick(now + 1, now + 1, 1))
        assert (state.status, state.reason) == ("online", "reconnected")
        assert [c.previous for c in changes(effects)] == ["reconnecting"]


class TestOfflineDeadline:
    """An offline that a deadline decided carries that deadline (`presence_offline_lateness`)."""

    def test_heartbeat_timeout_carries_the_silence_deadline(self):
        state, effects = run(online(), Heartbeat("s1", None, T0 + 5), Tick(T0 + 95.25))
        assert state.reason == "heartbeat_timeout"
        assert changes(effects) == [StatusChanged("online", due=T0 + 5 + 90)]

    def test_reconnect_timeout_carries_the_grace_end_of_the_state_before(self):
        gone, _ = run(online(guest=True), Disconnect("s1", T0 + 1))
        state, effects = run(gone, Tick(T0 + 1 + 180 + 0.5))
        assert state.reason == "reconnect_timeout"
        assert changes(effects) == [StatusChanged("reconnecting", due=deadline(gone, TIMING))]
        assert deadline(gone, TIMING) == T0 + 181

    def test_a_decision_delayed_by_stall_rechecks_keeps_the_first_deadline(self):
        state, due = online(), T0 + 90
        fired = due
        for rechecks in range(machine.STALL_RECHECKS):
            state, _ = run(state, Tick(fired + 5, fired, rechecks))
            fired += 5 + machine.STALL_RECHECK
        state, effects = run(state, Tick(fired + 5, fired, machine.STALL_RECHECKS))
        assert changes(effects) == [StatusChanged("online", due=due)]

    def test_changes_no_deadline_decided_carry_none(self):
        _, effects = run(new(), Connect("s1", None, T0), Disconnect("s1", T0 + 1),
                         Connect("s2", None, T0 + 2), Kick(T0 + 3))
        assert [change.due for change in changes(effects)] == [None, None, None, None]
