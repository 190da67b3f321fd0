"""Signed identity tokens: `presence-token NAME` issues one, registration checks it.

A token is NAME signed with `security.secret` (itsdangerous, HMAC-SHA1 by default, salted for
this use). While no secret is configured, tokens are not required and not checked.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeSerializer

from .validation import Invalid

SALT = "presence-identity"


class Identities:
    def __init__(self, secret: str | None) -> None:
        self._serializer = URLSafeSerializer(secret, salt=SALT) if secret else None

    @property
    def required(self) -> bool:
        return self._serializer is not None

    def issue(self, name: str) -> str:
        if self._serializer is None:
            raise RuntimeError("no secret configured (set PRESENCE_SECRET)")
        return self._serializer.dumps(name)

    def verify(self, name: str, token: str | None) -> None:
        """Raise `Invalid` unless `token` proves `name` (always passes without a secret)."""
        if self._serializer is None:
            return
        if not token:
            raise Invalid("token_required", f"{name!r} must present an identity token")
        try:
            signed_name = self._serializer.loads(token)
        except BadSignature:
            raise Invalid("invalid_token",
                          f"the identity token for {name!r} is not valid") from None
        if signed_name != name:
            raise Invalid("invalid_token", f"the identity token was issued for another name, "
                                           f"not {name!r}")
