"""Configuration: defaults from config.yaml, an overlay file, then the environment.

Order (later wins): the packaged/repo `config.yaml`, `--config PATH` or `PRESENCE_CONFIG`,
`PRESENCE__<SECTION>__<KEY>` variables, then the conventional variables (`REDIS_URL`,
`PRESENCE_ADMIN_TOKEN`, `PRESENCE_SECRET`). Every value is parsed and checked here, so a bad
one stops start-up with a `ConfigError` naming the key and why. A Redis URL (Heroku's add-on sets
`REDIS_URL`) switches the store, the change feed and the Socket.IO message queue to Redis.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("presence.config")


class ConfigError(ValueError):
    """A configuration problem, phrased as one line naming the key."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """`30`, `0.25`, `"250ms"`, `"30s"`, `"5m"`, `"1h"` -> seconds as a float."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, got a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(
            f"expected a duration like 30s, 250ms, 5m or a number of seconds, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be greater than zero, got {value!r}")
    return seconds


def _whole_number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise ValueError(f"expected a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"cannot be negative, got {value}")
    return value


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        else:
            raise ValueError(f"expected a whole number, got {value!r}")
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "yes", "1", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "no", "0", "off"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value.strip()


def _optional_text(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in {"", "null", "none"}):
        return None
    return _text(value)


SAME_ORIGIN = "same-origin"


def _origins(value: Any) -> str | list[str]:
    """`same-origin` (also null or []), `"*"` (any origin, an explicit opt-in) or origins."""
    if value is None or value == [] or (isinstance(value, str) and value.strip() in
                                        {"", SAME_ORIGIN, "null"}):
        return SAME_ORIGIN
    if isinstance(value, str) and value.strip() == "*":
        return "*"
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",") if item.strip()]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise ValueError(f'expected same-origin, "*" or a list of origins, got {value!r}')
    for item in items:
        if item == "*":
            raise ValueError('"*" cannot be mixed with origins; use "*" alone')
        if not re.match(r"^https?://[^/\s]+$", item):
            raise ValueError(f"expected origins like https://app.example.com, got {item!r}")
    return items


REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")
EMBEDDED_STORE_URL = "sqlite:///presence.db"


def _store_url(value: Any) -> str:
    url = _text(value)
    if not (url.startswith("sqlite:///") or url.startswith(REDIS_SCHEMES)):
        raise ValueError(f"expected sqlite:///PATH, redis://HOST:PORT/DB or "
                         f"redis+sentinel://HOST:PORT/SERVICE, got {redact(url)!r}")
    return url


def _optional_duration(value: Any) -> float | None:
    """A positive duration, or off (`null`, `off`, `0`)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in {"", "null", "none",
                                                                              "off"}):
        return None
    seconds = parse_duration(value)
    return seconds if seconds > 0 else None


def _optional_http_url(value: Any) -> str | None:
    """An http:// or https:// URL with a host, or off (`null`, `off`, empty)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in {"", "null", "none",
                                                                              "off"}):
        return None
    from urllib.parse import urlsplit

    url = _text(value)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {redact(url)!r}")
    return url


Parser = Callable[[Any], Any]

SCHEMA: dict[str, dict[str, Parser]] = {
    "server": {
        "host": _text,
        "gc_thaw_interval": _positive_duration,
        "proxy_hops": _whole_number,
        "read_timeout": parse_duration,
    },
    "monitoring": {
        "heartbeat_interval": _positive_duration,
        "max_missed_heartbeats": _positive_int,
        "heartbeat_grace_period": parse_duration,
        "reconnection_grace_period": parse_duration,
        "offline_timeout": _positive_duration,
        "connection_check_interval": _positive_duration,
        "stats_log_interval": _positive_duration,
    },
    "socket": {
        "ping_interval": _positive_duration,
        "ping_timeout": _positive_duration,
        "max_http_buffer_size": _positive_int,
        "cors_allowed_origins": _origins,
        "unnamed_timeout": parse_duration,
    },
    "guests": {
        "connection_timeout": parse_duration,
        "cleanup_interval": _positive_duration,
        "purge_on_startup": _boolean,
    },
    "store": {"url": _store_url, "offline_retention": _optional_duration},
    "shutdown": {
        "reconnect_after": parse_duration,
        "notice_delay": parse_duration,
        "timeout": _positive_duration,
    },
    "cluster": {"node_timeout": _positive_duration},
    "events": {"backlog": _positive_int, "keepalive": _positive_duration,
               "queue": _positive_int},
    "security": {
        "admin_token": _optional_text,
        "metrics_token": _optional_text,
        "secret": _optional_text,
        "max_events_per_second": _positive_int,
        "watch_snapshot_limit": _positive_int,
        "max_send_bytes": _positive_int,
        "new_records_per_minute": _whole_number,
    },
    "webhooks": {
        "url": _optional_http_url,
        "secret": _optional_text,
        "timeout": _positive_duration,
        "batch": _positive_int,
        "queue": _positive_int,
        "backoff": _positive_duration,
        "backoff_max": _positive_duration,
    },
}

