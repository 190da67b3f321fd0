"""Small helpers shared by the end-to-end tests: waiting on records, reading watcher events."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.support.clients import RecordingClient
from tests.support.server import ServerProcess, wait_for

# Generous bounds: conditions normally hold far sooner; these only stop a broken run.
SHORT = 10.0
LONG = 20.0


def seconds(iso_text: str) -> float:
    """An ISO-8601 UTC time from the server (`...Z`) as epoch seconds."""
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


def wait_record(server: ServerProcess, name: str, status: str, reason: str | None = None,
                timeout: float = SHORT, **fields: Any) -> dict[str, Any]:
    """Wait until `GET /api/clients/<name>` shows `status` (and `reason`, and `fields`)."""
    def matches() -> dict[str, Any] | None:
        record = server.client(name)
        if record is None or record["status"] != status:
            return None
        if reason is not None and record["reason"] != reason:
            return None
        if any(record.get(key) != value for key, value in fields.items()):
            return None
        return record

    return wait_for(matches, timeout, 0.05,
                    f"{name} to be {status} ({reason}) {fields}; last: {server.client(name)}")


def changes(watcher: RecordingClient, name: str) -> list[dict[str, Any]]:
    """The `client_status_changed` events `watcher` got for `name`, in order."""
    return [event for event in watcher.of("client_status_changed") if event["name"] == name]


def wait_change(watcher: RecordingClient, name: str, status: str, reason: str | None = None,
                timeout: float = SHORT) -> dict[str, Any]:
    return watcher.wait_event(
        "client_status_changed",
        lambda event: event["name"] == name and event["status"] == status
        and (reason is None or event["reason"] == reason),
        timeout)


def refusal(server: ServerProcess, transport: str, auth: Any) -> str:
    """Connect with `auth`, expecting a refusal; answers the refusal's message."""
    import pytest
    import socketio

    client = RecordingClient(server.url, transport, auth=auth)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect()
    try:
        refused = client.wait_event("connect_error")
    finally:
        client.close()
    return refused.get("message") if isinstance(refused, dict) else refused


def barrier(client: RecordingClient) -> None:
    """One request/ack round trip: every event the server sent this socket before is recorded."""
    reply = client.call("client_status_request", {"clientName": "barrier"})
    assert reply["serverStatus"] == "online", reply


def assert_versions_increase(events: list[dict[str, Any]]) -> None:
    versions = [event["version"] for event in events]
    assert versions == sorted(set(versions)), f"versions not strictly increasing: {versions}"


def path_of(record_transitions: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(t["status"], t["reason"]) for t in record_transitions]


def keep_alive(client: RecordingClient, name: str, until: float, period: float = 0.5) -> None:
    """Keep `name` heartbeating (each an acked round trip) until the wall clock reaches `until`.

    Used to hold an observation window open past a deadline, to show something did NOT happen.
    """
    while time.time() < until:
        reply = client.heartbeat(name)
        assert reply["status"] == "ok", reply
        time.sleep(min(period, max(0.0, until - time.time())))


def stored(server: ServerProcess) -> dict[str, dict[str, Any]]:
    """The client records as they are on disk (the server's SQLite file), by name."""
    path = server.config["store"]["url"][len("sqlite:///"):]
    if not Path(path).exists():
        return {}
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = connection.execute("SELECT name, data FROM clients").fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        connection.close()
    return {name: json.loads(data) for name, data in rows}


def http(server: ServerProcess, method: str, path: str, headers: dict[str, str] | None = None
         ) -> tuple[int, str, str]:
    """A raw request: (status, content type, body text), errors included."""
    request = urllib.request.Request(server.url + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return (response.status, response.headers.get("Content-Type", ""),
                    response.read().decode())
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()
