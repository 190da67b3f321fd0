"""Signed tokens: identity tokens with an optional expiry, guest resume tokens and their key."""

from __future__ import annotations

import pytest
from presence_server.store import open_store
from presence_server.web.identity import GUEST_KEY, Identities, guest_key
from presence_server.web.validation import Invalid

NOW = 1_800_000_000.0


def code_of(call) -> str:
    with pytest.raises(Invalid) as raised:
        call()
    return raised.value.code


# --- identity tokens with an expiry -------------------------------------------------------------
def test_a_token_with_an_expiry_is_valid_until_then():
    identities = Identities("s3cret")
    token = identities.issue("alice", expires_in=3600, now=NOW)
    identities.verify("alice", token, now=NOW)
    identities.verify("alice", token, now=NOW + 3599)
    with pytest.raises(Invalid) as expired:
        identities.verify("alice", token, now=NOW + 3600)
    assert expired.value.code == "token_expired"
    assert "'alice'" in str(expired.value) and "expired at 2027-01-15T09:00:00Z" in str(
        expired.value)


def test_a_token_without_an_expiry_never_expires():
    identities = Identities("s3cret")
    old_style = identities.issue("alice")
    identities.verify("alice", old_style, now=NOW * 10)


def test_an_expiring_token_proves_only_its_name_and_only_with_its_secret():
    token = Identities("s3cret").issue("alice", expires_in=60, now=NOW)
    assert code_of(lambda: Identities("s3cret").verify("bob", token, now=NOW)) == "invalid_token"
    assert code_of(lambda: Identities("other").verify("alice", token, now=NOW)) == "invalid_token"


def test_a_signed_payload_that_is_not_a_token_is_refused():
    from itsdangerous import URLSafeSerializer
    from presence_server.web.identity import SALT

    sign = URLSafeSerializer("s3cret", salt=SALT).dumps
    for payload in ({"exp": NOW}, {"name": "alice", "exp": "soon"}, {"name": "alice", "exp": True},
                    ["alice"], 5):
        assert code_of(lambda p=payload: Identities("s3cret").verify("alice", sign(p), now=NOW)) \
            == "invalid_token", payload


@pytest.mark.parametrize("expires_in", [0, -1])
def test_an_expiry_must_be_in_the_future(expires_in):
    with pytest.raises(ValueError):
        Identities("s3cret").issue("alice", expires_in=expires_in)


# --- guest resume tokens -------------------------------------------------------------------------
def test_a_guest_token_resumes_only_its_own_id():
    identities = Identities(None, guest_key="k")
    token = identities.guest_token("guest-1")
    identities.verify_guest("guest-1", token)
    assert Identities(None, guest_key="k").guest_token("guest-1") == token  # stable
    assert code_of(lambda: identities.verify_guest("guest-1", None)) == "resume_token_required"
    assert code_of(lambda: identities.verify_guest("guest-1", "")) == "resume_token_required"
    assert code_of(lambda: identities.verify_guest("guest-2", token)) == "invalid_resume_token"
    assert code_of(lambda: identities.verify_guest("guest-1", token + "x")) \
        == "invalid_resume_token"
    assert code_of(lambda: Identities(None, guest_key="other").verify_guest("guest-1", token)) \
        == "invalid_resume_token"


def test_the_secret_signs_guest_tokens_when_set():
    token = Identities("s3cret", guest_key="ignored").guest_token("guest-1")
    Identities("s3cret", guest_key="another").verify_guest("guest-1", token)
    assert code_of(lambda: Identities("other", guest_key="ignored").verify_guest(
        "guest-1", token)) == "invalid_resume_token"


def test_guest_and_identity_tokens_never_pass_for_each_other():
    identities = Identities("s3cret")
    identity_token = identities.issue("guest-1")
    guest_token = identities.guest_token("guest-1")
    assert code_of(lambda: identities.verify_guest("guest-1", identity_token)) \
        == "invalid_resume_token"
    assert code_of(lambda: identities.verify("guest-1", guest_token)) == "invalid_token"


def test_without_any_key_guest_tokens_hold_for_the_process_only():
    identities = Identities(None)
    identities.verify_guest("guest-1", identities.guest_token("guest-1"))
    assert code_of(lambda: Identities(None).verify_guest(
        "guest-1", identities.guest_token("guest-1"))) == "invalid_resume_token"


# --- the guest key kept in the store --------------------------------------------------------------
def test_the_guest_key_is_made_once_and_kept_across_restarts(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(url)
    assert store.get_meta(GUEST_KEY) is None
    key = guest_key(store)
    assert key and store.get_meta(GUEST_KEY) == key and guest_key(store) == key
    token = Identities.for_store(None, store).guest_token("guest-1")
    store.close()

    reopened = open_store(url)
    assert guest_key(reopened) == key
    Identities.for_store(None, reopened).verify_guest("guest-1", token)
    reopened.set_meta("other", "x")
    reopened.set_meta("other", "y")
    assert reopened.get_meta("other") == "y" and reopened.get_meta(GUEST_KEY) == key
    reopened.close()


def test_with_a_secret_no_key_is_stored(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    Identities.for_store("s3cret", store)
    assert store.get_meta(GUEST_KEY) is None
    store.close()


def test_a_store_that_cannot_keep_the_key_does_not_stop_the_server(caplog):
    class NoMeta:
        def get_meta(self, key):
            raise NotImplementedError("the redis store keeps no settings")

        def set_meta(self, key, value):
            raise NotImplementedError

    identities = Identities.for_store(None, NoMeta())
    identities.verify_guest("guest-1", identities.guest_token("guest-1"))
    assert "guest resume tokens will not survive a restart" in caplog.text

