"""Fixtures of the client tests: a tiny Socket.IO server in a thread, and the real server."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from .tiny_server import TinyServer


@pytest.fixture
def tiny_server() -> Iterator[TinyServer]:
    server = TinyServer(next_heartbeat_in_ms=30000).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_client() -> Iterator:
    """Build PresenceClients with test-friendly defaults; every one is closed at teardown."""
    from presence_client import Backoff, PresenceClient

    clients: list[PresenceClient] = []

    def make(url: str, name: str = "alice", **kwargs) -> PresenceClient:
        kwargs.setdefault("backoff", Backoff(initial=0.05, max_delay=0.5))
        kwargs.setdefault("heartbeat_timeout", 2.0)
        client = PresenceClient(url, name, **kwargs)
        clients.append(client)
        return client

    yield make
    closers = [threading.Thread(target=client.close) for client in clients]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join(30)


# ---------------------------------------------------------------- the real server

# Variables that would change a server's behaviour behind a test's overrides.
_FOREIGN_ENV = ("PRESENCE_ADMIN_TOKEN", "PRESENCE_SECRET", "REDIS_URL", "PRESENCE_CONFIG",
                "PRESENCE_NODE_ID", "PORT", "LOG_LEVEL", "PRESENCE_TOKEN",
                "PRESENCE_GUEST_TOKEN")
_LIVE_SERVERS: list = []


@pytest.fixture
def make_server(tmp_path, monkeypatch):
    """``make_server(overrides, start=True, port=None)``: a real presence server process.

    Uses ``tests/support/server.py``'s ``ServerProcess`` (short intervals, a private SQLite file,
    waits for ``/health``). Every server is stopped (SIGTERM, then SIGKILL) after the test.
    """
    from tests.support.server import ServerProcess

    for name in list(os.environ):
        if name in _FOREIGN_ENV or name.startswith("PRESENCE__"):
            monkeypatch.delenv(name)
    started: list[ServerProcess] = []

    def make(overrides: dict | None = None, start: bool = True, **options) -> ServerProcess:
        server = ServerProcess(tmp_path / f"server-{len(started)}", overrides, **options)
        started.append(server)
        _LIVE_SERVERS.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        try:
            server.stop(timeout=20)
        except AssertionError:
            server.kill()
        finally:
            _LIVE_SERVERS.remove(server)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for server in _LIVE_SERVERS:
            report.sections.append((f"server log ({server.log_path})", server.log_text()[-6000:]))
    return report
