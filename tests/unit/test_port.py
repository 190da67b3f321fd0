"""The narrow port between web/ and presence: web/ reaches presence only through it."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from presence_server.actors.clock import ManualClock
from presence_server.actors.state import Timing
from presence_server.actors.supervisor import Intervals
from presence_server.store import open_store
from presence_server.web.identity import Identities
from presence_server.web.port import PresencePort

from presence_server.presence import Presence

WEB = Path(__file__).resolve().parents[2] / "web"

# What web/ may import of presence: the messages it delivers, the record shapes it shows, the
# clock's types and the watchers' room name.
ALLOWED = {"presence_server.actors.messages", "presence_server.actors.feed",
           "presence_server.actors.clock", "presence_server.store.records"}
FORBIDDEN_PREFIXES = ("presence_server.actors", "presence_server.store", "presence_server.runtime",
                      "presence_server.presence")
# Attributes that would mean reaching past the port into the core.
INTERNALS = {"directory", "supervisor", "store", "feed", "runtime"}


def web_modules() -> list[Path]:
    return sorted(WEB.glob("*.py"))


def test_presence_implements_every_member_of_the_port(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'presence.db'}")
    try:
        presence = Presence(node="n1", store=store, clock=ManualClock(), scheduler=ManualClock(),
                            timing=Timing(), intervals=Intervals(),
                            identities=Identities(None))
        members = {name for name in vars(PresencePort) if not name.startswith("_")}
        members |= set(PresencePort.__annotations__)
        assert members and not [name for name in members if not hasattr(presence, name)]
        for name in members - set(PresencePort.__annotations__):
            port_args = inspect.signature(getattr(PresencePort, name)).parameters
            ours = inspect.signature(getattr(Presence, name)).parameters
            assert list(port_args) == list(ours), name
    finally:
        store.close()


def test_web_imports_nothing_of_the_core_but_messages_and_records():
    for path in web_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module
            elif isinstance(node, ast.Import):
                module = node.names[0].name
            else:
                continue
            if module.startswith(FORBIDDEN_PREFIXES):
                assert module in ALLOWED, f"{path.name} imports {module}"


def test_web_never_reaches_past_the_port():
    for path in web_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in INTERNALS:
                raise AssertionError(f"{path.name}:{node.lineno} reaches "
                                     f"{ast.unparse(node)} past the port")
