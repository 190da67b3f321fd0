"""A Redis store URL (Heroku's REDIS_URL) falls back to the embedded store with one warning."""

from __future__ import annotations

import logging

import pytest
import yaml

from presence_server.config import load_config, redact


@pytest.fixture
def warnings(caplog):
    caplog.set_level(logging.WARNING, logger="presence.config")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "presence.config"]


def test_redis_url_keeps_the_files_sqlite_store_and_warns_once(tmp_path, warnings):
    overlay = tmp_path / "o.yaml"
    overlay.write_text(yaml.safe_dump({"store": {"url": f"sqlite:///{tmp_path}/p.db"}}))
    config = load_config(overlay, environ={"REDIS_URL": "redis://:hunter2@10.0.0.1:6379/0"})
    assert config.store["url"] == f"sqlite:///{tmp_path}/p.db"
    [message] = warnings()
    assert message.startswith("REDIS_URL is redis://:***@10.0.0.1:6379/0")
    assert "embedded store" in message and "hunter2" not in message


def test_a_redis_store_url_in_a_file_falls_back_to_the_default_sqlite_file(tmp_path, warnings):
    overlay = tmp_path / "o.yaml"
    overlay.write_text(yaml.safe_dump({"store": {"url": "rediss://cache.example:6380/1"}}))
    config = load_config(overlay, environ={})
    assert config.store["url"] == "sqlite:///presence.db"
    [message] = warnings()
    assert message.startswith("store.url is rediss://cache.example:6380/1")


def test_no_warning_without_redis(warnings):
    assert load_config(environ={}).store["url"] == "sqlite:///presence.db"
    assert warnings() == []


@pytest.mark.parametrize("url,shown", [
    ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
    ("redis://user:pw@h/0", "redis://user:***@h/0"),
    ("redis://h:6379/0", "redis://h:6379/0"),
    ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
])
def test_redact_hides_only_the_password(url, shown):
    assert redact(url) == shown
