"""REDIS_URL set (Heroku adds it with a Redis add-on): one warning and the embedded store, no crash.

The Redis store is not in this release; the URL points at a port nothing listens on, so any
attempt to use it would fail loudly.
"""

from __future__ import annotations

import pytest

from .helpers import wait_record

pytestmark = pytest.mark.timeout(90)

REDIS_URL = "redis://:s3cret-pw@127.0.0.1:1/0"


def test_redis_url_starts_on_the_embedded_store_with_one_warning(make_server, connect, unique):
    server = make_server(env={"REDIS_URL": REDIS_URL})

    health = server.get("/health")
    assert health["status"] == "ok" and health["store"]["kind"] == "sqlite"
    name = unique("heroku")
    client = connect(server.url, auth={"clientName": name})
    assert client.heartbeat(name)["status"] == "ok"
    wait_record(server, name, "online")

    assert server.stop() == 0
    log = server.log_text()
    warnings = [line for line in log.splitlines() if "Redis store is not in this release" in line]
    assert len(warnings) == 1, log
    assert "REDIS_URL" in warnings[0] and "redis://:***@127.0.0.1:1/0" in warnings[0]
    assert "s3cret-pw" not in log
    assert "Traceback" not in log
    # the store of the config files (what REDIS_URL overrode) kept the client
    assert (server.workdir / "presence.db").exists()
    server.start()
    assert server.client(name) is not None


def test_redis_url_under_the_procfile_command(make_server):
    server = make_server(procfile=True, env={"REDIS_URL": REDIS_URL})
    assert server.get("/health")["store"]["kind"] == "sqlite"
    assert server.stop() == 0
    assert "s3cret-pw" not in server.log_text()
