"""Input checks of the socket layer and signed identities."""

from __future__ import annotations

import pytest
from presence_server.web import validation
from presence_server.web.identity import Identities
from presence_server.web.validation import Invalid

HOSTILE_TEXT = [
    "evil\ud800", "\udfff", "line\nbreak", "cr\rhere", "tab\there", "nul\x00", "del\x7f",
    "c1\x85", "bidi\u202eoverride", "zero\u200bwidth", "bom\ufeff", "sep\u2028line",
    "para\u2029graph", "private\ue000use", "unassigned\U000e0fff", "nbsp\u00a0",
]


@pytest.mark.parametrize("value", [None, "", "  ", 5, ["a"], {"a": 1}, "x" * 129, "a\nb",
                                   " alice", "bob\x00", "del\x7f", "é" * 129,
                                   "\U0001F600" * 65, *HOSTILE_TEXT])
def test_bad_names(value):
    with pytest.raises(Invalid) as raised:
        validation.name(value, "clientName")
    assert raised.value.code == "invalid_payload" and "clientName" in str(raised.value)


@pytest.mark.parametrize("value", ["alice", "guest-1234", "기기-7", "a" * 128, "x/y z",
                                   "é" * 128, "\U0001F600" * 64,
                                   "family \U0001F468\u200d\U0001F469", "Zoë Ångström",
                                   "mañana-ß", "قمر", "e\u0301"])
def test_good_names(value):
    assert validation.name(value, "clientName") == value


@pytest.mark.parametrize("value", HOSTILE_TEXT + ["d" * 65, "\U0001F600" * 64 + "x", ""])
def test_bad_display_names(value):
    with pytest.raises(Invalid) as raised:
        validation.connect_auth({"guest": True, "name": value})
    assert raised.value.code == "invalid_auth" and "auth.name" in str(raised.value)


@pytest.mark.parametrize("value", HOSTILE_TEXT)
def test_bad_guest_ids(value):
    with pytest.raises(Invalid) as raised:
        validation.connect_auth({"guest": True, "guestId": value})
    assert raised.value.code == "invalid_auth" and "auth.guestId" in str(raised.value)


def test_every_accepted_name_encodes_and_logs_as_one_line():
    for value in ("a" * 128, "é" * 128, "\U0001F600" * 64, "기" * 85):
        accepted = validation.name(value, "clientName")
        assert len(accepted.encode("utf-8")) <= validation.MAX_NAME_BYTES
        assert len(f"[STATUS] {accepted}: online".splitlines()) == 1


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
    for bad in (1234, "1.2.3.4\nforged", "evil\ud800", "a b", "é"):
        with pytest.raises(Invalid):
            validation.optional_ip(bad)
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


def test_client_ip_trusts_forwarded_for_only_as_far_as_the_proxy_hops():
    environ = {"HTTP_X_FORWARDED_FOR": "6.6.6.6, 9.9.9.9, 10.0.0.1", "REMOTE_ADDR": "127.0.0.1"}
    assert validation.client_ip(environ) == "127.0.0.1"  # default: anyone can write the header
    assert validation.client_ip(environ, proxy_hops=0) == "127.0.0.1"
    assert validation.client_ip(environ, proxy_hops=1) == "10.0.0.1"  # what our proxy saw
    assert validation.client_ip(environ, proxy_hops=2) == "9.9.9.9"
    assert validation.client_ip(environ, proxy_hops=4) == "127.0.0.1"  # fewer than the hops
    assert validation.client_ip({"REMOTE_ADDR": "127.0.0.1"}, proxy_hops=1) == "127.0.0.1"
    assert validation.client_ip({"HTTP_X_FORWARDED_FOR": "bad\u2028ip",
                                 "REMOTE_ADDR": "127.0.0.1"}, proxy_hops=1) == "127.0.0.1"


def test_printable_escapes_what_could_break_a_log_line():
    assert validation.printable("alice") == "alice"
    assert validation.printable("a\nb") == "'a\\nb'"
    assert "\n" not in validation.printable("x\r\n[STATUS] forged")


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


def test_new_record_budget_per_address():
    from presence_server.web.budgets import NewRecordBudget

    budget = NewRecordBudget(per_minute=3)
    assert [budget.spend("1.1.1.1") for _ in range(4)] == [True, True, True, False]
    assert budget.spend("2.2.2.2")  # another address has its own bucket
    assert all(NewRecordBudget(per_minute=0).spend("1.1.1.1") for _ in range(1000))


def test_complaints_log_one_line_then_a_count(caplog):
    from presence_server.web import budgets

    complaints = budgets.Complaints()
    with caplog.at_level("INFO", logger="presence.sockets"):
        for index in range(50):
            complaints.note("sid1", f"evt{index}\n[STATUS] forged", "unknown_event", "unknown")
        complaints.flush("sid1")
    lines = caplog.text.splitlines()
    assert len(lines) == 2, lines
    assert "rejected 49 more events from sid1" in lines[1] and "unknown_event x49" in lines[1]
    assert not any(line.startswith("[STATUS]") for line in lines)
