"""The status page in real headless Chromium against a real server with real Socket.IO clients.

The page is loaded once per test and never reloaded (a marker set on `window` at the start must
still be there at the end): everything after the first paint arrives over `/events`.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.helpers import wait_record
from tests.support.clients import RecordingClient

WAIT_MS = 20_000  # generous bound on a change reaching the page (graces are 3 s)
# clients here send one heartbeat: no heartbeat_timeout within a test, only the 3 s grace
QUIET = {"monitoring": {"heartbeat_interval": "60s"}}

ROW_STATUS = """([name]) => {
  const row = [...document.querySelectorAll('#rows tr')]
    .find((tr) => !tr.hidden && tr.dataset.name === name);
  return row ? row.cells[1].textContent : null;
}"""

VISIBLE_NAMES = """() => [...document.querySelectorAll('#rows tr')]
  .filter((tr) => !tr.hidden && tr.dataset.name).map((tr) => tr.dataset.name)"""


def open_live(page, server, path: str = "/") -> None:
    """Load the page and wait until it follows /events with every record loaded."""
    page.goto(server.url + path)
    page.wait_for_function("() => document.getElementById('live').textContent === 'live'",
                           timeout=WAIT_MS)
    page.wait_for_function("() => document.getElementById('shown').textContent !== ''",
                           timeout=WAIT_MS)
    page.evaluate("window.__notReloaded = true")


def wait_row_status(page, name: str, status: str | None) -> None:
    page.wait_for_function(f"(args) => ({ROW_STATUS})(args) === args[1]", arg=[name, status],
                           timeout=WAIT_MS)


def wait_names(page, names: list[str]) -> None:
    """Wait until the rows shown are exactly `names` (in any order)."""
    page.wait_for_function(
        f"(names) => JSON.stringify(({VISIBLE_NAMES})().sort()) === JSON.stringify(names)",
        arg=sorted(names), timeout=WAIT_MS)


def register(connect, server, name: str, transport: str = "websocket") -> RecordingClient:
    client = connect(server.url, transport, auth={"clientName": name})
    assert client.heartbeat(name)["status"] == "ok"
    return client


def test_a_client_goes_online_reconnecting_offline_without_reload(make_server, connect, page,
                                                                  artifacts, unique):
    server = make_server(QUIET)
    open_live(page, server)
    name = unique("walker")

    client = register(connect, server, name)
    wait_row_status(page, name, "online")
    assert page.evaluate("document.getElementById('count-online').firstChild.textContent") == "1"

    client.drop()  # its socket closes: reconnecting, then offline once the 3 s grace is over
    wait_row_status(page, name, "reconnecting")
    wait_row_status(page, name, "offline")

    assert page.evaluate("window.__notReloaded") is True, "the page reloaded"
    assert page.evaluate("document.getElementById('count-offline').firstChild.textContent") \
        == "1"
    row = page.locator("#rows tr", has_text=name)
    since = row.locator("time").first  # relative times, the ISO time as its title
    assert re.fullmatch(r"just now|\d+ s ago", since.text_content()), since.text_content()
    assert since.get_attribute("datetime").endswith("Z")
    assert page.locator("#trend").is_visible()  # the sparkline has its first sample
    assert page.locator("#nodes").is_hidden()  # no /api/nodes on this store: 404, hidden
    page.screenshot(path=str(artifacts / "status-page-live.png"), full_page=True)
    assert not page.errors, page.errors


def test_status_filter_and_name_search(make_server, connect, page, artifacts, unique):
    server = make_server(QUIET)
    online = [unique(f"apple{index}") for index in range(3)]
    gone = unique("berry")
    for name in online:
        register(connect, server, name)
    register(connect, server, gone).drop()
    wait_record(server, gone, "offline", timeout=20)
    open_live(page, server)

    page.select_option("#status-filter", "online")
    wait_names(page, online)
    assert "status=online" in page.url

    page.select_option("#status-filter", "offline")
    wait_names(page, [gone])

    page.select_option("#status-filter", "")
    page.fill("#search", online[1].upper())  # search ignores case
    wait_names(page, [online[1]])
    assert "match" in page.text_content("#shown")

    page.fill("#search", "no-such-client-anywhere")
    page.wait_for_selector("#rows tr.empty:not([hidden])", timeout=WAIT_MS)

    # a change arriving while filtered applies the filter: a new online "apple" shows up
    page.fill("#search", "apple")
    page.select_option("#status-filter", "online")
    late = unique("apple-late")
    register(connect, server, late)
    page.wait_for_function(f"() => ({VISIBLE_NAMES})().includes({late!r})", timeout=WAIT_MS)
    page.screenshot(path=str(artifacts / "status-page-filtered.png"), full_page=True)
    assert page.evaluate("window.__notReloaded") is True
    assert not page.errors, page.errors


def test_the_timeline_opens_with_its_flap_count(make_server, connect, page, artifacts, unique):
    server = make_server(QUIET)
    name = unique("flapper")
    register(connect, server, name).drop()  # online -> reconnecting
    wait_record(server, name, "reconnecting")
    again = register(connect, server, name)  # -> online (reconnected): one flap so far
    wait_record(server, name, "online")
    open_live(page, server)

    page.locator("#rows tr", has_text=name).click()
    page.wait_for_selector("#timeline:not([hidden]) #timeline-list li", timeout=WAIT_MS)
    assert page.text_content("#timeline-title") == name
    assert page.get_attribute("#timeline-flaps", "data-flaps") == "1"
    items = page.locator("#timeline-list li").all_text_contents()
    assert items[0].startswith("reconnecting → online (reconnected)"), items
    assert any(item.startswith("online → reconnecting (disconnect)") for item in items), items
    assert "1 flap in the last 3 transitions" in page.text_content("#timeline-flaps")

    # the open timeline follows the client's changes live: a second flap
    again.drop()
    page.wait_for_function(
        "() => document.getElementById('timeline-flaps').dataset.flaps === '2'", timeout=WAIT_MS)
    page.screenshot(path=str(artifacts / "status-page-timeline.png"), full_page=True)
    page.click("#timeline-close")
    assert page.locator("#timeline").is_hidden()
    assert not page.errors, page.errors


def test_guests_show_their_display_name_and_names_stay_text(make_server, connect, page,
                                                            unique):
    server = make_server(QUIET)
    open_live(page, server)
    guest = connect(server.url, "websocket", auth={"guest": True, "name": "Visitor <i>x</i>"})
    guest_id = guest.wait_event("guest_registered")["guestId"]
    hostile = '<img src=x onerror="window.__owned=1">' + unique("h")
    register(connect, server, hostile)

    wait_row_status(page, guest_id, "online")
    wait_row_status(page, hostile, "online")
    page.wait_for_function(
        """([id]) => [...document.querySelectorAll('#rows tr')].some((tr) =>
             tr.dataset.name === id && tr.cells[0].textContent.startsWith('Visitor <i>x</i>'))""",
        arg=[guest_id], timeout=WAIT_MS)
    assert page.evaluate("document.querySelectorAll('#rows img, #rows i').length") == 0
    assert page.evaluate("window.__owned") is None
    page.wait_for_function(
        "() => document.getElementById('count-guests').firstChild.textContent === '1'",
        timeout=WAIT_MS)
    page.wait_for_function(  # /api/stats is polled for it
        "() => document.getElementById('count-responsive').firstChild.textContent !== ''",
        timeout=WAIT_MS)
    assert not page.errors, page.errors


@pytest.mark.parametrize("snapshot_limit", [500, 2], ids=["snapshot", "truncated-snapshot"])
def test_a_page_older_than_the_backlog_resyncs(make_server, connect, page, unique,
                                               snapshot_limit):
    """The page's position is older than `events.backlog`: `/events` answers `resync`; the page
    takes its snapshot (or loads every record again when the snapshot is truncated)."""
    server = make_server({**QUIET, "events": {"backlog": 3},
                          "security": {"watch_snapshot_limit": snapshot_limit}})
    names = [unique(f"r{index}") for index in range(4)]
    clients = [register(connect, server, name) for name in names]
    for name in names:
        wait_record(server, name, "online")

    # serve the first paint as a stale tab would have it: position 0, no rows
    def stale(route):
        response = route.fetch()
        body = re.sub(r'data-event-id="\d+"', 'data-event-id="0"', response.text())
        route.fulfill(response=response, body=body)

    page.route(server.url + "/", stale)
    resyncs = []
    page.on("response", lambda response: resyncs.append(response.url)
            if "/events" in response.url else None)
    open_live(page, server)
    clients[0].drop()
    wait_row_status(page, names[0], "reconnecting")
    for name in names[1:]:
        wait_row_status(page, name, "online")
    assert any("lastEventId=0" in url for url in resyncs), resyncs
    assert not page.errors, page.errors


def test_without_javascript_the_first_paint_and_the_filter_form_work(make_server, connect,
                                                                     browser, unique):
    server = make_server(QUIET)
    online, other = unique("plain"), unique("other")
    register(connect, server, online)
    register(connect, server, other)
    wait_record(server, other, "online")
    context = browser.new_context(java_script_enabled=False)
    try:
        tab = context.new_page()
        tab.goto(server.url + "/")
        names = tab.eval_on_selector_all("#rows tr[data-name]",
                                         "rows => rows.map(r => r.dataset.name)")
        assert sorted(names) == sorted([online, other])
        tab.fill("#search", online)
        tab.click("#filter-submit")
        tab.wait_for_url(re.compile(r".*q="))
        names = tab.eval_on_selector_all("#rows tr[data-name]",
                                         "rows => rows.map(r => r.dataset.name)")
        assert names == [online]
        assert tab.text_content("#live") == "static"
    finally:
        context.close()


def test_paging_shows_one_page_of_rows_at_a_time(make_server, page, unique):
    """Records written to the store before start-up come back as reconnecting (a one-hour
    grace here): 120 of them, in pages of 50 rows, by name."""
    server = make_server({**QUIET, "monitoring": {**QUIET["monitoring"],
                                                  "reconnection_grace_period": "1h"}},
                         start=False)
    prefix = unique("paged")
    seed_records(server, [f"{prefix}-{index:03d}" for index in range(120)])
    server.start()
    open_live(page, server)

    assert page.evaluate(f"({VISIBLE_NAMES})().length") == 50
    assert page.text_content("#page-info") == "1–50 of 120"
    page.click("#page-next")
    page.wait_for_function("() => document.getElementById('page-info').textContent "
                           "=== '51–100 of 120'", timeout=WAIT_MS)
    assert page.evaluate(VISIBLE_NAMES) == [f"{prefix}-{index:03d}" for index in range(50, 100)]
    page.click("#page-next")
    wait_names(page, [f"{prefix}-{index:03d}" for index in range(100, 120)])
    assert page.is_disabled("#page-next")
    page.fill("#search", f"{prefix}-00")  # a filter starts again at the first page
    wait_names(page, [f"{prefix}-{index:03d}" for index in range(10)])
    assert page.locator("#pager").is_hidden()
    assert not page.errors, page.errors


def seed_records(server, names: list[str]) -> None:
    """Write online records for `names` into the server's (not yet started) SQLite store."""
    from presence_server.store.records import ClientRecord

    from presence_server.config import load_config
    from presence_server.runtime import Runtime

    runtime = Runtime(load_config(environ={
        "PRESENCE__STORE__URL": server.config["store"]["url"]}))
    try:
        now = time.time()
        for name in names:
            runtime.store.save(ClientRecord(
                name=name, status="online", reason="connected", since=now, last_seen=now,
                last_contact=now, ip=None, guest=False, node="test-node", connections=1,
                version=1))
    finally:
        runtime.close()


