"""Configuration: defaults equal the seed values, overlays, environment, one-line errors."""

from __future__ import annotations

import pytest
import yaml

from presence_server.config import ConfigError, default_config_path, load_config, parse_duration

SEED_DEFAULTS = {  # CONTRACT §2, taken from seeds 000 and 002
    "server.host": "127.0.0.1",
    "server.gc_thaw_interval": 3600.0,
    "monitoring.heartbeat_interval": 30.0,
    "monitoring.max_missed_heartbeats": 3,
    "monitoring.heartbeat_grace_period": 60.0,
    "monitoring.reconnection_grace_period": 120.0,
    "monitoring.offline_timeout": 300.0,
    "monitoring.connection_check_interval": 30.0,
    "monitoring.stats_log_interval": 300.0,
    "socket.ping_interval": 30.0,
    "socket.ping_timeout": 120.0,
    "socket.max_http_buffer_size": 1_000_000,
    "socket.cors_allowed_origins": "same-origin",  # seed 000 said "*": now an explicit opt-in
    "guests.connection_timeout": 180.0,
    "guests.cleanup_interval": 300.0,
    "guests.purge_on_startup": True,
    "store.url": "sqlite:///presence.db",
    "store.offline_retention": None,  # not from a seed: off unless an operator sets it
    "shutdown.reconnect_after": 5.0,
    "shutdown.notice_delay": 2.0,
    "shutdown.timeout": 10.0,
    "cluster.node_timeout": 15.0,
    "events.backlog": 10000,
    "events.keepalive": 15.0,
    "events.queue": 1000,
    "security.admin_token": None,
    "security.secret": None,
    "security.max_events_per_second": 10,
    # issue 10, hostile input (not from the seeds)
    "server.proxy_hops": 0,
    "server.read_timeout": 30.0,
    "socket.unnamed_timeout": 120.0,
    "security.watch_snapshot_limit": 500,
    "security.max_send_bytes": 65536,
    "security.new_records_per_minute": 120,
    # issue 12, /metrics: open unless a token is set
    "security.metrics_token": None,
    # issue 13, webhooks: off unless a URL is set
    "webhooks.url": None,
    "webhooks.secret": None,
    "webhooks.timeout": 5.0,
    "webhooks.batch": 100,
    "webhooks.queue": 1000,
    "webhooks.backoff": 1.0,
    "webhooks.backoff_max": 60.0,
}


def write(tmp_path, data) -> str:
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


def test_defaults_equal_the_seed_values():
    config = load_config(environ={})
    assert {key: config.get(key) for key in SEED_DEFAULTS} == SEED_DEFAULTS


def test_every_default_key_has_a_comment():
    lines = default_config_path().read_text().splitlines()
    keyed = [line for line in lines if line.startswith("  ") and ":" in line]
    assert len(keyed) == len(SEED_DEFAULTS)
    assert all("#" in line for line in keyed)


