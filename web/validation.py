"""Checks for everything a socket sends; each failure is an `Invalid` with a code and a reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_NAME = 128
MAX_DISPLAY_NAME = 64
MAX_TOKEN = 4096


class Invalid(ValueError):
    """Rejected input: `code` goes into the `error` event, the text says what is wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def mapping(data: Any, event: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Invalid("invalid_payload", f"{event} needs an object payload, got {_kind(data)}")
    return data


def optional_mapping(data: Any, event: str) -> dict[str, Any]:
    return {} if data is None else mapping(data, event)


def name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("invalid_payload", f"{key} must be a non-empty string, got {_kind(value)}")
    if len(value) > MAX_NAME:
        raise Invalid("invalid_payload", f"{key} is longer than {MAX_NAME} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in value) or value != value.strip():
        raise Invalid("invalid_payload",
                      f"{key} must not contain control characters or surrounding spaces")
    return value


def optional_ip(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise Invalid("invalid_payload", f"ip_address must be a string of at most 64 characters, "
                                         f"got {_kind(value)}")
    return value.strip() or None


def optional_timestamp(value: Any) -> None:
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return
    if isinstance(value, str) and len(value) <= 64:
        return
    raise Invalid("invalid_payload", f"timestamp must be a number or an ISO-8601 string, "
                                     f"got {_kind(value)}")


def optional_token(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TOKEN:
        raise Invalid("invalid_payload", "token must be a string")
    return value


@dataclass(frozen=True)
class Credentials:
    name: str | None = None
    token: str | None = None
    guest: bool = False
    display_name: str | None = None
    guest_id: str | None = None
    resume_token: str | None = None


def connect_auth(auth: Any) -> Credentials:
    """The connect `auth`: `{clientName, token?}`, `{guest: true, name?, guestId?,
    resumeToken?}` or nothing."""
    if auth is None or auth == {}:
        return Credentials()
    if not isinstance(auth, dict):
        raise Invalid("invalid_auth", f"auth must be an object, got {_kind(auth)}")
    if auth.get("guest") is not None and not isinstance(auth.get("guest"), bool):
        raise Invalid("invalid_auth", "auth.guest must be true or false")
    if auth.get("guest"):
        display = auth.get("name", "Guest")
        if not isinstance(display, str) or not display.strip() or len(display) > MAX_DISPLAY_NAME:
            raise Invalid("invalid_auth", f"auth.name (a guest's display name) must be a "
                                          f"non-empty string of at most {MAX_DISPLAY_NAME} "
                                          "characters")
        guest_id = auth.get("guestId")
        if guest_id is not None:
            guest_id = name(guest_id, "auth.guestId")
        resume_token = auth.get("resumeToken")
        if resume_token is not None and (not isinstance(resume_token, str)
                                         or len(resume_token) > MAX_TOKEN):
            raise Invalid("invalid_auth", f"auth.resumeToken must be a string of at most "
                                          f"{MAX_TOKEN} characters")
        return Credentials(guest=True, display_name=display.strip(), guest_id=guest_id,
                           resume_token=resume_token)
    if auth.get("clientName") is None:
        return Credentials(token=optional_token(auth.get("token")))
    try:
        return Credentials(name=name(auth.get("clientName"), "auth.clientName"),
                           token=optional_token(auth.get("token")))
    except Invalid as problem:
        raise Invalid("invalid_auth", str(problem)) from None


def client_ip(environ: dict[str, Any]) -> str | None:
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded:
        return forwarded.split(",")[0].strip() or None
    return environ.get("REMOTE_ADDR")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return type(value).__name__ if not isinstance(value, str) else repr(value[:40])