def test_nodes_show_when_api_nodes_lists_several(make_server, page):
    """`/api/nodes` comes with the several-node store; until then this test answers it for the
    page (Playwright `route`) in CONTRACT §6's shape, a hostile node id among them."""
    server = make_server(QUIET)
    nodes = {"nodes": [
        {"node": "web-1", "started": "2026-12-02T01:00:00.000Z", "lease_age": 0.4,
         "connections": 12, "alive": True},
        {"node": "<b>web-2</b>", "started": "2026-12-02T01:00:05.000Z", "lease_age": 21.0,
         "connections": 0, "alive": False},
    ]}
    page.route(server.url + "/api/nodes", lambda route: route.fulfill(json=nodes))
    open_live(page, server)
    page.wait_for_selector("#nodes:not([hidden]) #node-rows tr", timeout=WAIT_MS)
    rows = page.eval_on_selector_all("#node-rows tr", "rows => rows.map(r => "
                                     "[...r.cells].map(c => c.textContent))")
    assert rows[0][:3] == ["web-1", "yes", "12"]
    assert rows[1][:2] == ["<b>web-2</b>", "no"]
    assert page.evaluate("document.querySelectorAll('#node-rows b').length") == 0
    assert not page.errors, page.errors


def test_the_page_follows_a_server_restart_without_reload(make_server, connect, page, unique):
    """A graceful restart ends the stream after the `server_restart` changes; the page
    reconnects (EventSource, or a new one after a refusal) and resumes from its last id."""
    server = make_server(QUIET)
    name = unique("survivor")
    register(connect, server, name)
    open_live(page, server)
    wait_row_status(page, name, "online")

    assert server.stop() == 0
    wait_row_status(page, name, "reconnecting")  # server_restart, sent before the stream ended
    page.wait_for_function("() => document.getElementById('live').textContent !== 'live'",
                           timeout=WAIT_MS)
    server.start()
    page.wait_for_function("() => document.getElementById('live').textContent === 'live'",
                           timeout=WAIT_MS)
    register(connect, server, name)  # it comes back within its fresh grace
    wait_row_status(page, name, "online")
    page.wait_for_function(
        """([name]) => [...document.querySelectorAll('#rows tr')].some((tr) =>
             tr.dataset.name === name && tr.cells[2].textContent === 'reconnected')""",
        arg=[name], timeout=WAIT_MS)
    assert page.evaluate("window.__notReloaded") is True
    assert not page.errors, page.errors
