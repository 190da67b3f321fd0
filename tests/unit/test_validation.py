"""Input checks of the socket layer and signed identities."""

from __future__ import annotations

import pytest
from presence_server.web import validation
from presence_server.web.identity import Identities
from presence_server.web.validation import Invalid


@pytest.mark.parametrize("value", [None, "", "  ", 5, ["a"], {"a": 1}, "x" * 129, "a\nb",
                                   " alice", "bob\x00", "del\x7f"])
def test_bad_names(value):
    with pytest.raises(Invalid) as raised:
        validation.name(value, "clientName")
    assert raised.value.code == "invalid_payload" and "clientName" in str(raised.value)


@pytest.mark.parametrize("value", ["alice", "guest-1234", "기기-7", "a" * 128, "x/y z"])
def test_good_names(value):
    assert validation.name(value, "clientName") == value


@pytest.mark.parametrize("auth,expected", [
    (None, validation.Credentials()),
    ({}, validation.Credentials()),
    ({"clientName": "alice"}, validation.Credentials(name="alice")),
    ({"clientName": "alice", "token": "t"}, validation.Credentials(name="alice", token="t")),
    ({"guest": True}, validation.Credentials(guest=True, display_name="Guest")),
    ({"guest": True, "name": " Visitor "},
     validation.Credentials(guest=True, display_name="Visitor")),
    ({"guest": True, "name": "V", "guestId": "guest-1"},
     validation.Credentials(guest=True, display_name="V", guest_id="guest-1")),
    ({"guest": True, "name": "V", "guestId": "guest-1", "resumeToken": "t"},
     validation.Credentials(guest=True, display_name="V", guest_id="guest-1",
                            resume_token="t")),
])
def test_connect_auth(auth, expected):
    assert validation.connect_auth(auth) == expected


@pytest.mark.parametrize("auth", ["alice", 5, ["x"], {"clientName": ""}, {"clientName": 3},
                                  {"guest": "yes"}, {"guest": True, "name": 5},
                                  {"guest": True, "name": "x" * 65}, {"clientName": "a",
                                                                       "token": 5}])
def test_bad_connect_auth(auth):
    with pytest.raises(Invalid):
        validation.connect_auth(auth)


@pytest.mark.parametrize("token", [5, ["t"], {"t": 1}, "t" * (validation.MAX_TOKEN + 1)])
def test_bad_guest_resume_token(token):
    with pytest.raises(Invalid) as raised:
        validation.connect_auth({"guest": True, "guestId": "guest-1", "resumeToken": token})
    assert raised.value.code == "invalid_auth" and "auth.resumeToken" in str(raised.value)


def test_optional_fields():
    assert validation.optional_ip(None) is None and validation.optional_ip(" 1.2.3.4 ") == "1.2.3.4"
    with pytest.raises(Invalid):
        validation.optional_ip(1234)
    validation.optional_timestamp(None)
    validation.optional_timestamp(1700000000.5)
    validation.optional_timestamp("2026-01-01T00:00:00Z")
    for bad in (True, {"t": 1}, "x" * 65):
        with pytest.raises(Invalid):
            validation.optional_timestamp(bad)
    assert validation.mapping({"a": 1}, "e") == {"a": 1}
    with pytest.raises(Invalid, match="object payload"):
        validation.mapping("nope", "heartbeat")
    assert validation.optional_mapping(None, "watch") == {}


def test_client_ip_prefers_the_first_forwarded_address():
    assert validation.client_ip({"HTTP_X_FORWARDED_FOR": "9.9.9.9, 10.0.0.1",
                                 "REMOTE_ADDR": "127.0.0.1"}) == "9.9.9.9"
    assert validation.client_ip({"REMOTE_ADDR": "127.0.0.1"}) == "127.0.0.1"


def test_identities_without_a_secret_accept_anything():
    identities = Identities(None)
    assert not identities.required
    identities.verify("alice", None)
    with pytest.raises(RuntimeError):
        identities.issue("alice")


def test_signed_identities():
    identities = Identities("s3cret")
    token = identities.issue("alice")
    identities.verify("alice", token)
    with pytest.raises(Invalid) as missing:
        identities.verify("alice", None)
    assert missing.value.code == "token_required"
    with pytest.raises(Invalid) as other:
        identities.verify("bob", token)
    assert other.value.code == "invalid_token"
    with pytest.raises(Invalid):
        Identities("another").verify("alice", token)
    with pytest.raises(Invalid):
        identities.verify("alice", token + "x")
