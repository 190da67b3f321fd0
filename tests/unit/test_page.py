"""The status page's first paint: a capped table (the counts still cover every client), its
filters, the feed position for the script, and a policy that runs no inline code.

In process: a real Runtime on a temporary SQLite file, Flask's test client, no sockets.
"""

from __future__ import annotations

import re

from presence_server.store.records import ClientRecord
from presence_server.web import page

from presence_server.config import load_config
from presence_server.runtime import Runtime


def record(name: str, status: str) -> ClientRecord:
    return ClientRecord(name=name, status=status, reason="connected", since=100.0,
                        last_seen=None, last_contact=100.0, ip=None, guest=False, node="n1",
                        connections=1 if status == "online" else 0, version=1)


def test_the_table_is_capped_online_first_and_says_how_many_are_hidden(tmp_path, monkeypatch):
    config = load_config(environ={"PRESENCE__STORE__URL": f"sqlite:///{tmp_path / 'p.db'}"})
    runtime = Runtime(config)
    try:
        for index in range(20):
            runtime.store.save(record(f"off-{index:02}", "offline"))
        for index in range(8):
            runtime.store.save(record(f"on-{index:02}", "online"))
        monkeypatch.setattr(page, "MAX_ROWS", 10)

        text = runtime.app.test_client().get("/").get_data(as_text=True)

        names = re.findall(r'data-name="([^"]+)"', text)
        assert names == [f"on-{i:02}" for i in range(8)] + ["off-00", "off-01"]
        assert "18 more not shown" in text
        assert "<b>28</b>clients" in text and "<b>8</b>online" in text
    finally:
        runtime.close()


def test_no_note_when_everyone_fits(tmp_path):
    config = load_config(environ={"PRESENCE__STORE__URL": f"sqlite:///{tmp_path / 'p.db'}"})
    runtime = Runtime(config)
    try:
        runtime.store.save(record("solo", "online"))
        text = runtime.app.test_client().get("/").get_data(as_text=True)
        assert re.findall(r'data-name="([^"]+)"', text) == ["solo"]
        assert "more not shown" not in text
    finally:
        runtime.close()


def test_status_and_search_filter_the_first_paint(tmp_path):
    config = load_config(environ={"PRESENCE__STORE__URL": f"sqlite:///{tmp_path / 'p.db'}"})
    runtime = Runtime(config)
    try:
        runtime.store.save(record("alice", "online"))
        runtime.store.save(record("alfred", "offline"))
        runtime.store.save(record("bob", "online"))
        client = runtime.app.test_client()

        def names(query: str) -> list[str]:
            return re.findall(r'data-name="([^"]+)"',
                              client.get("/" + query).get_data(as_text=True))

        assert names("?status=online") == ["alice", "bob"]
        assert names("?q=AL") == ["alice", "alfred"]  # online first, any case
        assert names("?status=offline&q=al") == ["alfred"]
        assert names("?q=nobody") == []
        assert "No clients match." in client.get("/?q=nobody").get_data(as_text=True)
        answer = client.get("/?status=gone")
        assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_query"
        assert client.get("/?q=" + "x" * 201).status_code == 400
    finally:
        runtime.close()


def test_the_page_carries_the_feed_position_and_allows_only_its_own_script(tmp_path):
    config = load_config(environ={"PRESENCE__STORE__URL": f"sqlite:///{tmp_path / 'p.db'}"})
    runtime = Runtime(config)
    try:
        client = runtime.app.test_client()
        answer = client.get("/")
        text = answer.get_data(as_text=True)
        position = runtime.presence.feed_position()
        assert f'data-event-id="{position}"' in text
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "<script>" not in text and "<style>" not in text  # nothing inline
        assert '<noscript><meta http-equiv="refresh"' in text  # without a script: refresh
        for asset in ("/static/status.js", "/static/status.css"):
            assert client.get(asset).status_code == 200
    finally:
        runtime.close()
