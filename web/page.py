"""The status page at `/`: a server-rendered table of clients with counts.

The table shows at most `MAX_ROWS` clients (online first, then reconnecting, then offline, by
name): the page refreshes every few seconds, and rendering 20,000 rows each time would stall the
whole process. The counts always cover everyone (the store keeps them: O(1)); the rows come from
the store's status queries, so a page costs O(online) at worst, not O(all). `/api/clients` lists
everyone. Text that cannot be encoded (a lone surrogate in a name) is shown escaped, never a 500.
"""

from __future__ import annotations

import heapq
from typing import Any

from flask import Blueprint, current_app, render_template
from presence_server.store.records import OFFLINE, ONLINE, RECONNECTING

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
    shown = []
    for status in (ONLINE, RECONNECTING, OFFLINE):
        room = MAX_ROWS - len(shown)
        if room <= 0:
            break
        shown += heapq.nsmallest(room, node.clients(status), key=lambda r: r.name)
    clients = [{key: _displayable(value) for key, value in r.public().items()} for r in shown]
    return render_template("status.html", clients=clients, stats=stats,
                           hidden=stats["total"] - len(shown), node=node.node,
                           uptime=int(node.uptime()), refresh=REFRESH_SECONDS)
