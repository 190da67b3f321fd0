"""The on-demand Pykka runtime: Pykka's semantics, without a parked worker per idle actor."""

from __future__ import annotations

import threading
import time

import pykka
import pytest
from presence_server.actors.ondemand import OnDemandActor
from pykka._envelope import Envelope


class Recorder(OnDemandActor):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[object] = []
        self.events: list[str] = []
        self.failed = threading.Event()

    def on_start(self) -> None:
        self.events.append("start")

    def on_stop(self) -> None:
        self.events.append("stop")

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        self.events.append(f"failure:{exception_value}")
        self.failed.set()

    def on_receive(self, message):
        if message == "boom":
            raise ValueError("boom")
        if message == "slow":
            time.sleep(0.05)
        if message == "seen":
            return list(self.seen)
        self.seen.append(message)
        return message


def workers() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "actor-worker")


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def start() -> tuple[Recorder, pykka.ActorRef]:
    recorder = Recorder()
    recorder._start_actor_loop()
    return recorder, recorder.actor_ref


@pytest.fixture
def started():
    recorder, ref = start()
    yield recorder, ref
    if ref.is_alive():
        ref.stop()


@pytest.fixture
def actor(started):
    return started[1]


def test_on_start_runs_once_before_the_first_message(started):
    recorder, actor = started
    assert actor.ask("a") == "a"
    assert actor.ask("b") == "b"
    assert recorder.events == ["start"]


def test_messages_from_many_senders_are_each_handled_once_in_sender_order(actor):
    def send(sender: int) -> None:
        for i in range(300):
            actor.tell((sender, i))
            if i % 50 == 0:
                time.sleep(0.001)  # let the actor go idle and be woken again

    senders = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()

    seen = actor.ask("seen")
    assert len(seen) == 4 * 300
    for sender in range(4):
        assert [i for s, i in seen if s == sender] == list(range(300))


def test_an_idle_actor_holds_no_worker():
    before = workers()
    refs = [start()[1] for _ in range(50)]
    for ref in refs:
        ref.tell("x")
    assert all(ref.ask("seen") == ["x"] for ref in refs)
    wait_until(lambda: workers() <= before)
    assert all(ref.ask("y") == "y" for ref in refs)  # and wakes again
    for ref in refs:
        ref.stop()


def test_stop_runs_on_stop_and_refuses_later_mail(started):
    recorder, actor = started
    actor.stop()
    assert recorder.events == ["start", "stop"]
    assert not actor.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        actor.tell("late")


def test_mail_queued_behind_a_stop_is_refused():
    recorder, ref = start()
    ref.tell("slow")
    stopping = ref.stop(block=False)
    future = recorder._create_future()  # a message that slipped in after the stop
    recorder.actor_inbox.put(Envelope("after", reply_to=future))
    stopping.get(timeout=5)
    with pytest.raises(pykka.ActorDeadError):
        future.get(timeout=5)


def test_ask_that_fails_returns_the_error_and_keeps_the_actor(actor):
    with pytest.raises(ValueError, match="boom"):
        actor.ask("boom")
    assert actor.is_alive() and actor.ask("fine") == "fine"


def test_tell_that_fails_calls_on_failure_and_stops_the_actor(started):
    recorder, actor = started
    actor.tell("boom")
    assert recorder.failed.wait(5)
    assert recorder.events == ["start", "failure:boom"]
    wait_until(lambda: not actor.is_alive())
