"""Checks for everything a socket sends; each failure is an `Invalid` with a code and a reason.

Names (client names, guest ids) and guest display names are stored, logged and shown, so they
are held to one charset: printable characters only (`str.isprintable()`: letters, marks, numbers,
punctuation, symbols and the ASCII space), plus the zero-width joiner that emoji sequences use.
Refused: control characters (newline, CR, tab, NUL, DEL, C1), lone UTF-16 surrogates (they
cannot be encoded as UTF-8, so they would make every store write fail), format characters
(bidi overrides, zero-width spaces, BOM), private-use and unassigned code points, and separators
other than the ASCII space (U+2028 is a line break to many log viewers). Lengths count both
characters and UTF-8 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_NAME = 128
MAX_NAME_BYTES = 256
MAX_DISPLAY_NAME = 64
MAX_DISPLAY_NAME_BYTES = 256
MAX_TOKEN = 4096
MAX_IP = 64
ZERO_WIDTH_JOINER = "\u200d"


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


def text_problem(value: str, max_chars: int, max_bytes: int) -> str | None:
    """Why `value` is not an acceptable name or display name (None when it is)."""
    if len(value) > max_chars:
        return f"is longer than {max_chars} characters"
    if not value.isprintable() and not value.replace(ZERO_WIDTH_JOINER, "").isprintable():
        return ("must hold printable characters only (no control, format, surrogate, "
                "private-use or line-separator characters)")
    if len(value) * 4 > max_bytes and len(value.encode("utf-8")) > max_bytes:
        return f"is longer than {max_bytes} bytes in UTF-8"
    return None


def name(value: Any, key: str) -> str:
    """A client name or guest id: non-empty, printable, no surrounding spaces, bounded."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("invalid_payload", f"{key} must be a non-empty string, got {_kind(value)}")
    problem = text_problem(value, MAX_NAME, MAX_NAME_BYTES)
    if problem is not None:
        raise Invalid("invalid_payload", f"{key} {problem}")
    if value != value.strip():
        raise Invalid("invalid_payload", f"{key} must not have surrounding spaces")
    return value


def display_name(value: Any, key: str) -> str:
    """A guest's display name: like a name, shorter; surrounding spaces are trimmed."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("invalid_auth", f"{key} (a guest's display name) must be a non-empty "
                                      f"string of at most {MAX_DISPLAY_NAME} characters, "
                                      f"got {_kind(value)}")
    problem = text_problem(value, MAX_DISPLAY_NAME, MAX_DISPLAY_NAME_BYTES)
    if problem is not None:
        raise Invalid("invalid_auth", f"{key} (a guest's display name) {problem}")
    return value.strip()


def optional_ip(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_IP:
        raise Invalid("invalid_payload", f"ip_address must be a string of at most {MAX_IP} "
                                         f"characters, got {_kind(value)}")
    value = value.strip()
    if not all(" " < char < "\x7f" for char in value):
        raise Invalid("invalid_payload", "ip_address must hold printable ASCII characters only")
    return value or None


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
        display = display_name(auth.get("name", "Guest"), "auth.name")
        guest_id = auth.get("guestId")
        if guest_id is not None:
            try:
                guest_id = name(guest_id, "auth.guestId")
            except Invalid as problem:
                raise Invalid("invalid_auth", str(problem)) from None
        resume_token = auth.get("resumeToken")
        if resume_token is not None and (not isinstance(resume_token, str)
                                         or len(resume_token) > MAX_TOKEN):
            raise Invalid("invalid_auth", f"auth.resumeToken must be a string of at most "
                                          f"{MAX_TOKEN} characters")
        return Credentials(guest=True, display_name=display, guest_id=guest_id,
                           resume_token=resume_token)
    if auth.get("clientName") is None:
        return Credentials(token=optional_token(auth.get("token")))
    try:
        return Credentials(name=name(auth.get("clientName"), "auth.clientName"),
                           token=optional_token(auth.get("token")))
    except Invalid as problem:
        raise Invalid("invalid_auth", str(problem)) from None


def client_ip(environ: dict[str, Any], proxy_hops: int = 0) -> str | None:
    """The client's address, trusting `X-Forwarded-For` only as far as `proxy_hops` proxies.

    With 0 (the default) the header is ignored: anyone can write it. With N, the Nth address
    from the right is taken (each trusted proxy appends the address it saw), as werkzeug's
    ProxyFix does; with fewer than N addresses the header is ignored.
    """
    if proxy_hops > 0:
        forwarded = [part.strip() for part in environ.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxy_hops:
            address = forwarded[-proxy_hops]
            if len(address) <= MAX_IP and all(" " < char < "\x7f" for char in address):
                return address
    return environ.get("REMOTE_ADDR")


def printable(text: str) -> str:
    """`text` as is when it cannot break a log line, else its repr (for logging client input)."""
    return text if text.isprintable() else repr(text)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return type(value).__name__ if not isinstance(value, str) else repr(value[:40])