@pytest.mark.parametrize("text,seconds", [
    (30, 30.0), (0.25, 0.25), ("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0),
    ("1.5s", 1.5), ("2", 2.0),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["abc", "5 days", "-1s", True, None, [], "1x"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_overlay_file_changes_only_its_keys(tmp_path):
    path = write(tmp_path, {"monitoring": {"heartbeat_interval": "5s"}})
    config = load_config(path, environ={})
    assert config.monitoring["heartbeat_interval"] == 5.0
    assert config.monitoring["max_missed_heartbeats"] == 3


def test_presence_config_variable_names_the_overlay(tmp_path):
    path = write(tmp_path, {"shutdown": {"reconnect_after": "250ms"}})
    assert load_config(environ={"PRESENCE_CONFIG": path}).shutdown["reconnect_after"] == 0.25


def test_environment_keys_win_over_files(tmp_path):
    path = write(tmp_path, {"monitoring": {"reconnection_grace_period": "1m"}})
    config = load_config(path, environ={
        "PRESENCE__MONITORING__RECONNECTION_GRACE_PERIOD": "5s",
        "PRESENCE__GUESTS__PURGE_ON_STARTUP": "false",
        "PRESENCE__SOCKET__CORS_ALLOWED_ORIGINS": "https://a.example,https://b.example",
    })
    assert config.monitoring["reconnection_grace_period"] == 5.0
    assert config.guests["purge_on_startup"] is False
    assert config.socket["cors_allowed_origins"] == ["https://a.example", "https://b.example"]


def test_input_limit_keys(tmp_path):
    defaults = load_config(environ={})
    assert defaults.server["proxy_hops"] == 0 and defaults.server["read_timeout"] == 30.0
    assert defaults.socket["unnamed_timeout"] == 120.0
    assert defaults.security["watch_snapshot_limit"] == 500
    assert defaults.security["new_records_per_minute"] == 120
    config = load_config(write(tmp_path, {
        "server": {"proxy_hops": 1, "read_timeout": 0},
        "socket": {"cors_allowed_origins": "*", "unnamed_timeout": "0"},
        "security": {"new_records_per_minute": 0}}), environ={})
    assert config.server["proxy_hops"] == 1 and config.server["read_timeout"] == 0
    assert config.socket["cors_allowed_origins"] == "*" and config.socket["unnamed_timeout"] == 0
    assert config.security["new_records_per_minute"] == 0
    for same in (None, [], "same-origin"):
        overlay = write(tmp_path, {"socket": {"cors_allowed_origins": same}})
        assert load_config(overlay, environ={}).socket["cors_allowed_origins"] == "same-origin"


def test_conventional_variables(tmp_path):
    config = load_config(environ={"PRESENCE_ADMIN_TOKEN": "t0k", "PRESENCE_SECRET": "s3",
                                  "PRESENCE_NODE_ID": "node-7", "LOG_LEVEL": "debug",
                                  "PRESENCE__SECURITY__ADMIN_TOKEN": "other"})
    assert config.security["admin_token"] == "t0k"
    assert config.security["secret"] == "s3"
    assert config.node_id == "node-7" and config.log_level == "DEBUG"


@pytest.mark.parametrize("overlay,environ,key", [
    ({"monitoring": {"heartbeat_interval": "abc"}}, {}, "monitoring.heartbeat_interval"),
    ({"monitoring": {"heartbeat_interval": 0}}, {}, "monitoring.heartbeat_interval"),
    ({"monitoring": {"max_missed_heartbeats": 0}}, {}, "monitoring.max_missed_heartbeats"),
    ({"monitoring": {"nope": 1}}, {}, "monitoring.nope"),
    ({"nope": {"x": 1}}, {}, "nope"),
    ({"guests": {"purge_on_startup": "maybe"}}, {}, "guests.purge_on_startup"),
    ({"store": {"url": "mysql://x"}}, {}, "store.url"),
    ({"store": {"offline_retention": "soon"}}, {}, "store.offline_retention"),
    ({"shutdown": {"notice_delay": "20s"}}, {}, "shutdown.notice_delay"),
    ({"socket": {"cors_allowed_origins": 5}}, {}, "socket.cors_allowed_origins"),
    ({"socket": {"cors_allowed_origins": ["*", "https://a.example"]}}, {},
     "socket.cors_allowed_origins"),
    ({"socket": {"cors_allowed_origins": "a.example"}}, {}, "socket.cors_allowed_origins"),
    ({"server": {"proxy_hops": -1}}, {}, "server.proxy_hops"),
    ({"server": {"read_timeout": "soon"}}, {}, "server.read_timeout"),
    ({"socket": {"unnamed_timeout": -3}}, {}, "socket.unnamed_timeout"),
    ({"security": {"max_send_bytes": 0}}, {}, "security.max_send_bytes"),
    ({"security": {"watch_snapshot_limit": 0}}, {}, "security.watch_snapshot_limit"),
    ({"security": {"new_records_per_minute": "many"}}, {}, "security.new_records_per_minute"),
    ({"webhooks": {"url": "ftp://example.com/hook"}}, {}, "webhooks.url"),
    ({"webhooks": {"url": "http:///no-host"}}, {}, "webhooks.url"),
    ({"webhooks": {"batch": 0}}, {}, "webhooks.batch"),
    ({"webhooks": {"timeout": 0}}, {}, "webhooks.timeout"),
    ({"webhooks": {"backoff": "2m"}}, {}, "webhooks.backoff"),
    ({}, {"PRESENCE__MONITORING__MAX_MISSED_HEARTBEATS": "0"}, "monitoring.max_missed_heartbeats"),
    ({}, {"PRESENCE__MONITORING": "1"}, "PRESENCE__MONITORING"),
    ({}, {"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
])
def test_bad_values_name_the_key_in_one_line(tmp_path, overlay, environ, key):
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, overlay), environ=environ)
    message = str(raised.value)
    assert message.startswith(key) and "\n" not in message


@pytest.mark.parametrize("value,seconds", [(None, None), ("off", None), (0, None),
                                           ("720h", 720 * 3600.0), ("90s", 90.0)])
def test_offline_retention_is_off_or_a_duration(tmp_path, value, seconds):
    config = load_config(write(tmp_path, {"store": {"offline_retention": value}}), environ={})
    assert config.get("store.offline_retention") == seconds
    assert load_config(environ={}).get("store.offline_retention") is None  # off by default


def test_unreadable_overlay(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(str(tmp_path / "missing.yaml"), environ={})
    with pytest.raises(ConfigError, match="YAML"):
        load_config(write(tmp_path, "monitoring: [unclosed"), environ={})
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a list"), environ={})


def test_webhooks_url_is_off_or_http(tmp_path):
    for off in (None, "off", ""):
        config = load_config(write(tmp_path, {"webhooks": {"url": off}}), environ={})
        assert config.get("webhooks.url") is None
    config = load_config(environ={"PRESENCE__WEBHOOKS__URL": "https://app.example/hooks?k=1",
                                  "PRESENCE__WEBHOOKS__SECRET": "s3cret"})
    assert config.get("webhooks.url") == "https://app.example/hooks?k=1"
    assert config.get("webhooks.secret") == "s3cret"
