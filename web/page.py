"""The status page at `/`: a server-rendered table of clients with counts.

The table shows at most `MAX_ROWS` clients (online first, then reconnecting, then offline, by
name): the page refreshes every few seconds, and rendering 20,000 rows each time would stall the
whole process. The counts always cover everyone (the store keeps them: O(1)); the rows come from
the store's status queries, online first, so a page scans the offline records only when fewer
than `MAX_ROWS` clients are online or reconnecting. `/api/clients` lists
everyone. Text that cannot be encoded (a lone surrogate in a name) is shown escaped, never a 500.
"""

from __future__ import annotations

import heapq
from typing import Any

from flask import Blueprint, current_app, render_template
from presence_server.store.records import OFFLINE, ONLINE, RECONNECTING

from . import api
from .port import PresencePort

page = Blueprint("page", __name__, template_folder="templates")

REFRESH_SECONDS = 5
MAX_ROWS = 500


def _displayable(value: Any) -> Any:
    """A string the response can encode as UTF-8 (lone surrogates escaped), else as is."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


@page.get("/")
def status_page():
    node: PresencePort = current_app.extensions["presence"]
    stats = node.stats()
    rows = []
    for status in (ONLINE, RECONNECTING, OFFLINE):
        room = MAX_ROWS - len(rows)
        if room <= 0:
            break
        rows += heapq.nsmallest(room, node.clients(status), key=lambda r: r.name)
    clients = [{key: _displayable(value) for key, value in api.shown(r).items()} for r in rows]
    return render_template("status.html", clients=clients, stats=stats,
                           hidden=stats["total"] - len(rows), node=node.node,
                           uptime=int(node.uptime()), refresh=REFRESH_SECONDS)
