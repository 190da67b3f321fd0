"""The status page at `/`: a server-rendered first paint that a script then keeps live.

The HTML works without JavaScript: counts of every client (O(1), from the store's indexes) and a
table of at most `MAX_ROWS` clients (online first, then reconnecting, then offline, by name; the
rows come from the store's status queries, so a page scans the offline records only when fewer
than `MAX_ROWS` clients are online or reconnecting), `?status=` and `?q=` filter it (a plain GET
form), and without a script it refreshes every `REFRESH_SECONDS` (a `<noscript>` refresh).

With JavaScript (`web/static/status.js`, served by Flask from `web/static/`, the app's static
folder) the page loads every record from `/api/clients` into memory and follows `/events` from
the feed position written into the page (`data-event-id`, read with the counts, no switch
between), so no change is lost between the first paint and the stream. The page sends a
Content-Security-Policy that allows only this origin's script and style: nothing inline runs.
Text that cannot be encoded (a lone surrogate in a name) is shown escaped, never a 500.
"""

from __future__ import annotations

import heapq
from typing import Any

from flask import Blueprint, current_app, render_template, request
from presence_server.store.records import OFFLINE, ONLINE, RECONNECTING, STATUSES

from . import api
from .port import PresencePort

page = Blueprint("page", __name__, template_folder="templates")

REFRESH_SECONDS = 5
MAX_ROWS = 500
QUERY_MAX = 200  # longest `?q=` the page accepts (names are shorter)
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _displayable(value: Any) -> Any:
    """A string the response can encode as UTF-8 (lone surrogates escaped), else as is."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _matches(record: Any, text: str) -> bool:
    return (not text or text in record.name.lower()
            or text in (record.display_name or "").lower())


@page.get("/")
def status_page():
    node: PresencePort = current_app.extensions["presence"]
    wanted = request.args.get("status") or None
    if wanted is not None and wanted not in STATUSES:
        return api.error(400, "invalid_query",
                         f"status must be one of {', '.join(STATUSES)}, got {wanted[:40]!r}")
    query = request.args.get("q") or ""
    if len(query) > QUERY_MAX:
        return api.error(400, "invalid_query", f"q must be at most {QUERY_MAX} characters")
    text = query.lower()
    # the counts and the position are read together (no switch between): the script
    # resumes the feed from this position
    stats = node.stats()
    position = node.feed_position()
    rows = []
    shown_total = 0
    for status in (ONLINE, RECONNECTING, OFFLINE):
        if wanted is not None and status != wanted:
            continue
        room = MAX_ROWS - len(rows)
        if not text:
            shown_total += stats[status]
            if room > 0:
                rows += heapq.nsmallest(room, node.clients(status), key=lambda r: r.name)
            continue
        matching = [record for record in node.clients(status) if _matches(record, text)]
        shown_total += len(matching)
        if room > 0:
            rows += heapq.nsmallest(room, matching, key=lambda r: r.name)
    clients = [{key: _displayable(value) for key, value in api.shown(r).items()} for r in rows]
    html = render_template(
        "status.html", clients=clients, stats=stats, hidden=shown_total - len(rows),
        node=node.node, uptime=int(node.uptime()), refresh=REFRESH_SECONDS, position=position,
        status=wanted or "", query=_displayable(query), statuses=STATUSES)
    return html, 200, {"Content-Security-Policy": POLICY, "Cache-Control": "no-store"}