# Conventional variables (CONTRACT §2) and the key each one sets; they win over files.
CONVENTIONAL_VARIABLES = {
    "REDIS_URL": ("store", "url"),
    "PRESENCE_ADMIN_TOKEN": ("security", "admin_token"),
    "PRESENCE_SECRET": ("security", "secret"),
}


@dataclass(frozen=True)
class Config:
    """Parsed settings, one attribute per section (each a plain dict of parsed values)."""

    server: Mapping[str, Any]
    monitoring: Mapping[str, Any]
    socket: Mapping[str, Any]
    guests: Mapping[str, Any]
    store: Mapping[str, Any]
    shutdown: Mapping[str, Any]
    cluster: Mapping[str, Any]
    events: Mapping[str, Any]
    security: Mapping[str, Any]
    webhooks: Mapping[str, Any]
    node_id: str
    log_level: str

    def get(self, dotted: str) -> Any:
        section, key = dotted.split(".", 1)
        return getattr(self, section)[key]


def default_config_path() -> Path:
    """The repo's `config.yaml`, or the copy installed beside the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "config.yaml", here / "defaults.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError("config.yaml: the defaults file is missing from the installation")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, yaml.YAMLError) as error:
        text = str(error).strip()
        first_line = text.splitlines()[0] if text else type(error).__name__
        raise ConfigError(f"{path}: cannot read it as YAML ({first_line})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def _merge(target: dict[str, dict[str, Any]], overlay: dict[str, Any], origin: str) -> None:
    for section, values in overlay.items():
        if section not in SCHEMA:
            known = ", ".join(SCHEMA)
            raise ConfigError(f"{section}: unknown section in {origin} (known: {known})")
        if not isinstance(values, dict):
            raise ConfigError(f"{section}: expected a mapping of keys in {origin}")
        for key, value in values.items():
            if key not in SCHEMA[section]:
                known = ", ".join(SCHEMA[section])
                raise ConfigError(f"{section}.{key}: unknown key in {origin} (known: {known})")
            target.setdefault(section, {})[key] = value


def _environment_overlay(environ: Mapping[str, str]) -> dict[str, Any]:
    overlay: dict[str, dict[str, Any]] = {}
    for name, value in environ.items():
        if not name.startswith("PRESENCE__"):
            continue
        parts = name[len("PRESENCE__"):].lower().split("__")
        if len(parts) != 2:
            raise ConfigError(f"{name}: expected PRESENCE__<SECTION>__<KEY>")
        section, key = parts
        overlay.setdefault(section, {})[key] = yaml.safe_load(value) if value.strip() else value
    return overlay


def _check_invariants(values: dict[str, dict[str, Any]]) -> None:
    shutdown = values["shutdown"]
    if shutdown["notice_delay"] >= shutdown["timeout"]:
        raise ConfigError(
            "shutdown.notice_delay: must be shorter than shutdown.timeout "
            f"({shutdown['notice_delay']}s >= {shutdown['timeout']}s)"
        )
    webhooks = values["webhooks"]
    if webhooks["backoff"] > webhooks["backoff_max"]:
        raise ConfigError(f"webhooks.backoff: must not exceed webhooks.backoff_max "
                          f"({webhooks['backoff']}s > {webhooks['backoff_max']}s)")
    socket = values["socket"]
    if socket["ping_timeout"] <= 0 or socket["ping_interval"] <= 0:
        raise ConfigError("socket.ping_interval: ping settings must be positive")


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective `Config`; raise `ConfigError` naming the first bad key."""
    environ = os.environ if environ is None else environ
    raw: dict[str, dict[str, Any]] = {}
    defaults_path = default_config_path()
    _merge(raw, _read_yaml(defaults_path), str(defaults_path))
    overlay_path = path or environ.get("PRESENCE_CONFIG")
    if overlay_path:
        _merge(raw, _read_yaml(Path(overlay_path)), str(overlay_path))
    _merge(raw, _environment_overlay(environ), "the environment")
    for variable, (section, key) in CONVENTIONAL_VARIABLES.items():
        if environ.get(variable):
            raw.setdefault(section, {})[key] = environ[variable]

    parsed: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        parsed[section] = {}
        for key, parse in keys.items():
            if key not in raw.get(section, {}):
                raise ConfigError(f"{section}.{key}: missing from {defaults_path}")
            try:
                parsed[section][key] = parse(raw[section][key])
            except ValueError as error:
                raise ConfigError(f"{section}.{key}: {error}") from None
    _check_invariants(parsed)

    log_level = environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    node_id = (environ.get("PRESENCE_NODE_ID", "").strip() or environ.get("DYNO", "").strip()
               or _default_node_id())
    return Config(**parsed, node_id=node_id, log_level=log_level)


def redact(url: str) -> str:
    """`url` with its password (if any) replaced by `***`, fit for a log line."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _default_node_id() -> str:
    import socket

    return socket.gethostname() or "node"
