"""Identity tokens with an expiry: `presence-token NAME --expires D` and the server refusing an
expired token, at connect and at a heartbeat; tokens without an expiry keep working."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from presence_server.web.identity import Identities

from .helpers import refusal, wait_record

pytestmark = pytest.mark.timeout(60)

SECRET = "e2e-token-secret"
PRESENCE_TOKEN = str(Path(sys.executable).with_name("presence-token"))


def presence_token(*args: str) -> subprocess.CompletedProcess:
    """Run the real `presence-token` command with PRESENCE_SECRET set."""
    return subprocess.run([PRESENCE_TOKEN, *args], env={**os.environ, "PRESENCE_SECRET": SECRET},
                          capture_output=True, text=True, timeout=30)


def expired_token(name: str) -> str:
    """A token for `name` that expired an hour ago (issued "two hours ago" for one hour)."""
    return Identities(SECRET).issue(name, expires_in=3600, now=time.time() - 7200)


@pytest.fixture(scope="module")
def server(module_server):
    return module_server({"security": {"secret": SECRET, "max_events_per_second": 1000}})





def test_tokens_from_the_command_with_and_without_an_expiry_register(
        server, connect, transport, unique):
    for args in ((), ("--expires", "24h"), ("--expires", "7d")):
        name = unique("member")
        issued = presence_token(name, *args)
        assert issued.returncode == 0, issued.stderr
        client = connect(server.url, transport, auth={"clientName": name,
                                                      "token": issued.stdout.strip()})
        wait_record(server, name, "online", "connected")
        assert client.heartbeat(name)["status"] == "ok"


def test_an_expired_token_is_refused_at_connect(server, transport, unique):
    name = unique("late")
    message = refusal(server, transport, {"clientName": name, "token": expired_token(name)})

    assert "expired" in message and repr(name) in message, message
    assert server.client(name) is None


def test_an_expired_token_is_refused_at_a_heartbeat(server, connect, transport, unique):
    name = unique("late")
    client = connect(server.url, transport)

    reply = client.heartbeat(name, token=expired_token(name))

    assert reply["status"] == "error" and reply["code"] == "token_expired", reply
    error = client.wait_event("error")
    assert error["code"] == "token_expired" and "expired" in error["message"]
    assert server.client(name) is None


@pytest.mark.parametrize("value", ["0s", "soon", "-1h"])
def test_the_command_refuses_a_bad_expiry(value):
    issued = presence_token("alice", f"--expires={value}")
    assert issued.returncode == 2
    assert "--expires" in issued.stderr and issued.stdout == ""
