"""A bad configuration stops start-up: non-zero exit and one line naming the key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from tests.support.server import REPO, free_port

pytestmark = pytest.mark.timeout(60)


def run_server(tmp_path, overlay=None, env=None, raw: str | None = None, config=None):
    """Run `python -m presence_server` expecting it to refuse to start."""
    if config is None:
        config = tmp_path / "bad.yaml"
        config.write_text(raw if raw is not None else yaml.safe_dump(overlay or {}))
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("PRESENCE") and key not in ("PORT", "REDIS_URL")}
    environment.update(env or {})
    command = [sys.executable, "-m", "presence_server", "--config", str(config)]
    if "PORT" not in environment:
        command += ["--port", str(free_port())]
    try:
        result = subprocess.run(command, cwd=REPO, env=environment, capture_output=True,
                                text=True, timeout=20)
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(f"the server started instead of refusing: {expired.stderr}") from None
    return result


def assert_refused(result, *words):
    assert result.returncode != 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr}"
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize("overlay,key", [
    ({"monitoring": {"heartbeat_interval": "abc"}}, "monitoring.heartbeat_interval"),
    ({"monitoring": {"heartbeat_interval": -5}}, "monitoring.heartbeat_interval"),
    ({"monitoring": {"heartbeat_interval": True}}, "monitoring.heartbeat_interval"),
    ({"monitoring": {"max_missed_heartbeats": 0}}, "monitoring.max_missed_heartbeats"),
    ({"monitoring": {"max_missed_heartbeats": "three"}}, "monitoring.max_missed_heartbeats"),
    ({"monitoring": {"no_such_key": 1}}, "monitoring.no_such_key"),
    ({"nonsense": {"key": 1}}, "nonsense"),
    ({"monitoring": 5}, "monitoring"),
    ({"guests": {"purge_on_startup": "perhaps"}}, "guests.purge_on_startup"),
    ({"socket": {"cors_allowed_origins": 7}}, "socket.cors_allowed_origins"),
    ({"store": {"url": "postgres://db"}}, "store.url"),
    ({"shutdown": {"notice_delay": "20s", "timeout": "10s"}}, "shutdown.notice_delay"),
    ({"security": {"max_events_per_second": 0}}, "security.max_events_per_second"),
])
def test_bad_value_in_the_config_file(tmp_path, overlay, key):
    assert_refused(run_server(tmp_path, overlay), key)


@pytest.mark.parametrize("variable,value,key", [
    ("PRESENCE__MONITORING__MAX_MISSED_HEARTBEATS", "0", "monitoring.max_missed_heartbeats"),
    ("PRESENCE__MONITORING__HEARTBEAT_INTERVAL", "soon", "monitoring.heartbeat_interval"),
    ("PRESENCE__MONITORING__NOPE", "1", "monitoring.nope"),
    ("PRESENCE__NOPE", "1", "PRESENCE__NOPE"),
    ("PORT", "http", "PORT"),
    ("LOG_LEVEL", "chatty", "LOG_LEVEL"),
])
def test_bad_value_in_the_environment(tmp_path, variable, value, key):
    assert_refused(run_server(tmp_path, {}, env={variable: value}), key)


def test_unreadable_yaml_and_missing_file(tmp_path):
    assert_refused(run_server(tmp_path, raw="monitoring: [unclosed\n"), "bad.yaml")
    assert_refused(run_server(tmp_path, raw="- just\n- a list\n"), "bad.yaml")
    assert_refused(run_server(tmp_path, config=tmp_path / "missing.yaml"), "missing.yaml")
