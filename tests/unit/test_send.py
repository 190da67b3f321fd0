"""web/send.py: event names, sizes, and the reserved list kept in step with the code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from presence_server.store.records import REMOVED, STATUS_CHANGED
from presence_server.web import send
from presence_server.web.validation import Invalid

REPO = Path(__file__).resolve().parents[2]
SOURCES = [*sorted((REPO / "web").glob("*.py")), *sorted((REPO / "actors").glob("*.py")),
           *sorted((REPO / "presence_server").glob("*.py"))]
EMITTERS = {"emit", "_emit", "Reply", "_error_reply_for"}


def events_in_code() -> set[str]:
    """Every literal event name the server emits or replies with, and every handled event."""
    found: set[str] = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                first = node.args[0]
                if (called in EMITTERS and isinstance(first, ast.Constant)
                        and isinstance(first.value, str)):
                    found.add(first.value)
            if isinstance(node, ast.FunctionDef) and node.name == "_event_handlers":
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Dict):
                        found |= {key.value for key in inner.keys
                                  if isinstance(key, ast.Constant)}
    return found


def test_every_event_the_server_sends_or_handles_is_reserved():
    found = events_in_code() | {STATUS_CHANGED, REMOVED}  # the feed's events (constants)
    assert {"heartbeat", "heartbeat_response", "connection_check", "error", "send",
            "guest_registered", "watch", "client_reconnected"} <= found  # the scan works
    assert found - send.SERVER_EVENTS == set()


@pytest.mark.parametrize("name", ["call_invite", "call.accept", "a", "A1:b-c_d.e",
                                  "x" * 64, "callInvite"])
def test_good_event_names(name):
    assert send.event_name(name) == name


@pytest.mark.parametrize("name,code", [
    ("", "invalid_event"), ("1call", "invalid_event"), ("_call", "invalid_event"),
    ("call invite", "invalid_event"), ("x" * 65, "invalid_event"), ("appel_é", "invalid_event"),
    ("call\n", "invalid_event"), (None, "invalid_event"), (3, "invalid_event"),
    ("error", "reserved_event"), ("ERROR", "reserved_event"), ("heartbeat", "reserved_event"),
    ("client_status_changed", "reserved_event"), ("connect", "reserved_event"),
    ("disconnect", "reserved_event"), ("message", "reserved_event"),
    ("newListener", "reserved_event"), ("send", "reserved_event"),
])
def test_bad_event_names(name, code):
    with pytest.raises(Invalid) as refused:
        send.event_name(name)
    assert refused.value.code == code


def test_data_size_counts_compact_utf8_json():
    assert send.data_size({"a": [1, 2]}, 100) == len(b'{"a":[1,2]}')
    assert send.data_size("é", 100) == 4  # quotes + 2 bytes
    assert send.data_size(None, 100) == 4
    with pytest.raises(Invalid) as refused:
        send.data_size("x" * 99, 100)
    assert refused.value.code == "payload_too_large" and "101" in str(refused.value)
    for bad in (b"bytes", float("nan"), {1, 2}):
        with pytest.raises(Invalid) as refused:
            send.data_size(bad, 100)
        assert refused.value.code == "invalid_payload"


def test_parse_ignores_from_and_checks_to():
    delivery = send.parse({"to": "bob", "event": "ping_me", "data": [1], "from": "eve"},
                          None, 100)
    assert (delivery.to, delivery.event, delivery.data) == ("bob", "ping_me", [1])
    with pytest.raises(Invalid) as refused:
        send.parse({"to": "bob\n", "event": "x"}, None, 100)
    assert refused.value.code == "invalid_payload"
