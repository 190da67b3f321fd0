"""Pykka's own runtime tests, run against `OnDemandActor` where they apply.

Attribution: the cases below follow Pykka's test suite (https://github.com/jodal/pykka,
Apache License 2.0, by Stein Magnus Jodal and contributors): `tests/test_actor.py`
(lifecycle hooks, failures, BaseException, mail left behind a stop), `tests/test_ref.py`
(tell/ask/stop/is_alive through an `ActorRef`) and `tests/proxy/` (proxy calls and attribute
access). They were rewritten for this runtime: one runtime (threads outside gevent) instead of
Pykka's parametrised ones, `threading.Event`s with bounded waits. Not applicable: the
`_become` behaviour stack (not in Pykka 4.5), the gevent/eventlet/asyncio runtimes, futures.
Each test names the Pykka test it follows.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import pykka
import pytest
from presence_server.actors.ondemand import OnDemandActor
from pykka import ActorDeadError, ActorRegistry, Timeout

WAIT = 5.0


class Interrupt(BaseException):
    """A BaseException that is not KeyboardInterrupt (pytest would take that one itself)."""


@dataclass
class Events:
    on_start: threading.Event = field(default_factory=threading.Event)
    on_stop: threading.Event = field(default_factory=threading.Event)
    on_failure: threading.Event = field(default_factory=threading.Event)
    greetings: threading.Event = field(default_factory=threading.Event)
    registered_before_on_start: threading.Event = field(default_factory=threading.Event)


class Subject(OnDemandActor):
    """Does what each message's `command` says, like Pykka's `ActorA`."""

    answer = 42

    def __init__(self, events: Events, received: list[Any] | None = None) -> None:
        super().__init__()
        self.events = events
        self.received = received if received is not None else []

    def on_start(self) -> None:
        self.events.on_start.set()
        if ActorRegistry.get_by_urn(self.actor_urn) is not None:
            self.events.registered_before_on_start.set()

    def on_stop(self) -> None:
        self.events.on_stop.set()

    def on_failure(self, *args: Any) -> None:
        self.events.on_failure.set()

    def on_receive(self, message: Any) -> Any:
        command = message.get("command") if isinstance(message, dict) else None
        if command == "raise exception":
            raise Exception("foo")
        if command == "raise base exception":
            raise Interrupt()
        if command == "stop twice":
            self.stop()
            self.stop()
        elif command == "message self then stop":
            self.actor_ref.tell({"command": "greetings"})
            self.stop()
        elif command == "greetings":
            self.events.greetings.set()
        elif command == "callback":
            message["callback"]()
        elif command == "ping":
            return "pong"
        else:
            self.received.append(message)
        return None

    def add(self, a: int, b: int) -> int:
        return a + b


class EarlyStopping(Subject):
    def on_start(self) -> None:
        self.stop()


class EarlyFailing(Subject):
    def on_start(self) -> None:
        try:
            raise RuntimeError("on_start failure")
        finally:
            self.events.on_start.set()


class BaseExceptionOnStart(Subject):
    def on_start(self) -> None:
        self.events.on_start.set()
        raise Interrupt()


class LateFailing(Subject):
    def on_start(self) -> None:
        self.stop()

    def on_stop(self) -> None:
        try:
            raise RuntimeError("on_stop failure")
        finally:
            self.events.on_stop.set()


class FailingOnFailure(Subject):
    def on_failure(self, *args: Any) -> None:
        try:
            raise RuntimeError("on_failure failure")
        finally:
            self.events.on_failure.set()


@pytest.fixture(autouse=True)
def stop_all():
    yield
    ActorRegistry.stop_all()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def actor_ref(events):
    ref = Subject.start(events)
    yield ref
    ref.stop()


# --- tests/test_actor.py ------------------------------------------------------------------------

def test_messages_left_in_queue_after_actor_stops_receive_an_error(actor_ref):
    release = threading.Event()
    actor_ref.tell({"command": "callback", "callback": lambda: release.wait(WAIT)})
    actor_ref.stop(block=False)
    response = actor_ref.ask({"command": "irrelevant"}, block=False)
    release.set()
    with pytest.raises(ActorDeadError):
        response.get(timeout=WAIT)


def test_stop_requests_left_in_queue_after_actor_stops_are_handled(actor_ref):
    release = threading.Event()
    actor_ref.tell({"command": "callback", "callback": lambda: release.wait(WAIT)})
    actor_ref.stop(block=False)
    response = actor_ref.stop(block=False)
    release.set()
    response.get(timeout=WAIT)


def test_actor_has_an_uuid4_based_urn(actor_ref):
    assert uuid.UUID(actor_ref.actor_urn).version == 4


def test_actor_has_unique_uuid(events):
    refs = [Subject.start(events) for _ in range(3)]
    assert len({ref.actor_urn for ref in refs}) == 3


def test_str_on_raw_actor_contains_actor_class_name_and_urn(events):
    unstarted = Subject(events)
    assert "Subject" in str(unstarted) and unstarted.actor_urn in str(unstarted)


def test_on_start_is_called_before_first_message_is_processed(actor_ref, events):
    assert events.on_start.wait(WAIT)


def test_on_start_is_called_after_the_actor_is_registered(actor_ref, events):
    assert events.on_start.wait(WAIT)
    assert events.registered_before_on_start.is_set()


def test_on_start_can_stop_actor_before_receive_loop_is_started(events):
    ref = EarlyStopping.start(events)
    assert events.on_stop.wait(WAIT)
    assert not ref.is_alive()


def test_on_start_failure_causes_actor_to_stop(events):
    ref = EarlyFailing.start(events)
    assert events.on_start.wait(WAIT)
    assert ref.actor_stopped.wait(WAIT)
    assert not ref.is_alive()


def test_on_stop_is_called_when_actor_is_stopped(actor_ref, events):
    assert not events.on_stop.is_set()
    actor_ref.stop()
    assert events.on_stop.wait(WAIT)


def test_on_stop_failure_causes_actor_to_stop(events):
    ref = LateFailing.start(events)
    assert events.on_stop.wait(WAIT)
    assert ref.actor_stopped.wait(WAIT)
    assert not ref.is_alive()


def test_on_failure_is_called_when_exception_cannot_be_returned(actor_ref, events):
    actor_ref.tell({"command": "raise exception"})
    assert events.on_failure.wait(WAIT)
    assert not events.on_stop.is_set()


def test_on_failure_failure_causes_actor_to_stop(events):
    ref = FailingOnFailure.start(events)
    ref.tell({"command": "raise exception"})
    assert events.on_failure.wait(WAIT)
    assert ref.actor_stopped.wait(WAIT)
    assert not ref.is_alive()


def test_actor_is_stopped_when_unhandled_exceptions_are_raised(actor_ref, events):
    actor_ref.tell({"command": "raise exception"})
    assert events.on_failure.wait(WAIT)
    assert actor_ref.actor_stopped.wait(WAIT)
    assert ActorRegistry.get_all() == []


def test_all_actors_are_stopped_on_base_exception(actor_ref, events):
    other_events = Events()
    other = Subject.start(other_events)
    assert len(ActorRegistry.get_all()) == 2
    actor_ref.tell({"command": "raise base exception"})
    assert events.on_stop.wait(WAIT) and other_events.on_stop.wait(WAIT)
    assert ActorRegistry.get_all() == []
    assert not actor_ref.is_alive() and not other.is_alive()
    with pytest.raises(ActorDeadError):
        actor_ref.tell({"command": "anything"})  # stopped, not alive but deaf


def test_ask_that_raises_a_base_exception_is_answered_not_left_waiting(actor_ref, events):
    """Beyond Pykka (whose asker waits forever there): the asker gets ActorDeadError."""
    with pytest.raises(ActorDeadError):
        actor_ref.ask({"command": "raise base exception"}, timeout=WAIT)
    assert events.on_stop.wait(WAIT)
    assert not actor_ref.is_alive()


def test_mail_behind_a_base_exception_is_refused(actor_ref):
    release = threading.Event()
    actor_ref.tell({"command": "callback", "callback": lambda: release.wait(WAIT)})
    actor_ref.tell({"command": "raise base exception"})
    behind = actor_ref.ask({"command": "ping"}, block=False)
    release.set()
    with pytest.raises(ActorDeadError):
        behind.get(timeout=WAIT)


def test_base_exception_in_on_start_stops_the_actor(events):
    """Not in Pykka (its thread would just die); here the actor must not stay alive but deaf."""
    ref = BaseExceptionOnStart.start(events)
    assert events.on_start.wait(WAIT)
    assert ref.actor_stopped.wait(WAIT)
    with pytest.raises(ActorDeadError):
        ref.ask({"command": "ping"}, timeout=WAIT)


def test_actor_can_call_stop_on_self_multiple_times(actor_ref):
    actor_ref.ask({"command": "stop twice"}, timeout=WAIT)


def test_actor_processes_all_messages_before_stop_on_self_stops_it(actor_ref, events):
    actor_ref.ask({"command": "message self then stop"}, timeout=WAIT)
    assert events.greetings.wait(WAIT)
    assert events.on_stop.wait(WAIT)
    assert ActorRegistry.get_all() == []


# --- tests/test_ref.py --------------------------------------------------------------------------

def test_repr_and_str_of_a_ref(actor_ref):
    text = repr(actor_ref)
    assert text.startswith("<") and text.endswith(">") and "ActorRef" in text
    assert "Subject" in text and actor_ref.actor_urn in text
    assert "Subject" in str(actor_ref) and actor_ref.actor_urn in str(actor_ref)


def test_is_alive_for_running_and_dead_actors(actor_ref):
    assert actor_ref.is_alive()
    actor_ref.stop()
    assert not actor_ref.is_alive()


def test_stop_returns_true_once(actor_ref):
    assert actor_ref.stop() is True
    assert actor_ref.stop() is False


@pytest.mark.parametrize("message", [123, 123.456, {"a": "dict"}, ("a", "tuple"),
                                     ["a", "list"], "text"])
def test_tell_accepts_any_object_as_the_message(events, message):
    received: list[Any] = []
    ref = Subject.start(events, received)
    ref.tell(message)
    ref.ask({"command": "ping"}, timeout=WAIT)  # handled in order: the tell came first
    assert received == [message]


def test_tell_and_ask_fail_if_actor_is_stopped(actor_ref):
    actor_ref.stop()
    with pytest.raises(ActorDeadError, match="not found"):
        actor_ref.tell({"command": "a custom message"})
    with pytest.raises(ActorDeadError, match="not found"):
        actor_ref.ask({"command": "ping"})
    future = actor_ref.ask({"command": "ping"}, block=False)
    with pytest.raises(ActorDeadError, match="not found"):
        future.get(timeout=WAIT)


def test_ask_blocks_until_response_arrives_or_returns_a_future(actor_ref):
    assert actor_ref.ask({"command": "ping"}, timeout=WAIT) == "pong"
    assert actor_ref.ask({"command": "ping"}, block=False).get(timeout=WAIT) == "pong"


def test_ask_can_timeout_if_blocked_too_long(actor_ref):
    release = threading.Event()
    actor_ref.tell({"command": "callback", "callback": lambda: release.wait(WAIT)})
    try:
        with pytest.raises(Timeout):
            actor_ref.ask({"command": "ping"}, timeout=0.05)
    finally:
        release.set()


def test_ask_that_raises_returns_the_exception_and_the_actor_lives(actor_ref):
    with pytest.raises(Exception, match="foo"):
        actor_ref.ask({"command": "raise exception"}, timeout=WAIT)
    assert actor_ref.is_alive()
    assert actor_ref.ask({"command": "ping"}, timeout=WAIT) == "pong"


# --- tests/proxy/ ---------------------------------------------------------------------------------

def test_proxy_method_calls_and_attribute_access(actor_ref):
    proxy = actor_ref.proxy()
    assert proxy.add(2, 3).get(timeout=WAIT) == 5
    assert proxy.answer.get(timeout=WAIT) == 42
    proxy.answer = 7
    assert proxy.answer.get(timeout=WAIT) == 7


def test_registry_lookups_find_on_demand_actors(actor_ref):
    assert ActorRegistry.get_by_urn(actor_ref.actor_urn) is actor_ref
    assert actor_ref in ActorRegistry.get_by_class(Subject)
    assert isinstance(pykka.ActorRegistry.get_all(), list)
