"""Signed tokens: identity tokens (`presence-token NAME`, checked when a name registers) and guest
resume tokens (sent with `guest_registered`, required to take a guest id back).

Both are itsdangerous signatures (HMAC-SHA1 by default), each kind with its own salt, so one can
never pass for the other. An identity token signs NAME, or `{name, exp}` when it was issued with an
expiry (`presence-token NAME --expires 24h`); a token without `exp` never expires, so tokens issued
before expiries existed stay valid. While no `security.secret` is configured, identity tokens are
neither required nor checked.

Guest resume tokens are always checked. They are signed with `security.secret` when it is set,
else with a random key made once and kept in the store (`meta` table), so a guest keeps its id
across restarts either way.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from itsdangerous import BadSignature, URLSafeSerializer

from .validation import Invalid

log = logging.getLogger("presence.identity")

SALT = "presence-identity"
GUEST_SALT = "presence-guest-resume"
GUEST_KEY = "guest_resume_key"  # the store `meta` key of the generated guest signing key


class MetaStore(Protocol):
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def guest_key(store: MetaStore) -> str | None:
    """The store's guest signing key, made and saved on first use; `None` when the store cannot
    keep one (the tokens then hold only until this process ends)."""
    try:
        key = store.get_meta(GUEST_KEY)
        if not key:
            key = secrets.token_urlsafe(32)
            store.set_meta(GUEST_KEY, key)
        return key
    except Exception as error:  # a store without a meta table must not stop the server
        log.warning("cannot keep a guest token key in the store (%s: %s); guest resume tokens "
                    "will not survive a restart (set security.secret to fix)",
                    type(error).__name__, error)
        return None


class Identities:
    """Issues and checks identity tokens and guest resume tokens."""

    def __init__(self, secret: str | None, guest_key: str | None = None) -> None:
        self._serializer = URLSafeSerializer(secret, salt=SALT) if secret else None
        self._guests = URLSafeSerializer(secret or guest_key or secrets.token_urlsafe(32),
                                         salt=GUEST_SALT)

    @classmethod
    def for_store(cls, secret: str | None, store: MetaStore) -> Identities:
        """Identities whose guest tokens survive restarts: signed with `secret`, else with a key
        kept in `store`."""
        return cls(secret, None if secret else guest_key(store))

    @property
    def required(self) -> bool:
        return self._serializer is not None

    # --- identity tokens --------------------------------------------------------------------------
    def issue(self, name: str, expires_in: float | None = None, now: float | None = None) -> str:
        """A token for `name`; with `expires_in` (seconds) it is refused from then on."""
        if self._serializer is None:
            raise RuntimeError("no secret configured (set PRESENCE_SECRET)")
        if expires_in is None:
            return self._serializer.dumps(name)
        if not expires_in > 0:
            raise ValueError(f"expires_in must be > 0, got {expires_in!r}")
        exp = math.ceil((time.time() if now is None else now) + expires_in)
        return self._serializer.dumps({"name": name, "exp": exp})

    def verify(self, name: str, token: str | None, now: float | None = None) -> None:
        """Raise `Invalid` unless `token` proves `name` and has not expired (always passes
        without a secret)."""
        if self._serializer is None:
            return
        if not token:
            raise Invalid("token_required", f"{name!r} must present an identity token")
        try:
            payload = self._serializer.loads(token)
        except BadSignature:
            raise Invalid("invalid_token",
                          f"the identity token for {name!r} is not valid") from None
        signed_name, exp = _name_and_expiry(payload)
        if signed_name is None:
            raise Invalid("invalid_token", f"the identity token for {name!r} is not valid")
        if signed_name != name:
            raise Invalid("invalid_token", f"the identity token was issued for another name, "
                                           f"not {name!r}")
        if exp is not None and (time.time() if now is None else now) >= exp:
            raise Invalid("token_expired", f"the identity token for {name!r} expired at "
                                           f"{_iso(exp)}; issue a new one (presence-token)")

    # --- guest resume tokens ----------------------------------------------------------------------
    def guest_token(self, guest_id: str) -> str:
        """The resume token for `guest_id`, sent with `guest_registered`."""
        return self._guests.dumps(guest_id)

    def verify_guest(self, guest_id: str, token: str | None) -> None:
        """Raise `Invalid` unless `token` is the resume token of `guest_id`."""
        if not token:
            raise Invalid("resume_token_required",
                          f"resuming guest id {guest_id!r} needs its resumeToken "
                          "(from guest_registered)")
        try:
            signed_id = self._guests.loads(token)
        except BadSignature:
            raise Invalid("invalid_resume_token",
                          f"the resumeToken for guest id {guest_id!r} is not valid") from None
        if signed_id != guest_id:
            raise Invalid("invalid_resume_token",
                          f"the resumeToken was issued for another guest id, not {guest_id!r}")


def _name_and_expiry(payload: Any) -> tuple[str | None, float | None]:
    """What a token signed: NAME (no expiry) or `{name, exp}`; `(None, None)` if neither."""
    if isinstance(payload, str):
        return payload, None
    if isinstance(payload, dict) and isinstance(payload.get("name"), str):
        exp = payload.get("exp")
        if exp is None or isinstance(exp, (int, float)) and not isinstance(exp, bool):
            return payload["name"], exp
    return None, None
